"""Typed settings and the one configuration idiom.

Settings (paths, engine, budgets) come from `SMAR_*` variables or CLI flags, never from constants
inside a job (`SmarSettings`). Every other configuration (models, training, sweeps, replays, the
generator) is a `FrozenConfig`: a frozen pydantic model, validated on construction, refusing
unknown fields, changed by `replace(**changes)` into a validated copy, and stored as JSON with
`model_dump(mode="json")`.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

EngineName = Literal["auto", "embedded", "cluster"]


class FrozenConfig(BaseModel):
    """Base of every configuration object: frozen, unknown fields refused, validated when built."""

    # protected_namespaces=(): fields such as `model_dim` are model sizes, not pydantic internals.
    model_config = ConfigDict(frozen=True, extra="forbid", protected_namespaces=())

    def replace(self, **changes: Any) -> Self:
        """A validated copy with `changes` applied (pydantic's `model_copy` would skip validation)."""
        return self.model_validate({**self.model_dump(), **changes})


class SmarSettings(BaseSettings):
    """Process-wide settings. Every field can be set as `SMAR_<FIELD>` in the environment."""

    model_config = SettingsConfigDict(env_prefix="SMAR_", extra="ignore")

    warehouse: Path = Field(
        default=Path("./warehouse"),
        description="Warehouse root; table `layer.name` lives at <warehouse>/layer/name.",
    )
    engine: EngineName = Field(
        default="auto",
        description="auto: classic Spark when launched by spark-submit, else the embedded engine.",
    )
    artifacts: Path = Field(default=Path("./artifacts"), description="Model artifacts (state_dict, config, metadata).")
    reports: Path = Field(
        default=Path("./reports"),
        description="Human-readable outputs: GX Data Docs, replay reports, plots.",
    )
    max_reject_fraction: float = Field(
        default=0.05,
        ge=0.0,
        le=1.0,
        description="Ingest fails (writing only the rejects) when more than this fraction of rows is refused.",
    )
    seed: int = Field(default=20251016, description="Default seed for generators and training.")
    leftover_retention_hours: float = Field(
        default=24.0,
        ge=0.0,
        description="Raw landing copies and staging tables that a killed run left under the warehouse "
        "(_landing/, _staging/) are removed once older than this; a finished run removes its own at once.",
    )

    def table_path(self, name: str) -> Path:
        """Absolute path of table `layer.name`."""
        layer, _, table = name.partition(".")
        if not layer or not table or "." in table:
            raise ValueError(f"table name must look like 'layer.name', got {name!r}")
        return (self.warehouse / layer / table).resolve()


@lru_cache(maxsize=1)
def get_settings() -> SmarSettings:
    """Settings read once per process from the environment."""
    return SmarSettings()
