"""The arrivals forecaster in the service: numpy features equal the forecasting package's on Caltech
arrival counts (bit for bit), its Poisson mean equals LightGBM's within the exported parity, the
endpoint's answers and errors, the start checks, the settings and the command line.

The service code never imports pandas, lightgbm or holidays; these tests do (the test environment has
the forecasting extra) to compare against ``smac_rl_forecasting``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import shutil
from dataclasses import replace
from pathlib import Path
from typing import Any

import holidays
import numpy as np
import onnxruntime
import pandas as pd
import pytest
from typer.testing import CliRunner

from smac_rl.cli.main import app as cli_app
from smac_rl.features.series import SLOT_POSTPROCESS
from smac_rl_forecasting.backtest import ARRIVALS_CANDIDATES, arrivals_forecaster
from smac_rl_forecasting.features import FeatureConfig, build_features, feature_names
from smac_rl_forecasting.model import BoosterConfig, SlotForecaster
from smac_rl_forecasting.onnx_export import export_forecaster, holiday_metadata
from smac_rl_forecasting.series import arrival_counts
from smac_rl_serve.forecasters import OnnxArrivalsForecaster
from smac_rl_serve.model import ModelError
from smac_rl_serve.series_features import SeriesForecastInputError, series_features
from smac_rl_serve.settings import DEFAULT_ARRIVALS_FORECASTER_DIR, Settings
from tests.serve.support import assert_needs_a_key_and_the_forecaster, call, problem_fields

REPOSITORY = Path(__file__).resolve().parents[2]
BUNDLED_DIR = REPOSITORY / "models" / "forecasters" / "caltech_arrivals" / "v1"
MEAN_SHA256 = "b835aacb118adad6bdda1b3a8b5ee805af1a8db402b63e72d141070bdb413062"
"""sha256 of the exported ``mean.onnx`` (unchanged when the holidays were added to the metadata)."""
STEP = pd.Timedelta(minutes=15)
HISTORY_STEPS = 28 * 96

ORIGINS = {
    # Autumn change: local 01:00-02:00 happens twice on Sunday 2019-11-03 (origin 00:30 PDT).
    "dst_autumn": pd.Timestamp("2019-11-03 07:30", tz="UTC"),
    # Thanksgiving (Thursday 2019-11-28) and the day after: Californian holidays (origin 12:00 PST).
    "thanksgiving": pd.Timestamp("2019-11-27 20:00", tz="UTC"),
    # A quarter-hour origin on a plain Tuesday (10:45 PDT).
    "plain": pd.Timestamp("2019-10-15 17:45", tz="UTC"),
    # Spring change: local 02:00-03:00 does not exist on Sunday 2020-03-08 (origin 01:30 PST).
    "dst_spring": pd.Timestamp("2020-03-08 09:30", tz="UTC"),
    # Memorial Day (Monday 2020-05-25), origin 12:00 PDT on the Sunday before.
    "memorial_day": pd.Timestamp("2020-05-24 19:00", tz="UTC"),
}


@pytest.fixture(scope="module")
def counts() -> pd.Series:
    """Caltech arrivals per 15 minutes, 2019-09..12 and 2020-02..05 (two blocks, each regular)."""
    both: pd.Series = pd.concat(
        [arrival_counts("2019-09-01 2019-12-31"), arrival_counts("2020-02-01 2020-05-31")]
    )
    return both


def _block(counts: pd.Series, origin: pd.Timestamp) -> pd.Series:
    """The regular block of ``counts`` that holds ``origin``."""
    between = pd.Timestamp("2020-01-15", tz="UTC")  # the blocks end and start at local midnights
    return counts[counts.index < between] if origin < between else counts[counts.index >= between]


@pytest.fixture(scope="module")
def bundled() -> OnnxArrivalsForecaster:
    return OnnxArrivalsForecaster(BUNDLED_DIR)


LIBRARY_FEATURES: FeatureConfig = arrivals_forecaster(ARRIVALS_CANDIDATES["medium"]).features
"""The feature configuration the forecasting package fitted ``caltech_arrivals`` with."""


def _library_rows(series: pd.Series, origin: pd.Timestamp, n_steps: int = 192) -> tuple[np.ndarray, ...]:
    """``build_features`` rows of one origin of ``series`` (the forecasting package)."""
    position = (origin - series.index[0]) // STEP
    return build_features(
        series.to_numpy(), series.index[0], np.full(n_steps, position), np.arange(n_steps), LIBRARY_FEATURES
    )


def _before(series: pd.Series, origin: pd.Timestamp) -> pd.Series:
    return series[series.index < origin]


# The metadata --------------------------------------------------------------------------------------


def test_the_metadata_lists_the_holidays_and_the_graph_is_unchanged() -> None:
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
    assert {"2019-11-28", "2019-11-29", "2020-05-25"} <= set(entry["dates"])
    assert holiday_metadata(metadata["features"]) == entry
    # The graph's bytes are those exported; the other fields are the export's.
    assert hashlib.sha256((BUNDLED_DIR / "mean.onnx").read_bytes()).hexdigest() == MEAN_SHA256
    assert metadata["outputs"]["mean"]["sha256"] == MEAN_SHA256
    assert metadata["feature_names"] == feature_names(LIBRARY_FEATURES)
    assert metadata["postprocess"] == SLOT_POSTPROCESS
    assert (metadata["field"], metadata["horizon_steps"], metadata["features"]["step_min"]) == (
        "arrivals",
        192,
        15,
    )


# Feature parity ---------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(ORIGINS))
def test_numpy_features_equal_build_features(
    name: str, counts: pd.Series, bundled: OnnxArrivalsForecaster
) -> None:
    origin = ORIGINS[name]
    series = _block(counts, origin)
    expected, level, scale = _library_rows(series, origin)
    got, got_level, got_scale = series_features(
        _before(series, origin).to_numpy(), origin.to_pydatetime(), 192, bundled.config
    )
    assert got.shape == (192, 21)
    np.testing.assert_array_equal(got, expected)  # float64, bit for bit
    np.testing.assert_array_equal(got_level, level)
    np.testing.assert_array_equal(got_scale, scale)
    assert (got_level == 0.0).all()  # not normalised: level 0, scale 1
    assert (got_scale == 1.0).all()
    # Counts are whole numbers: the last 28 days alone give the same features exactly.
    tail = _before(series, origin)[-HISTORY_STEPS:]
    short, _, _ = series_features(tail.to_numpy(), origin.to_pydatetime(), 192, bundled.config)
    np.testing.assert_array_equal(short, expected)


def test_calendar_columns_by_hand_on_dst_days_and_holidays(
    counts: pd.Series, bundled: OnnxArrivalsForecaster
) -> None:
    names = bundled.config.feature_names
    lead, hour, weekday, holiday = (
        names.index(n) for n in ("lead_h", "hour_of_day_h", "weekday", "is_holiday")
    )

    def rows(name: str, n_steps: int) -> np.ndarray:
        origin = ORIGINS[name]
        history = _before(_block(counts, origin), origin).to_numpy()
        return series_features(history, origin.to_pydatetime(), n_steps, bundled.config)[0]

    autumn = rows("dst_autumn", 12)  # 00:30 PDT; 01:00 .. 01:45 twice
    assert autumn[:, hour].tolist() == [0.5, 0.75, 1.0, 1.25, 1.5, 1.75, 1.0, 1.25, 1.5, 1.75, 2.0, 2.25]
    assert autumn[:, weekday].tolist() == [6.0] * 12
    assert autumn[:, lead].tolist() == [0.25 * k for k in range(12)]
    spring = rows("dst_spring", 4)  # 01:30 PST; 02:00 is skipped
    assert spring[:, hour].tolist() == [1.5, 1.75, 3.0, 3.25]
    thanksgiving = rows("thanksgiving", 192)  # from Wednesday 12:00: Thursday and Friday are holidays
    assert thanksgiving[:, holiday].tolist() == [0.0] * 48 + [1.0] * 144
    memorial = rows("memorial_day", 192)  # from Sunday 12:00: Monday only
    assert memorial[:, holiday].tolist() == [0.0] * 48 + [1.0] * 96 + [0.0] * 48


def test_value_features_by_hand_on_one_arrival_a_day(bundled: OnnxArrivalsForecaster) -> None:
    # One arrival in the first step of each UTC day for 28 days, none otherwise.
    history = np.zeros(HISTORY_STEPS)
    history[::96] = 1.0
    origin = dt.datetime(2019, 10, 1, tzinfo=dt.UTC)
    rows, level, scale = series_features(history, origin, 2, bundled.config)
    names = bundled.config.feature_names
    first = dict(zip(names, rows[0].tolist(), strict=True))
    second = dict(zip(names, rows[1].tolist(), strict=True))
    for name in (
        [f"same_slot_d{d}" for d in range(1, 8)] + [f"week_lag_{j}" for j in range(1, 5)] + ["profile_4w"]
    ):
        assert (first[name], second[name]) == (1.0, 0.0), name
    assert (first["last"], first["mean_24h"], first["mean_168h"]) == (0.0, 1 / 96, 1 / 96)
    assert first["std_168h"] == pytest.approx(np.sqrt(1 / 96 - 1 / 96**2), rel=1e-12)
    assert (first["hour_of_day_h"], second["hour_of_day_h"]) == (17.0, 17.25)  # 17:00 PDT on 30 Sept
    assert level.tolist() == [0.0, 0.0]
    assert scale.tolist() == [1.0, 1.0]


# Output parity ----------------------------------------------------------------------------------


def test_bundled_forecaster_equals_its_graph_on_build_features_rows(
    counts: pd.Series, bundled: OnnxArrivalsForecaster
) -> None:
    # One thread, as the service runs it: the tree ensemble sums its trees in another order on several
    # threads, which moves the float32 output by up to one unit in the last place.
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 1
    session = onnxruntime.InferenceSession(str(BUNDLED_DIR / "mean.onnx"), options)
    for origin in ORIGINS.values():
        series = _block(counts, origin)
        rows, _, _ = _library_rows(series, origin)
        expected = session.run(None, {"features": rows.astype(np.float32)})[0].reshape(-1).astype(np.float64)
        forecast = bundled.forecast(origin.to_pydatetime(), _before(series, origin).to_numpy(), 48)
        np.testing.assert_array_equal(forecast.n_arrivals_mean, expected)
        assert (forecast.n_arrivals_mean > 0).all()  # a Poisson mean
        assert forecast.step_min == 15
        assert forecast.start_utc[0] == origin.to_pydatetime()
        assert forecast.start_utc[-1] == origin.to_pydatetime() + dt.timedelta(hours=47, minutes=45)


TINY_POISSON = BoosterConfig(
    objective="poisson", n_trees=15, num_leaves=7, min_data_in_leaf=20, num_threads=1
)


@pytest.fixture(scope="module")
def exported_tiny(counts: pd.Series, tmp_path_factory: pytest.TempPathFactory) -> tuple[SlotForecaster, Path]:
    """A tiny Poisson forecaster (2 h horizon) fitted on 2019-09..11, exported by the package."""
    series = _block(counts, ORIGINS["plain"])
    core = SlotForecaster("arrivals", LIBRARY_FEATURES, TINY_POISSON, horizon_steps=8)
    core.fit(series[series.index < pd.Timestamp("2019-12-01", tz="UTC")], origin_every_steps=37)
    origins = [pd.Timestamp("2019-12-05 08:00", tz="UTC") + STEP * 29 * i for i in range(20)]
    rows = core.feature_rows(series, origins)[2]
    directory = tmp_path_factory.mktemp("tiny_arrivals") / "v1"
    export_forecaster(core, directory, rows, "tiny_arrivals", "v1")
    return core, directory


def test_service_mean_equals_lightgbm_within_the_exported_parity(
    counts: pd.Series, exported_tiny: tuple[SlotForecaster, Path]
) -> None:
    core, directory = exported_tiny
    service = OnnxArrivalsForecaster(directory)
    assert service.horizon_h == 2  # 8 steps of 15 min
    tolerance = json.loads((directory / "metadata.json").read_text())["parity"]["tolerance"]
    series = _block(counts, ORIGINS["thanksgiving"])
    for origin in (
        ORIGINS["dst_autumn"],
        ORIGINS["thanksgiving"],
        pd.Timestamp("2019-12-25 16:15", tz="UTC"),
    ):
        expected = core.predict_many(series, [origin])  # LightGBM on the package's features
        got = service.forecast(origin.to_pydatetime(), _before(series, origin).to_numpy(), 2)
        np.testing.assert_allclose(got.n_arrivals_mean, expected["mean"].to_numpy(), rtol=0, atol=tolerance)
        assert [t.isoformat() for t in got.start_utc] == [t.isoformat() for t in expected["target_utc"]]


# The endpoint -----------------------------------------------------------------------------------


def _body(
    counts: pd.Series, origin: pd.Timestamp, n_steps: int = HISTORY_STEPS, **extra: Any
) -> dict[str, Any]:
    history = _before(_block(counts, origin), origin)[-n_steps:]
    return {
        "origin_utc": origin.isoformat(),
        "history": [
            {"start_utc": t.isoformat(), "n_arrivals": int(v)}
            for t, v in zip(pd.DatetimeIndex(history.index), history.to_numpy(), strict=True)
        ],
        **extra,
    }


def test_endpoint_answers_the_poisson_mean_per_step(
    base_url: str, counts: pd.Series, bundled: OnnxArrivalsForecaster
) -> None:
    origin = ORIGINS["dst_autumn"]
    body = _body(counts, origin, horizon_h=6)
    later = [{"start_utc": origin.isoformat(), "n_arrivals": 99}]  # steps from the origin on are ignored
    status, answer, _ = call(
        "POST", f"{base_url}/v1/forecasts/arrivals", {**body, "history": body["history"] + later}
    )
    assert status == 200, answer
    assert answer["forecaster"] == {"name": "caltech_arrivals", "version": "v1"}
    assert answer["onnx_sha256"] == {"mean": MEAN_SHA256}
    assert (answer["origin_utc"], answer["step_min"], answer["n_history_steps"]) == (
        "2019-11-03T07:30:00+00:00",
        15,
        2688,
    )
    assert len(answer["forecasts"]) == 24
    first, last = answer["forecasts"][0], answer["forecasts"][-1]
    assert (first["start_utc"], first["lead_h"]) == ("2019-11-03T07:30:00+00:00", 0.0)
    assert (last["start_utc"], last["lead_h"]) == ("2019-11-03T13:15:00+00:00", 5.75)
    expected = bundled.forecast(origin.to_pydatetime(), _before(_block(counts, origin), origin).to_numpy(), 6)
    got = np.array([f["n_arrivals_mean"] for f in answer["forecasts"]], dtype=np.float64)
    np.testing.assert_array_equal(got, expected.n_arrivals_mean)
    # Local offsets are accepted and answered in UTC.
    local = {**body, "origin_utc": "2019-11-03T00:30:00-07:00"}
    status, again, _ = call("POST", f"{base_url}/v1/forecasts/arrivals", local)
    assert (status, again["forecasts"]) == (200, answer["forecasts"])


def test_endpoint_refuses_gaps_naive_instants_short_history_and_bad_counts(
    base_url: str, counts: pd.Series
) -> None:
    url = f"{base_url}/v1/forecasts/arrivals"
    origin = ORIGINS["plain"]
    good = _body(counts, origin)
    assert call("POST", url, good)[0] == 200

    gap = {**good, "history": good["history"][:100] + good["history"][101:]}
    status, answer, _ = call("POST", url, gap)
    assert (status, problem_fields(answer)) == (422, ["history[100].start_utc"])
    assert (
        "15 min after history[99] (arrival counts every 15 min without gaps; got a gap)"
        in (answer["detail"][0]["expected"])
    )

    repeated = {**good, "history": good["history"][:5] + good["history"][4:]}
    status, answer, _ = call("POST", url, repeated)
    assert (status, problem_fields(answer)) == (422, ["history[5].start_utc"])
    assert "a repeated or unsorted step" in answer["detail"][0]["expected"]

    status, answer, _ = call("POST", url, {**good, "origin_utc": "2019-10-15T17:45:00"})
    assert (status, problem_fields(answer)) == (422, ["origin_utc"])

    off_step = {**good, "origin_utc": "2019-10-15T17:50:00+00:00"}
    status, answer, _ = call("POST", url, off_step)
    assert (status, problem_fields(answer)) == (422, ["origin_utc"])
    assert answer["detail"][0]["expected"] == (
        "the start of a 15-minute step (minutes 0, 15, 30 or 45 in UTC, seconds 0)"
    )

    short = {**good, "history": good["history"][1:]}
    status, answer, _ = call("POST", url, short)
    assert (status, problem_fields(answer)) == (422, ["history"])
    assert answer["detail"][0]["value"] == "2687 steps before origin_utc"
    assert answer["detail"][0]["expected"] == (
        "at least 2688 (28 days of arrival counts every 15 min before the origin)"
    )

    stops_early = {**good, "history": good["history"][:-1]}
    status, answer, _ = call("POST", url, stops_early)
    assert (status, problem_fields(answer)) == (422, ["history"])
    assert "the last step starting 2019-10-15T17:30:00+00:00" in answer["detail"][0]["expected"]

    for bad in (-1, 1.5, "NaN", 10_001):
        edited = json.loads(json.dumps(good))
        edited["history"][7]["n_arrivals"] = bad
        status, answer, _ = call("POST", url, edited)
        assert (status, problem_fields(answer)) == (422, ["history[7].n_arrivals"]), bad

    for horizon in (0, 49):
        status, answer, _ = call("POST", url, {**good, "horizon_h": horizon})
        assert (status, problem_fields(answer)) == (422, ["horizon_h"])

    far = pd.Timestamp("2036-01-01 00:00", tz="UTC")
    steps = pd.date_range(far - STEP * HISTORY_STEPS, far, freq=STEP, inclusive="left")
    status, answer, _ = call(
        "POST",
        url,
        {
            "origin_utc": far.isoformat(),
            "history": [{"start_utc": t.isoformat(), "n_arrivals": 0} for t in steps],
        },
    )
    assert (status, problem_fields(answer)) == (422, ["origin_utc"])
    assert answer["detail"][0]["expected"].startswith("target steps in 2015 to 2035")

    for extreme in ("0001-01-01T00:00:00Z", "9999-12-31T23:45:00-05:00"):
        status, answer, _ = call("POST", url, {**good, "origin_utc": extreme})
        assert (status, set(problem_fields(answer))) == (422, {"origin_utc"})


def test_endpoint_needs_a_key_and_a_forecaster(
    keyed_without_forecasters: tuple[str, str], counts: pd.Series
) -> None:
    url, key = keyed_without_forecasters
    body = _body(counts, ORIGINS["plain"])
    assert_needs_a_key_and_the_forecaster(url, key, "/v1/forecasts/arrivals", body, "arrivals_forecaster")


def test_model_lists_the_forecaster_and_readyz_probes_it(base_url: str) -> None:
    status, body, _ = call("GET", f"{base_url}/v1/model")
    assert status == 200
    listed = body["arrivals_forecaster"]
    metadata = json.loads((BUNDLED_DIR / "metadata.json").read_text(encoding="utf-8"))
    assert (listed["name"], listed["version"], listed["horizon_h"]) == ("caltech_arrivals", "v1", 48)
    assert listed["model_dir"] == str(BUNDLED_DIR.resolve())
    assert listed["outputs"] == metadata["outputs"]
    assert listed["holidays"]["n_dates"] == len(metadata["holidays"]["dates"])
    assert "dates" not in listed["holidays"]
    assert call("GET", f"{base_url}/readyz")[:2] == (200, {"status": "ready"})


# Start checks, settings and the command line -----------------------------------------------------


def _copy(tmp_path: Path) -> Path:
    target = tmp_path / "arrivals"
    shutil.copytree(BUNDLED_DIR, target)
    return target


def test_the_service_refuses_a_tampered_graph(tmp_path: Path) -> None:
    directory = _copy(tmp_path)
    graph = directory / "mean.onnx"
    data = bytearray(graph.read_bytes())
    data[-1] ^= 1
    graph.write_bytes(bytes(data))
    with pytest.raises(ModelError) as caught:
        OnnxArrivalsForecaster(directory)
    message = str(caught.value)
    assert message.startswith(f"arrivals forecaster: {graph.resolve()} has sha256 ")
    assert f"metadata.json expects {MEAN_SHA256} (field outputs.mean.sha256)" in message


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        (("schema_version",), 2, "field schema_version is 2; expected 1"),
        (("field",), "prices", "field field is 'prices'; expected 'arrivals'"),
        (("booster", "objective"), "quantile", "field booster.objective is 'quantile'; expected 'poisson'"),
        (
            ("features", "step_min"),
            7,
            "field features.step_min is 7; expected one of [5, 10, 15, 20, 30, 60]",
        ),
        (("features", "timezone"), "Mars/Olympus", "field features.timezone is 'Mars/Olympus'"),
        (("holidays",), None, "field holidays is (missing); expected the public holidays"),
        (("holidays", "subdiv"), "NY", "field holidays.subdiv is 'NY'; expected 'CA'"),
        (
            ("feature_names",),
            ["lead_h"],
            "field feature_names is ['lead_h']; expected ['lead_h', 'hour_of_day_h'",
        ),
        (
            ("inputs", "features", "shape"),
            ["N", 22],
            "field inputs.features.shape is ['N', 22]; expected ['N', 21]",
        ),
        (("horizon_steps",), 3, "field horizon_steps is 3; expected at least 4"),
        (
            ("postprocess",),
            "forecast = variable",
            "field postprocess is 'forecast = variable'; expected 'forecast =",
        ),
    ],
)
def test_start_checks_name_the_metadata_field(
    tmp_path: Path, path: tuple[str, ...], value: Any, message: str
) -> None:
    directory = _copy(tmp_path)
    metadata_path = directory / "metadata.json"
    metadata = json.loads(metadata_path.read_text(encoding="utf-8"))
    target = metadata
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    metadata_path.write_text(json.dumps(metadata), encoding="utf-8")
    with pytest.raises(ModelError) as caught:
        OnnxArrivalsForecaster(directory)
    assert str(caught.value).startswith(f"arrivals forecaster: {metadata_path.resolve()} field ")
    assert message in str(caught.value)


def test_missing_folder_and_graph_are_refused_and_inputs_checked(
    tmp_path: Path, bundled: OnnxArrivalsForecaster
) -> None:
    with pytest.raises(
        ModelError, match=r"metadata\.json is missing; expected metadata\.json and mean\.onnx"
    ):
        OnnxArrivalsForecaster(tmp_path / "nowhere")
    directory = _copy(tmp_path)
    (directory / "mean.onnx").unlink()
    with pytest.raises(ModelError, match=r"mean\.onnx is missing"):
        OnnxArrivalsForecaster(directory)
    origin = dt.datetime(2019, 10, 1, tzinfo=dt.UTC)
    with pytest.raises(SeriesForecastInputError) as caught:
        bundled.forecast(origin, np.zeros(HISTORY_STEPS - 1), 49)
    assert [p.path for p in caught.value.problems] == ["horizon_h"]
    with pytest.raises(SeriesForecastInputError) as caught:
        bundled.forecast(origin, np.zeros(HISTORY_STEPS - 1), 1)
    assert [p.path for p in caught.value.problems] == ["history"]


def test_settings_default_to_the_bundled_forecaster_and_none_disables(tmp_path: Path) -> None:
    assert DEFAULT_ARRIVALS_FORECASTER_DIR == BUNDLED_DIR
    assert Settings().arrivals_forecaster_dir == BUNDLED_DIR
    assert Settings.from_environment({}).arrivals_forecaster_dir == BUNDLED_DIR
    assert Settings.from_environment({"SMAC_ARRIVALS_FORECASTER_DIR": "None"}).arrivals_forecaster_dir is None
    chosen = Settings.from_environment({"SMAC_ARRIVALS_FORECASTER_DIR": str(tmp_path)})
    assert chosen.arrivals_forecaster_dir == tmp_path
    environment = Settings(arrivals_forecaster_dir=None).to_environment()
    assert environment["SMAC_ARRIVALS_FORECASTER_DIR"] == "none"
    assert Settings.from_environment(environment).arrivals_forecaster_dir is None
    back = Settings.from_environment(Settings(arrivals_forecaster_dir=tmp_path).to_environment())
    assert back == replace(Settings(), arrivals_forecaster_dir=tmp_path.resolve(), model_dir=back.model_dir)


def test_serve_refuses_a_missing_arrivals_forecaster(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        cli_app, ["serve", "--arrivals-forecaster", str(tmp_path / "nowhere")], terminal_width=200
    )
    assert result.exit_code == 1
    assert "arrivals forecaster:" in result.output
    assert "metadata.json is missing; expected metadata.json and mean.onnx" in result.output
