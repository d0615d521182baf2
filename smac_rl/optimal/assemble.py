"""The optimum's standard form assembled straight from the scenario's arrays, for the MPC's many solves.

:func:`smac_rl.optimal.model.build_model` is THE definition of the optimum: one ``define_*``
function per constraint family, with its equation. Building it in pyomo and compiling it to the
standard form takes most of an MPC step (:mod:`smac_rl.optimal.mpc`); this module writes the same
columns, bounds, rows, integrality and objective with vectorised numpy and scipy.sparse and hands
them to HiGHS through :meth:`smac_rl.optimal.matrix_solve.MatrixSolver.solve_lp` (the solve,
rounding and reading of the status are shared). Each block of :func:`assemble` names the family it
mirrors; a change to the model must be made in both, and tests/optimal/test_assemble.py checks that
both give the same optimum on random scenarios.

Covered: every family of :func:`~smac_rl.optimal.model.build_model` except the minimum-current
option (:func:`~smac_rl.optimal.model.define_minimum_current`): session energy, the session box
(taper, headroom, V2G sessions arriving above their target), V2G modes and floors where
:func:`~smac_rl.optimal.model.binary_needs` puts them (or any given :class:`BinaryNeeds`), charger
and phase sharing, storage (modes, conditional floor), bus, grid limits and the physics rules,
peak and unmet energy, every objective's weights (tracking included), and the MPC's peak floor.
Left to pyomo: a scenario with a session on a connector with a minimum charging current
(:func:`unsupported_features` names it; :func:`assemble` refuses it, and the MPC falls back).

Where the two standard forms differ in form, not in the feasible set: the columns are ordered by
family; the variables pyomo fixes (``E[0]``, ``pd`` of sessions without V2G) are a column with
equal bounds or no column at all.
"""

from __future__ import annotations

import dataclasses
import time

import highspy
import numpy as np

from smac_rl.core.arrays import ScenarioArrays
from smac_rl.core.arraytypes import BoolArray, FloatArray, IntArray
from smac_rl.optimal.matrix_solve import MatrixSolver, highs_lp
from smac_rl.optimal.model import LIMIT_VIOLATION_PENALTY_EUR_PER_KWH, BinaryNeeds, binary_needs
from smac_rl.optimal.solve import ModelSolution

_INF = float(np.inf)
_ROUNDING_TOL = 1e-7
"""Tolerance of the binary rounding, as :func:`smac_rl.optimal.matrix_solve.rounded_binaries`."""


def unsupported_features(arrays: ScenarioArrays) -> tuple[str, ...]:
    """What of a scenario the assembler does not cover (the MPC builds those windows in pyomo).

    Args:
        arrays: The compiled scenario.

    Returns:
        One line per feature not covered; empty when :func:`assemble` builds the scenario.
    """
    sessions, site = arrays.sessions, arrays.site
    length = np.minimum(sessions.end_step, arrays.n_steps) - sessions.first_step
    min_kw = site.connector_min_charge_kw[sessions.connector_index]
    if bool(((length > 0) & (min_kw > 0.0)).any()):
        return ("minimum charging current (define_minimum_current: y_min, w_top binaries)",)
    return ()


def supports(arrays: ScenarioArrays) -> bool:
    """Whether :func:`assemble` builds this scenario (:func:`unsupported_features` is empty)."""
    return not unsupported_features(arrays)


class _Columns:
    """Columns with bounds, costs and integrality, allocated family by family."""

    def __init__(self) -> None:
        self.n = 0
        self._lower: list[FloatArray] = []
        self._upper: list[FloatArray] = []
        self._integer: list[BoolArray] = []

    def add(
        self, n: int, lower: FloatArray | float, upper: FloatArray | float, integer: bool = False
    ) -> IntArray:
        """``n`` new columns with their bounds; their indices."""
        self._lower.append(np.broadcast_to(np.asarray(lower, dtype=np.float64), (n,)))
        self._upper.append(np.broadcast_to(np.asarray(upper, dtype=np.float64), (n,)))
        self._integer.append(np.full(n, integer))
        index = np.arange(self.n, self.n + n, dtype=np.int64)
        self.n += n
        return index

    def bounds(self) -> tuple[FloatArray, FloatArray, BoolArray]:
        """Lower and upper bounds and integrality of every column."""
        lower = np.concatenate(self._lower) if self._lower else np.zeros(0)
        upper = np.concatenate(self._upper) if self._upper else np.zeros(0)
        integer = np.concatenate(self._integer) if self._integer else np.zeros(0, dtype=bool)
        return lower, upper, integer


class _Rows:
    """Rows ``lower <= sum_j a_ij x_j <= upper``, allocated family by family, filled as triplets."""

    def __init__(self) -> None:
        self.n = 0
        self._lower: list[FloatArray] = []
        self._upper: list[FloatArray] = []
        self._rows: list[IntArray] = []
        self._cols: list[IntArray] = []
        self._vals: list[FloatArray] = []

    def add(self, n: int, lower: FloatArray | float, upper: FloatArray | float) -> IntArray:
        """``n`` new rows with their bounds; their indices."""
        self._lower.append(np.broadcast_to(np.asarray(lower, dtype=np.float64), (n,)))
        self._upper.append(np.broadcast_to(np.asarray(upper, dtype=np.float64), (n,)))
        index = np.arange(self.n, self.n + n, dtype=np.int64)
        self.n += n
        return index

    def eq(self, rhs: FloatArray | float, n: int) -> IntArray:
        """``n`` rows ``== rhs``."""
        return self.add(n, rhs, rhs)

    def le(self, rhs: FloatArray | float, n: int) -> IntArray:
        """``n`` rows ``<= rhs``."""
        return self.add(n, -_INF, rhs)

    def ge(self, rhs: FloatArray | float, n: int) -> IntArray:
        """``n`` rows ``>= rhs``."""
        return self.add(n, rhs, _INF)

    def term(self, rows: IntArray, cols: IntArray, coefficient: FloatArray | float) -> None:
        """Add ``coefficient * x[cols]`` to ``rows`` (entries of one row and column are summed)."""
        rows = np.asarray(rows, dtype=np.int64)
        self._rows.append(rows)
        self._cols.append(np.asarray(cols, dtype=np.int64))
        self._vals.append(np.broadcast_to(np.asarray(coefficient, dtype=np.float64), rows.shape))

    def matrix(self, n_cols: int) -> tuple[RowMatrix, FloatArray, FloatArray]:
        """``A`` by rows (entries of one row and column summed, zeros dropped) and the row bounds."""
        rows = np.concatenate(self._rows) if self._rows else np.zeros(0, dtype=np.int64)
        cols = np.concatenate(self._cols) if self._cols else np.zeros(0, dtype=np.int64)
        vals = np.concatenate(self._vals) if self._vals else np.zeros(0)
        keys, entry = np.unique(rows * n_cols + cols, return_inverse=True)
        data = np.bincount(entry, weights=vals, minlength=keys.shape[0])
        keep = data != 0.0
        keys, data = keys[keep], data[keep]
        indptr = np.zeros(self.n + 1, dtype=np.int64)
        np.cumsum(np.bincount(keys // n_cols, minlength=self.n), out=indptr[1:])
        a = RowMatrix(indptr=indptr, indices=keys % n_cols, data=data, shape=(self.n, n_cols))
        lower = np.concatenate(self._lower) if self._lower else np.zeros(0)
        upper = np.concatenate(self._upper) if self._upper else np.zeros(0)
        return a, lower, upper


@dataclasses.dataclass(frozen=True)
class RowMatrix:
    """A sparse matrix compressed by rows (:class:`~smac_rl.optimal.matrix_solve.CsrMatrix`).

    Attributes:
        indptr: Start of each row's entries, ``(m + 1,)``.
        indices: Column of each entry, ``(nnz,)``.
        data: Value of each entry, ``(nnz,)``.
        shape: ``(m, n)``.
    """

    indptr: IntArray
    indices: IntArray
    data: FloatArray
    shape: tuple[int, int]

    def toarray(self) -> FloatArray:
        """The dense matrix (for tests and small problems)."""
        dense = np.zeros(self.shape)
        rows = np.repeat(np.arange(self.shape[0]), np.diff(self.indptr))
        dense[rows, self.indices] = self.data
        return dense


@dataclasses.dataclass(frozen=True)
class AssembledProblem:
    """The optimum's standard form, ``min cost @ x`` s.t. ``row_lower <= A x <= row_upper``, bounds.

    Attributes:
        arrays: The scenario it was assembled from.
        cost: Objective coefficients, ``(n,)`` [EUR per unit of each column].
        col_lower: Column lower bounds, ``(n,)``.
        col_upper: Column upper bounds, ``(n,)``.
        is_integer: Binary columns, ``(n,)``.
        matrix: ``A``, ``(m, n)``.
        row_lower: Row lower bounds, ``(m,)``.
        row_upper: Row upper bounds, ``(m,)``.
        pc_col: Column of ``pc`` of each plugged-in ``(session, step)`` row, ``(P,)``.
        pd_col: Column of ``pd`` of each row, -1 for sessions without V2G, ``(P,)``.
        row_session: Session of each row, ``(P,)``.
        row_step: Step of each row, ``(P,)``.
        sc_col: Column of the storage charging power ``sc[t]``, ``(T,)``.
        sd_col: Column of the storage discharging power ``sd[t]``, ``(T,)``.
        mode_binary: Binaries chosen by which of two powers is larger (``z``, ``zs``, ``d_imp``):
            the binary's, the "on" power's and the "off" power's columns, each ``(B,)``.
        strict_binary: Binaries set where ``a * x[col] + b > tol`` (``charging``, ``c_pv``): the
            binary's column, ``col``, ``a`` and ``b``.
    """

    arrays: ScenarioArrays
    cost: FloatArray
    col_lower: FloatArray
    col_upper: FloatArray
    is_integer: BoolArray
    matrix: RowMatrix
    row_lower: FloatArray
    row_upper: FloatArray
    pc_col: IntArray
    pd_col: IntArray
    row_session: IntArray
    row_step: IntArray
    sc_col: IntArray
    sd_col: IntArray
    mode_binary: tuple[IntArray, IntArray, IntArray]
    strict_binary: tuple[IntArray, IntArray, FloatArray, FloatArray]

    @property
    def is_mip(self) -> bool:
        """Whether any column is binary."""
        return bool(self.is_integer.any())

    @property
    def n_binaries(self) -> int:
        """Binary columns."""
        return int(self.is_integer.sum())

    def to_lp(self) -> highspy.HighsLp:
        """The standard form as a HiGHS LP."""
        return highs_lp(
            self.cost,
            0.0,
            self.col_lower,
            self.col_upper,
            self.row_lower,
            self.row_upper,
            self.matrix,
            self.is_integer if self.is_mip else None,
        )

    def profile(self, values: FloatArray) -> tuple[FloatArray, FloatArray]:
        """Connector setpoints ``pc - pd`` ``(T, C)`` and storage setpoints ``sc - sd`` ``(T,)`` [kW]."""
        arrays = self.arrays
        ev_power = np.zeros((arrays.n_steps, arrays.site.n_connectors))
        discharge = np.where(self.pd_col >= 0, values[np.maximum(self.pd_col, 0)], 0.0)
        connector = arrays.sessions.connector_index[self.row_session]
        ev_power[self.row_step, connector] = values[self.pc_col] - discharge
        return ev_power, values[self.sc_col] - values[self.sd_col]

    def rounded(self, values: FloatArray) -> FloatArray:
        """Binary values from a relaxed solution, by the rule of ``rounded_binaries``.

        ``z``, ``zs``, ``d_imp``: 1 where the "on" power exceeds the "off" one, 0 where the reverse,
        the relaxed value rounded on a tie; ``charging``: 1 where ``pc > 0``; ``c_pv``: 1 where PV
        is curtailed.
        """
        out = np.array(values, dtype=np.float64)
        binary, on, off = self.mode_binary
        on_v, off_v = values[on], values[off]
        out[binary] = np.where(
            on_v > off_v + _ROUNDING_TOL,
            1.0,
            np.where(off_v > on_v + _ROUNDING_TOL, 0.0, np.round(values[binary])),
        )
        binary, col, a, b = self.strict_binary
        out[binary] = np.where(a * values[col] + b > _ROUNDING_TOL, 1.0, 0.0)
        return out


def assemble(
    arrays: ScenarioArrays, needs: BinaryNeeds | None = None, peak_floor_kw: float | None = None
) -> AssembledProblem:
    """The standard form of :func:`smac_rl.optimal.model.build_model` for a scenario, from its arrays.

    Args:
        arrays: The compiled scenario.
        needs: Where mode binaries go; :func:`~smac_rl.optimal.model.binary_needs` by default.
        peak_floor_kw: The MPC's ``peak >= peak_floor`` row (:mod:`smac_rl.optimal.mpc`); None: none.

    Returns:
        The standard form and how to read its solution.

    Raises:
        NotImplementedError: For a scenario with a feature of :func:`unsupported_features`.
    """
    missing = unsupported_features(arrays)
    if missing:
        raise NotImplementedError(
            f"assemble: scenario {arrays.name!r} uses {'; '.join(missing)}; "
            "build it with smac_rl.optimal.model.build_model"
        )
    needs = binary_needs(arrays) if needs is None else needs
    sessions, site, series, w = arrays.sessions, arrays.site, arrays.series, arrays.objective
    n_steps, dt, n_sessions = arrays.n_steps, arrays.step_h, arrays.sessions.n_sessions
    cols, rows = _Columns(), _Rows()
    costs: list[tuple[IntArray, FloatArray | float]] = []

    # Index sets (build_model): SP = plugged-in (session, step) rows, SE = their energies.
    first = sessions.first_step.astype(np.int64)
    length = np.maximum(np.minimum(sessions.end_step, n_steps) - first, 0).astype(np.int64)
    has_window = length > 0
    sp_start = np.cumsum(length) - length
    rs = np.repeat(np.arange(n_sessions, dtype=np.int64), length)  # session of each SP row
    n_sp = int(rs.shape[0])
    rt = first[rs] + np.arange(n_sp, dtype=np.int64) - sp_start[rs]  # step of each SP row
    se_length = np.where(has_window, length + 1, 0)
    se_start = np.cumsum(se_length) - se_length
    is_v2g = sessions.max_discharge_kw > 0
    sv = is_v2g[rs]  # SV: V2G rows
    n_sv = int(sv.sum())
    sz = np.zeros(n_sp, dtype=bool)  # SZ: V2G rows with a mode binary
    for s, t in needs.v2g_mode_rows:
        if has_window[s] and first[s] <= t < first[s] + length[s]:
            sz[sp_start[s] + t - first[s]] = True
    sz &= sv
    arrival, target = sessions.arrival_energy_kwh, sessions.target_energy_kwh
    sa = sv & (arrival[rs] > target[rs])  # SA: V2G rows of sessions arriving above their target
    max_charge, max_discharge = sessions.max_charge_kw, sessions.max_discharge_kw
    eta_c, eta_d = sessions.charge_efficiency_frac, sessions.discharge_efficiency_frac
    cap = sessions.capacity_kwh

    # define_variables (plus the binaries each family declares).
    pc = cols.add(n_sp, 0.0, max_charge[rs])
    pd = np.full(n_sp, -1, dtype=np.int64)
    pd[sv] = cols.add(n_sv, 0.0, max_discharge[rs[sv]])  # pd of other rows is fixed at 0: no column
    se_session = np.repeat(np.arange(n_sessions, dtype=np.int64), se_length)
    e_base = cols.add(int(se_length.sum()), 0.0, cap[se_session])[0] if se_length.sum() else 0
    e_now = e_base + se_start[rs] + rt - first[rs]  # e[s, t] of each SP row
    e_next = e_now + 1
    z = cols.add(int(sz.sum()), 0.0, 1.0, integer=True)
    sc = cols.add(n_steps, 0.0, site.storage_max_charge_kw)
    sd = cols.add(n_steps, 0.0, site.storage_max_discharge_kw)
    e_initial = np.full(1, site.storage_initial_energy_kwh)  # E[0] is fixed at the initial energy
    storage_e = cols.add(
        n_steps + 1,
        np.concatenate([e_initial, np.zeros(n_steps)]),
        np.concatenate([e_initial, np.full(n_steps, max(site.storage_capacity_kwh, 0.0))]),
    )
    imp, exp = cols.add(n_steps, 0.0, _INF), cols.add(n_steps, 0.0, _INF)
    pv = cols.add(n_steps, 0.0, series.pv_available_kw)
    vi, ve = cols.add(n_steps, 0.0, _INF), cols.add(n_steps, 0.0, _INF)
    peak = cols.add(1, 0.0, _INF)
    unmet = cols.add(n_sessions, 0.0, _INF)

    # define_session_energy: e[s, first] = arrival; e[s,t+1] = e[s,t] + dt * (eta_c pc - pd / eta_d).
    starting = np.flatnonzero(has_window)
    r = rows.eq(arrival[starting], starting.shape[0])
    rows.term(r, e_base + se_start[starting], 1.0)
    r = rows.eq(0.0, n_sp)
    rows.term(r, e_next, 1.0)
    rows.term(r, e_now, -1.0)
    rows.term(r, pc, -dt * eta_c[rs])
    rows.term(r[sv], pd[sv], dt / eta_d[rs[sv]])

    # define_session_box: taper pc * cap * (1 - s0) + ev_max * e <= ev_max * cap (s0 < 1); headroom.
    s0 = sessions.taper_start_soc_frac[rs]
    tapered = np.flatnonzero(s0 < 1.0)
    ts = rs[tapered]
    ev_max = sessions.ev_max_power_kw
    r = rows.le(ev_max[ts] * cap[ts], tapered.shape[0])
    rows.term(r, pc[tapered], cap[ts] * (1.0 - s0[tapered]))
    rows.term(r, e_now[tapered], ev_max[ts])
    charging = cols.add(int(sa.sum()), 0.0, 1.0, integer=True)
    # headroom, SA rows: e + eta_c pc dt <= target + M (1 - charging), M = cap + eta_c max_charge dt.
    a_rows = np.flatnonzero(sa)
    sa_s = rs[a_rows]
    big_m = cap[sa_s] + eta_c[sa_s] * max_charge[sa_s] * dt
    r = rows.le(target[sa_s] + big_m, a_rows.shape[0])
    rows.term(r, e_now[a_rows], 1.0)
    rows.term(r, pc[a_rows], eta_c[sa_s] * dt)
    rows.term(r, charging, big_m)
    # headroom, sessions without V2G arriving at or above their target: pc == 0.
    full = np.flatnonzero(~sv & (arrival[rs] >= target[rs]))
    r = rows.eq(0.0, full.shape[0])
    rows.term(r, pc[full], 1.0)
    # headroom, the other rows: e + eta_c pc dt <= target.
    other = np.flatnonzero(~sa & ~(~sv & (arrival[rs] >= target[rs])))
    other_s = rs[other]
    r = rows.le(target[other_s], other.shape[0])
    rows.term(r, e_now[other], 1.0)
    rows.term(r, pc[other], eta_c[other_s] * dt)
    # charging_mode: pc <= max_charge * charging.
    r = rows.le(0.0, a_rows.shape[0])
    rows.term(r, pc[a_rows], 1.0)
    rows.term(r, charging, -max_charge[sa_s])

    # define_v2g_modes: pc <= max_charge (1 - z); pd <= max_discharge z; floors.
    z_rows = np.flatnonzero(sz)
    z_s = rs[z_rows]
    r = rows.le(max_charge[z_s], z_rows.shape[0])
    rows.term(r, pc[z_rows], 1.0)
    rows.term(r, z, max_charge[z_s])
    r = rows.le(0.0, z_rows.shape[0])
    rows.term(r, pd[z_rows], 1.0)
    rows.term(r, z, -max_discharge[z_s])
    # floor_t = max(v2g floor, target - max_charge * eta_c * dt * steps after t, 0) (v2g_floor_kwh);
    # L = max(min(arrival, v2g floor), 0) (v2g_lowest_kwh).
    steps_after = np.maximum(sessions.end_step[rs] - rt - 1, 0)
    reachable = target[rs] - (max_charge[rs] * eta_c[rs]) * dt * steps_after
    floor_t = np.maximum(np.maximum(sessions.floor_energy_kwh[rs], reachable), 0.0)
    lowest = np.maximum(np.minimum(arrival, sessions.floor_energy_kwh), 0.0)[rs]
    conditional = floor_t[z_rows] > lowest[z_rows]
    f_rows = z_rows[conditional]
    r = rows.ge(0.0, f_rows.shape[0])  # e - pd dt / eta_d >= floor_t z
    rows.term(r, e_now[f_rows], 1.0)
    rows.term(r, pd[f_rows], -dt / eta_d[rs[f_rows]])
    rows.term(r, z[conditional], -floor_t[f_rows])
    v_rows = np.flatnonzero(sv)
    r = rows.ge(lowest[v_rows], v_rows.shape[0])  # e - pd dt / eta_d >= L
    rows.term(r, e_now[v_rows], 1.0)
    rows.term(r, pd[v_rows], -dt / eta_d[rs[v_rows]])

    # define_minimum_current: not covered (unsupported_features).

    # define_sharing: sum_{s at k} (pc + pd) <= charger_max[k]; phase currents.
    charger = site.connector_charger_index[sessions.connector_index[rs]].astype(np.int64)
    n_chargers = int(site.charger_max_kw.shape[0])
    keys, group = np.unique(rt * n_chargers + charger, return_inverse=True)
    r = rows.le(site.charger_max_kw[keys % n_chargers], keys.shape[0])
    rows.term(r[group], pc, 1.0)
    rows.term(r[group][sv], pd[sv], 1.0)
    if np.isfinite(site.charging_phase_current_limit_a):
        a_per_kw = site.connector_phase_a_per_kw[sessions.connector_index[rs]]  # (P, 3)
        row_of, phase = np.nonzero(a_per_kw > 0)
        keys, group = np.unique(rt[row_of] * 3 + phase, return_inverse=True)
        r = rows.le(site.charging_phase_current_limit_a, keys.shape[0])
        coefficient = a_per_kw[row_of, phase]
        rows.term(r[group], pc[row_of], coefficient)
        with_pd = sv[row_of]
        rows.term(r[group][with_pd], pd[row_of][with_pd], coefficient[with_pd])

    # define_storage: balance, upper, modes on TS, floor (conditional with self-discharge and E_min).
    keep = float((1.0 - site.storage_self_discharge_per_h_frac) ** dt)
    s_eta_c, s_eta_d = site.storage_charge_efficiency_frac, site.storage_discharge_efficiency_frac
    e_min = site.storage_min_energy_kwh
    e_t, e_t1 = storage_e[:-1], storage_e[1:]
    r = rows.eq(0.0, n_steps)  # E[t+1] = E[t] keep + dt (eta_c sc - sd / eta_d)
    rows.term(r, e_t1, 1.0)
    rows.term(r, e_t, -keep)
    rows.term(r, sc, -dt * s_eta_c)
    rows.term(r, sd, dt / s_eta_d)
    r = rows.le(site.storage_max_energy_kwh, n_steps)  # E[t] keep + eta_c sc dt <= E_max
    rows.term(r, e_t, keep)
    rows.term(r, sc, s_eta_c * dt)
    ts_steps = np.asarray(sorted(needs.storage_mode_steps), dtype=np.int64)
    zs = cols.add(ts_steps.shape[0], 0.0, 1.0, integer=True)
    r = rows.le(0.0, ts_steps.shape[0])  # sd <= sd_max zs
    rows.term(r, sd[ts_steps], 1.0)
    rows.term(r, zs, -site.storage_max_discharge_kw)
    r = rows.le(site.storage_max_charge_kw, ts_steps.shape[0])  # sc <= sc_max (1 - zs)
    rows.term(r, sc[ts_steps], 1.0)
    rows.term(r, zs, site.storage_max_charge_kw)
    steps = np.arange(n_steps, dtype=np.int64)
    if needs.is_storage_floor_conditional:
        e_start = min(site.storage_initial_energy_kwh, e_min)
        decayed = e_start * keep ** (steps + 1).astype(np.float64)
        has_mode = np.isin(steps, ts_steps)
        r = rows.ge(np.where(has_mode, decayed, decayed + (e_min - decayed)), n_steps)
        rows.term(r[ts_steps], zs, -(e_min - decayed[ts_steps]))
    else:
        r = rows.ge(e_min, n_steps)
    rows.term(r, e_t, keep)
    rows.term(r, sd, -dt / s_eta_d)

    # define_bus: imp - exp = base + sum_s (pc - pd) + sc - sd - pv; imp <= limit + vi; exp <= limit + ve.
    r = rows.eq(series.base_load_kw, n_steps)
    rows.term(r, imp, 1.0)
    rows.term(r, exp, -1.0)
    rows.term(r[rt], pc, -1.0)
    rows.term(r[rt][sv], pd[sv], 1.0)
    rows.term(r, sc, -1.0)
    rows.term(r, sd, 1.0)
    rows.term(r, pv, 1.0)
    r = rows.le(series.import_limit_kw, n_steps)
    rows.term(r, imp, 1.0)
    rows.term(r, vi, -1.0)
    r = rows.le(series.export_limit_kw, n_steps)
    rows.term(r, exp, 1.0)
    rows.term(r, ve, -1.0)

    # define_physics_rules: one-way exchange where export pays more; PV curtailed only at the limit.
    pi, pe, pv_kw = series.import_price_eur_per_kwh, series.export_price_eur_per_kwh, series.pv_available_kw
    ev_charge_kw = np.bincount(rt, weights=max_charge[rs], minlength=n_steps)
    ev_discharge_kw = np.bincount(rt, weights=max_discharge[rs], minlength=n_steps)
    big_import = series.base_load_kw + ev_charge_kw + site.storage_max_charge_kw + 1.0
    big_export = pv_kw + ev_discharge_kw + site.storage_max_discharge_kw + 1.0
    both = np.flatnonzero(pe > pi)
    d_imp = cols.add(both.shape[0], 0.0, 1.0, integer=True)
    r = rows.le(0.0, both.shape[0])  # imp <= M d
    rows.term(r, imp[both], 1.0)
    rows.term(r, d_imp, -big_import[both])
    r = rows.le(big_export[both], both.shape[0])  # exp <= M (1 - d)
    rows.term(r, exp[both], 1.0)
    rows.term(r, d_imp, big_export[both])
    curtail = np.flatnonzero((pv_kw > 0) & ((pi <= 0) | (pe <= 0) | (series.export_limit_kw < pv_kw)))
    c_pv = cols.add(curtail.shape[0], 0.0, 1.0, integer=True)
    r = rows.le(-pv_kw[curtail], curtail.shape[0])  # pv_available - pv <= pv_available c
    rows.term(r, pv[curtail], -1.0)
    rows.term(r, c_pv, -pv_kw[curtail])
    r = rows.le(big_import[curtail], curtail.shape[0])  # imp <= M (1 - c)
    rows.term(r, imp[curtail], 1.0)
    rows.term(r, c_pv, big_import[curtail])
    allowed = np.where(pe[curtail] < 0, 0.0, series.export_limit_kw[curtail])
    at = np.flatnonzero(allowed != 0.0)
    r = rows.ge(0.0, at.shape[0])  # exp >= allowed c
    rows.term(r, exp[curtail[at]], 1.0)
    rows.term(r, c_pv[at], -allowed[at])

    # define_peak_and_unmet: peak >= imp; u + e[s, departure] >= target - max_charge eta_c dt steps after.
    r = rows.ge(0.0, n_steps)
    rows.term(r, peak[np.zeros(n_steps, dtype=np.int64)], 1.0)
    rows.term(r, imp, -1.0)
    steps_left = np.maximum(sessions.end_step - n_steps, 0)
    possible = (max_charge * eta_c) * dt * steps_left
    final = np.where(has_window, 0.0, arrival)
    r = rows.ge(target - final - possible, n_sessions)
    rows.term(r, unmet, 1.0)
    rows.term(r[has_window], e_base + se_start[has_window] + length[has_window], 1.0)
    if peak_floor_kw is not None:  # the MPC's peak floor (mpc.py)
        r = rows.ge(peak_floor_kw, 1)
        rows.term(r, peak, 1.0)

    # define_objective: the weighted terms, the slack penalty, tracking where weighted.
    demand = cols.add(1, 0.0, _INF)
    r = rows.ge(-site.billing_peak_start_kw, 1)  # demand >= peak - billing_peak
    rows.term(r, demand, 1.0)
    rows.term(r, peak, -1.0)
    costs.append((imp, w.energy_weight_frac * dt * pi))
    costs.append((exp, -w.energy_weight_frac * dt * pe))
    costs.append((demand, w.demand_charge_weight_frac * site.demand_charge_eur_per_kw))
    costs.append((pd[sv], w.degradation_weight_frac * site.v2g_degradation_cost_eur_per_kwh * dt))
    storage_degradation = w.degradation_weight_frac * site.storage_degradation_cost_eur_per_kwh * dt
    costs.append((sc, storage_degradation))
    costs.append((sd, storage_degradation))
    costs.append((unmet, w.unmet_weight_frac * arrays.unmet_energy_penalty_eur_per_kwh))
    costs.append((peak, w.peak_eur_per_kw))
    violation = (w.violation_eur_per_kwh + LIMIT_VIOLATION_PENALTY_EUR_PER_KWH) * dt
    costs.append((vi, violation))
    costs.append((ve, violation))
    if w.tracking_eur_per_kwh > 0.0:  # dev_up - dev_down = imp - exp - setpoint
        dev_up, dev_down = cols.add(n_steps, 0.0, _INF), cols.add(n_steps, 0.0, _INF)
        r = rows.eq(-series.grid_setpoint_kw, n_steps)
        rows.term(r, dev_up, 1.0)
        rows.term(r, dev_down, -1.0)
        rows.term(r, imp, -1.0)
        rows.term(r, exp, 1.0)
        costs.append((dev_up, w.tracking_eur_per_kwh * dt))
        costs.append((dev_down, w.tracking_eur_per_kwh * dt))

    col_lower, col_upper, is_integer = cols.bounds()
    cost = np.zeros(cols.n)
    for index, value in costs:
        np.add.at(cost, index, value)
    matrix, row_lower, row_upper = rows.matrix(cols.n)
    curtailed_kw = np.asarray(pv_kw[curtail], dtype=np.float64)
    return AssembledProblem(
        arrays=arrays,
        cost=cost,
        col_lower=col_lower,
        col_upper=col_upper,
        is_integer=is_integer,
        matrix=matrix,
        row_lower=row_lower,
        row_upper=row_upper,
        pc_col=pc,
        pd_col=pd,
        row_session=rs,
        row_step=rt,
        sc_col=sc,
        sd_col=sd,
        mode_binary=(
            np.concatenate([z, zs, d_imp]),
            np.concatenate([pd[z_rows], sd[ts_steps], imp[both]]),
            np.concatenate([pc[z_rows], sc[ts_steps], exp[both]]),
        ),
        strict_binary=(
            np.concatenate([charging, c_pv]),
            np.concatenate([pc[a_rows], pv[curtail]]),
            np.concatenate([np.ones(a_rows.shape[0]), -np.ones(curtail.shape[0])]),
            np.concatenate([np.zeros(a_rows.shape[0]), curtailed_kw]),
        ),
    )


def solve_assembled(
    solver: MatrixSolver, problem: AssembledProblem, started: float | None = None
) -> ModelSolution:
    """Solve an assembled standard form with a :class:`MatrixSolver` and read its profile.

    Args:
        solver: The solver (time limit, gap, threads, rounding first or not).
        problem: The standard form.
        started: When the hand-over began (``time.perf_counter``; now by default): ``compile_s``
            counts from there to the HiGHS LP made, and so does the time limit [s].

    Returns:
        The solution, not replayed.

    Raises:
        OptimalError: When HiGHS finds no solution.
    """
    started = time.perf_counter() if started is None else started
    lp = problem.to_lp()
    handed = time.perf_counter()
    outcome, path = solver.solve_lp(lp, problem.arrays, problem.is_mip, problem.rounded, started)
    status, objective, gap, values = outcome
    solved = time.perf_counter()
    ev_power, storage = problem.profile(values)
    return ModelSolution(
        ev_power_kw=ev_power,
        storage_power_kw=storage,
        objective_eur=objective,
        status=status,
        mip_gap_frac=gap,
        solve_s=solved - handed,
        compile_s=handed - started,
        path=path,
    )


__all__ = ["AssembledProblem", "assemble", "solve_assembled", "supports", "unsupported_features"]
