"""Imitation of an expert: PPO's actor pretrained on the optimum's (or the MPC's) actions before RL.

The perfect-foresight optimum (:func:`smac_rl.optimal.solve.solve_optimal`) is solved on generated
training days; its setpoints are replayed through the one projection and physics
(:func:`smac_rl.core.simulate.simulate`), and at every step the observation the agent would see
(:meth:`ObservationLayout.observe`, divided by the layout's scales) is paired with the normalised
action that asks for the oracle's setpoints: the inverse of :meth:`ObservationLayout.setpoints`,
``a = p / upper`` for charging and ``a = -p / lower`` for discharging (0 where the bound is 0),
clipped to ``[-1, 1]``; where the layout acts on the import cap, the cap asked is the highest import
of the expert's plan from the step on (:func:`remaining_peak_import_kw`; the MPC's window plan,
:attr:`MpcPolicy.planned_peak_import_kw`). The actor's mean is fitted to those actions by mean squared error
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

**The expert** (``TrainConfig.expert``): the optimum above knows the sessions still to come, so part of
what it does (holding headroom for a car that arrives at noon) depends on nothing the policy sees,
and imitation averages it away. The ``mpc`` expert is the rolling-horizon MPC that ``smac evaluate
--policy mpc`` runs: perfect price, PV and base-load forecasts over 24 h, only the sessions plugged
in now. Its demonstrations are its own rollouts, each state labelled with its own first step, and
DAgger labels the learner's states with its plan from there; its actions depend only on what is
plugged in and on the outlook, which the observation summarises. On the generated test days it
captures 95-96 % of the optimum's savings on the Barcelona and Budapest templates (BENCHMARKS.md).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import torch
from stable_baselines3.common.policies import ActorCriticPolicy, BasePolicy

from smac_rl.agents.config import Expert, TrainConfig
from smac_rl.core.arrays import ScenarioArrays, compile_scenario
from smac_rl.core.arraytypes import FloatArray
from smac_rl.core.forecasts import PerfectForecast
from smac_rl.core.observation import ObservationLayout
from smac_rl.core.physics import grid_import_kw
from smac_rl.core.projection import ev_power_bounds, storage_power_bounds
from smac_rl.core.scenario_io import parse_scenario
from smac_rl.core.simulate import simulate
from smac_rl.core.state import Setpoints, StepContext
from smac_rl.data.generator import generate_scenario
from smac_rl.data.template_spec import load_template
from smac_rl.optimal.mpc import MpcPolicy, horizon_steps_of
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


def oracle_actions(
    layout: ObservationLayout,
    context: StepContext,
    setpoints: Setpoints,
    planned_peak_import_kw: FloatArray | None = None,
) -> FloatArray:
    """The normalised action that asks for ``setpoints`` at a step (inverse of ``layout.setpoints``).

    Args:
        layout: Observation and action layout.
        context: The step's state, ``B`` rows.
        setpoints: The setpoints wanted [kW].
        planned_peak_import_kw: Where the layout acts on the import cap, the cap to ask [kW],
            ``(B,)``: the highest import of the expert's plan from this step on (the level it holds;
            setpoints it asks never exceed it, so the cap does not cut them).

    Returns:
        Actions in ``[-1, 1]``, ``(B, action size)``; padded connectors ask 0.

    Raises:
        ValueError: When the layout acts on the import cap and no cap is given.
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
    if layout.is_import_cap_acted:
        if planned_peak_import_kw is None:
            raise ValueError(
                "planned_peak_import_kw: got None; expected the expert's planned peak import for a layout "
                "that acts on the import cap"
            )
        # The inverse of smac_rl.core.observation.import_cap_kw.
        limit_kw = context.exo.import_limit_kw
        action[:, layout.n_connectors_max + 1] = 2.0 * _ratio(planned_peak_import_kw, limit_kw) - 1.0
    return np.clip(action, -1.0, 1.0)


def remaining_peak_import_kw(
    arrays: ScenarioArrays, ev_power_kw: FloatArray, storage_power_kw: FloatArray
) -> FloatArray:
    """The highest import of a plan from each step to its end [kW], ``(T,)``.

    Args:
        arrays: The scenario the plan is for.
        ev_power_kw: The plan's connector setpoints [kW], ``(T, C)``.
        storage_power_kw: Its storage setpoints [kW], ``(T,)``.
    """
    series = arrays.series
    import_kw = grid_import_kw(
        series.base_load_kw, series.pv_available_kw, ev_power_kw.sum(axis=1), storage_power_kw
    )
    remaining: FloatArray = np.maximum.accumulate(import_kw[::-1])[::-1]
    return remaining


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
    peak_kw = remaining_peak_import_kw(arrays, optimum.ev_power_kw, optimum.storage_power_kw)
    scales = layout.scales()
    observations: list[FloatArray] = []
    actions: list[FloatArray] = []

    def replay(context: StepContext) -> Setpoints:
        t = context.step_index
        wanted = Setpoints(
            ev_power_kw=optimum.ev_power_kw[t][None, :], storage_power_kw=optimum.storage_power_kw[t : t + 1]
        )
        observations.append(layout.observe(arrays, context)[0] / scales)
        actions.append(oracle_actions(layout, context, wanted, peak_kw[t : t + 1])[0])
        return wanted

    simulate(arrays, replay)
    return np.asarray(observations), np.asarray(actions)


def expert_policy(
    expert: Expert,
    arrays: ScenarioArrays,
    time_limit_s: float = 2.0,
    mip_gap_frac: float = 1e-4,
    early_charging_eur_per_kwh: float = 0.0,
) -> MpcPolicy:
    """The policy that labels states, bound to one scenario (module docstring).

    Args:
        expert: ``optimum``: the optimum of the rest of the day from each state (perfect foresight,
            the sessions still to come included); ``mpc``: the rolling-horizon MPC that
            ``smac evaluate --policy mpc`` runs (perfect price, PV and base-load forecasts over a
            24 h window, only the sessions plugged in now).
        arrays: The scenario it labels.
        time_limit_s: Solver time limit of each state's label [s].
        mip_gap_frac: Relative MIP gap of each state's label.
        early_charging_eur_per_kwh: Tie-breaker in favour of charging early
            (:func:`smac_rl.optimal.assemble.define_early_charging`); 0: none.
    """
    foresight = expert == "optimum"
    policy = MpcPolicy(
        PerfectForecast(),
        horizon_steps=arrays.n_steps if foresight else horizon_steps_of(arrays.step_h),
        session_foresight=foresight,
        time_limit_s=time_limit_s,
        mip_gap_frac=mip_gap_frac,
        early_charging_eur_per_kwh=early_charging_eur_per_kwh,
    )
    policy.begin_episode(arrays)
    return policy


def learner_demonstration(
    arrays: ScenarioArrays,
    layout: ObservationLayout,
    learner: Callable[[StepContext], Setpoints] | None,
    expert: MpcPolicy,
) -> tuple[FloatArray, FloatArray]:
    """A rollout of one scenario, every state it visits labelled with the expert's action.

    Args:
        arrays: The scenario.
        layout: Observation and action layout.
        learner: The policy rolled out (its setpoints are applied, not the labels); None: the
            expert's own rollout (its setpoints are applied).
        expert: The labelling policy, bound to ``arrays`` (:func:`expert_policy`).

    Returns:
        ``(observations, actions)``, ``(T, ...)`` each: the normalised observation of each visited
        state and the normalised action asking for the expert's setpoints there.
    """
    scales = layout.scales()
    observations: list[FloatArray] = []
    actions: list[FloatArray] = []

    def visit(context: StepContext) -> Setpoints:
        observations.append(layout.observe(arrays, context)[0] / scales)
        wanted = expert.act(context)
        planned_peak_kw = np.asarray([expert.planned_peak_import_kw], dtype=np.float64)
        actions.append(oracle_actions(layout, context, wanted, planned_peak_kw)[0])
        return wanted if learner is None else learner(context)

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


def _expert_day(
    arrays: ScenarioArrays, layout: ObservationLayout, config: TrainConfig
) -> tuple[FloatArray, FloatArray]:
    """One day of the expert's own demonstrations (one job of :func:`demonstrations`)."""
    torch.set_num_threads(1)  # one job per core
    if config.expert == "optimum":
        optimum = solve_optimal(arrays, early_charging_eur_per_kwh=config.expert_early_charging_eur_per_kwh)
        return day_demonstration(arrays, layout, optimum)
    return learner_demonstration(arrays, layout, None, config_expert(config, arrays))


def config_expert(config: TrainConfig, arrays: ScenarioArrays) -> MpcPolicy:
    """:func:`expert_policy` as a training config sets it (expert, time limit, gap, tie-breaker)."""
    return expert_policy(
        config.expert,
        arrays,
        config.dagger_time_limit_s,
        config.dagger_mip_gap_frac,
        config.expert_early_charging_eur_per_kwh,
    )


def demonstrations(config: TrainConfig, n_jobs: int = 1) -> Demonstrations:
    """The expert on ``config.imitation_days`` random training days (seeded), every step collected.

    With the ``optimum`` expert each day is solved once (with the tie-breaker, if set) and replayed
    (:func:`day_demonstration`); with ``mpc`` the MPC runs the day, re-planning at every step
    (:func:`learner_demonstration` of its own rollout). Days are independent; with ``n_jobs`` above
    1 they are solved on that many local processes, and the rows keep the days' order, so the
    result does not depend on ``n_jobs``.

    Args:
        config: The training config (template, training days, objective, seed, expert).
        n_jobs: Local processes solving days.

    Returns:
        The stacked demonstrations.
    """
    layout = config.layout()
    days = list(training_days(config, config.imitation_days, stream=0))
    demonstrated = _run_jobs([(_expert_day, (arrays, layout, config)) for arrays in days], n_jobs)
    return _stack(demonstrated, len(days))


def _label_rollout(
    arrays: ScenarioArrays, layout: ObservationLayout, policy: BasePolicy, config: TrainConfig
) -> tuple[FloatArray, FloatArray]:
    """:func:`learner_demonstration` of an SB3 policy's deterministic actions (one job of a round)."""
    from smac_rl.agents.policy import Sb3Policy

    torch.set_num_threads(1)  # one job per core
    rollout = Sb3Policy(policy, layout)
    rollout.begin_episode(arrays)
    return learner_demonstration(arrays, layout, rollout.act, config_expert(config, arrays))


def learner_demonstrations(
    config: TrainConfig, policy: BasePolicy, round_index: int, n_jobs: int = 1
) -> Demonstrations:
    """One DAgger round: the policy's rollouts on ``config.dagger_days`` new days, labelled by the expert.

    Days are independent, so with ``n_jobs`` above 1 they are labelled on that many local
    processes (joblib's loky; the policy is pickled to each); the rows keep the days' order, so the
    result does not depend on ``n_jobs``.

    Args:
        config: The training config (its ``expert`` labels).
        policy: The SB3 policy rolled out (deterministic actions).
        round_index: The round (1, 2, ...), which picks the days' seeded stream.
        n_jobs: Local processes labelling days.

    Returns:
        The stacked labelled states.
    """
    layout = config.layout()
    days = list(training_days(config, config.dagger_days, stream=round_index))
    labelled = _run_jobs([(_label_rollout, (arrays, layout, policy, config)) for arrays in days], n_jobs)
    return _stack(labelled, len(days))


def _run_jobs(
    jobs: list[tuple[Callable[..., tuple[FloatArray, FloatArray]], tuple[object, ...]]], n_jobs: int
) -> list[tuple[FloatArray, FloatArray]]:
    """Each ``function(*arguments)``, in order: here, or on ``n_jobs`` local processes (joblib's loky)."""
    if n_jobs == 1:
        return [function(*arguments) for function, arguments in jobs]
    from joblib import Parallel, delayed

    results: list[tuple[FloatArray, FloatArray]] = Parallel(n_jobs=n_jobs, backend="loky")(
        delayed(function)(*arguments) for function, arguments in jobs
    )
    return results


def _stack(days: list[tuple[FloatArray, FloatArray]], n_days: int) -> Demonstrations:
    return Demonstrations(
        np.concatenate([obs for obs, _ in days]), np.concatenate([act for _, act in days]), n_days
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
