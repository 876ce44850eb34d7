"""Typed settings. Paths, engine and budgets come from here (env `SMAR_*` or CLI), never from
constants inside a job."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

EngineName = Literal["auto", "embedded", "cluster"]


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
