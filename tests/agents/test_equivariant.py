"""The any-site-size policy: permutation equivariance, padding that changes nothing, training, ONNX parity."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch
from stable_baselines3 import PPO
from stable_baselines3.common.base_class import BaseAlgorithm

from smac_rl.agents.config import DaysConfig, TrainConfig
from smac_rl.agents.envs import training_vec_env
from smac_rl.agents.export import export_policy
from smac_rl.agents.networks import EquivariantActorCriticPolicy
from smac_rl.agents.train import TrainResult, build_model, train
from smac_rl.core.observation import CONNECTOR_FEATURES, SITE_FEATURES, ObservationLayout
from smac_rl_envs.site_env import SiteChargingEnv

C_MAX = 6
N_SITE, N_BLOCK = len(SITE_FEATURES), len(CONNECTOR_FEATURES)
SITE_NAMES = [f.name for f in SITE_FEATURES]
CONNECTOR_NAMES = [f.name for f in CONNECTOR_FEATURES]

ONE_SELECTION_DAY = DaysConfig(first_day=dt.date(2023, 3, 6), n_days=1)


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[TrainResult, Path]:
    root = tmp_path_factory.mktemp("equivariant")
    config = TrainConfig(
        selection_days=ONE_SELECTION_DAY,
        template="rome_v2g_fleet",
        total_timesteps=256,
        n_envs=2,
        n_steps=64,
        batch_size=64,
        n_epochs=1,
        n_connectors_max=C_MAX,
        policy_network="equivariant",
        hidden_size=16,
        pool_size=2,
    )
    return train(config, root / "run", tracking_uri=f"sqlite:///{root / 'mlflow.db'}"), root


def _observation(rng: np.random.Generator, n_present: int) -> np.ndarray:
    observation = rng.normal(size=N_SITE + C_MAX * N_BLOCK).astype(np.float32)
    blocks = observation[N_SITE:].reshape(C_MAX, N_BLOCK)
    blocks[:, 0] = 0.0
    blocks[:n_present, 0] = 1.0
    blocks[n_present:] = 0.0  # absent connectors are all zeros in the layout
    return observation


def _actions(policy: EquivariantActorCriticPolicy, observation: np.ndarray) -> tuple[np.ndarray, float]:
    with torch.no_grad():
        tensor = torch.as_tensor(observation[None, :])
        latent_pi, latent_vf = policy.mlp_extractor(tensor)
        return policy.action_net(latent_pi).numpy()[0], float(policy.value_net(latent_vf)[0, 0])


def _setpoints_kw(observation: np.ndarray, action: np.ndarray) -> np.ndarray:
    """What the exported graph should answer: each action times its step's box, from the raw observation."""
    blocks = observation[N_SITE:].reshape(C_MAX, N_BLOCK)
    upper = np.append(
        blocks[:, CONNECTOR_NAMES.index("upper_kw")], observation[SITE_NAMES.index("storage_upper_kw")]
    )
    lower = np.append(
        blocks[:, CONNECTOR_NAMES.index("lower_kw")], observation[SITE_NAMES.index("storage_lower_kw")]
    )
    setpoints_kw: np.ndarray = np.where(action >= 0, action * upper, -action * lower)
    return setpoints_kw


def test_permuting_connectors_permutes_actions_and_keeps_storage_and_value(
    trained: tuple[TrainResult, Path],
) -> None:
    policy = trained[0].model.policy
    assert isinstance(policy, EquivariantActorCriticPolicy)
    rng = np.random.default_rng(0)
    observation = _observation(rng, n_present=4)
    order = np.asarray([2, 0, 3, 1, 5, 4])
    permuted = observation.copy()
    permuted[N_SITE:] = observation[N_SITE:].reshape(C_MAX, N_BLOCK)[order].ravel()
    actions, value = _actions(policy, observation)
    actions_p, value_p = _actions(policy, permuted)
    np.testing.assert_allclose(actions_p[:C_MAX], actions[:C_MAX][order], atol=1e-6)
    assert actions_p[-1] == pytest.approx(actions[-1], abs=1e-6)
    assert value_p == pytest.approx(value, abs=1e-6)


def test_absent_connectors_do_not_change_the_others(trained: tuple[TrainResult, Path]) -> None:
    policy = trained[0].model.policy
    assert isinstance(policy, EquivariantActorCriticPolicy)
    rng = np.random.default_rng(1)
    observation = _observation(rng, n_present=2)
    actions, _ = _actions(policy, observation)
    # A third connector block with the mask at 0 and junk features is ignored by the pooling.
    with_junk = observation.copy()
    block = with_junk[N_SITE + 2 * N_BLOCK : N_SITE + 3 * N_BLOCK]
    block[1:] = rng.normal(size=N_BLOCK - 1)
    actions_junk, _ = _actions(policy, with_junk)
    np.testing.assert_allclose(actions_junk[:2], actions[:2], atol=1e-6)
    assert actions_junk[-1] == pytest.approx(actions[-1], abs=1e-6)


def test_onnx_export_matches_the_torch_policy(trained: tuple[TrainResult, Path]) -> None:
    result, root = trained
    export_policy(result.model, result.layout, root / "export", result.run_id, "rome_v2g_fleet")
    session = ort.InferenceSession(str(root / "export" / "policy.onnx"))
    env = SiteChargingEnv(template="rome_v2g_fleet", n_connectors_max=C_MAX)
    observation, _ = env.reset(seed=3)
    layout = ObservationLayout(C_MAX)
    policy = result.model.policy
    assert isinstance(policy, EquivariantActorCriticPolicy)
    for _ in range(5):
        normalised = (observation / layout.scales()).astype(np.float32)
        action = np.clip(_actions(policy, normalised)[0], -1.0, 1.0)
        expected = _setpoints_kw(observation, action)
        onnx_kw = session.run(None, {"observation": observation[None, :].astype(np.float32)})[0][0]
        np.testing.assert_allclose(onnx_kw, expected, rtol=1e-4, atol=1e-3)
        observation, _, _, _, _ = env.step(np.clip(action, -1, 1))


def test_layout_mismatch_is_named() -> None:
    from gymnasium import spaces

    with pytest.raises(ValueError, match=r"spaces: got observation \(10,\)"):
        EquivariantActorCriticPolicy(
            spaces.Box(-1, 1, (10,)), spaces.Box(-1, 1, (C_MAX + 1,)), lambda _: 1e-3, n_connectors_max=C_MAX
        )


def _policy(pooling: str) -> EquivariantActorCriticPolicy:
    from gymnasium import spaces

    torch.manual_seed(0)
    size = ObservationLayout(C_MAX).size
    return EquivariantActorCriticPolicy(
        spaces.Box(-1, 1, (size,)),
        spaces.Box(-1, 1, (C_MAX + 1,)),
        lambda _: 1e-3,
        n_connectors_max=C_MAX,
        hidden_size=16,
        pooling=pooling,  # type: ignore[arg-type]
    )


def _fleet(n_present: int) -> np.ndarray:
    """``n_present`` identical cars: the same connector block repeated."""
    rng = np.random.default_rng(5)
    observation = np.zeros(N_SITE + C_MAX * N_BLOCK, dtype=np.float32)
    observation[:N_SITE] = rng.normal(size=N_SITE)
    block = rng.normal(size=N_BLOCK).astype(np.float32)
    block[0] = 1.0
    for c in range(n_present):
        observation[N_SITE + c * N_BLOCK : N_SITE + (c + 1) * N_BLOCK] = block
    return observation


def test_sum_pooling_tells_two_cars_from_four_alike_and_stays_equivariant() -> None:
    # The mean of identical latents is one latent: two cars and four cars alike give the same
    # storage action and value. With the sum beside it the site context sees the fleet's size.
    mean_only, mean_sum = _policy("mean"), _policy("mean_sum")
    two, four = _fleet(2), _fleet(4)
    for policy, alike in ((mean_only, True), (mean_sum, False)):
        (actions_2, value_2), (actions_4, value_4) = _actions(policy, two), _actions(policy, four)
        assert bool(abs(actions_2[-1] - actions_4[-1]) < 1e-6) is alike  # the storage action
        assert bool(abs(value_2 - value_4) < 1e-6) is alike
    observation = _observation(np.random.default_rng(2), n_present=4)
    order = np.asarray([3, 1, 0, 2, 4, 5])
    permuted = observation.copy()
    permuted[N_SITE:] = observation[N_SITE:].reshape(C_MAX, N_BLOCK)[order].ravel()
    (actions, value), (actions_p, value_p) = _actions(mean_sum, observation), _actions(mean_sum, permuted)
    np.testing.assert_allclose(actions_p[:C_MAX], actions[:C_MAX][order], atol=1e-6)
    assert value_p == pytest.approx(value, abs=1e-6)
    with pytest.raises(ValueError, match="pooling: got 'max'"):
        _policy("max")


def saved_untrained_model(
    config: TrainConfig, path: Path, adjust: Callable[[BaseAlgorithm], None] | None = None
) -> PPO:
    """A config's untrained PPO model with actions of order 1, adjusted, saved to ``path`` and loaded back.

    SB3 initialises the action layer near zero; its weights are multiplied by 100 so that exported
    graphs answer setpoints well away from 0.
    """
    envs = training_vec_env(config)
    model = build_model(config, envs)
    envs.close()
    with torch.no_grad():
        for name, parameter in model.policy.named_parameters():
            if name.startswith("action_net.") and name.endswith(".weight"):
                parameter.mul_(100.0)
        if adjust is not None:
            adjust(model)
    model.save(path)
    return PPO.load(path, device="cpu")


def test_a_sum_pooled_policy_exports_to_onnx_with_parity(tmp_path: Path) -> None:
    config = TrainConfig(
        template="rome_v2g_fleet",
        n_connectors_max=C_MAX,
        policy_network="equivariant",
        hidden_size=16,
        pooling="mean_sum",
        n_envs=1,
        pool_size=1,
    )
    loaded = saved_untrained_model(config, tmp_path / "model.zip")
    assert isinstance(loaded.policy, EquivariantActorCriticPolicy)
    assert loaded.policy.pooling == "mean_sum"
    layout = config.layout()
    export_policy(loaded, layout, tmp_path / "export", "run", "rome_v2g_fleet")
    session = ort.InferenceSession(str(tmp_path / "export" / "policy.onnx"))
    env = SiteChargingEnv(template="rome_v2g_fleet", n_connectors_max=C_MAX)
    observation, _ = env.reset(seed=4)
    normalised = (observation / layout.scales()).astype(np.float32)
    action = np.clip(_actions(loaded.policy, normalised)[0], -1.0, 1.0)
    expected = _setpoints_kw(observation, action)
    assert np.abs(expected).max() > 1.0
    onnx_kw = session.run(None, {"observation": observation[None, :].astype(np.float32)})[0][0]
    np.testing.assert_allclose(onnx_kw, expected, rtol=1e-4, atol=1e-3)
