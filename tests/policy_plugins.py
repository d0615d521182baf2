"""Policies for ``smac evaluate --policy module:Class`` in tests/test_cli_policies.py, good and bad."""

from __future__ import annotations

import numpy as np

from smac_rl.core.projection import ev_power_bounds
from smac_rl.core.state import Setpoints, StepContext


class MaxRate:
    """Every connector at its upper bound, storage idle: uncontrolled charging under another name."""

    name = "max_rate"

    def act(self, context: StepContext) -> Setpoints:
        """The upper bounds of the box stage [kW]."""
        _, upper = ev_power_bounds(context)
        return Setpoints(ev_power_kw=upper, storage_power_kw=np.zeros(context.batch_size))


class NotAPolicy:
    """Has a name but no ``act``."""

    name = "not_a_policy"


class NeedsArguments:
    """A policy that cannot be made without arguments."""

    def __init__(self, scale_frac: float) -> None:
        self.scale_frac = scale_frac

    name = "needs_arguments"

    def act(self, context: StepContext) -> Setpoints:
        """Scaled upper bounds [kW]."""
        _, upper = ev_power_bounds(context)
        return Setpoints(ev_power_kw=upper * self.scale_frac, storage_power_kw=np.zeros(context.batch_size))


NOT_A_CLASS = 3
"""Neither a class nor callable."""
