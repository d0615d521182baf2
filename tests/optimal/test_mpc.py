"""The rolling-horizon MPC: the oracle with perfect foresight, never better with noise, rolling by hand."""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any

import numpy as np
import pytest

from smac_rl.core.arrays import ScenarioArrays, compile_scenario
from smac_rl.core.forecasts import NoisyForecast, PerfectForecast
from smac_rl.core.scenario_io import load_builtin_scenario, parse_scenario
from smac_rl.core.state import context_at
from smac_rl.optimal.matrix_solve import MatrixSolver
from smac_rl.optimal.model import build_model
from smac_rl.optimal.mpc import MpcPolicy, window_scenario
from smac_rl.optimal.solve import solve_optimal
from smac_rl.policies import EpisodePolicy, run_policy
from tests.core.test_objectives import OPTIMA, _with
from tests.core.tiny import tiny_data, tiny_scenario


def _demo_hourly() -> ScenarioArrays:
    """demo_workplace on hourly steps (24), minimum current off: storage, PV, V2G with its binaries,
    negative export prices at noon (the physics-rule binaries); the oracle solves in about a second."""
    data = load_builtin_scenario("demo_workplace").model_dump(mode="json", exclude_none=True)
    del data["site"]["min_current_a"]
    data["time_grid"].update(step_min=60, n_steps=24)
    return compile_scenario(parse_scenario(data))


def _foresight_mpc(arrays: ScenarioArrays) -> MpcPolicy:
    """Perfect forecasts, arrivals known, a window over the whole episode: the oracle, step by step."""
    return MpcPolicy(
        PerfectForecast(), horizon_steps=arrays.n_steps, session_foresight=True, mip_gap_frac=0.0
    )


def test_foresight_mpc_is_the_oracle_on_tiny() -> None:
    arrays = compile_scenario(tiny_scenario())
    oracle = solve_optimal(arrays)
    policy = _foresight_mpc(arrays)
    assert isinstance(policy, EpisodePolicy)
    trace, kpis = run_policy(arrays, policy)
    # 94/3 EUR by hand (tests/optimal/test_optimal.py): S1 levels the imports at 55/3 kW.
    assert kpis.objective_eur == pytest.approx(94 / 3, rel=1e-6)
    assert kpis.objective_eur == pytest.approx(oracle.kpis.objective_eur, rel=1e-6)
    assert kpis.projection_adjustment_kwh == pytest.approx(0.0, abs=1e-6)
    np.testing.assert_allclose(trace.ev_power_kw[:3, 0], [10 / 3, 40 / 3, 40 / 3], atol=1e-6)
    assert policy.name == "mpc_perfect_foresight"
    assert [t.n_window_steps for t in policy.timings] == [4, 3, 2, 1]


def test_foresight_mpc_is_the_oracle_on_the_hourly_demo_day() -> None:
    arrays = _demo_hourly()
    oracle = solve_optimal(arrays, mip_gap_frac=0.0)
    _, kpis = run_policy(arrays, _foresight_mpc(arrays))
    assert kpis.objective_eur == pytest.approx(oracle.kpis.objective_eur, rel=1e-6)
    assert kpis.v2g_discharged_kwh + kpis.storage_throughput_kwh > 0  # the binaries were in play


def test_mpc_without_foresight_never_beats_the_oracle_on_the_hourly_demo_day() -> None:
    arrays = _demo_hourly()
    oracle = solve_optimal(arrays, mip_gap_frac=0.0)
    policy = MpcPolicy(PerfectForecast(), mip_gap_frac=0.0)  # 96 steps: to the day's end
    _, kpis = run_policy(arrays, policy)
    assert kpis.objective_eur >= oracle.kpis.objective_eur - 1e-6
    assert kpis.sessions_fully_served_frac == oracle.kpis.sessions_fully_served_frac
    assert kpis.projection_adjustment_kwh == pytest.approx(0.0, abs=1e-6)
    # Sessions arriving later are unknown: each window holds only the EVs plugged in.
    assert max(t.n_sessions for t in policy.timings) < arrays.sessions.n_sessions


@pytest.mark.parametrize(("objective", "series", "expected_eur"), OPTIMA)
def test_foresight_mpc_is_the_oracle_for_every_objective(
    objective: dict[str, Any], series: dict[str, Any], expected_eur: float
) -> None:
    # The peak objective needs the peak reached so far as the window's peak floor: without it each
    # window would pay for its whole peak again.
    arrays = compile_scenario(parse_scenario(_with(objective, **series)))
    _, kpis = run_policy(arrays, _foresight_mpc(arrays))
    assert kpis.objective_eur == pytest.approx(expected_eur, abs=1e-6)


@pytest.mark.parametrize("sigma_frac", [0.3, 1.0])
def test_noisy_mpc_never_beats_the_oracle_and_serves_everyone(sigma_frac: float) -> None:
    # Unconstrained: a 100 kW connection, so every session can be served whatever the forecast.
    data = tiny_data()
    data["site"]["grid"]["import_limit_kw"] = 100.0
    arrays = compile_scenario(parse_scenario(data))
    oracle = solve_optimal(arrays).kpis.objective_eur
    costs = []
    for seed in range(3):
        policy = MpcPolicy(NoisyForecast(sigma_frac, seed), horizon_steps=4)
        _, kpis = run_policy(arrays, policy)
        assert kpis.objective_eur >= oracle - 1e-6
        assert kpis.sessions_fully_served_frac == 1.0
        assert kpis.projection_adjustment_kwh == pytest.approx(0.0, abs=1e-6)
        costs.append(kpis.objective_eur)
    assert max(costs) > oracle + 1e-6  # the noise does reach the decisions


# Tiny (tests/core/tiny.py), perfect forecasts, a short window. A window's energy that can still be
# delivered after it at full power counts as served (the scorer's after-horizon rule), so a short
# window charges only what can no longer wait; the peak so far is free to reuse.
# * H = 1: step 0: S2 leaves, 10 kWh now (import 15 kW); S1 can still take 2 x 20 kWh later: 0.
#   Step 1: S1 needs 30 with 20 possible after: 10 kW (import 15, no new peak). Step 2: the last
#   20 kWh at 20 kW (import 25). Energy 5 (base) + 3 (S2) + 1 + 4 = 13; demand 25: 38 EUR.
# * H = 2: step 0 plans S1 10 kWh in step 1 (the cheaper step, under the 15 kW peak): 0 now.
#   Step 1 sees S1's whole stay (steps 1, 2, 30 kWh): b + c = 30 at 0.1 and 0.2 EUR/kWh plus
#   1 EUR/kW above 15 kW; levelling b = c = 15 (peak 20) beats b = 20 (peak 25): 5 + 3 + 1.5 + 3
#   = 12.5 EUR energy, 20 demand: 32.5 EUR.
# * H = 3: step 0's window covers S1's whole stay: the oracle's plan, 94/3 EUR.
ROLLING = [
    (1, [[0.0, 10.0], [10.0, 0.0], [20.0, 0.0], [0.0, 0.0]], 38.0),
    (2, [[0.0, 10.0], [15.0, 0.0], [15.0, 0.0], [0.0, 0.0]], 32.5),
    (3, [[10 / 3, 10.0], [40 / 3, 0.0], [40 / 3, 0.0], [0.0, 0.0]], 94 / 3),
]


@pytest.mark.parametrize(("horizon_steps", "ev_power_kw", "expected_eur"), ROLLING)
def test_short_windows_roll_by_hand(
    horizon_steps: int, ev_power_kw: list[list[float]], expected_eur: float
) -> None:
    arrays = compile_scenario(tiny_scenario())
    trace, kpis = run_policy(arrays, MpcPolicy(PerfectForecast(), horizon_steps=horizon_steps))
    np.testing.assert_allclose(trace.ev_power_kw, ev_power_kw, atol=1e-6)
    assert kpis.total_cost_eur == pytest.approx(expected_eur, abs=1e-6)
    assert kpis.unmet_energy_kwh == pytest.approx(0.0, abs=1e-6)


def test_window_scenario_starts_from_the_current_state() -> None:
    arrays = compile_scenario(load_builtin_scenario("demo_workplace"))
    t = 40  # 10:00 local: W01..W06, W08, W09, W11 plugged in; W07, W12, W13, W14 arrive later
    energy = arrays.sessions.arrival_energy_kwh + 1.5
    context = context_at(arrays, t, energy[None, :], np.asarray([42.0]), np.asarray([61.0]))
    forecast = PerfectForecast().forecast(arrays, t, 24)
    window = window_scenario(arrays, context, forecast)
    w = window.arrays
    present = sorted(int(s) for s in context.ev.session_index[0] if s >= 0)
    assert window.session_index.tolist() == present
    assert w.n_steps == 24
    assert (w.sessions.first_step == 0).all()
    np.testing.assert_array_equal(w.sessions.end_step, arrays.sessions.end_step[present] - t)
    np.testing.assert_allclose(w.sessions.arrival_energy_kwh, energy[present])
    assert w.site.storage_initial_energy_kwh == 42.0
    assert w.site.billing_peak_start_kw == 61.0 == window.peak_floor_kw
    np.testing.assert_array_equal(
        w.series.import_price_eur_per_kwh, arrays.series.import_price_eur_per_kwh[t : t + 24]
    )
    assert w.start_utc == dt.datetime(2024, 4, 17, 8, tzinfo=dt.UTC)  # grid start 22:00 UTC + 10 h
    ahead = window_scenario(arrays, context, forecast, session_foresight=True)
    arriving = [s for s in range(arrays.sessions.n_sessions) if t < arrays.sessions.first_step[s] < t + 24]
    assert ahead.session_index.tolist() == sorted(present + arriving)
    later = [i for i, s in enumerate(ahead.session_index.tolist()) if s in arriving]
    np.testing.assert_array_equal(
        ahead.arrays.sessions.first_step[later], arrays.sessions.first_step[arriving] - t
    )
    np.testing.assert_allclose(
        ahead.arrays.sessions.arrival_energy_kwh[later], arrays.sessions.arrival_energy_kwh[arriving]
    )


def test_noisy_window_takes_the_current_step_from_the_context() -> None:
    arrays = compile_scenario(load_builtin_scenario("demo_workplace"))
    context = context_at(arrays, 50, arrays.sessions.arrival_energy_kwh[None, :], np.asarray([50.0]))
    forecast = NoisyForecast(0.5, seed=1).forecast(arrays, 50, 8)
    base = forecast.base_load_kw.copy()
    base[0] += 7.0  # a provider that misjudges the present: the measured value wins
    window = window_scenario(arrays, context, dataclasses.replace(forecast, base_load_kw=base))
    assert window.arrays.series.base_load_kw[0] == arrays.series.base_load_kw[50]
    np.testing.assert_array_equal(window.arrays.series.base_load_kw[1:], base[1:])


def test_matrix_solver_agrees_with_the_appsi_oracle() -> None:
    arrays = _demo_hourly()
    oracle = solve_optimal(arrays, mip_gap_frac=0.0)
    solution = MatrixSolver(mip_gap_frac=0.0).solve(build_model(arrays), arrays)
    assert solution.objective_eur == pytest.approx(oracle.objective_eur, rel=1e-6)
    assert solution.status is oracle.status


def test_bad_arguments_are_named() -> None:
    arrays = compile_scenario(tiny_scenario())
    with pytest.raises(ValueError, match="horizon_steps: got 0; expected at least 1"):
        MpcPolicy(PerfectForecast(), horizon_steps=0)
    with pytest.raises(ValueError, match=r"mip_gap_frac: got 1\.5; expected 0 <= value < 1"):
        MpcPolicy(PerfectForecast(), mip_gap_frac=1.5)
    with pytest.raises(ValueError, match=r"time_limit_s: got 0\.0; expected > 0"):
        MatrixSolver(time_limit_s=0.0)
    context = context_at(arrays, 0, np.tile(arrays.sessions.arrival_energy_kwh, (2, 1)), np.zeros(2))
    policy = MpcPolicy(PerfectForecast())
    with pytest.raises(RuntimeError, match="begin_episode"):
        policy.act(context)
    policy.begin_episode(arrays)
    with pytest.raises(ValueError, match=r"context\.batch_size: got 2; expected 1"):
        policy.act(context)
    single = context_at(arrays, 1, arrays.sessions.arrival_energy_kwh[None, :], np.zeros(1))
    with pytest.raises(ValueError, match=r"forecast\.step_index: got 0; expected the context's step 1"):
        window_scenario(arrays, single, PerfectForecast().forecast(arrays, 0, 2))


def test_speed_bench_measures_full_windows() -> None:
    from smac_rl.bench.mpc_speed import measure_mpc

    speed = measure_mpc(n_sessions=4, horizon_steps=8, n_measured_steps=2)
    assert (speed.n_sessions, speed.horizon_steps, speed.n_measured_steps) == (4, 8, 2)
    assert 0.0 < speed.solve_s <= speed.step_s
    assert speed.appsi_handover_solve_s > 0.0


def test_speed_bench_compares_both_builders_on_the_same_windows() -> None:
    from smac_rl.bench.mpc_speed import measure_mpc

    speed = measure_mpc(n_sessions=4, horizon_steps=8, n_measured_steps=2)
    assert speed.n_steps_assembled == 2  # no minimum current: the assembler covers every window
    assert speed.objective_max_abs_diff_eur < 1e-6  # the same optimum from both builders and appsi
    assert 0.0 < speed.pyomo_solve_s <= speed.pyomo_step_s
    assert speed.pyomo_over_assembled_step_ratio == speed.pyomo_step_s / speed.step_s


def test_the_early_charging_tie_breaker_picks_the_earliest_of_equally_cheap_plans() -> None:
    # The tiny scenario with a flat 0.20 EUR/kWh and no demand charge: every plan that serves S1's
    # 30 kWh over steps 0..2 costs the same. With the tie-breaker S1 charges as early as the
    # headroom allows: 24 kW - S2's 10 kW = 14 kW at step 0, the 16 kWh left at step 1, nothing
    # after. The tie-breaker adds at most 1e-4 EUR/kWh, so the plan costs what the optimum does.
    data = tiny_data()
    data["series"]["import_price_eur_per_kwh"] = [0.2] * 4
    data["site"]["tariff"]["demand_charge_eur_per_kw"] = 0.0
    arrays = compile_scenario(parse_scenario(data))
    policy = MpcPolicy(PerfectForecast(), horizon_steps=4, early_charging_eur_per_kwh=1e-4)
    trace, kpis = run_policy(arrays, policy)
    np.testing.assert_allclose(trace.ev_power_kw[:, 0], [14.0, 16.0, 0.0, 0.0], atol=1e-6)
    np.testing.assert_allclose(trace.ev_power_kw[:, 1], [10.0, 0.0, 0.0, 0.0], atol=1e-6)
    assert kpis.objective_eur == pytest.approx(solve_optimal(arrays).kpis.objective_eur, rel=1e-9)
    # The day's optimum takes the same tie-breaker (imitation's one-solve demonstrations).
    broken = solve_optimal(arrays, early_charging_eur_per_kwh=1e-4)
    np.testing.assert_allclose(broken.ev_power_kw[:, 0], [14.0, 16.0, 0.0, 0.0], atol=1e-6)
    assert broken.kpis.objective_eur == pytest.approx(kpis.objective_eur, rel=1e-9)
    with pytest.raises(ValueError, match="expected builder 'assemble'"):
        solve_optimal(arrays, builder="pyomo", early_charging_eur_per_kwh=1e-4)
    with pytest.raises(
        ValueError, match=r"early_charging_eur_per_kwh: got -1\.0; expected a finite value >= 0"
    ):
        MpcPolicy(PerfectForecast(), early_charging_eur_per_kwh=-1.0)
    with pytest.raises(ValueError, match="expected builder 'assemble'"):
        MpcPolicy(PerfectForecast(), early_charging_eur_per_kwh=1e-4, builder="pyomo")
