"""Imitation of the optimum: PPO's actor pretrained on the oracle's actions before reinforcement learning.

The perfect-foresight optimum (:func:`smac_rl.optimal.solve.solve_optimal`) is solved on generated
training days; its setpoints are replayed through the one projection and physics
(:func:`smac_rl.core.simulate.simulate`), and at every step the observation the agent would see
(:meth:`ObservationLayout.observe`, divided by the layout's scales) is paired with the normalised
action that asks for the oracle's setpoints: the inverse of :meth:`ObservationLayout.setpoints`,
``a = p / upper`` for charging and ``a = -p / lower`` for discharging (0 where the bound is 0),
clipped to ``[-1, 1]``. The actor's mean is fitted to those actions by mean squared error
(behaviour cloning); PPO then goes on from that policy on the batched env.

Imitation learns what the optimum does with foresight from what is observable now, so it cannot
reach the optimum everywhere; it gives reinforcement learning a start near good behaviour
instead of near uniform noise.

**DAgger** (dataset aggregation, Ross et al. 2011): the demonstrations cover only the states the
optimum visits; the imitated policy drifts to others (a session charged a little less leaves a
state the optimum never shows), where it was never taught. Each round of
:func:`learner_demonstrations` rolls the imitated policy out on new training days and labels every
state it visits with the optimum's action from that state: the first step of the optimum of the
rest of the day with the same foresight (:class:`smac_rl.optimal.mpc.MpcPolicy` with perfect
forecasts, the sessions still to come and a window to the day's end, which by Bellman's principle is
the optimum's continuation). The policy is then fitted again on all the data.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import torch
from stable_baselines3.common.policies import ActorCriticPolicy, BasePolicy

from smac_rl.agents.config import TrainConfig
from smac_rl.core.arrays import ScenarioArrays, compile_scenario
from smac_rl.core.arraytypes import FloatArray
from smac_rl.core.observation import ObservationLayout
from smac_rl.core.projection import ev_power_bounds, storage_power_bounds
from smac_rl.core.scenario_io import parse_scenario
from smac_rl.core.simulate import simulate
from smac_rl.core.state import Setpoints, StepContext
from smac_rl.data.generator import generate_scenario
from smac_rl.data.template_spec import load_template
from smac_rl.optimal.solve import OptimalResult, solve_optimal


@dataclass(frozen=True)
class Demonstrations:
    """Observations and the oracle's normalised actions, one row per step of every day.

    Attributes:
        observations: Normalised observations, ``(N, observation size)``.
        actions: Actions in ``[-1, 1]``, ``(N, action size)``.
        n_days: Days solved.
    """

    observations: FloatArray
    actions: FloatArray
    n_days: int


def _ratio(numerator: FloatArray, denominator: FloatArray) -> FloatArray:
    """``numerator / denominator`` where the denominator is not 0, else 0."""
    safe = np.where(denominator != 0.0, denominator, 1.0)
    return np.where(denominator != 0.0, numerator / safe, 0.0)


def oracle_actions(layout: ObservationLayout, context: StepContext, setpoints: Setpoints) -> FloatArray:
    """The normalised action that asks for ``setpoints`` at a step (inverse of ``layout.setpoints``).

    Args:
        layout: Observation and action layout.
        context: The step's state, ``B`` rows.
        setpoints: The setpoints wanted [kW].

    Returns:
        Actions in ``[-1, 1]``, ``(B, action size)``; padded connectors ask 0.
    """
    lower, upper = ev_power_bounds(context)
    ev_kw = setpoints.ev_power_kw
    ev_a = np.where(ev_kw >= 0.0, _ratio(ev_kw, upper), -_ratio(ev_kw, lower))
    s_lower, s_upper = storage_power_bounds(context)
    s_kw = setpoints.storage_power_kw
    storage_a = np.where(s_kw >= 0.0, _ratio(s_kw, s_upper), -_ratio(s_kw, s_lower))
    action = np.zeros((context.batch_size, layout.action_size))
    action[:, : ev_a.shape[1]] = ev_a
    action[:, layout.n_connectors_max] = storage_a
    return np.clip(action, -1.0, 1.0)


def day_demonstration(
    arrays: ScenarioArrays, layout: ObservationLayout, optimum: OptimalResult | None = None
) -> tuple[FloatArray, FloatArray]:
    """The optimum of one scenario replayed: its observations and actions, ``(T, ...)`` each.

    Args:
        arrays: The scenario.
        layout: Observation and action layout.
        optimum: Its optimum, when already solved.
    """
    optimum = optimum or solve_optimal(arrays)
    scales = layout.scales()
    observations: list[FloatArray] = []
    actions: list[FloatArray] = []

    def replay(context: StepContext) -> Setpoints:
        t = context.step_index
        wanted = Setpoints(
            ev_power_kw=optimum.ev_power_kw[t][None, :], storage_power_kw=optimum.storage_power_kw[t : t + 1]
        )
        observations.append(layout.observe(arrays, context)[0] / scales)
        actions.append(oracle_actions(layout, context, wanted)[0])
        return wanted

    simulate(arrays, replay)
    return np.asarray(observations), np.asarray(actions)


def learner_demonstration(
    arrays: ScenarioArrays,
    layout: ObservationLayout,
    learner: Callable[[StepContext], Setpoints],
    time_limit_s: float = 2.0,
    mip_gap_frac: float = 1e-4,
) -> tuple[FloatArray, FloatArray]:
    """The learner's own rollout of one scenario, every state labelled with the optimum's action.

    Args:
        arrays: The scenario.
        layout: Observation and action layout.
        learner: The policy rolled out (its setpoints are applied, not the labels).
        time_limit_s: Solver time limit of each state's label [s].
        mip_gap_frac: Relative MIP gap of each state's label.

    Returns:
        ``(observations, actions)``, ``(T, ...)`` each: the normalised observation of each visited
        state and the normalised action asking for the optimum's setpoints there.
    """
    from smac_rl.core.forecasts import PerfectForecast
    from smac_rl.optimal.mpc import MpcPolicy

    expert = MpcPolicy(
        PerfectForecast(),
        horizon_steps=arrays.n_steps,
        session_foresight=True,
        time_limit_s=time_limit_s,
        mip_gap_frac=mip_gap_frac,
    )
    expert.begin_episode(arrays)
    scales = layout.scales()
    observations: list[FloatArray] = []
    actions: list[FloatArray] = []

    def visit(context: StepContext) -> Setpoints:
        observations.append(layout.observe(arrays, context)[0] / scales)
        actions.append(oracle_actions(layout, context, expert.act(context))[0])
        return learner(context)

    simulate(arrays, visit)
    return np.asarray(observations), np.asarray(actions)


def training_days(config: TrainConfig, n_days: int, stream: int) -> Iterator[ScenarioArrays]:
    """``n_days`` random training days of the config (template, date range, objective), seeded.

    Args:
        config: The training config.
        n_days: Days to draw.
        stream: Which seeded stream (0: the imitation's days, ``k``: DAgger round ``k``'s).
    """
    template = load_template(config.template)
    rng = np.random.default_rng([config.seed + 7919, stream] if stream else config.seed + 7919)
    n_span = (config.last_day - config.first_day).days + 1
    for _ in range(n_days):
        day = config.first_day + dt.timedelta(days=int(rng.integers(n_span)))
        spec, _ = generate_scenario(template, day, 1, seed=int(rng.integers(2**31)))
        data = spec.model_dump(mode="json")
        data["objective"] = config.objective.model_dump(mode="json")
        yield compile_scenario(parse_scenario(data, source=spec.name))


def demonstrations(config: TrainConfig, on_day: Callable[[int], None] | None = None) -> Demonstrations:
    """Solve ``config.imitation_days`` random training days (seeded) and collect the oracle's steps.

    Args:
        config: The training config (template, training days, objective, seed).
        on_day: Called with each finished day's index.

    Returns:
        The stacked demonstrations.
    """
    layout = config.layout()
    observations, actions = [], []
    for k, arrays in enumerate(training_days(config, config.imitation_days, stream=0)):
        obs, act = day_demonstration(arrays, layout)
        observations.append(obs)
        actions.append(act)
        if on_day is not None:
            on_day(k)
    return Demonstrations(np.concatenate(observations), np.concatenate(actions), config.imitation_days)


def _label_rollout(
    arrays: ScenarioArrays,
    layout: ObservationLayout,
    policy: BasePolicy,
    time_limit_s: float,
    mip_gap_frac: float,
) -> tuple[FloatArray, FloatArray]:
    """:func:`learner_demonstration` of an SB3 policy's deterministic actions (one job of a round)."""
    from smac_rl.agents.policy import Sb3Policy

    torch.set_num_threads(1)  # one job per core
    rollout = Sb3Policy(policy, layout)
    rollout.begin_episode(arrays)
    return learner_demonstration(arrays, layout, rollout.act, time_limit_s, mip_gap_frac)


def learner_demonstrations(
    config: TrainConfig, policy: BasePolicy, round_index: int, n_jobs: int = 1
) -> Demonstrations:
    """One DAgger round: the policy's rollouts on ``config.dagger_days`` new days, labelled.

    Days are independent, so with ``n_jobs`` above 1 they are labelled on that many local
    processes (joblib's loky; the policy is pickled to each); the rows keep the days' order, so the
    result does not depend on ``n_jobs``.

    Args:
        config: The training config.
        policy: The SB3 policy rolled out (deterministic actions).
        round_index: The round (1, 2, ...), which picks the days' seeded stream.
        n_jobs: Local processes labelling days.

    Returns:
        The stacked labelled states.
    """
    layout = config.layout()
    days = list(training_days(config, config.dagger_days, stream=round_index))
    time_limit_s, gap = config.dagger_time_limit_s, config.dagger_mip_gap_frac
    if n_jobs == 1:
        labelled = [_label_rollout(arrays, layout, policy, time_limit_s, gap) for arrays in days]
    else:
        from joblib import Parallel, delayed

        labelled = Parallel(n_jobs=n_jobs, backend="loky")(
            delayed(_label_rollout)(arrays, layout, policy, time_limit_s, gap) for arrays in days
        )
    return Demonstrations(
        np.concatenate([obs for obs, _ in labelled]), np.concatenate([act for _, act in labelled]), len(days)
    )


def aggregate(first: Demonstrations, second: Demonstrations) -> Demonstrations:
    """Both sets of demonstrations in one."""
    return Demonstrations(
        np.concatenate([first.observations, second.observations]),
        np.concatenate([first.actions, second.actions]),
        first.n_days + second.n_days,
    )


def clone_behaviour(
    policy: ActorCriticPolicy,
    data: Demonstrations,
    epochs: int,
    learning_rate: float,
    batch_size: int,
    seed: int,
    on_epoch: Callable[[int, float], None] | None = None,
) -> float:
    """Fit the actor's mean action to the demonstrations by mean squared error.

    Args:
        policy: PPO's policy (its actor and shared layers are trained; the value head is not used).
        data: The demonstrations.
        epochs: Passes over the data.
        learning_rate: Adam's learning rate.
        batch_size: Rows per gradient step.
        seed: Seed of the shuffling.
        on_epoch: Called with each epoch's index and mean loss.

    Returns:
        The last epoch's mean loss.
    """
    observations = torch.as_tensor(data.observations, dtype=torch.float32)
    targets = torch.as_tensor(data.actions, dtype=torch.float32)
    optimiser = torch.optim.Adam(policy.parameters(), lr=learning_rate)
    generator = torch.Generator().manual_seed(seed)
    policy.set_training_mode(True)
    loss_value = float("nan")
    for epoch in range(epochs):
        order = torch.randperm(observations.shape[0], generator=generator)
        total, count = 0.0, 0
        for start in range(0, observations.shape[0], batch_size):
            rows = order[start : start + batch_size]
            distribution = policy.get_distribution(observations[rows]).distribution
            if not isinstance(distribution, torch.distributions.Normal):
                raise TypeError(f"imitation needs a Gaussian actor; got {type(distribution).__name__}")
            mean = distribution.mean
            loss = torch.nn.functional.mse_loss(mean, targets[rows])
            optimiser.zero_grad()
            loss.backward()  # type: ignore[no-untyped-call]
            optimiser.step()
            total += float(loss.detach()) * rows.shape[0]
            count += rows.shape[0]
        loss_value = total / count
        if on_epoch is not None:
            on_epoch(epoch, loss_value)
    policy.set_training_mode(False)
    return loss_value
