"""The native batched env: same trajectories as single envs, same-step autoreset, registration, SB3."""

from __future__ import annotations

import datetime as dt

import gymnasium as gym
import numpy as np
import pytest

from smac_rl.core.arrays import compile_scenario
from smac_rl.core.batch import EpisodeBatch
from smac_rl.core.scenario_io import parse_scenario
from smac_rl.core.state import Setpoints
from smac_rl_envs.site_env import SiteChargingEnv
from smac_rl_envs.vector_env import SiteChargingVectorEnv
from tests.core.tiny import tiny_data, tiny_scenario

ENV_ID = "smac_rl_envs:smac_rl/SiteCharging-v0"
MIXED = ["turku_ultrafast_hub", "rome_v2g_fleet", "berlin_residential_garage"]
C_MAX = 20


def _single_trajectories(
    templates: list[str], seed: int, actions: np.ndarray, **kwargs: object
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Row i: a single env of templates[i] reset with seed + i, stepped with actions[:, i], reset at ends."""
    n_steps, n_rows = actions.shape[0], actions.shape[1]
    size = SiteChargingEnv(n_connectors_max=C_MAX, **kwargs).layout.size  # type: ignore[arg-type]
    observations = np.zeros((n_steps + 1, n_rows, size))
    rewards, terminated = np.zeros((n_steps, n_rows)), np.zeros((n_steps, n_rows), dtype=bool)
    for i in range(n_rows):
        env = SiteChargingEnv(template=templates[i], n_connectors_max=C_MAX, **kwargs)  # type: ignore[arg-type]
        observations[0, i], _ = env.reset(seed=seed + i)
        for t in range(n_steps):
            observation, reward, done, _, _ = env.step(actions[t, i])
            rewards[t, i], terminated[t, i] = reward, done
            observations[t + 1, i] = env.reset()[0] if done else observation
    return observations, rewards, terminated


def _batched_trajectories(
    env: SiteChargingVectorEnv, seed: int, actions: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[np.ndarray]]:
    observations = [env.reset(seed=seed)[0]]
    rewards, terminated, finals = [], [], []
    for t in range(actions.shape[0]):
        observation, reward, done, truncated, infos = env.step(actions[t])
        assert not truncated.any()
        observations.append(observation)
        rewards.append(reward)
        terminated.append(done)
        if done.any():
            assert np.array_equal(infos["_final_obs"], done)
            finals.append(infos["final_obs"][done])
    return np.asarray(observations), np.asarray(rewards), np.asarray(terminated), finals


def test_batched_env_equals_single_envs_over_two_episodes_of_mixed_templates() -> None:
    n_rows, seed = len(MIXED), 5
    layout_size = SiteChargingVectorEnv(1, n_connectors_max=C_MAX).layout.action_size
    actions = np.random.default_rng(0).uniform(-1.0, 1.0, (2 * 96 + 3, n_rows, layout_size))
    vector = SiteChargingVectorEnv(n_rows, templates=MIXED, n_connectors_max=C_MAX)
    batch_obs, batch_rewards, batch_done, finals = _batched_trajectories(vector, seed, actions)
    single_obs, single_rewards, single_done = _single_trajectories(MIXED, seed, actions)
    # Generated days are local days: 96 steps of 15 minutes unless a clock change falls on them.
    assert batch_done.sum() >= n_rows * 2
    np.testing.assert_array_equal(batch_done, single_done)
    np.testing.assert_array_equal(batch_rewards, single_rewards)
    np.testing.assert_array_equal(batch_obs, single_obs)
    # The single env's terminal observation is zeros; the batched env reports the same in final_obs.
    assert all(np.array_equal(f, np.zeros_like(f)) for f in finals)


def test_caltech_replay_and_pool_rows_match_single_envs() -> None:
    kwargs = {"sessions": "caltech_replay", "caltech_period": "2021-05-01 2021-08-31", "pool_size": 3}
    actions = np.random.default_rng(1).uniform(-1.0, 1.0, (100, 2, C_MAX + 1))
    vector = SiteChargingVectorEnv(2, template="budapest_workplace", n_connectors_max=C_MAX, **kwargs)  # type: ignore[arg-type]
    batch_obs, batch_rewards, batch_done, _ = _batched_trajectories(vector, 7, actions)
    single_obs, single_rewards, single_done = _single_trajectories(
        ["budapest_workplace"] * 2, 7, actions, **kwargs
    )
    np.testing.assert_array_equal(batch_done, single_done)
    np.testing.assert_array_equal(batch_rewards, single_rewards)
    np.testing.assert_array_equal(batch_obs, single_obs)
    assert "caltech_replay" in vector.batch.names[0]


def _batched_equals_single(
    templates: list[str], seed: int, actions: np.ndarray, **kwargs: object
) -> tuple[SiteChargingVectorEnv, np.ndarray, np.ndarray]:
    """Assert the batched env and the single envs agree with these env arguments; the batch's obs, rewards."""
    vector = SiteChargingVectorEnv(len(templates), templates=templates, n_connectors_max=C_MAX, **kwargs)  # type: ignore[arg-type]
    batch_obs, batch_rewards, batch_done, _ = _batched_trajectories(vector, seed, actions)
    single_obs, single_rewards, single_done = _single_trajectories(templates, seed, actions, **kwargs)
    np.testing.assert_array_equal(batch_done, single_done)
    np.testing.assert_array_equal(batch_rewards, single_rewards)
    np.testing.assert_array_equal(batch_obs, single_obs)
    return vector, batch_obs, batch_rewards


def test_the_deadline_floor_acts_alike_in_the_batched_and_the_single_env() -> None:
    # Actions in [-1, 0] ask no charging: only the floor charges, the same in both envs, and the
    # sessions get energy they would not get without it.
    templates = ["turku_ultrafast_hub", "budapest_workplace"]
    actions = np.random.default_rng(2).uniform(-1.0, 0.0, (100, 2, C_MAX + 1))
    _, _, rewards = _batched_equals_single(templates, 11, actions, deadline_floor_margin_steps=1.0)
    _, plain_rewards, _ = _single_trajectories(templates, 11, actions)
    assert not np.array_equal(plain_rewards, rewards)


def test_the_outlooks_are_observed_alike_in_the_batched_and_the_single_env() -> None:
    templates = ["rome_v2g_fleet", "turku_ultrafast_hub"]
    actions = np.random.default_rng(3).uniform(-1.0, 1.0, (100, 2, C_MAX + 1))
    vector, batch_obs, rewards = _batched_equals_single(
        templates, 13, actions, is_price_rank_observed=True, is_load_outlook_observed=True
    )
    n_site = vector.layout.n_site_features
    assert batch_obs.shape[-1] == vector.layout.size == n_site + C_MAX * 8
    assert n_site == 16 + 7 + 3
    ranks = batch_obs[..., 16:21]
    assert np.all((ranks >= 0.0) & (ranks < 1.0))
    assert np.any(ranks > 0.0)
    # The same actions without the outlooks: the same rewards (observing changes nothing else).
    _, plain_rewards, _ = _single_trajectories(templates, 13, actions)
    np.testing.assert_array_equal(plain_rewards, rewards)


def test_make_vec_uses_the_native_vector_entry_point() -> None:
    env = gym.make_vec(
        ENV_ID, num_envs=3, vectorization_mode="vector_entry_point", template="berlin_residential_garage"
    )
    assert isinstance(env.unwrapped, SiteChargingVectorEnv)
    observation, _ = env.reset(seed=0)
    assert observation.shape == (3, env.unwrapped.layout.size)
    assert env.metadata["autoreset_mode"] == gym.vector.AutoresetMode.SAME_STEP
    env.close()


def test_bad_arguments_are_named() -> None:
    with pytest.raises(ValueError, match="num_envs: got 0"):
        SiteChargingVectorEnv(0)
    with pytest.raises(ValueError, match="templates: got an empty list"):
        SiteChargingVectorEnv(2, templates=[])
    with pytest.raises(ValueError, match="pool_size: got 0"):
        SiteChargingVectorEnv(2, pool_size=0)
    with pytest.raises(ValueError, match="last_day: got 2023-01-01"):
        SiteChargingVectorEnv(2, first_day=dt.date(2023, 2, 1), last_day=dt.date(2023, 1, 1))
    env = SiteChargingVectorEnv(2)
    with pytest.raises(RuntimeError, match="reset"):
        env.step(np.zeros((2, env.layout.action_size)))


def test_a_batch_refuses_a_site_too_large_or_another_step_length_and_stays_usable() -> None:
    arrays = compile_scenario(tiny_scenario())
    batch = EpisodeBatch(1, arrays.site.n_connectors, arrays.step_h)
    batch.load(0, arrays)
    half_hourly = tiny_data()
    half_hourly["time_grid"] = {**half_hourly["time_grid"], "step_min": 30}
    with pytest.raises(ValueError, match=r"step_h: got 0.5 h"):
        batch.load(0, compile_scenario(parse_scenario(half_hourly)))
    small = EpisodeBatch(1, 1, arrays.step_h)
    with pytest.raises(ValueError, match="connectors: got 2"):
        small.load(0, arrays)
    before = batch.context().ev.energy_kwh.copy()
    batch.step(Setpoints.zeros(1, arrays.site.n_connectors))
    assert batch.context().ev.energy_kwh.shape == before.shape


def test_sb3_adapter_autoresets_in_the_same_step_with_terminal_observation() -> None:
    from stable_baselines3 import PPO

    from smac_rl.agents.vec_env import Sb3VectorEnv

    scenario = tiny_scenario()
    n_steps = compile_scenario(scenario).n_steps
    vector = SiteChargingVectorEnv(2, scenario=scenario, n_connectors_max=4)
    venv = Sb3VectorEnv(vector, reward_scale_eur=2.0)
    venv.seed(3)
    first = venv.reset()
    for _t in range(n_steps):
        observation, reward, dones, infos = venv.step(np.zeros((2, vector.layout.action_size)))
        assert reward.shape == (2,)
        assert all("cost_eur" in info for info in infos)
    assert dones.all()
    assert all("terminal_observation" in info for info in infos)
    # Fixed scenario: the observation after the autoreset is the first one again.
    np.testing.assert_array_equal(observation, first)
    model = PPO("MlpPolicy", venv, n_steps=16, batch_size=16, n_epochs=1, seed=0, device="cpu")
    model.learn(32)
