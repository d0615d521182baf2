"""Rolling-horizon MPC: at every step, the optimum of the window ahead from the current state.

At step ``t`` the policy compiles the window ``[t, min(t + H, T))`` into a scenario of its own
(:func:`window_scenario`) and solves it with the one model of :mod:`smac_rl.optimal.model`:

* sessions: those plugged in now, starting at their current stored energy (read from the step's
  context); with ``session_foresight`` also the sessions arriving within the window, with their
  true data (perfect knowledge of arrivals: the oracle-equality check, not a realistic policy);
* exogenous series: the forecast provider's, with the step itself taken from the context (what
  is measured and published at the step); the flexibility setpoint, a signal sent ahead, is taken
  as given;
* storage: its current stored energy;
* peak: the billing peak already reached (the context's ``peak_import_kw``) becomes the window's
  ``billing_peak_start_kw``, and the window's peak is held at or above it, so only peak growth is
  charged (demand charge, and the ``peak`` objective's penalty). The context's peak includes the
  billing peak carried in; for the ``peak`` objective, whose KPI does not, the floor is exact
  only when that carried-in peak is 0 (the default) or already exceeded;
* sessions leaving after the window keep the scorer's after-horizon rule (energy that can still be
  delivered at full power after the window does not count as unmet), so a short window charges
  only what can no longer wait (tests/optimal/test_mpc.py works the rolling through by hand).

The first step of the window's optimum is applied (connector powers and storage). With perfect
forecasts, ``session_foresight`` and a window covering the episode, the MPC's episode costs what
the perfect-foresight optimum does (Bellman's principle: the rest of an optimal plan is optimal
for the rest of the episode); the tests check it to 1e-6.

Model reuse and speed: each window is built anew. What changes from one step to the next is not
only data: sessions arrive and leave, each session's remaining window shrinks, and the binaries the
model places by the data (V2G modes, the physics rules at negative or inverted prices, minimum
current) move with the forecast, so the index sets of the one model change; a persistent model
with mutable parameters would need a second, padded formulation. Instead the window's standard
form is assembled straight from its arrays (:mod:`smac_rl.optimal.assemble`: vectorised numpy, the
same columns, rows and objective as the pyomo model of :mod:`smac_rl.optimal.model`, which stays
the one readable definition; tests/optimal/test_assemble.py checks both give the same optimum on
random scenarios) and handed to HiGHS as matrices by
:class:`~smac_rl.optimal.matrix_solve.MatrixSolver`; no replay or scoring runs, and only the first
step is applied. The assembler covers every family of the model, the minimum-current option
included; a window it did not cover (:func:`~smac_rl.optimal.assemble.unsupported_features`, empty
today) would be built in pyomo (:attr:`MpcStepTiming.builder` says which), and
``builder="pyomo"`` always builds in pyomo. Per step for 50 sessions over a 96-step window (an LP),
one thread, medians of 10 steps (``python -m smac_rl.bench.mpc_speed``, BENCHMARKS.md "MPC step"):
about 0.05 s assembled (assembly 3 ms, hand-over 3 ms, HiGHS 0.045 s) against about 0.43 s with the
pyomo model (model 0.27 s, standard form 0.10 s, HiGHS 0.045 s): the 0.1 s target is met, and HiGHS
is now nine tenths of the step. Windows with binaries (V2G) take longer, up to the time limit.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
import time

import numpy as np
import pyomo.environ as pyo

from smac_rl.core.arrays import ScenarioArrays, SeriesArrays, SessionArrays
from smac_rl.core.arraytypes import FloatArray, IntArray
from smac_rl.core.forecasts import FORECAST_SERIES, ExogenousForecast, ForecastProvider
from smac_rl.core.physics import grid_import_kw
from smac_rl.core.state import Setpoints, StepContext
from smac_rl.optimal.assemble import assemble, solve_assembled, supports
from smac_rl.optimal.matrix_solve import MatrixSolver
from smac_rl.optimal.model import build_model
from smac_rl.optimal.solve import Builder, check_builder

DEFAULT_HORIZON_STEPS = 96
"""Window of the MPC: 24 h of 15-minute steps."""

DEFAULT_HORIZON_H = 24.0
"""Window of the MPC that ``smac evaluate --policy mpc`` runs and that imitation's ``mpc`` expert uses [h]."""


def horizon_steps_of(step_h: float, horizon_h: float = DEFAULT_HORIZON_H) -> int:
    """The window, in steps of ``step_h`` hours, that covers ``horizon_h`` hours (at least one step)."""
    return max(1, round(horizon_h / step_h))


@dataclasses.dataclass(frozen=True)
class WindowScenario:
    """The scenario the MPC optimises at one step.

    Attributes:
        arrays: The window as a scenario of its own (its step 0 is the current step).
        session_index: Session of the full scenario behind each window session, ``(S_w,)``.
        peak_floor_kw: The peak already reached, below which the window's peak costs nothing [kW].
    """

    arrays: ScenarioArrays
    session_index: IntArray
    peak_floor_kw: float


def window_scenario(
    arrays: ScenarioArrays,
    context: StepContext,
    forecast: ExogenousForecast,
    session_foresight: bool = False,
) -> WindowScenario:
    """Compile the window that starts at the context's step (module docstring).

    Args:
        arrays: The full scenario (sessions' data, grid, objective).
        context: The current state, batch size 1.
        forecast: Forecast series from the context's step on; its length sets the window.
        session_foresight: Also take in the sessions arriving within the window.

    Returns:
        The window scenario and how its sessions map to the full scenario's.

    Raises:
        ValueError: For a batched context, a step off the grid, or a forecast made at another step.
    """
    t = context.step_index
    if context.batch_size != 1:
        raise ValueError(f"context.batch_size: got {context.batch_size}; expected 1 (one site)")
    if not 0 <= t < arrays.n_steps:
        raise ValueError(f"context.step_index: got {t}; expected 0 to {arrays.n_steps - 1}")
    if forecast.step_index != t:
        raise ValueError(f"forecast.step_index: got {forecast.step_index}; expected the context's step {t}")
    n_steps = forecast.n_steps
    if not 1 <= n_steps <= arrays.n_steps - t:
        raise ValueError(f"forecast.n_steps: got {n_steps}; expected 1 to {arrays.n_steps - t}")
    sessions = arrays.sessions
    present = context.ev.is_present[0]
    now = context.ev.session_index[0][present].astype(np.int64)
    energy = dict(zip(now.tolist(), context.ev.energy_kwh[0][present].tolist(), strict=True))
    chosen = now.tolist()
    if session_foresight:
        arriving = (sessions.first_step > t) & (sessions.first_step < t + n_steps)
        arriving &= sessions.end_step > sessions.first_step
        chosen += [s for s in np.flatnonzero(arriving).tolist() if s not in energy]
    index = np.asarray(sorted(chosen), dtype=np.int64)
    window_sessions = _window_sessions(sessions, index, t, energy)
    series = _window_series(arrays.series, forecast, context, t)
    site = dataclasses.replace(
        arrays.site,
        storage_initial_energy_kwh=float(context.storage_energy_kwh[0]),
        billing_peak_start_kw=float(context.peak_import_kw[0]),
    )
    occupancy = np.full((n_steps, site.n_connectors), -1, dtype=np.int64)
    for w in range(index.shape[0]):
        first, end = int(window_sessions.first_step[w]), min(int(window_sessions.end_step[w]), n_steps)
        occupancy[first:end, window_sessions.connector_index[w]] = w
    window = dataclasses.replace(
        arrays,
        name=f"{arrays.name}@{t}",
        start_utc=arrays.start_utc + dt.timedelta(hours=arrays.step_h * t),
        n_steps=n_steps,
        site=site,
        sessions=window_sessions,
        series=series,
        connector_session_index=occupancy,
    )
    return WindowScenario(window, index, float(context.peak_import_kw[0]))


def _window_sessions(
    sessions: SessionArrays, index: IntArray, t: int, energy_kwh: dict[int, float]
) -> SessionArrays:
    """The chosen sessions on the window's grid: steps shifted by ``t``, current energies at arrival."""
    arrival = sessions.arrival_energy_kwh[index].copy()
    for w, s in enumerate(index.tolist()):
        if s in energy_kwh:
            arrival[w] = energy_kwh[s]
    values = {
        f.name: getattr(sessions, f.name)[index]
        for f in dataclasses.fields(sessions)
        if f.name != "session_ids"
    }
    values["first_step"] = np.maximum(sessions.first_step[index] - t, 0)
    values["end_step"] = sessions.end_step[index] - t
    values["arrival_energy_kwh"] = arrival
    return SessionArrays(session_ids=tuple(sessions.session_ids[s] for s in index.tolist()), **values)


def _window_series(
    series: SeriesArrays, forecast: ExogenousForecast, context: StepContext, t: int
) -> SeriesArrays:
    """The forecast series, the current step's values from the context (measured, published)."""
    n_steps = forecast.n_steps
    values: dict[str, FloatArray] = {}
    for name in FORECAST_SERIES:
        value = np.array(getattr(forecast, name), dtype=np.float64)
        if value.shape != (n_steps,) or np.isnan(value).any():
            raise ValueError(
                f"forecast.{name}: got shape {value.shape}, NaN: {bool(np.isnan(value).any())}; "
                f"expected shape ({n_steps},) without NaN"
            )
        value[0] = float(getattr(context.exo, name)[0])
        values[name] = value
    return SeriesArrays(
        grid_setpoint_kw=series.grid_setpoint_kw[t : t + n_steps].copy(),
        is_grid_setpoint_given=series.is_grid_setpoint_given,
        **values,
    )


@dataclasses.dataclass(frozen=True)
class MpcStepTiming:
    """Where one MPC step's time went (wall clock).

    Attributes:
        step_index: The step.
        n_sessions: Sessions in the window.
        n_window_steps: Steps in the window.
        build_s: Forecast, window scenario and the model: the pyomo model, or the assembled
            standard form's arrays [s].
        compile_s: The model compiled to the standard form (pyomo) and handed to HiGHS as an LP [s].
        solve_s: HiGHS [s].
        total_s: The whole step, reading the solution included [s].
        window_objective_eur: The window optimum's objective, as the solver reports it [EUR].
        builder: The builder that built this window (``pyomo`` where the assembler does not cover it).
    """

    step_index: int
    n_sessions: int
    n_window_steps: int
    build_s: float
    compile_s: float
    solve_s: float
    total_s: float
    window_objective_eur: float
    builder: Builder = "pyomo"


class MpcPolicy:
    """Rolling-horizon MPC on the one optimum model (module docstring), an episode policy.

    Every step builds the window's standard form, assembled from the arrays where
    :func:`smac_rl.optimal.assemble.supports` the window and from the pyomo model otherwise (or
    always, with ``builder="pyomo"``), and solves it with :class:`MatrixSolver` (one thread by
    default); :attr:`timings` records where each step's time went and which builder built it.
    """

    def __init__(
        self,
        forecast: ForecastProvider,
        horizon_steps: int = DEFAULT_HORIZON_STEPS,
        session_foresight: bool = False,
        mip_gap_frac: float = 1e-4,
        time_limit_s: float = 10.0,
        n_threads: int = 1,
        builder: Builder = "assemble",
        early_charging_eur_per_kwh: float = 0.0,
    ) -> None:
        """Create the policy.

        Args:
            forecast: Provider of the exogenous series over the window.
            horizon_steps: Window length, the current step included [steps].
            session_foresight: Also plan for the sessions arriving within the window (perfect
                knowledge of arrivals; for the oracle-equality check).
            mip_gap_frac: Relative MIP gap at which each window's solve stops.
            time_limit_s: Solver time limit of each window [s].
            n_threads: Solver threads.
            builder: ``assemble`` (the standard form from the arrays, the pyomo model where the
                assembler does not cover a window) or ``pyomo`` (always the pyomo model); the same
                optimum either way.
            early_charging_eur_per_kwh: Tie-breaker among equally cheap plans, in favour of charging
                early (:func:`smac_rl.optimal.assemble.define_early_charging`); 0: none. Needs the
                ``assemble`` builder.

        Raises:
            ValueError: For a horizon under one step, a gap outside [0, 1), a time limit that is
                not positive, no thread, an unknown builder, or a negative tie-breaker (or one with
                the pyomo builder).
        """
        if horizon_steps < 1:
            raise ValueError(f"horizon_steps: got {horizon_steps}; expected at least 1")
        if not (early_charging_eur_per_kwh >= 0.0 and math.isfinite(early_charging_eur_per_kwh)):
            raise ValueError(
                f"early_charging_eur_per_kwh: got {early_charging_eur_per_kwh}; expected a finite value >= 0"
            )
        if early_charging_eur_per_kwh > 0.0 and builder != "assemble":
            raise ValueError(
                f"early_charging_eur_per_kwh: got {early_charging_eur_per_kwh} with builder {builder!r}; "
                "the tie-breaker is the assembled form's, expected builder 'assemble'"
            )
        self.early_charging_eur_per_kwh = early_charging_eur_per_kwh
        self.builder: Builder = check_builder(builder)
        self.forecast = forecast
        self.horizon_steps = horizon_steps
        self.session_foresight = session_foresight
        self.solver = MatrixSolver(time_limit_s, mip_gap_frac, n_threads)
        self.timings: list[MpcStepTiming] = []
        self.planned_peak_import_kw: float | None = None
        """The highest import of the last window's plan [kW]
        (:func:`smac_rl.core.physics.grid_import_kw` of its steps; None before the first step): the
        level the MPC means to hold."""
        self._arrays: ScenarioArrays | None = None

    @property
    def name(self) -> str:
        """``mpc_<forecast name>``, with ``_foresight`` when arrivals are known ahead."""
        return f"mpc_{self.forecast.name}" + ("_foresight" if self.session_foresight else "")

    def begin_episode(self, arrays: ScenarioArrays) -> None:
        """Bind the policy to the scenario it runs on (sessions' data, forecasts); clear the timings."""
        self._arrays = arrays
        self.timings = []
        self.planned_peak_import_kw = None

    def act(self, context: StepContext) -> Setpoints:
        """Solve the window ahead and return its first step's setpoints [kW].

        Args:
            context: The current state, batch size 1.

        Returns:
            Connector and storage setpoints of the window optimum's first step.

        Raises:
            RuntimeError: Before :meth:`begin_episode`.
            ValueError: For a batched context, a step off the grid or a malformed forecast.
            OptimalError: When the window's solve finds no solution.
        """
        arrays = self._arrays
        if arrays is None:
            raise RuntimeError(f"{self.name}: call begin_episode(arrays) before act()")
        started = time.perf_counter()
        forecast = self.forecast.forecast(arrays, context.step_index, self.horizon_steps)
        window = window_scenario(arrays, context, forecast, self.session_foresight)
        builder: Builder = "assemble" if self.builder == "assemble" and supports(window.arrays) else "pyomo"
        if builder == "assemble":
            problem = assemble(
                window.arrays,
                peak_floor_kw=window.peak_floor_kw,
                early_charging_eur_per_kwh=self.early_charging_eur_per_kwh,
            )
            built = time.perf_counter()
            solution = solve_assembled(self.solver, problem, built)
        else:
            model = build_model(window.arrays)
            model.peak_floor = pyo.Constraint(expr=model.peak >= window.peak_floor_kw)
            built = time.perf_counter()
            solution = self.solver.solve(model, window.arrays)
        self.timings.append(
            MpcStepTiming(
                step_index=context.step_index,
                n_sessions=window.arrays.sessions.n_sessions,
                n_window_steps=window.arrays.n_steps,
                build_s=built - started,
                compile_s=solution.compile_s,
                solve_s=solution.solve_s,
                total_s=time.perf_counter() - started,
                window_objective_eur=solution.objective_eur,
                builder=builder,
            )
        )
        series = window.arrays.series
        planned_import_kw = grid_import_kw(
            series.base_load_kw,
            series.pv_available_kw,
            solution.ev_power_kw.sum(axis=1),
            solution.storage_power_kw,
        )
        self.planned_peak_import_kw = float(planned_import_kw.max())
        return Setpoints(solution.ev_power_kw[:1].copy(), solution.storage_power_kw[:1].copy())


__all__ = [
    "DEFAULT_HORIZON_STEPS",
    "Builder",
    "MpcPolicy",
    "MpcStepTiming",
    "WindowScenario",
    "window_scenario",
]
