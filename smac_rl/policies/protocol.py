"""The policy protocol: site state in, setpoints out. Heuristics, MPC and learned policies share it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol, runtime_checkable

from smac_rl.core.arrays import ScenarioArrays
from smac_rl.core.scoring import Kpis, score
from smac_rl.core.simulate import Trace, simulate
from smac_rl.core.state import Setpoints, StepContext


@runtime_checkable
class Policy(Protocol):
    """Anything that maps a step's site state to setpoints.

    The caller passes the output through :func:`smac_rl.core.projection.project`; a policy may
    return infeasible setpoints.
    """

    @property
    def name(self) -> str:
        """Name shown in reports."""
        ...

    def act(self, context: StepContext) -> Setpoints:
        """Setpoints for the step (batch axis as in the context).

        Args:
            context: Site state at the step's start.

        Returns:
            Raw setpoints, before the projection.
        """
        ...


@runtime_checkable
class EpisodePolicy(Policy, Protocol):
    """A policy that needs the scenario before the first step (price outlook, local time...)."""

    def begin_episode(self, arrays: ScenarioArrays) -> None:
        """Prepare for an episode of ``arrays``."""
        ...


def run_policy(
    arrays: ScenarioArrays, policy: Policy, on_step: Callable[[int], None] | None = None
) -> tuple[Trace, Kpis]:
    """Run one episode of a policy and score it.

    Args:
        arrays: The compiled scenario.
        policy: The policy.
        on_step: Called with each finished step's index (progress reporting).

    Returns:
        The trace and its KPIs.
    """
    if isinstance(policy, EpisodePolicy):
        policy.begin_episode(arrays)
    trace = simulate(arrays, policy.act, on_step)
    return trace, score(arrays, trace)
