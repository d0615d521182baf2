"""The one safety projection: every policy output passes it before it is applied or served.

Stages, in order (each only moves setpoints toward zero, so no stage undoes an earlier one, and
the projection is idempotent):

1. **Box** per connector and for the storage (:func:`ev_power_bounds`,
   :func:`storage_power_bounds`):
   EV and connector power limits, the CC-CV taper (on the EV's own limit), the energy still
   wanted, the V2G floor ``max(v2g_min_soc, reachability)`` so that discharging never makes the
   departure target unreachable at full power, storage power and energy bounds.
2. **Charger sharing**: when ``sum |p_c|`` over a charger's connectors exceeds its rating, its
   connectors are scaled by one factor.
3. **Phases**: when the current of an AC feeder phase, ``sum_c |p_c| * a_per_kw[c, phase]``, exceeds
   the limit, the connectors on that phase are scaled by one factor (three-phase connectors by the
   smallest factor of their phases).
4. **Import limit**: when ``base_load + sum p + s - pv_available`` exceeds the import limit, every
   charging setpoint (EV and storage) is scaled by one factor; what remains with all charging at
   zero is reported by the physics as a violation.
5. **Minimum current** (site option): AC charging setpoints below the session's minimum are set
   to zero (the connector's minimum current on every phase; an EV whose limit is below that
   charges on one phase and has one phase's minimum), except a final top-up that completes the
   energy wanted within the step (the EV draws at least the minimum current, then stops by
   itself: the step average is lower). The phase currents of stage 3 still spread an AC EV's
   power over all its connector's phases, also for such a one-phase EV.
6. **Export limit**: when, even with all PV curtailed, export exceeds the export limit, every
   discharging setpoint is scaled by one factor.
"""

from __future__ import annotations

import numpy as np

from smac_rl.core.arrays import SiteParams
from smac_rl.core.arraytypes import BoolArray, FloatArray
from smac_rl.core.physics import FEASIBILITY_TOL_KW, storage_retained_kwh
from smac_rl.core.state import Setpoints, StepContext, is_all, is_any, nonzero_flat, zeros_of

TOP_UP_TOL_KW = 1e-4
"""How far below the exact top-up a setpoint may be and still count as the final top-up [kW]
(0.1 W: absorbs the float32 rounding of exported policies)."""


def ev_power_bounds(context: StepContext) -> tuple[FloatArray, FloatArray]:
    """Per-connector power bounds of the box stage.

    Args:
        context: State at the step's start.

    Returns:
        ``(lower_kw, upper_kw)``, ``(B, C)`` each, ``lower_kw <= 0 <= upper_kw``; both 0 where no EV is
        (computed once per context; read-only).
    """
    lower, upper = context.memo("ev_power_bounds", lambda: _ev_power_bounds(context))
    return lower, upper


def _ev_power_bounds(context: StepContext) -> tuple[FloatArray, FloatArray]:
    # np.maximum against an array of zeros is max(x, 0) without np.clip's and np.where's slow
    # paths. Where no EV is, the EvView's neutral values (no energy, limits 0, efficiencies 1,
    # no taper) give both bounds 0 without a mask.
    ev, dt = context.ev, context.step_h
    zeros = zeros_of(ev.energy_kwh.shape)
    soc = ev.energy_kwh / ev.capacity_kwh
    tapering = (ev.taper_start_soc_frac < 1.0) & (soc > ev.taper_start_soc_frac)
    # Where no taper applies the factor is 1 and ev_max_power_kw * 1.0 is ev_max_power_kw; the
    # factor is computed only where it applies (few EVs are above their taper start).
    tapered_kw = np.minimum(ev.max_charge_kw, ev.ev_max_power_kw)
    where_tapering = nonzero_flat(tapering)
    if where_tapering.size:
        start = ev.taper_start_soc_frac.reshape(-1).take(where_tapering)
        taper_span = np.maximum(1.0 - start, 1e-12)
        taper = np.clip((1.0 - soc.reshape(-1).take(where_tapering)) / taper_span, 0.0, 1.0)
        ev_max_kw = ev.ev_max_power_kw.reshape(-1).take(where_tapering)
        max_kw = ev.max_charge_kw.reshape(-1).take(where_tapering)
        tapered_kw.put(where_tapering, np.minimum(max_kw, ev_max_kw * taper))
    upper = np.minimum(tapered_kw, energy_headroom_kw(context), out=tapered_kw)
    np.maximum(upper, zeros, out=upper)
    steps_after = np.maximum(ev.n_steps_to_departure - 1.0, zeros)  # exact small integers as floats
    reachable_floor = ev.max_charge_kw * ev.charge_efficiency_frac
    reachable_floor *= dt
    reachable_floor *= steps_after
    np.subtract(ev.target_energy_kwh, reachable_floor, out=reachable_floor)
    spare_kw = np.maximum(ev.floor_energy_kwh, reachable_floor, out=reachable_floor)
    np.subtract(ev.energy_kwh, spare_kw, out=spare_kw)
    spare_kw *= ev.discharge_efficiency_frac
    spare_kw /= dt
    lower = np.minimum(ev.max_discharge_kw, spare_kw, out=spare_kw)
    np.maximum(lower, zeros, out=lower)
    return np.negative(lower, out=lower), upper


def energy_headroom_kw(context: StepContext) -> FloatArray:
    """Constant power that completes each EV's energy wanted in exactly this step [kW], ``(B, C)``.

    Computed once per context; read-only.
    """
    (headroom,) = context.memo("energy_headroom_kw", lambda: (_energy_headroom_kw(context),))
    return headroom


def _energy_headroom_kw(context: StepContext) -> FloatArray:
    ev = context.ev
    headroom: FloatArray = (ev.target_energy_kwh - ev.energy_kwh) / (
        ev.charge_efficiency_frac * context.step_h
    )
    return headroom


def below_minimum_current(context: StepContext, ev_power_kw: FloatArray) -> BoolArray:
    """Charging setpoints the minimum-current rule sets to zero (stage 5 of the module docstring).

    Args:
        context: State at the step's start.
        ev_power_kw: Setpoints [kW], ``(B, C)``.

    Returns:
        True where a positive setpoint is below the session's minimum (``EvView.min_charge_kw``: the
        connector's, or one phase's for an EV below it) and is not a final top-up.
    """
    too_low = (ev_power_kw > 0.0) & (ev_power_kw < context.ev.min_charge_kw - FEASIBILITY_TOL_KW)
    top_up = ev_power_kw >= energy_headroom_kw(context) - TOP_UP_TOL_KW
    return too_low & ~top_up


def storage_power_bounds(context: StepContext) -> tuple[FloatArray, FloatArray]:
    """Storage power bounds of the box stage.

    Args:
        context: State at the step's start.

    Returns:
        ``(lower_kw, upper_kw)``, ``(B,)`` each, ``lower_kw <= 0 <= upper_kw`` (computed once per
        context; read-only).
    """
    lower, upper = context.memo("storage_power_bounds", lambda: _storage_power_bounds(context))
    return lower, upper


def _storage_power_bounds(context: StepContext) -> tuple[FloatArray, FloatArray]:
    site, dt = context.site, context.step_h
    retained = storage_retained_kwh(context)
    upper = np.minimum(
        site.storage_max_charge_kw,
        (site.storage_max_energy_kwh - retained) / (site.storage_charge_efficiency_frac * dt),
    )
    lower = -np.minimum(
        site.storage_max_discharge_kw,
        (retained - site.storage_min_energy_kwh) * site.storage_discharge_efficiency_frac / dt,
    )
    return np.minimum(lower, 0.0), np.maximum(upper, 0.0)


def project(context: StepContext, setpoints: Setpoints) -> Setpoints:
    """Project setpoints onto the feasible set of the step (stages in the module docstring).

    Args:
        context: State at the step's start.
        setpoints: Any setpoints, e.g. a policy's raw output; non-finite values count as 0.

    Returns:
        Feasible setpoints; projecting them again returns them unchanged.
    """
    # Stages whose factors are all 1 are skipped (multiplying by 1 changes nothing). Scaling the
    # charging setpoints by a factor f in [0, 1] is min(p, p * f) and the discharging ones
    # max(p, p * f): bit for bit np.where(p > 0, p * f, p) and np.where(p < 0, p * f, p).
    site, exo = context.site, context.exo
    ev_lower, ev_upper = ev_power_bounds(context)
    s_lower, s_upper = storage_power_bounds(context)
    p = np.minimum(np.maximum(_finite(setpoints.ev_power_kw), ev_lower), ev_upper)
    s = np.minimum(np.maximum(_finite(setpoints.storage_power_kw), s_lower), s_upper)
    zeros = zeros_of(p.shape)

    share = _charger_share(site, np.abs(p))
    if share is not None:
        p = np.multiply(p, share, out=share)

    phase = _phase_share(site, np.abs(p))
    if phase is not None:
        p = p * phase

    p_sum_kw = p.sum(axis=1)
    is_sum_stale = False
    excess_kw = exo.base_load_kw + p_sum_kw + s - exo.pv_available_kw - exo.import_limit_kw
    if is_any(excess_kw > FEASIBILITY_TOL_KW):
        charging_kw = np.maximum(p, zeros).sum(axis=1) + np.maximum(s, 0.0)
        factor = _reduction_factor(excess_kw, charging_kw)
        p = np.minimum(p, p * factor[:, None])
        s = np.minimum(s, s * factor)
        is_sum_stale = True

    min_charge_kw = site.connector_min_charge_kw
    if is_any(min_charge_kw):  # no minimum current anywhere: stage 5 sets nothing to zero
        below = below_minimum_current(context, p)
        if is_any(below):
            p = p * ~below
            is_sum_stale = True

    if is_sum_stale:
        p_sum_kw = p.sum(axis=1)
    export_excess_kw = -(exo.base_load_kw + p_sum_kw + s) - exo.export_limit_kw
    if is_any(export_excess_kw > FEASIBILITY_TOL_KW):
        discharging_kw = np.maximum(np.negative(p), zeros).sum(axis=1) + np.maximum(-s, 0.0)
        factor = _reduction_factor(export_excess_kw, discharging_kw)
        p = np.maximum(p, p * factor[:, None])
        s = np.maximum(s, s * factor)
    return Setpoints(ev_power_kw=p, storage_power_kw=s)


def _finite(values: FloatArray) -> FloatArray:
    """``values`` with non-finite entries as 0 (the array itself when all are finite)."""
    if is_all(np.isfinite(values)):
        return values
    finite: FloatArray = np.nan_to_num(values, nan=0.0, posinf=0.0, neginf=0.0)
    return finite


def charger_share_factor(site: SiteParams, load_kw: FloatArray) -> FloatArray:
    """Per-connector factor in [0, 1] bringing each charger's summed load within its rating.

    Args:
        site: Site parameters (one site, or one per row).
        load_kw: Non-negative load of each connector [kW], ``(B, C)``.

    Returns:
        The factor of each connector's charger, ``(B, C)`` (1 where the charger is within its rating).
    """
    shared = _charger_share(site, load_kw)
    return np.ones(load_kw.shape) if shared is None else shared


def _charger_share(site: SiteParams, load_kw: FloatArray) -> FloatArray | None:
    """:func:`charger_share_factor`, or None when every factor is 1 (no charger over its rating)."""
    batch, n_chargers = load_kw.shape[0], site.n_chargers
    flat_index = site.connector_charger_index + n_chargers * np.arange(batch)[:, None]
    charger_load = np.bincount(flat_index.ravel(), load_kw.ravel(), batch * n_chargers)
    limit_kw = site.charger_max_kw
    if limit_kw.ndim == 1 and batch > 1:  # one site for every row
        limit_kw = np.tile(limit_kw, batch)
    limit_kw = limit_kw.reshape(-1)
    over = nonzero_flat(charger_load > limit_kw + FEASIBILITY_TOL_KW)
    if over.size == 0:
        return None
    factor = np.ones(batch * n_chargers)
    factor[over] = limit_kw[over] / charger_load[over]
    shared: FloatArray = factor.take(flat_index)
    return shared


def _phase_share(site: SiteParams, load_kw: FloatArray) -> FloatArray | None:
    """Per-connector factor bringing each AC feeder phase within its current limit (stage 3), or None.

    None where no phase has a limit (every factor is 1). A three-phase connector takes the smallest
    factor of its phases.
    """
    phase_limit_a = np.asarray(site.charging_phase_current_limit_a)[..., None]
    if not is_any(np.isfinite(phase_limit_a)):
        return None
    a_per_kw = site.connector_phase_a_per_kw
    phase_load_a = (load_kw[:, :, None] * a_per_kw).sum(axis=1)
    phase_factor = _shrink_factor(phase_load_a, phase_limit_a)
    shared: FloatArray = np.where(a_per_kw > 0.0, phase_factor[:, None, :], 1.0).min(axis=2)
    return shared


def is_shared_limit_exceeded(site: SiteParams, load_kw: FloatArray) -> BoolArray:
    """Connectors that the charger-sharing or the phase stage would scale (stages 2 and 3).

    Args:
        site: Site parameters (one site, or one per row).
        load_kw: Non-negative load of each connector [kW], ``(B, C)``.

    Returns:
        True where the connector's charger is over its rating, or one of its phases over its limit.
    """
    scaled = charger_share_factor(site, load_kw) < 1.0
    phase = _phase_share(site, load_kw)
    if phase is not None:
        scaled |= phase < 1.0
    return scaled


def _shrink_factor(load: FloatArray, limit: FloatArray) -> FloatArray:
    """Factor in [0, 1] bringing each load within its limit (1 where it already is)."""
    over = load > limit + FEASIBILITY_TOL_KW
    return np.where(over, limit / np.where(over, load, 1.0), 1.0)


def _reduction_factor(excess: FloatArray, reducible: FloatArray) -> FloatArray:
    """Factor in [0, 1] removing ``excess`` from ``reducible`` (0 when it cannot all be removed)."""
    over = excess > FEASIBILITY_TOL_KW
    partial = over & (reducible > excess)
    ratio = np.divide(excess, reducible, out=np.ones_like(excess), where=partial)
    return np.where(over, np.where(partial, 1.0 - ratio, 0.0), 1.0)
