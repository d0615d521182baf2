"""The optimum's standard form assembled straight from the scenario's arrays, for the oracle and the MPC.

:func:`smac_rl.optimal.model.build_model` is THE definition of the optimum: one ``define_*``
function per constraint family, with its equation. Building it in pyomo and compiling it to the
standard form takes most of an MPC step (:mod:`smac_rl.optimal.mpc`) and a good part of the
oracle's time (:func:`smac_rl.optimal.solve.solve_optimal`); this module writes the same columns,
bounds, rows, integrality and objective with vectorised numpy and hands them to HiGHS through
:meth:`smac_rl.optimal.matrix_solve.MatrixSolver.solve_lp` (the solve, rounding and reading of the
status are shared). It has one ``define_*`` function per family, named and ordered as in
model.py, each naming the equation it writes; a change to the model must be made in both, and
tests/optimal/test_assemble.py checks that both give the same optimum on random scenarios.

Covered: every family of :func:`~smac_rl.optimal.model.build_model`: session energy, the session
box (taper, headroom, V2G sessions arriving above their target), V2G modes and floors where
:func:`~smac_rl.optimal.model.binary_needs` puts them (or any given :class:`BinaryNeeds`), the
minimum-current option (its ``y_min``/``w_top`` binaries and top-up rule), charger and phase
sharing, storage (modes, conditional floor), bus, grid limits and the physics rules, peak and
unmet energy, every objective's weights (tracking included), and the MPC's peak floor.
:func:`unsupported_features` is where a family added to the model before it is added here must be
named: :func:`assemble` then refuses the scenario, and the MPC and the oracle build it in pyomo.

Where the two standard forms differ in form, not in the feasible set: the columns are ordered by
family; the variables pyomo fixes (``E[0]``, ``pd`` of sessions without V2G) are a column with
equal bounds or no column at all.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from typing import Any

import highspy
import numpy as np
from numpy.typing import NDArray

from smac_rl.core.arrays import ScenarioArrays
from smac_rl.core.arraytypes import BoolArray, FloatArray, IntArray
from smac_rl.optimal.matrix_solve import MatrixSolver, highs_lp
from smac_rl.optimal.model import LIMIT_VIOLATION_PENALTY_EUR_PER_KWH, BinaryNeeds, binary_needs
from smac_rl.optimal.solve import ModelSolution

_INF = float(np.inf)
_ROUNDING_TOL = 1e-7
"""Tolerance of the binary rounding, as :func:`smac_rl.optimal.matrix_solve.rounded_binaries`."""


def unsupported_features(arrays: ScenarioArrays) -> tuple[str, ...]:
    """What of a scenario the assembler does not cover (the MPC and the oracle build those in pyomo).

    Every family of :func:`~smac_rl.optimal.model.build_model` is covered today, so this is empty
    for every scenario; a family added to the model before it is added here is named here.

    Args:
        arrays: The compiled scenario.

    Returns:
        One line per feature not covered; empty when :func:`assemble` builds the scenario.
    """
    del arrays  # every family is covered
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
        nearest_binary: Binaries rounded to the nearest integer (``y_min``, ``w_top``), ``(M,)``.
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
    nearest_binary: IntArray

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
        is curtailed; the minimum-current modes ``y_min``, ``w_top``: the relaxed value rounded.
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
        out[self.nearest_binary] = np.round(values[self.nearest_binary])
        return out


@dataclasses.dataclass(frozen=True)
class IndexSets:
    """The index sets of :func:`~smac_rl.optimal.model.build_model` as arrays over the ``SP`` rows.

    ``SP`` holds the plugged-in ``(session, step)`` rows, session by session, steps in order;
    ``SE`` their energies (one more per session: the energy at departure or at the horizon's end).

    Attributes:
        first: First step of each session's window, ``(S,)``.
        length: Steps of each session's window within the horizon (0 when none), ``(S,)``.
        has_window: Sessions with at least one step, ``(S,)``.
        sp_start: Index of each session's first ``SP`` row, ``(S,)``.
        se_length: Energies of each session (``length + 1``, 0 without a window), ``(S,)``.
        se_start: Index of each session's first energy, ``(S,)``.
        rs: Session of each ``SP`` row, ``(P,)``.
        rt: Step of each ``SP`` row, ``(P,)``.
        sv: ``SV``: rows of V2G sessions, ``(P,)``.
        sz: ``SZ``: V2G rows with a mode binary (``BinaryNeeds.v2g_mode_rows``), ``(P,)``.
        sa: ``SA``: V2G rows of sessions arriving above their target, ``(P,)``.
        sm: ``SM``: rows on a connector with a minimum charging power, ``(P,)``.
    """

    first: IntArray
    length: IntArray
    has_window: BoolArray
    sp_start: IntArray
    se_length: IntArray
    se_start: IntArray
    rs: IntArray
    rt: IntArray
    sv: BoolArray
    sz: BoolArray
    sa: BoolArray
    sm: BoolArray

    @property
    def n_sp(self) -> int:
        """``SP`` rows."""
        return int(self.rs.shape[0])


def index_sets(arrays: ScenarioArrays, needs: BinaryNeeds) -> IndexSets:
    """The index sets of ``build_model``: ``SP``, ``SE``, ``SV``, ``SZ``, ``SA``, ``SM``."""
    sessions, n_steps = arrays.sessions, arrays.n_steps
    first = sessions.first_step.astype(np.int64)
    length = np.maximum(np.minimum(sessions.end_step, n_steps) - first, 0).astype(np.int64)
    has_window = length > 0
    sp_start = np.cumsum(length) - length
    rs = np.repeat(np.arange(sessions.n_sessions, dtype=np.int64), length)
    rt = first[rs] + np.arange(rs.shape[0], dtype=np.int64) - sp_start[rs]
    se_length = np.where(has_window, length + 1, 0).astype(np.int64)
    sv = (sessions.max_discharge_kw > 0)[rs]
    sz = np.zeros(rs.shape[0], dtype=bool)
    for s, t in needs.v2g_mode_rows:
        if has_window[s] and first[s] <= t < first[s] + length[s]:
            sz[sp_start[s] + t - first[s]] = True
    sa = sv & (sessions.arrival_energy_kwh[rs] > sessions.target_energy_kwh[rs])
    sm = sessions.min_charge_kw[rs] > 0.0
    return IndexSets(
        first=first,
        length=length,
        has_window=has_window,
        sp_start=sp_start,
        se_length=se_length,
        se_start=np.cumsum(se_length) - se_length,
        rs=rs,
        rt=rt,
        sv=sv,
        sz=sz & sv,
        sa=sa,
        sm=sm,
    )


@dataclasses.dataclass(frozen=True)
class Variables:
    """Columns of the variables of :func:`~smac_rl.optimal.model.define_variables` (module symbols).

    Attributes:
        pc: ``pc`` of each ``SP`` row, ``(P,)``.
        pd: ``pd`` of each ``SP`` row, -1 for sessions without V2G (fixed at 0: no column), ``(P,)``.
        e_base: Column of the first session energy.
        e_now: ``e[s, t]`` of each ``SP`` row, ``(P,)``.
        e_next: ``e[s, t + 1]`` of each ``SP`` row, ``(P,)``.
        z: V2G mode binaries, one per ``SZ`` row, ``(|SZ|,)``.
        sc: Storage charging ``sc[t]``, ``(T,)``.
        sd: Storage discharging ``sd[t]``, ``(T,)``.
        storage_e: Stored energy ``E[t]``, ``E[0]`` with equal bounds, ``(T + 1,)``.
        imp: Grid import, ``(T,)``.
        exp: Grid export, ``(T,)``.
        pv: PV used, ``(T,)``.
        vi: Import above the limit, ``(T,)``.
        ve: Export above the limit, ``(T,)``.
        peak: The peak import, ``(1,)``.
        unmet: Unmet energy ``u[s]``, ``(S,)``.
    """

    pc: IntArray
    pd: IntArray
    e_base: int
    e_now: IntArray
    e_next: IntArray
    z: IntArray
    sc: IntArray
    sd: IntArray
    storage_e: IntArray
    imp: IntArray
    exp: IntArray
    pv: IntArray
    vi: IntArray
    ve: IntArray
    peak: IntArray
    unmet: IntArray


@dataclasses.dataclass
class Assembly:
    """A standard form being assembled: the scenario, its index sets, columns, rows and costs.

    Each ``define_*`` function of this module adds one constraint family (its rows, and the
    columns it declares) and records how its binaries are read from a relaxed solution.

    Attributes:
        arrays: The compiled scenario.
        needs: Where the mode binaries go.
        sets: The index sets.
        var: The columns of :func:`define_variables`.
        cols: Every column so far.
        rows: Every row so far.
        costs: Objective terms ``(columns, coefficient)`` (summed per column).
        mode_binaries: ``(binary, on, off)`` columns: the binary is 1 where the "on" power is the larger.
        strict_binaries: ``(binary, col, a, b)``: the binary is 1 where ``a * x[col] + b > tol``.
        nearest_binaries: Binaries rounded to the nearest integer (the minimum-current modes).
    """

    arrays: ScenarioArrays
    needs: BinaryNeeds
    sets: IndexSets
    var: Variables
    cols: _Columns
    rows: _Rows
    costs: list[tuple[IntArray, FloatArray | float]] = dataclasses.field(default_factory=list)
    mode_binaries: list[tuple[IntArray, IntArray, IntArray]] = dataclasses.field(default_factory=list)
    strict_binaries: list[tuple[IntArray, IntArray, FloatArray, FloatArray]] = dataclasses.field(
        default_factory=list
    )
    nearest_binaries: list[IntArray] = dataclasses.field(default_factory=list)

    def problem(self) -> AssembledProblem:
        """The finished standard form."""
        col_lower, col_upper, is_integer = self.cols.bounds()
        cost = np.zeros(self.cols.n)
        for index, value in self.costs:
            np.add.at(cost, index, value)
        matrix, row_lower, row_upper = self.rows.matrix(self.cols.n)
        sets, var = self.sets, self.var
        return AssembledProblem(
            arrays=self.arrays,
            cost=cost,
            col_lower=col_lower,
            col_upper=col_upper,
            is_integer=is_integer,
            matrix=matrix,
            row_lower=row_lower,
            row_upper=row_upper,
            pc_col=var.pc,
            pd_col=var.pd,
            row_session=sets.rs,
            row_step=sets.rt,
            sc_col=var.sc,
            sd_col=var.sd,
            mode_binary=(
                _joined([g[0] for g in self.mode_binaries], np.int64),
                _joined([g[1] for g in self.mode_binaries], np.int64),
                _joined([g[2] for g in self.mode_binaries], np.int64),
            ),
            strict_binary=(
                _joined([g[0] for g in self.strict_binaries], np.int64),
                _joined([g[1] for g in self.strict_binaries], np.int64),
                _joined([g[2] for g in self.strict_binaries], np.float64),
                _joined([g[3] for g in self.strict_binaries], np.float64),
            ),
            nearest_binary=_joined(self.nearest_binaries, np.int64),
        )


def _joined(parts: Sequence[NDArray[Any]], dtype: type[np.generic]) -> NDArray[Any]:
    """The arrays one after the other, as ``dtype`` (an empty array when there is none)."""
    return np.concatenate(parts).astype(dtype) if parts else np.zeros(0, dtype=dtype)


def assemble(
    arrays: ScenarioArrays,
    needs: BinaryNeeds | None = None,
    peak_floor_kw: float | None = None,
    early_charging_eur_per_kwh: float = 0.0,
) -> AssembledProblem:
    """The standard form of :func:`smac_rl.optimal.model.build_model` for a scenario, from its arrays.

    One ``define_*`` function per constraint family, in :func:`~smac_rl.optimal.model.build_model`'s
    order (the columns and rows come out in that order).

    Args:
        arrays: The compiled scenario.
        needs: Where mode binaries go; :func:`~smac_rl.optimal.model.binary_needs` by default.
        peak_floor_kw: The MPC's ``peak >= peak_floor`` row (:mod:`smac_rl.optimal.mpc`); None: none.
        early_charging_eur_per_kwh: The MPC's tie-breaker (:func:`define_early_charging`); 0: none,
            the pyomo model's objective.

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
    sets = index_sets(arrays, needs)
    cols = _Columns()
    form = Assembly(arrays, needs, sets, define_variables(arrays, sets, cols), cols, _Rows())
    define_session_energy(form)
    define_session_box(form)
    define_v2g_modes(form)
    define_minimum_current(form)
    define_sharing(form)
    define_storage(form)
    define_bus(form)
    define_peak_and_unmet(form, peak_floor_kw)
    define_objective(form)
    define_early_charging(form, early_charging_eur_per_kwh)
    return form.problem()


def define_variables(arrays: ScenarioArrays, sets: IndexSets, cols: _Columns) -> Variables:
    """``define_variables``: the variables with their simple bounds (model.py's symbol table).

    ``0 <= pc <= max_charge``, ``0 <= pd <= max_discharge`` (V2G rows only), ``0 <= e <= cap``,
    ``z`` binary on ``SZ``, storage powers and ``0 <= E <= capacity`` with ``E[0] = initial``,
    ``imp, exp, vi, ve, peak, u >= 0``, ``0 <= pv <= pv_available``.
    """
    sessions, site, series, n_steps = arrays.sessions, arrays.site, arrays.series, arrays.n_steps
    rs, rt, sv = sets.rs, sets.rt, sets.sv
    pc = cols.add(sets.n_sp, 0.0, sessions.max_charge_kw[rs])
    pd = np.full(sets.n_sp, -1, dtype=np.int64)
    pd[sv] = cols.add(int(sv.sum()), 0.0, sessions.max_discharge_kw[rs[sv]])
    se_session = np.repeat(np.arange(sessions.n_sessions, dtype=np.int64), sets.se_length)
    n_se = int(sets.se_length.sum())
    e_base = int(cols.add(n_se, 0.0, sessions.capacity_kwh[se_session])[0]) if n_se else 0
    e_now = e_base + sets.se_start[rs] + rt - sets.first[rs]
    z = cols.add(int(sets.sz.sum()), 0.0, 1.0, integer=True)
    sc = cols.add(n_steps, 0.0, site.storage_max_charge_kw)
    sd = cols.add(n_steps, 0.0, site.storage_max_discharge_kw)
    e_initial = np.full(1, site.storage_initial_energy_kwh)
    storage_e = cols.add(
        n_steps + 1,
        np.concatenate([e_initial, np.zeros(n_steps)]),
        np.concatenate([e_initial, np.full(n_steps, max(site.storage_capacity_kwh, 0.0))]),
    )
    imp, exp = cols.add(n_steps, 0.0, _INF), cols.add(n_steps, 0.0, _INF)
    pv = cols.add(n_steps, 0.0, series.pv_available_kw)
    vi, ve = cols.add(n_steps, 0.0, _INF), cols.add(n_steps, 0.0, _INF)
    peak = cols.add(1, 0.0, _INF)
    unmet = cols.add(sessions.n_sessions, 0.0, _INF)
    return Variables(
        pc=pc,
        pd=pd,
        e_base=e_base,
        e_now=e_now,
        e_next=e_now + 1,
        z=z,
        sc=sc,
        sd=sd,
        storage_e=storage_e,
        imp=imp,
        exp=exp,
        pv=pv,
        vi=vi,
        ve=ve,
        peak=peak,
        unmet=unmet,
    )


def define_session_energy(form: Assembly) -> None:
    """``define_session_energy``: ``e[s,first] = arrival``; ``e[s,t+1] = e[s,t] + dt (eta_c pc - pd/eta_d)``.

    Rows: one per session with a window, one per ``SP`` row.
    """
    sessions, dt, sets, var, rows = form.arrays.sessions, form.arrays.step_h, form.sets, form.var, form.rows
    rs, sv = sets.rs, sets.sv
    starting = np.flatnonzero(sets.has_window)
    r = rows.eq(sessions.arrival_energy_kwh[starting], starting.shape[0])
    rows.term(r, var.e_base + sets.se_start[starting], 1.0)
    r = rows.eq(0.0, sets.n_sp)
    rows.term(r, var.e_next, 1.0)
    rows.term(r, var.e_now, -1.0)
    rows.term(r, var.pc, -dt * sessions.charge_efficiency_frac[rs])
    rows.term(r[sv], var.pd[sv], dt / sessions.discharge_efficiency_frac[rs[sv]])


def define_session_box(form: Assembly) -> None:
    """``define_session_box``: taper ``pc cap (1 - s0) <= ev_max (cap - e)``; ``e + eta_c pc dt <= target``.

    Rows of ``SA`` (V2G sessions arriving above their target) carry the binary ``charging``:
    ``e + eta_c pc dt <= target + M (1 - charging)`` with ``M = cap + eta_c max_charge dt`` and
    ``pc <= max_charge * charging``; sessions without V2G arriving at or above their target: ``pc = 0``.
    """
    sessions, dt, sets, var, rows = form.arrays.sessions, form.arrays.step_h, form.sets, form.var, form.rows
    rs, sv, sa = sets.rs, sets.sv, sets.sa
    cap, target, eta_c = sessions.capacity_kwh, sessions.target_energy_kwh, sessions.charge_efficiency_frac
    max_charge, ev_max = sessions.max_charge_kw, sessions.ev_max_power_kw
    s0 = sessions.taper_start_soc_frac[rs]
    tapered = np.flatnonzero(s0 < 1.0)  # taper: pc * cap * (1 - s0) + ev_max * e <= ev_max * cap
    ts = rs[tapered]
    r = rows.le(ev_max[ts] * cap[ts], tapered.shape[0])
    rows.term(r, var.pc[tapered], cap[ts] * (1.0 - s0[tapered]))
    rows.term(r, var.e_now[tapered], ev_max[ts])
    charging = form.cols.add(int(sa.sum()), 0.0, 1.0, integer=True)
    a_rows = np.flatnonzero(sa)  # headroom, SA rows, with the big-M on charging
    sa_s = rs[a_rows]
    big_m = cap[sa_s] + eta_c[sa_s] * max_charge[sa_s] * dt
    r = rows.le(target[sa_s] + big_m, a_rows.shape[0])
    rows.term(r, var.e_now[a_rows], 1.0)
    rows.term(r, var.pc[a_rows], eta_c[sa_s] * dt)
    rows.term(r, charging, big_m)
    is_full = ~sv & (sessions.arrival_energy_kwh[rs] >= target[rs])
    full = np.flatnonzero(is_full)  # headroom, sessions without V2G at or above their target: pc == 0
    r = rows.eq(0.0, full.shape[0])
    rows.term(r, var.pc[full], 1.0)
    other = np.flatnonzero(~sa & ~is_full)  # headroom, the other rows
    other_s = rs[other]
    r = rows.le(target[other_s], other.shape[0])
    rows.term(r, var.e_now[other], 1.0)
    rows.term(r, var.pc[other], eta_c[other_s] * dt)
    r = rows.le(0.0, a_rows.shape[0])  # charging_mode: pc <= max_charge * charging
    rows.term(r, var.pc[a_rows], 1.0)
    rows.term(r, charging, -max_charge[sa_s])
    form.strict_binaries.append(
        (charging, var.pc[a_rows], np.ones(a_rows.shape[0]), np.zeros(a_rows.shape[0]))
    )


def define_v2g_modes(form: Assembly) -> None:
    """``define_v2g_modes``: ``pc <= max_charge (1 - z)``, ``pd <= max_discharge z`` on ``SZ``; the floors.

    ``e - pd dt / eta_d >= floor_t * z`` on ``SZ`` rows where ``floor_t > L``
    (:func:`~smac_rl.optimal.model.v2g_floor_kwh`), and ``e - pd dt / eta_d >= L`` on every V2G row
    (:func:`~smac_rl.optimal.model.v2g_lowest_kwh`).
    """
    arrays, sets, var, rows = form.arrays, form.sets, form.var, form.rows
    sessions, dt = arrays.sessions, arrays.step_h
    rs, rt = sets.rs, sets.rt
    max_charge, max_discharge = sessions.max_charge_kw, sessions.max_discharge_kw
    eta_c, eta_d = sessions.charge_efficiency_frac, sessions.discharge_efficiency_frac
    z_rows = np.flatnonzero(sets.sz)
    z_s = rs[z_rows]
    r = rows.le(max_charge[z_s], z_rows.shape[0])
    rows.term(r, var.pc[z_rows], 1.0)
    rows.term(r, var.z, max_charge[z_s])
    r = rows.le(0.0, z_rows.shape[0])
    rows.term(r, var.pd[z_rows], 1.0)
    rows.term(r, var.z, -max_discharge[z_s])
    # floor_t = max(v2g floor, target - max_charge * eta_c * dt * steps after t, 0);
    # L = max(min(arrival, v2g floor), 0).
    steps_after = np.maximum(sessions.end_step[rs] - rt - 1, 0)
    reachable = sessions.target_energy_kwh[rs] - (max_charge[rs] * eta_c[rs]) * dt * steps_after
    floor_t = np.maximum(np.maximum(sessions.floor_energy_kwh[rs], reachable), 0.0)
    lowest = np.maximum(np.minimum(sessions.arrival_energy_kwh, sessions.floor_energy_kwh), 0.0)[rs]
    conditional = floor_t[z_rows] > lowest[z_rows]
    f_rows = z_rows[conditional]
    r = rows.ge(0.0, f_rows.shape[0])  # e - pd dt / eta_d >= floor_t z
    rows.term(r, var.e_now[f_rows], 1.0)
    rows.term(r, var.pd[f_rows], -dt / eta_d[rs[f_rows]])
    rows.term(r, var.z[conditional], -floor_t[f_rows])
    v_rows = np.flatnonzero(sets.sv)
    r = rows.ge(lowest[v_rows], v_rows.shape[0])  # e - pd dt / eta_d >= L
    rows.term(r, var.e_now[v_rows], 1.0)
    rows.term(r, var.pd[v_rows], -dt / eta_d[rs[v_rows]])
    form.mode_binaries.append((var.z, var.pd[z_rows], var.pc[z_rows]))


def define_minimum_current(form: Assembly) -> None:
    """``define_minimum_current``: ``pc <= max_charge (y + w)``, ``pc >= p_min y``, ``y + w <= 1``, top-up.

    The top-up ``e + eta_c pc dt >= target - cap (1 - w)``; ``y`` (at least the minimum) and ``w``
    (the final top-up) are binaries on the rows ``SM`` of sessions with a minimum (their own,
    ``SessionArrays.min_charge_kw``).
    """
    arrays, sets, var, rows = form.arrays, form.sets, form.var, form.rows
    sessions, dt = arrays.sessions, arrays.step_h
    m_rows = np.flatnonzero(sets.sm)
    n = m_rows.shape[0]
    m_s = sets.rs[m_rows]
    max_charge, cap = sessions.max_charge_kw[m_s], sessions.capacity_kwh[m_s]
    p_min = sessions.min_charge_kw[m_s]
    y = form.cols.add(n, 0.0, 1.0, integer=True)
    w = form.cols.add(n, 0.0, 1.0, integer=True)
    pc = var.pc[m_rows]
    r = rows.le(0.0, n)  # min_on: pc - max_charge y - max_charge w <= 0
    rows.term(r, pc, 1.0)
    rows.term(r, y, -max_charge)
    rows.term(r, w, -max_charge)
    r = rows.ge(0.0, n)  # min_level: pc - p_min y >= 0
    rows.term(r, pc, 1.0)
    rows.term(r, y, -p_min)
    r = rows.le(1.0, n)  # min_modes: y + w <= 1
    rows.term(r, y, 1.0)
    rows.term(r, w, 1.0)
    r = rows.ge(
        sessions.target_energy_kwh[m_s] - cap, n
    )  # min_top_up: e + eta_c dt pc - cap w >= target - cap
    rows.term(r, var.e_now[m_rows], 1.0)
    rows.term(r, pc, sessions.charge_efficiency_frac[m_s] * dt)
    rows.term(r, w, -cap)
    form.nearest_binaries.extend([y, w])


def define_sharing(form: Assembly) -> None:
    """``define_sharing``: ``sum_{s at k} (pc + pd) <= charger_max[k]``; ``sum (pc + pd) a_per_kw <= I``."""
    site, sessions, sets, var, rows = form.arrays.site, form.arrays.sessions, form.sets, form.var, form.rows
    rs, rt, sv = sets.rs, sets.rt, sets.sv
    charger = site.connector_charger_index[sessions.connector_index[rs]].astype(np.int64)
    n_chargers = int(site.charger_max_kw.shape[0])
    keys, group = np.unique(rt * n_chargers + charger, return_inverse=True)
    r = rows.le(site.charger_max_kw[keys % n_chargers], keys.shape[0])
    rows.term(r[group], var.pc, 1.0)
    rows.term(r[group][sv], var.pd[sv], 1.0)
    if np.isfinite(site.charging_phase_current_limit_a):
        a_per_kw = site.connector_phase_a_per_kw[sessions.connector_index[rs]]  # (P, 3)
        row_of, phase = np.nonzero(a_per_kw > 0)
        keys, group = np.unique(rt[row_of] * 3 + phase, return_inverse=True)
        r = rows.le(site.charging_phase_current_limit_a, keys.shape[0])
        coefficient = a_per_kw[row_of, phase]
        rows.term(r[group], var.pc[row_of], coefficient)
        with_pd = sv[row_of]
        rows.term(r[group][with_pd], var.pd[row_of][with_pd], coefficient[with_pd])


def define_storage(form: Assembly) -> None:
    """``define_storage``: ``E[t+1] = k E[t] + dt (eta_c sc - sd/eta_d)``; ``k E[t] + eta_c sc dt <= E_max``.

    ``k = keep = (1 - self-discharge per h) ** dt``.
    Mode binaries ``zs`` on the steps ``TS`` (``sd <= sd_max zs``, ``sc <= sc_max (1 - zs)``); the
    floor ``E[t] keep - sd dt / eta_d >= E_min``, or its conditional decay form with self-discharge
    and ``E_min > 0`` (``>= decayed + (E_min - decayed) zs``, ``decayed = min(initial, E_min) k**(t+1)``).
    """
    arrays, needs, var, rows = form.arrays, form.needs, form.var, form.rows
    site, dt, n_steps = arrays.site, arrays.step_h, arrays.n_steps
    sc, sd = var.sc, var.sd
    keep = float((1.0 - site.storage_self_discharge_per_h_frac) ** dt)
    eta_c, eta_d = site.storage_charge_efficiency_frac, site.storage_discharge_efficiency_frac
    e_min = site.storage_min_energy_kwh
    e_t, e_t1 = var.storage_e[:-1], var.storage_e[1:]
    r = rows.eq(0.0, n_steps)  # balance
    rows.term(r, e_t1, 1.0)
    rows.term(r, e_t, -keep)
    rows.term(r, sc, -dt * eta_c)
    rows.term(r, sd, dt / eta_d)
    r = rows.le(site.storage_max_energy_kwh, n_steps)  # upper
    rows.term(r, e_t, keep)
    rows.term(r, sc, eta_c * dt)
    ts_steps = np.asarray(sorted(needs.storage_mode_steps), dtype=np.int64)
    zs = form.cols.add(ts_steps.shape[0], 0.0, 1.0, integer=True)
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
    rows.term(r, sd, -dt / eta_d)
    form.mode_binaries.append((zs, sd[ts_steps], sc[ts_steps]))


def define_bus(form: Assembly) -> None:
    """``define_bus``: ``imp - exp = base + sum_s (pc - pd) + sc - sd - pv``; ``imp, exp <= limits + vi, ve``.

    Then the physics rules (:func:`define_physics_rules`), as ``define_bus`` calls them.
    """
    series, n_steps, sets, var, rows = form.arrays.series, form.arrays.n_steps, form.sets, form.var, form.rows
    rt, sv = sets.rt, sets.sv
    r = rows.eq(series.base_load_kw, n_steps)
    rows.term(r, var.imp, 1.0)
    rows.term(r, var.exp, -1.0)
    rows.term(r[rt], var.pc, -1.0)
    rows.term(r[rt][sv], var.pd[sv], 1.0)
    rows.term(r, var.sc, -1.0)
    rows.term(r, var.sd, 1.0)
    rows.term(r, var.pv, 1.0)
    r = rows.le(series.import_limit_kw, n_steps)
    rows.term(r, var.imp, 1.0)
    rows.term(r, var.vi, -1.0)
    r = rows.le(series.export_limit_kw, n_steps)
    rows.term(r, var.exp, 1.0)
    rows.term(r, var.ve, -1.0)
    define_physics_rules(form)


def define_physics_rules(form: Assembly) -> None:
    """``define_physics_rules``: ``imp <= M d``, ``exp <= M (1 - d)``; curtail PV only at the export allowed.

    ``imp <= M d``, ``exp <= M (1 - d)`` where the export price exceeds the import price;
    ``pv_available - pv <= pv_available c``, ``imp <= M (1 - c)``, ``exp >= allowed c`` on the
    curtailment steps.
    """
    arrays, sets, var, rows = form.arrays, form.sets, form.var, form.rows
    site, series, sessions, n_steps = arrays.site, arrays.series, arrays.sessions, arrays.n_steps
    rs, rt = sets.rs, sets.rt
    pi, pe, pv_kw = series.import_price_eur_per_kwh, series.export_price_eur_per_kwh, series.pv_available_kw
    ev_charge_kw = np.bincount(rt, weights=sessions.max_charge_kw[rs], minlength=n_steps)
    ev_discharge_kw = np.bincount(rt, weights=sessions.max_discharge_kw[rs], minlength=n_steps)
    big_import = series.base_load_kw + ev_charge_kw + site.storage_max_charge_kw + 1.0
    big_export = pv_kw + ev_discharge_kw + site.storage_max_discharge_kw + 1.0
    both = np.flatnonzero(pe > pi)
    d_imp = form.cols.add(both.shape[0], 0.0, 1.0, integer=True)
    r = rows.le(0.0, both.shape[0])  # imp <= M d
    rows.term(r, var.imp[both], 1.0)
    rows.term(r, d_imp, -big_import[both])
    r = rows.le(big_export[both], both.shape[0])  # exp <= M (1 - d)
    rows.term(r, var.exp[both], 1.0)
    rows.term(r, d_imp, big_export[both])
    curtail = np.flatnonzero((pv_kw > 0) & ((pi <= 0) | (pe <= 0) | (series.export_limit_kw < pv_kw)))
    c_pv = form.cols.add(curtail.shape[0], 0.0, 1.0, integer=True)
    r = rows.le(-pv_kw[curtail], curtail.shape[0])  # pv_available - pv <= pv_available c
    rows.term(r, var.pv[curtail], -1.0)
    rows.term(r, c_pv, -pv_kw[curtail])
    r = rows.le(big_import[curtail], curtail.shape[0])  # imp <= M (1 - c)
    rows.term(r, var.imp[curtail], 1.0)
    rows.term(r, c_pv, big_import[curtail])
    allowed = np.where(pe[curtail] < 0, 0.0, series.export_limit_kw[curtail])
    at = np.flatnonzero(allowed != 0.0)
    r = rows.ge(0.0, at.shape[0])  # exp >= allowed c
    rows.term(r, var.exp[curtail[at]], 1.0)
    rows.term(r, c_pv[at], -allowed[at])
    form.mode_binaries.append((d_imp, var.imp[both], var.exp[both]))
    n_curtail = curtail.shape[0]
    form.strict_binaries.append(
        (c_pv, var.pv[curtail], -np.ones(n_curtail), np.asarray(pv_kw[curtail], dtype=np.float64))
    )


def define_peak_and_unmet(form: Assembly, peak_floor_kw: float | None = None) -> None:
    """``define_peak_and_unmet``: ``peak >= imp[t]``; ``u[s] >= target - e[s,end] - possible after``.

    With ``peak_floor_kw``, also the MPC's ``peak >= peak_floor`` (:mod:`smac_rl.optimal.mpc`).
    """
    arrays, sets, var, rows = form.arrays, form.sets, form.var, form.rows
    sessions, dt, n_steps = arrays.sessions, arrays.step_h, arrays.n_steps
    r = rows.ge(0.0, n_steps)
    rows.term(r, var.peak[np.zeros(n_steps, dtype=np.int64)], 1.0)
    rows.term(r, var.imp, -1.0)
    steps_left = np.maximum(sessions.end_step - n_steps, 0)
    possible = (sessions.max_charge_kw * sessions.charge_efficiency_frac) * dt * steps_left
    has_window = sets.has_window
    final = np.where(has_window, 0.0, sessions.arrival_energy_kwh)
    r = rows.ge(sessions.target_energy_kwh - final - possible, sessions.n_sessions)
    rows.term(r, var.unmet, 1.0)
    rows.term(r[has_window], var.e_base + sets.se_start[has_window] + sets.length[has_window], 1.0)
    if peak_floor_kw is not None:
        r = rows.ge(peak_floor_kw, 1)
        rows.term(r, var.peak, 1.0)


def define_objective(form: Assembly) -> None:
    """``define_objective``: min the weighted energy, demand, degradation, unmet, peak, slack, tracking costs.

    ``demand >= peak - billing_peak``; ``dev_up - dev_down = imp - exp - setpoint`` only with a
    positive tracking weight; the limit slack costs ``(w_violation + 1000) * dt`` per kW.
    """
    arrays, var, rows, costs = form.arrays, form.var, form.rows, form.costs
    site, series, dt, w, n_steps = arrays.site, arrays.series, arrays.step_h, arrays.objective, arrays.n_steps
    demand = form.cols.add(1, 0.0, _INF)
    r = rows.ge(-site.billing_peak_start_kw, 1)
    rows.term(r, demand, 1.0)
    rows.term(r, var.peak, -1.0)
    costs.append((var.imp, w.energy_weight_frac * dt * series.import_price_eur_per_kwh))
    costs.append((var.exp, -w.energy_weight_frac * dt * series.export_price_eur_per_kwh))
    costs.append((demand, w.demand_charge_weight_frac * site.demand_charge_eur_per_kw))
    sv = form.sets.sv
    costs.append((var.pd[sv], w.degradation_weight_frac * site.v2g_degradation_cost_eur_per_kwh * dt))
    storage_degradation = w.degradation_weight_frac * site.storage_degradation_cost_eur_per_kwh * dt
    costs.append((var.sc, storage_degradation))
    costs.append((var.sd, storage_degradation))
    costs.append((var.unmet, w.unmet_weight_frac * arrays.unmet_energy_penalty_eur_per_kwh))
    costs.append((var.peak, w.peak_eur_per_kw))
    violation = (w.violation_eur_per_kwh + LIMIT_VIOLATION_PENALTY_EUR_PER_KWH) * dt
    costs.append((var.vi, violation))
    costs.append((var.ve, violation))
    if w.tracking_eur_per_kwh > 0.0:
        dev_up, dev_down = form.cols.add(n_steps, 0.0, _INF), form.cols.add(n_steps, 0.0, _INF)
        r = rows.eq(-series.grid_setpoint_kw, n_steps)
        rows.term(r, dev_up, 1.0)
        rows.term(r, dev_down, -1.0)
        rows.term(r, var.imp, -1.0)
        rows.term(r, var.exp, 1.0)
        costs.append((dev_up, w.tracking_eur_per_kwh * dt))
        costs.append((dev_down, w.tracking_eur_per_kwh * dt))


def define_early_charging(form: Assembly, eur_per_kwh: float) -> None:
    """A tie-breaker outside the pyomo model: charging later costs a little more.

    Each kWh charged into an EV or the storage at step ``t`` costs ``eur_per_kwh * t / T`` more
    (``T`` the steps of the problem), so among plans that cost the same (the hours of one hourly
    price, the steps below a peak that is paid anyway) the one charging earliest wins, instead of
    whichever vertex HiGHS meets first. The rolling-horizon MPC uses it as imitation's expert
    (:mod:`smac_rl.agents.imitation`), whose labels must be one consistent rule; keep it far below
    the price differences that matter (1e-4 EUR/kWh against prices of 0.01 EUR/kWh and more).
    """
    if eur_per_kwh <= 0.0:
        return
    arrays, var = form.arrays, form.var
    # a kW held for one step at step t costs eur_per_kwh * step_h * t / T [EUR]
    eur_per_kw_per_step_index = eur_per_kwh * arrays.step_h / arrays.n_steps
    form.costs.append((var.pc, eur_per_kw_per_step_index * form.sets.rt.astype(np.float64)))
    form.costs.append((var.sc, eur_per_kw_per_step_index * np.arange(arrays.n_steps, dtype=np.float64)))


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
