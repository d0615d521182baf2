"""The one physics step: advances every asset one interval from (projected) setpoints.

Equations, per batch element, with step length ``dt`` [h], connector power ``p_c`` [kW],
storage power ``s`` [kW] (sign convention of :mod:`smac_rl.core.units`):

* EV battery: ``e_c' = e_c + dt * (eta_c * max(p_c, 0) - max(-p_c, 0) / eta_d)``
* Storage: ``E' = E * (1 - sd) ** dt + dt * (eta_c_s * max(s, 0) - max(-s, 0) / eta_d_s)``
* Site bus: ``net = base_load + sum_c p_c + s - pv_used``; ``grid_import = max(net, 0)``,
  ``grid_export = max(-net, 0)``
* PV is curtailed only as far as needed so that export stays within the export limit and no PV is
  exported at a negative export price: ``pv_used = pv_available - curtailment``.
* Violations: ``max(grid_import - import_limit, 0)`` and ``max(grid_export - export_limit, 0)``
  (base load alone can exceed a limit; the projection cannot remove that); an excess up to
  :data:`FEASIBILITY_TOL_KW` is float rounding, the projection's own tolerance, and counts as none.
* Energy cost: ``dt * (grid_import * import_price - grid_export * export_price)``.

The step trusts its setpoints: pass them through :func:`smac_rl.core.projection.project` first.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from smac_rl.core.arraytypes import FloatArray
from smac_rl.core.state import Setpoints, StepContext, zeros_of

FEASIBILITY_TOL_KW = 1e-9
"""Excess below which a limit counts as met [kW]: float rounding (the projection uses it too)."""


def _excess(value: FloatArray, limit: FloatArray) -> FloatArray:
    """``max(value - limit, 0)``, with rounding noise up to :data:`FEASIBILITY_TOL_KW` as 0."""
    excess = value - limit
    result: FloatArray = np.where(excess > FEASIBILITY_TOL_KW, excess, 0.0)
    return result


def grid_import_kw(
    base_load_kw: FloatArray,
    pv_available_kw: FloatArray,
    ev_total_kw: FloatArray,
    storage_power_kw: FloatArray,
) -> FloatArray:
    """Import of setpoints before curtailment, ``max(base_load + sum_c p_c + s - pv_available, 0)`` [kW].

    Equal to :func:`physics_step`'s ``grid_import`` (curtailment only trims export, never import),
    without a step context: for plans over a window and for requested setpoints.

    Args:
        base_load_kw: Base load [kW].
        pv_available_kw: PV available [kW].
        ev_total_kw: Summed connector setpoints [kW].
        storage_power_kw: Storage setpoint [kW].

    Returns:
        The import [kW], shaped as the arguments broadcast.
    """
    imported: FloatArray = np.maximum(base_load_kw + ev_total_kw + storage_power_kw - pv_available_kw, 0.0)
    return imported


@dataclass(frozen=True)
class StepOutcome:
    """What one step did, ``(B,)`` arrays unless stated.

    Attributes:
        ev_energy_kwh: Stored EV energy at the step's end [kWh], ``(B, C)``.
        storage_energy_kwh: Stored site-storage energy at the step's end [kWh].
        grid_import_kw: Import from the grid [kW].
        grid_export_kw: Export to the grid [kW].
        pv_used_kw: PV power used after curtailment [kW].
        import_violation_kw: Import above the import limit [kW].
        export_violation_kw: Export above the export limit [kW].
        energy_cost_eur: Import cost minus export revenue of the step [EUR].
    """

    ev_energy_kwh: FloatArray
    storage_energy_kwh: FloatArray
    grid_import_kw: FloatArray
    grid_export_kw: FloatArray
    pv_used_kw: FloatArray
    import_violation_kw: FloatArray
    export_violation_kw: FloatArray
    energy_cost_eur: FloatArray


def storage_retained_kwh(context: StepContext) -> FloatArray:
    """Stored energy left after one step of self-discharge alone [kWh], ``(B,)``.

    Compounded per hour, ``E * (1 - sd) ** dt``: never negative, whatever the step length.
    """
    keep_frac = (1.0 - context.site.storage_self_discharge_per_h_frac) ** context.step_h
    retained: FloatArray = context.storage_energy_kwh * keep_frac
    return retained


def physics_step(context: StepContext, setpoints: Setpoints) -> StepOutcome:
    """Advance every asset one step.

    Args:
        context: State at the step's start.
        setpoints: Projected setpoints.

    Returns:
        The state at the step's end and the step's grid flows and cost.
    """
    ev, exo, site, dt = context.ev, context.exo, context.site, context.step_h
    # Where no EV is, p is 0 (projected setpoints are finite) and the update adds exactly 0 to
    # the (neutral, finite) stored energy.
    p = setpoints.ev_power_kw * ev.is_present
    zeros = zeros_of(p.shape)
    charge = np.maximum(p, zeros)
    charge *= ev.charge_efficiency_frac
    # min(p, 0) / eta_d is -(max(-p, 0) / eta_d) bit for bit, so adding it subtracts the discharge.
    discharge_neg = np.minimum(p, zeros)
    discharge_neg /= ev.discharge_efficiency_frac
    ev_energy = np.add(charge, discharge_neg, out=charge)
    ev_energy *= dt
    np.add(ev.energy_kwh, ev_energy, out=ev_energy)

    s = setpoints.storage_power_kw
    retained = storage_retained_kwh(context)
    storage_energy = retained + dt * (
        site.storage_charge_efficiency_frac * np.maximum(s, 0.0)
        - np.maximum(-s, 0.0) / site.storage_discharge_efficiency_frac
    )

    net_without_pv = exo.base_load_kw + p.sum(axis=1) + s
    pv_kw = exo.pv_available_kw
    export_with_all_pv = np.maximum(pv_kw - net_without_pv, 0.0)
    allowed_export = np.where(exo.export_price_eur_per_kwh < 0.0, 0.0, exo.export_limit_kw)
    curtailment = np.minimum(np.maximum(export_with_all_pv - allowed_export, 0.0), pv_kw)  # np.clip
    pv_used = pv_kw - curtailment
    net = net_without_pv - pv_used
    grid_import = np.maximum(net, 0.0)
    grid_export = np.maximum(-net, 0.0)
    return StepOutcome(
        ev_energy_kwh=ev_energy,
        storage_energy_kwh=storage_energy,
        grid_import_kw=grid_import,
        grid_export_kw=grid_export,
        pv_used_kw=pv_used,
        import_violation_kw=_excess(grid_import, exo.import_limit_kw),
        export_violation_kw=_excess(grid_export, exo.export_limit_kw),
        energy_cost_eur=dt
        * (grid_import * exo.import_price_eur_per_kwh - grid_export * exo.export_price_eur_per_kwh),
    )
