"""Episodes of ``B`` sites stepped together as arrays: the engine of the single and the batched env.

Each batch row holds one episode of one scenario, padded to ``C`` connectors, ``S`` sessions and
``T`` steps; rows may come from different sites and days and are replaced one at a time
(:meth:`EpisodeBatch.load`), so a vector env can reset a finished row while the others go on.
Every step goes through the one projection and the one physics step on the whole batch at once.

The step cost is the scorer's ``total_cost_eur`` split over the steps (so an episode's costs sum
to it): energy cost, degradation, the growth of the demand charge, and the unmet-energy penalty of
the sessions settled at this step (those leaving at its end; at the episode's last step also
those still plugged in, by the scorer's rule for them). The step objective splits the scenario's
``objective_eur`` the same way (:mod:`smac_rl.core.objectives`: the same terms weighted, plus the
growth of the peak, the step's limit violation and its setpoint deviation); rewards are minus it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from smac_rl.core.arrays import BatchSiteArrays, ScenarioArrays, SiteArrays, SiteParams
from smac_rl.core.arraytypes import BoolArray, FloatArray, IntArray
from smac_rl.core.forecasts import ForecastProvider
from smac_rl.core.objectives import OBJECTIVE_TERMS
from smac_rl.core.observation import N_CALENDAR_FEATURES, ObservationLayout, calendar_table
from smac_rl.core.physics import StepOutcome, physics_step
from smac_rl.core.projection import project
from smac_rl.core.state import EvView, ExogenousStep, Setpoints, StepContext

_SESSION_FIELDS = {
    # name: padding value for sessions that do not exist
    "capacity_kwh": 1.0,
    "arrival_energy_kwh": 0.0,
    "target_energy_kwh": 0.0,
    "floor_energy_kwh": 0.0,
    "max_charge_kw": 0.0,
    "ev_max_power_kw": 0.0,
    "max_discharge_kw": 0.0,
    "charge_efficiency_frac": 1.0,
    "discharge_efficiency_frac": 1.0,
    "taper_start_soc_frac": 1.0,
}
_SESSION_PADDING = np.asarray(list(_SESSION_FIELDS.values()))
_FIELD_INDEX = {name: k for k, name in enumerate(_SESSION_FIELDS)}
_SERIES_FIELDS = (
    "grid_setpoint_kw",
    "base_load_kw",
    "pv_available_kw",
    "import_limit_kw",
    "export_limit_kw",
    "import_price_eur_per_kwh",
    "export_price_eur_per_kwh",
)


CALENDAR_CACHE_SIZE = 4096
"""Scenarios whose calendar features a batch keeps (each holds its scenario alive)."""


@dataclass(frozen=True)
class BatchStep:
    """What one batched step did, ``(B,)`` arrays unless stated.

    Attributes:
        requested: Setpoints asked for (after action scaling, before the projection).
        applied: Setpoints after the projection.
        outcome: The physics step's outcome.
        cost_eur: The step's share of ``total_cost_eur`` [EUR].
        objective_eur: The step's share of the scenario's ``objective_eur`` [EUR].
        unmet_energy_kwh: Unmet energy of the sessions settled at this step [kWh].
        projected_away_kwh: Energy the projection removed from the request [kWh].
        is_last_step: The row's episode ended with this step.
    """

    requested: Setpoints
    applied: Setpoints
    outcome: StepOutcome
    cost_eur: FloatArray
    objective_eur: FloatArray
    unmet_energy_kwh: FloatArray
    projected_away_kwh: FloatArray
    is_last_step: BoolArray


class EpisodeBatch:
    """``B`` episodes side by side (module docstring); rows are loaded, then stepped together."""

    _sessions: FloatArray
    _end_step: IntArray
    _settle_step: IntArray
    _occupancy: npt.NDArray[np.int32]
    _series: dict[str, FloatArray]
    _calendar: FloatArray
    session_energy_kwh: FloatArray

    def __init__(
        self, batch_size: int, n_connectors_max: int, step_h: float, forecast: ForecastProvider | None = None
    ) -> None:
        """Allocate an empty batch; every row must be loaded before the first step.

        Args:
            batch_size: Rows ``B``.
            n_connectors_max: Connectors per row ``C``.
            step_h: Step length of every episode [h].
            forecast: Source of the observation's price outlook; None: the true prices.
        """
        self.forecast = forecast
        self.batch_size, self.n_connectors_max, self.step_h = batch_size, n_connectors_max, step_h
        self.site = BatchSiteArrays.empty(batch_size, n_connectors_max)
        self.names: list[str] = [""] * batch_size
        self._row_sites: list[SiteArrays | None] = [None] * batch_size
        self.n_steps: IntArray = np.zeros(batch_size, dtype=np.int64)
        self.step_index: IntArray = np.zeros(batch_size, dtype=np.int64)
        self.penalty_eur_per_kwh: FloatArray = np.zeros(batch_size)
        self.objective_weights: FloatArray = np.zeros((batch_size, len(OBJECTIVE_TERMS)))
        self.storage_energy_kwh: FloatArray = np.zeros(batch_size)
        self.peak_seen_kw: FloatArray = np.zeros(batch_size)
        self._rows = np.arange(batch_size)
        self._loaded = np.zeros(batch_size, dtype=np.bool_)
        self._allocate(n_steps=1, n_sessions=1)
        self._context: StepContext | None = None
        self._calendars: dict[int, tuple[ScenarioArrays, FloatArray]] = {}

    def _allocate(self, n_steps: int, n_sessions: int) -> None:
        """(Re)allocate the per-step and per-session arrays, keeping what rows already hold."""
        b, c = self.batch_size, self.n_connectors_max
        old = getattr(self, "_sessions", None)
        # One slot more than sessions: the last is the neutral EV that absent connectors read.
        sessions = np.broadcast_to(_SESSION_PADDING, (b, n_sessions + 1, len(_SESSION_FIELDS))).copy()
        end = np.zeros((b, n_sessions), dtype=np.int64)
        settle = np.full((b, n_sessions), -1, dtype=np.int64)
        energy = np.zeros((b, n_sessions))
        occupancy = np.full((b, n_steps, c), -1, dtype=np.int32)
        series = {name: np.zeros((b, n_steps)) for name in _SERIES_FIELDS}
        calendar = np.zeros((b, n_steps, N_CALENDAR_FEATURES))
        if old is not None:
            s_old, t_old = self._end_step.shape[1], self._occupancy.shape[1]
            sessions[:, :s_old] = old[:, :s_old]
            end[:, :s_old], settle[:, :s_old] = self._end_step, self._settle_step
            energy[:, :s_old] = self.session_energy_kwh
            occupancy[:, :t_old] = self._occupancy
            for name in _SERIES_FIELDS:
                series[name][:, :t_old] = self._series[name]
            calendar[:, :t_old] = self._calendar
        self._sessions, self._end_step, self._settle_step = sessions, end, settle
        self.session_energy_kwh = energy
        self._occupancy, self._series, self._calendar = occupancy, series, calendar

    def load(self, row: int, arrays: ScenarioArrays) -> None:
        """Put a fresh episode of ``arrays`` into batch row ``row``.

        Raises:
            ValueError: When the scenario's step length differs from the batch's or it has more
                connectors than the batch has room for (nothing is changed then).
        """
        if abs(arrays.step_h - self.step_h) > 1e-12:
            raise ValueError(
                f"step_h: got {arrays.step_h} h in {arrays.name!r}; expected the batch's {self.step_h} h"
            )
        if arrays.site.n_connectors > self.n_connectors_max:
            raise ValueError(
                f"connectors: got {arrays.site.n_connectors} in {arrays.name!r}; "
                f"expected at most n_connectors_max = {self.n_connectors_max}"
            )
        sessions, n_steps, n_sessions = arrays.sessions, arrays.n_steps, arrays.sessions.n_sessions
        if n_steps > self._occupancy.shape[1] or n_sessions > self._end_step.shape[1]:
            self._allocate(
                max(n_steps, self._occupancy.shape[1]), max(n_sessions, self._end_step.shape[1], 1)
            )
        self.site.assign_row(row, arrays.site)
        self._row_sites[row] = arrays.site
        self._sessions[row] = _SESSION_PADDING
        for k, name in enumerate(_SESSION_FIELDS):
            self._sessions[row, :n_sessions, k] = getattr(sessions, name)
        self._end_step[row] = 0
        self._end_step[row, :n_sessions] = sessions.end_step
        self._settle_step[row] = -1
        within = sessions.end_step <= n_steps
        self._settle_step[row, :n_sessions] = np.where(within, np.clip(sessions.end_step, 1, n_steps) - 1, -1)
        self._occupancy[row] = -1
        self._occupancy[row, :n_steps, : arrays.site.n_connectors] = arrays.connector_session_index
        for name in _SERIES_FIELDS:
            self._series[name][row] = 0.0
            self._series[name][row, :n_steps] = getattr(arrays.series, name)
        self._calendar[row] = 0.0
        self._calendar[row, :n_steps] = self._calendar_of(arrays)
        self.names[row] = arrays.name
        self.n_steps[row] = n_steps
        self.penalty_eur_per_kwh[row] = arrays.unmet_energy_penalty_eur_per_kwh
        self.objective_weights[row] = arrays.objective.as_tuple()
        self.step_index[row] = 0
        self.session_energy_kwh[row] = 0.0
        self.session_energy_kwh[row, :n_sessions] = sessions.arrival_energy_kwh
        self.storage_energy_kwh[row] = arrays.site.storage_initial_energy_kwh
        self.peak_seen_kw[row] = 0.0
        self._loaded[row] = True
        self._context = None

    def _calendar_of(self, arrays: ScenarioArrays) -> FloatArray:
        """The scenario's calendar features, cached for scenarios loaded again (pools, fixed scenarios)."""
        key = id(arrays)
        cached = self._calendars.get(key)
        if cached is None or cached[0] is not arrays:
            if len(self._calendars) >= CALENDAR_CACHE_SIZE:
                self._calendars.pop(next(iter(self._calendars)))
            cached = (arrays, calendar_table(arrays, self.forecast))
            self._calendars[key] = cached
        return cached[1]

    def context(self) -> StepContext:
        """The state at the current step of every row (built once per step).

        Raises:
            RuntimeError: When a row has not been loaded or its episode has ended.
        """
        if self._context is not None:
            return self._context
        if not self._loaded.all() or (self.step_index >= self.n_steps).any():
            raise RuntimeError("EpisodeBatch: every row needs a loaded, unfinished episode (load() it)")
        rows, t = self._rows, self.step_index
        index = self._occupancy[rows, t].astype(np.int64)
        present = index >= 0
        safe = np.where(present, index, 0)
        slot = np.where(present, index, self._end_step.shape[1])  # absent: the neutral slot

        row_index = rows[:, None]
        table = self._sessions[row_index, slot]
        column = {name: table[:, :, k] for k, name in enumerate(_SESSION_FIELDS)}
        ev = EvView(
            session_index=index,
            is_present=present,
            energy_kwh=np.where(present, self.session_energy_kwh[row_index, safe], 0.0),
            capacity_kwh=column["capacity_kwh"],
            target_energy_kwh=column["target_energy_kwh"],
            floor_energy_kwh=column["floor_energy_kwh"],
            max_charge_kw=column["max_charge_kw"],
            ev_max_power_kw=column["ev_max_power_kw"],
            max_discharge_kw=column["max_discharge_kw"],
            charge_efficiency_frac=column["charge_efficiency_frac"],
            discharge_efficiency_frac=column["discharge_efficiency_frac"],
            taper_start_soc_frac=column["taper_start_soc_frac"],
            n_steps_to_departure=np.where(present, self._end_step[row_index, safe] - t[:, None], 0),
        )
        exo = ExogenousStep(**{name: self._series[name][rows, t] for name in _SERIES_FIELDS[1:]})
        in_step = bool((t == t[0]).all())
        self._context = StepContext(
            site=self._context_site(),
            ev=ev,
            exo=exo,
            storage_energy_kwh=self.storage_energy_kwh.copy(),
            step_h=self.step_h,
            step_index=int(t[0]) if in_step else -1,
            peak_import_kw=np.maximum(self.peak_seen_kw, self.site.billing_peak_start_kw),
        )
        return self._context

    def _context_site(self) -> SiteParams:
        """The site parameters the contexts carry.

        One unpadded row gets the scenario's own site parameters (what a policy of one scenario
        expects); otherwise the batch's per-row arrays.
        """
        only = self._row_sites[0]
        if self.batch_size == 1 and only is not None and only.n_connectors == self.n_connectors_max:
            return only
        return self.site

    def observe(self, layout: ObservationLayout) -> FloatArray:
        """Raw observations of the current step, ``(B, layout.size)``."""
        calendar = self._calendar[self._rows, self.step_index]
        return layout.observe_rows(self.context(), calendar)

    def step(self, requested: Setpoints) -> BatchStep:
        """Project, apply the physics and advance every row one step.

        Args:
            requested: Setpoints for every row (``(B, C)`` and ``(B,)``).

        Returns:
            What the step did; rows with ``is_last_step`` must be loaded again before the next step.
        """
        context = self.context()
        applied = project(context, requested)
        outcome = physics_step(context, applied)
        ev, site, dt_h, rows = context.ev, self.site, self.step_h, self._rows
        present = ev.is_present
        flat = (ev.session_index + rows[:, None] * self.session_energy_kwh.shape[1])[present]
        self.session_energy_kwh.reshape(-1)[flat] = outcome.ev_energy_kwh[present]
        self.storage_energy_kwh = outcome.storage_energy_kwh
        peak_before = self.peak_seen_kw
        self.peak_seen_kw = np.maximum(self.peak_seen_kw, outcome.grid_import_kw)
        demand = site.demand_charge_eur_per_kw * (
            np.maximum(self.peak_seen_kw - site.billing_peak_start_kw, 0.0)
            - np.maximum(peak_before - site.billing_peak_start_kw, 0.0)
        )
        degradation = dt_h * (
            site.v2g_degradation_cost_eur_per_kwh * np.maximum(-applied.ev_power_kw, 0.0).sum(axis=1)
            + site.storage_degradation_cost_eur_per_kwh * np.abs(applied.storage_power_kw)
        )
        is_last = self.step_index == self.n_steps - 1
        unmet = self._unmet_settled_kwh(is_last)
        unmet_cost = self.penalty_eur_per_kwh * unmet
        cost = outcome.energy_cost_eur + demand + degradation + unmet_cost
        setpoint = self._series["grid_setpoint_kw"][rows, self.step_index]
        terms = (
            outcome.energy_cost_eur,
            demand,
            degradation,
            unmet_cost,
            self.peak_seen_kw - peak_before,
            dt_h * (outcome.import_violation_kw + outcome.export_violation_kw),
            dt_h * np.abs(outcome.grid_import_kw - outcome.grid_export_kw - setpoint),
        )
        objective = np.zeros(self.batch_size)
        for k, term in enumerate(terms):  # elementwise, in a fixed order: the same sums for any B
            objective = objective + self.objective_weights[:, k] * term
        removed_kw = np.abs(requested.ev_power_kw - applied.ev_power_kw).sum(axis=1) + np.abs(
            requested.storage_power_kw - applied.storage_power_kw
        )
        self.step_index = self.step_index + 1
        self._context = None
        return BatchStep(
            requested=requested,
            applied=applied,
            outcome=outcome,
            cost_eur=cost,
            objective_eur=objective,
            unmet_energy_kwh=unmet,
            projected_away_kwh=removed_kw * dt_h,
            is_last_step=is_last,
        )

    def _unmet_settled_kwh(self, is_last: BoolArray) -> FloatArray:
        """Unmet energy of the sessions settled at the current step, after its physics [kWh], ``(B,)``."""
        energy = self.session_energy_kwh
        target = self._sessions[:, :-1, _FIELD_INDEX["target_energy_kwh"]]
        short = np.maximum(target - energy, 0.0)
        settled = self._settle_step == self.step_index[:, None]
        unmet = np.where(settled, short, 0.0).sum(axis=1)
        if is_last.any():
            steps_left = self._end_step - self.n_steps[:, None]
            still_open = (steps_left > 0) & is_last[:, None]
            rate_kw = (
                self._sessions[:, :-1, _FIELD_INDEX["max_charge_kw"]]
                * self._sessions[:, :-1, _FIELD_INDEX["charge_efficiency_frac"]]
            )
            open_short = np.maximum(target - energy - rate_kw * self.step_h * steps_left, 0.0)
            unmet = unmet + np.where(still_open, open_short, 0.0).sum(axis=1)
        result: FloatArray = unmet
        return result
