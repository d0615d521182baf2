"""Typed training configuration (YAML or CLI), validated like every other input."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from smac_rl.core.observation import ObservationLayout
from smac_rl.core.specs import ObjectiveSpec
from smac_rl.core.specs.base import StrictModel

Expert = Literal["optimum", "mpc"]
"""Who labels imitation's states (:mod:`smac_rl.agents.imitation`): the perfect-foresight optimum or the
forecast-driven MPC."""


class DaysConfig(StrictModel):
    """A set of evaluation days: consecutive local days, each with one or more generator seeds.

    Attributes:
        first_day: First local day.
        n_days: Consecutive days.
        n_seeds: Generator seeds per day.
    """

    first_day: dt.date
    n_days: int = Field(default=7, ge=1, le=366)
    n_seeds: int = Field(default=1, ge=1, le=100)

    @property
    def last_day(self) -> dt.date:
        """The last local day."""
        return self.first_day + dt.timedelta(days=self.n_days - 1)


class TrainConfig(StrictModel):
    """A training run (PPO, SAC, TD3 or TQC) on generated days of one pilot template.

    Attributes:
        template: Pilot template name or template YAML file.
        first_day: First local day episodes may start on (training split).
        last_day: Last local day episodes may start on.
        total_timesteps: Environment steps to train for.
        seed: Seed of the environments and of the algorithm.
        n_envs: Rows of the batched env (sites stepped together in one process).
        pool_size: Distinct generated days the rows draw episodes from (built on first use);
            None: a freshly generated day at every reset.
        n_connectors_max: Connectors the policy has room for.
        learning_rate: Learning rate.
        n_steps: Steps per environment between updates (ppo).
        batch_size: Minibatch size.
        n_epochs: Passes over each rollout (ppo).
        gamma: Discount factor.
        reward_scale_eur: Rewards are divided by this [EUR] to keep them near 1.
        net_arch: Hidden layer sizes of the policy and value networks (``mlp``).
        policy_network: ``mlp`` (SB3's flat MLP over the whole observation) or ``equivariant``
            (one network shared by every connector with pooled site context, :mod:`smac_rl.agents.networks`).
        hidden_size: Width of the equivariant network's layers.
        pooling: How the equivariant network pools its connectors into the site context: ``mean``, or
            ``mean_sum`` (the mean and the sum over ``n_connectors_max``: the mean alone cannot tell
            two plugged cars from ten alike; :mod:`smac_rl.agents.networks`).
        objective: The use case trained for (:mod:`smac_rl.core.objectives`); rewards follow it.
        algorithm: ``ppo`` (on-policy; the ``equivariant`` network is available for it), ``sac``,
            ``td3`` or ``tqc`` (sb3-contrib; off-policy, SB3's MLP actor and critics).
        buffer_size: Replay buffer transitions (off-policy algorithms).
        learning_starts: Steps collected before the first off-policy update.
        selection_days: Days the run is judged on while training and when runs are compared (DESIGN.md
            section 4: the selection year); never overlapping the training days.
        test_days: Days reported once, on the champion's card (the test year); never overlapping the
            training days.
        eval_every_steps: Evaluate on the selection days every this many environment steps (all rows
            counted), logging to MLflow and keeping the best model; None: only once, after training.
        eval_time_limit_s: The optimum's time limit per evaluation day [s].
        imitation_days: Training days on which PPO's actor imitates the ``expert`` before
            reinforcement learning (:mod:`smac_rl.agents.imitation`); 0: none.
        expert: Who labels the imitation's and DAgger's states. ``optimum``: the perfect-foresight
            optimum (on a DAgger state, the optimum of the rest of the day from there, the sessions
            still to come included); ``mpc``: the rolling-horizon MPC of ``smac evaluate --policy
            mpc`` (perfect price, PV and base-load forecasts over 24 h, only the sessions plugged in
            now), whose actions depend on what a policy can observe, not on arrivals it cannot.
        expert_early_charging_eur_per_kwh: The expert's tie-breaker: among plans that cost the same,
            the one charging earliest (:func:`smac_rl.optimal.assemble.define_early_charging`), so
            that its labels follow one rule where the objective leaves the choice free (below a
            peak paid anyway, within one hourly price); 0: the solver's choice.
        imitation_epochs: Passes over the demonstrations.
        imitation_learning_rate: Learning rate of the imitation.
        imitation_action_std: Standard deviation of PPO's exploration noise after imitation or after
            loading ``init_model`` (in action units, the actions spanning [-1, 1]).
        init_model: A saved PPO model (a run's ``model.zip``; relative paths from the current folder)
            whose policy weights this run starts from instead of imitating: the same network and
            observation layout, this config's hyperparameters. For fine-tuning a trained run with
            PPO (``value_warmup_timesteps``, ``total_timesteps``); None: a fresh network.
        dagger_rounds: Rounds of dataset aggregation after the imitation (DAgger): each rolls the
            imitated policy out on ``dagger_days`` new training days, labels every state it visits
            with the optimum's action from that state, and fits again on all the data; 0: none.
        dagger_days: Training days rolled out per DAgger round.
        dagger_epochs: Passes over all the data after each DAgger round (the policy goes on from
            its weights); None: ``imitation_epochs``.
        dagger_time_limit_s: Solver time limit of each state's label (the expert's plan from that
            state; also the ``mpc`` expert's demonstrations) [s].
        dagger_jobs: Local processes solving days in parallel (the imitation's demonstrations and each
            DAgger round's labels; the rows do not depend on it).
        dagger_mip_gap_frac: Relative MIP gap of each state's label: the labelling expert re-plans at
            every step, so a loose gap costs little (on Turku days its rollouts reached the optimum's
            objective with 1e-2 as with 1e-4, about 3.5x faster).
        deadline_floor_margin_steps: The policy's deadline floor
            (:func:`smac_rl.core.observation.deadline_floor_kw`): every connector's setpoint is raised to
            the least power that keeps its session's energy deliverable with this many steps to spare,
            in training, evaluation and the exported model alike; None: no floor.
        is_price_rank_observed: The observation's site features end with the price ranks
            (:data:`smac_rl.core.observation.PRICE_OUTLOOK_FEATURES`): where the step's import price
            ranks among the next 2, 4, 8, 12 and 24 hours', and that outlook's lowest and highest price.
        is_load_outlook_observed: The observation's site features add the net-load outlook
            (:data:`smac_rl.core.observation.LOAD_OUTLOOK_FEATURES`): the highest base load minus PV
            of the next 4, 12 and 24 hours (what a peak-shaving policy must know to flatten the day).
        is_import_cap_acted: The action ends with the site's import cap
            (:func:`smac_rl.core.observation.import_cap_kw`): charging asked above it is withheld
            (least urgent first), the deadline floor kept, so that the policy holds a site-wide level
            with one output.
            Imitation labels it with the highest import of the expert's plan from the step on.
        is_min_current_rounded: Charging asks below a connector's minimum current are rounded to 0
            or the minimum (:func:`smac_rl.core.observation.round_to_minimum_current`), where the
            projection would set them all to 0: an actor fitted by regression to an expert that
            charges 0 or at least 6 A answers in between.
        is_paid_peak_filled: The import cap is never below the billing period's highest import so far, and
            charging is raised up to it (at most the import limit), least laxity first
            (:func:`smac_rl.core.observation.fill_to_paid_peak`): what is charged under a peak already
            paid for costs no demand charge and cannot raise the peak later. Only with objective
            ``peak`` (the others price energy, which the fill buys whatever its price).
        value_warmup_timesteps: PPO steps after the imitation in which only the critic learns (the
            actor, its shared encoder and its noise frozen), so that reinforcement learning starts
            from advantages of a fitted value instead of a random one, which would pull the imitated
            actor off at once; they come before ``total_timesteps`` and are not scored.
        episode_order: ``random`` training days, or ``consecutive`` (each env row walks the calendar
            from ``first_day``; needs ``pool_size`` None).
        billing_period: ``episode`` or ``month`` (the demand charge billed on each row's running
            monthly peak across consecutive episodes; needs ``episode_order`` consecutive).
    """

    template: str = "turku_ultrafast_hub"
    first_day: dt.date = dt.date(2021, 1, 1)
    last_day: dt.date = dt.date(2022, 12, 31)
    total_timesteps: int = Field(default=20_000, ge=0, le=100_000_000)
    seed: int = Field(default=0, ge=0)
    n_envs: int = Field(default=4, ge=1, le=4096)
    pool_size: int | None = Field(default=512, ge=1)
    n_connectors_max: int = Field(default=16, ge=1, le=512)
    learning_rate: float = Field(default=3e-4, gt=0, le=1)
    n_steps: int = Field(default=256, ge=8)
    batch_size: int = Field(default=256, ge=8)
    n_epochs: int = Field(default=5, ge=1, le=100)
    gamma: float = Field(default=0.99, gt=0, le=1)
    reward_scale_eur: float = Field(default=10.0, gt=0)
    net_arch: list[int] = Field(default_factory=lambda: [128, 128], min_length=1)
    policy_network: Literal["mlp", "equivariant"] = "mlp"
    hidden_size: int = Field(default=64, ge=4, le=1024)
    pooling: Literal["mean", "mean_sum"] = "mean"
    objective: ObjectiveSpec = ObjectiveSpec()
    algorithm: Literal["ppo", "sac", "td3", "tqc"] = "ppo"
    buffer_size: int = Field(default=100_000, ge=100)
    learning_starts: int = Field(default=1_000, ge=0)
    selection_days: DaysConfig = DaysConfig(first_day=dt.date(2023, 1, 9), n_days=7)
    test_days: DaysConfig = DaysConfig(first_day=dt.date(2024, 1, 8), n_days=7)
    eval_every_steps: int | None = Field(default=None, ge=1)
    eval_time_limit_s: float = Field(default=60.0, gt=0, le=3600)
    imitation_days: int = Field(default=0, ge=0, le=10_000)
    expert: Expert = "optimum"
    expert_early_charging_eur_per_kwh: float = Field(default=0.0, ge=0, le=1)
    init_model: Path | None = None
    imitation_epochs: int = Field(default=30, ge=1, le=10_000)
    imitation_learning_rate: float = Field(default=1e-3, gt=0, le=1)
    imitation_action_std: float = Field(default=0.3, gt=0, le=2)
    dagger_rounds: int = Field(default=0, ge=0, le=50)
    dagger_days: int = Field(default=100, ge=1, le=10_000)
    dagger_epochs: int | None = Field(default=None, ge=1, le=10_000)
    dagger_time_limit_s: float = Field(default=2.0, gt=0, le=3600)
    dagger_jobs: int = Field(default=1, ge=1, le=256)
    dagger_mip_gap_frac: float = Field(default=1e-2, ge=0, lt=1)
    deadline_floor_margin_steps: float | None = Field(default=None, ge=0, le=96)
    is_price_rank_observed: bool = False
    is_load_outlook_observed: bool = False
    is_import_cap_acted: bool = False
    is_min_current_rounded: bool = False
    is_paid_peak_filled: bool = False
    value_warmup_timesteps: int = Field(default=0, ge=0, le=100_000_000)
    episode_order: Literal["random", "consecutive"] = "random"
    billing_period: Literal["episode", "month"] = "episode"

    @property
    def starts_trained(self) -> bool:
        """The actor is trained before reinforcement learning (imitated, or loaded from ``init_model``)."""
        return bool(self.imitation_days) or self.init_model is not None

    def layout(self) -> ObservationLayout:
        """The observation and action layout of this config's policy (every layout field)."""
        return ObservationLayout.of(self.n_connectors_max, self)

    @model_validator(mode="after")
    def _supported_combinations(self) -> TrainConfig:
        if self.objective.name == "setpoint_tracking":
            raise ValueError(
                "objective.name 'setpoint_tracking': generated days carry no flexibility setpoint "
                "series; train on cost, peak, load_balancing or v2g_profit"
            )
        if self.is_paid_peak_filled and self.objective.name != "peak":
            raise ValueError(
                f"is_paid_peak_filled true with objective.name {self.objective.name!r}: the fill buys energy "
                "whatever its price and only the peak objective prices no energy; expected objective.name "
                "'peak' or is_paid_peak_filled false"
            )
        if self.policy_network == "equivariant" and self.algorithm != "ppo":
            raise ValueError(
                f"policy_network 'equivariant' with algorithm {self.algorithm!r}: the equivariant "
                "network is an actor-critic for ppo; use policy_network 'mlp' or algorithm 'ppo'"
            )
        if self.pooling != "mean" and self.policy_network != "equivariant":
            raise ValueError(
                f"pooling {self.pooling!r} with policy_network {self.policy_network!r}: pooling is the "
                "equivariant network's; use policy_network 'equivariant' or pooling 'mean'"
            )
        if self.imitation_days and self.algorithm != "ppo":
            raise ValueError(
                f"imitation_days {self.imitation_days} with algorithm {self.algorithm!r}: imitation "
                "pretrains PPO's actor; use algorithm 'ppo' or imitation_days 0"
            )
        if self.init_model is not None and (self.algorithm != "ppo" or self.imitation_days):
            raise ValueError(
                f"init_model {str(self.init_model)!r} with algorithm {self.algorithm!r} and imitation_days "
                f"{self.imitation_days}: a run starts from a trained PPO model or imitates, not both; "
                "expected algorithm 'ppo' and imitation_days 0"
            )
        if self.value_warmup_timesteps and not (self.algorithm == "ppo" and self.starts_trained):
            raise ValueError(
                f"value_warmup_timesteps {self.value_warmup_timesteps}: warms PPO's critic up under a "
                "trained actor; expected algorithm 'ppo' with imitation_days or init_model, or "
                "value_warmup_timesteps 0"
            )
        if self.dagger_rounds and not self.imitation_days:
            raise ValueError(
                f"dagger_rounds {self.dagger_rounds} with imitation_days 0: DAgger refines an imitated "
                "policy; set imitation_days or dagger_rounds 0"
            )
        if self.billing_period == "month" and self.episode_order != "consecutive":
            raise ValueError(
                "billing_period 'month': a month is a run of consecutive days; expected episode_order "
                f"'consecutive', got {self.episode_order!r}"
            )
        if self.episode_order == "consecutive" and self.pool_size is not None:
            raise ValueError(
                f"pool_size {self.pool_size} with episode_order 'consecutive': a pool draws days at random; "
                "expected pool_size null"
            )
        if self.last_day < self.first_day:
            raise ValueError(f"last_day {self.last_day}: expected on or after first_day {self.first_day}")
        for name, days in (("selection_days", self.selection_days), ("test_days", self.test_days)):
            if days.first_day <= self.last_day and self.first_day <= days.last_day:
                raise ValueError(
                    f"{name} {days.first_day}..{days.last_day}: overlaps the training days "
                    f"{self.first_day}..{self.last_day}; judge on days the agent never trained on"
                )
        return self
