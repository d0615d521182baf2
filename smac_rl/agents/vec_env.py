"""The SB3 face of the native batched env: a ``VecEnv`` over :class:`SiteChargingVectorEnv`.

Stable-Baselines3 expects same-step autoreset: when a row's episode ends, ``step_wait`` returns the
first observation of its next episode, ``dones[i]`` True, and the observation the episode ended
with in ``infos[i]["terminal_observation"]``; that is exactly the batched env's own mode, so the
adapter only converts the formats (and, optionally, scales observations and rewards the way the
single-env training wrappers of :mod:`smac_rl.agents.envs` do).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import gymnasium as gym
import numpy as np
from stable_baselines3.common.vec_env import VecEnv
from stable_baselines3.common.vec_env.base_vec_env import VecEnvIndices, VecEnvObs, VecEnvStepReturn

from smac_rl.core.arraytypes import FloatArray
from smac_rl.core.observation import OBSERVATION_BOUND
from smac_rl_envs.vector_env import INFO_KEYS, SiteChargingVectorEnv


class Sb3VectorEnv(VecEnv):
    """SB3 ``VecEnv`` over the batched env (module docstring)."""

    def __init__(
        self, env: SiteChargingVectorEnv, normalise: bool = True, reward_scale_eur: float = 1.0
    ) -> None:
        """Wrap a batched env.

        Args:
            env: The batched env.
            normalise: Divide observations by the layout's scales (as the exported graph does).
            reward_scale_eur: Rewards are divided by this [EUR].

        Raises:
            ValueError: For a reward scale that is not positive.
        """
        if not reward_scale_eur > 0.0:
            raise ValueError(f"reward_scale_eur: got {reward_scale_eur}; expected > 0")
        self.env = env
        self._scales = env.layout.scales() if normalise else np.ones(env.layout.size)
        bound = OBSERVATION_BOUND / self._scales
        observation_space = gym.spaces.Box(-bound, bound, dtype=np.float64)
        super().__init__(env.num_envs, observation_space, env.single_action_space)
        self._reward_scale_eur = reward_scale_eur
        self._actions: FloatArray | None = None

    def reset(self) -> VecEnvObs:
        """Reset every row (seeds from :meth:`seed`, rows ``seed + i``) and return observations."""
        seeds = self._seeds if any(s is not None for s in self._seeds) else None
        observation, _ = self.env.reset(seed=seeds)
        self._reset_seeds()
        self.reset_infos = [{} for _ in range(self.num_envs)]
        return observation / self._scales

    def step_async(self, actions: np.ndarray) -> None:
        """Store the actions of the next step."""
        self._actions = np.asarray(actions, dtype=np.float64).reshape(self.num_envs, -1)

    def step_wait(self) -> VecEnvStepReturn:
        """Step every row; finished rows are reset in the same step (module docstring)."""
        if self._actions is None:
            raise RuntimeError("Sb3VectorEnv: step_async() must come before step_wait()")
        observation, reward, terminated, truncated, infos = self.env.step(self._actions)
        self._actions = None
        dones = terminated | truncated
        per_row: list[dict[str, Any]] = [
            {key: float(infos[key][i]) for key in INFO_KEYS} for i in range(self.num_envs)
        ]
        for i in np.flatnonzero(dones):
            per_row[i]["terminal_observation"] = infos["final_obs"][i] / self._scales
            per_row[i]["TimeLimit.truncated"] = bool(truncated[i] and not terminated[i])
        return observation / self._scales, reward / self._reward_scale_eur, dones, per_row

    def close(self) -> None:
        """Nothing to release."""

    def get_attr(self, attr_name: str, indices: VecEnvIndices = None) -> list[Any]:
        """The batched env's attribute, once per selected row."""
        return [getattr(self.env, attr_name) for _ in self._indices(indices)]

    def set_attr(self, attr_name: str, value: Any, indices: VecEnvIndices = None) -> None:
        """Set an attribute of the batched env (shared by every row)."""
        setattr(self.env, attr_name, value)

    def env_method(
        self, method_name: str, *method_args: Any, indices: VecEnvIndices = None, **method_kwargs: Any
    ) -> list[Any]:
        """Call a method of the batched env once per selected row."""
        method = getattr(self.env, method_name)
        return [method(*method_args, **method_kwargs) for _ in self._indices(indices)]

    def env_is_wrapped(
        self, wrapper_class: type[gym.Wrapper[Any, Any, Any, Any]], indices: VecEnvIndices = None
    ) -> list[bool]:
        """Rows are never wrapped by gymnasium wrappers."""
        return [False for _ in self._indices(indices)]

    def _indices(self, indices: VecEnvIndices) -> Sequence[int]:
        if indices is None:
            return range(self.num_envs)
        if isinstance(indices, int):
            return [indices]
        return list(indices) if isinstance(indices, Iterable) else [int(indices)]
