"""Training environments: the batched env (or the single env), normalised observations, scaled rewards."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.wrappers import TransformObservation, TransformReward

from smac_rl.agents.config import TrainConfig
from smac_rl.agents.vec_env import Sb3VectorEnv
from smac_rl.core.observation import OBSERVATION_BOUND
from smac_rl_envs.site_env import SiteChargingEnv
from smac_rl_envs.vector_env import SiteChargingVectorEnv


def normalised(env: SiteChargingEnv, reward_scale_eur: float) -> gym.Env[Any, Any]:
    """The env with observations divided by the layout's scales and rewards by ``reward_scale_eur``."""
    scales = env.layout.scales()
    bound = OBSERVATION_BOUND / scales
    space: gym.spaces.Box = gym.spaces.Box(low=-bound, high=bound, dtype=np.float64)
    observed: gym.Env[Any, Any] = TransformObservation(env, lambda obs: obs / scales, space)
    return TransformReward(observed, lambda reward: float(reward) / reward_scale_eur)


def training_vec_env(config: TrainConfig) -> Sb3VectorEnv:
    """The batched env of a training run, as an SB3 ``VecEnv`` (rows seeded ``seed + i``)."""
    vector = SiteChargingVectorEnv(
        config.n_envs,
        template=config.template,
        first_day=config.first_day,
        last_day=config.last_day,
        n_connectors_max=config.n_connectors_max,
        pool_size=config.pool_size,
        objective=config.objective,
        episode_order=config.episode_order,
        billing_period=config.billing_period,
    )
    venv = Sb3VectorEnv(vector, normalise=True, reward_scale_eur=config.reward_scale_eur)
    venv.seed(config.seed)
    return venv


def env_factory(config: TrainConfig) -> Callable[[], gym.Env[Any, Any]]:
    """A factory of normalised training envs on the config's template and days."""

    def make() -> gym.Env[Any, Any]:
        env = SiteChargingEnv(
            template=config.template,
            first_day=config.first_day,
            last_day=config.last_day,
            n_connectors_max=config.n_connectors_max,
            pool_size=config.pool_size,
            objective=config.objective,
            episode_order=config.episode_order,
            billing_period=config.billing_period,
        )
        return normalised(env, config.reward_scale_eur)

    return make
