"""Judging a trained model on its config's selection or test days, during and after training.

Every score comes from the evaluation protocol's one loop (:func:`smac_rl.optimal.protocol.evaluate_days`):
the model's deterministic policy next to uncontrolled charging and the optimum on each day, on the
config's objective. Runs are ranked by :func:`selection_score`: the median savings capture over
the days (the issue's target statistic), the pooled capture when every day was excluded.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import mlflow
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import BaseCallback

from smac_rl.agents.config import TrainConfig
from smac_rl.agents.policy import Sb3Policy
from smac_rl.core.arrays import ScenarioArrays
from smac_rl.optimal.protocol import DayReference, DaySet, PolicyFactory, ProtocolResult, evaluate_days
from smac_rl.policies import Policy, make_heuristic

HEURISTIC_BASELINES = ("llf", "equal_share", "earliest_deadline_first", "price_threshold")
"""Heuristics a model is reported against (on its card)."""


def heuristic_factory(name: str) -> PolicyFactory:
    """The heuristic ``name`` as an evaluate_days factory (the same policy every day)."""

    def make(_arrays: ScenarioArrays) -> Policy:
        return make_heuristic(name)

    return make


Split = Literal["selection", "test"]


def day_set(config: TrainConfig, split: Split) -> DaySet:
    """The selection or test days of a config, on its template and objective."""
    days = config.selection_days if split == "selection" else config.test_days
    return DaySet(config.template, days.first_day, days.n_days, days.n_seeds, config.objective)


def policy_name(config: TrainConfig) -> str:
    """The model's name in reports: its algorithm and network (``ppo-equivariant``, ``sac``...)."""
    if config.algorithm == "ppo" and config.policy_network == "equivariant":
        return "ppo-equivariant"
    return config.algorithm


def evaluate_model(
    model: BaseAlgorithm,
    config: TrainConfig,
    split: Split = "selection",
    references: Mapping[tuple[str, int], DayReference] | None = None,
    heuristics: tuple[str, ...] = (),
) -> ProtocolResult:
    """Run the model (and, if asked, heuristics) on a split's days next to uncontrolled and the optimum.

    Args:
        model: The trained model (observations normalised by the layout's scales).
        config: Its training config (template, objective, days, connectors).
        split: Which days.
        references: Uncontrolled and the optimum per day, when already known.
        heuristics: Heuristic names run beside the model.

    Returns:
        The protocol's records and summary; the model is named :func:`policy_name`.
    """
    layout = config.layout()

    def learned(_arrays: ScenarioArrays) -> Policy:
        return Sb3Policy(model, layout, policy_name(config))

    factories = {name: heuristic_factory(name) for name in heuristics}
    factories[policy_name(config)] = learned
    return evaluate_days(day_set(config, split), factories, config.eval_time_limit_s, references)


def selection_score(summary: Mapping[str, Any]) -> float:
    """The number runs are ranked by: median savings capture, else pooled, else minus infinity.

    Args:
        summary: One policy's summary row (:func:`smac_rl.optimal.protocol.summarize`).
    """
    for key in ("savings_capture_median_frac", "savings_capture_pooled_frac"):
        value = summary.get(key)
        if value is not None and math.isfinite(float(value)):
            return float(value)
    return -math.inf


def selection_metrics(summary: Mapping[str, Any], prefix: str = "selection") -> dict[str, float]:
    """A policy's summary as MLflow metrics (``None`` values left out)."""
    return {
        f"{prefix}.{key}": float(value)
        for key, value in summary.items()
        if isinstance(value, int | float) and not isinstance(value, bool)
    }


class SelectionCallback(BaseCallback):
    """Scores the selection days every ``eval_every_steps`` steps, logs to MLflow, keeps the best model."""

    def __init__(
        self,
        config: TrainConfig,
        best_model_path: Path,
        references: Mapping[tuple[str, int], DayReference] | None = None,
    ) -> None:
        """Create the callback.

        Args:
            config: The training config (``eval_every_steps`` must be set).
            best_model_path: Where the best model so far is saved (``.zip``).
            references: Uncontrolled and the optimum per selection day (computed on first use if None).
        """
        super().__init__()
        if config.eval_every_steps is None:
            raise ValueError("eval_every_steps: got None; expected a number of steps for the callback")
        self.config, self.best_model_path = config, best_model_path
        self.references: dict[tuple[str, int], DayReference] = dict(references or {})
        self.best_score = -math.inf
        self._next_eval = config.eval_every_steps

    def _on_training_start(self) -> None:
        """Score the starting model too when it is trained (imitated or loaded), so it can be kept.

        The next scores follow every ``eval_every_steps`` from here (steps of a critic warm-up before
        this learning call are not counted again).
        """
        self._next_eval = self.num_timesteps + (self.config.eval_every_steps or 0)
        if self.config.starts_trained:
            self.evaluate()

    def _on_step(self) -> bool:
        if self.num_timesteps >= self._next_eval:
            self._next_eval += self.config.eval_every_steps or 0
            self.evaluate()
        return True

    def evaluate(self) -> float:
        """Evaluate now, log ``selection.*`` at the current step, save the model if it is the best."""
        result = evaluate_model(self.model, self.config, "selection", self.references)
        self.references.update(result.references)
        row = result.summary[policy_name(self.config)]
        score = selection_score(row)
        mlflow.log_metrics(selection_metrics(row), step=self.num_timesteps)
        if score > self.best_score:
            self.best_score = score
            self.model.save(self.best_model_path)
        return score
