"""The native batched env: ``B`` sites stepped as arrays through the batched physics.

Not ``B`` copies of the single env: every step is one call of :class:`EpisodeBatch` on the whole
batch. Row ``i`` behaves exactly like :class:`~smac_rl_envs.site_env.SiteChargingEnv` reset with
seed ``seed + i`` and given the same actions (tested), so results carry over between the two.
``gym.make_vec("smac_rl/SiteCharging-v0", num_envs=B, vectorization_mode="vector_entry_point")``
builds it.

Sub-envs may use different templates (``templates``, row ``i`` takes ``templates[i % len]``); every
row is padded to ``n_connectors_max`` connectors. Autoreset is same-step: a row whose episode ends
returns the first observation of its next episode, and ``infos["final_obs"]`` /
``infos["final_info"]`` (masked by ``infos["_final_obs"]``) hold what it ended with.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
from gymnasium import spaces
from gymnasium.utils import seeding
from gymnasium.vector import AutoresetMode, VectorEnv

from smac_rl.core.arrays import ScenarioArrays
from smac_rl.core.arraytypes import BoolArray, FloatArray
from smac_rl.core.batch import EpisodeBatch
from smac_rl.core.forecasts import ForecastProvider
from smac_rl.core.observation import OBSERVATION_BOUND, ObservationLayout
from smac_rl.core.specs import ObjectiveSpec, ScenarioSpec
from smac_rl.data.periods import CALTECH_PERIODS
from smac_rl_envs.site_env import DEFAULT_C_MAX
from smac_rl_envs.sources import (
    BillingPeriod,
    EpisodeOrder,
    EpisodeSource,
    MonthlyBilling,
    SessionMode,
    check_billing,
)

INFO_KEYS = (
    "cost_eur",
    "objective_eur",
    "unmet_energy_kwh",
    "grid_import_kw",
    "projected_away_kwh",
    "billing_peak_kw",
)
"""Per-row step values in ``infos`` (as in the single env's info), each ``(B,)``."""


class SiteChargingVectorEnv(VectorEnv[FloatArray, FloatArray, Any]):
    """``num_envs`` charging sites stepped together (module docstring); spaces as the single env's."""

    metadata: dict[str, Any] = {"autoreset_mode": AutoresetMode.SAME_STEP}  # noqa: RUF012

    def __init__(
        self,
        num_envs: int = 1,
        scenario: ScenarioSpec | None = None,
        template: str = "budapest_workplace",
        templates: Sequence[str] | None = None,
        first_day: dt.date = dt.date(2023, 1, 1),
        last_day: dt.date = dt.date(2023, 12, 31),
        n_connectors_max: int = DEFAULT_C_MAX,
        sessions: SessionMode = "generated",
        caltech_period: str = CALTECH_PERIODS[0],
        pool_size: int | None = None,
        forecast: ForecastProvider | None = None,
        objective: ObjectiveSpec | None = None,
        episode_order: EpisodeOrder = "random",
        billing_period: BillingPeriod = "episode",
        deadline_floor_margin_steps: float | None = None,
        is_price_rank_observed: bool = False,
        is_load_outlook_observed: bool = False,
        is_import_cap_acted: bool = False,
        is_min_current_rounded: bool = False,
        is_paid_peak_filled: bool = False,
    ) -> None:
        """Create the batched env.

        Args:
            num_envs: Batch rows ``B``.
            scenario: A fixed scenario for every row and episode; None: draw template days.
            template: Template of every row (when ``templates`` is None).
            templates: Templates by row, cycled (mixed sites in one batch).
            first_day: First local day generated episodes may start on.
            last_day: Last local day generated episodes may start on.
            n_connectors_max: Connectors the observation and action have room for.
            sessions: ``generated`` or ``caltech_replay`` (see the single env).
            caltech_period: Caltech period of replayed days.
            pool_size: Distinct episodes per template to draw from (built on first use, shared by
                the rows); None: a fresh day at every reset.
            forecast: Source of the observation's price outlook; None: the true prices.
            objective: The objective of drawn days (rewards follow it); None: ``cost``.
            episode_order: ``random`` days, or ``consecutive`` days in calendar order, each row
                walking its own calendar from ``first_day`` (see the single env).
            billing_period: ``episode`` or ``month`` (each row's demand charge billed on its
                month's running peak, as in the single env; ``infos["billing_peak_kw"]``).
            deadline_floor_margin_steps: With a value, every connector's setpoint is raised to the
                least power that keeps its session's energy deliverable with this many steps to
                spare (:func:`smac_rl.core.observation.deadline_floor_kw`); None: no floor.
            is_price_rank_observed: The site features add the price ranks
                (:data:`smac_rl.core.observation.PRICE_OUTLOOK_FEATURES`).
            is_load_outlook_observed: The site features add the net-load outlook
                (:data:`smac_rl.core.observation.LOAD_OUTLOOK_FEATURES`).
            is_import_cap_acted: The action ends with the site's import cap
                (:func:`smac_rl.core.observation.import_cap_kw`).
            is_min_current_rounded: Charging asks below the minimum current are rounded to 0 or the
                minimum (:func:`smac_rl.core.observation.round_to_minimum_current`).
            is_paid_peak_filled: The import cap is never below the episode's highest import so far,
                and charging is raised up to it (:func:`smac_rl.core.observation.fill_to_paid_peak`).

        Raises:
            ValueError: For ``num_envs`` below 1, an empty ``templates``, or a monthly billing period
                without consecutive drawn days.
        """
        if num_envs < 1:
            raise ValueError(f"num_envs: got {num_envs}; expected at least 1")
        names = [template] if templates is None else list(templates)
        if not names:
            raise ValueError("templates: got an empty list; expected at least one template name")
        self.num_envs = num_envs
        self.layout = ObservationLayout(
            n_connectors_max,
            deadline_floor_margin_steps,
            is_price_rank_observed,
            is_load_outlook_observed,
            is_import_cap_acted,
            is_min_current_rounded,
            is_paid_peak_filled,
        )
        self.forecast = forecast
        check_billing(billing_period, episode_order, scenario is not None)

        def source(name: str) -> EpisodeSource:
            return EpisodeSource(
                scenario,
                name,
                first_day,
                last_day,
                sessions,
                caltech_period,
                pool_size,
                objective,
                episode_order,
            )

        if episode_order == "consecutive":  # each row walks its own calendar
            self.sources = [source(names[i % len(names)]) for i in range(num_envs)]
        else:
            by_name = {name: source(name) for name in dict.fromkeys(names)}
            self.sources = [by_name[names[i % len(names)]] for i in range(num_envs)]
        self._billing = [MonthlyBilling() for _ in range(num_envs)] if billing_period == "month" else None
        self.single_observation_space = spaces.Box(
            -OBSERVATION_BOUND, OBSERVATION_BOUND, (self.layout.size,), np.float64
        )
        self.single_action_space = spaces.Box(-1.0, 1.0, (self.layout.action_size,), np.float64)
        self.observation_space = spaces.Box(
            -OBSERVATION_BOUND, OBSERVATION_BOUND, (num_envs, self.layout.size), np.float64
        )
        self.action_space = spaces.Box(-1.0, 1.0, (num_envs, self.layout.action_size), np.float64)
        self._rngs = [seeding.np_random(None)[0] for _ in range(num_envs)]
        self._batch: EpisodeBatch | None = None

    @property
    def batch(self) -> EpisodeBatch:
        """The engine holding every row's episode.

        Raises:
            RuntimeError: Before the first reset.
        """
        if self._batch is None:
            raise RuntimeError("SiteChargingVectorEnv: call reset() before step()")
        return self._batch

    def reset(
        self, *, seed: int | list[int | None] | None = None, options: dict[str, Any] | None = None
    ) -> tuple[FloatArray, dict[str, Any]]:
        """Start a new episode in every row; row ``i`` is seeded with ``seed + i``.

        Args:
            seed: One seed (rows get ``seed + i``), one per row, or None (rows keep their generators).
            options: Unused.

        Returns:
            The first observations ``(B, n)`` and infos with each row's scenario name.
        """
        if isinstance(seed, int):
            seeds: list[int | None] = [seed + i for i in range(self.num_envs)]
        elif seed is None:
            seeds = [None] * self.num_envs
        else:
            if len(seed) != self.num_envs:
                raise ValueError(f"seed: got {len(seed)} seeds; expected one per row ({self.num_envs})")
            seeds = list(seed)
        for i, row_seed in enumerate(seeds):
            if row_seed is not None:
                self._rngs[i] = seeding.np_random(row_seed)[0]
                self.sources[i].restart()
                if self._billing is not None:
                    self._billing[i].restart()
        self._load_rows(range(self.num_envs))
        observation = self.batch.observe(self.layout)
        return observation, {"scenario": np.asarray(self.batch.names, dtype=object)}

    def step(self, actions: FloatArray) -> tuple[FloatArray, Any, BoolArray, BoolArray, dict[str, Any]]:
        """Step every row; rows whose episode ends are reset in the same step.

        Args:
            actions: ``(B, layout.action_size)`` in ``[-1, 1]`` (``n_connectors_max + 1``, one more with
                the import cap).

        Returns:
            Observations, rewards (minus the step objective [EUR]), terminations, truncations, infos.
        """
        batch = self.batch
        requested = self.layout.setpoints(batch.context(), np.asarray(actions, dtype=np.float64))
        result = batch.step(requested)
        terminated = result.is_last_step.copy()
        infos: dict[str, Any] = {
            "cost_eur": result.cost_eur,
            "objective_eur": result.objective_eur,
            "unmet_energy_kwh": result.unmet_energy_kwh,
            "grid_import_kw": result.outcome.grid_import_kw,
            "projected_away_kwh": result.projected_away_kwh,
            "billing_peak_kw": np.maximum(batch.peak_seen_kw, batch.site.billing_peak_start_kw),
        }
        for key in INFO_KEYS:
            infos[f"_{key}"] = np.ones(self.num_envs, dtype=np.bool_)
        if terminated.any():
            done = np.flatnonzero(terminated)
            final_info = {key: infos[key].copy() for key in INFO_KEYS}
            infos["final_obs"] = np.zeros((self.num_envs, self.layout.size))
            infos["_final_obs"] = terminated.copy()
            infos["final_info"] = final_info
            infos["_final_info"] = terminated.copy()
            if self._billing is not None:
                for row in done.tolist():
                    self._billing[row].record(float(infos["billing_peak_kw"][row]))
            self._load_rows(done.tolist())
        observation = batch.observe(self.layout)
        truncated = np.zeros(self.num_envs, dtype=np.bool_)
        return observation, -result.objective_eur, terminated, truncated, infos

    def _load_rows(self, rows: Iterable[int]) -> None:
        """Draw the next episode of each row (in row order, from its own generator) and load them.

        One batch call per distinct scenario: a fixed scenario or a pool loads many rows at once.
        """
        by_scenario: dict[int, tuple[ScenarioArrays, list[int]]] = {}
        for row in rows:
            arrays = self.sources[row].draw(self._rngs[row])
            if self._billing is not None:
                arrays = self._billing[row].begin(arrays, self.sources[row].last_day)
            by_scenario.setdefault(id(arrays), (arrays, []))[1].append(row)
        for arrays, scenario_rows in by_scenario.values():
            if self._batch is None:
                self._batch = EpisodeBatch(
                    self.num_envs,
                    self.layout.n_connectors_max,
                    arrays.step_h,
                    self.forecast,
                    self.layout.calendar_flags,
                )
            self._batch.load_rows(scenario_rows, arrays)
