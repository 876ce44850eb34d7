"""SQL predicate text for table slices and conditional updates: the only SQL the code writes by
hand, kept apart from `smar.lake` (which runs it) so that each stays small."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def sql_literal(value: Any) -> str:
    """A SQL literal for a predicate value (strings quoted and escaped)."""
    if isinstance(value, str):
        return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    raise TypeError(f"unsupported literal type {type(value).__name__} for {value!r}")


def predicate(slice_values: dict[str, Any]) -> str:
    """`a = 'x' AND b = 2` for a table slice."""
    if not slice_values:
        raise ValueError("a slice needs at least one column = value")
    return " AND ".join(f"`{column}` = {sql_literal(value)}" for column, value in slice_values.items())


def changed_condition(values: Mapping[str, Any], *, alias: str = "") -> str:
    """SQL that is true where some column differs from its value (null-safe): `NOT (a <=> 'x') OR ...`."""
    prefix = f"{alias}." if alias else ""
    return " OR ".join(f"NOT ({prefix}`{column}` <=> {sql_literal(value)})" for column, value in values.items())
