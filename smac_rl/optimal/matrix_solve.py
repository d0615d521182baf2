"""Solving a built optimum model by handing it to HiGHS as matrices, for models solved many times.

:func:`smac_rl.optimal.solve.solve_model` hands the model over through pyomo's appsi interface,
which walks every constraint in Python. :class:`MatrixSolver` compiles the same model with pyomo's
standard-form compiler (``A``, row bounds, costs, column bounds, integrality) and passes it to
``highspy`` in one call: on a 50-session, 96-step window, compiling, handing over and solving
take about a quarter of the time appsi takes to hand over and solve (0.12 s against 0.45 s,
:mod:`smac_rl.bench.mpc_speed`). The model is the same; only the way it reaches the solver
differs. :meth:`MatrixSolver.solve_lp` (the solve, the rounding path, the status) also serves the
standard form assembled from the arrays (:mod:`smac_rl.optimal.assemble`), the default build of
the MPC and of the oracle (:func:`smac_rl.optimal.solve.solve_optimal`, ``builder="assemble"``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import highspy
import numpy as np
import pyomo.environ as pyo
from pyomo.common.tee import capture_output
from pyomo.repn.plugins.standard_form import LinearStandardFormCompiler

from smac_rl.core.arrays import ScenarioArrays
from smac_rl.core.arraytypes import BoolArray, FloatArray, IntArray
from smac_rl.optimal.model import OptimalError
from smac_rl.optimal.solve import ModelSolution, SolvePath, SolverStatus

SolveOutcome = tuple[SolverStatus, float, float, FloatArray]
"""Status, objective [EUR], relative gap and column values of a solve."""

Rounding = Callable[[FloatArray], FloatArray]
"""Column values with every binary column fixed to 0 or 1, from the LP relaxation's column values."""


class MatrixSolver:
    """HiGHS fed with the standard form of a model of :func:`smac_rl.optimal.model.build_model`."""

    def __init__(
        self,
        time_limit_s: float = 120.0,
        mip_gap_frac: float = 1e-4,
        n_threads: int = 1,
        is_rounding_first: bool = False,
    ) -> None:
        """Create the solver.

        Args:
            time_limit_s: Solver time limit of each solve [s].
            mip_gap_frac: Relative MIP gap at which a solve stops.
            n_threads: Solver threads.
            is_rounding_first: Whether a model with binaries is first tried by rounding
                (:meth:`solve`): LP relaxation, binaries fixed from its profile, LP again.

        Raises:
            ValueError: For a time limit that is not positive, a gap outside [0, 1) or no thread.
        """
        if not time_limit_s > 0.0:
            raise ValueError(f"time_limit_s: got {time_limit_s}; expected > 0")
        if not 0.0 <= mip_gap_frac < 1.0:
            raise ValueError(f"mip_gap_frac: got {mip_gap_frac}; expected 0 <= value < 1")
        if n_threads < 1:
            raise ValueError(f"n_threads: got {n_threads}; expected at least 1")
        self.time_limit_s, self.mip_gap_frac, self.n_threads = time_limit_s, mip_gap_frac, n_threads
        self.is_rounding_first = is_rounding_first

    def _solver(self, time_limit_s: float | None = None) -> highspy.Highs:
        """A fresh, quiet HiGHS instance for each solve.

        One instance's clock runs on across solves and its time limit counts that total; the
        banner it prints when made is swallowed.
        """
        with capture_output(capture_fd=True):
            highs = highspy.Highs()  # type: ignore[no-untyped-call]
            highs.setOptionValue("output_flag", False)
        highs.setOptionValue("threads", self.n_threads)
        highs.setOptionValue("random_seed", 0)
        highs.setOptionValue("time_limit", self.time_limit_s if time_limit_s is None else time_limit_s)
        highs.setOptionValue("mip_rel_gap", self.mip_gap_frac)
        return highs

    def solve(self, model: pyo.ConcreteModel, arrays: ScenarioArrays) -> ModelSolution:
        """Solve a model and read its profile.

        Args:
            model: The model, built from ``arrays`` (a caller may have added linear constraints).
            arrays: The scenario it was built from.

        Returns:
            The solution, not replayed.

        Raises:
            OptimalError: When HiGHS finds no solution.
        """
        started = time.perf_counter()
        repn = LinearStandardFormCompiler().write(model, mixed_form=True, set_sense=None)
        columns: list[Any] = list(repn.columns)
        is_mip = any(var.is_integer() for var in columns)
        lp = _lp(repn, columns, is_mip)
        handed = time.perf_counter()

        def rounding(values: FloatArray) -> FloatArray:
            return rounded_binaries(model, columns, values, arrays)

        outcome, path = self.solve_lp(lp, arrays, is_mip, rounding, started)
        status, objective, gap, values = outcome
        solved = time.perf_counter()
        column_of = {id(var): j for j, var in enumerate(columns)}

        def value_of(var: Any) -> float:
            j = column_of.get(id(var))
            return float(values[j]) if j is not None else float(var.value or 0.0)

        ev_power = np.zeros((arrays.n_steps, arrays.site.n_connectors))
        for s, t in model.SP:
            c = int(arrays.sessions.connector_index[s])
            ev_power[t, c] = value_of(model.pc[s, t]) - value_of(model.pd[s, t])
        storage = np.asarray([value_of(model.sc[t]) - value_of(model.sd[t]) for t in model.T])
        return ModelSolution(
            ev_power_kw=ev_power,
            storage_power_kw=storage,
            objective_eur=objective,
            status=status,
            mip_gap_frac=gap,
            compile_s=handed - started,
            solve_s=solved - handed,
            path=path,
        )

    def solve_lp(
        self,
        lp: highspy.HighsLp,
        arrays: ScenarioArrays,
        is_mip: bool,
        rounding: Rounding,
        started: float,
    ) -> tuple[SolveOutcome, SolvePath]:
        """Solve a standard form handed over as a HiGHS LP (pyomo's, or :mod:`smac_rl.optimal.assemble`'s).

        A model with binaries is first tried by rounding when :attr:`is_rounding_first` is set
        (:meth:`_by_rounding`), then by HiGHS's branch and bound (started from the rounded
        solution where there is one).

        Args:
            lp: The standard form (the rounding path changes it and restores it).
            arrays: The scenario it was built from (named in errors).
            is_mip: Whether it has integer columns.
            rounding: Column values with every binary fixed, from relaxed column values
                (:func:`rounded_binaries` for a pyomo model).
            started: When the build's hand-over started (``time.perf_counter``): the time limit
                counts from there [s].

        Returns:
            The outcome and how it was reached.

        Raises:
            OptimalError: When HiGHS finds no solution.
        """
        outcome: SolveOutcome | None = None
        start: highspy.HighsSolution | None = None
        path = SolvePath.SOLVER
        if is_mip and self.is_rounding_first:
            outcome, start, path = self._by_rounding(lp, rounding, started)
        if outcome is None:
            highs = self._solver(max(self.time_limit_s - (time.perf_counter() - started), 1e-3))
            highs.passModel(lp)
            if start is not None:
                highs.setSolution(start)
            highs.run()
            outcome = _read(highs, arrays, is_mip)
        return outcome, path

    def _by_rounding(
        self, lp: highspy.HighsLp, rounding: Rounding, started: float
    ) -> tuple[SolveOutcome | None, highspy.HighsSolution | None, SolvePath]:
        """The proof-by-rounding path: the outcome, or None with a MIP start (or none) for HiGHS.

        1. Solve the LP relaxation (binaries in [0, 1]): its objective ``bound`` is a lower bound.
        2. Fix every binary from the relaxed profile (:func:`rounded_binaries`) and solve the LP
           again: a feasible solution of the model, objective ``value``.
        3. If ``value - bound <= mip_gap * |value|``, it is optimal within the gap: no branch and
           bound. Otherwise the fixed solution becomes the MIP start of the full solve.
        """
        integrality = list(lp.integrality_)
        binary = np.asarray([v == highspy.HighsVarType.kInteger for v in integrality])
        lp.integrality_ = [highspy.HighsVarType.kContinuous] * len(integrality)
        try:
            relaxed = self._run(lp, started)
            if relaxed is None:
                return None, None, SolvePath.BRANCH_AND_BOUND
            bound, relaxed_values = relaxed
            fixed_values = rounding(relaxed_values)
            lower, upper = np.array(lp.col_lower_), np.array(lp.col_upper_)
            lp.col_lower_ = np.where(binary, fixed_values, lower)
            lp.col_upper_ = np.where(binary, fixed_values, upper)
            fixed = self._run(lp, started)
            lp.col_lower_, lp.col_upper_ = lower, upper
        finally:
            lp.integrality_ = integrality
        if fixed is None:
            return None, None, SolvePath.BRANCH_AND_BOUND
        value, values = fixed
        gap = max(value - bound, 0.0) / max(abs(value), 1e-9)
        if gap <= self.mip_gap_frac:
            return (SolverStatus.OPTIMAL, value, gap, values), None, SolvePath.ROUNDING
        start = highspy.HighsSolution()
        start.col_value = list(values)
        start.value_valid = True
        return None, start, SolvePath.BRANCH_AND_BOUND

    def _run(self, lp: highspy.HighsLp, started: float) -> tuple[float, FloatArray] | None:
        """Solve an LP; its objective and column values, or None when not optimal in time."""
        left_s = self.time_limit_s - (time.perf_counter() - started)
        if left_s <= 0.0:
            return None
        highs = self._solver(left_s)
        highs.passModel(lp)
        highs.run()
        if highs.getModelStatus() != highspy.HighsModelStatus.kOptimal:
            return None
        values = np.asarray(highs.getSolution().col_value, dtype=np.float64)
        return float(highs.getInfo().objective_function_value), values


def rounded_binaries(
    model: pyo.ConcreteModel, columns: list[Any], values: FloatArray, arrays: ScenarioArrays
) -> FloatArray:
    """Binary values from a relaxed solution: each mode from the sign of its asset's net power.

    ``z[s,t] = 1`` (V2G discharge mode) where ``pd > pc``; ``zs[t] = 1`` where ``sd > sc``;
    ``charging[s,t] = 1`` where ``pc > 0``; ``d_imp[t] = 1`` where ``imp >= exp``; ``c_pv[t] = 1``
    where PV is curtailed; the minimum-current modes (and any tie) are the relaxed value rounded
    to the nearest integer.

    Args:
        model: The model of the columns.
        columns: Its standard-form columns.
        values: The relaxed column values.
        arrays: The scenario it was built from.

    Returns:
        Column values with every binary column set to 0 or 1 (other columns as given).
    """
    tol = 1e-7
    column_of = {id(var): j for j, var in enumerate(columns)}

    def val(var: Any) -> float:
        j = column_of.get(id(var))
        return float(values[j]) if j is not None else float(var.value or 0.0)

    def mode(on: float, off: float) -> float | None:
        if on > off + tol:
            return 1.0
        if off > on + tol:
            return 0.0
        return None

    out = np.array(values, dtype=np.float64)
    pv_kw = arrays.series.pv_available_kw
    for j, var in enumerate(columns):
        if not var.is_integer():
            continue
        name, index = var.parent_component().name, var.index()
        chosen: float | None = None
        if name == "z":
            chosen = mode(val(model.pd[index]), val(model.pc[index]))
        elif name == "zs":
            chosen = mode(val(model.sd[index]), val(model.sc[index]))
        elif name == "charging":
            chosen = 1.0 if val(model.pc[index]) > tol else 0.0
        elif name == "d_imp":
            chosen = mode(val(model.imp[index]), val(model.exp[index]))
        elif name == "c_pv":
            chosen = 1.0 if val(model.pv[index]) < float(pv_kw[index]) - tol else 0.0
        out[j] = float(round(float(values[j]))) if chosen is None else chosen
    return out


def _read(highs: highspy.Highs, arrays: ScenarioArrays, is_mip: bool) -> SolveOutcome:
    """Status, objective, gap and column values of a finished HiGHS run.

    Raises:
        OptimalError: When HiGHS finds no solution.
    """
    condition = highs.getModelStatus()
    info = highs.getInfo()
    has_solution = info.primal_solution_status == highspy.SolutionStatus.kSolutionStatusFeasible
    if condition == highspy.HighsModelStatus.kOptimal:
        status = SolverStatus.OPTIMAL
    elif condition == highspy.HighsModelStatus.kTimeLimit and has_solution:
        status = SolverStatus.TIME_LIMIT
    else:
        raise OptimalError(
            f"optimum of {arrays.name}: the solver ended with {highs.modelStatusToString(condition)} "
            "and no solution"
        )
    values = np.asarray(highs.getSolution().col_value, dtype=np.float64)
    gap = float(info.mip_gap) if is_mip else 0.0
    return status, float(info.objective_function_value), gap, values


def _lp(repn: Any, columns: list[Any], is_mip: bool) -> highspy.HighsLp:
    """A pyomo standard form as a HiGHS LP: rows ``==`` (bound type 0), ``<=`` (1) or ``>=`` (-1) ``rhs``."""
    inf = highspy.kHighsInf
    n_cols = len(columns)
    kind = np.asarray([row.bound_type for row in repn.rows], dtype=np.int64)
    rhs = np.asarray(repn.rhs, dtype=np.float64)
    return highs_lp(
        cost=repn.c.toarray()[0] if repn.c.shape[0] else np.zeros(n_cols),
        offset=float(repn.c_offset[0]) if len(repn.c_offset) else 0.0,
        col_lower=np.asarray([-inf if v.lb is None else v.lb for v in columns], dtype=np.float64),
        col_upper=np.asarray([inf if v.ub is None else v.ub for v in columns], dtype=np.float64),
        row_lower=np.where(kind == 1, -inf, rhs),
        row_upper=np.where(kind == -1, inf, rhs),
        matrix=_Csr(repn.A.tocsr()),
        is_integer=np.asarray([v.is_integer() for v in columns], dtype=bool) if is_mip else None,
    )


class CsrMatrix(Protocol):
    """A sparse matrix compressed by rows (scipy's CSR layout).

    Row ``i``'s entries are ``data[indptr[i]:indptr[i + 1]]`` in the columns
    ``indices[indptr[i]:indptr[i + 1]]``.
    """

    @property
    def indptr(self) -> IntArray:
        """Start of each row's entries, ``(m + 1,)``."""

    @property
    def indices(self) -> IntArray:
        """Column of each entry, ``(nnz,)``."""

    @property
    def data(self) -> FloatArray:
        """Value of each entry, ``(nnz,)``."""


@dataclass(frozen=True)
class _Csr:
    """A scipy CSR matrix seen as :class:`CsrMatrix` (scipy has no type stubs here)."""

    matrix: Any

    @property
    def indptr(self) -> IntArray:
        """Start of each row's entries."""
        return np.asarray(self.matrix.indptr)

    @property
    def indices(self) -> IntArray:
        """Column of each entry."""
        return np.asarray(self.matrix.indices)

    @property
    def data(self) -> FloatArray:
        """Value of each entry."""
        return np.asarray(self.matrix.data)


def highs_lp(
    cost: FloatArray,
    offset: float,
    col_lower: FloatArray,
    col_upper: FloatArray,
    row_lower: FloatArray,
    row_upper: FloatArray,
    matrix: CsrMatrix,
    is_integer: BoolArray | None,
) -> highspy.HighsLp:
    """A standard form as a HiGHS LP: ``min cost @ x + offset`` s.t. ``row_lower <= A x <= row_upper``.

    Args:
        cost: Objective coefficients, ``(n,)``.
        offset: Objective constant.
        col_lower: Column lower bounds (``-inf`` for none), ``(n,)``.
        col_upper: Column upper bounds (``inf`` for none), ``(n,)``.
        row_lower: Row lower bounds (``-inf`` for none), ``(m,)``.
        row_upper: Row upper bounds (``inf`` for none), ``(m,)``.
        matrix: ``A``, compressed by rows, ``(m, n)``.
        is_integer: Which columns are integer, ``(n,)``; None for an LP.

    Returns:
        The LP, rowwise.
    """
    lp = highspy.HighsLp()
    lp.num_col_ = int(col_lower.shape[0])
    lp.num_row_ = int(row_lower.shape[0])
    lp.col_cost_ = cost
    lp.offset_ = offset
    lp.col_lower_ = col_lower
    lp.col_upper_ = col_upper
    lp.row_lower_ = row_lower
    lp.row_upper_ = row_upper
    lp.a_matrix_.format_ = highspy.MatrixFormat.kRowwise
    lp.a_matrix_.start_ = matrix.indptr
    lp.a_matrix_.index_ = matrix.indices
    lp.a_matrix_.value_ = matrix.data
    if is_integer is not None:
        integer, continuous = highspy.HighsVarType.kInteger, highspy.HighsVarType.kContinuous
        lp.integrality_ = [integer if flag else continuous for flag in is_integer.tolist()]
    return lp
