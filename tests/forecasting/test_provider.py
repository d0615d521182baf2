"""LightGbmPriceForecast is a ForecastProvider that reads only prices before the step's hour."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from smac_rl.core.arrays import compile_scenario
from smac_rl.core.forecasts import ForecastProvider, PerfectForecast
from smac_rl.core.scenario_io import load_builtin_scenario
from smac_rl_forecasting.onnx_export import export_forecaster
from smac_rl_forecasting.prices import PRICE_COLUMNS, PriceForecaster
from smac_rl_forecasting.provider import (
    DEFAULT_PRICE_MODEL_DIR,
    LightGbmPriceForecast,
    SeasonalNaivePriceForecast,
    load_onnx_price_forecaster,
)
from smac_rl_forecasting.series import ForecastInputError
from tests.forecasting.conftest import tiny_price_forecaster


def test_provider_serves_the_forecast_on_the_grid(
    fitted_prices: PriceForecaster, prices_2024: pd.Series
) -> None:
    arrays = compile_scenario(
        load_builtin_scenario("demo_workplace")
    )  # 15-minute steps from 2024-04-16 22:00 UTC
    provider = LightGbmPriceForecast(
        fitted_prices, prices_2024, import_adder_eur_per_kwh=0.1, export_rule="zero"
    )
    assert isinstance(provider, ForecastProvider)
    forecast = provider.forecast(arrays, 5, 96)  # step 5 starts at 23:15 UTC: origin 23:00
    assert forecast.n_steps == 91  # cut at the grid's end
    hourly = fitted_prices.predict(prices_2024, pd.Timestamp("2024-04-16 23:00", tz="UTC"))[PRICE_COLUMNS[1]]
    np.testing.assert_allclose(forecast.import_price_eur_per_kwh[:3], hourly.iloc[0] + 0.1)
    np.testing.assert_allclose(forecast.import_price_eur_per_kwh[3:7], hourly.iloc[1] + 0.1)
    np.testing.assert_array_equal(forecast.export_price_eur_per_kwh, 0.0)
    truth = PerfectForecast().forecast(arrays, 5, 96)
    np.testing.assert_array_equal(forecast.base_load_kw, truth.base_load_kw)
    np.testing.assert_array_equal(forecast.pv_available_kw, truth.pv_available_kw)


def test_provider_ignores_prices_from_the_step_hour_on(
    fitted_prices: PriceForecaster, prices_2024: pd.Series
) -> None:
    arrays = compile_scenario(load_builtin_scenario("demo_workplace"))
    origin = pd.Timestamp("2024-04-16 23:00", tz="UTC")
    perturbed = prices_2024.copy()
    perturbed[perturbed.index >= origin] = 5.0
    first = LightGbmPriceForecast(fitted_prices, prices_2024).forecast(arrays, 4, 48)
    second = LightGbmPriceForecast(fitted_prices, perturbed).forecast(arrays, 4, 48)
    np.testing.assert_array_equal(first.import_price_eur_per_kwh, second.import_price_eur_per_kwh)
    np.testing.assert_array_equal(first.export_price_eur_per_kwh, first.import_price_eur_per_kwh)


def test_provider_refuses_an_unfitted_forecaster_or_missing_history(
    fitted_prices: PriceForecaster, prices_2024: pd.Series
) -> None:
    with pytest.raises(ValueError, match=r"^forecaster: not fitted"):
        LightGbmPriceForecast(tiny_price_forecaster(), prices_2024)
    arrays = compile_scenario(load_builtin_scenario("demo_workplace"))
    early = prices_2024[prices_2024.index < pd.Timestamp("2024-01-10", tz="UTC")]
    with pytest.raises(ForecastInputError, match=r"^prices: got no hours before origin"):
        LightGbmPriceForecast(fitted_prices, early).forecast(arrays, 0, 4)


# --- The seasonal-naive provider: hourly prices i / 1000 EUR/kWh from 2024-04-09 00:00 UTC (hour i) ---


def _hour_index_prices(first_utc: str = "2024-04-09 00:00", n_hours: int = 9 * 24) -> pd.Series:
    index = pd.date_range(pd.Timestamp(first_utc, tz="UTC"), periods=n_hours, freq="h")
    start = (index[0] - pd.Timestamp("2024-04-09 00:00", tz="UTC")) // pd.Timedelta(hours=1)
    return pd.Series((start + np.arange(n_hours)) / 1000.0, index=index)


def test_seasonal_naive_serves_the_same_hour_one_week_earlier() -> None:
    arrays = compile_scenario(load_builtin_scenario("demo_workplace"))  # 15 min from 2024-04-16 22:00 UTC
    provider = SeasonalNaivePriceForecast(_hour_index_prices(), import_adder_eur_per_kwh=0.1)
    assert isinstance(provider, ForecastProvider)
    assert provider.name == "seasonal_naive_prices"
    # Step 5 starts at 2024-04-16 23:15: origin 23:00; its hour a week earlier is hour 23 (0.023),
    # steps 8..11 lie in 2024-04-17 00:00 (a week earlier: hour 24), step 12 in 01:00 (hour 25).
    forecast = provider.forecast(arrays, 5, 8)
    day_ahead = [0.023] * 3 + [0.024] * 4 + [0.025]
    np.testing.assert_allclose(forecast.import_price_eur_per_kwh, np.add(day_ahead, 0.1), rtol=0, atol=1e-12)
    np.testing.assert_allclose(forecast.export_price_eur_per_kwh, day_ahead, rtol=0, atol=1e-12)
    truth = PerfectForecast().forecast(arrays, 5, 8)
    for name in ("base_load_kw", "pv_available_kw", "import_limit_kw", "export_limit_kw"):
        np.testing.assert_array_equal(getattr(forecast, name), getattr(truth, name))
    last = provider.forecast(arrays, 95, 96)  # 2024-04-17 21:45, cut at the grid's end: hour 213 - 168 = 45
    assert last.n_steps == 1
    np.testing.assert_allclose(last.import_price_eur_per_kwh, [0.045 + 0.1], rtol=0, atol=1e-12)


def test_seasonal_naive_beyond_a_week_takes_the_latest_week_before_the_origin() -> None:
    provider = SeasonalNaivePriceForecast(_hour_index_prices(), export_rule="zero")
    origin = pd.Timestamp("2024-04-16 23:00", tz="UTC")  # hour 191
    hourly = provider.hourly(origin, 170)
    assert hourly.shape == (170,)
    np.testing.assert_allclose(hourly[[0, 1, 167]], [0.023, 0.024, 0.190], rtol=0, atol=1e-12)
    # leads 168 and 169 (hours 359, 360): two weeks earlier, hours 23 and 24
    np.testing.assert_allclose(hourly[[168, 169]], [0.023, 0.024], rtol=0, atol=1e-12)
    arrays = compile_scenario(load_builtin_scenario("demo_workplace"))
    np.testing.assert_array_equal(provider.forecast(arrays, 5, 8).export_price_eur_per_kwh, 0.0)


def test_seasonal_naive_reads_only_the_week_before_the_origin() -> None:
    arrays = compile_scenario(load_builtin_scenario("demo_workplace"))
    prices = _hour_index_prices()
    origin = pd.Timestamp("2024-04-16 23:00", tz="UTC")
    future = prices.copy()
    future[future.index >= origin] = 5.0
    first = SeasonalNaivePriceForecast(prices).forecast(arrays, 5, 48)
    np.testing.assert_array_equal(
        first.import_price_eur_per_kwh,
        SeasonalNaivePriceForecast(future).forecast(arrays, 5, 48).import_price_eur_per_kwh,
    )
    last_week = prices.copy()
    last_week[last_week.index == pd.Timestamp("2024-04-09 23:00", tz="UTC")] = 5.0
    changed = SeasonalNaivePriceForecast(last_week).forecast(arrays, 5, 48)
    np.testing.assert_array_equal(changed.import_price_eur_per_kwh[:3], 5.0)
    np.testing.assert_array_equal(changed.import_price_eur_per_kwh[3:], first.import_price_eur_per_kwh[3:])


def test_seasonal_naive_refuses_missing_history_and_bad_rules() -> None:
    arrays = compile_scenario(load_builtin_scenario("demo_workplace"))
    late = _hour_index_prices("2024-04-12 00:00", 6 * 24)
    with pytest.raises(ForecastInputError, match=r"^prices: got no price for 2024-04-09T23:00:00\+00:00"):
        SeasonalNaivePriceForecast(late).forecast(arrays, 5, 4)
    with pytest.raises(ForecastInputError, match=r"^export_rule: got 'market'"):
        SeasonalNaivePriceForecast(_hour_index_prices(), export_rule="market")  # type: ignore[arg-type]
    with pytest.raises(ForecastInputError, match=r"^import_adder_eur_per_kwh: got nan"):
        SeasonalNaivePriceForecast(_hour_index_prices(), import_adder_eur_per_kwh=float("nan"))


# --- The ONNX-backed forecaster ---


def test_onnx_forecaster_predicts_as_the_lightgbm_one(
    fitted_prices: PriceForecaster, prices_2024: pd.Series, tmp_path: Path
) -> None:
    origins = [pd.Timestamp("2024-03-20", tz="UTC") + pd.Timedelta(hours=7 * i) for i in range(5)]
    rows = fitted_prices.core.feature_rows(prices_2024, origins)[2]
    export_forecaster(fitted_prices.core, tmp_path / "v1", rows, "test_prices", "v1")
    onnx = load_onnx_price_forecaster(tmp_path / "v1")
    assert onnx.core.is_fitted
    assert onnx.core.training == fitted_prices.core.training
    origin = pd.Timestamp("2024-04-16 23:00", tz="UTC")
    expected = fitted_prices.predict(prices_2024, origin)
    got = onnx.predict(prices_2024, origin)
    assert list(got.columns) == list(expected.columns)
    # graphs agree within the export's tolerance in normalised units; the weekly spread is < 1 EUR/kWh
    np.testing.assert_allclose(got[list(PRICE_COLUMNS)], expected[list(PRICE_COLUMNS)], rtol=0, atol=1e-4)
    arrays = compile_scenario(load_builtin_scenario("demo_workplace"))
    served = LightGbmPriceForecast(onnx, prices_2024).forecast(arrays, 5, 8).import_price_eur_per_kwh
    np.testing.assert_allclose(served[:3], got[PRICE_COLUMNS[1]].iloc[0], rtol=0, atol=1e-12)


def test_onnx_forecaster_refuses_a_tampered_graph_or_a_missing_folder(
    fitted_prices: PriceForecaster, prices_2024: pd.Series, tmp_path: Path
) -> None:
    origins = [pd.Timestamp("2024-03-20", tz="UTC")]
    rows = fitted_prices.core.feature_rows(prices_2024, origins)[2]
    export_forecaster(fitted_prices.core, tmp_path / "v1", rows, "test_prices", "v1")
    (tmp_path / "v1" / "q50.onnx").write_bytes((tmp_path / "v1" / "q10.onnx").read_bytes())
    with pytest.raises(ForecastInputError, match=r"^price model: got sha256 [0-9a-f]{64} for .*q50.onnx"):
        load_onnx_price_forecaster(tmp_path / "v1")
    with pytest.raises(ForecastInputError, match=r"^price model: got '.*nowhere'; expected a folder"):
        load_onnx_price_forecaster(tmp_path / "nowhere")


def test_the_promoted_price_model_loads_and_never_saw_2024(prices_2024: pd.Series) -> None:
    forecaster = load_onnx_price_forecaster(Path(__file__).parents[2] / DEFAULT_PRICE_MODEL_DIR)
    assert forecaster.core.training is not None
    assert pd.Timestamp(forecaster.core.training.last_target_utc) < pd.Timestamp("2024-01-01", tz="UTC")
    frame = forecaster.predict(prices_2024, pd.Timestamp("2024-04-16 23:00", tz="UTC"))
    assert frame.shape[0] == 48
    quantiles = frame[list(PRICE_COLUMNS)].to_numpy()
    assert np.isfinite(quantiles).all()
    assert (np.diff(quantiles, axis=1) >= 0).all()
