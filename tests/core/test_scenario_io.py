"""Reading scenario files: YAML and JSON, the YAML traps, file errors, round trip, built-ins."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import pytest
import yaml

from smac_rl.core.arrays import compile_scenario
from smac_rl.core.errors import ScenarioError
from smac_rl.core.scenario_io import (
    builtin_scenario_names,
    load_builtin_scenario,
    load_scenario,
    parse_scenario,
    scenario_to_yaml,
)
from smac_rl.core.specs.scenario import TimeGridSpec
from tests.core.tiny import tiny_data, tiny_scenario


def test_yaml_and_json_give_the_same_scenario(tmp_path: Path) -> None:
    (tmp_path / "s.json").write_text(json.dumps(tiny_data()))
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(tiny_data()))
    assert load_scenario(tmp_path / "s.json") == load_scenario(tmp_path / "s.yaml") == tiny_scenario()


def test_yaml_round_trip(tmp_path: Path) -> None:
    spec = load_builtin_scenario("demo_workplace")
    file = tmp_path / "again.yaml"
    file.write_text(scenario_to_yaml(spec))
    assert load_scenario(file) == spec


def test_unquoted_yaml_timestamp_without_zone_is_rejected_as_naive(tmp_path: Path) -> None:
    text = yaml.safe_dump(tiny_data()).replace("'2024-05-01T00:00:00Z'", "2024-05-01 00:00:00", 1)
    file = tmp_path / "naive.yaml"
    file.write_text(text)
    with pytest.raises(
        ScenarioError,
        match=r"sessions\[0\].arrival_utc: got '2024-05-01 00:00:00'; expected a timezone-aware",
    ):
        load_scenario(file)


def test_time_of_use_clock_times_are_not_base_60_integers(tmp_path: Path) -> None:
    data = tiny_data()
    del data["series"]["import_price_eur_per_kwh"]
    text = yaml.safe_dump(data) + "\n"
    text = text.replace(
        "  tariff:\n",
        "  tariff:\n    time_of_use:\n    - {start_local: 7:30, import_price_eur_per_kwh: 0.3}\n"
        "    - {start_local: 22:00, import_price_eur_per_kwh: 0.1}\n",
    )
    file = tmp_path / "tou.yaml"
    file.write_text(text)
    spec = load_scenario(file)
    # YAML 1.1 would read 7:30 as the integer 450 (seconds after midnight to pydantic: 00:07:30).
    # Grid starts 2024-05-01 00:00Z = 02:00 CEST: steps start at local 02, 03, 04, 05 h, all before
    # 07:30, so the 22:00 block of the previous evening holds.
    assert [p.start_local.isoformat() for p in spec.site.tariff.time_of_use or []] == ["07:30:00", "22:00:00"]
    np.testing.assert_allclose(compile_scenario(spec).series.import_price_eur_per_kwh, [0.1, 0.1, 0.1, 0.1])


def test_duplicate_yaml_key_is_an_error(tmp_path: Path) -> None:
    file = tmp_path / "dup.yaml"
    file.write_text(yaml.safe_dump(tiny_data()) + "name: again\n")
    with pytest.raises(ScenarioError, match=r"duplicate key 'name'"):
        load_scenario(file)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ScenarioError, match=r"file: got '.*nope.yaml'; expected a readable file"):
        load_scenario(tmp_path / "nope.yaml")


def test_wrong_suffix(tmp_path: Path) -> None:
    file = tmp_path / "s.toml"
    file.write_text("x = 1")
    with pytest.raises(ScenarioError, match=r"expected a .yaml, .yml or .json file"):
        load_scenario(file)


def test_malformed_json(tmp_path: Path) -> None:
    file = tmp_path / "s.json"
    file.write_text('{"name": ')
    with pytest.raises(ScenarioError, match=r"expected well-formed data"):
        load_scenario(file)


def test_top_level_must_be_a_mapping() -> None:
    with pytest.raises(ScenarioError, match=r"\(top level\): got list; expected a mapping"):
        parse_scenario([1, 2])


def test_builtin_scenarios_load_and_unknown_ones_are_named() -> None:
    assert "demo_workplace" in builtin_scenario_names()
    for name in builtin_scenario_names():
        assert load_builtin_scenario(name).name == name
    with pytest.raises(ScenarioError, match=r"scenario: got 'atlantis'; expected one of demo_workplace"):
        load_builtin_scenario("atlantis")


def test_held_series_is_repeated_onto_the_grid() -> None:
    data = tiny_data()
    data["time_grid"].update(step_min=30, n_steps=4)
    data["series"]["import_price_eur_per_kwh"] = {"step_min": 60, "values": [0.3, 0.1]}
    data["sessions"][0]["departure_utc"] = "2024-05-01T02:00:00Z"
    arrays = compile_scenario(parse_scenario(data))
    np.testing.assert_allclose(arrays.series.import_price_eur_per_kwh, [0.3, 0.3, 0.1, 0.1])
    assert arrays.step_h == 0.5


def test_missing_file_names_a_long_path_in_full(tmp_path: Path) -> None:
    deep = tmp_path / ("d" * 80) / "nope.yaml"
    with pytest.raises(ScenarioError) as info:
        load_scenario(deep)
    assert repr(str(deep)) in str(info.value)


def test_time_grid_end_counts_elapsed_time_across_a_clock_change() -> None:
    # 2024-03-31 00:00 in Amsterdam is 2024-03-30 23:00 UTC; 96 steps of 15 minutes are 24 elapsed
    # hours, so the grid ends at 2024-03-31 23:00 UTC, which is 2024-04-01 01:00 local (CEST): the
    # day has only 23 local hours. Wall-clock arithmetic would give 2024-04-01 00:00 local, 22:00 UTC.
    start = dt.datetime(2024, 3, 31, tzinfo=ZoneInfo("Europe/Amsterdam"))
    grid = TimeGridSpec(start_utc=start, step_min=15, n_steps=96)
    assert grid.end_utc == dt.datetime(2024, 3, 31, 23, tzinfo=dt.UTC)
    assert grid.end_utc - grid.start_utc == dt.timedelta(hours=24)
