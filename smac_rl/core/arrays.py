"""A validated scenario compiled to arrays on its time grid: what every component computes on.

Indices: ``C`` connectors (chargers in order, their connectors in order), ``K`` chargers,
``S`` sessions, ``T`` steps. Site phases are columns L1, L2, L3.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np

from smac_rl.core.arraytypes import BoolArray, FloatArray, IntArray
from smac_rl.core.objectives import ObjectiveWeights, objective_weights
from smac_rl.core.specs.scenario import ScenarioSpec
from smac_rl.core.specs.site import DEFAULT_TAPER_START_SOC_FRAC, SiteSpec
from smac_rl.core.timegrid import end_step, first_full_step, resolve_series, resolve_time_of_use

PHASES = ("L1", "L2", "L3")


@dataclass(frozen=True)
class SiteArrays:
    """Static site parameters as arrays.

    Attributes:
        connector_charger_index: Charger of each connector, ``(C,)``.
        connector_max_kw: Power limit of each connector (outlet and charger) [kW], ``(C,)``.
        is_connector_dc: DC connector flags, ``(C,)``.
        is_connector_bidirectional: Connector can discharge vehicles, ``(C,)``.
        connector_min_charge_kw: Minimum non-zero charging power (IEC 61851 minimum current on AC;
            0 when off or DC) [kW], ``(C,)``.
        connector_taper_start_soc_frac: Taper default of the connector's charging class, ``(C,)``.
        connector_phase_a_per_kw: Current drawn on each site phase per kW at the connector
            [A/kW], ``(C, 3)``; zero rows for DC.
        charger_max_kw: Power each charger shares among its connectors [kW], ``(K,)``.
        charging_phase_current_limit_a: Per-phase current limit of the AC charging feeder [A]
            (``inf`` when none).
        storage_capacity_kwh: Storage capacity [kWh] (0 when the site has none).
        storage_min_energy_kwh: Lowest stored energy allowed [kWh].
        storage_max_energy_kwh: Highest stored energy allowed [kWh].
        storage_initial_energy_kwh: Stored energy at the grid's start [kWh].
        storage_max_charge_kw: Storage charging limit [kW].
        storage_max_discharge_kw: Storage discharging limit [kW].
        storage_charge_efficiency_frac: Storage charge efficiency.
        storage_discharge_efficiency_frac: Storage discharge efficiency.
        storage_self_discharge_per_h_frac: Storage self-discharge per hour.
        storage_degradation_cost_eur_per_kwh: Storage throughput cost [EUR/kWh].
        v2g_degradation_cost_eur_per_kwh: Cost per kWh discharged from EVs [EUR/kWh].
        demand_charge_eur_per_kw: Demand charge [EUR/kW].
        billing_peak_start_kw: Peak already billed before the scenario [kW].
    """

    connector_charger_index: IntArray
    connector_max_kw: FloatArray
    is_connector_dc: BoolArray
    is_connector_bidirectional: BoolArray
    connector_min_charge_kw: FloatArray
    connector_taper_start_soc_frac: FloatArray
    connector_phase_a_per_kw: FloatArray
    charger_max_kw: FloatArray
    charging_phase_current_limit_a: float
    storage_capacity_kwh: float
    storage_min_energy_kwh: float
    storage_max_energy_kwh: float
    storage_initial_energy_kwh: float
    storage_max_charge_kw: float
    storage_max_discharge_kw: float
    storage_charge_efficiency_frac: float
    storage_discharge_efficiency_frac: float
    storage_self_discharge_per_h_frac: float
    storage_degradation_cost_eur_per_kwh: float
    v2g_degradation_cost_eur_per_kwh: float
    demand_charge_eur_per_kw: float
    billing_peak_start_kw: float

    @property
    def n_connectors(self) -> int:
        """Number of connectors ``C``."""
        return int(self.connector_max_kw.shape[0])

    @property
    def n_chargers(self) -> int:
        """Number of chargers ``K``."""
        return int(self.charger_max_kw.shape[0])


@dataclass(frozen=True)
class BatchSiteArrays:
    """Site parameters of ``B`` sites side by side, padded to ``C`` connectors and ``K`` chargers.

    The fields and their meanings are those of :class:`SiteArrays`, with a leading batch axis:
    per-connector fields ``(B, C)`` (phases ``(B, C, 3)``), per-charger fields ``(B, K)`` and site
    values ``(B,)``. Padded connectors and chargers have zero limits and never hold a session. The
    physics, the projection and the observation accept either kind through :data:`SiteParams`.
    Rows are written in place (:meth:`assign_row`) when a batched episode is replaced.
    """

    connector_charger_index: IntArray
    connector_max_kw: FloatArray
    is_connector_dc: BoolArray
    is_connector_bidirectional: BoolArray
    connector_min_charge_kw: FloatArray
    connector_taper_start_soc_frac: FloatArray
    connector_phase_a_per_kw: FloatArray
    charger_max_kw: FloatArray
    charging_phase_current_limit_a: FloatArray
    storage_capacity_kwh: FloatArray
    storage_min_energy_kwh: FloatArray
    storage_max_energy_kwh: FloatArray
    storage_initial_energy_kwh: FloatArray
    storage_max_charge_kw: FloatArray
    storage_max_discharge_kw: FloatArray
    storage_charge_efficiency_frac: FloatArray
    storage_discharge_efficiency_frac: FloatArray
    storage_self_discharge_per_h_frac: FloatArray
    storage_degradation_cost_eur_per_kwh: FloatArray
    v2g_degradation_cost_eur_per_kwh: FloatArray
    demand_charge_eur_per_kw: FloatArray
    billing_peak_start_kw: FloatArray

    @staticmethod
    def empty(batch_size: int, n_connectors_max: int) -> BatchSiteArrays:
        """Room for ``batch_size`` sites of up to ``n_connectors_max`` connectors, all padding."""
        b, c = batch_size, n_connectors_max
        values: dict[str, object] = {}
        for name in _SITE_FIELDS:
            if name == "connector_charger_index":
                values[name] = np.zeros((b, c), dtype=np.int64)
            elif name in {"is_connector_dc", "is_connector_bidirectional"}:
                values[name] = np.zeros((b, c), dtype=np.bool_)
            elif name == "connector_phase_a_per_kw":
                values[name] = np.zeros((b, c, 3))
            elif name.startswith("connector_") or name == "charger_max_kw":
                values[name] = np.zeros((b, c))
            else:
                values[name] = np.zeros(b)
        values["storage_charge_efficiency_frac"] = np.ones(b)
        values["storage_discharge_efficiency_frac"] = np.ones(b)
        values["connector_taper_start_soc_frac"] = np.ones((b, c))
        return BatchSiteArrays(**values)  # type: ignore[arg-type]

    def assign_row(self, row: int, site: SiteArrays) -> None:
        """Write one site into batch row ``row`` (padding the rest of the row).

        Raises:
            ValueError: When the site has more connectors than the batch has room for.
        """
        room = self.n_connectors
        if site.n_connectors > room:
            raise ValueError(
                f"connectors: got {site.n_connectors}; expected at most n_connectors_max = {room}"
            )
        for name in _SITE_FIELDS:
            target = getattr(self, name)
            value = getattr(site, name)
            if np.ndim(target) == 1:
                target[row] = value
                continue
            padding = 1.0 if name == "connector_taper_start_soc_frac" else 0
            target[row] = padding
            target[row, : np.shape(value)[0]] = value

    @property
    def n_connectors(self) -> int:
        """Connectors per row ``C`` (padding included)."""
        return int(self.connector_max_kw.shape[1])

    @property
    def n_chargers(self) -> int:
        """Chargers per row ``K`` (padding included)."""
        return int(self.charger_max_kw.shape[1])


SiteParams = SiteArrays | BatchSiteArrays
"""Site parameters of one site (broadcast over the batch) or of one site per batch row."""

_SITE_FIELDS = tuple(SiteArrays.__dataclass_fields__)


@dataclass(frozen=True)
class SessionArrays:
    """Sessions as arrays, ``(S,)`` each.

    Attributes:
        session_ids: Session ids, in scenario order.
        connector_index: Connector of each session.
        first_step: First step the EV is plugged in for the whole step.
        end_step: Step at which the EV has left (may exceed ``T``).
        capacity_kwh: Battery capacity [kWh].
        arrival_energy_kwh: Stored energy at arrival [kWh].
        target_energy_kwh: Stored energy wanted at departure [kWh].
        floor_energy_kwh: V2G never discharges below this stored energy [kWh].
        max_charge_kw: Charging limit of EV and connector together [kW].
        min_charge_kw: Least non-zero charging power of the session at its connector [kW]: the
            minimum current (site option, IEC 61851: 6 A per phase) on the phases the EV draws on.
            That is the connector's minimum, unless the EV's limit is below it: an on-board
            charger that cannot draw the minimum on every phase of the connector charges on one
            phase, at least one phase's minimum (never more than ``max_charge_kw``). 0 on DC and
            without the option.
        ev_max_power_kw: The EV's own limit for the connector's kind (AC or DC), where the taper applies [kW].
        max_discharge_kw: Discharging limit (0 without V2G permission or bidirectional connector) [kW].
        charge_efficiency_frac: Battery energy per connector energy when charging.
        discharge_efficiency_frac: Connector energy per battery energy when discharging.
        taper_start_soc_frac: SoC where the CC-CV taper starts (1.0: none).
    """

    session_ids: tuple[str, ...]
    connector_index: IntArray
    first_step: IntArray
    end_step: IntArray
    capacity_kwh: FloatArray
    arrival_energy_kwh: FloatArray
    target_energy_kwh: FloatArray
    floor_energy_kwh: FloatArray
    max_charge_kw: FloatArray
    min_charge_kw: FloatArray
    ev_max_power_kw: FloatArray
    max_discharge_kw: FloatArray
    charge_efficiency_frac: FloatArray
    discharge_efficiency_frac: FloatArray
    taper_start_soc_frac: FloatArray

    @property
    def n_sessions(self) -> int:
        """Number of sessions ``S``."""
        return len(self.session_ids)


@dataclass(frozen=True)
class SeriesArrays:
    """Exogenous series on the grid, ``(T,)`` each.

    Attributes:
        import_price_eur_per_kwh: Import price [EUR/kWh].
        export_price_eur_per_kwh: Export price [EUR/kWh].
        base_load_kw: Non-EV consumption [kW].
        pv_available_kw: PV power before curtailment [kW].
        import_limit_kw: Effective import limit (static and signal combined) [kW].
        export_limit_kw: Effective export limit [kW].
        grid_setpoint_kw: Flexibility setpoint of the net grid exchange, import positive [kW]
            (zeros when the scenario has none; see ``is_grid_setpoint_given``).
        is_grid_setpoint_given: The scenario gives a setpoint series.
    """

    import_price_eur_per_kwh: FloatArray
    export_price_eur_per_kwh: FloatArray
    base_load_kw: FloatArray
    pv_available_kw: FloatArray
    import_limit_kw: FloatArray
    export_limit_kw: FloatArray
    grid_setpoint_kw: FloatArray
    is_grid_setpoint_given: bool


@dataclass(frozen=True)
class ScenarioArrays:
    """A scenario compiled onto its time grid.

    Attributes:
        name: Scenario name.
        timezone: IANA time zone of the site.
        start_utc: Start of the first step.
        step_h: Step length [h].
        n_steps: Number of steps ``T``.
        site: Site parameters.
        sessions: Sessions.
        series: Exogenous series.
        connector_session_index: Session plugged in at each step and connector, -1 when none, ``(T, C)``.
        unmet_energy_penalty_eur_per_kwh: Penalty per kWh not delivered [EUR/kWh].
        objective: Weights of the scenario's objective (:mod:`smac_rl.core.objectives`).
    """

    name: str
    timezone: str
    start_utc: dt.datetime
    step_h: float
    n_steps: int
    site: SiteArrays
    sessions: SessionArrays
    series: SeriesArrays
    connector_session_index: IntArray
    unmet_energy_penalty_eur_per_kwh: float
    objective: ObjectiveWeights


def compile_scenario(spec: ScenarioSpec) -> ScenarioArrays:
    """Compile a validated scenario to arrays.

    Args:
        spec: A scenario from :func:`smac_rl.core.scenario_io.parse_scenario`.

    Returns:
        The arrays every component computes on.
    """
    site = compile_site(spec.site)
    sessions = _compile_sessions(spec, site)
    grid = spec.time_grid
    occupancy = np.full((grid.n_steps, site.n_connectors), -1, dtype=np.int64)
    for s in range(sessions.n_sessions):
        first, end = int(sessions.first_step[s]), min(int(sessions.end_step[s]), grid.n_steps)
        occupancy[first:end, sessions.connector_index[s]] = s
    return ScenarioArrays(
        name=spec.name,
        timezone=spec.site.timezone,
        start_utc=grid.start_utc.astimezone(dt.UTC),
        step_h=grid.step_h,
        n_steps=grid.n_steps,
        site=site,
        sessions=sessions,
        series=_compile_series(spec),
        connector_session_index=occupancy,
        unmet_energy_penalty_eur_per_kwh=spec.unmet_energy_penalty_eur_per_kwh,
        objective=objective_weights(spec.objective),
    )


def connector_keys(site: SiteSpec) -> list[tuple[str, int, int]]:
    """``(station_id, evse_id, connector_id)`` of each connector, in connector-index order."""
    return [(c.station_id, k.evse_id, k.connector_id) for c in site.chargers for k in c.connectors]


def compile_site(site: SiteSpec) -> SiteArrays:
    """Compile a validated site spec to :class:`SiteArrays`."""
    charger_index: list[int] = []
    max_kw: list[float] = []
    is_dc: list[bool] = []
    bidirectional: list[bool] = []
    min_kw: list[float] = []
    taper: list[float] = []
    phase_rows: list[list[float]] = []
    for k, charger in enumerate(site.chargers):
        rated_kw = charger.rated_power_kw()
        if charger.kind == "ac":
            per_kw = 1000.0 / (charger.n_phases * charger.voltage_v)
            row = (
                [per_kw] * 3
                if charger.n_phases == 3
                else [per_kw if p == charger.phase else 0.0 for p in PHASES]
            )
            minimum_kw = charger.n_phases * charger.voltage_v * (site.min_current_a or 0.0) / 1000.0
        else:
            row, minimum_kw = [0.0, 0.0, 0.0], 0.0
        for connector in charger.connectors:
            charger_index.append(k)
            limit = rated_kw if connector.max_power_kw is None else min(rated_kw, connector.max_power_kw)
            max_kw.append(limit)
            is_dc.append(charger.kind == "dc")
            bidirectional.append(charger.is_bidirectional)
            min_kw.append(min(minimum_kw, limit))
            taper.append(DEFAULT_TAPER_START_SOC_FRAC[charger.charging_class()])
            phase_rows.append(row)
    storage = site.storage
    grid = site.grid
    return SiteArrays(
        connector_charger_index=np.asarray(charger_index, dtype=np.int64),
        connector_max_kw=np.asarray(max_kw, dtype=np.float64),
        is_connector_dc=np.asarray(is_dc, dtype=np.bool_),
        is_connector_bidirectional=np.asarray(bidirectional, dtype=np.bool_),
        connector_min_charge_kw=np.asarray(min_kw, dtype=np.float64),
        connector_taper_start_soc_frac=np.asarray(taper, dtype=np.float64),
        connector_phase_a_per_kw=np.asarray(phase_rows, dtype=np.float64).reshape(-1, 3),
        charger_max_kw=np.asarray([c.rated_power_kw() for c in site.chargers], dtype=np.float64),
        charging_phase_current_limit_a=(
            np.inf if grid.charging_phase_current_limit_a is None else grid.charging_phase_current_limit_a
        ),
        storage_capacity_kwh=storage.capacity_kwh if storage else 0.0,
        storage_min_energy_kwh=storage.min_soc_frac * storage.capacity_kwh if storage else 0.0,
        storage_max_energy_kwh=storage.max_soc_frac * storage.capacity_kwh if storage else 0.0,
        storage_initial_energy_kwh=storage.initial_soc_frac * storage.capacity_kwh if storage else 0.0,
        storage_max_charge_kw=storage.max_charge_kw if storage else 0.0,
        storage_max_discharge_kw=storage.max_discharge_kw if storage else 0.0,
        storage_charge_efficiency_frac=storage.charge_efficiency_frac if storage else 1.0,
        storage_discharge_efficiency_frac=storage.discharge_efficiency_frac if storage else 1.0,
        storage_self_discharge_per_h_frac=storage.self_discharge_per_h_frac if storage else 0.0,
        storage_degradation_cost_eur_per_kwh=storage.degradation_cost_eur_per_kwh if storage else 0.0,
        v2g_degradation_cost_eur_per_kwh=site.v2g_degradation_cost_eur_per_kwh,
        demand_charge_eur_per_kw=site.tariff.demand_charge_eur_per_kw,
        billing_peak_start_kw=site.tariff.billing_peak_start_kw,
    )


def session_min_charge_kw(site: SiteArrays, connector: int, max_charge_kw: float) -> float:
    """A session's least non-zero charging power at a connector [kW] (``SessionArrays.min_charge_kw``).

    Args:
        site: The compiled site.
        connector: The session's connector.
        max_charge_kw: The session's charging limit at the connector [kW].

    Returns:
        The connector's minimum where the session's limit reaches it; else one phase's share of it,
        at most ``max_charge_kw``.
    """
    connector_min_kw = float(site.connector_min_charge_kw[connector])
    if max_charge_kw >= connector_min_kw:
        return connector_min_kw
    n_phases = int(np.count_nonzero(site.connector_phase_a_per_kw[connector]))
    return min(connector_min_kw / max(n_phases, 1), max_charge_kw)


def _compile_sessions(spec: ScenarioSpec, site: SiteArrays) -> SessionArrays:
    index_of = {key: c for c, key in enumerate(connector_keys(spec.site))}
    rows: list[dict[str, float | int]] = []
    for session in spec.sessions:
        c = index_of[(session.station_id, session.evse_id, session.connector_id)]
        capacity = session.battery_capacity_kwh
        arrival = session.arrival_soc_frac * capacity
        if session.energy_wanted_kwh is not None:
            target = min(capacity, arrival + session.energy_wanted_kwh)
        else:
            target = float(session.target_soc_frac or 0.0) * capacity
        ev_limit = session.ev_max_dc_kw if site.is_connector_dc[c] else session.ev_max_ac_kw
        max_charge = min(ev_limit, float(site.connector_max_kw[c]))
        can_discharge = session.allow_v2g and bool(site.is_connector_bidirectional[c])
        taper = session.taper_start_soc_frac
        rows.append(
            {
                "connector_index": c,
                "first_step": first_full_step(spec.time_grid, session.arrival_utc),
                "end_step": end_step(spec.time_grid, session.departure_utc),
                "capacity_kwh": capacity,
                "arrival_energy_kwh": arrival,
                "target_energy_kwh": target,
                "floor_energy_kwh": session.v2g_min_soc_frac * capacity,
                "max_charge_kw": max_charge,
                "min_charge_kw": session_min_charge_kw(site, c, max_charge),
                "ev_max_power_kw": ev_limit,
                "max_discharge_kw": (
                    min(
                        max_charge if session.ev_max_discharge_kw is None else session.ev_max_discharge_kw,
                        max_charge,
                    )
                    if can_discharge
                    else 0.0
                ),
                "charge_efficiency_frac": session.charge_efficiency_frac,
                "discharge_efficiency_frac": session.discharge_efficiency_frac,
                "taper_start_soc_frac": float(site.connector_taper_start_soc_frac[c])
                if taper is None
                else taper,
            }
        )

    def column(name: str) -> FloatArray:
        return np.asarray([row[name] for row in rows], dtype=np.float64)

    return SessionArrays(
        session_ids=tuple(s.session_id for s in spec.sessions),
        connector_index=column("connector_index").astype(np.int64),
        first_step=column("first_step").astype(np.int64),
        end_step=column("end_step").astype(np.int64),
        capacity_kwh=column("capacity_kwh").astype(np.float64),
        arrival_energy_kwh=column("arrival_energy_kwh").astype(np.float64),
        target_energy_kwh=column("target_energy_kwh").astype(np.float64),
        floor_energy_kwh=column("floor_energy_kwh").astype(np.float64),
        max_charge_kw=column("max_charge_kw").astype(np.float64),
        min_charge_kw=column("min_charge_kw").astype(np.float64),
        ev_max_power_kw=column("ev_max_power_kw").astype(np.float64),
        max_discharge_kw=column("max_discharge_kw").astype(np.float64),
        charge_efficiency_frac=column("charge_efficiency_frac").astype(np.float64),
        discharge_efficiency_frac=column("discharge_efficiency_frac").astype(np.float64),
        taper_start_soc_frac=column("taper_start_soc_frac").astype(np.float64),
    )


def _compile_series(spec: ScenarioSpec) -> SeriesArrays:
    grid = spec.time_grid
    series = spec.series
    if series.import_price_eur_per_kwh is not None:
        import_price = resolve_series(series.import_price_eur_per_kwh, grid)
    else:
        import_price = resolve_time_of_use(spec.site.tariff.time_of_use or [], grid, spec.site.timezone)
    import_limit = np.full(grid.n_steps, spec.site.grid.import_limit_kw)
    if series.import_limit_kw is not None:
        import_limit = np.minimum(import_limit, resolve_series(series.import_limit_kw, grid))
    export_limit = np.full(grid.n_steps, spec.site.grid.resolved_export_limit_kw())
    if series.export_limit_kw is not None:
        export_limit = np.minimum(export_limit, resolve_series(series.export_limit_kw, grid))
    pv = (
        np.zeros(grid.n_steps)
        if series.pv_available_kw is None
        else resolve_series(series.pv_available_kw, grid)
    )
    return SeriesArrays(
        import_price_eur_per_kwh=import_price,
        export_price_eur_per_kwh=resolve_series(series.export_price_eur_per_kwh, grid),
        base_load_kw=resolve_series(series.base_load_kw, grid),
        pv_available_kw=pv,
        import_limit_kw=import_limit.astype(np.float64),
        export_limit_kw=export_limit.astype(np.float64),
        grid_setpoint_kw=(
            np.zeros(grid.n_steps)
            if series.grid_setpoint_kw is None
            else resolve_series(series.grid_setpoint_kw, grid)
        ),
        is_grid_setpoint_given=series.grid_setpoint_kw is not None,
    )
