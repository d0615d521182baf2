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

Speed (the engine of every env step, so it avoids per-step work that is the same every step):
a scenario is laid out once as a row holds it (cached per scenario, so pools and fixed scenarios
load with a few slice copies, and many rows at once with :meth:`EpisodeBatch.load_rows`); the EV
view of a step is the last step's view with only the connectors whose session changed gathered
again; settled sessions are picked out and summed per row instead of masking every session.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from smac_rl.core.arrays import BatchSiteArrays, ScenarioArrays, SiteArrays, SiteParams
from smac_rl.core.arraytypes import BoolArray, FloatArray, IntArray
from smac_rl.core.forecasts import ForecastProvider
from smac_rl.core.objectives import OBJECTIVE_TERMS
from smac_rl.core.observation import ObservationLayout, calendar_table, calendar_width
from smac_rl.core.physics import StepOutcome, physics_step
from smac_rl.core.projection import project
from smac_rl.core.state import (
    EvView,
    ExogenousStep,
    Setpoints,
    StepContext,
    is_all,
    is_any,
    nonzero_flat,
    zeros_of,
)

_SESSION_FIELDS = {
    # name: value of the neutral EV that connectors without a session read
    "capacity_kwh": 1.0,
    "target_energy_kwh": 0.0,
    "floor_energy_kwh": 0.0,
    "max_charge_kw": 0.0,
    "ev_max_power_kw": 0.0,
    "max_discharge_kw": 0.0,
    "charge_efficiency_frac": 1.0,
    "discharge_efficiency_frac": 1.0,
    "taper_start_soc_frac": 1.0,
    "min_charge_kw": 0.0,
    "end_step": 0.0,  # as a float (exact), so that one gather reads every field
}
_NEUTRAL = np.asarray(list(_SESSION_FIELDS.values()))[:, None, None]
_FIELD_INDEX = {name: k for k, name in enumerate(_SESSION_FIELDS)}
_SERIES_FIELDS = (
    # grid_setpoint_kw first, then the fields of ExogenousStep in their order
    "grid_setpoint_kw",
    "base_load_kw",
    "pv_available_kw",
    "import_limit_kw",
    "export_limit_kw",
    "import_price_eur_per_kwh",
    "export_price_eur_per_kwh",
)
_SITE_FIELDS = tuple(SiteArrays.__dataclass_fields__)
_SITE_PADDING = {"connector_taper_start_soc_frac": 1.0}
"""Padding of per-connector site fields other than 0."""


@dataclass(frozen=True)
class _Prepared:
    """One scenario laid out as a batch row holds it, computed once per scenario (cached).

    Session slot 0 of every row is the neutral EV that connectors without a session read; the
    scenario's sessions follow from slot 1 (``occupancy`` holds session indices, -1 for none, so
    ``1 + occupancy`` is the slot). Occupancy is read from the scenario itself.
    """

    session_values: FloatArray  # (F, S + 1): the session fields in _SESSION_FIELDS order, slot 0 neutral
    end_step: IntArray  # (S + 1,): slot 0 is 0
    settle_step: IntArray  # (S + 1,): step whose cost settles the session, -1 for none
    arrival_energy_kwh: FloatArray  # (S + 1,): slot 0 is 0
    series_values: FloatArray  # (len(_SERIES_FIELDS), T), in _SERIES_FIELDS order
    calendar_values: FloatArray  # (T, calendar_width(*calendar_flags))


CALENDAR_CACHE_SIZE = 4096
"""Scenarios whose row layout, calendar features included, a batch keeps (each holds its scenario
alive)."""


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
    """``B`` episodes side by side (module docstring); rows are loaded, then stepped together.

    Layout: every row holds its sessions from slot 1 of the per-session arrays (slot 0 is the
    neutral EV that connectors without a session read), so one ``take`` with the flat index
    ``row * (S + 1) + 1 + session`` gathers the step's EV view, absent connectors included.
    """

    _table: FloatArray
    _end_step: IntArray
    _settle_step: IntArray
    _energy: FloatArray
    _occupancy: npt.NDArray[np.int32]
    _series: FloatArray
    _calendar: FloatArray
    _row_base: IntArray
    session_energy_kwh: FloatArray

    def __init__(
        self,
        batch_size: int,
        n_connectors_max: int,
        step_h: float,
        forecast: ForecastProvider | None = None,
        calendar_flags: tuple[bool, bool] = (False, False),
    ) -> None:
        """Allocate an empty batch; every row must be loaded before the first step.

        Args:
            batch_size: Rows ``B``.
            n_connectors_max: Connectors per row ``C``.
            step_h: Step length of every episode [h].
            forecast: Source of the observation's price outlook; None: the true prices.
            calendar_flags: :attr:`ObservationLayout.calendar_flags` of the layout that observes the
                batch: which outlook features the calendar keeps.
        """
        self.forecast = forecast
        self.calendar_flags = calendar_flags
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
        self._is_ready = False  # every row loaded and unfinished (checked again when not)
        self._allocate(n_steps=1, n_sessions=1)
        self._context: StepContext | None = None
        # The EV view of the last context, patched where sessions change (see context()).
        self._view_slot: IntArray | None = None
        self._view_fields: FloatArray | None = None
        self._next_energy_kwh: FloatArray | None = None
        # The current context's flat session slot per connector and grid setpoint, for step().
        self._flat_slot: IntArray = np.zeros((batch_size, n_connectors_max), dtype=np.int64)
        self._setpoint_kw: FloatArray = np.zeros(batch_size)
        self._prepared: dict[int, tuple[ScenarioArrays, _Prepared]] = {}

    def _allocate(self, n_steps: int, n_sessions: int) -> None:
        """(Re)allocate the per-step and per-session arrays, keeping what rows already hold."""
        b, c, slots = self.batch_size, self.n_connectors_max, n_sessions + 1
        old = getattr(self, "_table", None)
        table = np.empty((len(_SESSION_FIELDS), b, slots))
        table[...] = _NEUTRAL
        end = np.zeros((b, slots), dtype=np.int64)
        settle = np.full((b, slots), -1, dtype=np.int64)
        energy = np.zeros((b, slots))
        occupancy = np.full((b, n_steps, c), -1, dtype=np.int32)
        series = np.zeros((len(_SERIES_FIELDS), b, n_steps))
        calendar = np.zeros((b, n_steps, calendar_width(*self.calendar_flags)))
        if old is not None:
            s_old, t_old = self._end_step.shape[1], self._occupancy.shape[1]
            table[:, :, :s_old] = old
            end[:, :s_old], settle[:, :s_old] = self._end_step, self._settle_step
            energy[:, :s_old] = self._energy
            occupancy[:, :t_old] = self._occupancy
            series[:, :, :t_old] = self._series
            calendar[:, :t_old] = self._calendar
        self._table, self._end_step, self._settle_step = table, end, settle
        self._energy = energy
        self.session_energy_kwh = energy[:, 1:]
        self._occupancy, self._series, self._calendar = occupancy, series, calendar
        self._row_base = (self._rows * slots + 1)[:, None]
        self._context = None
        self._view_slot = None  # slots moved: the next context gathers every field afresh

    def load(self, row: int, arrays: ScenarioArrays) -> None:
        """Put a fresh episode of ``arrays`` into batch row ``row``.

        Raises:
            ValueError: When the scenario's step length differs from the batch's or it has more
                connectors than the batch has room for (nothing is changed then).
        """
        self.load_rows([row], arrays)

    def load_rows(self, rows: Sequence[int] | IntArray, arrays: ScenarioArrays) -> None:
        """Put a fresh episode of ``arrays`` into each of the batch rows ``rows`` (one call for many).

        Raises:
            ValueError: When the scenario's step length differs from the batch's or it has more
                connectors than the batch has room for (nothing is changed then).
        """
        if abs(arrays.step_h - self.step_h) > 1e-12:
            raise ValueError(
                f"step_h: got {arrays.step_h} h in {arrays.name!r}; expected the batch's {self.step_h} h"
            )
        n_connectors = arrays.site.n_connectors
        if n_connectors > self.n_connectors_max:
            raise ValueError(
                f"connectors: got {n_connectors} in {arrays.name!r}; "
                f"expected at most n_connectors_max = {self.n_connectors_max}"
            )
        index = np.asarray(rows, dtype=np.int64).reshape(-1)
        if index.size == 0:
            return
        prepared = self._prepare(arrays)
        n_steps, slots = arrays.n_steps, prepared.end_step.shape[0]
        if n_steps > self._occupancy.shape[1] or slots > self._end_step.shape[1]:
            self._allocate(max(n_steps, self._occupancy.shape[1]), max(slots, self._end_step.shape[1]) - 1)
        self._assign_site(index, arrays.site)
        self._table[:, index, slots:] = _NEUTRAL
        self._table[:, index, :slots] = prepared.session_values[:, None, :]
        self._end_step[index, slots:] = 0
        self._end_step[index, :slots] = prepared.end_step
        self._settle_step[index, slots:] = -1
        self._settle_step[index, :slots] = prepared.settle_step
        self._energy[index, slots:] = 0.0
        self._energy[index, :slots] = prepared.arrival_energy_kwh
        self._occupancy[index] = -1
        self._occupancy[index, :n_steps, :n_connectors] = arrays.connector_session_index
        self._series[:, index, n_steps:] = 0.0
        self._series[:, index, :n_steps] = prepared.series_values[:, None, :]
        self._calendar[index] = 0.0
        self._calendar[index, :n_steps] = prepared.calendar_values
        for row in index.tolist():
            self.names[row] = arrays.name
            self._row_sites[row] = arrays.site
        self.n_steps[index] = n_steps
        self.penalty_eur_per_kwh[index] = arrays.unmet_energy_penalty_eur_per_kwh
        self.objective_weights[index] = arrays.objective.as_tuple()
        self.step_index[index] = 0
        self.storage_energy_kwh[index] = arrays.site.storage_initial_energy_kwh
        self.peak_seen_kw[index] = 0.0
        self._loaded[index] = True
        self._is_ready = False
        self._context = None
        if self._view_slot is not None:  # no slot is -1: every connector of these rows is refreshed
            self._view_slot = self._view_slot.copy()
            self._view_slot[index] = -1

    def _assign_site(self, index: IntArray, site: SiteArrays) -> None:
        """Write one site's parameters into the rows ``index`` (padding the rest of each row)."""
        target_site = self.site
        for name in _SITE_FIELDS:
            target = getattr(target_site, name)
            value = getattr(site, name)
            if target.ndim == 1:
                target[index] = value
                continue
            n = np.shape(value)[0]
            target[index, n:] = _SITE_PADDING.get(name, 0)
            target[index, :n] = value

    def _prepare(self, arrays: ScenarioArrays) -> _Prepared:
        """The scenario laid out as a row holds it.

        Cached for scenarios loaded again (pools, fixed scenarios); each entry keeps its scenario alive.
        """
        key = id(arrays)
        cached = self._prepared.get(key)
        if cached is not None and cached[0] is arrays:
            return cached[1]
        if len(self._prepared) >= CALENDAR_CACHE_SIZE:
            self._prepared.pop(next(iter(self._prepared)))
        sessions, n_steps = arrays.sessions, arrays.n_steps
        n_slots = sessions.n_sessions + 1
        table = np.empty((len(_SESSION_FIELDS), n_slots))
        table[:, 0] = _NEUTRAL[:, 0, 0]
        for k, name in enumerate(_SESSION_FIELDS):
            table[k, 1:] = getattr(sessions, name)
        end = np.zeros(n_slots, dtype=np.int64)
        end[1:] = sessions.end_step
        settle = np.full(n_slots, -1, dtype=np.int64)
        within = sessions.end_step <= n_steps
        settle[1:] = np.where(within, np.clip(sessions.end_step, 1, n_steps) - 1, -1)
        arrival = np.zeros(n_slots)
        arrival[1:] = sessions.arrival_energy_kwh
        series = np.stack(
            [np.asarray(getattr(arrays.series, name), dtype=np.float64) for name in _SERIES_FIELDS]
        )
        prepared = _Prepared(
            session_values=table,
            end_step=end,
            settle_step=settle,
            arrival_energy_kwh=arrival,
            series_values=series.reshape(len(_SERIES_FIELDS), n_steps),
            calendar_values=calendar_table(arrays, self.forecast, *self.calendar_flags),
        )
        self._prepared[key] = (arrays, prepared)
        return prepared

    def context(self) -> StepContext:
        """The state at the current step of every row (built once per step).

        Raises:
            RuntimeError: When a row has not been loaded or its episode has ended.
        """
        if self._context is not None:
            return self._context
        if not self._is_ready:
            if not is_all(self._loaded) or is_any(self.step_index >= self.n_steps):
                raise RuntimeError("EpisodeBatch: every row needs a loaded, unfinished episode (load() it)")
            self._is_ready = True
        rows, t = self._rows, self.step_index
        t_first = int(t[0])
        in_step = self.batch_size == 1 or is_all(t == t_first)
        if in_step:
            index = self._occupancy[:, t_first].astype(np.int64)
            exo = self._series[:, :, t_first].copy()
        else:
            index = self._occupancy[rows, t].astype(np.int64)
            exo = self._series[:, rows, t]
        present = index >= 0
        flat = index + self._row_base
        fields, energy = self._ev_fields(flat)
        to_departure = np.subtract(fields[-1], t[:, None]).astype(np.int64)
        to_departure *= present
        ev = EvView(
            session_index=index,
            is_present=present,
            energy_kwh=energy,
            capacity_kwh=fields[0],
            target_energy_kwh=fields[1],
            floor_energy_kwh=fields[2],
            max_charge_kw=fields[3],
            ev_max_power_kw=fields[4],
            max_discharge_kw=fields[5],
            charge_efficiency_frac=fields[6],
            discharge_efficiency_frac=fields[7],
            taper_start_soc_frac=fields[8],
            min_charge_kw=fields[9],
            n_steps_to_departure=to_departure,
        )
        self._flat_slot, self._setpoint_kw = flat, exo[0]
        self._context = StepContext(
            site=self._context_site(),
            ev=ev,
            exo=ExogenousStep(exo[1], exo[2], exo[3], exo[4], exo[5], exo[6]),
            storage_energy_kwh=self.storage_energy_kwh.copy(),
            step_h=self.step_h,
            step_index=t_first if in_step else -1,
            peak_import_kw=np.maximum(self.peak_seen_kw, self.site.billing_peak_start_kw),
        )
        return self._context

    def _ev_fields(self, flat: IntArray) -> tuple[FloatArray, FloatArray]:
        """The session fields ``(F, B, C)`` (read-only) and stored energy ``(B, C)`` at each connector.

        From one step to the next few connectors change sessions, so the last view is kept and
        only the connectors whose slot changed are gathered again (copy-on-write: when anyone
        still holds the last context's fields, they are copied first, so a context never changes).
        The energy of continuing sessions is the physics' outcome of the last step.

        Args:
            flat: Flat session slot of each connector, ``(B, C)``.
        """
        n_fields = len(_SESSION_FIELDS)
        table = self._table.reshape(n_fields, -1)
        fields, previous = self._view_fields, self._view_slot
        energy = self._next_energy_kwh
        self._next_energy_kwh = None
        if fields is None or previous is None or energy is None or previous.shape != flat.shape:
            fields = table.take(flat, axis=1)
            energy = self._energy.take(flat)
        else:
            changed = nonzero_flat(flat != previous)
            if changed.size:
                # References: the attribute, the local name and getrefcount's argument.
                if sys.getrefcount(fields) > 3:
                    fields = fields.copy()
                else:
                    fields.flags.writeable = True
                slots = flat.reshape(-1).take(changed)
                # Flat positions of every field (one put and one take, the fastest NumPy scatter).
                field_offsets = np.arange(n_fields)[:, None]
                fields.put(
                    changed + field_offsets * flat.size, table.take(slots + field_offsets * table.shape[1])
                )
                energy.put(changed, self._energy.take(slots))
        fields.flags.writeable = False
        self._view_fields, self._view_slot = fields, flat
        return fields, energy

    def _context_site(self) -> SiteParams:
        """The site parameters the contexts carry.

        One unpadded row gets the scenario's own site parameters (what a policy of one scenario
        expects); otherwise the batch's per-row arrays.
        """
        only = self._row_sites[0]
        if self.batch_size == 1 and only is not None and only.n_connectors == self.n_connectors_max:
            return only
        return self.site

    def calendar(self) -> FloatArray:
        """Calendar features of the current step of every row, ``(B, calendar_width(...))``."""
        t = self.step_index
        if self.batch_size == 1:
            calendar: FloatArray = self._calendar[:, int(t[0])]
            return calendar
        return self._calendar[self._rows, t]

    def observe(self, layout: ObservationLayout) -> FloatArray:
        """Raw observations of the current step, ``(B, layout.size)``."""
        context = self.context()
        return layout.observe_rows(context, self.calendar())

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
        site, dt_h = self.site, self.step_h
        # Connectors without a session write the neutral slot 0 of their row: 0 kWh, unchanged.
        self._energy.put(self._flat_slot, outcome.ev_energy_kwh)
        self._next_energy_kwh = outcome.ev_energy_kwh.copy()
        self.storage_energy_kwh = outcome.storage_energy_kwh
        peak_before = self.peak_seen_kw
        self.peak_seen_kw = np.maximum(peak_before, outcome.grid_import_kw)
        billed_kw = site.billing_peak_start_kw
        demand = site.demand_charge_eur_per_kw * (
            np.maximum(self.peak_seen_kw - billed_kw, 0.0) - np.maximum(peak_before - billed_kw, 0.0)
        )
        # sum max(-p, 0) is -(sum min(p, 0)) bit for bit (negation commutes with rounding)
        discharged_kw = -np.minimum(applied.ev_power_kw, zeros_of(applied.ev_power_kw.shape)).sum(axis=1)
        degradation = dt_h * (
            site.v2g_degradation_cost_eur_per_kwh * discharged_kw
            + site.storage_degradation_cost_eur_per_kwh * np.abs(applied.storage_power_kw)
        )
        is_last = self.step_index == self.n_steps - 1
        unmet = self._unmet_settled_kwh(is_last)
        unmet_cost = self.penalty_eur_per_kwh * unmet
        energy_cost = outcome.energy_cost_eur
        cost = energy_cost + demand + degradation + unmet_cost
        terms = np.empty((len(OBJECTIVE_TERMS), self.batch_size))
        terms[0] = energy_cost
        terms[1] = demand
        terms[2] = degradation
        terms[3] = unmet_cost
        np.subtract(self.peak_seen_kw, peak_before, out=terms[4])
        np.multiply(outcome.import_violation_kw + outcome.export_violation_kw, dt_h, out=terms[5])
        deviation_kw = np.abs(outcome.grid_import_kw - outcome.grid_export_kw - self._setpoint_kw)
        np.multiply(deviation_kw, dt_h, out=terms[6])
        terms *= self.objective_weights.T
        # Summed term by term in a fixed order, elementwise: the same sums for any B.
        objective: FloatArray = np.add.reduce(terms, axis=0)
        removed_kw = np.abs(requested.ev_power_kw - applied.ev_power_kw).sum(axis=1) + np.abs(
            requested.storage_power_kw - applied.storage_power_kw
        )
        self.step_index = self.step_index + 1
        self._context = None
        if is_any(is_last):
            self._is_ready = False
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
        energy = self._energy
        target = self._table[_FIELD_INDEX["target_energy_kwh"]]
        # Few sessions settle at a step: gather those and add them up per row, in slot order.
        settled = nonzero_flat(self._settle_step == self.step_index[:, None])
        short = np.maximum(target.take(settled) - energy.take(settled), 0.0)
        unmet: FloatArray = np.bincount(settled // energy.shape[1], short, minlength=self.batch_size).astype(
            np.float64, copy=False
        )
        if is_any(is_last):
            steps_left = self._end_step - self.n_steps[:, None]
            still_open = (steps_left > 0) & is_last[:, None]
            rate_kw = (
                self._table[_FIELD_INDEX["max_charge_kw"]]
                * self._table[_FIELD_INDEX["charge_efficiency_frac"]]
            )
            open_short = np.maximum(target - energy - rate_kw * self.step_h * steps_left, 0.0)
            unmet = unmet + np.where(still_open, open_short, 0.0).sum(axis=1)
        return unmet
