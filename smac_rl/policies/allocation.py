"""How the heuristics share the site's power: one ordered allocation and one equal (water-filling) share.

Both respect the same limits, so their output passes the safety projection unchanged: each EV's box
(:func:`smac_rl.core.projection.ev_power_bounds`, passed in as a request or cap), the site headroom
``import_limit - base_load + pv_available`` (:func:`site_headroom_kw`), the charger ratings, the
AC feeder phase current limits and the minimum charging current (an allocation below it is dropped
unless it is a final top-up, :func:`smac_rl.core.projection.below_minimum_current`). Every array has
the leading batch axis ``B`` of the context; the site may be one site for every row or one per row.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from smac_rl.core.arraytypes import BoolArray, FloatArray, IntArray
from smac_rl.core.physics import FEASIBILITY_TOL_KW
from smac_rl.core.projection import TOP_UP_TOL_KW, below_minimum_current, energy_headroom_kw
from smac_rl.core.state import StepContext

FILL_TOL_KW = 1e-9
"""Headroom [kW] (or current [A]) below which a limit counts as used up while sharing equally."""


@dataclass(frozen=True)
class _Limits:
    """The site's sharing limits with the batch axis spelled out (one site broadcast, or one per row).

    Attributes:
        charger_index: Charger of each connector, ``(B, C)``.
        charger_max_kw: Charger ratings [kW], ``(B, K)``.
        phase_a_per_kw: Current on each feeder phase per kW at each connector [A/kW], ``(B, C, 3)``.
        phase_limit_a: Feeder phase current limits [A], ``(B, 3)`` (``inf`` when none).
    """

    charger_index: IntArray
    charger_max_kw: FloatArray
    phase_a_per_kw: FloatArray
    phase_limit_a: FloatArray

    @staticmethod
    def of(context: StepContext) -> _Limits:
        site = context.site
        batch, n_connectors = context.ev.energy_kwh.shape
        limit_a = np.asarray(site.charging_phase_current_limit_a, dtype=np.float64)[..., None]
        return _Limits(
            charger_index=np.broadcast_to(site.connector_charger_index, (batch, n_connectors)),
            charger_max_kw=np.broadcast_to(site.charger_max_kw, (batch, site.n_chargers)).astype(np.float64),
            phase_a_per_kw=np.broadcast_to(site.connector_phase_a_per_kw, (batch, n_connectors, 3)),
            phase_limit_a=np.broadcast_to(limit_a, (batch, 3)).astype(np.float64),
        )


def site_headroom_kw(context: StepContext) -> FloatArray:
    """Power the EVs may draw together: ``max(import_limit - base_load + pv_available, 0)`` [kW], ``(B,)``."""
    exo = context.exo
    return np.maximum(exo.import_limit_kw - exo.base_load_kw + exo.pv_available_kw, 0.0)


def energy_wanted_kwh(context: StepContext) -> FloatArray:
    """Stored energy each EV still wants before it leaves [kWh], ``(B, C)``; 0 where none is wanted."""
    ev = context.ev
    return np.where(ev.is_present, np.maximum(ev.target_energy_kwh - ev.energy_kwh, 0.0), 0.0)


def wants_charge(context: StepContext, upper_kw: FloatArray) -> BoolArray:
    """EVs present that want energy and may charge this step, ``(B, C)``.

    Args:
        context: State at the step's start.
        upper_kw: Upper bounds of :func:`smac_rl.core.projection.ev_power_bounds` [kW], ``(B, C)``.

    Returns:
        True where an EV is plugged in, wants energy and has a positive upper bound.
    """
    return context.ev.is_present & (energy_wanted_kwh(context) > 0.0) & (upper_kw > 0.0)


def laxity_h(context: StepContext, is_wanting: BoolArray) -> FloatArray:
    """Slack of each session if charged at full power from now on [h], ``(B, C)``.

    ``laxity = n_steps_to_departure * step_h - energy_wanted / (max_charge_kw * charge_efficiency)``.

    Args:
        context: State at the step's start.
        is_wanting: EVs to rank, ``(B, C)``; the others get ``inf`` (served last).

    Returns:
        The laxity [h]; ``inf`` where ``is_wanting`` is False.
    """
    ev = context.ev
    rate_kw = ev.max_charge_kw * ev.charge_efficiency_frac
    hours_needed_h = energy_wanted_kwh(context) / np.where(rate_kw > 0.0, rate_kw, 1.0)
    return np.where(is_wanting, ev.n_steps_to_departure * context.step_h - hours_needed_h, np.inf)


def allocate_in_order(context: StepContext, order: IntArray, request_kw: FloatArray) -> FloatArray:
    """Serve the connectors one after the other, each as much of its request as the headroom left allows.

    The connector of rank ``r`` in ``order`` gets ``min(request, site headroom, charger headroom,
    phase headroom / A per kW)`` of what the connectors ranked before it left; an allocation below
    the minimum charging current that is not a final top-up is dropped (its headroom stays for the
    next ones).

    Args:
        context: State at the step's start.
        order: Connector indices in order of service, ``(B, C)`` (e.g. an ``argsort`` of a priority).
        request_kw: The most each connector asks for [kW], ``(B, C)``, within its box bounds; 0 for none.

    Returns:
        Charging setpoints [kW], ``(B, C)``, ``0 <= p <= request``, within every site limit.
    """
    batch, n_connectors = request_kw.shape
    limits = _Limits.of(context)
    if batch == 1:  # one rollout (the service, evaluation): Python floats, no NumPy call per connector
        power_one_kw = _allocate_one_row(context, limits, order, request_kw)
        if power_one_kw is not None:
            return power_one_kw
    rows = np.arange(batch)
    site_left_kw = site_headroom_kw(context)
    charger_left_kw, phase_left_a = limits.charger_max_kw, limits.phase_limit_a
    power_kw = np.zeros((batch, n_connectors))
    for rank in range(n_connectors):
        c = order[:, rank]
        k = limits.charger_index[rows, c]
        a_per_kw = limits.phase_a_per_kw[rows, c]
        phase_room_kw = _room_kw(phase_left_a, a_per_kw)
        limits_kw = [request_kw[rows, c], site_left_kw, charger_left_kw[rows, k], phase_room_kw]
        alloc_kw = np.maximum(np.minimum.reduce(limits_kw), 0.0)
        power_kw[rows, c] = alloc_kw
        alloc_kw = np.where(below_minimum_current(context, power_kw)[rows, c], 0.0, alloc_kw)
        power_kw[rows, c] = alloc_kw
        site_left_kw = site_left_kw - alloc_kw
        charger_left_kw[rows, k] -= alloc_kw
        phase_left_a = phase_left_a - alloc_kw[:, None] * a_per_kw
    return power_kw


def _allocate_one_row(
    context: StepContext, limits: _Limits, order: IntArray, request_kw: FloatArray
) -> FloatArray | None:
    """:func:`allocate_in_order` for a batch of one row, on Python floats.

    The batched loop's float64 operations in its order, so equal setpoints, without a dozen NumPy
    calls on one-element arrays per connector (a 50-connector step took about 1 ms that way, most of
    a 50-session rollout). Subtractions that change nothing (an allocation of 0, a phase the
    connector does not draw on) are skipped. Whether an allocation is below the minimum current is
    predicted per connector from the thresholds of
    :func:`smac_rl.core.projection.below_minimum_current`; every prediction is then checked at once
    against that function on the allocations before the rule, so the projection's rule stays the
    one authority.

    Args:
        context: State at the step's start, batch size 1.
        limits: The site's sharing limits of ``context``.
        order: Connector indices in order of service, ``(1, C)``.
        request_kw: The most each connector asks for [kW], ``(1, C)``.

    Returns:
        The setpoints [kW], ``(1, C)``; None (the caller runs the batched loop) when an input is NaN
        or a prediction differs from the projection's rule.
    """
    n_connectors = request_kw.shape[1]
    minimum_kw = context.ev.min_charge_kw - FEASIBILITY_TOL_KW
    top_up_kw = energy_headroom_kw(context) - TOP_UP_TOL_KW
    site_left_kw = float(site_headroom_kw(context)[0])
    inputs = (
        request_kw,
        minimum_kw,
        top_up_kw,
        limits.charger_max_kw,
        limits.phase_a_per_kw,
        limits.phase_limit_a,
    )
    if np.isnan(site_left_kw) or any(np.isnan(values).any() for values in inputs):
        return None
    requests_kw, minimums_kw, top_ups_kw = (
        request_kw[0].tolist(),
        minimum_kw[0].tolist(),
        top_up_kw[0].tolist(),
    )
    charger_of = limits.charger_index[0].tolist()
    charger_left_kw = limits.charger_max_kw[0].tolist()
    phase_left_a = limits.phase_limit_a[0].tolist()
    # The phases each connector draws on: (phase, A per kW > 0). A phase it does not draw on loses
    # alloc * 0.0 = 0.0 in the batched loop, which leaves its headroom as it is.
    draws = [[(q, a) for q, a in enumerate(row) if a > 0.0] for row in limits.phase_a_per_kw[0].tolist()]
    power_kw = [0.0] * n_connectors
    tried_kw = [0.0] * n_connectors  # each allocation before the minimum-current rule
    is_dropped = [False] * n_connectors
    for c in order[0].tolist():
        k = charger_of[c]
        phase_room_kw = math.inf
        for q, a_per_kw in draws[c]:
            phase_room_kw = min(phase_room_kw, phase_left_a[q] / a_per_kw)
        alloc_kw = max(min(requests_kw[c], site_left_kw, charger_left_kw[k], phase_room_kw), 0.0)
        tried_kw[c] = alloc_kw
        if 0.0 < alloc_kw < minimums_kw[c] and not alloc_kw >= top_ups_kw[c]:
            is_dropped[c], alloc_kw = True, 0.0
        power_kw[c] = alloc_kw
        if alloc_kw != 0.0:  # subtracting 0.0 changes no headroom
            site_left_kw = site_left_kw - alloc_kw
            charger_left_kw[k] -= alloc_kw
            for q, a_per_kw in draws[c]:
                phase_left_a[q] = phase_left_a[q] - alloc_kw * a_per_kw
    if not np.array_equal(below_minimum_current(context, np.array([tried_kw]))[0], is_dropped):
        return None
    return np.array([power_kw])


def _room_kw(left: FloatArray, per_kw: FloatArray) -> FloatArray:
    """Power that fits the tightest of several limits [kW], over the last axis.

    Args:
        left: Headroom left on each limit (kW or A), ``(B, L)``.
        per_kw: What one kW draws on each limit (1/1 or A/kW), ``(B, L)``.

    Returns:
        ``min over limits drawn on of left / per_kw``, ``inf`` where none is drawn on, ``(B,)``.
    """
    draws = per_kw > 0.0
    return np.asarray(np.where(draws, left / np.where(draws, per_kw, 1.0), np.inf).min(axis=-1))


def fill_equally(context: StepContext, cap_kw: FloatArray) -> FloatArray:
    """Max-min fair share of the site, charger and phase headroom (water-filling), without minimum current.

    Every connector with a positive cap rises at the same rate from 0; a connector stops when it
    reaches its cap or when a limit it draws on (site, its charger, a phase it uses) is used up, and
    the others go on rising with what is left. So an EV capped below the equal share releases its
    surplus to the others: two EVs under a 10 kW limit get 5 and 5, or 3 and 7 when one is capped
    at 3 kW.

    Args:
        context: State at the step's start.
        cap_kw: The most each connector may draw [kW], ``(B, C)``; 0 for none.

    Returns:
        Charging setpoints [kW], ``(B, C)``, ``0 <= p <= cap``, within every site limit.
    """
    batch, n_connectors = cap_kw.shape
    limits = _Limits.of(context)
    membership = (limits.charger_index[:, :, None] == np.arange(limits.charger_max_kw.shape[1])).astype(
        np.float64
    )
    a_per_kw = limits.phase_a_per_kw
    site_left_kw = site_headroom_kw(context)
    charger_left_kw, phase_left_a = limits.charger_max_kw, limits.phase_limit_a
    power_kw = np.zeros((batch, n_connectors))
    is_rising = cap_kw > FILL_TOL_KW
    for _ in range(n_connectors):  # every round stops at least one connector
        if not is_rising.any():
            break
        rising = is_rising.astype(np.float64)
        n_rising = rising.sum(axis=1)
        own_kw = np.where(is_rising, cap_kw - power_kw, np.inf).min(axis=1)
        site_kw = site_left_kw / np.maximum(n_rising, 1.0)
        charger_kw = _room_kw(charger_left_kw, np.einsum("bc,bck->bk", rising, membership))
        phase_kw = _room_kw(phase_left_a, np.einsum("bc,bcp->bp", rising, a_per_kw))
        step_kw = np.maximum(np.minimum.reduce([own_kw, site_kw, charger_kw, phase_kw]), 0.0)
        step_kw = np.where(n_rising > 0.0, step_kw, 0.0)
        rise_kw = rising * step_kw[:, None]
        power_kw = power_kw + rise_kw
        site_left_kw = site_left_kw - rise_kw.sum(axis=1)
        charger_left_kw = charger_left_kw - np.einsum("bc,bck->bk", rise_kw, membership)
        phase_left_a = phase_left_a - np.einsum("bc,bcp->bp", rise_kw, a_per_kw)
        is_full = power_kw >= cap_kw - FILL_TOL_KW
        is_charger_used_up = np.take_along_axis(charger_left_kw <= FILL_TOL_KW, limits.charger_index, axis=1)
        is_phase_used_up = ((phase_left_a <= FILL_TOL_KW)[:, None, :] & (a_per_kw > 0.0)).any(axis=2)
        is_site_used_up = (site_left_kw <= FILL_TOL_KW)[:, None]
        is_rising &= ~(is_full | is_charger_used_up | is_phase_used_up | is_site_used_up)
    return power_kw


def share_equally(context: StepContext, cap_kw: FloatArray, drop_priority: FloatArray) -> FloatArray:
    """:func:`fill_equally` under the minimum-current rule.

    While some allocation is below the minimum charging current (and not a final top-up), the one
    such connector with the highest ``drop_priority`` (ties: the highest connector index) gets
    nothing and the others share again, so what it would have drawn goes to them.

    Args:
        context: State at the step's start.
        cap_kw: The most each connector may draw [kW], ``(B, C)``; 0 for none.
        drop_priority: Which connector to leave out first, highest first, ``(B, C)`` (e.g. the laxity).

    Returns:
        Charging setpoints [kW], ``(B, C)``, feasible for the projection.
    """
    batch, n_connectors = cap_kw.shape
    cap_kw = cap_kw.copy()
    power_kw = fill_equally(context, cap_kw)
    for _ in range(n_connectors):
        is_below = below_minimum_current(context, power_kw)
        if not is_below.any():
            break
        key = np.where(is_below, drop_priority, -np.inf)
        last = n_connectors - 1 - np.argmax(key[:, ::-1], axis=1)
        has_below = is_below.any(axis=1)
        rows = np.arange(batch)[has_below]
        cap_kw[rows, last[has_below]] = 0.0
        power_kw = fill_equally(context, cap_kw)
    return np.where(below_minimum_current(context, power_kw), 0.0, power_kw)
