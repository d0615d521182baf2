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
5. **Minimum current** (site option): AC charging setpoints below the minimum are set to zero,
   except a final top-up that completes the energy wanted within the step (the EV draws at least
   the minimum current, then stops by itself: the step average is lower).
6. **Export limit**: when, even with all PV curtailed, export exceeds the export limit, every
   discharging setpoint is scaled by one factor.
"""

from __future__ import annotations

import numpy as np

from smac_rl.core.arrays import SiteParams
from smac_rl.core.arraytypes import BoolArray, FloatArray
from smac_rl.core.physics import FEASIBILITY_TOL_KW, storage_retained_kwh
from smac_rl.core.state import Setpoints, StepContext

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
    ev, dt = context.ev, context.step_h
    soc = ev.energy_kwh / ev.capacity_kwh
    taper_span = np.maximum(1.0 - ev.taper_start_soc_frac, 1e-12)
    taper = np.where(
        (ev.taper_start_soc_frac < 1.0) & (soc > ev.taper_start_soc_frac), (1.0 - soc) / taper_span, 1.0
    )
    headroom_kw = energy_headroom_kw(context)
    tapered_kw = np.minimum(ev.max_charge_kw, ev.ev_max_power_kw * np.clip(taper, 0.0, 1.0))
    upper = np.clip(np.minimum(tapered_kw, headroom_kw), 0.0, None)
    steps_after = np.maximum(ev.n_steps_to_departure - 1, 0)
    reachable_floor = ev.target_energy_kwh - ev.max_charge_kw * ev.charge_efficiency_frac * dt * steps_after
    floor = np.maximum(ev.floor_energy_kwh, reachable_floor)
    spare_kw = (ev.energy_kwh - floor) * ev.discharge_efficiency_frac / dt
    lower = -np.clip(np.minimum(ev.max_discharge_kw, spare_kw), 0.0, None)
    return np.where(ev.is_present, lower, 0.0), np.where(ev.is_present, upper, 0.0)


def energy_headroom_kw(context: StepContext) -> FloatArray:
    """Constant power that completes each EV's energy wanted in exactly this step [kW], ``(B, C)``."""
    ev = context.ev
    return (ev.target_energy_kwh - ev.energy_kwh) / (ev.charge_efficiency_frac * context.step_h)


def below_minimum_current(context: StepContext, ev_power_kw: FloatArray) -> BoolArray:
    """Charging setpoints the minimum-current rule sets to zero (stage 5 of the module docstring).

    Args:
        context: State at the step's start.
        ev_power_kw: Setpoints [kW], ``(B, C)``.

    Returns:
        True where a positive setpoint is below the connector's minimum and is not a final top-up.
    """
    too_low = (ev_power_kw > 0.0) & (ev_power_kw < context.site.connector_min_charge_kw - FEASIBILITY_TOL_KW)
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
    site, exo = context.site, context.exo
    ev_lower, ev_upper = ev_power_bounds(context)
    s_lower, s_upper = storage_power_bounds(context)
    p = np.clip(np.nan_to_num(setpoints.ev_power_kw, nan=0.0, posinf=0.0, neginf=0.0), ev_lower, ev_upper)
    s = np.clip(np.nan_to_num(setpoints.storage_power_kw, nan=0.0, posinf=0.0, neginf=0.0), s_lower, s_upper)

    p = p * charger_share_factor(site, np.abs(p))

    phase_limit_a = np.asarray(site.charging_phase_current_limit_a)[..., None]
    if np.isfinite(phase_limit_a).any():  # no feeder limit anywhere: every factor is 1
        a_per_kw = site.connector_phase_a_per_kw
        phase_load_a = (np.abs(p)[:, :, None] * a_per_kw).sum(axis=1)
        phase_factor = _shrink_factor(phase_load_a, phase_limit_a)
        p = p * np.where(a_per_kw > 0.0, phase_factor[:, None, :], 1.0).min(axis=2)

    excess_kw = exo.base_load_kw + p.sum(axis=1) + s - exo.pv_available_kw - exo.import_limit_kw
    charging_kw = np.maximum(p, 0.0).sum(axis=1) + np.maximum(s, 0.0)
    factor = _reduction_factor(excess_kw, charging_kw)
    p = np.where(p > 0.0, p * factor[:, None], p)
    s = np.where(s > 0.0, s * factor, s)

    p = np.where(below_minimum_current(context, p), 0.0, p)

    export_excess_kw = -(exo.base_load_kw + p.sum(axis=1) + s) - exo.export_limit_kw
    discharging_kw = np.maximum(-p, 0.0).sum(axis=1) + np.maximum(-s, 0.0)
    factor = _reduction_factor(export_excess_kw, discharging_kw)
    p = np.where(p < 0.0, p * factor[:, None], p)
    s = np.where(s < 0.0, s * factor, s)
    return Setpoints(ev_power_kw=p, storage_power_kw=s)


def charger_share_factor(site: SiteParams, load_kw: FloatArray) -> FloatArray:
    """Per-connector factor in [0, 1] bringing each charger's summed load within its rating.

    Args:
        site: Site parameters (one site, or one per row).
        load_kw: Non-negative load of each connector [kW], ``(B, C)``.

    Returns:
        The factor of each connector's charger, ``(B, C)`` (1 where the charger is within its rating).
    """
    batch, n_chargers = load_kw.shape[0], site.n_chargers
    charger_index = np.broadcast_to(site.connector_charger_index, load_kw.shape)
    flat_index = charger_index + n_chargers * np.arange(batch)[:, None]
    charger_load = np.bincount(flat_index.ravel(), load_kw.ravel(), batch * n_chargers).reshape(batch, -1)
    limit_kw = np.broadcast_to(site.charger_max_kw, charger_load.shape)
    factor = _shrink_factor(charger_load.astype(np.float64), limit_kw)
    shared: FloatArray = np.take_along_axis(factor, charger_index, axis=1)
    return shared


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
