"""LightGbmPriceForecast is a ForecastProvider that reads only prices before the step's hour."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from smac_rl.core.arrays import compile_scenario
from smac_rl.core.forecasts import ForecastProvider, PerfectForecast
from smac_rl.core.scenario_io import load_builtin_scenario
from smac_rl_forecasting.prices import PRICE_COLUMNS, PriceForecaster
from smac_rl_forecasting.provider import LightGbmPriceForecast
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
