"""The perfect-foresight optimum: the core physics and projection written for a solver (pyomo + HiGHS).

Symbols (``dt`` step [h]; ``t`` steps; ``s`` sessions; ``k`` chargers; ``ph`` feeder phases):

====================  ===========================================================================
``pc[s,t], pd[s,t]``  charging / discharging power of session ``s`` at its connector [kW], >= 0
``e[s,t]``            stored energy of session ``s`` at the start of step ``t`` [kWh]
``z[s,t]``            1 when V2G session ``s`` is in discharge mode at ``t`` (binary, V2G only)
``charging[s,t]``     1 when a V2G session that arrived above its target charges (binary)
``y_min, w_top``      minimum-current modes: at least the minimum / final top-up (binaries)
``sc[t], sd[t]``      storage charging / discharging power [kW]; ``E[t]`` stored energy [kWh]
``zs[t]``             1 when the storage is in discharge mode (binary, only with self-discharge)
``imp[t], exp[t]``    grid import / export [kW]; ``pv[t]`` PV used [kW]
``vi[t], ve[t]``      import / export above the limits [kW] (penalised slack)
``peak``              highest import [kW]; ``u[s]`` unmet energy [kWh]
====================  ===========================================================================

Each constraint family is one ``define_*`` function with its equation; together they are the
projection's feasible set (:mod:`smac_rl.core.projection`) and the physics
(:mod:`smac_rl.core.physics`), so the optimum's profile replays through them unchanged.

Binaries appear only where the projection's rules are not convex: V2G charge/discharge modes,
storage modes when there is self-discharge, and the minimum-current option (off, at least the
minimum, or the final top-up).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyomo.environ as pyo

from smac_rl.core.arrays import ScenarioArrays
from smac_rl.core.errors import SmacError

LIMIT_VIOLATION_PENALTY_EUR_PER_KWH = 1000.0
"""Price of each kWh above an import or export limit in the objective [EUR/kWh]: violations only
where base load alone breaks a limit; reported by the scorer as ``limit_violation_kwh``."""


class OptimalError(SmacError):
    """A scenario the optimum cannot model, or a solver failure."""


def _windows(arrays: ScenarioArrays) -> list[range]:
    """Steps each session is plugged in for, within the horizon."""
    sessions = arrays.sessions
    return [
        range(int(sessions.first_step[s]), min(int(sessions.end_step[s]), arrays.n_steps))
        for s in range(sessions.n_sessions)
    ]


@dataclass(frozen=True)
class BinaryNeeds:
    """Where the mode binaries of V2G sessions and of the storage may change the optimum.

    From :func:`binary_needs`; :meth:`everywhere` puts them on every row (the plain MILP, for tests
    and comparisons).

    Attributes:
        exclusion_steps: Steps where charging and discharging one asset at once could pay, so the
            charge/discharge exclusion must be enforced by a binary.
        v2g_mode_rows: ``(session, step)`` rows with a V2G mode binary ``z``.
        storage_mode_steps: Steps with a storage mode binary ``zs``.
        is_storage_floor_conditional: Whether the storage floor holds only in discharge mode
            (self-discharge can take the storage below it).
    """

    exclusion_steps: frozenset[int]
    v2g_mode_rows: frozenset[tuple[int, int]]
    storage_mode_steps: frozenset[int]
    is_storage_floor_conditional: bool

    @classmethod
    def everywhere(cls, arrays: ScenarioArrays) -> BinaryNeeds:
        """Binaries on every V2G row and every storage step, whatever the scenario."""
        windows = _windows(arrays)
        steps = frozenset(range(arrays.n_steps))
        sessions = arrays.sessions
        rows = frozenset((s, t) for s, w in enumerate(windows) if sessions.max_discharge_kw[s] > 0 for t in w)
        has_storage = arrays.site.storage_capacity_kwh > 0
        return cls(steps, rows, steps if has_storage else frozenset(), _is_floor_conditional(arrays))


def _is_floor_conditional(arrays: ScenarioArrays) -> bool:
    site = arrays.site
    return bool(
        site.storage_capacity_kwh > 0
        and site.storage_self_discharge_per_h_frac > 0.0
        and site.storage_min_energy_kwh > 0.0
    )


def v2g_floor_kwh(arrays: ScenarioArrays, s: int, t: int) -> float:
    """The projection's V2G floor of session ``s`` after step ``t`` [kWh].

    ``floor_t = max(v2g floor, target - max_charge * eta_c * dt * (steps left after t), 0)``.
    """
    sessions = arrays.sessions
    steps_after = max(int(sessions.end_step[s]) - t - 1, 0)
    reachable = (
        float(sessions.target_energy_kwh[s])
        - float(sessions.max_charge_kw[s] * sessions.charge_efficiency_frac[s]) * arrays.step_h * steps_after
    )
    return max(float(sessions.floor_energy_kwh[s]), reachable, 0.0)


def v2g_lowest_kwh(arrays: ScenarioArrays, s: int) -> float:
    """Energy no trajectory of V2G session ``s`` goes below [kWh]: ``max(min(arrival, v2g floor), 0)``.

    Charging only raises the energy, and discharging stops at ``floor_t >= v2g floor``.
    """
    sessions = arrays.sessions
    return max(min(float(sessions.arrival_energy_kwh[s]), float(sessions.floor_energy_kwh[s])), 0.0)


def binary_needs(arrays: ScenarioArrays) -> BinaryNeeds:
    """The relaxation rule: where a mode binary may change the optimum, and only there.

    **Charge/discharge exclusion** (V2G ``pc``/``pd``, storage ``sc``/``sd``). Take a solution of the
    model without the exclusion that charges ``a > 0`` and discharges ``b > 0`` one asset in step
    ``t``. Lower ``pc`` by ``x`` and ``pd`` by ``eta_c * eta_d * x`` (``x`` as large as keeps both
    >= 0): the stored energy ``e[t+1] = e[t] + dt * (eta_c * pc - pd / eta_d)`` is unchanged at every
    step, so every energy constraint (taper, headroom, floors, storage bounds, unmet energy) still
    holds; the charger, phase and power bounds hold (``pc + pd`` fell); the degradation cost fell.
    Only the bus of step ``t`` changes: the site draws ``(1 - eta_c * eta_d) * x >= 0`` less
    (efficiencies are at most 1). Drawing less lowers the import (never the peak, never the demand
    charge) or raises the export; that costs nothing more when

    * the import and export prices of ``t`` are not negative (or the energy weight is 0),
    * no setpoint is tracked (the tracking term would see the change),
    * the export limit cannot bind at ``t``: PV available, plus the storage's and the plugged-in
      V2G sessions' discharge limits, minus the base load, stay within it (PV the physics would
      curtail is not curtailable at will).

    Then an optimum without simultaneous charge and discharge exists, with the same objective: the
    exclusion needs a binary only on the other steps (``exclusion_steps``).

    **V2G floor.** Discharge is allowed down to ``floor_t`` (:func:`v2g_floor_kwh`), a rule that
    holds only in discharge mode: an EV below it may still charge. No trajectory goes below
    ``L = max(min(arrival, v2g floor), 0)`` (:func:`v2g_lowest_kwh`), so ``e - pd * dt / eta_d >= L``
    is valid everywhere and, where ``floor_t <= L``, it is the floor itself: no binary. The floor
    needs one only where ``floor_t > L`` (the reachability floor before departure, and sessions
    arriving below their V2G floor). The headroom ``e + eta_c * pc * dt <= target`` holds in both
    modes for sessions arriving at or below their target (discharging only lowers ``e``), so it
    needs no binary either.

    **Storage floor.** With self-discharge and a positive minimum, the storage may decay below
    ``E_min`` and then only charge: the floor holds in discharge mode only, on every step (the
    valid bound ``E[t] * keep - sd * dt / eta_d >= min(initial, E_min) * keep ** (t + 1)`` holds in
    both modes and tightens the relaxation). Without self-discharge or without a minimum the floor holds in
    both modes (the initial energy is at least ``E_min``, validated).

    The other binaries are the physics' rules (:func:`define_physics_rules`, the minimum-current
    option, V2G sessions arriving above their target) and keep their own conditions.

    Args:
        arrays: The compiled scenario.

    Returns:
        Where binaries go.
    """
    site, series, sessions, w = arrays.site, arrays.series, arrays.sessions, arrays.objective
    windows = _windows(arrays)
    discharge_kw = np.full(
        arrays.n_steps, site.storage_max_discharge_kw if site.storage_capacity_kwh > 0 else 0.0
    )
    for s, window in enumerate(windows):
        if sessions.max_discharge_kw[s] > 0:
            for t in window:
                discharge_kw[t] += float(sessions.max_discharge_kw[s])
    prices_negative = (series.import_price_eur_per_kwh < 0) | (series.export_price_eur_per_kwh < 0)
    if w.energy_weight_frac == 0.0:
        prices_negative = np.zeros(arrays.n_steps, dtype=bool)
    export_may_bind = series.pv_available_kw + discharge_kw - series.base_load_kw > series.export_limit_kw
    exclusion = prices_negative | export_may_bind | (w.tracking_eur_per_kwh > 0.0)
    exclusion_steps = frozenset(int(t) for t in np.flatnonzero(exclusion))
    rows = frozenset(
        (s, t)
        for s, window in enumerate(windows)
        if sessions.max_discharge_kw[s] > 0
        for t in window
        if t in exclusion_steps
        or v2g_floor_kwh(arrays, s, t) > v2g_lowest_kwh(arrays, s)
        or sessions.min_charge_kw[s] > 0
    )
    conditional = _is_floor_conditional(arrays)
    if site.storage_capacity_kwh <= 0:
        storage_steps: frozenset[int] = frozenset()
    elif conditional:
        storage_steps = frozenset(range(arrays.n_steps))
    else:
        storage_steps = exclusion_steps
    return BinaryNeeds(exclusion_steps, rows, storage_steps, conditional)


def build_model(arrays: ScenarioArrays, needs: BinaryNeeds | None = None) -> pyo.ConcreteModel:
    """Build the optimum's model for a compiled scenario.

    Args:
        arrays: The compiled scenario.
        needs: Where mode binaries go; :func:`binary_needs` by default (the same optimum as
            :meth:`BinaryNeeds.everywhere`, with fewer binaries).

    Raises:
        OptimalError: When the scenario uses an option the model does not cover.
    """
    m = pyo.ConcreteModel(name=arrays.name)
    m.T = pyo.RangeSet(0, arrays.n_steps - 1)
    m.T1 = pyo.RangeSet(0, arrays.n_steps)
    windows = _windows(arrays)
    m.SP = pyo.Set(dimen=2, initialize=[(s, t) for s, w in enumerate(windows) for t in w])
    m.SE = pyo.Set(
        dimen=2, initialize=[(s, t) for s, w in enumerate(windows) for t in [*w, w.stop] if len(w)]
    )
    v2g = [s for s in range(arrays.sessions.n_sessions) if arrays.sessions.max_discharge_kw[s] > 0]
    m.SV = pyo.Set(dimen=2, initialize=[(s, t) for s in v2g for t in windows[s]])
    needs = binary_needs(arrays) if needs is None else needs
    m.SZ = pyo.Set(dimen=2, initialize=[(s, t) for s, t in m.SV if (s, t) in needs.v2g_mode_rows])
    m.TS = pyo.Set(initialize=sorted(needs.storage_mode_steps))
    define_variables(m, arrays)
    define_session_energy(m, arrays, windows)
    define_session_box(m, arrays)
    define_v2g_modes(m, arrays)
    define_minimum_current(m, arrays)
    define_sharing(m, arrays)
    define_storage(m, arrays, needs)
    define_bus(m, arrays)
    define_peak_and_unmet(m, arrays, windows)
    define_objective(m, arrays)
    return m


def define_variables(m: pyo.ConcreteModel, arrays: ScenarioArrays) -> None:
    """Variables with their simple bounds (symbol table in the module docstring)."""
    sessions, site, series = arrays.sessions, arrays.site, arrays.series
    m.pc = pyo.Var(m.SP, bounds=lambda _m, s, _t: (0.0, float(sessions.max_charge_kw[s])))
    m.pd = pyo.Var(m.SP, bounds=lambda _m, s, _t: (0.0, float(sessions.max_discharge_kw[s])))
    m.e = pyo.Var(m.SE, bounds=lambda _m, s, _t: (0.0, float(sessions.capacity_kwh[s])))
    m.z = pyo.Var(m.SZ, domain=pyo.Binary)
    m.sc = pyo.Var(m.T, bounds=(0.0, site.storage_max_charge_kw))
    m.sd = pyo.Var(m.T, bounds=(0.0, site.storage_max_discharge_kw))
    m.E = pyo.Var(m.T1, bounds=(0.0, max(site.storage_capacity_kwh, 0.0)))
    m.imp = pyo.Var(m.T, domain=pyo.NonNegativeReals)
    m.exp = pyo.Var(m.T, domain=pyo.NonNegativeReals)
    m.pv = pyo.Var(m.T, bounds=lambda _m, t: (0.0, float(series.pv_available_kw[t])))
    m.vi = pyo.Var(m.T, domain=pyo.NonNegativeReals)
    m.ve = pyo.Var(m.T, domain=pyo.NonNegativeReals)
    m.peak = pyo.Var(domain=pyo.NonNegativeReals)
    m.u = pyo.Var(range(sessions.n_sessions), domain=pyo.NonNegativeReals)


def define_session_energy(m: pyo.ConcreteModel, arrays: ScenarioArrays, windows: list[range]) -> None:
    """``e[s,first] = arrival``; ``e[s,t+1] = e[s,t] + dt * (eta_c * pc[s,t] - pd[s,t] / eta_d)``."""
    sessions, dt = arrays.sessions, arrays.step_h
    m.e_start = pyo.Constraint(
        [s for s, w in enumerate(windows) if len(w)],
        rule=lambda m, s: m.e[s, windows[s].start] == float(sessions.arrival_energy_kwh[s]),
    )

    def balance(m: pyo.ConcreteModel, s: int, t: int) -> pyo.Expression:
        eta_c, eta_d = float(sessions.charge_efficiency_frac[s]), float(sessions.discharge_efficiency_frac[s])
        return m.e[s, t + 1] == m.e[s, t] + dt * (eta_c * m.pc[s, t] - m.pd[s, t] / eta_d)

    m.e_balance = pyo.Constraint(m.SP, rule=balance)


def define_session_box(m: pyo.ConcreteModel, arrays: ScenarioArrays) -> None:
    """The projection's box for charging.

    ``pc <= ev_max * (cap - e) / (cap * (1 - s0))`` (CC-CV taper, when ``s0 < 1``) and
    ``e + eta_c * pc * dt <= target`` (no charging past the energy wanted; it holds in discharge
    mode too, where ``pc = 0`` and ``e <= target``: no binary); sessions that arrive at or above
    their target never charge, except
    V2G sessions arriving above it, which may discharge below it and charge back: for them a binary
    ``charging`` switches the bound on (``pc <= max_charge * charging``, ``+ M * (1 - charging)``).
    """
    sessions, dt = arrays.sessions, arrays.step_h

    def taper(m: pyo.ConcreteModel, s: int, t: int) -> pyo.Expression:
        s0 = float(sessions.taper_start_soc_frac[s])
        if s0 >= 1.0:
            return pyo.Constraint.Skip
        cap = float(sessions.capacity_kwh[s])
        return m.pc[s, t] * cap * (1.0 - s0) <= float(sessions.ev_max_power_kw[s]) * (cap - m.e[s, t])

    m.taper = pyo.Constraint(m.SP, rule=taper)

    above_target = [
        (s, t) for (s, t) in m.SV if sessions.arrival_energy_kwh[s] > sessions.target_energy_kwh[s]
    ]
    m.SA = pyo.Set(dimen=2, initialize=above_target)
    m.charging = pyo.Var(m.SA, domain=pyo.Binary)

    def headroom(m: pyo.ConcreteModel, s: int, t: int) -> pyo.Expression:
        target, arrival = float(sessions.target_energy_kwh[s]), float(sessions.arrival_energy_kwh[s])
        eta_c = float(sessions.charge_efficiency_frac[s])
        big_m = float(sessions.capacity_kwh[s]) + eta_c * float(sessions.max_charge_kw[s]) * dt
        if (s, t) in m.SA:  # may discharge below its target, then charge back up to it, never past it
            return m.e[s, t] + eta_c * m.pc[s, t] * dt <= target + big_m * (1 - m.charging[s, t])
        if arrival >= target and (s, t) not in m.SV:
            return m.pc[s, t] == 0.0
        return m.e[s, t] + eta_c * m.pc[s, t] * dt <= target

    m.headroom = pyo.Constraint(m.SP, rule=headroom)
    m.charging_mode = pyo.Constraint(
        m.SA, rule=lambda m, s, t: m.pc[s, t] <= float(sessions.max_charge_kw[s]) * m.charging[s, t]
    )


def define_v2g_modes(m: pyo.ConcreteModel, arrays: ScenarioArrays) -> None:
    """V2G sessions are in charge mode (``z = 0``) or discharge mode (``z = 1``).

    The binary exists on the rows ``SZ`` of :func:`binary_needs` only.
    ``pc <= max_charge * (1 - z)``; ``pd <= max_discharge * z``; in discharge mode
    ``e - pd * dt / eta_d >= floor_t``, written ``e - pd * dt / eta_d >= floor_t * z`` (the
    tightest big-M form: in charge mode ``pd = 0`` and ``e >= 0``), with ``floor_t``
    (:func:`v2g_floor_kwh`) the projection's V2G floor ``max(v2g floor, target - max_charge * eta_c
    * dt * (steps left after t))``. On every V2G row, ``e - pd * dt / eta_d >= L`` with
    ``L = max(min(arrival, v2g floor), 0)`` (:func:`v2g_lowest_kwh`): valid for every trajectory
    (charging only raises the energy, discharging stops at ``floor_t >= v2g floor``); it is the
    floor itself on rows without a binary (there ``floor_t <= L``) and tightens the relaxation.
    """
    sessions, dt = arrays.sessions, arrays.step_h
    m.v2g_charge_mode = pyo.Constraint(
        m.SZ, rule=lambda m, s, t: m.pc[s, t] <= float(sessions.max_charge_kw[s]) * (1 - m.z[s, t])
    )
    m.v2g_discharge_mode = pyo.Constraint(
        m.SZ, rule=lambda m, s, t: m.pd[s, t] <= float(sessions.max_discharge_kw[s]) * m.z[s, t]
    )

    def floor(m: pyo.ConcreteModel, s: int, t: int) -> pyo.Expression:
        floor_kwh = v2g_floor_kwh(arrays, s, t)
        if floor_kwh <= v2g_lowest_kwh(arrays, s):
            return pyo.Constraint.Skip  # v2g_min_soc is the floor here
        eta_d = float(sessions.discharge_efficiency_frac[s])
        # In charge mode pd = 0 and e >= 0, so the floor times z is the tightest valid big-M form.
        return m.e[s, t] - m.pd[s, t] * dt / eta_d >= floor_kwh * m.z[s, t]

    m.v2g_floor = pyo.Constraint(m.SZ, rule=floor)

    def min_soc(m: pyo.ConcreteModel, s: int, t: int) -> pyo.Expression:
        eta_d = float(sessions.discharge_efficiency_frac[s])
        return m.e[s, t] - m.pd[s, t] * dt / eta_d >= v2g_lowest_kwh(arrays, s)

    m.v2g_min_soc = pyo.Constraint(m.SV, rule=min_soc)
    no_v2g = [(s, t) for (s, t) in m.SP if (s, t) not in m.SV]
    for s, t in no_v2g:
        m.pd[s, t].fix(0.0)


def define_minimum_current(m: pyo.ConcreteModel, arrays: ScenarioArrays) -> None:
    """The minimum-current option (IEC 61851) on AC connectors, as the projection applies it.

    Charging is off, at least ``p_min``, or the final top-up that completes the energy wanted:
    ``pc <= max_charge * (y + w)``; ``pc >= p_min * y``; ``y + w <= 1``;
    ``e + eta_c * pc * dt >= target - M * (1 - w)`` (with the headroom constraint: ``= target``).
    ``p_min`` is the session's minimum (``SessionArrays.min_charge_kw``); ``y`` and ``w`` are
    binaries, only for sessions with a minimum.
    """
    sessions, dt = arrays.sessions, arrays.step_h
    rows = [(s, t) for s, t in m.SP if sessions.min_charge_kw[s] > 0]
    m.SM = pyo.Set(dimen=2, initialize=rows)
    m.y_min = pyo.Var(m.SM, domain=pyo.Binary)
    m.w_top = pyo.Var(m.SM, domain=pyo.Binary)

    def p_min(s: int) -> float:
        return float(sessions.min_charge_kw[s])

    m.min_on = pyo.Constraint(
        m.SM,
        rule=lambda m, s, t: m.pc[s, t] <= float(sessions.max_charge_kw[s]) * (m.y_min[s, t] + m.w_top[s, t]),
    )
    m.min_level = pyo.Constraint(m.SM, rule=lambda m, s, t: m.pc[s, t] >= p_min(s) * m.y_min[s, t])
    m.min_modes = pyo.Constraint(m.SM, rule=lambda m, s, t: m.y_min[s, t] + m.w_top[s, t] <= 1)

    def top_up(m: pyo.ConcreteModel, s: int, t: int) -> pyo.Expression:
        eta_c = float(sessions.charge_efficiency_frac[s])
        big_m = float(sessions.capacity_kwh[s])
        return m.e[s, t] + eta_c * m.pc[s, t] * dt >= float(sessions.target_energy_kwh[s]) - big_m * (
            1 - m.w_top[s, t]
        )

    m.min_top_up = pyo.Constraint(m.SM, rule=top_up)


def define_sharing(m: pyo.ConcreteModel, arrays: ScenarioArrays) -> None:
    """Charger ratings and feeder phase currents.

    ``sum_{s at k} (pc + pd) <= charger_max[k]``; ``sum_s (pc + pd) * a_per_kw[c(s), ph] <= phase limit``.
    """
    site, sessions = arrays.site, arrays.sessions
    at_step: dict[int, list[int]] = {}
    for s, t in m.SP:
        at_step.setdefault(t, []).append(s)
    charger_rows = [
        (k, t)
        for t, ss in at_step.items()
        for k in {int(site.connector_charger_index[sessions.connector_index[s]]) for s in ss}
    ]

    def charger(m: pyo.ConcreteModel, k: int, t: int) -> pyo.Expression:
        members = [s for s in at_step[t] if site.connector_charger_index[sessions.connector_index[s]] == k]
        return sum(m.pc[s, t] + m.pd[s, t] for s in members) <= float(site.charger_max_kw[k])

    m.charger_rating = pyo.Constraint(charger_rows, rule=charger)
    if np.isfinite(site.charging_phase_current_limit_a):
        phase_rows = [(ph, t) for t in at_step for ph in range(3)]

        def phase(m: pyo.ConcreteModel, ph: int, t: int) -> pyo.Expression:
            terms = [
                (m.pc[s, t] + m.pd[s, t])
                * float(site.connector_phase_a_per_kw[sessions.connector_index[s], ph])
                for s in at_step[t]
                if site.connector_phase_a_per_kw[sessions.connector_index[s], ph] > 0
            ]
            if not terms:
                return pyo.Constraint.Skip
            return sum(terms) <= site.charging_phase_current_limit_a

        m.phase_current = pyo.Constraint(phase_rows, rule=phase)


def define_storage(m: pyo.ConcreteModel, arrays: ScenarioArrays, needs: BinaryNeeds) -> None:
    """Site storage.

    ``E[0] = initial``; ``E[t+1] = E[t] * keep + dt * (eta_c * sc - sd / eta_d)`` with
    ``keep = (1 - sd_h) ** dt``; ``E[t] * keep + eta_c * sc * dt <= E_max``. On the steps ``TS`` of
    :func:`binary_needs` a mode binary ``zs`` (1: discharge mode) excludes charging and discharging
    at once: ``sd <= sd_max * zs``, ``sc <= sc_max * (1 - zs)``. The floor
    ``E[t] * keep - sd * dt / eta_d >= E_min`` holds in both modes, except with self-discharge and
    ``E_min > 0`` (the storage may decay below ``E_min``, then only charge), where it holds in
    discharge mode only and is written with the valid decay bound
    ``E[t] * keep - sd * dt / eta_d >= e0 * keep ** (t + 1) + (E_min - e0 * keep ** (t + 1)) * zs``
    with ``e0 = min(initial, E_min)`` (in charge mode ``sd = 0`` and ``E[t] >= e0 * keep ** t``:
    without a discharge the storage holds at least the initial energy decayed, and after a discharge
    at least ``E_min`` decayed since; an MPC window may start below ``E_min``).
    """
    site, dt = arrays.site, arrays.step_h
    keep = float((1.0 - site.storage_self_discharge_per_h_frac) ** dt)
    eta_c, eta_d = site.storage_charge_efficiency_frac, site.storage_discharge_efficiency_frac
    e_min = site.storage_min_energy_kwh
    m.E[0].fix(site.storage_initial_energy_kwh)
    m.storage_balance = pyo.Constraint(
        m.T, rule=lambda m, t: m.E[t + 1] == m.E[t] * keep + dt * (eta_c * m.sc[t] - m.sd[t] / eta_d)
    )
    m.storage_upper = pyo.Constraint(
        m.T, rule=lambda m, t: m.E[t] * keep + eta_c * m.sc[t] * dt <= site.storage_max_energy_kwh
    )
    m.zs = pyo.Var(m.TS, domain=pyo.Binary)
    m.storage_modes = pyo.Constraint(
        m.TS, rule=lambda m, t: m.sd[t] <= site.storage_max_discharge_kw * m.zs[t]
    )
    m.storage_charge_mode = pyo.Constraint(
        m.TS, rule=lambda m, t: m.sc[t] <= site.storage_max_charge_kw * (1 - m.zs[t])
    )
    if needs.is_storage_floor_conditional:
        # The lowest level reachable without a discharge: the initial energy may already lie below
        # E_min (an MPC window starting from a decayed storage), so the bound starts from the lower.
        e_start = min(site.storage_initial_energy_kwh, e_min)

        def lower(m: pyo.ConcreteModel, t: int) -> pyo.Expression:
            decayed = e_start * keep ** (t + 1)
            mode = (e_min - decayed) * m.zs[t] if t in needs.storage_mode_steps else e_min - decayed
            return m.E[t] * keep - m.sd[t] * dt / eta_d >= decayed + mode

        m.storage_lower = pyo.Constraint(m.T, rule=lower)
    else:
        m.storage_lower = pyo.Constraint(m.T, rule=lambda m, t: m.E[t] * keep - m.sd[t] * dt / eta_d >= e_min)


def define_bus(m: pyo.ConcreteModel, arrays: ScenarioArrays) -> None:
    """The site bus and the grid limits.

    ``imp - exp = base + sum_s (pc - pd) + sc - sd - pv``; ``imp <= import_limit + vi``;
    ``exp <= export_limit + ve``; no PV exported at a negative export price
    (``exp <= ...`` with ``pv`` curtailed first, as the physics does).
    """
    series = arrays.series
    at_step: dict[int, list[int]] = {}
    for s, t in m.SP:
        at_step.setdefault(t, []).append(s)

    def balance(m: pyo.ConcreteModel, t: int) -> pyo.Expression:
        ev = sum(m.pc[s, t] - m.pd[s, t] for s in at_step.get(t, []))
        return m.imp[t] - m.exp[t] == float(series.base_load_kw[t]) + ev + m.sc[t] - m.sd[t] - m.pv[t]

    m.bus = pyo.Constraint(m.T, rule=balance)
    m.import_limit = pyo.Constraint(
        m.T, rule=lambda m, t: m.imp[t] <= float(series.import_limit_kw[t]) + m.vi[t]
    )
    m.export_limit = pyo.Constraint(
        m.T, rule=lambda m, t: m.exp[t] <= float(series.export_limit_kw[t]) + m.ve[t]
    )
    define_physics_rules(m, arrays, at_step)


def define_physics_rules(m: pyo.ConcreteModel, arrays: ScenarioArrays, at_step: dict[int, list[int]]) -> None:
    """What the physics decides by itself, forced on the solver where prices would tempt it otherwise.

    * Never import and export at once (``imp <= M * d``, ``exp <= M * (1 - d)``): only where the
      export price exceeds the import price.
    * PV is curtailed only to keep export at the allowed level (the export limit, or 0 at a negative
      export price) and never while importing: ``pv_available - pv <= pv_available * c``,
      ``imp <= M * (1 - c)``, ``exp >= allowed * c``; only on steps with PV where a
      price is not positive or the export limit is below the PV available.

    The exclusion of charging and discharging the storage or a V2G EV at once is in
    :func:`define_storage` and :func:`define_v2g_modes`, where :func:`binary_needs` puts it.
    """
    site, series, sessions = arrays.site, arrays.series, arrays.sessions
    pi, pe = series.import_price_eur_per_kwh, series.export_price_eur_per_kwh
    pv_kw = series.pv_available_kw

    def big_import(t: int) -> float:
        ev = sum(float(sessions.max_charge_kw[s]) for s in at_step.get(t, []))
        return float(series.base_load_kw[t]) + ev + site.storage_max_charge_kw + 1.0

    def big_export(t: int) -> float:
        ev = sum(float(sessions.max_discharge_kw[s]) for s in at_step.get(t, []))
        return float(pv_kw[t]) + ev + site.storage_max_discharge_kw + 1.0

    both = [t for t in range(arrays.n_steps) if pe[t] > pi[t]]
    m.d_imp = pyo.Var(both, domain=pyo.Binary)
    m.one_way_import = pyo.Constraint(both, rule=lambda m, t: m.imp[t] <= big_import(t) * m.d_imp[t])
    m.one_way_export = pyo.Constraint(both, rule=lambda m, t: m.exp[t] <= big_export(t) * (1 - m.d_imp[t]))
    curtail = [
        t
        for t in range(arrays.n_steps)
        if pv_kw[t] > 0 and (pi[t] <= 0 or pe[t] <= 0 or series.export_limit_kw[t] < pv_kw[t])
    ]
    m.c_pv = pyo.Var(curtail, domain=pyo.Binary)
    m.curtail_on = pyo.Constraint(
        curtail, rule=lambda m, t: float(pv_kw[t]) - m.pv[t] <= float(pv_kw[t]) * m.c_pv[t]
    )
    m.curtail_no_import = pyo.Constraint(
        curtail, rule=lambda m, t: m.imp[t] <= big_import(t) * (1 - m.c_pv[t])
    )

    def at_allowed(m: pyo.ConcreteModel, t: int) -> pyo.Expression:
        allowed = 0.0 if pe[t] < 0 else float(series.export_limit_kw[t])
        if allowed == 0.0:
            return pyo.Constraint.Skip
        return m.exp[t] >= allowed * m.c_pv[t]

    m.curtail_at_allowed = pyo.Constraint(curtail, rule=at_allowed)


def define_peak_and_unmet(m: pyo.ConcreteModel, arrays: ScenarioArrays, windows: list[range]) -> None:
    """Peak import and unmet energy.

    ``peak >= imp[t]``; ``u[s] >= target - e[s, departure] - max_charge * eta_c * dt * steps after the
    horizon`` (the scorer's rule; sessions without a step in the horizon keep their arrival energy).
    """
    sessions, dt, n_steps = arrays.sessions, arrays.step_h, arrays.n_steps
    m.peak_def = pyo.Constraint(m.T, rule=lambda m, t: m.peak >= m.imp[t])

    def unmet(m: pyo.ConcreteModel, s: int) -> pyo.Expression:
        steps_left = max(int(sessions.end_step[s]) - n_steps, 0)
        possible = float(sessions.max_charge_kw[s] * sessions.charge_efficiency_frac[s]) * dt * steps_left
        final = m.e[s, windows[s].stop] if len(windows[s]) else float(sessions.arrival_energy_kwh[s])
        return m.u[s] >= float(sessions.target_energy_kwh[s]) - final - possible

    m.unmet_def = pyo.Constraint(range(sessions.n_sessions), rule=unmet)


def define_objective(m: pyo.ConcreteModel, arrays: ScenarioArrays) -> None:
    """Minimise the scenario's named objective plus the penalised limit slack.

    With the weights ``w`` of :mod:`smac_rl.core.objectives` (``cost`` by default):
    ``w_energy * sum_t dt * (imp * p_imp - exp * p_exp) + w_demand * demand_rate * max(peak - billing_peak, 0)
    + w_degradation * (v2g_deg * dt * sum pd + storage_deg * dt * sum (sc + sd)) + penalty * sum u
    + w_peak * peak + w_violation * dt * sum (vi + ve) + w_tracking * dt * sum (dev_up + dev_down)
    + 1000 * dt * sum (vi + ve)``, where ``dev_up - dev_down = imp - exp - setpoint`` (both >= 0)
    is defined only when the tracking weight is positive. The optimum's replay is scored by the
    scorer, whose ``objective_eur`` is this objective without the slack penalty.
    """
    site, series, dt, w = arrays.site, arrays.series, arrays.step_h, arrays.objective
    m.demand = pyo.Var(domain=pyo.NonNegativeReals)
    m.demand_def = pyo.Constraint(expr=m.demand >= m.peak - site.billing_peak_start_kw)
    energy = sum(
        dt
        * (
            m.imp[t] * float(series.import_price_eur_per_kwh[t])
            - m.exp[t] * float(series.export_price_eur_per_kwh[t])
        )
        for t in m.T
    )
    degradation = site.v2g_degradation_cost_eur_per_kwh * dt * sum(m.pd[s, t] for s, t in m.SP) + (
        site.storage_degradation_cost_eur_per_kwh * dt * sum(m.sc[t] + m.sd[t] for t in m.T)
    )
    unmet = arrays.unmet_energy_penalty_eur_per_kwh * sum(m.u[s] for s in m.u)
    violation_kwh = dt * sum(m.vi[t] + m.ve[t] for t in m.T)
    objective = (
        w.energy_weight_frac * energy
        + w.demand_charge_weight_frac * site.demand_charge_eur_per_kw * m.demand
        + w.degradation_weight_frac * degradation
        + w.unmet_weight_frac * unmet
        + w.peak_eur_per_kw * m.peak
        + (w.violation_eur_per_kwh + LIMIT_VIOLATION_PENALTY_EUR_PER_KWH) * violation_kwh
    )
    if w.tracking_eur_per_kwh > 0.0:
        m.dev_up = pyo.Var(m.T, domain=pyo.NonNegativeReals)
        m.dev_down = pyo.Var(m.T, domain=pyo.NonNegativeReals)
        m.tracking_def = pyo.Constraint(
            m.T,
            rule=lambda m, t: (
                m.dev_up[t] - m.dev_down[t] == m.imp[t] - m.exp[t] - float(series.grid_setpoint_kw[t])
            ),
        )
        objective = objective + w.tracking_eur_per_kwh * dt * sum(m.dev_up[t] + m.dev_down[t] for t in m.T)
    m.cost = pyo.Objective(expr=objective, sense=pyo.minimize)
