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
  charged (demand charge, and the ``peak`` objective's penalty);
* sessions leaving after the window keep the scorer's after-horizon rule (energy that can still be
  delivered at full power after the window does not count as unmet).

The first step of the window's optimum is applied (connector powers and storage). With perfect
forecasts, ``session_foresight`` and a window covering the episode, the MPC's episode costs what
the perfect-foresight optimum does (Bellman's principle: the rest of an optimal plan is optimal
for the rest of the episode).

Model reuse: the window is rebuilt at every step (sessions arrive and leave, the window slides, so
the model's index sets change from step to step); what is reused is the model definition. The
measured step times are in the class docstring of :class:`MpcPolicy`.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import time

import numpy as np
import pyomo.environ as pyo

from smac_rl.core.arrays import ScenarioArrays, SeriesArrays, SessionArrays
from smac_rl.core.arraytypes import FloatArray, IntArray
from smac_rl.core.forecasts import FORECAST_SERIES, ExogenousForecast, ForecastProvider
from smac_rl.core.state import Setpoints, StepContext
from smac_rl.optimal.model import OptimalError, build_model
from smac_rl.optimal.solve import solve_model

DEFAULT_HORIZON_STEPS = 96
"""Window of the MPC: 24 h of 15-minute steps."""


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
    values: dict[str, FloatArray] = {}
    for name in FORECAST_SERIES:
        value = np.asarray(getattr(forecast, name), dtype=np.float64).copy()
        value[0] = float(getattr(context.exo, name)[0])
        values[name] = value
    n_steps = forecast.n_steps
    return SeriesArrays(
        grid_setpoint_kw=series.grid_setpoint_kw[t : t + n_steps].copy(),
        is_grid_setpoint_given=series.is_grid_setpoint_given,
        **values,
    )


class MpcPolicy:
    """Rolling-horizon MPC on the one optimum model (module docstring), an episode policy.

    Step times (the window rebuilt and solved each step, HiGHS on one thread) are kept in
    :attr:`step_times_s`; the figures for 50 sessions over a 96-step window are in the issue note
    and measured with :func:`smac_rl.optimal.mpc.measure_step_times_s`.
    """

    def __init__(
        self,
        forecast: ForecastProvider,
        horizon_steps: int = DEFAULT_HORIZON_STEPS,
        session_foresight: bool = False,
        mip_gap_frac: float = 1e-4,
        time_limit_s: float = 10.0,
        n_threads: int = 1,
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

        Raises:
            ValueError: For a horizon under one step, a gap outside [0, 1), a time limit or thread
                count that is not positive.
        """
        if horizon_steps < 1:
            raise ValueError(f"horizon_steps: got {horizon_steps}; expected at least 1")
        if not 0.0 <= mip_gap_frac < 1.0:
            raise ValueError(f"mip_gap_frac: got {mip_gap_frac}; expected 0 <= value < 1")
        if not time_limit_s > 0.0:
            raise ValueError(f"time_limit_s: got {time_limit_s}; expected > 0")
        if n_threads < 1:
            raise ValueError(f"n_threads: got {n_threads}; expected at least 1")
        self.forecast = forecast
        self.horizon_steps = horizon_steps
        self.session_foresight = session_foresight
        self.mip_gap_frac, self.time_limit_s, self.n_threads = mip_gap_frac, time_limit_s, n_threads
        self.step_times_s: list[float] = []
        self._arrays: ScenarioArrays | None = None

    @property
    def name(self) -> str:
        """``mpc_<forecast>``, with ``_foresight`` when arrivals are known ahead."""
        return f"mpc_{self.forecast.name}" + ("_foresight" if self.session_foresight else "")

    def begin_episode(self, arrays: ScenarioArrays) -> None:
        """Bind the policy to the scenario it runs on (sessions' data, forecasts)."""
        self._arrays = arrays
        self.step_times_s = []

    def act(self, context: StepContext) -> Setpoints:
        """Solve the window ahead and return its first step's setpoints [kW].

        Args:
            context: The current state, batch size 1.

        Returns:
            Connector and storage setpoints of the window optimum's first step.

        Raises:
            RuntimeError: Before :meth:`begin_episode`.
            ValueError: For a batched context or a step off the grid.
            OptimalError: When the window's solve finds no solution.
        """
        arrays = self._arrays
        if arrays is None:
            raise RuntimeError(f"{self.name}: call begin_episode(arrays) before act()")
        started = time.perf_counter()
        forecast = self.forecast.forecast(arrays, context.step_index, self.horizon_steps)
        window = window_scenario(arrays, context, forecast, self.session_foresight)
        ev_power, storage_power = self.solve_first_step(window)
        self.step_times_s.append(time.perf_counter() - started)
        return Setpoints(ev_power[None, :], np.asarray([storage_power]))

    def solve_first_step(self, window: WindowScenario) -> tuple[FloatArray, float]:
        """The window optimum's first-step setpoints: connector powers ``(C,)`` and storage [kW]."""
        model = build_model(window.arrays)
        model.peak_floor = pyo.Constraint(expr=model.peak >= window.peak_floor_kw)
        solution = solve_model(model, window.arrays, self.time_limit_s, self.mip_gap_frac, self.n_threads)
        return solution.ev_power_kw[0].copy(), float(solution.storage_power_kw[0])


__all__ = [
    "DEFAULT_HORIZON_STEPS",
    "MpcPolicy",
    "OptimalError",
    "WindowScenario",
    "window_scenario",
]
