"""Service settings."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

DEFAULT_MODEL_DIR = Path(__file__).resolve().parents[2] / "models" / "policies" / "default" / "v1"
"""The policy committed with the repository (``models/policies/default/v1``)."""


@dataclass(frozen=True)
class Settings:
    """What the app factory needs.

    Attributes:
        model_dir: Folder with ``policy.onnx`` and ``metadata.json``.
        max_sessions: Largest number of sessions accepted per request.
        max_horizon_steps: Longest horizon accepted per request [steps].
    """

    model_dir: Path = DEFAULT_MODEL_DIR
    max_sessions: int = 2000
    max_horizon_steps: int = 672
