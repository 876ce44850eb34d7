"""Typed settings and the one configuration idiom.

Settings (paths, engine, budgets) come from `SMAR_*` variables or CLI flags, never from constants
inside a job (`SmarSettings`). Every other configuration (models, training, sweeps, replays, the
generator) is a `FrozenConfig`: a frozen pydantic model, validated on construction, refusing
unknown fields, changed by `replace(**changes)` into a validated copy, and stored as JSON with
`model_dump(mode="json")`.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from smar.errors import InputRefused
from smar.storage.uris import join, normalize_location

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

    # Locations are URIs (smar.storage.uris): a local path becomes its absolute file: URI once,
    # when the settings are read; s3://, s3a://, gs://, abfss:// are kept; a mangled value is refused.
    warehouse: str = Field(
        default="./warehouse",
        validate_default=True,
        description="Warehouse root URI; table `layer.name` lives at <warehouse>/layer/name.",
    )
    engine: EngineName = Field(
        default="auto",
        description="auto: classic Spark when launched by spark-submit, else the embedded engine.",
    )
    artifacts: str = Field(
        default="./artifacts", validate_default=True, description="Model artifacts (state_dict, config, metadata)."
    )
    reports: str = Field(
        default="./reports",
        validate_default=True,
        description="Human-readable outputs: GX Data Docs, replay reports, plots, annotation exports.",
    )
    max_reject_fraction: float = Field(
        default=0.05,
        ge=0.0,
        le=1.0,
        description="Ingest fails (writing only the rejects) when more than this fraction of rows is refused.",
    )
    seed: int = Field(default=20251016, description="Default seed for generators and training.")
    ranker_position_debias: Literal["none", "inverse_propensity"] = Field(
        default="none",
        description="How train-single-modal corrects the clicks' position bias: none, or "
        "inverse_propensity (each pair weighted by 1 / P(examined) of its clicked item's slot, the "
        "examination curve fitted on the window's randomised exploration traffic).",
    )
    max_training_queries: int = Field(
        default=20_000,
        ge=1,
        description="Single-modal training reads at most this many queries of each split it uses "
        "(single_modal_train, test) from its window: a deterministic hash sample when there are more "
        "(smar.sampling), so the trainer's memory is bounded by the sample, not the window.",
    )
    max_replay_queries: int = Field(
        default=10_000,
        ge=1,
        description="The offline replay evaluates at most this many queries of its window and splits "
        "(a deterministic hash sample, chosen in Spark, when there are more); the report says so.",
    )
    max_evaluation_queries: int = Field(
        default=5_000,
        ge=1,
        description="The page reranker evaluates on at most this many test queries of its window "
        "(a deterministic hash sample when there are more); its labelled pages are always all read.",
    )
    leftover_retention_hours: float = Field(
        default=24.0,
        ge=0.0,
        description="Raw landing copies and staging tables that a killed run left under the warehouse "
        "(_landing/, _staging/) are removed once older than this; a finished run removes its own at once.",
    )

    @field_validator("warehouse", "artifacts", "reports", mode="before")
    @classmethod
    def _location(cls, value: Any, info: Any) -> str:
        return normalize_location(value, what=f"SMAR_{str(info.field_name).upper()}")

    def table_uri(self, name: str) -> str:
        """URI of table `layer.name` under the warehouse root."""
        layer, _, table = name.partition(".")
        if not layer or not table or "." in table:
            raise ValueError(f"table name must look like 'layer.name', got {name!r}")
        return join(self.warehouse, layer, table)


def read_settings() -> SmarSettings:
    """Settings read now from the environment; a refused value (a mangled location, a fraction
    above 1) is `InputRefused` (exit code 2) naming the variable, not a pydantic traceback."""
    try:
        return SmarSettings()
    except ValidationError as error:
        reasons = "; ".join(
            str(detail.get("ctx", {}).get("error") or detail["msg"]) for detail in error.errors(include_url=False)
        )
        raise InputRefused(f"settings refused: {reasons}") from None


@lru_cache(maxsize=1)
def get_settings() -> SmarSettings:
    """Settings read once per process from the environment (`read_settings`)."""
    return read_settings()
