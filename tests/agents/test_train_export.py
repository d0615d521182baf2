"""PPO training tracked in MLflow (SQLite), ONNX export, and parity between ONNX and the SB3 policy."""

from __future__ import annotations

import dataclasses
import datetime as dt
from pathlib import Path

import mlflow
import numpy as np
import onnxruntime as ort
import pytest

from smac_rl.agents.config import DaysConfig, TrainConfig
from smac_rl.agents.envs import training_vec_env
from smac_rl.agents.export import export_policy
from smac_rl.agents.policy import Sb3Policy
from smac_rl.agents.registry import find_champion, register_run
from smac_rl.agents.train import TrainResult, build_model, train
from smac_rl.core.artifacts import PolicyMetadata
from smac_rl.core.errors import SmacError
from smac_rl.core.observation import PRICE_OUTLOOK_FEATURES
from smac_rl.core.state import context_at
from smac_rl.policies import run_policy
from smac_rl_envs.site_env import SiteChargingEnv

ONE_SELECTION_DAY = DaysConfig(first_day=dt.date(2023, 3, 6), n_days=1)


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[TrainResult, Path]:
    root = tmp_path_factory.mktemp("train")
    config = TrainConfig(
        selection_days=ONE_SELECTION_DAY,
        total_timesteps=512,
        n_envs=2,
        n_steps=128,
        batch_size=128,
        n_epochs=1,
        n_connectors_max=8,
    )
    result = train(config, root / "run", tracking_uri=f"sqlite:///{root / 'mlflow.db'}")
    return result, root


def test_the_run_is_tracked_with_provenance_and_metrics(trained: tuple[TrainResult, Path]) -> None:
    result, root = trained
    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{root / 'mlflow.db'}")
    run = client.get_run(result.run_id)
    assert run.data.params["template"] == "turku_ultrafast_hub"
    assert run.data.params["total_timesteps"] == "512"
    for tag in ("git_sha", "data_bundle_sha256", "command", "version.torch"):
        assert run.data.tags[tag]
    assert run.data.tags["version.torch"] == "2.13.0+cpu"
    history = client.get_metric_history(result.run_id, "train.value_loss")
    assert len(history) >= 1
    artifacts = {a.path for a in client.list_artifacts(result.run_id)}
    assert {"model.zip", "train_config.yaml"} <= artifacts


def test_onnx_setpoints_match_the_sb3_policy(trained: tuple[TrainResult, Path]) -> None:
    result, root = trained
    metadata = export_policy(
        result.model, result.layout, root / "export", result.run_id, "turku_ultrafast_hub"
    )
    assert (metadata.step_min, metadata.horizon_steps, metadata.mlflow_run_id) == (15, 96, result.run_id)
    assert PolicyMetadata.model_validate_json((root / "export" / "metadata.json").read_text()) == metadata
    session = ort.InferenceSession(str(root / "export" / "policy.onnx"))
    env = SiteChargingEnv(template="turku_ultrafast_hub", n_connectors_max=8)
    env.reset(seed=5)
    arrays = env.arrays
    assert arrays is not None
    policy = Sb3Policy(result.model, result.layout)
    policy.begin_episode(arrays)
    energy = arrays.sessions.arrival_energy_kwh[None, :]
    rng = np.random.default_rng(1)
    for t in range(0, arrays.n_steps, 7):
        # Vary the state so that bounds and presence differ from step to step.
        energy = energy + rng.uniform(0, 5, energy.shape)
        energy = np.minimum(energy, arrays.sessions.capacity_kwh)
        storage = np.asarray(
            [rng.uniform(arrays.site.storage_min_energy_kwh, arrays.site.storage_max_energy_kwh)]
        )
        context = context_at(arrays, t, energy, storage)
        expected = policy.act(context)
        observation = result.layout.observe(arrays, context).astype(np.float32)
        onnx_kw = session.run(None, {"observation": observation})[0][0]
        n_connectors = arrays.site.n_connectors
        np.testing.assert_allclose(onnx_kw[:n_connectors], expected.ev_power_kw[0], rtol=1e-4, atol=1e-3)
        np.testing.assert_allclose(onnx_kw[-1], expected.storage_power_kw[0], rtol=1e-4, atol=1e-3)
        assert np.all(onnx_kw[n_connectors:-1] == 0.0)  # padded connectors ask nothing


def test_the_deadline_floor_is_exported_and_applied_by_the_served_model(
    trained: tuple[TrainResult, Path],
) -> None:
    # The layout with a floor goes into metadata.json; the service's model raises the graph's
    # setpoints to the same floor at the request's step, so it acts like the SB3 policy with that layout.
    from smac_rl_serve.model import OnnxPolicy

    result, root = trained
    layout = dataclasses.replace(result.layout, deadline_floor_margin_steps=1.0)
    metadata = export_policy(result.model, layout, root / "floored", result.run_id, "turku_ultrafast_hub")
    assert metadata.deadline_floor_margin_steps == 1.0
    served = OnnxPolicy(root / "floored")
    assert served.layout == layout
    env = SiteChargingEnv(template="turku_ultrafast_hub", n_connectors_max=8)
    env.reset(seed=5)
    arrays = env.arrays
    assert arrays is not None
    floored, plain = Sb3Policy(result.model, layout), Sb3Policy(result.model, result.layout)
    for policy in (floored, plain, served):
        policy.begin_episode(arrays)
    n_raised = 0
    for t in range(arrays.n_steps):
        # Every session at its arrival energy at every step: the late ones are short of time.
        context = context_at(arrays, t, arrays.sessions.arrival_energy_kwh[None, :], np.asarray([100.0]))
        expected, got = floored.act(context), served.act(context)
        np.testing.assert_allclose(got.ev_power_kw, expected.ev_power_kw, rtol=1e-4, atol=1e-3)
        n_raised += int(np.any(expected.ev_power_kw > plain.act(context).ev_power_kw + 1e-6))
    assert n_raised > 0  # the floor did raise setpoints on this day


def test_a_policy_observing_the_outlooks_is_exported_and_served_alike(tmp_path: Path) -> None:
    # An untrained equivariant PPO on the wider observation: the metadata names the rank features,
    # the service builds the same layout from it, and its setpoints are the SB3 policy's.
    from smac_rl_serve.model import OnnxPolicy

    config = TrainConfig(
        n_connectors_max=8, n_envs=1, is_price_rank_observed=True, is_load_outlook_observed=True
    )
    layout = config.layout()
    model = build_model(config, training_vec_env(config))
    metadata = export_policy(model, layout, tmp_path / "ranked", "run", "turku_ultrafast_hub")
    assert metadata.is_price_rank_observed
    assert metadata.is_load_outlook_observed
    assert [e.name for e in metadata.observation][16:23] == [f.name for f in PRICE_OUTLOOK_FEATURES]
    served = OnnxPolicy(tmp_path / "ranked")
    assert served.layout == layout
    env = SiteChargingEnv(
        template="turku_ultrafast_hub",
        n_connectors_max=8,
        is_price_rank_observed=True,
        is_load_outlook_observed=True,
    )
    env.reset(seed=3)
    arrays = env.arrays
    assert arrays is not None
    policy = Sb3Policy(model, layout)
    for p in (policy, served):
        p.begin_episode(arrays)
    energy = arrays.sessions.arrival_energy_kwh[None, :]
    for t in range(0, arrays.n_steps, 5):
        context = context_at(arrays, t, energy, np.asarray([150.0]))
        expected, got = policy.act(context), served.act(context)
        np.testing.assert_allclose(got.ev_power_kw, expected.ev_power_kw, rtol=1e-4, atol=1e-3)
        np.testing.assert_allclose(got.storage_power_kw, expected.storage_power_kw, rtol=1e-4, atol=1e-3)


def test_the_trained_policy_runs_through_the_scorer(trained: tuple[TrainResult, Path]) -> None:
    result, _ = trained
    env = SiteChargingEnv(template="turku_ultrafast_hub", n_connectors_max=8)
    env.reset(seed=9)
    assert env.arrays is not None
    _, kpis = run_policy(env.arrays, Sb3Policy(result.model, result.layout))
    assert np.isfinite(kpis.total_cost_eur)
    assert kpis.limit_violation_kwh == pytest.approx(0.0, abs=1e-9)


def test_training_ends_with_the_selection_report(trained: tuple[TrainResult, Path]) -> None:
    result, root = trained
    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{root / 'mlflow.db'}")
    run = client.get_run(result.run_id)
    assert {"selection.json", "report.md"} <= {a.path for a in client.list_artifacts(result.run_id)}
    assert run.data.metrics["selection_score"] == pytest.approx(result.selection_score)
    summary = result.selection.summary
    assert list(summary) == ["uncontrolled", "ppo", "optimal"]
    assert summary["optimal"]["savings_capture_median_frac"] == pytest.approx(1.0)
    assert summary["ppo"]["savings_capture_median_frac"] == pytest.approx(result.selection_score)
    report = (root / "run" / "report.md").read_text()
    assert "| optimal | 100.0% | 100.0% | 0 |" in report


def test_registering_promotes_only_a_better_score_on_the_same_days(trained: tuple[TrainResult, Path]) -> None:
    result, root = trained
    uri, days = f"sqlite:///{root / 'mlflow.db'}", ONE_SELECTION_DAY
    other_days = DaysConfig(first_day=dt.date(2023, 6, 5), n_days=2)
    steps = [
        register_run(uri, "p", result.run_id, 0.5, days),
        register_run(uri, "p", result.run_id, 0.4, days),
        register_run(uri, "p", result.run_id, 0.9, other_days),
        register_run(uri, "p", result.run_id, 0.6, days),
        register_run(uri, "p", result.run_id, 0.1, days, force=True),
    ]
    assert [(s.version, s.promoted) for s in steps] == [
        ("1", True),
        ("2", False),
        ("3", False),
        ("4", True),
        ("5", True),
    ]
    assert "do not compare" in steps[2].reason
    champion = find_champion(mlflow.MlflowClient(tracking_uri=uri), "p")
    assert champion is not None
    assert (champion.version, champion.score, champion.run_id) == ("5", 0.1, result.run_id)
    with pytest.raises(SmacError, match="run_id: got 'nope'"):
        register_run(uri, "p", "nope", 1.0, days)


def test_the_selection_callback_scores_during_training_and_keeps_the_best(tmp_path: Path) -> None:
    config = TrainConfig(
        selection_days=ONE_SELECTION_DAY,
        total_timesteps=256,
        n_envs=2,
        n_steps=64,
        batch_size=64,
        n_epochs=1,
        n_connectors_max=8,
        eval_every_steps=128,
    )
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    result = train(config, tmp_path / "run", tracking_uri=uri)
    history = mlflow.MlflowClient(tracking_uri=uri).get_metric_history(
        result.run_id, "selection.savings_capture_median_frac"
    )
    assert [m.step for m in history[:2]] == [128, 256]  # the callback at 128 and 256 steps
    assert len(history) == 3  # then the kept model's final score
    assert (tmp_path / "run" / "best_model.zip").is_file()
    # The final update comes after the last callback: the kept model is the better of it and the best seen.
    assert result.selection_score == pytest.approx(history[2].value)
    assert result.selection_score >= max(m.value for m in history[:2]) - 1e-12
