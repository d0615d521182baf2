"""The session-needs forecaster in the service: numpy features equal the forecasting package's bit for
bit, forecasts equal the package's post-processing of the same graphs, the start checks, and the
endpoint over real HTTP with its 404 and its 422s.

The service code never imports pandas, lightgbm or holidays; these tests do (the test environment has
the forecasting extra) to compare against ``smac_rl_forecasting.sessions``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import holidays
import numpy as np
import numpy.typing as npt
import onnxruntime
import pandas as pd
import pytest
from typer.testing import CliRunner

from smac_rl.cli.main import app as cli_app
from smac_rl.data.loaders import caltech_sessions
from smac_rl.features.session_windows import (
    WINDOWS,
    SessionArrays,
    session_feature_names,
    window_statistics,
)
from smac_rl_forecasting import sessions as lib
from smac_rl_forecasting.features import calendar_features
from smac_rl_forecasting.model import BoosterConfig
from smac_rl_forecasting.onnx_export import export_forecaster, holiday_metadata
from smac_rl_serve.model import ModelError
from smac_rl_serve.session_forecaster import (
    OUTPUT_NAMES,
    CheckedHistory,
    OnnxSessionNeedsForecaster,
    SessionForecastInputError,
    check_session_history,
    session_features,
)
from smac_rl_serve.settings import (
    DEFAULT_SESSION_FORECASTER_DIR,
    Settings,
    default_forecaster_dir,
)
from tests.serve.support import assert_needs_a_key_and_the_forecaster, call, problem_fields

REPOSITORY = Path(__file__).resolve().parents[2]
BUNDLED_DIR = REPOSITORY / "models" / "forecasters" / "caltech_session_needs" / "v1"
TIMEZONE = "America/Los_Angeles"
UTC = dt.UTC

TINY = BoosterConfig(n_trees=10, num_leaves=7, min_data_in_leaf=20, num_threads=1, seed=0)
"""Few small trees, one thread: fast and reproducible."""


def _local_day(day: str, minutes: range) -> list[pd.Timestamp]:
    """Instants ``minutes`` after local midnight of ``day`` (elapsed time, so DST days have 23 or 25 h)."""
    midnight = pd.Timestamp(day).tz_localize(TIMEZONE).tz_convert("UTC")
    return [midnight + pd.Timedelta(minutes=m) for m in minutes]


SYNTHETIC = {
    # 2019-11-03: local 01:00-02:00 happens twice (PDT, then PST); every 37 min over the 25 hours.
    "dst_autumn": _local_day("2019-11-03", range(0, 25 * 60, 37)),
    # 2020-03-08: local 02:00-03:00 does not exist; every 37 min over the 23 hours.
    "dst_spring": _local_day("2020-03-08", range(0, 23 * 60, 37)),
    # Independence Day, Labor Day, Thanksgiving and the day after (a California holiday), and the
    # observed Independence Day of 2021 (a Monday).
    "holidays": [
        t
        for day in ("2019-07-04", "2019-09-02", "2019-11-28", "2019-11-29", "2021-07-05")
        for t in _local_day(day, range(6 * 60, 20 * 60, 97))
    ],
}
REAL_DAYS = ("2019-07-04", "2019-09-02", "2019-11-03", "2019-11-04", "2020-03-08", "2020-03-09", "2021-07-05")
"""Days whose real Caltech arrivals are forecast too (holidays, DST days and the days after)."""


@pytest.fixture(scope="module")
def table() -> pd.DataFrame:
    """Every bundled Caltech session (2019-05 .. 2019-12, 2020-02 .. 05, 2021-05 .. 08)."""
    return caltech_sessions()


@pytest.fixture(scope="module")
def arrivals(table: pd.DataFrame) -> pd.DatetimeIndex:
    """The synthetic instants and the real arrivals of :data:`REAL_DAYS`, plus every 9th of 2021."""
    local_day = table["arrival_utc"].dt.tz_convert(TIMEZONE).dt.date.astype(str)
    real = table["arrival_utc"][local_day.isin(REAL_DAYS)]
    later = table["arrival_utc"][table["period"].str.startswith("2021")].iloc[200::9]
    synthetic = [t for instants in SYNTHETIC.values() for t in instants]
    return pd.DatetimeIndex([*real, *later, *synthetic])


def _checked(sessions: pd.DataFrame) -> CheckedHistory:
    return check_session_history(
        list(sessions["arrival_utc"].dt.to_pydatetime()),
        list(sessions["departure_utc"].dt.to_pydatetime()),
        [float(e) for e in sessions["delivered_energy_kwh"]],
    )


@pytest.fixture(scope="module")
def history(table: pd.DataFrame) -> CheckedHistory:
    return _checked(table)


@pytest.fixture(scope="module")
def bundled() -> OnnxSessionNeedsForecaster:
    return OnnxSessionNeedsForecaster(BUNDLED_DIR)


class _OnnxBooster:
    """A graph with a booster's ``predict``, so the package's own post-processing runs on it."""

    def __init__(self, path: Path) -> None:
        # One thread, as the service runs them: onnxruntime sums the trees of a multi-threaded run in
        # another order, which moves float32 outputs by an ulp or so.
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = 1
        self.session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

    def predict(self, features: npt.NDArray[Any]) -> npt.NDArray[np.float64]:
        rows = np.asarray(features, dtype=np.float32)
        return np.asarray(self.session.run(None, {"features": rows})[0], dtype=np.float64).reshape(-1)


def _package_twin(directory: Path) -> lib.SessionNeedsForecaster:
    """The forecasting package's forecaster with the folder's graphs as boosters and its settings."""
    metadata = json.loads((directory / "metadata.json").read_text(encoding="utf-8"))
    return lib.SessionNeedsForecaster(
        features=lib.SessionFeatureConfig(**metadata["features"]),
        boosters={name: _OnnxBooster(directory / f"{name}.onnx") for name in OUTPUT_NAMES},
        interval_widening=tuple(metadata["interval_widening"]),
    )


def _columns(frame: pd.DataFrame) -> np.ndarray:
    return frame[list(OUTPUT_NAMES)].to_numpy()


# Holidays in the metadata ------------------------------------------------------------------------


def test_the_regenerated_metadata_lists_the_holidays_and_keeps_the_graphs_hashes() -> None:
    metadata = json.loads((BUNDLED_DIR / "metadata.json").read_text(encoding="utf-8"))
    entry = metadata["holidays"]
    assert (entry["country"], entry["subdiv"], entry["first_year"], entry["last_year"]) == (
        "US",
        "CA",
        2015,
        2035,
    )
    expected = holidays.country_holidays("US", subdiv="CA", years=range(2015, 2036))
    assert entry["dates"] == [d.isoformat() for d in sorted(expected)]
    assert {"2019-07-04", "2019-11-28", "2019-11-29", "2021-07-05"} <= set(entry["dates"])
    assert "2019-11-27" not in entry["dates"]  # the day before Thanksgiving
    assert holiday_metadata(metadata["features"]) == entry
    # The feature the forecasting package builds, day by day (local noon), year by year as it asks.
    listed = set(entry["dates"])
    config = lib.SessionFeatureConfig().calendar
    for year in range(2015, 2036):
        days = pd.date_range(f"{year}-01-01 12:00", f"{year}-12-31 12:00", freq="D", tz=TIMEZONE)
        is_holiday = calendar_features(days.tz_convert("UTC"), config)[:, 3]
        np.testing.assert_array_equal(is_holiday, [d.date().isoformat() in listed for d in days])
    # The graphs are those of the export: their hashes were not touched.
    for name in OUTPUT_NAMES:
        digest = hashlib.sha256((BUNDLED_DIR / f"{name}.onnx").read_bytes()).hexdigest()
        assert metadata["outputs"][name]["sha256"] == digest
    assert metadata["command"].startswith("smac forecast backtest --target sessions --export")
    assert metadata["feature_names"] == session_feature_names()


# Feature parity ---------------------------------------------------------------------------------


def test_numpy_features_equal_the_packages_bit_for_bit(
    table: pd.DataFrame,
    arrivals: pd.DatetimeIndex,
    history: CheckedHistory,
    bundled: OnnxSessionNeedsForecaster,
) -> None:
    library_history = lib.SessionHistory.from_frame(table, TIMEZONE)
    log = SessionArrays.of(history.arrival_ns, history.departure_ns, history.energy_kwh, TIMEZONE)
    for name in (
        "arrival_ns",
        "departure_ns",
        "values",
        "local_day",
        "local_hour",
        "weekday",
        "departure_sorted_ns",
        "first_arrival_ns",
    ):
        np.testing.assert_array_equal(getattr(log, name), getattr(library_history, name), err_msg=name)
    arrival_ns = lib.check_arrivals(arrivals)
    expected = lib.window_statistics(arrival_ns, library_history, TIMEZONE)
    got = window_statistics(arrival_ns, log, TIMEZONE)
    for name in ("n_sessions_28d", "n_sessions_7d", "n_same_hour_28d", "history_days"):
        np.testing.assert_array_equal(getattr(got, name), getattr(expected, name), err_msg=name)
    for window in WINDOWS:
        np.testing.assert_array_equal(got.quantiles[window], expected.quantiles[window], err_msg=window)
    assert expected.has_history.all()  # every chosen arrival has its 28 days
    features, levels = lib.session_features(
        arrival_ns, expected, lib.SessionFeatureConfig(is_normalized=False)
    )
    got_features, got_levels = session_features(arrival_ns, got, bundled.config)
    assert got_features.shape == (len(arrivals), 23)
    np.testing.assert_array_equal(got_features, features)  # float64, bit for bit
    np.testing.assert_array_equal(got_levels, levels)
    # The normalised variant (levels and ratio features) is the package's too.
    normalised = lib.SessionFeatureConfig(is_normalized=True)
    features, levels = lib.session_features(arrival_ns, expected, normalised)
    got_features, got_levels = session_features(arrival_ns, got, replace(bundled.config, is_normalized=True))
    np.testing.assert_array_equal(got_features, features)
    np.testing.assert_array_equal(got_levels, levels)
    assert (levels != 1.0).any()


def test_calendar_columns_by_hand_on_dst_days_and_holidays(
    history: CheckedHistory, bundled: OnnxSessionNeedsForecaster
) -> None:
    names = session_feature_names()
    hour, minute, weekday, holiday = (
        names.index(n) for n in ("hour_local_h", "minute_of_day_min", "weekday", "is_holiday")
    )
    log = SessionArrays.of(history.arrival_ns, history.departure_ns, history.energy_kwh, TIMEZONE)
    instants = pd.DatetimeIndex(
        [
            "2019-11-03 08:30Z",  # 01:30 PDT
            "2019-11-03 09:30Z",  # 01:30 PST, the same local time an hour later
            "2020-03-08 09:59Z",  # 01:59 PST
            "2020-03-08 10:00Z",  # 03:00 PDT: 02:00 is skipped
            "2019-11-28 20:07Z",  # Thanksgiving, 12:07 PST
            "2019-11-29 07:59Z",  # 23:59 PST on the 28th, still Thanksgiving
            "2019-11-30 08:00Z",  # 00:00 on the 30th, a plain Saturday
        ]
    )
    arrival_ns = lib.check_arrivals(instants)
    stats = window_statistics(arrival_ns, log, TIMEZONE)
    rows, _ = session_features(arrival_ns, stats, bundled.config)
    assert rows[:, hour].tolist() == [1.0, 1.0, 1.0, 3.0, 12.0, 23.0, 0.0]
    assert rows[:, minute].tolist() == [90.0, 90.0, 119.0, 180.0, 727.0, 1439.0, 0.0]
    assert rows[:, weekday].tolist() == [6.0, 6.0, 6.0, 6.0, 3.0, 3.0, 5.0]
    assert rows[:, holiday].tolist() == [0.0, 0.0, 0.0, 0.0, 1.0, 1.0, 0.0]


# Forecast parity --------------------------------------------------------------------------------


def test_bundled_forecasts_equal_the_packages_post_processing_of_its_graphs(
    table: pd.DataFrame,
    arrivals: pd.DatetimeIndex,
    history: CheckedHistory,
    bundled: OnnxSessionNeedsForecaster,
) -> None:
    expected = _package_twin(BUNDLED_DIR).predict(arrivals, table)
    got = bundled.forecast(list(arrivals.to_pydatetime()), history)
    np.testing.assert_array_equal(got.quantiles, _columns(expected))
    assert [t.isoformat() for t in got.arrival_utc] == [t.isoformat() for t in expected["arrival_utc"]]
    assert got.timezone == TIMEZONE
    for t in range(2):
        block = got.quantiles[:, 3 * t : 3 * t + 3]
        assert (np.diff(block, axis=1) >= 0.0).all()
        assert (block >= 0.0).all()
    # Sessions not yet ended at an arrival are not read: dropping them, or changing them, changes nothing.
    for i in (0, 100, len(arrivals) - 1):
        arrival = arrivals[i]
        ended = table["departure_utc"] < arrival
        altered = table.assign(
            delivered_energy_kwh=table["delivered_energy_kwh"].where(
                ended, 3.0 * table["delivered_energy_kwh"]
            ),
            departure_utc=table["departure_utc"].where(ended, table["departure_utc"] + pd.Timedelta(hours=5)),
        )
        for sessions in (table[ended], altered):
            alone = bundled.forecast([arrival.to_pydatetime()], _checked(sessions))
            np.testing.assert_array_equal(alone.quantiles, got.quantiles[i : i + 1])
    # The counter-test: the ended sessions do move it.
    arrival = arrivals[0]
    ended = table["departure_utc"] < arrival
    more = table.assign(
        delivered_energy_kwh=table["delivered_energy_kwh"].where(~ended, 3.0 * table["delivered_energy_kwh"])
    )
    moved = bundled.forecast([arrival.to_pydatetime()], _checked(more[more["departure_utc"] < arrival]))
    assert (moved.quantiles[0, :3] > got.quantiles[0, :3]).all()


@pytest.fixture(scope="module")
def exported_tiny(
    table: pd.DataFrame, tmp_path_factory: pytest.TempPathFactory
) -> tuple[lib.SessionNeedsForecaster, Path]:
    """A tiny normalised LightGBM forecaster fitted on 2019-05 .. 07-20, exported by the package."""
    fit = table[table["arrival_utc"] < pd.Timestamp("2019-07-20", tz="UTC")]
    fitted = lib.SessionNeedsForecaster(booster=TINY, interval_widening=(1.25, 0.8)).fit(fit)
    parity_arrivals = pd.DatetimeIndex(table["arrival_utc"].iloc[2500:3500:4])
    rows, _, _ = fitted.feature_rows(parity_arrivals, table)
    directory = tmp_path_factory.mktemp("tiny_sessions") / "v1"
    export_forecaster(fitted, directory, rows, "tiny_sessions", "v1", tolerance=lib.SESSION_PARITY_TOLERANCE)
    return fitted, directory


def test_service_forecasts_equal_lightgbm_within_the_exported_parity(
    table: pd.DataFrame,
    arrivals: pd.DatetimeIndex,
    history: CheckedHistory,
    exported_tiny: tuple[lib.SessionNeedsForecaster, Path],
) -> None:
    fitted, directory = exported_tiny
    metadata = json.loads((directory / "metadata.json").read_text(encoding="utf-8"))
    assert metadata["features"]["is_normalized"] is True
    written = holiday_metadata(metadata["features"])  # the exporter writes the holidays of any forecaster
    assert written is not None
    assert metadata["holidays"]["dates"] == written["dates"]
    service = OnnxSessionNeedsForecaster(directory)
    got = service.forecast(list(arrivals.to_pydatetime()), history)
    # The package's post-processing of the same graphs: equal bit for bit.
    np.testing.assert_array_equal(got.quantiles, _columns(_package_twin(directory).predict(arrivals, table)))
    # LightGBM itself: the graphs sum float32 leaves, so dwell times of hundreds of minutes move by
    # up to about 1e-4 min (measured: 6e-6 kWh and 8e-5 min at most over these arrivals).
    np.testing.assert_allclose(got.quantiles, _columns(fitted.predict(arrivals, table)), rtol=1e-6, atol=1e-5)


# Start checks -----------------------------------------------------------------------------------


def _copy(tmp_path: Path) -> Path:
    target = tmp_path / "forecaster"
    shutil.copytree(BUNDLED_DIR, target)
    return target


def _edit_metadata(directory: Path, **changes: Any) -> None:
    path = directory / "metadata.json"
    metadata = json.loads(path.read_text(encoding="utf-8"))
    metadata.update(changes)
    path.write_text(json.dumps(metadata), encoding="utf-8")


def test_a_flipped_byte_in_a_graph_is_refused(tmp_path: Path) -> None:
    directory = _copy(tmp_path)
    graph = directory / "q50_dwell_min.onnx"
    data = bytearray(graph.read_bytes())
    data[len(data) // 2] ^= 1
    graph.write_bytes(bytes(data))
    with pytest.raises(ModelError) as caught:
        OnnxSessionNeedsForecaster(directory)
    message = str(caught.value)
    assert message.startswith(f"session forecaster: {graph.resolve()} has sha256 ")
    assert "metadata.json expects 3489e1a42298cba37179056d9517605718d7d14f991bf2b03208ca04ca2e2ced" in message
    assert "(field outputs.q50_dwell_min.sha256): the file was altered or replaced" in message


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"schema_version": 2}, "field schema_version is 2; expected 1"),
        ({"field": "prices"}, "field field is 'prices'; expected 'sessions'"),
        ({"window_days": 21}, "field window_days is 21; expected 28"),
        ({"min_window_sessions": "10"}, "field min_window_sessions is '10'; expected a whole number"),
        ({"output_names": ["q50_energy_kwh"]}, "field output_names is ['q50_energy_kwh']; expected"),
        ({"feature_names": ["hour_local_h"]}, "field feature_names is ['hour_local_h']; expected"),
        ({"inputs": {"features": {"dtype": "float32", "shape": ["N", 22]}}}, "inputs.features.shape"),
        ({"holidays": None}, "field holidays is (missing); expected the public holidays"),
        ({"interval_widening": [1.07]}, "field interval_widening is [1.07]; expected 2 finite factors > 0"),
        ({"interval_widening": [1.07, 1.15]}, "field postprocess is 'per target"),
        ({"postprocess": "as is"}, "field postprocess is 'as is'; expected 'per target (energy_kwh"),
    ],
)
def test_start_checks_name_the_metadata_field(tmp_path: Path, changes: dict[str, Any], message: str) -> None:
    directory = _copy(tmp_path)
    _edit_metadata(directory, **changes)
    with pytest.raises(ModelError) as caught:
        OnnxSessionNeedsForecaster(directory)
    assert str(caught.value).startswith(
        f"session forecaster: {(directory / 'metadata.json').resolve()} field "
    )
    assert message in str(caught.value)


def test_missing_folder_graph_and_holiday_country_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match=r"metadata\.json is missing; expected metadata\.json and the six"):
        OnnxSessionNeedsForecaster(tmp_path / "nowhere")
    directory = _copy(tmp_path)
    (directory / "q90_energy_kwh.onnx").unlink()
    with pytest.raises(ModelError, match=r"q90_energy_kwh\.onnx is missing"):
        OnnxSessionNeedsForecaster(directory)
    other = _copy(tmp_path / "other")
    metadata = json.loads((other / "metadata.json").read_text(encoding="utf-8"))
    metadata["holidays"]["country"] = "NL"
    (other / "metadata.json").write_text(json.dumps(metadata), encoding="utf-8")
    with pytest.raises(ModelError, match=r"field holidays\.country is 'NL'; expected 'US'"):
        OnnxSessionNeedsForecaster(other)


def test_history_checks_name_each_entry() -> None:
    a = dt.datetime(2019, 6, 1, 8, tzinfo=UTC)
    hour = dt.timedelta(hours=1)
    with pytest.raises(SessionForecastInputError) as caught:
        check_session_history(
            [a, a, a.replace(tzinfo=None), a, dt.datetime(1969, 12, 31, tzinfo=UTC)],
            [a + hour, a - hour, a + hour, a + dt.timedelta(days=32), a],
            [1.0, 2.0, 3.0, math.nan, -1.0],
        )
    assert [(p.path, p.expectation.split(" (")[0]) for p in caught.value.problems] == [
        ("history[1].departure_utc", "after its arrival_utc 2019-06-01T08:00:00+00:00"),
        ("history[2].arrival_utc", "a timezone-aware instant"),
        ("history[3].departure_utc", "at most 31 days after its arrival_utc 2019-06-01T08:00:00+00:00"),
        ("history[3].energy_kwh", "a finite number >= 0"),
        ("history[4].arrival_utc", "an instant in the years 1970 to 2199"),
        ("history[4].energy_kwh", "a finite number >= 0"),
    ]


# The endpoint -----------------------------------------------------------------------------------

ARRIVALS_2019_11_04 = ["2019-11-04T15:40:00Z", "2019-11-04T08:05:00-08:00", "2019-11-04T23:30:00Z"]
"""Three arrivals of the Monday after the autumn change (one given in local time)."""


def _history_entries(sessions: pd.DataFrame) -> list[dict[str, Any]]:
    return [
        {"arrival_utc": a.isoformat(), "departure_utc": d.isoformat(), "energy_kwh": float(e)}
        for a, d, e in zip(
            sessions["arrival_utc"], sessions["departure_utc"], sessions["delivered_energy_kwh"], strict=True
        )
    ]


@pytest.fixture(scope="module")
def body(table: pd.DataFrame) -> dict[str, Any]:
    """Arrivals on 2019-11-04 and the sessions that arrived from 2019-09-25 to 2019-11-06."""
    arrival = table["arrival_utc"]
    window = table[
        (arrival >= pd.Timestamp("2019-09-25", tz="UTC")) & (arrival < pd.Timestamp("2019-11-06", tz="UTC"))
    ]
    return {"arrivals_utc": ARRIVALS_2019_11_04, "history": _history_entries(window)}


def test_endpoint_answers_the_forecasters_quantiles(
    base_url: str, body: dict[str, Any], table: pd.DataFrame, bundled: OnnxSessionNeedsForecaster
) -> None:
    status, answer, _ = call("POST", f"{base_url}/v1/forecasts/sessions", body)
    assert status == 200, answer
    assert answer["forecaster"] == {"name": "caltech_session_needs", "version": "v1"}
    metadata = json.loads((BUNDLED_DIR / "metadata.json").read_text(encoding="utf-8"))
    assert answer["onnx_sha256"] == {n: metadata["outputs"][n]["sha256"] for n in OUTPUT_NAMES}
    assert answer["timezone"] == TIMEZONE
    assert answer["n_history_sessions"] == len(body["history"])
    assert [f["arrival_utc"] for f in answer["forecasts"]] == [
        "2019-11-04T15:40:00+00:00",
        "2019-11-04T16:05:00+00:00",
        "2019-11-04T23:30:00+00:00",
    ]
    keys = [
        "energy_q10_kwh",
        "energy_q50_kwh",
        "energy_q90_kwh",
        "dwell_q10_min",
        "dwell_q50_min",
        "dwell_q90_min",
    ]
    got = np.array([[f[k] for k in keys] for f in answer["forecasts"]], dtype=np.float64)
    # The package, on every session it has: only those ended before each arrival count.
    arrivals = pd.DatetimeIndex([pd.Timestamp(t).tz_convert("UTC") for t in ARRIVALS_2019_11_04])
    np.testing.assert_array_equal(got, _columns(_package_twin(BUNDLED_DIR).predict(arrivals, table)))
    stats = lib.window_statistics(
        lib.check_arrivals(arrivals), lib.SessionHistory.from_frame(table, TIMEZONE), TIMEZONE
    )
    assert [f["n_sessions_28d"] for f in answer["forecasts"]] == stats.n_sessions_28d.tolist()


def test_endpoint_takes_the_sites_timezone(base_url: str, body: dict[str, Any]) -> None:
    url = f"{base_url}/v1/forecasts/sessions"
    status, answer, _ = call("POST", url, {**body, "timezone": "America/New_York"})
    assert status == 200, answer
    assert answer["timezone"] == "America/New_York"
    default = call("POST", url, body)[1]
    assert answer["forecasts"] != default["forecasts"]  # local hours three hours later
    status, answer, _ = call("POST", url, {**body, "timezone": "Europe"})
    assert (status, problem_fields(answer)) == (422, ["timezone"])


def test_endpoint_refuses_bad_input_with_field_paths(base_url: str, body: dict[str, Any]) -> None:
    url = f"{base_url}/v1/forecasts/sessions"

    def post(changed: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        status, answer, _ = call("POST", url, changed)
        return status, answer

    naive = {**body, "arrivals_utc": [ARRIVALS_2019_11_04[0], "2019-11-04T08:05:00"]}
    status, answer = post(naive)
    assert (status, problem_fields(answer)) == (422, ["arrivals_utc[1]"])

    def with_entry(i: int, **changes: Any) -> dict[str, Any]:
        history = [dict(entry) for entry in body["history"]]
        history[i].update(changes)
        return {**body, "history": history}

    status, answer = post(with_entry(2, departure_utc="2019-09-26T01:00:00"))
    assert (status, problem_fields(answer)) == (422, ["history[2].departure_utc"])
    arrival = body["history"][3]["arrival_utc"]
    status, answer = post(with_entry(3, departure_utc=arrival))
    assert (status, problem_fields(answer)) == (422, ["history[3].departure_utc"])
    assert answer["detail"][0]["expected"] == f"after its arrival_utc {arrival}"
    status, answer = post(with_entry(5, energy_kwh=-0.5))
    assert (status, problem_fields(answer)) == (422, ["history[5].energy_kwh"])
    status, answer = post(with_entry(6, energy_kwh=85_000.0))  # Wh by mistake
    assert (status, problem_fields(answer)) == (422, ["history[6].energy_kwh"])
    raw = json.dumps(with_entry(7, energy_kwh=12.345678)).replace("12.345678", "NaN").encode()
    status, answer, _ = call("POST", url, raw=raw)
    assert (status, problem_fields(answer)) == (422, ["history[7].energy_kwh"])

    status, answer = post({**body, "arrivals_utc": ["2036-01-05T16:00:00Z"]})
    assert (status, problem_fields(answer)) == (422, ["arrivals_utc[0]"])
    assert "2015 to 2035" in answer["detail"][0]["expected"]
    status, answer = post({**body, "arrivals_utc": ["0001-01-01T00:00:00+05:00"]})
    assert (status, problem_fields(answer)) == (422, ["arrivals_utc[0]"])
    status, answer = post({**body, "arrivals_utc": []})
    assert (status, problem_fields(answer)) == (422, ["arrivals_utc"])
    status, answer = post({**body, "arrivals_utc": ARRIVALS_2019_11_04 * 33})
    assert (status, problem_fields(answer)) == (422, ["arrivals_utc"])


def test_too_little_history_is_a_422_naming_the_rule(base_url: str, body: dict[str, Any]) -> None:
    url = f"{base_url}/v1/forecasts/sessions"
    # Sessions from 2019-10-15 on only: about 20 days before the arrivals.
    recent = [e for e in body["history"] if e["arrival_utc"] >= "2019-10-15"]
    status, answer, _ = call("POST", url, {**body, "history": recent})
    assert status == 422, answer
    assert problem_fields(answer) == ["history"] * 3
    first = answer["detail"][0]
    assert first["value"].startswith("20.")
    assert first["value"].endswith("before arrivals_utc[0] (2019-11-04T15:40:00+00:00)")
    assert first["expected"] == (
        "at least 28 days of sessions ended before each arrival (from the first arrival among them) and at "
        "least 10 of them arrived in the 28 days before it"
    )
    # 28 days, but one session a week: too few in the window.
    sparse = body["history"][::150]
    status, answer, _ = call("POST", url, {**body, "history": sparse})
    assert (status, problem_fields(answer)) == (422, ["history"] * 3)
    assert answer["detail"][0]["value"] == (
        "40.6 days of ended sessions and 5 in the last 28 days before arrivals_utc[0] "
        "(2019-11-04T15:40:00+00:00)"
    )
    status, answer, _ = call("POST", url, {**body, "history": []})
    assert (status, problem_fields(answer)) == (422, ["history"] * 3)


def test_endpoint_needs_a_key_and_a_forecaster(
    keyed_without_forecasters: tuple[str, str], body: dict[str, Any]
) -> None:
    url, key = keyed_without_forecasters
    assert_needs_a_key_and_the_forecaster(url, key, "/v1/forecasts/sessions", body, "session_forecaster")


def test_model_lists_the_forecasters_metadata(base_url: str) -> None:
    status, body, _ = call("GET", f"{base_url}/v1/model")
    assert status == 200
    listed = body["session_forecaster"]
    metadata = json.loads((BUNDLED_DIR / "metadata.json").read_text(encoding="utf-8"))
    assert listed["name"] == "caltech_session_needs"
    assert listed["model_dir"] == str(BUNDLED_DIR.resolve())
    assert listed["outputs"] == metadata["outputs"]
    assert listed["min_window_sessions"] == 10
    assert listed["holidays"]["n_dates"] == len(metadata["holidays"]["dates"])
    assert "dates" not in listed["holidays"]
    status, ready, _ = call("GET", f"{base_url}/readyz")  # probes the six graphs too
    assert (status, ready) == (200, {"status": "ready"})


# Settings, the command line and imports -----------------------------------------------------------


def test_settings_default_to_the_bundled_forecaster_and_none_disables(tmp_path: Path) -> None:
    assert DEFAULT_SESSION_FORECASTER_DIR == BUNDLED_DIR
    assert Settings().session_forecaster_dir == BUNDLED_DIR
    assert Settings.from_environment({}).session_forecaster_dir == BUNDLED_DIR
    off = Settings.from_environment({"SMAC_SESSION_FORECASTER_DIR": "none"})
    assert off.session_forecaster_dir is None
    chosen = Settings.from_environment({"SMAC_SESSION_FORECASTER_DIR": str(tmp_path)})
    assert chosen.session_forecaster_dir == tmp_path
    environment = Settings(session_forecaster_dir=None).to_environment()
    assert environment["SMAC_SESSION_FORECASTER_DIR"] == "none"
    assert Settings.from_environment(environment).session_forecaster_dir is None
    back = Settings.from_environment(Settings(session_forecaster_dir=tmp_path).to_environment())
    assert back.session_forecaster_dir == tmp_path.resolve()
    wheel = tmp_path / "wheel"
    assert default_forecaster_dir(tmp_path / "checkout", wheel) is None
    wheel.mkdir()
    assert default_forecaster_dir(tmp_path / "checkout", wheel) == wheel


def test_serve_refuses_a_missing_session_forecaster(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        cli_app, ["serve", "--session-forecaster", str(tmp_path / "none")], terminal_width=200
    )
    assert result.exit_code == 1
    assert "session forecaster:" in result.output
    assert "metadata.json is missing; expected metadata.json and the six graphs" in result.output


def test_the_service_modules_import_no_pandas_lightgbm_or_holidays() -> None:
    code = (
        "import sys, smac_rl_serve.app, smac_rl_serve.session_forecaster; "
        "print(sorted(m for m in ('pandas', 'lightgbm', 'holidays', 'torch', 'smac_rl_forecasting') "
        "if m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"
