"""Cross-field checks of a parsed scenario; every problem names its field path.

Pydantic checks each field on its own (types, ranges, unknown keys); this module checks what
needs several fields at once: references between sessions and chargers, time order, series
lengths, overlapping sessions, the price source.
"""

from __future__ import annotations

from collections import defaultdict
from itertools import pairwise

from smac_rl.core.errors import FieldProblem, render_value
from smac_rl.core.specs.scenario import ScenarioSpec
from smac_rl.core.specs.session import SessionSpec
from smac_rl.core.specs.site import SiteSpec
from smac_rl.core.timegrid import series_shape_problem, series_values


def check_scenario(spec: ScenarioSpec) -> list[FieldProblem]:
    """Find every cross-field problem of a scenario.

    Args:
        spec: A scenario that passed pydantic's field checks.

    Returns:
        The problems found; empty when the scenario is valid.
    """
    return [*check_site(spec.site), *_check_series(spec), *_check_sessions(spec)]


def check_site(site: SiteSpec) -> list[FieldProblem]:
    """Cross-field problems of a site alone (chargers, storage); paths start with ``site.``."""
    return [*_check_chargers(site), *_check_storage(site)]


def _check_chargers(site: SiteSpec) -> list[FieldProblem]:
    problems: list[FieldProblem] = []
    seen: dict[str, int] = {}
    for i, charger in enumerate(site.chargers):
        path = f"site.chargers[{i}]"
        if charger.station_id in seen:
            problems.append(
                FieldProblem(
                    f"{path}.station_id",
                    render_value(charger.station_id),
                    f"a station_id unique on the site (site.chargers[{seen[charger.station_id]}] has it)",
                )
            )
        seen.setdefault(charger.station_id, i)
        if charger.kind == "ac" and charger.max_current_a is None:
            problems.append(
                FieldProblem(
                    f"{path}.max_current_a", "nothing", "a per-phase current limit [A] for an AC charger"
                )
            )
        if charger.kind == "dc":
            if charger.max_power_kw is None:
                problems.append(
                    FieldProblem(f"{path}.max_power_kw", "nothing", "a rated power [kW] for a DC charger")
                )
            if charger.max_current_a is not None:
                problems.append(
                    FieldProblem(
                        f"{path}.max_current_a",
                        render_value(charger.max_current_a),
                        "no per-phase current on a DC charger (give max_power_kw)",
                    )
                )
        outlets: dict[tuple[int, int], int] = {}
        for j, connector in enumerate(charger.connectors):
            key = (connector.evse_id, connector.connector_id)
            if key in outlets:
                problems.append(
                    FieldProblem(
                        f"{path}.connectors[{j}]",
                        f"evse_id={key[0]}, connector_id={key[1]}",
                        f"a unique (evse_id, connector_id) on the station "
                        f"(connectors[{outlets[key]}] has it)",
                    )
                )
            outlets.setdefault(key, j)
    return problems


def _check_storage(site: SiteSpec) -> list[FieldProblem]:
    storage = site.storage
    if storage is None:
        return []
    problems: list[FieldProblem] = []
    if storage.min_soc_frac >= storage.max_soc_frac:
        problems.append(
            FieldProblem(
                "site.storage.min_soc_frac",
                render_value(storage.min_soc_frac),
                f"below max_soc_frac ({storage.max_soc_frac})",
            )
        )
    elif not storage.min_soc_frac <= storage.initial_soc_frac <= storage.max_soc_frac:
        problems.append(
            FieldProblem(
                "site.storage.initial_soc_frac",
                render_value(storage.initial_soc_frac),
                f"between min_soc_frac ({storage.min_soc_frac}) and max_soc_frac ({storage.max_soc_frac})",
            )
        )
    return problems


_NON_NEGATIVE_SERIES = ("base_load_kw", "pv_available_kw", "import_limit_kw", "export_limit_kw")
MAX_ABS_PRICE_EUR_PER_KWH = 100.0
"""Largest price magnitude accepted [EUR/kWh] (crisis peaks were about 1; this catches unit slips)."""
MAX_ABS_POWER_KW = 1e6
"""Largest power magnitude accepted in a series [kW] (a gigawatt: beyond any charging site)."""


def _check_series(spec: ScenarioSpec) -> list[FieldProblem]:
    problems: list[FieldProblem] = []
    series = spec.series
    has_tou = spec.site.tariff.time_of_use is not None
    has_price_series = series.import_price_eur_per_kwh is not None
    if has_tou == has_price_series:
        problems.append(
            FieldProblem(
                "series.import_price_eur_per_kwh",
                "both given" if has_tou else "nothing",
                "an import price series or site.tariff.time_of_use blocks, exactly one of the two",
            )
        )
    if spec.site.tariff.time_of_use is not None:
        starts = [p.start_local for p in spec.site.tariff.time_of_use]
        if len(set(starts)) != len(starts):
            problems.append(
                FieldProblem(
                    "site.tariff.time_of_use", render_value(starts), "blocks with distinct start_local"
                )
            )
    if spec.objective.name == "setpoint_tracking" and series.grid_setpoint_kw is None:
        problems.append(
            FieldProblem(
                "series.grid_setpoint_kw",
                "nothing",
                "a setpoint series for objective.name 'setpoint_tracking'",
            )
        )
    if (spec.site.pv is None) != (series.pv_available_kw is None):
        problems.append(
            FieldProblem(
                "series.pv_available_kw",
                "nothing" if series.pv_available_kw is None else "a series",
                "a PV series exactly when site.pv is set",
            )
        )
    for name in type(series).model_fields:
        value = getattr(series, name)
        if value is None:
            continue
        shape = series_shape_problem(value, spec.time_grid)
        if shape is not None:
            problems.append(FieldProblem(f"series.{name}", render_value(value), shape))
            continue
        bound = MAX_ABS_PRICE_EUR_PER_KWH if name.endswith("_eur_per_kwh") else MAX_ABS_POWER_KW
        absurd = [v for v in series_values(value) if abs(v) > bound]
        if absurd:
            problems.append(
                FieldProblem(f"series.{name}", render_value(absurd[0]), f"values within +-{bound:g}")
            )
        elif name in _NON_NEGATIVE_SERIES:
            negative = [v for v in series_values(value) if v < 0]
            if negative:
                problems.append(
                    FieldProblem(f"series.{name}", render_value(negative[0]), "non-negative values [kW]")
                )
    return problems


def _check_sessions(spec: ScenarioSpec) -> list[FieldProblem]:
    problems: list[FieldProblem] = []
    outlets = {(c.station_id, k.evse_id, k.connector_id) for c in spec.site.chargers for k in c.connectors}
    stations = {c.station_id for c in spec.site.chargers}
    first_with_id: dict[str, int] = {}
    first_with_tx: dict[str, int] = {}
    by_evse: dict[tuple[str, int], list[int]] = defaultdict(list)
    grid = spec.time_grid
    for i, session in enumerate(spec.sessions):
        path = f"sessions[{i}]"
        problems.extend(_check_session_fields(path, session))
        if session.session_id in first_with_id:
            problems.append(
                FieldProblem(
                    f"{path}.session_id",
                    render_value(session.session_id),
                    f"a unique session_id (sessions[{first_with_id[session.session_id]}] has it)",
                )
            )
        first_with_id.setdefault(session.session_id, i)
        if session.transaction_id is not None:
            if session.transaction_id in first_with_tx:
                problems.append(
                    FieldProblem(
                        f"{path}.transaction_id",
                        render_value(session.transaction_id),
                        f"a unique transaction_id (sessions[{first_with_tx[session.transaction_id]}] has it)",
                    )
                )
            first_with_tx.setdefault(session.transaction_id, i)
        if session.station_id not in stations:
            problems.append(
                FieldProblem(
                    f"{path}.station_id",
                    render_value(session.station_id),
                    f"a station_id of site.chargers ({', '.join(sorted(stations))})",
                )
            )
        elif (session.station_id, session.evse_id, session.connector_id) not in outlets:
            problems.append(
                FieldProblem(
                    f"{path}.evse_id",
                    f"evse_id={session.evse_id}, connector_id={session.connector_id}",
                    f"an EVSE and connector of station {session.station_id!r}",
                )
            )
        else:
            by_evse[(session.station_id, session.evse_id)].append(i)
        if session.departure_utc <= grid.start_utc or session.arrival_utc >= grid.end_utc:
            problems.append(
                FieldProblem(
                    f"{path}.arrival_utc",
                    f"{session.arrival_utc.isoformat()} to {session.departure_utc.isoformat()}",
                    f"a session overlapping the time grid {grid.start_utc.isoformat()} to "
                    f"{grid.end_utc.isoformat()}",
                )
            )
    problems.extend(_check_overlaps(spec.sessions, by_evse))
    return problems


def _check_session_fields(path: str, session: SessionSpec) -> list[FieldProblem]:
    problems: list[FieldProblem] = []
    if session.departure_utc <= session.arrival_utc:
        problems.append(
            FieldProblem(
                f"{path}.departure_utc",
                session.departure_utc.isoformat(),
                f"a departure after arrival_utc ({session.arrival_utc.isoformat()})",
            )
        )
    if (session.energy_wanted_kwh is None) == (session.target_soc_frac is None):
        problems.append(
            FieldProblem(
                f"{path}.energy_wanted_kwh",
                "both given" if session.energy_wanted_kwh is not None else "nothing",
                "energy_wanted_kwh or target_soc_frac, exactly one of the two",
            )
        )
    return problems


def _check_overlaps(
    sessions: list[SessionSpec], by_evse: dict[tuple[str, int], list[int]]
) -> list[FieldProblem]:
    problems: list[FieldProblem] = []
    for (station_id, evse_id), indices in by_evse.items():
        ordered = sorted(indices, key=lambda k: sessions[k].arrival_utc)
        for before, after in pairwise(ordered):
            if sessions[after].arrival_utc < sessions[before].departure_utc:
                problems.append(
                    FieldProblem(
                        f"sessions[{after}].arrival_utc",
                        sessions[after].arrival_utc.isoformat(),
                        f"no overlap on station {station_id!r} EVSE {evse_id}: sessions[{before}] stays "
                        f"until {sessions[before].departure_utc.isoformat()}",
                    )
                )
    return problems
