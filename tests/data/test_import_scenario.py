"""`smac scenario import`: users' sessions and prices into a scenario on a template's site."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from smac_rl.cli.main import app
from smac_rl.core.arrays import compile_scenario
from smac_rl.data.generator import GeneratorError
from smac_rl.data.import_scenario import import_scenario
from smac_rl.data.importers import formats_markdown
from smac_rl.data.template_spec import load_template

PLAIN = (
    "session_id,station_id,evse_id,arrival_utc,departure_utc,battery_capacity_kwh,"
    "arrival_soc_frac,energy_wanted_kwh\n"
    "a,BER-01,1,2024-10-26T17:00:00+02:00,2024-10-27T07:00:00+01:00,60,0.3,25\n"
    "b,BER-02,1,2024-10-26T19:30:00+02:00,2024-10-27T06:30:00+01:00,40,0.5,12\n"
)
CALTECH = (
    "arrival,departure,requested_energy (kWh),delivered_energy (kWh),station_id,session_id,"
    "estimated_departure,claimed\n"
    "2019-05-01 08:00:00+02:00,2019-05-01 17:00:00+02:00,30,21.5,CA-1,x1,,True\n"
    "2019-05-01 09:15:00+02:00,2019-05-01 12:00:00+02:00,,8.0,CA-2,x2,,False\n"
)


def _prices(path: Path, start: str, hours: int, unit: str = "mwh") -> Path:
    first = dt.datetime.fromisoformat(start)
    rows = [f"{(first + dt.timedelta(hours=h)).isoformat()},{50 + h}" for h in range(hours)]
    path.write_text(f"time_utc,price_eur_per_{unit}\n" + "\n".join(rows) + "\n")
    return path


def test_plain_sessions_with_prices_on_a_daylight_saving_weekend(tmp_path: Path) -> None:
    sessions = tmp_path / "s.csv"
    sessions.write_text(PLAIN)
    # Local days 2024-10-26 (24 h) and 2024-10-27 (25 h): 2024-10-25T22:00Z to 2024-10-27T23:00Z.
    prices = _prices(tmp_path / "p.csv", "2024-10-25T22:00:00+00:00", 49)
    spec, report = import_scenario(
        load_template("berlin_residential_garage"), sessions, "plain", prices, seed=1
    )
    assert report.n_sessions == 2
    assert spec.time_grid.n_steps == (24 + 25) * 4
    assert [s.session_id for s in spec.sessions] == ["a", "b"]
    arrays = compile_scenario(spec)
    # Held hourly: step 0..3 take 50 EUR/MWh = 0.05 EUR/kWh, steps 4..7 take 0.051.
    np.testing.assert_allclose(arrays.series.import_price_eur_per_kwh[:8], [0.05] * 4 + [0.051] * 4)


def test_caltech_sessions_get_connectors_evs_and_delivered_energy(tmp_path: Path) -> None:
    sessions = tmp_path / "acn.csv"
    sessions.write_text(CALTECH)
    spec, report = import_scenario(load_template("budapest_workplace"), sessions, "caltech", seed=2)
    assert report.n_sessions == 2
    assert spec.time_grid.start_utc == dt.datetime(2019, 4, 30, 22, tzinfo=dt.UTC)
    assert [s.arrival_utc for s in spec.sessions] == [
        dt.datetime(2019, 5, 1, 6, tzinfo=dt.UTC),
        dt.datetime(2019, 5, 1, 7, 15, tzinfo=dt.UTC),
    ]
    assert spec.sessions[0].energy_wanted_kwh == pytest.approx(21.5, abs=0.01)
    assert {s.station_id for s in spec.sessions} <= {c.station_id for c in spec.site.chargers}


def test_prices_must_cover_the_grid(tmp_path: Path) -> None:
    sessions = tmp_path / "s.csv"
    sessions.write_text(PLAIN)
    prices = _prices(tmp_path / "p.csv", "2024-10-26T00:00:00+00:00", 10, unit="kwh")
    with pytest.raises(GeneratorError, match="expected prices covering 2024-10-25T22:00:00"):
        import_scenario(load_template("berlin_residential_garage"), sessions, "plain", prices)


def test_cli_writes_nothing_when_a_row_is_bad(tmp_path: Path) -> None:
    sessions = tmp_path / "s.csv"
    sessions.write_text(PLAIN.replace(",0.5,12", ",1.5,12"))
    out = tmp_path / "out.yaml"
    runner = CliRunner()
    args = [
        "scenario",
        "import",
        "--site",
        "berlin_residential_garage",
        "--sessions",
        str(sessions),
        "--out",
        str(out),
    ]
    result = runner.invoke(app, args)
    assert result.exit_code == 1
    assert "line 3, column arrival_soc_frac: got '1.5'; expected a number <= 1" in result.output
    assert not out.exists()
    sessions.write_text(PLAIN)
    result = runner.invoke(app, args, terminal_width=200)
    assert result.exit_code == 0, result.output
    assert out.exists()


def test_cli_names_an_unknown_station(tmp_path: Path) -> None:
    sessions = tmp_path / "s.csv"
    sessions.write_text(PLAIN.replace("BER-02", "XX-02"))
    result = CliRunner().invoke(
        app, ["scenario", "import", "--site", "berlin_residential_garage", "--sessions", str(sessions)]
    )
    assert result.exit_code == 1
    assert (
        "s.csv: line 3, column station_id: got 'XX-02'; expected a station_id of site.chargers"
        in result.output
    )


def test_format_doc_is_in_step_with_the_code() -> None:
    doc = Path(__file__).parents[2] / "docs" / "DATA_FORMATS.md"
    assert doc.read_text() == formats_markdown()


def test_price_intervals_longer_than_an_hour_are_refused(tmp_path: Path) -> None:
    sessions = tmp_path / "s.csv"
    sessions.write_text(PLAIN)
    prices = tmp_path / "p.csv"
    prices.write_text("time_utc,price_eur_per_kwh\n2024-10-25T22:00:00Z,0.1\n2024-10-27T21:00:00Z,0.2\n")
    with pytest.raises(GeneratorError, match="expected intervals of at most 60 min"):
        import_scenario(load_template("berlin_residential_garage"), sessions, "plain", prices)
