"""The single-site Gymnasium environment on the core physics."""

from __future__ import annotations

import datetime as dt
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from smac_rl.core.arrays import ScenarioArrays, compile_scenario
from smac_rl.core.arraytypes import FloatArray, IntArray
from smac_rl.core.observation import CONNECTOR_FEATURES, OBSERVATION_BOUND, SITE_FEATURES, ObservationLayout
from smac_rl.core.physics import physics_step
from smac_rl.core.projection import project
from smac_rl.core.specs import ScenarioSpec
from smac_rl.core.state import context_at
from smac_rl.data.generator import generate_scenario
from smac_rl.data.template_spec import load_template

DEFAULT_C_MAX = 16


def _feature_table() -> str:
    rows = [f"    | {f.name} | {f.unit} | {f.description} |" for f in SITE_FEATURES]
    rows += [f"    | cNN.{f.name} | {f.unit} | {f.description} |" for f in CONNECTOR_FEATURES]
    return "\n".join(rows)


class SiteChargingEnv(gym.Env[FloatArray, FloatArray]):
    """One charging site over one episode of its scenario's time grid.

        Each episode is a scenario: a fixed one (``scenario=``), or a day generated from a pilot
        template (``template=``, a day drawn from ``first_day`` to ``last_day`` and a seed from the
        env's generator), so ``reset(seed=s)`` always gives the same episode.

        ## Observation space
        ``Box(-1e6, 1e6, (n,))`` with the layout of :mod:`smac_rl.core.observation`: site features,
        then ``n_connectors_max`` connector blocks (zeros where no connector or no EV):

        | name | unit | meaning |
        |---|---|---|
    {features}

        ## Action space
        ``Box(-1, 1, (n_connectors_max + 1,))``: per connector then storage, the share of the step's charging
        (``> 0``) or discharging (``< 0``) bound; the safety projection applies every other limit, and
        ``info["projected_away_kwh"]`` says how much it removed.

        ## Reward
        Minus the step's cost [EUR]: energy cost, degradation, the growth of the demand charge, and the
        unmet-energy penalty of sessions leaving at this step (at the last step, of those still
        plugged in, by the scorer's rule). Over an episode the rewards sum to minus the scorer's
        ``total_cost_eur``.

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
    ) -> None:
        """Create the env.

        Args:
            scenario: A fixed scenario for every episode; None: generate from ``template``.
            template: Pilot template name or YAML file for generated episodes.
            first_day: First local day generated episodes may start on.
            last_day: Last local day generated episodes may start on.
            n_connectors_max: Connectors the observation and action have room for.
        """
        self.layout = ObservationLayout(n_connectors_max)
        self._fixed = None if scenario is None else compile_scenario(scenario)
        self._template = load_template(template)
        self._first_day, self._n_days = first_day, (last_day - first_day).days + 1
        if self._fixed is not None and self._fixed.site.n_connectors > n_connectors_max:
            raise ValueError(
                f"n_connectors_max: got {n_connectors_max}; "
                f"expected at least the site's {self._fixed.site.n_connectors} connectors"
            )
        self.observation_space = spaces.Box(
            -OBSERVATION_BOUND, OBSERVATION_BOUND, (self.layout.size,), np.float64
        )
        self.action_space = spaces.Box(-1.0, 1.0, (self.layout.action_size,), np.float64)
        self.arrays: ScenarioArrays | None = None

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[FloatArray, dict[str, Any]]:
        """Start an episode (a new generated day unless the scenario is fixed)."""
        super().reset(seed=seed)
        arrays = self._fixed if self._fixed is not None else self._generated_day()
        self.arrays = arrays
        self._t = 0
        self._session_energy = arrays.sessions.arrival_energy_kwh.copy()[None, :]
        self._storage_energy = np.asarray([arrays.site.storage_initial_energy_kwh])
        self._peak_seen_kw = np.zeros(1)
        self._due = _sessions_due(arrays)
        return self._observe(), {"scenario": arrays.name}

    def step(self, action: FloatArray) -> tuple[FloatArray, float, bool, bool, dict[str, Any]]:
        """Apply one step of actions."""
        arrays = self._episode()
        context = self._context  # built for the observation this action answers
        requested = self.layout.setpoints(context, np.asarray(action, dtype=np.float64)[None, :])
        applied = project(context, requested)
        outcome = physics_step(context, applied)
        present = context.ev.is_present[0]
        self._session_energy[0, context.ev.session_index[0][present]] = outcome.ev_energy_kwh[0][present]
        self._storage_energy = outcome.storage_energy_kwh
        dt_h, site = arrays.step_h, arrays.site
        previous_peak = max(self._peak_seen_kw[0] - site.billing_peak_start_kw, 0.0)
        self._peak_seen_kw = np.maximum(self._peak_seen_kw, outcome.grid_import_kw)
        demand = site.demand_charge_eur_per_kw * (
            max(self._peak_seen_kw[0] - site.billing_peak_start_kw, 0.0) - previous_peak
        )
        degradation = dt_h * (
            site.v2g_degradation_cost_eur_per_kwh * float(np.maximum(-applied.ev_power_kw, 0.0).sum())
            + site.storage_degradation_cost_eur_per_kwh * float(np.abs(applied.storage_power_kw).sum())
        )
        unmet_kwh = self._unmet_due(self._t)
        cost = (
            float(outcome.energy_cost_eur[0])
            + degradation
            + demand
            + arrays.unmet_energy_penalty_eur_per_kwh * unmet_kwh
        )
        self._t += 1
        terminated = self._t >= arrays.n_steps
        removed = float(
            np.abs(requested.ev_power_kw - applied.ev_power_kw).sum()
            + np.abs(requested.storage_power_kw - applied.storage_power_kw).sum()
        )
        info = {
            "cost_eur": cost,
            "unmet_energy_kwh": unmet_kwh,
            "grid_import_kw": float(outcome.grid_import_kw[0]),
            "projected_away_kwh": removed * dt_h,
            "applied_ev_power_kw": applied.ev_power_kw[0].copy(),
            "applied_storage_power_kw": float(applied.storage_power_kw[0]),
        }
        observation = self._observe() if not terminated else np.zeros(self.layout.size)
        return observation, -cost, terminated, False, info

    def _generated_day(self) -> ScenarioArrays:
        day = self._first_day + dt.timedelta(days=int(self.np_random.integers(self._n_days)))
        spec, _ = generate_scenario(self._template, day, 1, seed=int(self.np_random.integers(2**31)))
        arrays = compile_scenario(spec)
        if arrays.site.n_connectors > self.layout.n_connectors_max:
            raise ValueError(
                f"n_connectors_max: got {self.layout.n_connectors_max}; "
                f"expected at least the template's {arrays.site.n_connectors} connectors"
            )
        return arrays

    def _peak_so_far(self) -> FloatArray:
        return np.maximum(self._peak_seen_kw, self._episode().site.billing_peak_start_kw)

    def _episode(self) -> ScenarioArrays:
        if self.arrays is None:
            raise RuntimeError("SiteChargingEnv: call reset() before step()")
        return self.arrays

    def _observe(self) -> FloatArray:
        arrays = self._episode()
        t = min(self._t, arrays.n_steps - 1)
        self._context = context_at(arrays, t, self._session_energy, self._storage_energy, self._peak_so_far())
        observation: FloatArray = self.layout.observe(arrays, self._context)[0]
        return observation

    def _unmet_due(self, step: int) -> float:
        arrays = self._episode()
        sessions = arrays.sessions
        due = self._due[step]
        energy = self._session_energy[0, due]
        unmet = np.maximum(sessions.target_energy_kwh[due] - energy, 0.0)
        if step == arrays.n_steps - 1:
            still = np.flatnonzero(sessions.end_step > arrays.n_steps)
            steps_left = sessions.end_step[still] - arrays.n_steps
            possible = (
                sessions.max_charge_kw[still]
                * sessions.charge_efficiency_frac[still]
                * arrays.step_h
                * steps_left
            )
            unmet_open = np.maximum(
                sessions.target_energy_kwh[still] - self._session_energy[0, still] - possible, 0.0
            )
            return float(unmet.sum() + unmet_open.sum())
        return float(unmet.sum())


SiteChargingEnv.__doc__ = (SiteChargingEnv.__doc__ or "").replace("{features}", _feature_table())


def _sessions_due(arrays: ScenarioArrays) -> list[IntArray]:
    """Sessions whose departure is settled after each step (those leaving within the horizon)."""
    end = arrays.sessions.end_step
    settle = np.clip(end, 1, arrays.n_steps) - 1
    within = end <= arrays.n_steps
    return [np.flatnonzero(within & (settle == t)) for t in range(arrays.n_steps)]
