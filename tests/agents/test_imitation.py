"""Imitation of the optimum: exact inverse actions, behaviour cloning, and its place in training."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pydantic
import pytest

from smac_rl.agents.config import DaysConfig, TrainConfig
from smac_rl.agents.imitation import (
    Demonstrations,
    clone_behaviour,
    day_demonstration,
    demonstrations,
    expert_policy,
    learner_demonstration,
    learner_demonstrations,
)
from smac_rl.agents.reports import recipe_lines
from smac_rl.agents.train import build_model, fit_model, train
from smac_rl.agents.vec_env import Sb3VectorEnv
from smac_rl.core.arrays import ScenarioArrays, compile_scenario
from smac_rl.core.errors import SmacError
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
    expert = expert_policy("optimum", arrays, time_limit_s=30.0)
    visited, labels = learner_demonstration(arrays, layout, learner.act, expert)
    assert visited.shape == (arrays.n_steps, layout.size)
    assert labels.shape == (arrays.n_steps, layout.action_size)
    assert np.all(np.abs(labels) <= 1.0)
    _, replayed = run_policy(arrays, _Replay(layout, labels))
    optimum = solve_optimal(arrays)
    assert replayed.objective_eur == pytest.approx(optimum.kpis.objective_eur, rel=1e-6, abs=1e-6)
    # A learner that does nothing visits other states: the labels there still charge (the optimum
    # from an uncharged state), unlike the learner's own actions.
    idle = learner_demonstration(
        arrays, layout, lambda c: Setpoints(np.zeros((1, 2)), np.zeros(1)), expert_policy("optimum", arrays)
    )[1]
    assert idle[:, :2].max() > 0.0


def test_the_mpc_experts_demonstration_replays_its_own_episode() -> None:
    # With learner None the expert runs the day and labels its own states: replaying the labels
    # through the layout reproduces the episode of `smac evaluate --policy mpc` (a 24 h window,
    # perfect exogenous forecasts, no arrivals ahead), not the optimum's.
    spec, _ = generate_scenario(load_template("budapest_workplace"), dt.date(2022, 3, 8), 1, seed=5)
    arrays = compile_scenario(spec)
    layout = ObservationLayout(16)
    # Time limits no busy machine reaches, so that both runs solve every window to the same gap.
    expert = expert_policy("mpc", arrays, time_limit_s=120.0)
    visited, labels = learner_demonstration(arrays, layout, None, expert)
    assert visited.shape == (arrays.n_steps, layout.size)
    _, replayed = run_policy(arrays, _Replay(layout, labels))
    mpc = MpcPolicy(PerfectForecast(), horizon_steps=96, time_limit_s=120.0)
    _, by_mpc = run_policy(arrays, mpc)
    assert not mpc.session_foresight
    assert replayed.objective_eur == pytest.approx(by_mpc.objective_eur, rel=1e-6, abs=1e-6)
    optimum = solve_optimal(arrays)
    assert replayed.objective_eur > optimum.kpis.objective_eur + 0.01  # it cannot see who comes next


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
    # very rows one process gives (the policy, here untrained, is pickled to each). The labels' time
    # limit is far above what a label takes, so that a loaded machine cannot stop one solve early.
    config = TrainConfig(
        template="rome_v2g_fleet",
        n_connectors_max=C_MAX,
        imitation_days=1,
        dagger_rounds=1,
        dagger_days=2,
        dagger_time_limit_s=120.0,
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


def test_the_config_picks_the_expert_and_a_second_process_changes_no_row() -> None:
    # One Budapest day demonstrated by each expert: the same first state (the day's start), but
    # the MPC's actions are its own rollout's, not the optimum's; two processes give the rows one does.
    config = TrainConfig(template="budapest_workplace", n_connectors_max=16, imitation_days=1, expert="mpc")
    by_mpc = demonstrations(config)
    optimum_config = config.model_copy(update={"expert": "optimum"})
    by_optimum = demonstrations(optimum_config, n_jobs=2)
    assert by_mpc.observations.shape == by_optimum.observations.shape == (96, config.layout().size)
    np.testing.assert_array_equal(by_mpc.observations[0], by_optimum.observations[0])
    assert np.abs(by_mpc.actions - by_optimum.actions).max() > 0.1
    np.testing.assert_array_equal(demonstrations(optimum_config).actions, by_optimum.actions)


def test_an_unknown_expert_is_refused_with_the_field_named() -> None:
    with pytest.raises(pydantic.ValidationError, match="expert"):
        TrainConfig(imitation_days=5, expert="oracle")  # type: ignore[arg-type]


def _tiny_ppo(**update: Any) -> TrainConfig:
    """A small equivariant PPO on Rome's template with ``update`` on top (rollouts of 2 x 16 steps)."""
    base = {
        "template": "rome_v2g_fleet",
        "n_connectors_max": C_MAX,
        "policy_network": "equivariant",
        "hidden_size": 16,
        "n_envs": 2,
        "pool_size": 2,
        "n_steps": 16,
        "batch_size": 16,
    }
    return TrainConfig.model_validate({**base, **update})


def test_the_value_warm_up_moves_the_critic_only_and_then_ppo_moves_the_actor(tmp_path: Path) -> None:
    config = _tiny_ppo(
        imitation_days=1,
        imitation_epochs=1,
        value_warmup_timesteps=32,
        total_timesteps=32,
        n_epochs=2,
        learning_rate=1e-2,
    )
    from smac_rl.agents.envs import training_vec_env
    from smac_rl.agents.train import CRITIC_PREFIXES, warm_up_value

    envs: Sb3VectorEnv = training_vec_env(config)
    try:
        model = build_model(config, envs)
        before = {name: p.detach().clone() for name, p in model.policy.named_parameters()}
        warm_up_value(model, config.value_warmup_timesteps)
        warmed = {name: p.detach().clone() for name, p in model.policy.named_parameters()}
        assert model.num_timesteps == 32
        assert all(p.requires_grad for p in model.policy.parameters())
        model.learn(total_timesteps=32, reset_num_timesteps=False)
    finally:
        envs.close()
    moved = {name for name in before if not np.array_equal(before[name].numpy(), warmed[name].numpy())}
    assert moved
    assert all(name.startswith(CRITIC_PREFIXES) for name in moved)
    assert "log_std" not in moved
    after = dict(model.policy.named_parameters())
    assert not np.array_equal(
        after["action_net.connector.weight"].detach().numpy(), warmed["action_net.connector.weight"].numpy()
    )
    assert model.num_timesteps == 64


def test_a_value_warm_up_needs_an_imitated_ppo_actor() -> None:
    with pytest.raises(pydantic.ValidationError, match="value_warmup_timesteps 1000"):
        TrainConfig(value_warmup_timesteps=1000)


def test_a_run_starts_from_a_saved_models_weights_with_its_own_hyperparameters(tmp_path: Path) -> None:
    parent_config = _tiny_ppo(total_timesteps=32)
    parent = fit_model(parent_config)
    parent.save(tmp_path / "parent.zip")
    config = parent_config.model_copy(
        update={"init_model": tmp_path / "parent.zip", "total_timesteps": 0, "learning_rate": 1e-5}
    )
    child = fit_model(config)
    theirs, ours = parent.policy.state_dict(), child.policy.state_dict()
    assert set(theirs) == set(ours)
    for name in theirs:
        expected = np.full(C_MAX + 1, np.log(0.3)) if name == "log_std" else theirs[name].numpy()
        np.testing.assert_allclose(ours[name].numpy(), expected, rtol=1e-6)
    assert child.learning_rate == 1e-5
    assert recipe_lines(config)[0] == (
        f"- Started from the weights of `{tmp_path / 'parent.zip'}` (`init_model`: a trained run's model)."
    )
    wider = config.model_copy(update={"hidden_size": 32})
    with pytest.raises(SmacError, match=r"init_model: got .*parent\.zip', whose network differs"):
        fit_model(wider)
    with pytest.raises(SmacError, match=r"init_model: got .*missing\.zip'; expected a saved PPO model file"):
        fit_model(config.model_copy(update={"init_model": tmp_path / "missing.zip"}))


def test_init_model_replaces_imitation() -> None:
    with pytest.raises(pydantic.ValidationError, match="starts from a trained PPO model or imitates"):
        TrainConfig(init_model=Path("runs/x/model.zip"), imitation_days=10)
    assert TrainConfig(init_model=Path("runs/x/model.zip"), value_warmup_timesteps=10).starts_trained
