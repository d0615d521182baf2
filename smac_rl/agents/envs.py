"""Training environments: the batched env as an SB3 ``VecEnv``, normalised observations, scaled rewards."""

from __future__ import annotations

from typing import Any

from smac_rl.agents.config import TrainConfig
from smac_rl.agents.vec_env import Sb3VectorEnv
from smac_rl_envs.vector_env import SiteChargingVectorEnv


def env_options(config: TrainConfig) -> dict[str, Any]:
    """The env arguments a training config sets (the same for the single and the batched env)."""
    return {
        "template": config.template,
        "first_day": config.first_day,
        "last_day": config.last_day,
        "n_connectors_max": config.n_connectors_max,
        **config.layout().options(),
        "pool_size": config.pool_size,
        "objective": config.objective,
        "episode_order": config.episode_order,
        "billing_period": config.billing_period,
    }


def training_vec_env(config: TrainConfig) -> Sb3VectorEnv:
    """The batched env of a training run, as an SB3 ``VecEnv`` (rows seeded ``seed + i``)."""
    vector = SiteChargingVectorEnv(config.n_envs, **env_options(config))
    venv = Sb3VectorEnv(vector, normalise=True, reward_scale_eur=config.reward_scale_eur)
    venv.seed(config.seed)
    return venv
