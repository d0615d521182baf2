"""Classic heuristics, with the same interface as a trained agent."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from smac_rl.core.errors import SmacError
from smac_rl.core.projection import below_minimum_current, ev_power_bounds
from smac_rl.core.state import Setpoints, StepContext
from smac_rl.policies.protocol import Policy


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
        ev, site, exo, dt = context.ev, context.site, context.exo, context.step_h
        batch, n_connectors = ev.energy_kwh.shape
        _, upper = ev_power_bounds(context)
        need_kwh = np.maximum(ev.target_energy_kwh - ev.energy_kwh, 0.0)
        rate_kw = ev.max_charge_kw * ev.charge_efficiency_frac
        wants = ev.is_present & (need_kwh > 0.0) & (upper > 0.0)
        laxity_h = np.where(
            wants, ev.n_steps_to_departure * dt - need_kwh / np.where(rate_kw > 0, rate_kw, 1.0), np.inf
        )
        order = np.argsort(laxity_h, axis=1, kind="stable")
        rows = np.arange(batch)
        site_headroom = np.maximum(exo.import_limit_kw - exo.base_load_kw + exo.pv_available_kw, 0.0)
        charger_headroom = np.broadcast_to(site.charger_max_kw, (batch, site.n_chargers)).copy()
        phase_headroom = np.full((batch, 3), site.charging_phase_current_limit_a)
        power = np.zeros((batch, n_connectors))
        for rank in range(n_connectors):
            c = order[:, rank]
            k = site.connector_charger_index[c]
            a_per_kw = site.connector_phase_a_per_kw[c]
            phase_cap = np.where(
                a_per_kw > 0, phase_headroom / np.where(a_per_kw > 0, a_per_kw, 1.0), np.inf
            ).min(axis=1)
            alloc = np.minimum.reduce([upper[rows, c], site_headroom, charger_headroom[rows, k], phase_cap])
            alloc = np.where(wants[rows, c], np.maximum(alloc, 0.0), 0.0)
            power[rows, c] = alloc
            alloc = np.where(below_minimum_current(context, power)[rows, c], 0.0, alloc)
            power[rows, c] = alloc
            site_headroom = site_headroom - alloc
            charger_headroom[rows, k] -= alloc
            phase_headroom = phase_headroom - alloc[:, None] * a_per_kw
        return Setpoints(ev_power_kw=power, storage_power_kw=np.zeros(batch))


HEURISTICS: dict[str, Callable[[], Policy]] = {
    Uncontrolled.name: Uncontrolled,
    LeastLaxityFirst.name: LeastLaxityFirst,
}
"""Heuristics by name."""

ALIASES: dict[str, str] = {"llf": LeastLaxityFirst.name}
"""Short names accepted wherever a heuristic name is."""


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
        known = ", ".join([*HEURISTICS, *ALIASES])
        raise SmacError(f"policy: got {name!r}; expected one of {known}")
    return factory()
