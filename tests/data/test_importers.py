"""CSV importers: plain sessions, ACN-Data (Caltech) sessions and prices, with exact row messages."""

from __future__ import annotations

import csv
import datetime as dt
import gzip
import io
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from smac_rl.core.errors import SmacError
from smac_rl.core.specs.session import SessionSpec
from smac_rl.data.importers import (
    CALTECH_SESSION_COLUMNS,
    PLAIN_SESSION_COLUMNS,
    PRICE_COLUMNS,
    CaltechSession,
    CsvImportError,
    RowProblem,
    read_caltech_sessions_csv,
    read_plain_sessions_csv,
    read_prices_csv,
)

UTC = dt.UTC
HEADER = (
    "session_id,station_id,evse_id,arrival_utc,departure_utc,battery_capacity_kwh,"
    "arrival_soc_frac,energy_wanted_kwh,target_soc_frac"
)
GOOD_ROW = "s{k},CS-1,1,2024-05-01T08:00:00+02:00,2024-05-01T17:00:00+02:00,60,0.2,20,"
CALTECH_HEADER = (
    "arrival,departure,requested_energy (kWh),delivered_energy (kWh),station_id,session_id,"
    "estimated_departure,claimed"
)
CALTECH_ROWS = (
    "2019-05-01 01:18:45-07:00,2019-05-01 15:52:36-07:00,60.0,44.069,CA-305,"
    "2_39_131_30_2019-05-01 08:18:44.595638,2019-05-01 09:20:45-07:00,True\n"
    "2019-05-01 06:33:14-07:00,2019-05-01 11:50:55-07:00,,17.666,CA-314,"
    "2_39_88_24_2019-05-01 13:33:13.958599,2019-05-01 11:27:14-07:00,False\n"
)


def write(tmp_path: Path, text: str, name: str = "sessions.csv") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def sessions_file(tmp_path: Path, *rows: str, header: str = HEADER) -> Path:
    return write(tmp_path, "\n".join([header, *rows]) + "\n")


def problems_of(path: Path, reader: object = read_plain_sessions_csv) -> list[str]:
    assert callable(reader)
    with pytest.raises(CsvImportError) as info:
        reader(path)
    return [str(p) for p in info.value.problems]


# --- plain sessions -------------------------------------------------------------------------------


def test_row_problem_renders_line_column_value_and_expectation() -> None:
    problem = RowProblem(7, "arrival_soc_frac", "'1.4'", "a number <= 1")
    assert str(problem) == "line 7, column arrival_soc_frac: got '1.4'; expected a number <= 1"


def test_csv_import_error_is_a_smac_error_listing_every_problem() -> None:
    problems = [RowProblem(2, "a", "'x'", "y"), RowProblem(3, "b", "'z'", "w")]
    error = CsvImportError(problems, "f.csv")
    assert isinstance(error, SmacError)
    assert str(error) == (
        "2 problem(s) in f.csv:\n"
        "  line 2, column a: got 'x'; expected y\n"
        "  line 3, column b: got 'z'; expected w"
    )


def test_plain_columns_are_exactly_the_session_spec_fields() -> None:
    assert [c.name for c in PLAIN_SESSION_COLUMNS] == list(SessionSpec.model_fields)
    required = {c.name for c in PLAIN_SESSION_COLUMNS if c.is_required}
    assert required == {
        "session_id",
        "station_id",
        "evse_id",
        "arrival_utc",
        "departure_utc",
        "battery_capacity_kwh",
        "arrival_soc_frac",
    }
    assert all(c.description for c in (*PLAIN_SESSION_COLUMNS, *CALTECH_SESSION_COLUMNS, *PRICE_COLUMNS))


def test_good_file_gives_the_expected_sessions(tmp_path: Path) -> None:
    header = ",".join(c.name for c in PLAIN_SESSION_COLUMNS)
    path = sessions_file(
        tmp_path,
        "a1,CS-1,2,3,tx-9,2024-05-01T08:00:00+02:00,2024-05-01T17:30:00+02:00,75,0.25,,0.8,"
        "7.4,100,7,yes,0.3,0.92,0.95,0.8",
        "a2,CS-2,1,,,2024-05-01T06:00:00Z,2024-05-01T09:00:00Z,40.5,0.5,12.5,,,,,,,,,",
        header=header,
    )
    sessions = read_plain_sessions_csv(path)
    assert sessions == [
        SessionSpec(
            session_id="a1",
            station_id="CS-1",
            evse_id=2,
            connector_id=3,
            transaction_id="tx-9",
            arrival_utc=dt.datetime(2024, 5, 1, 6, 0, tzinfo=UTC),
            departure_utc=dt.datetime(2024, 5, 1, 15, 30, tzinfo=UTC),
            battery_capacity_kwh=75.0,
            arrival_soc_frac=0.25,
            target_soc_frac=0.8,
            ev_max_ac_kw=7.4,
            ev_max_dc_kw=100.0,
            ev_max_discharge_kw=7.0,
            allow_v2g=True,
            v2g_min_soc_frac=0.3,
            charge_efficiency_frac=0.92,
            discharge_efficiency_frac=0.95,
            taper_start_soc_frac=0.8,
        ),
        SessionSpec(
            session_id="a2",
            station_id="CS-2",
            evse_id=1,
            arrival_utc=dt.datetime(2024, 5, 1, 6, 0, tzinfo=UTC),
            departure_utc=dt.datetime(2024, 5, 1, 9, 0, tzinfo=UTC),
            battery_capacity_kwh=40.5,
            arrival_soc_frac=0.5,
            energy_wanted_kwh=12.5,
        ),
    ]
    second = sessions[1]
    assert (second.connector_id, second.transaction_id, second.allow_v2g) == (1, None, False)
    assert second.arrival_utc.utcoffset() == dt.timedelta(0)


def test_one_of_the_energy_columns_is_enough(tmp_path: Path) -> None:
    header = HEADER.removesuffix(",target_soc_frac")
    row = GOOD_ROW.format(k=1).removesuffix(",")
    path = sessions_file(tmp_path, row, header=header)
    assert read_plain_sessions_csv(path)[0].energy_wanted_kwh == 20.0


def test_soc_above_one_names_line_and_column(tmp_path: Path) -> None:
    rows = [GOOD_ROW.format(k=k) for k in range(5)]
    bad = "s9,CS-1,1,2024-05-01T08:00:00+02:00,2024-05-01T17:00:00+02:00,60,1.4,20,"
    path = sessions_file(tmp_path, *rows, bad)
    assert problems_of(path) == ["line 7, column arrival_soc_frac: got '1.4'; expected a number <= 1"]


def test_naive_time_is_an_error(tmp_path: Path) -> None:
    path = sessions_file(tmp_path, "s1,CS-1,1,2024-05-01T08:00:00,2024-05-01T17:00:00+02:00,60,0.2,20,")
    assert problems_of(path) == [
        "line 2, column arrival_utc: got '2024-05-01T08:00:00'; expected a time with a UTC offset such as "
        "2024-05-01T08:00:00+02:00 (a time without one is ambiguous)"
    ]


def test_unparseable_time_is_an_error(tmp_path: Path) -> None:
    path = sessions_file(tmp_path, "s1,CS-1,1,yesterday,2024-05-01T17:00:00+02:00,60,0.2,20,")
    assert problems_of(path) == [
        "line 2, column arrival_utc: got 'yesterday'; expected an ISO 8601 time with a UTC offset such as "
        "2024-05-01T08:00:00+02:00"
    ]


def test_departure_before_arrival_is_an_error(tmp_path: Path) -> None:
    path = sessions_file(
        tmp_path,
        GOOD_ROW.format(k=1),
        "s2,CS-1,1,2024-05-01T08:00:00+02:00,2024-05-01T07:00:00+02:00,60,0.2,20,",
    )
    assert problems_of(path) == [
        "line 3, column departure_utc: got '2024-05-01T07:00:00+02:00'; expected a time after arrival_utc "
        "(2024-05-01T08:00:00+02:00)"
    ]


def test_departure_equal_to_arrival_in_another_offset_is_an_error(tmp_path: Path) -> None:
    path = sessions_file(tmp_path, "s1,CS-1,1,2024-05-01T08:00:00+02:00,2024-05-01T06:00:00Z,60,0.2,20,")
    assert problems_of(path)[0].startswith("line 2, column departure_utc: got '2024-05-01T06:00:00Z'")


def test_energy_and_target_both_given_is_an_error(tmp_path: Path) -> None:
    path = sessions_file(
        tmp_path, "s1,CS-1,1,2024-05-01T08:00:00+02:00,2024-05-01T17:00:00+02:00,60,0.2,20,0.8"
    )
    assert problems_of(path) == [
        "line 2, column target_soc_frac: got '0.8'; expected an empty cell when energy_wanted_kwh is given "
        "(give exactly one of energy_wanted_kwh and target_soc_frac)"
    ]


def test_neither_energy_nor_target_is_an_error(tmp_path: Path) -> None:
    path = sessions_file(tmp_path, "s1,CS-1,1,2024-05-01T08:00:00+02:00,2024-05-01T17:00:00+02:00,60,0.2,,")
    assert problems_of(path) == [
        "line 2, column energy_wanted_kwh: got ''; expected a value in exactly one of energy_wanted_kwh and "
        "target_soc_frac"
    ]


def test_unknown_column_is_named(tmp_path: Path) -> None:
    path = sessions_file(tmp_path, GOOD_ROW.format(k=1) + ",x", header=HEADER + ",colour")
    problems = problems_of(path)
    assert len(problems) == 1
    assert problems[0].startswith(
        "line 1, column colour: got 'colour'; expected a known column (unknown columns are rejected; "
        "check the spelling): session_id, station_id, evse_id,"
    )


def test_missing_required_columns_are_named(tmp_path: Path) -> None:
    header = HEADER.replace("battery_capacity_kwh,", "").replace("evse_id,", "")
    path = sessions_file(
        tmp_path, "s1,CS-1,2024-05-01T08:00:00+02:00,2024-05-01T17:00:00+02:00,0.2,20,", header=header
    )
    assert problems_of(path) == [
        "line 1, column evse_id: got nothing; expected this column in the header (it is required)",
        "line 1, column battery_capacity_kwh: got nothing; "
        "expected this column in the header (it is required)",
    ]


def test_missing_both_energy_columns_is_named(tmp_path: Path) -> None:
    header = HEADER.removesuffix(",energy_wanted_kwh,target_soc_frac")
    path = sessions_file(
        tmp_path, "s1,CS-1,1,2024-05-01T08:00:00+02:00,2024-05-01T17:00:00+02:00,60,0.2", header=header
    )
    assert problems_of(path) == [
        "line 1, column energy_wanted_kwh or target_soc_frac: got nothing; expected one of these columns in "
        "the header (each row gives exactly one of the two)"
    ]


def test_repeated_column_is_an_error(tmp_path: Path) -> None:
    path = sessions_file(tmp_path, GOOD_ROW.format(k=1) + ",CS-2", header=HEADER + ",station_id")
    assert problems_of(path) == [
        "line 1, column station_id: got 'station_id'; expected each column once (also column 2)"
    ]


def test_duplicate_session_id_names_both_lines(tmp_path: Path) -> None:
    path = sessions_file(tmp_path, GOOD_ROW.format(k=1), GOOD_ROW.format(k=2), GOOD_ROW.format(k=1))
    assert problems_of(path) == [
        "line 4, column session_id: got 's1'; expected a value not used before (line 2 has it too)"
    ]


def test_non_numeric_capacity_is_an_error(tmp_path: Path) -> None:
    path = sessions_file(
        tmp_path, "s1,CS-1,1,2024-05-01T08:00:00+02:00,2024-05-01T17:00:00+02:00,big,0.2,20,"
    )
    assert problems_of(path) == ["line 2, column battery_capacity_kwh: got 'big'; expected a number"]


def test_several_bad_rows_are_reported_at_once(tmp_path: Path) -> None:
    path = sessions_file(
        tmp_path,
        GOOD_ROW.format(k=1),
        "s2,CS-1,0,2024-05-01T08:00:00+02:00,2024-05-01T17:00:00+02:00,nan,1.4,20,",
        GOOD_ROW.format(k=3),
        "s4,,1.5,2024-05-01T08:00:00+02:00,2024-05-01T17:00:00+02:00,60,0.2,-1,",
    )
    with pytest.raises(CsvImportError) as info:
        read_plain_sessions_csv(path)
    assert str(info.value) == (
        f"6 problem(s) in {path}:\n"
        "  line 3, column evse_id: got '0'; expected a number >= 1\n"
        "  line 3, column battery_capacity_kwh: got 'nan'; expected a finite number\n"
        "  line 3, column arrival_soc_frac: got '1.4'; expected a number <= 1\n"
        "  line 5, column station_id: got ''; expected a value (the column is required)\n"
        "  line 5, column evse_id: got '1.5'; expected a whole number\n"
        "  line 5, column energy_wanted_kwh: got '-1'; expected a number >= 0"
    )


def test_bad_v2g_flag_and_accepted_words(tmp_path: Path) -> None:
    header = HEADER + ",allow_v2g"
    rows = [GOOD_ROW.format(k=k) + f",{word}" for k, word in enumerate(["TRUE", "no", "1", "0", "Yes", ""])]
    path = sessions_file(tmp_path, *rows, header=header)
    assert [s.allow_v2g for s in read_plain_sessions_csv(path)] == [True, False, True, False, True, False]
    path = sessions_file(tmp_path, GOOD_ROW.format(k=1) + ",maybe", header=header)
    assert problems_of(path) == [
        "line 2, column allow_v2g: got 'maybe'; expected one of true, false, 1, 0, yes, no"
    ]


def test_byte_order_mark_spaces_and_blank_lines_are_handled(tmp_path: Path) -> None:
    text = (
        "\ufeff"
        + HEADER.replace(",", " , ")
        + "\r\n"
        + GOOD_ROW.format(k=1).replace(",", ", ")
        + "\r\n\r\n,,,,,,,,\r\n"
    )
    path = tmp_path / "bom.csv"
    path.write_bytes(text.encode("utf-8"))
    [session] = read_plain_sessions_csv(path)
    assert session.session_id == "s1"
    assert session.energy_wanted_kwh == 20.0


def test_lines_count_physical_lines_with_quoted_newlines(tmp_path: Path) -> None:
    row = '"s1",CS-1,1,2024-05-01T08:00:00+02:00,2024-05-01T17:00:00+02:00,60,0.2,20,'
    quoted = '"s\n2",CS-1,1,2024-05-01T08:00:00+02:00,2024-05-01T17:00:00+02:00,60,0.2,20,'
    bad = "s3,CS-1,1,2024-05-01T08:00:00+02:00,2024-05-01T17:00:00+02:00,60,2,20,"
    path = sessions_file(tmp_path, row, quoted, bad)
    assert problems_of(path) == ["line 5, column arrival_soc_frac: got '2'; expected a number <= 1"]


def test_wrong_number_of_fields_is_an_error(tmp_path: Path) -> None:
    path = sessions_file(tmp_path, GOOD_ROW.format(k=1), GOOD_ROW.format(k=2) + ",extra")
    assert problems_of(path) == [
        "line 3, column (row): got 10 fields; expected 9 fields, one per header column"
    ]


def test_header_only_or_empty_file_is_an_error(tmp_path: Path) -> None:
    assert problems_of(sessions_file(tmp_path)) == [
        "line 2, column (file): got no data rows; expected at least one row below the header"
    ]
    assert problems_of(write(tmp_path, "")) == [
        "line 1, column (file): got nothing; expected a header row naming the columns"
    ]


def test_missing_or_undecodable_file_is_reported_on_line_0(tmp_path: Path) -> None:
    missing = tmp_path / "absent.csv"
    assert problems_of(missing) == [
        "line 0, column (file): got 'absent.csv'; "
        "expected a readable UTF-8 CSV file (No such file or directory)"
    ]
    latin = tmp_path / "latin.csv"
    latin.write_bytes((HEADER + "\ns\xe9,CS,1\n").encode("latin-1"))
    [problem] = problems_of(latin)
    assert problem.startswith("line 0, column (file): got 'latin.csv'; expected a readable UTF-8 CSV file (")


def test_gzip_plain_sessions(tmp_path: Path) -> None:
    path = tmp_path / "sessions.csv.gz"
    path.write_bytes(gzip.compress(f"{HEADER}\n{GOOD_ROW.format(k=1)}\n".encode()))
    assert [s.session_id for s in read_plain_sessions_csv(path)] == ["s1"]


def _csv_cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, dt.datetime):
        return value.isoformat()
    if isinstance(value, float):
        return repr(value)
    return str(value).lower() if isinstance(value, bool) else str(value)


_fracs = st.floats(min_value=0.0, max_value=1.0)
_positive_fracs = st.floats(min_value=1e-6, max_value=1.0)
_times = st.datetimes(
    min_value=dt.datetime(2020, 1, 1), max_value=dt.datetime(2030, 1, 1), timezones=st.just(UTC)
)
_sessions = st.builds(
    SessionSpec,
    session_id=st.text("abcXYZ09-_", min_size=1, max_size=8),
    station_id=st.text("abc, \"'09", min_size=1, max_size=8).filter(
        lambda s: s.strip() == s and s.strip() != ""
    ),
    evse_id=st.integers(1, 99),
    connector_id=st.integers(1, 9),
    transaction_id=st.none() | st.text("tx0123", min_size=1, max_size=5),
    arrival_utc=_times,
    departure_utc=_times,
    battery_capacity_kwh=st.floats(min_value=0.5, max_value=1000.0),
    arrival_soc_frac=_fracs,
    energy_wanted_kwh=st.floats(min_value=0.0, max_value=200.0),
    target_soc_frac=st.none(),
    ev_max_ac_kw=st.floats(min_value=1.0, max_value=22.0),
    ev_max_dc_kw=st.floats(min_value=1.0, max_value=400.0),
    allow_v2g=st.booleans(),
    v2g_min_soc_frac=_fracs,
    charge_efficiency_frac=_positive_fracs,
    discharge_efficiency_frac=_positive_fracs,
    taper_start_soc_frac=st.none() | _positive_fracs,
)


@settings(max_examples=40, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(_sessions, min_size=1, max_size=4, unique_by=lambda s: s.session_id))
def test_any_valid_sessions_round_trip_through_the_plain_layout(
    tmp_path: Path, specs: list[SessionSpec]
) -> None:
    specs = [
        s.model_copy(update={"departure_utc": max(s.departure_utc, s.arrival_utc + dt.timedelta(minutes=1))})
        for s in specs
    ]
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    names = list(SessionSpec.model_fields)
    writer.writerow(names)
    writer.writerows([_csv_cell(getattr(s, name)) for name in names] for s in specs)
    path = write(tmp_path, buffer.getvalue(), "round_trip.csv")
    assert read_plain_sessions_csv(path) == specs


# --- Caltech (ACN-Data) sessions ------------------------------------------------------------------


EXPECTED_CALTECH = [
    CaltechSession(
        session_id="2_39_131_30_2019-05-01 08:18:44.595638",
        station_id="CA-305",
        arrival_utc=dt.datetime(2019, 5, 1, 8, 18, 45, tzinfo=UTC),
        departure_utc=dt.datetime(2019, 5, 1, 22, 52, 36, tzinfo=UTC),
        delivered_energy_kwh=44.069,
        requested_energy_kwh=60.0,
        is_claimed=True,
    ),
    CaltechSession(
        session_id="2_39_88_24_2019-05-01 13:33:13.958599",
        station_id="CA-314",
        arrival_utc=dt.datetime(2019, 5, 1, 13, 33, 14, tzinfo=UTC),
        departure_utc=dt.datetime(2019, 5, 1, 18, 50, 55, tzinfo=UTC),
        delivered_energy_kwh=17.666,
        requested_energy_kwh=None,
        is_claimed=False,
    ),
]


def test_caltech_plain_file(tmp_path: Path) -> None:
    path = write(tmp_path, f"{CALTECH_HEADER}\n{CALTECH_ROWS}", "caltech.csv")
    sessions = read_caltech_sessions_csv(path)
    assert sessions == EXPECTED_CALTECH
    assert all(s.arrival_utc.tzinfo is UTC for s in sessions)


def test_caltech_gzip_file(tmp_path: Path) -> None:
    path = tmp_path / "2019-05-01 2019-08-31.csv.gz"
    with gzip.open(path, "wt", encoding="utf-8", newline="") as handle:
        handle.write(f"{CALTECH_HEADER}\n{CALTECH_ROWS}")
    assert read_caltech_sessions_csv(path) == EXPECTED_CALTECH


def test_caltech_bad_rows_are_all_reported(tmp_path: Path) -> None:
    rows = (
        "2019-05-01 08:00:00-07:00,2019-05-01 07:00:00-07:00,10,5,CA-1,a,,True\n"
        "2019-05-01 08:00:00,2019-05-01 09:00:00-07:00,10,0,CA-1,b,,True\n"
        "2019-05-01 08:00:00-07:00,2019-05-01 09:00:00-07:00,-3,inf,,c,,sometimes\n"
        "2019-05-01 08:00:00-07:00,2019-05-01 09:00:00-07:00,10,5,CA-1,a,,False\n"
    )
    path = write(tmp_path, f"{CALTECH_HEADER}\n{rows}", "caltech.csv")
    assert problems_of(path, read_caltech_sessions_csv) == [
        "line 2, column departure: got '2019-05-01 07:00:00-07:00'; expected a time after arrival "
        "(2019-05-01 08:00:00-07:00)",
        "line 3, column arrival: got '2019-05-01 08:00:00'; expected a time with a UTC offset such as "
        "2024-05-01T08:00:00+02:00 (a time without one is ambiguous)",
        "line 3, column delivered_energy (kWh): got '0'; expected a finite number > 0",
        "line 4, column requested_energy (kWh): got '-3'; expected a finite number >= 0",
        "line 4, column delivered_energy (kWh): got 'inf'; expected a finite number > 0",
        "line 4, column station_id: got ''; expected a value (the column is required)",
        "line 4, column claimed: got 'sometimes'; expected one of True, False (or empty)",
        "line 5, column session_id: got 'a'; expected a value not used before (line 2 has it too)",
    ]


def test_caltech_missing_and_unknown_columns(tmp_path: Path) -> None:
    header = CALTECH_HEADER.replace("delivered_energy (kWh)", "kWhDelivered")
    path = write(tmp_path, f"{header}\n{CALTECH_ROWS}", "caltech.csv")
    problems = problems_of(path, read_caltech_sessions_csv)
    assert problems[0].startswith("line 1, column kWhDelivered: got 'kWhDelivered'; expected a known column")
    assert problems[1:] == [
        "line 1, column delivered_energy (kWh): got nothing; "
        "expected this column in the header (it is required)"
    ]


# --- prices ---------------------------------------------------------------------------------------


def test_prices_in_eur_per_kwh(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "time_utc,price_eur_per_kwh\n2024-01-01T02:00:00+01:00,0.12\n2024-01-01T00:00:00Z,0.10\n"
        "2024-01-01T02:00:00Z,-0.01\n",
        "prices.csv",
    )
    prices = read_prices_csv(path)
    expected_index = pd.DatetimeIndex(
        ["2024-01-01T00:00:00Z", "2024-01-01T01:00:00Z", "2024-01-01T02:00:00Z"], name="time_utc"
    )
    pd.testing.assert_series_equal(
        prices, pd.Series([0.10, 0.12, -0.01], index=expected_index, name="price_eur_per_kwh")
    )
    assert isinstance(prices.index, pd.DatetimeIndex)
    assert str(prices.index.tz) == "UTC"
    assert prices.index.is_monotonic_increasing
    assert prices.index.is_unique


def test_prices_in_eur_per_mwh_are_converted(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "time_utc,price_eur_per_mwh\n2024-01-01T00:00:00Z,85.5\n2024-01-01T00:15:00Z,-12\n2024-01-01T00:30:00Z,0\n",
        "prices.csv",
    )
    prices = read_prices_csv(path)
    assert prices.tolist() == pytest.approx([0.0855, -0.012, 0.0])
    assert prices.dtype == "float64"
    assert prices.name == "price_eur_per_kwh"


def test_irregular_price_spacing_names_the_line_and_step(tmp_path: Path) -> None:
    times = ["00:00", "01:00", "02:00", "04:00", "05:00"]
    rows = "".join(f"2024-01-01T{t}:00Z,{k}\n" for k, t in enumerate(times))
    path = write(tmp_path, f"time_utc,price_eur_per_mwh\n{rows}", "prices.csv")
    assert problems_of(path, read_prices_csv) == [
        "line 5, column time_utc: got '2024-01-01T04:00:00Z'; expected 2024-01-01T03:00:00+00:00, 60 min "
        "after line 4 (prices must be regularly spaced; the file's step is 60 min)"
    ]


def test_duplicate_price_times_name_both_lines(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "time_utc,price_eur_per_kwh\n2024-01-01T00:00:00Z,0.1\n2024-01-01T01:00:00Z,0.1\n"
        "2024-01-01T02:00:00+01:00,0.2\n",
        "prices.csv",
    )
    assert problems_of(path, read_prices_csv) == [
        "line 4, column time_utc: got '2024-01-01T02:00:00+01:00'; expected a value not used before "
        "(line 3 has it too)"
    ]


def test_bad_price_rows_are_all_reported(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "time_utc,price_eur_per_kwh\n2024-01-01 00:00,0.1\n2024-01-01T01:00:00Z,nan\n"
        "2024-01-01T02:00:00Z,cheap\nsoon,\n",
        "prices.csv",
    )
    assert problems_of(path, read_prices_csv) == [
        "line 2, column time_utc: got '2024-01-01 00:00'; expected a time with a UTC offset such as "
        "2024-05-01T08:00:00+02:00 (a time without one is ambiguous)",
        "line 3, column price_eur_per_kwh: got 'nan'; expected a finite number",
        "line 4, column price_eur_per_kwh: got 'cheap'; expected a number",
        "line 5, column time_utc: got 'soon'; expected an ISO 8601 time with a UTC offset such as "
        "2024-05-01T08:00:00+02:00",
        "line 5, column price_eur_per_kwh: got ''; expected a number",
    ]


def test_prices_need_exactly_one_price_column(tmp_path: Path) -> None:
    both = write(
        tmp_path, "time_utc,price_eur_per_kwh,price_eur_per_mwh\n2024-01-01T00:00:00Z,0.1,100\n", "p.csv"
    )
    assert problems_of(both, read_prices_csv) == [
        "line 1, column price_eur_per_kwh and price_eur_per_mwh: got both columns; expected exactly one of "
        "the columns price_eur_per_kwh and price_eur_per_mwh in the header"
    ]
    neither = write(tmp_path, "time_utc\n2024-01-01T00:00:00Z\n", "p.csv")
    assert problems_of(neither, read_prices_csv) == [
        "line 1, column price_eur_per_kwh or price_eur_per_mwh: got nothing; expected exactly one of the "
        "columns price_eur_per_kwh and price_eur_per_mwh in the header"
    ]
