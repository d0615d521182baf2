"""The one scorer: every KPI of DESIGN.md section 3, one definition each.

Definitions (``dt`` the step [h]; sums over steps ``t``, connectors ``c``, sessions ``s``):

* ``energy_cost_eur`` = ``sum_t dt * (grid_import * import_price - grid_export * export_price)``
* ``demand_charge_eur`` = ``demand_charge_eur_per_kw * max(peak_import_kw - billing_peak_start_kw, 0)``
* ``degradation_cost_eur`` = ``v2g_degradation_cost * v2g_discharged_kwh
  + storage_degradation_cost * storage_throughput_kwh``
* ``unmet_energy_kwh`` = ``sum_s unmet_s`` with, battery-side,
  ``unmet_s = max(target_s - e_s(departure), 0)`` for sessions leaving within the horizon, and for
  sessions still plugged in at its end
  ``max(target_s - e_s(T) - max_charge_s * eta_s * dt * n_steps_left, 0)``:
  only what can no longer be delivered at full power after the horizon counts.
* ``unmet_energy_cost_eur`` = ``unmet_energy_penalty_eur_per_kwh * unmet_energy_kwh``
* ``total_cost_eur`` = the four costs above summed.
* ``peak_import_kw`` = ``max_t grid_import`` (step averages).
* ``energy_delivered_kwh`` = ``sum dt * max(p_c, 0)``, at the connectors.
* ``sessions_fully_served_frac`` = share of sessions with ``unmet_s <= 1e-6`` kWh (None without sessions).
* ``limit_violation_kwh`` = ``sum_t dt * (import_violation + export_violation)``.
* ``v2g_discharged_kwh`` = ``sum dt * max(-p_c, 0)``, at the connectors.
* ``storage_throughput_kwh`` = ``sum_t dt * |s|``, at the bus.
* ``pv_self_consumption_frac`` = ``sum_t (pv_used - min(grid_export, pv_used)) / sum_t pv_available``
  (export counts as PV first; None without PV).
* ``projection_adjustment_kwh`` = ``sum dt * |requested - applied|`` over EV and storage setpoints:
  how far the projection had to move the policy's output (0 for a feasible profile); a
  non-finite request counts as 0, as the projection reads it.
* ``setpoint_deviation_kwh`` = ``sum_t dt * |grid_import - grid_export - grid_setpoint|`` (None
  without a setpoint series).
* ``objective_eur`` = the scenario's named objective, a weighted sum of the KPIs above
  (:mod:`smac_rl.core.objectives`); equal to ``total_cost_eur`` for the default ``cost``.
* ``savings_capture_frac`` = ``(cost_uncontrolled - cost_policy) / (cost_uncontrolled - cost_oracle)``
  with each cost the scenario's ``objective_eur``, None on days whose denominator is under 1 EUR
  (:func:`savings_capture_frac`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass

import numpy as np

from smac_rl.core.arrays import ScenarioArrays
from smac_rl.core.arraytypes import FloatArray
from smac_rl.core.simulate import Trace

SERVED_TOL_KWH = 1e-6
"""Unmet energy up to which a session counts as fully served [kWh]."""

MIN_SAVINGS_DENOMINATOR_EUR = 1.0
"""Days whose possible saving (uncontrolled minus oracle) is below this are excluded [EUR]."""


@dataclass(frozen=True)
class Kpis:
    """The KPIs of one episode (definitions in the module docstring)."""

    energy_cost_eur: float
    demand_charge_eur: float
    degradation_cost_eur: float
    unmet_energy_cost_eur: float
    total_cost_eur: float
    peak_import_kw: float
    energy_delivered_kwh: float
    unmet_energy_kwh: float
    sessions_fully_served_frac: float | None
    limit_violation_kwh: float
    v2g_discharged_kwh: float
    storage_throughput_kwh: float
    pv_self_consumption_frac: float | None
    projection_adjustment_kwh: float
    setpoint_deviation_kwh: float | None
    objective_eur: float

    def as_dict(self) -> dict[str, float | None]:
        """The KPIs as a name-to-value mapping, in definition order."""
        return asdict(self)


def unmet_energy_per_session_kwh(arrays: ScenarioArrays, trace: Trace) -> FloatArray:
    """Battery-side energy each session still lacks (definition in the module docstring) [kWh], ``(S,)``."""
    sessions, n_steps = arrays.sessions, arrays.n_steps
    boundary = np.clip(sessions.end_step, 0, n_steps)
    energy_at_end = trace.session_energy_kwh[boundary, np.arange(sessions.n_sessions)]
    steps_left = np.maximum(sessions.end_step - n_steps, 0)
    still_possible = sessions.max_charge_kw * sessions.charge_efficiency_frac * arrays.step_h * steps_left
    return np.maximum(sessions.target_energy_kwh - energy_at_end - still_possible, 0.0)


def score(arrays: ScenarioArrays, trace: Trace) -> Kpis:
    """Score one episode.

    Args:
        arrays: The compiled scenario.
        trace: The episode, from :func:`smac_rl.core.simulate.simulate` or ``replay``.

    Returns:
        Every KPI.
    """
    dt, site = arrays.step_h, arrays.site
    peak = float(trace.grid_import_kw.max(initial=0.0))
    energy_cost = float(trace.energy_cost_eur.sum())
    demand_charge = site.demand_charge_eur_per_kw * max(peak - site.billing_peak_start_kw, 0.0)
    v2g_kwh = float(dt * np.maximum(-trace.ev_power_kw, 0.0).sum())
    storage_kwh = float(dt * np.abs(trace.storage_power_kw).sum())
    degradation = (
        site.v2g_degradation_cost_eur_per_kwh * v2g_kwh
        + site.storage_degradation_cost_eur_per_kwh * storage_kwh
    )
    unmet = unmet_energy_per_session_kwh(arrays, trace)
    unmet_kwh = float(unmet.sum())
    unmet_cost = arrays.unmet_energy_penalty_eur_per_kwh * unmet_kwh
    pv_available = float(arrays.series.pv_available_kw.sum())
    pv_on_site = trace.pv_used_kw - np.minimum(trace.grid_export_kw, trace.pv_used_kw)
    adjustment = (
        np.abs(_finite(trace.requested_ev_power_kw) - trace.ev_power_kw).sum()
        + np.abs(_finite(trace.requested_storage_power_kw) - trace.storage_power_kw).sum()
    )
    deviation = (
        float(dt * np.abs(trace.grid_import_kw - trace.grid_export_kw - arrays.series.grid_setpoint_kw).sum())
        if arrays.series.is_grid_setpoint_given
        else None
    )
    limit_violation = float(dt * (trace.import_violation_kw + trace.export_violation_kw).sum())
    terms = (energy_cost, demand_charge, degradation, unmet_cost, peak, limit_violation, deviation or 0.0)
    objective = float(sum(w * v for w, v in zip(arrays.objective.as_tuple(), terms, strict=True)))
    return Kpis(
        energy_cost_eur=energy_cost,
        demand_charge_eur=demand_charge,
        degradation_cost_eur=degradation,
        unmet_energy_cost_eur=unmet_cost,
        total_cost_eur=energy_cost + demand_charge + degradation + unmet_cost,
        peak_import_kw=peak,
        energy_delivered_kwh=float(dt * np.maximum(trace.ev_power_kw, 0.0).sum()),
        unmet_energy_kwh=unmet_kwh,
        sessions_fully_served_frac=float(np.mean(unmet <= SERVED_TOL_KWH)) if unmet.size else None,
        limit_violation_kwh=limit_violation,
        v2g_discharged_kwh=v2g_kwh,
        storage_throughput_kwh=storage_kwh,
        pv_self_consumption_frac=float(pv_on_site.sum() / pv_available) if pv_available > 0 else None,
        projection_adjustment_kwh=float(dt * adjustment),
        setpoint_deviation_kwh=deviation,
        objective_eur=objective,
    )


def _finite(values: FloatArray) -> FloatArray:
    """Non-finite requests count as 0, as the projection reads them."""
    return np.nan_to_num(values, nan=0.0, posinf=0.0, neginf=0.0)


def savings_capture_frac(
    cost_uncontrolled_eur: float, cost_policy_eur: float, cost_oracle_eur: float
) -> float | None:
    """Share of the oracle's saving over uncontrolled charging that a policy captures.

    Args:
        cost_uncontrolled_eur: Total cost of uncontrolled charging [EUR].
        cost_policy_eur: Total cost of the policy [EUR].
        cost_oracle_eur: Total cost of the perfect-foresight optimum [EUR].

    Returns:
        ``(uncontrolled - policy) / (uncontrolled - oracle)``, or None when the denominator is
        under :data:`MIN_SAVINGS_DENOMINATOR_EUR` (the day is excluded).
    """
    denominator = cost_uncontrolled_eur - cost_oracle_eur
    if denominator < MIN_SAVINGS_DENOMINATOR_EUR:
        return None
    return (cost_uncontrolled_eur - cost_policy_eur) / denominator


@dataclass(frozen=True)
class SavingsCaptureSummary:
    """Savings capture over many days.

    Attributes:
        mean_frac: Mean of the included days' fractions (None when no day is included).
        pooled_frac: Summed savings over summed possible savings of the included days.
        n_days_included: Days with a possible saving of at least 1 EUR.
        n_days_excluded: Days left out because their possible saving is under 1 EUR.
    """

    mean_frac: float | None
    pooled_frac: float | None
    n_days_included: int
    n_days_excluded: int


def summarize_savings_capture(days: Iterable[tuple[float, float, float]]) -> SavingsCaptureSummary:
    """Summarise savings capture over days of ``(cost_uncontrolled, cost_policy, cost_oracle)`` [EUR]."""
    fractions: list[float] = []
    saved = possible = 0.0
    excluded = 0
    for uncontrolled, policy, oracle in days:
        frac = savings_capture_frac(uncontrolled, policy, oracle)
        if frac is None:
            excluded += 1
            continue
        fractions.append(frac)
        saved += uncontrolled - policy
        possible += uncontrolled - oracle
    return SavingsCaptureSummary(
        mean_frac=float(np.mean(fractions)) if fractions else None,
        pooled_frac=saved / possible if fractions else None,
        n_days_included=len(fractions),
        n_days_excluded=excluded,
    )
