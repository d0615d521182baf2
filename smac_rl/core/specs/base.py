"""The pydantic base of every spec: unknown keys rejected, frozen, no NaN or infinity."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class StrictModel(BaseModel):
    """Base model of the domain specs.

    Unknown keys are rejected (``extra="forbid"``), instances are immutable, and NaN or
    infinite floats are refused, so a spec that parsed is safe to hand to every component.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False, validate_default=True)
