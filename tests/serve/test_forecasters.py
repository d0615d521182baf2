"""The price forecaster in the service: numpy features equal the forecasting package's, ONNX quantiles
equal LightGBM's within the exported parity, the endpoint's answers and errors, and the start checks.

The service code never imports pandas, lightgbm or holidays; these tests do (the test environment has
the forecasting extra) to compare against ``smac_rl_forecasting``.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import holidays
import numpy as np
import onnxruntime
import pandas as pd
import pytest

from smac_rl_forecasting.features import build_features, calendar_features, feature_names
from smac_rl_forecasting.onnx_export import (
    HOLIDAY_FIRST_YEAR,
    HOLIDAY_LAST_YEAR,
    export_forecaster,
    holiday_metadata,
)
from smac_rl_forecasting.prices import PRICE_COLUMNS, PRICE_FEATURES, PriceForecaster
from smac_rl_forecasting.series import bundled_prices
from smac_rl_serve import settings as settings_module
from smac_rl_serve.app import create_app
from smac_rl_serve.forecasters import (
    HISTORY_H,
    OnnxPriceForecaster,
    PriceForecastInputError,
    check_price_history,
    price_features,
)
from smac_rl_serve.model import ModelError
from smac_rl_serve.settings import DEFAULT_PRICE_FORECASTER_DIR, Settings, default_forecaster_dir
from tests.forecasting.conftest import tiny_price_forecaster
from tests.serve.support import assert_needs_a_key_and_the_forecaster, call, problem_fields

REPOSITORY = Path(__file__).resolve().parents[2]
BUNDLED_DIR = REPOSITORY / "models" / "forecasters" / "nl_day_ahead_prices" / "v1"
PRICE_METADATA_FEATURES = json.loads((BUNDLED_DIR / "metadata.json").read_text(encoding="utf-8"))["features"]
UTC = dt.UTC

ORIGINS = {
    # The horizon crosses the spring change: local 2024-03-31 02:00 does not exist.
    "dst_spring": pd.Timestamp("2024-03-30 22:00", tz="UTC"),
    # The horizon crosses the autumn change: local 02:00 happens twice on 2024-10-27.
    "dst_autumn": pd.Timestamp("2024-10-26 20:00", tz="UTC"),
    # King's Day (Saturday 2024-04-27) and Christmas (2024-12-25, 26): public holidays.
    "kings_day": pd.Timestamp("2024-04-26 23:00", tz="UTC"),
    "christmas": pd.Timestamp("2024-12-24 11:00", tz="UTC"),
    "plain": pd.Timestamp("2024-06-12 07:00", tz="UTC"),
}


@pytest.fixture(scope="module")
def prices() -> pd.Series:
    """Bundled prices 2024-02-01 .. 2025-01-01 UTC [EUR/kWh]."""
    return bundled_prices(dt.datetime(2024, 2, 1, tzinfo=UTC), dt.datetime(2025, 1, 1, tzinfo=UTC))


@pytest.fixture(scope="module")
def bundled() -> OnnxPriceForecaster:
    return OnnxPriceForecaster(BUNDLED_DIR)


def _before(prices: pd.Series, origin: pd.Timestamp) -> pd.Series:
    return prices[prices.index < origin]


def _library_rows(series: pd.Series, origin: pd.Timestamp, horizon_h: int = 48) -> tuple[np.ndarray, ...]:
    """``build_features`` rows of one origin of ``series`` (the forecasting package)."""
    position = (origin - series.index[0]) // pd.Timedelta(hours=1)
    return build_features(
        series.to_numpy(), series.index[0], np.full(horizon_h, position), np.arange(horizon_h), PRICE_FEATURES
    )


# Holidays in the metadata ------------------------------------------------------------------------


def test_the_metadata_lists_the_holidays_the_holidays_package_gives() -> None:
    metadata = json.loads((BUNDLED_DIR / "metadata.json").read_text(encoding="utf-8"))
    entry = metadata["holidays"]
    assert (entry["country"], entry["subdiv"]) == ("NL", None)
    assert (
        (entry["first_year"], entry["last_year"]) == (HOLIDAY_FIRST_YEAR, HOLIDAY_LAST_YEAR) == (2015, 2035)
    )
    expected = holidays.country_holidays("NL", years=range(2015, 2036))
    assert entry["dates"] == [d.isoformat() for d in sorted(expected)]
    assert "2024-04-27" in entry["dates"]  # King's Day
    assert "2024-04-26" not in entry["dates"]
    assert holiday_metadata(metadata["features"]) == entry
    # The feature the forecasting package builds, day by day (local noon), year by year as it asks.
    listed = set(entry["dates"])
    for year in range(2015, 2036):
        days = pd.date_range(f"{year}-01-01 12:00", f"{year}-12-31 12:00", freq="D", tz="Europe/Amsterdam")
        is_holiday = calendar_features(days.tz_convert("UTC"), PRICE_FEATURES)[:, 3]
        np.testing.assert_array_equal(is_holiday, [d.date().isoformat() in listed for d in days])
    # The other fields are those of the export (the holidays were added, nothing else changed).
    assert metadata["feature_names"] == feature_names(PRICE_FEATURES)
    assert metadata["command"].startswith("smac forecast backtest --target prices --export")


# Feature parity ---------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(ORIGINS))
def test_numpy_features_equal_build_features(
    name: str, prices: pd.Series, bundled: OnnxPriceForecaster
) -> None:
    origin = ORIGINS[name]
    history = _before(prices, origin)
    expected, level, scale = _library_rows(prices, origin)
    got, got_level, got_scale = price_features(history.to_numpy(), origin.to_pydatetime(), 48, bundled.config)
    assert got.shape == (48, 23)
    np.testing.assert_array_equal(got, expected)  # float64, bit for bit
    np.testing.assert_array_equal(got.astype(np.float32), expected.astype(np.float32))
    np.testing.assert_array_equal(got_level, level)
    np.testing.assert_array_equal(got_scale, scale)
    # Only the last 28 days enter, but the running sums round by the history's length: a shorter
    # history gives the same features up to float64 rounding.
    tail = history[-HISTORY_H:]
    short, _, _ = price_features(tail.to_numpy(), origin.to_pydatetime(), 48, bundled.config)
    np.testing.assert_allclose(short, expected, rtol=0, atol=1e-9)
    np.testing.assert_array_equal(short, _library_rows(prices[prices.index >= tail.index[0]], origin)[0])


def test_calendar_columns_by_hand_on_dst_days_and_holidays(
    prices: pd.Series, bundled: OnnxPriceForecaster
) -> None:
    names = bundled.config.feature_names
    hour, weekday, holiday = (names.index(n) for n in ("hour_of_day_h", "weekday", "is_holiday"))
    spring = ORIGINS["dst_spring"]  # 2024-03-30 23:00 CET, Saturday
    rows, _, _ = price_features(_before(prices, spring).to_numpy(), spring.to_pydatetime(), 6, bundled.config)
    assert rows[:, hour].tolist() == [23.0, 0.0, 1.0, 3.0, 4.0, 5.0]  # 02:00 is skipped
    assert rows[:, weekday].tolist() == [5.0, 6.0, 6.0, 6.0, 6.0, 6.0]
    autumn = ORIGINS["dst_autumn"]  # 2024-10-26 22:00 CEST
    rows, _, _ = price_features(_before(prices, autumn).to_numpy(), autumn.to_pydatetime(), 7, bundled.config)
    assert rows[:, hour].tolist() == [22.0, 23.0, 0.0, 1.0, 2.0, 2.0, 3.0]  # 02:00 twice
    kings = ORIGINS["kings_day"]  # 2024-04-27 01:00 CEST
    rows, _, _ = price_features(_before(prices, kings).to_numpy(), kings.to_pydatetime(), 48, bundled.config)
    assert rows[:, holiday].tolist() == [1.0] * 23 + [0.0] * 25  # until local midnight
    christmas = ORIGINS["christmas"]  # 2024-12-24 12:00 CET
    rows, _, _ = price_features(
        _before(prices, christmas).to_numpy(), christmas.to_pydatetime(), 48, bundled.config
    )
    assert rows[:, holiday].tolist() == [0.0] * 12 + [1.0] * 36  # Christmas and Boxing Day


# Output parity ----------------------------------------------------------------------------------


def test_bundled_forecaster_equals_its_graphs_on_build_features_rows(
    prices: pd.Series, bundled: OnnxPriceForecaster
) -> None:
    for origin in ORIGINS.values():
        rows, level, scale = _library_rows(prices, origin)
        raw = np.column_stack(
            [
                onnxruntime.InferenceSession(str(BUNDLED_DIR / f"{q}.onnx"))
                .run(None, {"features": rows.astype(np.float32)})[0]
                .reshape(-1)
                .astype(np.float64)
                for q in ("q10", "q50", "q90")
            ]
        )
        expected = np.sort(raw, axis=1) * scale[:, None] + level[:, None]
        forecast = bundled.forecast(origin.to_pydatetime(), _before(prices, origin).to_numpy(), 48)
        np.testing.assert_array_equal(forecast.quantiles_eur_per_kwh, expected)
        assert forecast.start_utc[0] == origin.to_pydatetime()
        assert forecast.start_utc[-1] == origin.to_pydatetime() + dt.timedelta(hours=47)


@pytest.fixture(scope="module")
def exported_tiny(
    prices: pd.Series, tmp_path_factory: pytest.TempPathFactory
) -> tuple[PriceForecaster, Path]:
    """A tiny LightGBM price forecaster fitted on Feb..Apr 2024 and exported with the package's exporter."""
    fitted = tiny_price_forecaster().fit(prices[prices.index < pd.Timestamp("2024-05-01", tz="UTC")])
    origins = [pd.Timestamp("2024-05-10", tz="UTC") + pd.Timedelta(hours=7 * i) for i in range(10)]
    rows = fitted.core.feature_rows(prices, origins)[2]
    directory = tmp_path_factory.mktemp("tiny") / "v1"
    export_forecaster(fitted.core, directory, rows, "tiny_prices", "v1")
    return fitted, directory


def test_service_quantiles_equal_lightgbm_within_the_exported_parity(
    prices: pd.Series, exported_tiny: tuple[PriceForecaster, Path]
) -> None:
    fitted, directory = exported_tiny
    service = OnnxPriceForecaster(directory)
    tolerance = json.loads((directory / "metadata.json").read_text())["parity"]["tolerance"]
    for origin in ORIGINS.values():
        history = _before(prices, origin)
        expected = fitted.predict(prices, origin)  # LightGBM on the package's features
        got = service.forecast(origin.to_pydatetime(), history.to_numpy(), 48)
        _, _, scale = _library_rows(prices, origin)
        difference = np.abs(got.quantiles_eur_per_kwh - expected[list(PRICE_COLUMNS)].to_numpy())
        # The graphs' outputs are normalised prices: their tolerance scales with each row's spread.
        assert (difference <= tolerance * scale[:, None] + 1e-12).all(), difference.max()
        assert [t.isoformat() for t in got.start_utc] == [t.isoformat() for t in expected.index]


# The endpoint -----------------------------------------------------------------------------------


def _body(prices: pd.Series, origin: pd.Timestamp, n_hours: int = HISTORY_H, **extra: Any) -> dict[str, Any]:
    history = _before(prices, origin)[-n_hours:]
    return {
        "origin_utc": origin.isoformat(),
        "prices": [
            {"start_utc": t.isoformat(), "price_eur_per_kwh": float(v)}
            for t, v in zip(pd.DatetimeIndex(history.index), history.to_numpy(), strict=True)
        ],
        **extra,
    }


def test_endpoint_answers_the_forecasters_quantiles(
    base_url: str, prices: pd.Series, bundled: OnnxPriceForecaster
) -> None:
    origin = ORIGINS["dst_spring"]
    body = _body(prices, origin, horizon_h=24)
    # Hours from the origin on are ignored.
    later = [{"start_utc": origin.isoformat(), "price_eur_per_kwh": 9.0}]
    status, answer, _ = call(
        "POST", f"{base_url}/v1/forecasts/prices", {**body, "prices": body["prices"] + later}
    )
    assert status == 200, answer
    assert answer["forecaster"] == {"name": "nl_day_ahead_prices", "version": "v1"}
    assert answer["origin_utc"] == "2024-03-30T22:00:00+00:00"
    assert answer["n_history_h"] == 672
    assert len(answer["forecasts"]) == 24
    first, last = answer["forecasts"][0], answer["forecasts"][-1]
    assert (first["start_utc"], first["lead_h"]) == ("2024-03-30T22:00:00+00:00", 0.0)
    assert (last["start_utc"], last["lead_h"]) == ("2024-03-31T21:00:00+00:00", 23.0)
    expected = bundled.forecast(origin.to_pydatetime(), _before(prices, origin)[-HISTORY_H:].to_numpy(), 24)
    got = np.array(
        [[f[f"price_q{q}_eur_per_kwh"] for q in (10, 50, 90)] for f in answer["forecasts"]], dtype=np.float64
    )
    np.testing.assert_array_equal(got, expected.quantiles_eur_per_kwh)
    assert (got[:, 0] <= got[:, 1]).all()
    assert (got[:, 1] <= got[:, 2]).all()
    metadata = json.loads((BUNDLED_DIR / "metadata.json").read_text())
    assert answer["onnx_sha256"] == {q: metadata["outputs"][q]["sha256"] for q in ("q10", "q50", "q90")}


def test_endpoint_refuses_gaps_naive_instants_short_history_and_nan(base_url: str, prices: pd.Series) -> None:
    url = f"{base_url}/v1/forecasts/prices"
    origin = ORIGINS["plain"]
    good = _body(prices, origin)

    gap = {**good, "prices": good["prices"][:100] + good["prices"][101:]}
    status, answer, _ = call("POST", url, gap)
    assert status == 422
    assert problem_fields(answer) == ["prices[100].start_utc"]
    assert "one hour after prices[99]" in answer["detail"][0]["expected"]

    repeated = {**good, "prices": good["prices"][:5] + good["prices"][4:]}
    status, answer, _ = call("POST", url, repeated)
    assert (status, problem_fields(answer)) == (422, ["prices[5].start_utc"])
    assert "repeated or unsorted" in answer["detail"][0]["expected"]

    naive_origin = {**good, "origin_utc": "2024-06-12T07:00:00"}
    status, answer, _ = call("POST", url, naive_origin)
    assert (status, problem_fields(answer)) == (422, ["origin_utc"])

    naive_price = json.loads(json.dumps(good))
    naive_price["prices"][3]["start_utc"] = naive_price["prices"][3]["start_utc"].removesuffix("+00:00")
    status, answer, _ = call("POST", url, naive_price)
    assert (status, problem_fields(answer)) == (422, ["prices[3].start_utc"])

    short = {**good, "prices": good["prices"][1:]}
    status, answer, _ = call("POST", url, short)
    assert (status, problem_fields(answer)) == (422, ["prices"])
    assert answer["detail"][0]["value"] == "671 hours before origin_utc"
    assert answer["detail"][0]["expected"].startswith("at least 672")

    stops_early = {**good, "prices": good["prices"][:-1]}
    status, answer, _ = call("POST", url, stops_early)
    assert (status, problem_fields(answer)) == (422, ["prices"])
    assert "2024-06-12T06:00:00+00:00" in answer["detail"][0]["expected"]

    raw = json.dumps(good).replace(json.dumps(good["prices"][5]["price_eur_per_kwh"]), "NaN", 1)
    status, answer, _ = call("POST", url, raw=raw.encode())
    assert (status, problem_fields(answer)) == (422, ["prices[5].price_eur_per_kwh"])

    mwh = json.loads(json.dumps(good))
    mwh["prices"][7]["price_eur_per_kwh"] = 85.3  # EUR/MWh by mistake
    status, answer, _ = call("POST", url, mwh)
    assert (status, problem_fields(answer)) == (422, ["prices[7].price_eur_per_kwh"])

    for horizon in (0, 49):
        status, answer, _ = call("POST", url, {**good, "horizon_h": horizon})
        assert (status, problem_fields(answer)) == (422, ["horizon_h"])

    half_hour = {**good, "origin_utc": "2024-06-12T07:30:00+00:00"}
    status, answer, _ = call("POST", url, half_hour)
    assert (status, problem_fields(answer)) == (422, ["origin_utc"])

    for extreme in ("0001-01-01T00:00:00Z", "9999-12-31T23:00:00-05:00"):
        status, answer, _ = call("POST", url, {**good, "origin_utc": extreme})
        assert (status, set(problem_fields(answer))) == (422, {"origin_utc"})

    far = pd.Timestamp("2036-01-01 00:00", tz="UTC")
    hours = pd.date_range(far - pd.Timedelta(hours=HISTORY_H), far, freq="h", inclusive="left")
    status, answer, _ = call(
        "POST",
        url,
        {
            "origin_utc": far.isoformat(),
            "prices": [{"start_utc": t.isoformat(), "price_eur_per_kwh": 0.1} for t in hours],
        },
    )
    assert (status, problem_fields(answer)) == (422, ["origin_utc"])
    assert "2015 to 2035" in answer["detail"][0]["expected"]


def test_check_price_history_names_every_problem() -> None:
    origin = dt.datetime(2024, 1, 29, tzinfo=UTC)
    starts = [origin - dt.timedelta(hours=HISTORY_H - i) for i in range(HISTORY_H)]
    values = [0.1] * HISTORY_H
    history = check_price_history(origin, starts, values)
    assert history.shape == (HISTORY_H,)
    bad_starts = [*starts]
    bad_starts[2] = bad_starts[2].replace(tzinfo=None)
    bad_starts[10] = bad_starts[10] + dt.timedelta(minutes=15)
    bad_values = [*values]
    bad_values[4] = float("inf")
    with pytest.raises(PriceForecastInputError) as caught:
        check_price_history(origin, bad_starts, bad_values)
    assert [p.path for p in caught.value.problems] == [
        "prices[2].start_utc",
        "prices[4].price_eur_per_kwh",
        "prices[10].start_utc",
    ]


def test_endpoint_needs_a_key_and_a_forecaster(
    keyed_without_forecasters: tuple[str, str], prices: pd.Series
) -> None:
    url, key = keyed_without_forecasters
    body = _body(prices, ORIGINS["plain"])
    assert_needs_a_key_and_the_forecaster(url, key, "/v1/forecasts/prices", body, "price_forecaster")


# Start checks, /v1/model, settings and the wheel -------------------------------------------------


def test_model_lists_the_forecasters_metadata(base_url: str) -> None:
    status, body, _ = call("GET", f"{base_url}/v1/model")
    assert status == 200
    listed = body["price_forecaster"]
    metadata = json.loads((BUNDLED_DIR / "metadata.json").read_text())
    assert listed["name"] == "nl_day_ahead_prices"
    assert listed["model_dir"] == str(BUNDLED_DIR.resolve())
    assert listed["horizon_h"] == 48
    assert listed["outputs"] == metadata["outputs"]
    assert listed["feature_names"] == metadata["feature_names"]
    assert listed["holidays"]["n_dates"] == len(metadata["holidays"]["dates"]) == 215
    assert "dates" not in listed["holidays"]
    assert listed["report_scores"]["seasonal_naive"]["coverage_10_90_frac"] == "nan"  # strict JSON


def _copy(tmp_path: Path) -> Path:
    target = tmp_path / "forecaster"
    shutil.copytree(BUNDLED_DIR, target)
    return target


def _edit_metadata(directory: Path, **changes: Any) -> None:
    path = directory / "metadata.json"
    metadata = json.loads(path.read_text())
    metadata.update(changes)
    path.write_text(json.dumps(metadata))


def test_the_service_refuses_to_start_with_a_tampered_graph(tmp_path: Path) -> None:
    directory = _copy(tmp_path)
    graph = directory / "q50.onnx"
    data = bytearray(graph.read_bytes())
    data[-1] ^= 1
    graph.write_bytes(bytes(data))
    settings = Settings(database_url=f"sqlite:///{tmp_path / 'r.db'}", price_forecaster_dir=directory)
    with pytest.raises(ModelError) as caught:
        create_app(settings)
    message = str(caught.value)
    assert message.startswith(f"price forecaster: {graph.resolve()} has sha256 ")
    assert "metadata.json expects 318c8a4f82af90f0bc686d5fd55d6e1de08db1a0ff552167620eebf2a37bc3ba" in message
    assert "field outputs.q50.sha256" in message


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"schema_version": 2}, "field schema_version is 2; expected 1"),
        ({"field": "arrivals"}, "field field is 'arrivals'; expected 'prices'"),
        (
            {"feature_names": ["lead_h"]},
            "field feature_names is ['lead_h']; expected ['lead_h', 'hour_of_day_h'",
        ),
        ({"inputs": {"features": {"dtype": "float32", "shape": ["N", 22]}}}, "inputs.features.shape"),
        ({"holidays": None}, "field holidays is (missing); expected the public holidays"),
        ({"horizon_steps": "48"}, "field horizon_steps is '48'; expected a whole number"),
        (
            {"postprocess": "forecast = variable"},
            "field postprocess is 'forecast = variable'; expected 'forecast =",
        ),
        (
            {"features": {**PRICE_METADATA_FEATURES, "step_min": 15}},
            "field features.step_min is 15; expected 60",
        ),
    ],
)
def test_start_checks_name_the_metadata_field(tmp_path: Path, changes: dict[str, Any], message: str) -> None:
    directory = _copy(tmp_path)
    _edit_metadata(directory, **changes)
    with pytest.raises(ModelError) as caught:
        OnnxPriceForecaster(directory)
    assert str(caught.value).startswith(f"price forecaster: {(directory / 'metadata.json').resolve()} field ")
    assert message in str(caught.value)


def test_missing_folder_and_missing_graph_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match=r"metadata\.json is missing"):
        OnnxPriceForecaster(tmp_path / "nowhere")
    directory = _copy(tmp_path)
    (directory / "q90.onnx").unlink()
    with pytest.raises(ModelError, match=r"q90\.onnx is missing"):
        OnnxPriceForecaster(directory)


def test_settings_default_to_the_bundled_forecaster_and_none_disables(tmp_path: Path) -> None:
    assert DEFAULT_PRICE_FORECASTER_DIR == BUNDLED_DIR
    assert Settings().price_forecaster_dir == BUNDLED_DIR
    assert Settings.from_environment({}).price_forecaster_dir == BUNDLED_DIR
    assert Settings.from_environment({"SMAC_PRICE_FORECASTER_DIR": "none"}).price_forecaster_dir is None
    chosen = Settings.from_environment({"SMAC_PRICE_FORECASTER_DIR": str(tmp_path)})
    assert chosen.price_forecaster_dir == tmp_path
    wheel = tmp_path / "wheel"
    assert default_forecaster_dir(tmp_path / "checkout", wheel) is None
    wheel.mkdir()
    assert default_forecaster_dir(tmp_path / "checkout", wheel) == wheel


def test_the_wheel_carries_the_forecaster_where_the_settings_look() -> None:
    pyproject = tomllib.loads((REPOSITORY / "pyproject.toml").read_text(encoding="utf-8"))
    mapping = pyproject["tool"]["hatch"]["build"]["targets"]["wheel"]["force-include"]
    target = mapping["models/forecasters/nl_day_ahead_prices/v1"]
    package = Path(settings_module.__file__).resolve().parent
    assert package.parent / target == settings_module._WHEEL_PRICE_FORECASTER_DIR
    size = sum(p.stat().st_size for p in BUNDLED_DIR.iterdir())
    assert size < 1_000_000  # the wheel stays small


def test_the_service_modules_import_no_pandas_lightgbm_or_holidays() -> None:
    code = (
        "import sys, smac_rl_serve.app, smac_rl_serve.forecasters; "
        "print(sorted(m for m in ('pandas', 'lightgbm', 'holidays', 'torch') if m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"
