"""Imitation of the optimum: exact inverse actions, behaviour cloning, and its place in training."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import mlflow
import numpy as np
import pydantic
import pytest

from smac_rl.agents.config import DaysConfig, TrainConfig
from smac_rl.agents.imitation import (
    Demonstrations,
    clone_behaviour,
    day_demonstration,
    learner_demonstration,
    learner_demonstrations,
)
from smac_rl.agents.train import build_model, train
from smac_rl.agents.vec_env import Sb3VectorEnv
from smac_rl.core.arrays import ScenarioArrays, compile_scenario
from smac_rl.core.forecasts import PerfectForecast
from smac_rl.core.observation import ObservationLayout
from smac_rl.core.state import Setpoints, StepContext
from smac_rl.data.generator import generate_scenario
from smac_rl.data.template_spec import load_template
from smac_rl.optimal.mpc import MpcPolicy
from smac_rl.optimal.solve import OptimalResult, solve_optimal
from smac_rl.policies import run_policy
from tests.core.tiny import tiny_scenario

C_MAX = 8


@pytest.fixture(scope="module")
def v2g_day() -> ScenarioArrays:
    spec, _ = generate_scenario(load_template("rome_v2g_fleet"), dt.date(2022, 3, 7), 1, seed=3)
    return compile_scenario(spec)


@pytest.fixture(scope="module")
def optimum(v2g_day: ScenarioArrays) -> OptimalResult:
    return solve_optimal(v2g_day)


@pytest.fixture(scope="module")
def demonstration(v2g_day: ScenarioArrays, optimum: OptimalResult) -> tuple[np.ndarray, np.ndarray]:
    return day_demonstration(v2g_day, ObservationLayout(C_MAX), optimum)


class _Replay:
    """Replays normalised actions step by step through the layout (as a trained policy would act)."""

    name = "replay"

    def __init__(self, layout: ObservationLayout, actions: np.ndarray) -> None:
        self.layout, self.actions = layout, actions

    def act(self, context: StepContext) -> Setpoints:
        return self.layout.setpoints(context, self.actions[context.step_index][None, :])


def test_the_oracle_actions_replay_to_the_optimum_exactly(
    v2g_day: ScenarioArrays, demonstration: tuple[np.ndarray, np.ndarray], optimum: OptimalResult
) -> None:
    layout = ObservationLayout(C_MAX)
    observations, actions = demonstration
    assert observations.shape == (v2g_day.n_steps, layout.size)
    assert actions.shape == (v2g_day.n_steps, layout.action_size)
    assert np.all(np.abs(actions) <= 1.0)
    n_connectors = v2g_day.site.n_connectors
    assert np.all(actions[:, n_connectors:C_MAX] == 0.0)  # padded connectors ask nothing
    assert actions[:, :n_connectors].min() < 0.0  # the V2G fleet's optimum discharges: both branches used
    _, replayed = run_policy(v2g_day, _Replay(layout, actions))
    assert replayed.objective_eur == pytest.approx(optimum.kpis.objective_eur, rel=1e-9, abs=1e-9)
    assert replayed.unmet_energy_kwh == pytest.approx(optimum.kpis.unmet_energy_kwh, abs=1e-9)


def test_behaviour_cloning_fits_the_demonstrations(demonstration: tuple[np.ndarray, np.ndarray]) -> None:
    config = TrainConfig(template="rome_v2g_fleet", n_connectors_max=C_MAX, n_envs=1, pool_size=1)
    observations, actions = demonstration
    data = Demonstrations(observations, actions, 1)
    from smac_rl.agents.envs import training_vec_env

    envs: Sb3VectorEnv = training_vec_env(config)
    model = build_model(config, envs)
    envs.close()
    losses: list[float] = []
    clone_behaviour(model.policy, data, 60, 3e-3, 32, 0, lambda _epoch, loss: losses.append(loss))  # type: ignore[arg-type]
    assert len(losses) == 60
    assert losses[-1] < 0.5 * losses[0]
    predicted, _ = model.predict(observations.astype(np.float32), deterministic=True)
    mse = float(np.mean((np.clip(predicted, -1, 1) - actions) ** 2))
    assert mse == pytest.approx(losses[-1], rel=0.5)  # the deterministic action is the fitted mean


def test_training_with_imitation_logs_its_loss(tmp_path: Path) -> None:
    config = TrainConfig(
        template="rome_v2g_fleet",
        n_connectors_max=C_MAX,
        imitation_days=1,
        imitation_epochs=3,
        total_timesteps=0,
        n_envs=2,
        pool_size=2,
        selection_days=DaysConfig(first_day=dt.date(2023, 3, 6), n_days=1),
        eval_every_steps=1000,
    )
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    result = train(config, tmp_path / "run", tracking_uri=uri)
    client = mlflow.MlflowClient(tracking_uri=uri)
    assert [m.step for m in client.get_metric_history(result.run_id, "imitation.loss")] == [0, 1, 2]
    assert client.get_run(result.run_id).data.metrics["imitation.n_samples"] == 96.0
    scored = client.get_metric_history(result.run_id, "selection.savings_capture_median_frac")
    assert [m.step for m in scored] == [0, 0]  # the imitated model before PPO, then the kept one
    assert (tmp_path / "run" / "best_model.zip").is_file()
    assert float(np.exp(result.model.policy.log_std.detach().numpy()).max()) == pytest.approx(0.3)  # type: ignore[operator]


def test_imitation_is_for_ppo_only() -> None:
    with pytest.raises(pydantic.ValidationError, match="imitation pretrains PPO's actor"):
        TrainConfig(algorithm="sac", imitation_days=5)


def test_dagger_labels_are_the_optimums_continuation_from_each_visited_state() -> None:
    # The learner here is the expert itself (the optimum of the rest of the day from each state, with
    # foresight): it visits the states of its own episode, which by Bellman's principle costs the
    # day's optimum, and its labels there are its own actions, so replaying the labels step by step
    # reproduces that episode. On the tiny scenario (4 steps; the optimum is derived by hand in
    # tests/optimal) that is the optimum's objective.
    arrays = compile_scenario(tiny_scenario())
    layout = ObservationLayout(C_MAX)
    learner = MpcPolicy(PerfectForecast(), horizon_steps=arrays.n_steps, session_foresight=True)
    learner.begin_episode(arrays)
    visited, labels = learner_demonstration(arrays, layout, learner.act, time_limit_s=30.0)
    assert visited.shape == (arrays.n_steps, layout.size)
    assert labels.shape == (arrays.n_steps, layout.action_size)
    assert np.all(np.abs(labels) <= 1.0)
    _, replayed = run_policy(arrays, _Replay(layout, labels))
    optimum = solve_optimal(arrays)
    assert replayed.objective_eur == pytest.approx(optimum.kpis.objective_eur, rel=1e-6, abs=1e-6)
    # A learner that does nothing visits other states: the labels there still charge (the optimum
    # from an uncharged state), unlike the learner's own actions.
    idle = learner_demonstration(arrays, layout, lambda c: Setpoints(np.zeros((1, 2)), np.zeros(1)))[1]
    assert idle[:, :2].max() > 0.0


def test_dagger_adds_the_learners_states_and_refits(tmp_path: Path) -> None:
    config = TrainConfig(
        template="rome_v2g_fleet",
        n_connectors_max=C_MAX,
        imitation_days=1,
        imitation_epochs=2,
        dagger_rounds=1,
        dagger_days=1,
        dagger_epochs=1,
        total_timesteps=0,
        n_envs=2,
        pool_size=2,
        selection_days=DaysConfig(first_day=dt.date(2023, 3, 6), n_days=1),
    )
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    result = train(config, tmp_path / "run", tracking_uri=uri)
    client = mlflow.MlflowClient(tracking_uri=uri)
    samples = client.get_metric_history(result.run_id, "imitation.n_samples")
    assert [(m.step, m.value) for m in samples] == [(0, 96.0), (1, 192.0)]  # one more day of 96 states
    # two imitation epochs, then one after the round
    assert [m.step for m in client.get_metric_history(result.run_id, "imitation.loss")] == [0, 1, 2]


def test_dagger_needs_an_imitation_to_refine() -> None:
    with pytest.raises(pydantic.ValidationError, match="DAgger refines an imitated policy"):
        TrainConfig(dagger_rounds=2)


def test_a_dagger_round_labels_the_same_rows_on_two_processes() -> None:
    # Days are labelled independently and stacked in the days' order: two local processes give the
    # very rows one process gives (the policy, here untrained, is pickled to each).
    config = TrainConfig(
        template="rome_v2g_fleet",
        n_connectors_max=C_MAX,
        imitation_days=1,
        dagger_rounds=1,
        dagger_days=2,
        n_envs=1,
        pool_size=1,
    )
    from smac_rl.agents.envs import training_vec_env

    envs: Sb3VectorEnv = training_vec_env(config)
    model = build_model(config, envs)
    envs.close()
    serial = learner_demonstrations(config, model.policy, round_index=1, n_jobs=1)
    parallel = learner_demonstrations(config, model.policy, round_index=1, n_jobs=2)
    assert serial.observations.shape == (2 * 96, ObservationLayout(C_MAX).size)
    assert serial.n_days == parallel.n_days == 2
    np.testing.assert_array_equal(parallel.observations, serial.observations)
    np.testing.assert_array_equal(parallel.actions, serial.actions)
