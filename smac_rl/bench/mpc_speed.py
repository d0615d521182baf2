"""How long one MPC step takes: ``N`` sessions over a ``H``-step window, HiGHS on one thread.

The scenario (:func:`mpc_bench_scenario`): ``N`` sessions plugged in at the start on 11 kW AC
connectors (two per charger), leaving between 6 h and 40 h later (some after the window), a
200 kWh storage, a day-ahead-like price, a demand charge; 15-minute steps, ``H + K`` of them, so
each of the ``K`` measured steps solves a full ``H``-step window with every session in it.

Each measured step is a real episode step (:func:`smac_rl.policies.run_policy` stops after ``K``
steps) of the MPC as it runs by default: forecast, window scenario, the standard form assembled from
the arrays (:mod:`smac_rl.optimal.assemble`) and handed to HiGHS, solve, first step applied. Timed
on the same windows (the same contexts) in the same run: the MPC with ``builder="pyomo"`` (the
pyomo model compiled to the standard form, :class:`smac_rl.optimal.matrix_solve.MatrixSolver`), and
the pyomo model handed over through pyomo's appsi interface and solved
(:func:`smac_rl.optimal.solve.solve_model`, as :func:`smac_rl.optimal.solve.solve_optimal` did).

Run: ``python -m smac_rl.bench.mpc_speed [N] [H] [K]`` (prints one JSON object).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import statistics
import sys
import time
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from smac_rl.core.arrays import ScenarioArrays, compile_scenario
from smac_rl.core.forecasts import PerfectForecast
from smac_rl.core.scenario_io import parse_scenario
from smac_rl.core.state import Setpoints, StepContext
from smac_rl.policies import run_policy

BENCH_START_UTC = dt.datetime(2024, 3, 12, tzinfo=dt.UTC)
"""Start of the benchmark scenario."""


@dataclass(frozen=True)
class MpcSpeed:
    """MPC step times, medians over the measured steps (module docstring), wall clock unless named CPU.

    The unprefixed figures are the MPC's default builder (the standard form assembled from the
    arrays); ``pyomo_*`` the same windows with ``builder="pyomo"``.

    Attributes:
        n_sessions: Sessions in every measured window.
        horizon_steps: Window length [steps].
        n_measured_steps: Steps measured.
        step_s: Whole step [s].
        build_s: Forecast, window scenario and the assembled standard form [s].
        compile_s: The standard form handed to HiGHS as an LP [s].
        solve_s: HiGHS [s].
        step_min_s: Fastest step [s].
        step_max_s: Slowest step [s].
        appsi_handover_solve_s: Baseline: the pyomo model handed over through appsi and solved [s].
        step_cpu_s: Whole step, process CPU time (what the step costs on a core of its own) [s].
        appsi_handover_solve_cpu_s: The baseline in process CPU time [s].
        pyomo_step_s: Whole step with the pyomo builder [s].
        pyomo_build_s: Forecast, window scenario and the pyomo model [s].
        pyomo_compile_s: The pyomo model compiled to the standard form and handed to HiGHS [s].
        pyomo_solve_s: HiGHS, pyomo builder [s].
        pyomo_step_cpu_s: Whole step with the pyomo builder, process CPU time [s].
        n_steps_assembled: Measured steps the default MPC assembled (the others fell back to pyomo).
        pyomo_over_assembled_step_ratio: ``pyomo_step_s / step_s``.
        objective_max_abs_diff_eur: Largest difference between the assembled window optimum and the
            pyomo builder's or appsi's on the same window [EUR].
    """

    n_sessions: int
    horizon_steps: int
    n_measured_steps: int
    step_s: float
    build_s: float
    compile_s: float
    solve_s: float
    step_min_s: float
    step_max_s: float
    appsi_handover_solve_s: float
    step_cpu_s: float
    appsi_handover_solve_cpu_s: float
    pyomo_step_s: float
    pyomo_build_s: float
    pyomo_compile_s: float
    pyomo_solve_s: float
    pyomo_step_cpu_s: float
    n_steps_assembled: int
    pyomo_over_assembled_step_ratio: float
    objective_max_abs_diff_eur: float


def mpc_bench_scenario(
    n_sessions: int = 50, horizon_steps: int = 96, n_measured_steps: int = 10
) -> ScenarioArrays:
    """The benchmark scenario (module docstring), ``horizon_steps + n_measured_steps`` steps long.

    Raises:
        ValueError: For fewer than one session, window step or measured step.
    """
    for name, value in (
        ("n_sessions", n_sessions),
        ("horizon_steps", horizon_steps),
        ("n_measured_steps", n_measured_steps),
    ):
        if value < 1:
            raise ValueError(f"{name}: got {value}; expected at least 1")
    rng = np.random.default_rng(0)
    n_chargers = (n_sessions + 1) // 2
    chargers = [
        {
            "station_id": f"AC{k:03d}",
            "kind": "ac",
            "n_phases": 3,
            "max_current_a": 32.0,
            "connectors": [{"evse_id": 1, "max_power_kw": 11.04}, {"evse_id": 2, "max_power_kw": 11.04}],
        }
        for k in range(n_chargers)
    ]
    sessions = [
        {
            "session_id": f"S{s:03d}",
            "station_id": f"AC{s // 2:03d}",
            "evse_id": s % 2 + 1,
            "arrival_utc": BENCH_START_UTC.isoformat(),
            "departure_utc": (
                BENCH_START_UTC + dt.timedelta(hours=float(rng.uniform(6.0, 40.0)))
            ).isoformat(),
            "battery_capacity_kwh": 60.0,
            "arrival_soc_frac": float(rng.uniform(0.1, 0.5)),
            "energy_wanted_kwh": float(rng.uniform(10.0, 30.0)),
            "ev_max_ac_kw": 11.0,
        }
        for s in range(n_sessions)
    ]
    n_steps = horizon_steps + n_measured_steps
    hours = np.arange(n_steps) * 0.25
    price = np.round(0.2 + 0.1 * np.sin(2.0 * np.pi * (hours - 8.0) / 24.0), 4)
    data: dict[str, Any] = {
        "name": f"mpc_bench_{n_sessions}",
        "site": {
            "site_id": "mpc-bench",
            "timezone": "UTC",
            "chargers": chargers,
            "storage": {"capacity_kwh": 200.0, "max_charge_kw": 100.0, "max_discharge_kw": 100.0},
            "grid": {"import_limit_kw": 8.0 * n_sessions + 50.0},
            "tariff": {"demand_charge_eur_per_kw": 0.5},
        },
        "time_grid": {"start_utc": BENCH_START_UTC.isoformat(), "step_min": 15, "n_steps": n_steps},
        "sessions": sessions,
        "series": {
            "import_price_eur_per_kwh": price.tolist(),
            "export_price_eur_per_kwh": 0.05,
            "base_load_kw": 20.0,
        },
        "unmet_energy_penalty_eur_per_kwh": 2.0,
    }
    return compile_scenario(parse_scenario(data))


class _EnoughStepsError(Exception):
    """Ends the measured episode after its last measured step."""


class _Timed:
    """The MPC, with the pyomo builder and the appsi baseline timed on each step's window."""

    def __init__(self, horizon_steps: int) -> None:
        from smac_rl.optimal.mpc import MpcPolicy

        self.policy = MpcPolicy(PerfectForecast(), horizon_steps=horizon_steps)
        self.by_pyomo = MpcPolicy(PerfectForecast(), horizon_steps=horizon_steps, builder="pyomo")
        self.name = self.policy.name
        self.appsi_s: list[float] = []
        self.step_cpu_s: list[float] = []
        self.pyomo_cpu_s: list[float] = []
        self.appsi_cpu_s: list[float] = []
        self.objective_diff_eur: list[float] = []

    def begin_episode(self, arrays: ScenarioArrays) -> None:
        self.arrays = arrays
        self.policy.begin_episode(arrays)
        self.by_pyomo.begin_episode(arrays)

    def act(self, context: StepContext) -> Setpoints:
        import pyomo.environ as pyo

        from smac_rl.optimal.model import build_model
        from smac_rl.optimal.mpc import window_scenario
        from smac_rl.optimal.solve import solve_model

        cpu = time.process_time()
        setpoints = self.policy.act(context)
        self.step_cpu_s.append(time.process_time() - cpu)
        cpu = time.process_time()
        self.by_pyomo.act(context)
        self.pyomo_cpu_s.append(time.process_time() - cpu)
        forecast = self.policy.forecast.forecast(self.arrays, context.step_index, self.policy.horizon_steps)
        window = window_scenario(self.arrays, context, forecast)
        model = build_model(window.arrays)
        model.peak_floor = pyo.Constraint(expr=model.peak >= window.peak_floor_kw)
        started, cpu = time.perf_counter(), time.process_time()
        appsi = solve_model(model, window.arrays)
        optima = [appsi.objective_eur, self.by_pyomo.timings[-1].window_objective_eur]
        self.objective_diff_eur.append(
            max(abs(o - self.policy.timings[-1].window_objective_eur) for o in optima)
        )
        self.appsi_s.append(time.perf_counter() - started)
        self.appsi_cpu_s.append(time.process_time() - cpu)
        return setpoints


def measure_mpc(n_sessions: int = 50, horizon_steps: int = 96, n_measured_steps: int = 10) -> MpcSpeed:
    """Measure MPC steps on the benchmark scenario (module docstring), HiGHS on one thread."""
    arrays = mpc_bench_scenario(n_sessions, horizon_steps, n_measured_steps)
    timed = _Timed(horizon_steps)

    def stop_after(step_index: int) -> None:
        if step_index + 1 >= n_measured_steps:
            raise _EnoughStepsError

    with contextlib.suppress(_EnoughStepsError):
        run_policy(arrays, timed, stop_after)
    steps, by_pyomo = timed.policy.timings, timed.by_pyomo.timings
    if any(t.n_sessions != n_sessions or t.n_window_steps != horizon_steps for t in steps + by_pyomo):
        raise RuntimeError("mpc bench: a measured window lacks sessions or steps")
    totals = [t.total_s for t in steps]
    pyomo_totals = [t.total_s for t in by_pyomo]
    return MpcSpeed(
        n_sessions=n_sessions,
        horizon_steps=horizon_steps,
        n_measured_steps=len(steps),
        step_s=statistics.median(totals),
        build_s=statistics.median(t.build_s for t in steps),
        compile_s=statistics.median(t.compile_s for t in steps),
        solve_s=statistics.median(t.solve_s for t in steps),
        step_min_s=min(totals),
        step_max_s=max(totals),
        appsi_handover_solve_s=statistics.median(timed.appsi_s),
        step_cpu_s=statistics.median(timed.step_cpu_s),
        appsi_handover_solve_cpu_s=statistics.median(timed.appsi_cpu_s),
        pyomo_step_s=statistics.median(pyomo_totals),
        pyomo_build_s=statistics.median(t.build_s for t in by_pyomo),
        pyomo_compile_s=statistics.median(t.compile_s for t in by_pyomo),
        pyomo_solve_s=statistics.median(t.solve_s for t in by_pyomo),
        pyomo_step_cpu_s=statistics.median(timed.pyomo_cpu_s),
        n_steps_assembled=sum(t.builder == "assemble" for t in steps),
        pyomo_over_assembled_step_ratio=statistics.median(pyomo_totals) / statistics.median(totals),
        objective_max_abs_diff_eur=max(timed.objective_diff_eur),
    )


def main(argv: list[str]) -> None:
    """``python -m smac_rl.bench.mpc_speed [N] [H] [K]``: one core, one JSON line."""
    from smac_rl.bench.env_speed import pin_one_core

    pin_one_core()
    sizes = [int(a) for a in argv[:3]]
    print(json.dumps(asdict(measure_mpc(*sizes))))


if __name__ == "__main__":
    main(sys.argv[1:])
