"""Classic heuristics, with the same interface as a trained agent."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from smac_rl.core.errors import SmacError
from smac_rl.core.projection import ev_power_bounds
from smac_rl.core.state import Setpoints, StepContext
from smac_rl.policies.allocation import allocate_in_order, laxity_h, wants_charge
from smac_rl.policies.protocol import Policy
from smac_rl.policies.schedulers import EarliestDeadlineFirst, EqualShare, PriceThreshold


class Uncontrolled:
    """Every connector at its maximum rate (EV, connector, taper, energy still wanted); storage idle.

    The projection then shares charger, phase and grid limits. This is the reference of
    ``savings_capture_frac``.
    """

    name = "uncontrolled"

    def act(self, context: StepContext) -> Setpoints:
        """Maximum rate everywhere (see the class docstring)."""
        _, upper = ev_power_bounds(context)
        return Setpoints(ev_power_kw=upper, storage_power_kw=np.zeros(context.batch_size))


class LeastLaxityFirst:
    """Least laxity first under the grid limit, charger ratings and feeder phase limits.

    Laxity of a session [h]: ``hours_to_departure - energy_still_wanted / (max_charge_kw * eta)``,
    the slack it has if charged at full power from now on. EVs are served in order of increasing
    laxity, each at the most that its bounds and the remaining site, charger and phase headroom
    allow (the site headroom is ``import_limit - base_load + pv_available``); an allocation below
    the minimum charging current is dropped unless it is a final top-up. No discharging; storage idle.
    """

    name = "least_laxity_first"

    def act(self, context: StepContext) -> Setpoints:
        """Allocate power in laxity order (see the class docstring)."""
        _, upper = ev_power_bounds(context)
        is_wanting = wants_charge(context, upper)
        order = np.argsort(laxity_h(context, is_wanting), axis=1, kind="stable")
        power = allocate_in_order(context, order, np.where(is_wanting, upper, 0.0))
        return Setpoints(ev_power_kw=power, storage_power_kw=np.zeros(context.batch_size))


HEURISTICS: dict[str, Callable[[], Policy]] = {
    Uncontrolled.name: Uncontrolled,
    LeastLaxityFirst.name: LeastLaxityFirst,
    EqualShare.name: EqualShare,
    EarliestDeadlineFirst.name: EarliestDeadlineFirst,
    PriceThreshold.name: PriceThreshold,
}
"""Heuristics by name."""

ALIASES: dict[str, str] = {
    "llf": LeastLaxityFirst.name,
    "round_robin": EqualShare.name,
    "edf": EarliestDeadlineFirst.name,
    "cheapest_hours": PriceThreshold.name,
}
"""Short names accepted wherever a heuristic name is."""


def heuristic_choices() -> list[str]:
    """Every accepted name, each heuristic followed by its aliases (for help texts and errors)."""
    return [
        choice
        for name in HEURISTICS
        for choice in (name, *(alias for alias, target in ALIASES.items() if target == name))
    ]


def make_heuristic(name: str) -> Policy:
    """Build a heuristic by name or alias.

    Args:
        name: A key of :data:`HEURISTICS` or :data:`ALIASES`.

    Returns:
        The policy.

    Raises:
        SmacError: For an unknown name, listing the known ones.
    """
    factory = HEURISTICS.get(ALIASES.get(name, name))
    if factory is None:
        known = ", ".join(heuristic_choices())
        raise SmacError(f"policy: got {name!r}; expected one of {known}")
    return factory()
