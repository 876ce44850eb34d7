"""How every benchmark reports: one `RESULT {json}` line on stdout, appended to a results file."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

RESULTS_DIR = Path(__file__).parent / "results"


def record_result(line: dict[str, Any], results_name: str, *, append: bool = True) -> None:
    """Print `line` as the RESULT line and append it to `benchmarks/results/<results_name>.jsonl`."""
    print("RESULT " + json.dumps(line))
    if not append:
        return
    RESULTS_DIR.mkdir(exist_ok=True)
    with (RESULTS_DIR / f"{results_name}.jsonl").open("a") as handle:
        handle.write(json.dumps(line) + "\n")
