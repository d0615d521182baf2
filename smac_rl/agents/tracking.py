"""MLflow tracking: provenance of every run and SB3's logger writing metrics by step."""

from __future__ import annotations

from typing import Any

import mlflow
from stable_baselines3.common.logger import KVWriter

from smac_rl.agents.provenance import DEFAULT_TRACKING_URI, data_bundle_sha256, git_sha, provenance_tags

__all__ = ["DEFAULT_TRACKING_URI", "MlflowWriter", "data_bundle_sha256", "git_sha", "provenance_tags"]


class MlflowWriter(KVWriter):
    """Writes SB3's scalar logs to the active MLflow run, by timestep."""

    def write(self, key_values: dict[str, Any], key_excluded: dict[str, Any], step: int = 0) -> None:
        """Log every numeric value (SB3 calls this at each dump)."""
        metrics = {
            key.replace("/", "."): float(value)
            for key, value in key_values.items()
            if isinstance(value, int | float) and not isinstance(value, bool)
        }
        if metrics:
            mlflow.log_metrics(metrics, step=step)

    def close(self) -> None:
        """Nothing to close: the run is closed by its owner."""
