"""A trained stable-baselines3 policy behind the common policy protocol."""

from __future__ import annotations

import numpy as np
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.policies import BasePolicy

from smac_rl.core.arrays import ScenarioArrays
from smac_rl.core.observation import ObservationLayout
from smac_rl.core.state import Setpoints, StepContext


class Sb3Policy:
    """Deterministic actions of an SB3 model on the layout's normalised observations."""

    def __init__(
        self, model: BaseAlgorithm | BasePolicy, layout: ObservationLayout, name: str = "ppo"
    ) -> None:
        """Wrap a trained model.

        Args:
            model: The SB3 model (or its policy), trained on observations divided by ``layout.scales()``.
            layout: The observation and action layout it was trained with.
            name: Name in reports.
        """
        self.model, self.layout, self.name = model, layout, name
        self._scales = layout.scales()
        self._arrays: ScenarioArrays | None = None

    def begin_episode(self, arrays: ScenarioArrays) -> None:
        """Remember the scenario (price outlook and local time enter the observation)."""
        self._arrays = arrays

    def act(self, context: StepContext) -> Setpoints:
        """Setpoints from the model's deterministic action."""
        if self._arrays is None:
            raise RuntimeError("Sb3Policy: call begin_episode(arrays) first (run_policy does)")
        observation = self.layout.observe(self._arrays, context) / self._scales
        action, _ = self.model.predict(observation, deterministic=True)
        return self.layout.setpoints(context, np.asarray(action, dtype=np.float64))
