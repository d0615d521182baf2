"""SAC, TD3 and TQC train on the batched env and export to ONNX with parity against SB3's own prediction."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pydantic
import pytest

from smac_rl.agents.config import DaysConfig, TrainConfig
from smac_rl.agents.export import export_policy
from smac_rl.agents.policy import Sb3Policy
from smac_rl.agents.train import train
from smac_rl_envs.site_env import SiteChargingEnv

C_MAX = 6

ONE_SELECTION_DAY = DaysConfig(first_day=dt.date(2023, 3, 6), n_days=1)


@pytest.mark.parametrize("algorithm", ["sac", "td3", "tqc"])
def test_off_policy_training_and_onnx_parity(algorithm: str, tmp_path: Path) -> None:
    config = TrainConfig(
        selection_days=ONE_SELECTION_DAY,
        template="rome_v2g_fleet",
        algorithm=algorithm,  # type: ignore[arg-type]
        total_timesteps=128,
        n_envs=2,
        batch_size=32,
        buffer_size=1_000,
        learning_starts=32,
        n_connectors_max=C_MAX,
        net_arch=[32, 32],
        pool_size=2,
    )
    result = train(config, tmp_path / "run", tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    assert type(result.model).__name__.lower() == algorithm
    export_policy(result.model, result.layout, tmp_path / "export", result.run_id, "rome_v2g_fleet")
    session = ort.InferenceSession(str(tmp_path / "export" / "policy.onnx"))
    env = SiteChargingEnv(template="rome_v2g_fleet", n_connectors_max=C_MAX, pool_size=2)
    env.reset(seed=1)
    assert env.arrays is not None
    policy = Sb3Policy(result.model, result.layout)
    policy.begin_episode(env.arrays)
    action = np.zeros(env.layout.action_size)
    for _ in range(40):
        _, _, done, _, _ = env.step(action)
        assert not done
    context = env._batch.context() if env._batch is not None else None
    assert context is not None
    expected = policy.act(context)
    observation = result.layout.observe(env.arrays, context).astype(np.float32)
    onnx_kw = session.run(None, {"observation": observation})[0][0]
    n_connectors = env.arrays.site.n_connectors
    np.testing.assert_allclose(onnx_kw[:n_connectors], expected.ev_power_kw[0], rtol=1e-4, atol=1e-3)
    np.testing.assert_allclose(onnx_kw[-1], expected.storage_power_kw[0], rtol=1e-4, atol=1e-3)


def test_equivariant_network_with_an_off_policy_algorithm_is_refused() -> None:
    with pytest.raises(pydantic.ValidationError, match="equivariant network is an actor-critic for ppo"):
        TrainConfig(algorithm="sac", policy_network="equivariant")


def test_training_on_a_monthly_billing_period(tmp_path: Path) -> None:
    config = TrainConfig(
        selection_days=ONE_SELECTION_DAY,
        template="budapest_workplace",
        total_timesteps=192,
        n_envs=2,
        n_steps=96,
        batch_size=96,
        n_epochs=1,
        n_connectors_max=C_MAX * 2,
        net_arch=[16, 16],
        pool_size=None,
        episode_order="consecutive",
        billing_period="month",
    )
    result = train(config, tmp_path / "run", tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    assert result.model.num_timesteps == 192  # one whole day per row, reset into the next day
