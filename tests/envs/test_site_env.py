"""The Gymnasium env: registration, check_env, determinism, and rewards that add up to the scorer's cost."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from smac_rl.core.arrays import compile_scenario
from smac_rl.core.scenario_io import parse_scenario
from smac_rl.core.scoring import score
from smac_rl.core.simulate import replay
from smac_rl.core.specs import ScenarioSpec
from smac_rl.policies import make_heuristic, run_policy
from smac_rl_envs.site_env import SiteChargingEnv
from smac_rl_envs.vector_env import SiteChargingVectorEnv
from tests.core.tiny import tiny_scenario

ENV_ID = "smac_rl_envs:smac_rl/SiteCharging-v0"


def test_make_without_prior_import_and_check_env() -> None:
    env = gym.make(ENV_ID, template="berlin_residential_garage")
    check_env(env.unwrapped)
    env.close()


def _rollout(
    env: SiteChargingEnv, seed: int, n_actions: int = 10_000
) -> tuple[list[np.ndarray], list[float]]:
    observation, _ = env.reset(seed=seed)
    rng = np.random.default_rng(seed)
    observations, rewards = [observation], []
    for _ in range(n_actions):
        observation, reward, terminated, truncated, _ = env.step(rng.uniform(-1, 1, env.layout.action_size))
        observations.append(observation)
        rewards.append(float(reward))
        if terminated or truncated:
            break
    return observations, rewards


def test_same_seed_same_episode_other_seed_other_episode() -> None:
    env = SiteChargingEnv(template="barcelona_public_hub")
    first_obs, first_rewards = _rollout(env, seed=3)
    again_obs, again_rewards = _rollout(env, seed=3)
    other_obs, _ = _rollout(env, seed=4)
    assert len(first_rewards) == 96
    np.testing.assert_array_equal(np.asarray(first_obs), np.asarray(again_obs))
    assert first_rewards == again_rewards
    assert not np.array_equal(first_obs[0], other_obs[0])


@pytest.mark.parametrize("template", ["turku_ultrafast_hub", "rome_v2g_fleet", "berlin_residential_garage"])
def test_rewards_sum_to_minus_the_scorer_total_cost(template: str) -> None:
    env = SiteChargingEnv(template=template)
    env.reset(seed=11)
    arrays = env.arrays
    assert arrays is not None
    rng = np.random.default_rng(0)
    total_reward, applied_ev, applied_storage = 0.0, [], []
    terminated = False
    while not terminated:
        _, reward, terminated, _, info = env.step(rng.uniform(-1, 1, env.layout.action_size))
        total_reward += float(reward)
        applied_ev.append(info["applied_ev_power_kw"])
        applied_storage.append(info["applied_storage_power_kw"])
    trace = replay(arrays, np.asarray(applied_ev), np.asarray(applied_storage))
    kpis = score(arrays, trace)
    # The env's applied setpoints are feasible: replaying them changes nothing.
    assert kpis.projection_adjustment_kwh == pytest.approx(0.0, abs=1e-6)
    assert total_reward == pytest.approx(-kpis.total_cost_eur, rel=1e-9, abs=1e-9)


def test_full_charging_action_matches_the_uncontrolled_heuristic() -> None:
    # Action +1 everywhere asks each connector's charging bound, exactly what Uncontrolled asks.
    env = SiteChargingEnv(scenario=tiny_scenario(), n_connectors_max=4)
    env.reset(seed=0)
    action = np.zeros(env.layout.action_size)
    action[:4] = 1.0
    total = 0.0
    for _ in range(4):
        _, reward, _, _, _ = env.step(action)
        total += float(reward)
    _, kpis = run_policy(compile_scenario(tiny_scenario()), make_heuristic("uncontrolled"))
    assert total == pytest.approx(-kpis.total_cost_eur)  # 46.6 EUR, derived by hand in tests/policies


def test_observation_layout_and_padding() -> None:
    env = SiteChargingEnv(scenario=tiny_scenario(), n_connectors_max=4)
    observation, _ = env.reset(seed=0)
    names = env.layout.names()
    assert len(names) == observation.shape[0] == env.layout.size
    values = dict(zip(names, observation, strict=True))
    assert values["import_price_eur_per_kwh"] == pytest.approx(0.30)
    assert values["headroom_kw"] == pytest.approx(24.0)
    assert values["c00.is_present"] == 1.0
    assert values["c00.energy_needed_kwh"] == pytest.approx(30.0)
    assert values["c00.upper_kw"] == pytest.approx(20.0)
    assert values["c01.laxity_h"] == pytest.approx(0.0)  # 1 h left, 10 kWh at 10 kW
    assert all(values[f"c{c:02d}.is_present"] == 0.0 for c in (2, 3))
    assert all(v == 0.0 for k, v in values.items() if k.startswith(("c02.", "c03.")))


def test_too_many_connectors_for_c_max_is_refused() -> None:
    with pytest.raises(
        ValueError, match="n_connectors_max: got 1; expected at least the site's 2 connectors"
    ):
        SiteChargingEnv(scenario=tiny_scenario(), n_connectors_max=1)


def test_objective_of_drawn_days_drives_the_rewards() -> None:
    from smac_rl.core.specs import ObjectiveSpec

    env = SiteChargingEnv(
        template="berlin_residential_garage", objective=ObjectiveSpec(name="peak"), pool_size=1
    )
    env.reset(seed=2)
    assert env.arrays is not None
    assert env.arrays.objective.name == "peak"
    total, applied_ev, applied_storage, terminated = 0.0, [], [], False
    while not terminated:
        _, reward, terminated, _, info = env.step(np.ones(env.layout.action_size))
        total += float(reward)
        applied_ev.append(info["applied_ev_power_kw"])
        applied_storage.append(info["applied_storage_power_kw"])
    kpis = score(env.arrays, replay(env.arrays, np.asarray(applied_ev), np.asarray(applied_storage)))
    assert total == pytest.approx(-kpis.objective_eur, rel=1e-9)
    assert kpis.objective_eur != pytest.approx(kpis.total_cost_eur)


def _overloaded_scenario() -> ScenarioSpec:
    """One 1-h step: 30 kW DC station with two EVSEs, 100 kWh storage, base load 5 kW, import limit 25 kW."""
    session = {
        "station_id": "DC30",
        "arrival_utc": "2024-05-01T00:00:00Z",
        "departure_utc": "2024-05-01T01:00:00Z",
        "battery_capacity_kwh": 100.0,
        "arrival_soc_frac": 0.2,
        "energy_wanted_kwh": 50.0,
        "ev_max_dc_kw": 20.0,
        "taper_start_soc_frac": 1.0,
    }
    return parse_scenario(
        {
            "name": "overloaded",
            "site": {
                "site_id": "overloaded-site",
                "chargers": [
                    {
                        "station_id": "DC30",
                        "kind": "dc",
                        "max_power_kw": 30.0,
                        "connectors": [{"evse_id": 1}, {"evse_id": 2}],
                    }
                ],
                "storage": {
                    "capacity_kwh": 100.0,
                    "max_charge_kw": 10.0,
                    "max_discharge_kw": 10.0,
                    "charge_efficiency_frac": 1.0,
                    "discharge_efficiency_frac": 1.0,
                },
                "grid": {"import_limit_kw": 25.0},
            },
            "time_grid": {"start_utc": "2024-05-01T00:00:00Z", "step_min": 60, "n_steps": 1},
            "sessions": [
                {**session, "session_id": "S1", "evse_id": 1},
                {**session, "session_id": "S2", "evse_id": 2},
            ],
            "series": {"import_price_eur_per_kwh": 0.20, "base_load_kw": 5.0},
        }
    )


def test_info_reports_exactly_the_energy_projected_away_single_and_batched() -> None:
    # Action +1 asks each box's charging bound: EVs min(EV 20, charger 30, 50 kWh wanted / 1 h) = 20 kW
    # each, storage min(10, (100 - 50) kWh / 1 h) = 10 kW: 50 kW asked in all.
    # Charger: 20 + 20 = 40 > 30 kW -> factor 30 / 40 -> 15 kW each.
    # Import: 5 + 15 + 15 + 10 - 25 = 20 kW over; 40 kW of charging -> factor 1 - 20 / 40 = 0.5 ->
    # EVs 7.5 kW each, storage 5 kW; import 5 + 20 = 25 kW, exactly the limit.
    # Projected away: 2 * (20 - 7.5) + (10 - 5) = 30 kW for 1 h = 30 kWh.
    scenario = _overloaded_scenario()
    env = SiteChargingEnv(scenario=scenario, n_connectors_max=2)
    env.reset(seed=0)
    _, _, terminated, _, info = env.step(np.ones(env.layout.action_size))
    assert terminated
    assert info["applied_ev_power_kw"] == pytest.approx([7.5, 7.5], rel=1e-9)
    assert info["applied_storage_power_kw"] == pytest.approx(5.0, rel=1e-9)
    assert info["grid_import_kw"] == pytest.approx(25.0, rel=1e-9)
    assert info["projected_away_kwh"] == pytest.approx(30.0, rel=1e-9)

    # Batched, row 0 as above; row 1 asks 0.25 of each EV bound (5 kW each) and idles the storage:
    # 10 <= 30 kW at the charger, 5 + 10 = 15 <= 25 kW at the grid -> nothing projected away.
    vector = SiteChargingVectorEnv(2, scenario=scenario, n_connectors_max=2)
    vector.reset(seed=0)
    _, _, _, _, infos = vector.step(np.asarray([[1.0, 1.0, 1.0], [0.25, 0.25, 0.0]]))
    assert infos["projected_away_kwh"] == pytest.approx([30.0, 0.0], rel=1e-9, abs=1e-9)
    assert infos["grid_import_kw"] == pytest.approx([25.0, 15.0], rel=1e-9)
