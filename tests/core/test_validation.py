"""Invalid scenarios: each problem is reported with its field path, the value and the expectation."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest

from smac_rl.core.errors import ScenarioError
from smac_rl.core.scenario_io import parse_scenario
from tests.core.tiny import tiny_data

Mutation = Callable[[dict[str, Any]], None]


def _set(path: list[str | int], value: object) -> Mutation:
    def mutate(data: dict[str, Any]) -> None:
        node: Any = data
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = value

    return mutate


def _delete(path: list[str | int]) -> Mutation:
    def mutate(data: dict[str, Any]) -> None:
        node: Any = data
        for key in path[:-1]:
            node = node[key]
        del node[path[-1]]

    return mutate


def _second_session_on(station: str, evse: int, arrival: str) -> Mutation:
    def mutate(data: dict[str, Any]) -> None:
        extra = copy.deepcopy(data["sessions"][0])
        extra.update(session_id="S3", station_id=station, evse_id=evse, arrival_utc=arrival)
        data["sessions"].append(extra)

    return mutate


CASES: list[tuple[str, Mutation, str, str]] = [
    # (case, mutation, field path in the message, a fragment of the expectation)
    ("soc above one", _set(["sessions", 0, "arrival_soc_frac"], 1.4), "sessions[0].arrival_soc_frac", "<= 1"),
    (
        "departure before arrival",
        _set(["sessions", 1, "departure_utc"], "2024-04-30T23:00:00Z"),
        "sessions[1].departure_utc",
        "after arrival_utc",
    ),
    ("unknown charger", _set(["sessions", 0, "station_id"], "DC9"), "sessions[0].station_id", "DC1"),
    ("unknown EVSE", _set(["sessions", 0, "evse_id"], 7), "sessions[0].evse_id", "station 'DC1'"),
    (
        "naive datetime",
        _set(["sessions", 0, "arrival_utc"], "2024-05-01T00:00:00"),
        "sessions[0].arrival_utc",
        "timezone-aware",
    ),
    (
        "negative capacity",
        _set(["sessions", 0, "battery_capacity_kwh"], -60),
        "sessions[0].battery_capacity_kwh",
        "> 0",
    ),
    ("unknown key", _set(["site", "grid", "import_limt_kw"], 30), "site.grid.import_limt_kw", "unknown keys"),
    ("missing field", _delete(["site", "grid", "import_limit_kw"]), "site.grid.import_limit_kw", "required"),
    (
        "NaN price",
        _set(["series", "import_price_eur_per_kwh"], [0.3, float("nan"), 0.2, 0.4]),
        "series.import_price_eur_per_kwh",
        "a number",
    ),
    (
        "series of the wrong length",
        _set(["series", "import_price_eur_per_kwh"], [0.3, 0.1]),
        "series.import_price_eur_per_kwh",
        "4 values",
    ),
    ("negative base load", _set(["series", "base_load_kw"], -1.0), "series.base_load_kw", "non-negative"),
    ("unknown time zone", _set(["site", "timezone"], "Mars/Olympus"), "site.timezone", "IANA time zone"),
    (
        "both energy and target",
        _set(["sessions", 0, "target_soc_frac"], 0.9),
        "sessions[0].energy_wanted_kwh",
        "exactly one",
    ),
    ("duplicate session id", _set(["sessions", 1, "session_id"], "S1"), "sessions[1].session_id", "unique"),
    (
        "overlapping sessions on one EVSE",
        _second_session_on("DC1", 1, "2024-05-01T01:00:00Z"),
        "sessions[2].arrival_utc",
        "no overlap",
    ),
    (
        "AC charger without current",
        _delete(["site", "chargers", 1, "max_current_a"]),
        "site.chargers[1].max_current_a",
        "AC",
    ),
    ("phase count", _set(["site", "chargers", 1, "n_phases"], 2), "site.chargers[1].n_phases", "1 or 3"),
    ("step not dividing a day", _set(["time_grid", "step_min"], 7), "time_grid.step_min", "divides a day"),
    (
        "no price source",
        _delete(["series", "import_price_eur_per_kwh"]),
        "series.import_price_eur_per_kwh",
        "exactly one",
    ),
    (
        "PV series without a PV array",
        _set(["series", "pv_available_kw"], 3.0),
        "series.pv_available_kw",
        "exactly when site.pv is set",
    ),
    (
        "session outside the grid",
        _set(["sessions", 1, "arrival_utc"], "2024-05-02T00:00:00Z"),
        "sessions[1].arrival_utc",
        "overlapping the time grid",
    ),
    (
        "series not a number",
        _set(["series", "base_load_kw"], "lots"),
        "series.base_load_kw",
        "a list of one number",
    ),
    (
        "price in EUR/MWh by mistake",
        _set(["series", "import_price_eur_per_kwh"], [300.0, 100.0, 200.0, 400.0]),
        "series.import_price_eur_per_kwh",
        "values within +-100",
    ),
    (
        "absurd limit",
        _set(["series", "import_limit_kw"], 1e300),
        "series.import_limit_kw",
        "values within +-1e+06",
    ),
]


@pytest.mark.parametrize(("case", "mutate", "path", "expectation"), CASES, ids=[c[0] for c in CASES])
def test_invalid_scenario_names_the_field(case: str, mutate: Mutation, path: str, expectation: str) -> None:
    data = tiny_data()
    mutate(data)
    with pytest.raises(ScenarioError) as info:
        parse_scenario(data)
    messages = [str(p) for p in info.value.problems]
    matching = [m for m in messages if m.startswith(f"{path}:")]
    assert matching, f"{case}: no problem at {path} in {messages}"
    assert expectation in matching[0], matching[0]
    assert "got " in matching[0]


def test_every_problem_is_reported_at_once() -> None:
    data = tiny_data()
    data["sessions"][0]["arrival_soc_frac"] = 1.4
    data["sessions"][1]["battery_capacity_kwh"] = -1
    data["site"]["colour"] = "green"
    with pytest.raises(ScenarioError) as info:
        parse_scenario(data)
    paths = sorted(p.path for p in info.value.problems)
    assert paths == ["sessions[0].arrival_soc_frac", "sessions[1].battery_capacity_kwh", "site.colour"]


def test_value_is_shown_in_the_message() -> None:
    data = tiny_data()
    data["sessions"][0]["arrival_soc_frac"] = 1.4
    with pytest.raises(ScenarioError) as info:
        parse_scenario(data)
    assert str(info.value.problems[0]) == "sessions[0].arrival_soc_frac: got 1.4; expected a number <= 1"


def test_invalid_input_is_left_unchanged() -> None:
    data = tiny_data()
    data["sessions"][0]["arrival_soc_frac"] = 1.4
    before = copy.deepcopy(data)
    with pytest.raises(ScenarioError):
        parse_scenario(data)
    assert data == before


def test_a_valid_scenario_is_frozen() -> None:
    spec = parse_scenario(tiny_data())
    with pytest.raises(ValueError, match="frozen"):
        spec.sessions[0].arrival_soc_frac = 0.9  # type: ignore[misc]
