"""More classic schedulers: equal share, earliest deadline first and cheapest hours.

Each has the interface of a trained agent (:class:`smac_rl.policies.protocol.Policy`), charges
only (no V2G), leaves the storage idle and shares the site through
:mod:`smac_rl.policies.allocation`, so its output already lies in the projection's feasible set.
"""

from __future__ import annotations

import numpy as np

from smac_rl.core.arrays import ScenarioArrays
from smac_rl.core.arraytypes import FloatArray
from smac_rl.core.errors import SmacError
from smac_rl.core.projection import ev_power_bounds
from smac_rl.core.state import Setpoints, StepContext
from smac_rl.policies.allocation import (
    allocate_in_order,
    energy_wanted_kwh,
    laxity_h,
    share_equally,
    wants_charge,
)

STEP_COUNT_TOL = 1e-9
"""Slack on ``energy_wanted / energy_per_step`` before rounding up, so float noise adds no step."""


class EqualShare:
    """Equal share of the site's power among the EVs that still want energy (water-filling).

    The site headroom ``import_limit - base_load + pv_available`` [kW] is shared equally among
    those EVs; an EV that reaches its own bound (upper bound of
    :func:`smac_rl.core.projection.ev_power_bounds`) stops there and what it leaves goes to the
    others, equally again. Charger ratings and feeder phase limits cap the share of the EVs they
    feed the same way (max-min fairness, :func:`smac_rl.policies.allocation.fill_equally`). Under
    the minimum charging current, an EV whose share falls below it (and is not a final top-up) is
    left out, the one with the most laxity first, and the others share again. No discharging;
    storage idle.
    """

    name = "equal_share"

    def act(self, context: StepContext) -> Setpoints:
        """Share the headroom equally (see the class docstring)."""
        _, upper = ev_power_bounds(context)
        is_wanting = wants_charge(context, upper)
        power = share_equally(context, np.where(is_wanting, upper, 0.0), laxity_h(context, is_wanting))
        return Setpoints(ev_power_kw=power, storage_power_kw=np.zeros(context.batch_size))


class EarliestDeadlineFirst:
    """Earliest deadline first under the grid limit, charger ratings and feeder phase limits.

    EVs are served in order of departure (``n_steps_to_departure``, ties by connector index),
    each at the most that its bounds and the remaining site, charger and phase headroom allow, as
    in :class:`smac_rl.policies.heuristics.LeastLaxityFirst`; an allocation below the minimum
    charging current is dropped unless it is a final top-up. No discharging; storage idle.
    """

    name = "earliest_deadline_first"

    def act(self, context: StepContext) -> Setpoints:
        """Allocate power in departure order (see the class docstring)."""
        _, upper = ev_power_bounds(context)
        is_wanting = wants_charge(context, upper)
        deadline = np.where(is_wanting, context.ev.n_steps_to_departure, np.iinfo(np.int64).max)
        order = np.argsort(deadline, axis=1, kind="stable")
        power = allocate_in_order(context, order, np.where(is_wanting, upper, 0.0))
        return Setpoints(ev_power_kw=power, storage_power_kw=np.zeros(context.batch_size))


class PriceThreshold:
    """Cheapest hours: each EV charges at full power in the cheapest steps that still meet its departure.

    At step ``t`` an EV that still wants ``E`` [kWh] needs

        ``k = ceil(E / (max_charge_kw * charge_efficiency_frac * step_h))``

    steps at full power. Its window is the steps ``t .. t + w - 1`` with
    ``w = min(n_steps_to_departure, n_steps - t)`` (departure, cut at the horizon). It asks for its
    full bound (upper bound of :func:`smac_rl.core.projection.ev_power_bounds`) in this step when
    this step is among the ``k`` cheapest of the window by import price [EUR/kWh], ties going to
    the earlier step, i.e. when

        ``#{u in window : price[u] < price[t]} < k``,

    and nothing otherwise. The rule is re-evaluated every step with what is still wanted, so once
    only ``k`` steps are left the EV charges in each of them: with no site, charger or phase limit
    binding (and no taper) every target reachable at full power within the horizon is met. The
    requests are then served in laxity order under the site, charger and phase headroom, as in
    :class:`smac_rl.policies.heuristics.LeastLaxityFirst` (an allocation below the minimum charging
    current is dropped unless it is a final top-up). No discharging; storage idle.

    Call :meth:`begin_episode` with the scenario first: it reads the price series over the horizon.
    The batch rows are then rollouts of that scenario at one step; a batch of episodes out of step
    (``step_index == -1``) is refused.
    """

    name = "price_threshold"

    def __init__(self) -> None:
        """An unbound policy; :meth:`begin_episode` gives it the prices."""
        self._import_price_eur_per_kwh: FloatArray | None = None

    def begin_episode(self, arrays: ScenarioArrays) -> None:
        """Read the import price over the horizon [EUR/kWh] of the scenario to come."""
        self._import_price_eur_per_kwh = np.asarray(arrays.series.import_price_eur_per_kwh, dtype=np.float64)

    def act(self, context: StepContext) -> Setpoints:
        """Charge in the cheapest steps before departure (see the class docstring).

        Raises:
            SmacError: Before :meth:`begin_episode`, or past the horizon of its scenario.
        """
        prices = self._import_price_eur_per_kwh
        t = context.step_index
        if prices is None:
            raise SmacError("price_threshold: got a step before begin_episode(arrays); expected that first")
        if not 0 <= t < prices.shape[0]:
            raise SmacError(
                f"step_index: got {t}; expected a step of the {prices.shape[0]} of the scenario given "
                "to begin_episode"
            )
        ev = context.ev
        _, upper = ev_power_bounds(context)
        is_wanting = wants_charge(context, upper)
        step_kwh = ev.max_charge_kw * ev.charge_efficiency_frac * context.step_h
        n_steps_needed = np.ceil(
            np.divide(energy_wanted_kwh(context), step_kwh, out=np.zeros_like(step_kwh), where=step_kwh > 0.0)
            - STEP_COUNT_TOL
        )
        ahead = prices[t:]
        n_cheaper_within = np.concatenate([[0], np.cumsum(ahead < prices[t])])
        window_steps = np.clip(ev.n_steps_to_departure, 1, ahead.shape[0])
        is_cheap = n_cheaper_within[window_steps] < n_steps_needed
        order = np.argsort(laxity_h(context, is_wanting), axis=1, kind="stable")
        power = allocate_in_order(context, order, np.where(is_wanting & is_cheap, upper, 0.0))
        return Setpoints(ev_power_kw=power, storage_power_kw=np.zeros(context.batch_size))
