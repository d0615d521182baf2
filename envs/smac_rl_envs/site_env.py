"""The single-site Gymnasium environment on the core physics."""

from __future__ import annotations

import datetime as dt
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from smac_rl.core.arrays import ScenarioArrays
from smac_rl.core.arraytypes import FloatArray
from smac_rl.core.batch import EpisodeBatch
from smac_rl.core.forecasts import ForecastProvider
from smac_rl.core.observation import (
    CONNECTOR_FEATURES,
    LOAD_OUTLOOK_FEATURES,
    OBSERVATION_BOUND,
    PRICE_OUTLOOK_FEATURES,
    SITE_FEATURES,
    ObservationLayout,
)
from smac_rl.core.specs import ObjectiveSpec, ScenarioSpec
from smac_rl.data.periods import CALTECH_PERIODS
from smac_rl_envs.sources import (
    BillingPeriod,
    EpisodeOrder,
    EpisodeSource,
    MonthlyBilling,
    SessionMode,
    check_billing,
)

DEFAULT_C_MAX = 16


def _feature_table() -> str:
    rows = [f"    | {f.name} | {f.unit} | {f.description} |" for f in SITE_FEATURES]
    rows += [
        f"    | {f.name} (with is_price_rank_observed) | {f.unit} | {f.description} |"
        for f in PRICE_OUTLOOK_FEATURES
    ]
    rows += [
        f"    | {f.name} (with is_load_outlook_observed) | {f.unit} | {f.description} |"
        for f in LOAD_OUTLOOK_FEATURES
    ]
    rows += [f"    | cNN.{f.name} | {f.unit} | {f.description} |" for f in CONNECTOR_FEATURES]
    return "\n".join(rows)


class SiteChargingEnv(gym.Env[FloatArray, FloatArray]):
    """One charging site over one episode of its scenario's time grid.

        Each episode is a scenario: a fixed one (``scenario=``), or a day of a pilot template
        (``template=``) drawn with a seed from the env's generator: generated ElaadNL sessions on a
        day from ``first_day`` to ``last_day``, or (``sessions="caltech_replay"``) the real sessions
        of a Caltech day of ``caltech_period``. ``reset(seed=s)`` always gives the same episode. The
        steps run on :class:`smac_rl.core.batch.EpisodeBatch` with one row, the engine of the
        batched env (:mod:`smac_rl_envs.vector_env`), so both give identical trajectories.

        ## Observation space
        ``Box(-1e6, 1e6, (n,))`` with the layout of :mod:`smac_rl.core.observation`: site features,
        then ``n_connectors_max`` connector blocks (zeros where no connector or no EV):

        | name | unit | meaning |
        |---|---|---|
    {features}

        ## Action space
        ``Box(-1, 1, (n_connectors_max + 1,))`` (one more with the import cap): per connector then
        storage, the share of the step's charging (``> 0``) or discharging (``< 0``) bound; the safety
        projection applies every other limit, and
        ``info["projected_away_kwh"]`` says how much it removed. With ``is_import_cap_acted`` one more
        value, the site's import cap, ``(a + 1) / 2`` of the step's import limit: charging asked above
        it is withheld, the least urgent sessions' first, the deadline floor kept.

        ## Reward
        Minus the step's share of the scenario's objective [EUR] (``objective.name``, ``cost`` by
        default; :mod:`smac_rl.core.objectives`): for ``cost``, energy cost, degradation, the growth
        of the demand charge, and the unmet-energy penalty of sessions leaving at this step (at the
        last step, of those still plugged in, by the scorer's rule). Over an episode the rewards sum
        to minus the scorer's ``objective_eur``; ``info["cost_eur"]`` sums to its ``total_cost_eur``.

        ## Episode end
        Terminated after the last step of the time grid.
    """

    metadata: dict[str, Any] = {"render_modes": []}  # noqa: RUF012

    def __init__(
        self,
        scenario: ScenarioSpec | None = None,
        template: str = "budapest_workplace",
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
        """Create the env.

        Args:
            scenario: A fixed scenario for every episode; None: draw days of ``template``.
            template: Pilot template name or YAML file for drawn days.
            first_day: First local day generated episodes may start on.
            last_day: Last local day generated episodes may start on.
            n_connectors_max: Connectors the observation and action have room for.
            sessions: ``generated`` (ElaadNL-sampled) or ``caltech_replay`` (real days of ``caltech_period``).
            caltech_period: Caltech period of replayed days.
            pool_size: Distinct episodes to draw from (built on first use); None: a fresh day each reset.
            forecast: Source of the observation's price outlook (:mod:`smac_rl.core.forecasts`); None:
                the true prices.
            objective: The objective of drawn days (rewards follow it); None: ``cost``.
            episode_order: ``random`` days, or ``consecutive`` days in calendar order (a seeded reset
                starts again from ``first_day``).
            billing_period: ``episode`` (every episode bills its own peak) or ``month`` (the demand
                charge is billed over a calendar month of consecutive episodes: each episode starts
                from the highest import of the month's earlier episodes and pays only for raising it;
                ``info["billing_peak_kw"]`` is that running peak).
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
            ValueError: When the fixed scenario has more connectors than ``n_connectors_max``, or a
                monthly billing period is asked without consecutive drawn days.
        """
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
        self.billing_period = billing_period
        self.source = EpisodeSource(
            scenario,
            template,
            first_day,
            last_day,
            sessions,
            caltech_period,
            pool_size,
            objective,
            episode_order,
        )
        fixed = self.source.fixed
        if fixed is not None and fixed.site.n_connectors > n_connectors_max:
            raise ValueError(
                f"n_connectors_max: got {n_connectors_max}; "
                f"expected at least the site's {fixed.site.n_connectors} connectors"
            )
        self.observation_space = spaces.Box(
            -OBSERVATION_BOUND, OBSERVATION_BOUND, (self.layout.size,), np.float64
        )
        self.action_space = spaces.Box(-1.0, 1.0, (self.layout.action_size,), np.float64)
        self.arrays: ScenarioArrays | None = None
        self._batch: EpisodeBatch | None = None
        self._billing = MonthlyBilling() if billing_period == "month" else None

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[FloatArray, dict[str, Any]]:
        """Start an episode (a new drawn day unless the scenario is fixed)."""
        super().reset(seed=seed)
        if seed is not None:
            self.source.restart()
            if self._billing is not None:
                self._billing.restart()
        arrays = self.source.draw(self.np_random)
        if self._billing is not None:
            arrays = self._billing.begin(arrays, self.source.last_day)
        if self._batch is None or abs(self._batch.step_h - arrays.step_h) > 1e-12:
            self._batch = EpisodeBatch(
                1,
                self.layout.n_connectors_max,
                arrays.step_h,
                self.forecast,
                self.layout.calendar_flags,
            )
        self._batch.load(0, arrays)
        self.arrays = arrays
        observation: FloatArray = self._batch.observe(self.layout)[0]
        info = {"scenario": arrays.name, "billing_peak_kw": arrays.site.billing_peak_start_kw}
        return observation, info

    def step(self, action: FloatArray) -> tuple[FloatArray, float, bool, bool, dict[str, Any]]:
        """Apply one step of actions."""
        if self._batch is None or self.arrays is None:
            raise RuntimeError("SiteChargingEnv: call reset() before step()")
        batch = self._batch
        requested = self.layout.setpoints(batch.context(), np.asarray(action, dtype=np.float64)[None, :])
        result = batch.step(requested)
        terminated = bool(result.is_last_step[0])
        billing_peak_kw = max(float(batch.peak_seen_kw[0]), self.arrays.site.billing_peak_start_kw)
        if self._billing is not None and terminated:
            self._billing.record(billing_peak_kw)
        info = {
            "cost_eur": float(result.cost_eur[0]),
            "objective_eur": float(result.objective_eur[0]),
            "unmet_energy_kwh": float(result.unmet_energy_kwh[0]),
            "grid_import_kw": float(result.outcome.grid_import_kw[0]),
            "projected_away_kwh": float(result.projected_away_kwh[0]),
            "applied_ev_power_kw": result.applied.ev_power_kw[0, : self.arrays.site.n_connectors].copy(),
            "applied_storage_power_kw": float(result.applied.storage_power_kw[0]),
            "billing_peak_kw": billing_peak_kw,
        }
        observation = np.zeros(self.layout.size) if terminated else batch.observe(self.layout)[0]
        return observation, -float(result.objective_eur[0]), terminated, False, info


SiteChargingEnv.__doc__ = (SiteChargingEnv.__doc__ or "").replace("{features}", _feature_table())
