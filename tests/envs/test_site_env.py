"""The Gymnasium env: registration, check_env, determinism, and rewards that add up to the scorer's cost."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from smac_rl.core.arrays import compile_scenario
from smac_rl.core.scoring import score
from smac_rl.core.simulate import replay
from smac_rl.policies import make_heuristic, run_policy
from smac_rl_envs.site_env import SiteChargingEnv
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
