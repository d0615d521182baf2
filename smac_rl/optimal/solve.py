"""Solving the optimum with HiGHS, and its result scored by the one scorer."""

from __future__ import annotations

import enum
import time
from dataclasses import dataclass
from typing import Literal, get_args

import numpy as np
import pyomo.environ as pyo
from pyomo.contrib.appsi.base import TerminationCondition
from pyomo.contrib.appsi.solvers import Highs

from smac_rl.core.arrays import ScenarioArrays
from smac_rl.core.arraytypes import FloatArray
from smac_rl.core.scoring import Kpis, score
from smac_rl.core.simulate import Trace, replay
from smac_rl.optimal.model import OptimalError, build_model

Builder = Literal["assemble", "pyomo"]
"""How the optimum's standard form is built: assembled from the arrays (:mod:`smac_rl.optimal.assemble`,
the default) or the pyomo model of :func:`smac_rl.optimal.model.build_model` compiled; the same
optimum either way (tests/optimal/test_assemble.py)."""

BUILDERS: tuple[Builder, ...] = get_args(Builder)
"""Every builder's name, the default first."""


def check_builder(builder: str) -> Builder:
    """The builder, checked.

    Args:
        builder: ``assemble`` or ``pyomo``.

    Returns:
        The builder.

    Raises:
        ValueError: For a name that is not one of :data:`BUILDERS`.
    """
    if builder not in BUILDERS:
        raise ValueError(f"builder: got {builder!r}; expected one of {BUILDERS}")
    return builder


class SolverStatus(enum.Enum):
    """How the solve ended."""

    OPTIMAL = "optimal"
    """Proven optimal within the MIP gap."""
    TIME_LIMIT = "time_limit"
    """Stopped at the time limit with a feasible solution (see ``mip_gap``)."""


class SolvePath(enum.Enum):
    """How a model with binaries was solved (:class:`smac_rl.optimal.matrix_solve.MatrixSolver`)."""

    SOLVER = "solver"
    """Handed to HiGHS as it is (an LP, or a MIP without the rounding path)."""
    ROUNDING = "rounding"
    """Proven by rounding: the LP with binaries fixed from the relaxation matched its bound."""
    BRANCH_AND_BOUND = "branch_and_bound"
    """Rounding did not prove it: HiGHS's branch and bound, started from the rounded solution."""


@dataclass(frozen=True)
class OptimalResult:
    """The optimum of one scenario.

    Attributes:
        ev_power_kw: Connector setpoints [kW], ``(T, C)``.
        storage_power_kw: Storage setpoints [kW], ``(T,)``.
        objective_eur: The solver's objective: the scenario's objective plus penalised limit slack [EUR].
        status: How the solve ended.
        mip_gap_frac: Relative gap between the solution and the bound (0 for a pure LP).
        n_binaries: Binary variables in the model (where
            :func:`smac_rl.optimal.model.binary_needs` puts them).
        build_s: Time to build the model: the pyomo model, or the assembled standard form [s].
        solve_s: Time to compile it to matrices, hand it to HiGHS and solve it [s].
        trace: The profile replayed through the projection and the physics.
        kpis: The scorer's KPIs of that replay.
        path: How it was solved (rounding, or branch and bound).
        compile_s: Of ``solve_s``, the compilation to matrices and the hand-over to HiGHS (pyomo's
            standard-form compiler, or the assembled arrays made a HiGHS LP) [s].
        builder: The builder that built it (``pyomo`` where the assembler does not cover the
            scenario, :func:`smac_rl.optimal.assemble.unsupported_features`).
    """

    ev_power_kw: FloatArray
    storage_power_kw: FloatArray
    objective_eur: float
    status: SolverStatus
    mip_gap_frac: float
    n_binaries: int
    build_s: float
    solve_s: float
    trace: Trace
    kpis: Kpis
    path: SolvePath = SolvePath.SOLVER
    compile_s: float = 0.0
    builder: Builder = "pyomo"


@dataclass(frozen=True)
class ModelSolution:
    """A built model solved, before any replay.

    From :func:`solve_model`, or the MPC's :class:`smac_rl.optimal.matrix_solve.MatrixSolver`.

    Attributes:
        ev_power_kw: Connector setpoints [kW], ``(T, C)``.
        storage_power_kw: Storage setpoints [kW], ``(T,)``.
        objective_eur: The solver's objective [EUR].
        status: How the solve ended.
        mip_gap_frac: Relative gap between the solution and the bound (0 for a pure LP).
        solve_s: Time to solve it [s]; through appsi (:func:`solve_model`) the model's hand-over
            to HiGHS is included.
        compile_s: Time to compile the model to matrices and hand them to HiGHS, where that is
            apart from ``solve_s`` (0 through appsi) [s].
        path: How it was solved.
    """

    ev_power_kw: FloatArray
    storage_power_kw: FloatArray
    objective_eur: float
    status: SolverStatus
    mip_gap_frac: float
    solve_s: float
    compile_s: float = 0.0
    path: SolvePath = SolvePath.SOLVER


def solve_model(
    model: pyo.ConcreteModel,
    arrays: ScenarioArrays,
    time_limit_s: float = 120.0,
    mip_gap_frac: float = 1e-4,
    n_threads: int = 1,
) -> ModelSolution:
    """Solve a model of :func:`smac_rl.optimal.model.build_model` with HiGHS and read its profile.

    Args:
        model: The model, built from ``arrays`` (a caller may have added constraints).
        arrays: The scenario it was built from.
        time_limit_s: Solver time limit [s].
        mip_gap_frac: Relative MIP gap at which the solver stops.
        n_threads: Solver threads.

    Returns:
        The solution, not replayed.

    Raises:
        OptimalError: When no solution was found.
    """
    started = time.perf_counter()
    solver = Highs()
    solver.config.time_limit = time_limit_s
    solver.config.mip_gap = mip_gap_frac
    solver.config.load_solution = False
    solver.highs_options = {"threads": n_threads, "random_seed": 0}
    results = solver.solve(model)
    solved = time.perf_counter()
    condition = results.termination_condition
    if condition == TerminationCondition.optimal:
        status = SolverStatus.OPTIMAL
    elif condition == TerminationCondition.maxTimeLimit and results.best_feasible_objective is not None:
        status = SolverStatus.TIME_LIMIT
    else:
        raise OptimalError(
            f"optimum of {arrays.name}: the solver ended with {condition.name} and no solution"
        )
    results.solution_loader.load_vars()
    ev_power, storage_power = _profile(model, arrays)
    objective = float(pyo.value(model.cost))
    bound = results.best_objective_bound
    gap = 0.0 if bound is None else abs(objective - bound) / max(abs(objective), 1e-9)
    return ModelSolution(ev_power, storage_power, objective, status, gap, solved - started)


def solve_optimal(
    arrays: ScenarioArrays,
    time_limit_s: float = 120.0,
    mip_gap_frac: float = 1e-4,
    n_threads: int = 1,
    builder: Builder = "assemble",
    early_charging_eur_per_kwh: float = 0.0,
) -> OptimalResult:
    """Solve the perfect-foresight optimum of a scenario and score its profile.

    The model has binaries only where :func:`smac_rl.optimal.model.binary_needs` says they may
    change the optimum; what remains is tried by rounding first (the LP relaxation, binaries fixed
    from its profile, the LP again: proven optimal without branch and bound when it meets the
    relaxation's bound within the gap), then by HiGHS's branch and bound started from the rounded
    solution (:class:`smac_rl.optimal.matrix_solve.MatrixSolver`).

    Args:
        arrays: The compiled scenario.
        time_limit_s: Solver time limit, for all solves together [s].
        mip_gap_frac: Relative MIP gap at which the solver stops.
        n_threads: Solver threads.
        builder: ``assemble`` (the standard form from the arrays, :mod:`smac_rl.optimal.assemble`;
            the pyomo model where the assembler does not cover the scenario) or ``pyomo`` (the
            model of :func:`smac_rl.optimal.model.build_model`, compiled): the same optimum.
        early_charging_eur_per_kwh: Tie-breaker among equally cheap plans in favour of charging
            early (:func:`smac_rl.optimal.assemble.define_early_charging`; imitation's labels);
            0: none. Needs the ``assemble`` builder and a scenario it covers. ``objective_eur``
            then includes it; the KPIs, scored on the replayed profile, do not.

    Returns:
        The result, replayed and scored.

    Raises:
        ValueError: For an unknown builder, or a tie-breaker the pyomo model would have to build.
        OptimalError: When no solution was found.
    """
    from smac_rl.optimal.assemble import assemble, solve_assembled, supports
    from smac_rl.optimal.matrix_solve import MatrixSolver

    chosen = check_builder(builder)
    if early_charging_eur_per_kwh and not (chosen == "assemble" and supports(arrays)):
        raise ValueError(
            f"early_charging_eur_per_kwh: got {early_charging_eur_per_kwh} with builder {chosen!r} on "
            f"{arrays.name!r}; the tie-breaker is the assembled form's, expected builder 'assemble'"
        )
    solver = MatrixSolver(time_limit_s, mip_gap_frac, n_threads, is_rounding_first=True)
    started = time.perf_counter()
    if chosen == "assemble" and supports(arrays):
        problem = assemble(arrays, early_charging_eur_per_kwh=early_charging_eur_per_kwh)
        built = time.perf_counter()
        solution = solve_assembled(solver, problem, built)
        n_binaries = problem.n_binaries
    else:
        chosen = "pyomo"
        model = build_model(arrays)
        built = time.perf_counter()
        solution = solver.solve(model, arrays)
        n_binaries = sum(1 for v in model.component_data_objects(pyo.Var) if v.is_binary())
    trace = replay(arrays, solution.ev_power_kw, solution.storage_power_kw)
    return OptimalResult(
        ev_power_kw=solution.ev_power_kw,
        storage_power_kw=solution.storage_power_kw,
        objective_eur=solution.objective_eur,
        status=solution.status,
        mip_gap_frac=solution.mip_gap_frac,
        n_binaries=n_binaries,
        build_s=built - started,
        solve_s=solution.compile_s + solution.solve_s,
        trace=trace,
        kpis=score(arrays, trace),
        path=solution.path,
        compile_s=solution.compile_s,
        builder=chosen,
    )


def _profile(model: pyo.ConcreteModel, arrays: ScenarioArrays) -> tuple[FloatArray, FloatArray]:
    ev_power = np.zeros((arrays.n_steps, arrays.site.n_connectors))
    for s, t in model.SP:
        c = int(arrays.sessions.connector_index[s])
        ev_power[t, c] = float(pyo.value(model.pc[s, t])) - float(pyo.value(model.pd[s, t]))
    storage = np.asarray([float(pyo.value(model.sc[t])) - float(pyo.value(model.sd[t])) for t in model.T])
    return ev_power, storage
