"""The named objectives: one formula each, the same in the scorer, the env's rewards and the optimum.

Hand derivations use the tiny scenario (tests/core/tiny.py). Uncontrolled charging on it:
step 0 asks S1 20 kW + S2 10 kW; base 5 kW makes 35 kW > 29 kW, so charging is scaled by 0.8
(S1 16, S2 8); step 1 S1 takes its last 14 kWh; then only base load. Imports 29, 19, 5, 5 kW.
Energy 29*0.3 + 19*0.1 + 5*0.2 + 5*0.4 = 13.6 EUR; demand 29 EUR; S2 misses 2 kWh: 4 EUR.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from smac_rl.core.arrays import compile_scenario
from smac_rl.core.errors import ScenarioError
from smac_rl.core.scenario_io import parse_scenario
from smac_rl.policies import make_heuristic, run_policy
from smac_rl_envs.site_env import SiteChargingEnv
from tests.core.tiny import tiny_data


def _with(objective: dict[str, Any], **series: Any) -> dict[str, Any]:
    data = tiny_data()
    data["objective"] = objective
    data["series"] = {**data["series"], **series}
    return data


CASES = [
    # (objective block, extra series, uncontrolled objective_eur by hand)
    ({"name": "cost"}, {}, 46.6),  # 13.6 + 29 + 4
    ({"name": "peak"}, {}, 33.0),  # 1 EUR/kW * 29 kW + 4
    ({"name": "peak", "peak_penalty_eur_per_kw": 3.0}, {}, 91.0),  # 3 * 29 + 4
    ({"name": "load_balancing"}, {}, 4.0),  # no violation; 4 EUR unmet
    # |29-20| + |19-20| + |5-20| + |5-20| = 40 kWh * 0.5 + 4
    ({"name": "setpoint_tracking"}, {"grid_setpoint_kw": 20.0}, 24.0),
    ({"name": "v2g_profit"}, {}, 17.6),  # 13.6 + 4, no demand charge
]


@pytest.mark.parametrize(("objective", "series", "expected_eur"), CASES)
def test_uncontrolled_objective_by_hand(
    objective: dict[str, Any], series: dict[str, Any], expected_eur: float
) -> None:
    arrays = compile_scenario(parse_scenario(_with(objective, **series)))
    _, kpis = run_policy(arrays, make_heuristic("uncontrolled"))
    assert kpis.total_cost_eur == pytest.approx(46.6)
    assert kpis.objective_eur == pytest.approx(expected_eur)


@pytest.mark.parametrize(("objective", "series", "expected_eur"), CASES)
def test_env_rewards_sum_to_minus_the_objective(
    objective: dict[str, Any], series: dict[str, Any], expected_eur: float
) -> None:
    # Action +1 everywhere asks what uncontrolled asks (tests/envs).
    env = SiteChargingEnv(scenario=parse_scenario(_with(objective, **series)), n_connectors_max=4)
    env.reset(seed=0)
    action = np.zeros(env.layout.action_size)
    action[:4] = 1.0
    rewards, costs = [], []
    for _ in range(4):
        _, reward, _, _, info = env.step(action)
        rewards.append(float(reward))
        costs.append(info["cost_eur"])
    assert -sum(rewards) == pytest.approx(expected_eur)
    assert sum(costs) == pytest.approx(46.6)


def test_setpoint_tracking_needs_a_setpoint_series() -> None:
    with pytest.raises(
        ScenarioError, match=r"series.grid_setpoint_kw: got nothing; expected a setpoint series"
    ):
        parse_scenario(_with({"name": "setpoint_tracking"}))


def test_unknown_objective_is_named() -> None:
    with pytest.raises(ScenarioError, match=r"objective.name: got 'profit'"):
        parse_scenario(_with({"name": "profit"}))


OPTIMA = [
    # Peak: S2 must take 10 kWh in step 0 (import 15 + a), S1 30 kWh over steps 0..2 (a + b + c = 30);
    # levelling 15 + a = 5 + b = 5 + c gives b = c = 10 + a, a = 10/3: peak 55/3 kW. Shedding S2's
    # energy lowers the peak by 1/3 kW per kWh at 2 EUR/kWh: not worth it.
    ({"name": "peak"}, {}, 55.0 / 3.0),
    # Setpoint 20 kW: steps 0..2 would need a = 5, b = c = 15 (35 kWh) but S1 wants 30: 5 kWh short
    # of the setpoint over steps 0..2, plus |5 - 20| at step 3: 20 kWh * 0.5 EUR/kWh.
    ({"name": "setpoint_tracking"}, {"grid_setpoint_kw": 20.0}, 10.0),
    # Energy only: S2 10 kWh at 0.30; S1 20 kWh at 0.10 (connector limit) and 10 at 0.20; base load
    # 5 kW * (0.3 + 0.1 + 0.2 + 0.4): 3 + 2 + 2 + 5.
    ({"name": "v2g_profit"}, {}, 12.0),
    # Import limit 20 kW in step 0: 15 kW for EVs, S2 takes its 10; S1 fits later: nothing unmet.
    ({"name": "load_balancing"}, {"import_limit_kw": [20.0, 29.0, 29.0, 29.0]}, 0.0),
]


@pytest.mark.parametrize(("objective", "series", "expected_eur"), OPTIMA)
def test_tiny_optimum_of_each_objective_by_hand(
    objective: dict[str, Any], series: dict[str, Any], expected_eur: float
) -> None:
    from smac_rl.optimal.solve import solve_optimal

    arrays = compile_scenario(parse_scenario(_with(objective, **series)))
    result = solve_optimal(arrays)
    assert result.kpis.objective_eur == pytest.approx(expected_eur, abs=1e-5)
    assert result.objective_eur == pytest.approx(expected_eur, abs=1e-5)
    for name in ("uncontrolled", "least_laxity_first", "equal_share", "earliest_deadline_first"):
        _, kpis = run_policy(arrays, make_heuristic(name))
        assert result.kpis.objective_eur <= kpis.objective_eur + 1e-6, name


def test_load_balancing_uncontrolled_sheds_the_urgent_session() -> None:
    # Step 0: 35 kW asked with 15 kW of room: both scaled by 0.5 (S1 10, S2 5): S2 misses 5 kWh.
    data = _with({"name": "load_balancing"}, import_limit_kw=[20.0, 29.0, 29.0, 29.0])
    arrays = compile_scenario(parse_scenario(data))
    _, uncontrolled = run_policy(arrays, make_heuristic("uncontrolled"))
    _, llf = run_policy(arrays, make_heuristic("llf"))
    assert uncontrolled.objective_eur == pytest.approx(10.0)
    assert llf.objective_eur == pytest.approx(0.0)
