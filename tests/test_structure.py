"""The layout's rules (docs/architecture.md), checked on the code itself: no import cycle, no
import pointing up a layer, no module over 600 lines, `jobs/*.py` are shims over the CLI, and
Delta is reached only through the lakehouse."""

from __future__ import annotations

import ast
import re
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parents[1]
PACKAGE = REPOSITORY / "lib" / "smar"
MAX_MODULE_LINES = 600

#: Layer of each module, by longest matching prefix (docs/architecture.md, "Layers").
LAYERS: dict[str, int] = {
    "smar": 1,
    "smar.vocabulary": 1,
    "smar.errors": 1,
    "smar.config": 2,
    "smar.contracts": 2,
    "smar.frames": 2,
    "smar.predicates": 2,
    "smar.splits": 2,
    "smar.metrics": 2,
    "smar.propensities": 2,
    "smar.storage": 2,
    "smar.lake": 3,
    "smar.sampling": 3,
    "smar.engine": 3,
    "smar.ingest": 4,
    "smar.single_modal": 5,
    "smar.annotation": 6,
    "smar.reranker": 7,
    "smar.replay": 8,
    "smar.cli": 9,
}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


MODULES = {module_name(path): path for path in PACKAGE.rglob("*.py")}


def imports_of(path: Path) -> set[str]:
    """The project modules `path` imports, at module level or inside functions."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        for name in names:
            while name and name not in MODULES:
                name = name.rpartition(".")[0]
            if name.startswith("smar"):
                found.add(name)
    return found


def layer_of(module: str) -> int:
    prefix = module
    while prefix not in LAYERS:
        prefix = prefix.rpartition(".")[0]
    return LAYERS[prefix]


GRAPH = {module: imports_of(path) - {module} for module, path in MODULES.items()}


def test_no_import_cycle() -> None:
    # Given the import graph of lib/smar (a package importing its own submodules excluded)
    graph = {
        module: {target for target in targets if not target.startswith(module + ".")}
        for module, targets in GRAPH.items()
    }
    # When it is searched depth first
    cycles: list[list[str]] = []
    state: dict[str, int] = {}

    def visit(module: str, trail: list[str]) -> None:
        state[module] = 1
        for target in sorted(graph.get(module, ())):
            if state.get(target) == 1:
                cycles.append([*trail[trail.index(target) :], target] if target in trail else [module, target])
            elif state.get(target) is None:
                visit(target, [*trail, target])
        state[module] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    # Then no module reaches itself
    assert cycles == []


def test_no_module_imports_up_a_layer() -> None:
    upward = [
        f"{module} (layer {layer_of(module)}) -> {target} (layer {layer_of(target)})"
        for module, targets in GRAPH.items()
        for target in targets
        if layer_of(target) > layer_of(module)
    ]
    assert upward == []


def test_every_module_is_at_most_600_lines() -> None:
    long = {
        name: count
        for name, path in MODULES.items()
        if (count := len(path.read_text(encoding="utf-8").splitlines())) > MAX_MODULE_LINES
    }
    assert long == {}


def test_every_job_entry_point_is_a_shim_over_a_cli_command() -> None:
    import typer

    from smar.cli import app

    root = typer.main.get_command(app)
    # Every command, a group's spelt with a space ("annotation pull"), as run_job takes them.
    commands = {
        f"{name} {sub}" if sub else name
        for name, command in root.commands.items()  # type: ignore[attr-defined]
        for sub in (getattr(command, "commands", None) or {"": None})
    }
    jobs = sorted((REPOSITORY / "jobs").glob("*.py"))
    assert len(jobs) >= 10
    for job in jobs:
        code = job.read_text(encoding="utf-8")
        tree = ast.parse(code)
        body = [node for node in tree.body if not isinstance(node, ast.Expr)]  # the docstring
        # Given only an import of run_job and the __main__ guard
        assert len(body) <= 3, f"{job.name} holds logic"
        match = re.search(r'run_job\("([a-z]+(?:-[a-z]+)*(?: [a-z]+(?:-[a-z]+)*)?)"\)', code)
        assert match, f"{job.name} does not call run_job"
        # Then it runs an existing command
        assert match.group(1) in commands, f"{job.name} runs unknown command {match.group(1)}"


def test_delta_sql_writes_only_in_the_lakehouse() -> None:
    # SQL inside a string literal (docstrings may name the statements).
    raw_sql = re.compile(r"""f?["'](MERGE INTO|UPDATE delta\.|DELETE FROM delta\.)""")
    offenders = [
        name
        for name, path in MODULES.items()
        if name != "smar.lake" and raw_sql.search(path.read_text(encoding="utf-8"))
    ]
    assert offenders == []


def test_jobs_and_dags_reach_no_sibling_repository() -> None:
    # The repository stands alone: nothing it runs or documents points at the folder beside it.
    sibling = "../" + "shared"
    for folder in ("lib", "jobs", "dags", "scripts", "docs", "benchmarks", "tests"):
        for path in (REPOSITORY / folder).rglob("*"):
            if path.is_file() and path.suffix in (".py", ".md", ".sh", ".yaml") and "data" not in path.parts:
                assert sibling not in path.read_text(encoding="utf-8"), path
    assert sibling not in (REPOSITORY / "README.md").read_text(encoding="utf-8")


def _sources_outside_tests() -> dict[str, str]:
    sources = {name: path.read_text(encoding="utf-8") for name, path in MODULES.items()}
    for folder in ("dags", "jobs", "benchmarks", "scripts"):
        for path in sorted((REPOSITORY / folder).rglob("*.py")):
            sources[str(path.relative_to(REPOSITORY))] = path.read_text(encoding="utf-8")
    return sources


def test_delta_rs_tables_are_opened_only_by_the_lakehouse_helper() -> None:
    # Given every module, DAG, job and benchmark
    # Then only smar.lake calls deltalake's DeltaTable(...) (the helper passes the storage options)
    offenders = [
        name for name, code in _sources_outside_tests().items() if name != "smar.lake" and "DeltaTable(" in code
    ]
    assert offenders == []


def test_no_settings_location_goes_through_pathlib() -> None:
    # A location is a URI (s3://...): Path() on it makes a local folder named "s3:" (issue 13).
    location = r"(settings|get_settings\(\)|SmarSettings\([^)]*\)|read_settings\(\))\.(warehouse|artifacts|reports)"
    through_pathlib = re.compile(rf"Path\(\s*{location}|{location}\s*/|{location}\.resolve\(")
    offenders = [name for name, code in _sources_outside_tests().items() if through_pathlib.search(code)]
    assert offenders == []
