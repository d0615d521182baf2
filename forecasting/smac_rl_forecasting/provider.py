"""``LightGbmPriceForecast``: the price forecaster behind :class:`smac_rl.core.forecasts.ForecastProvider`.

At step ``i`` of a scenario, the forecast origin is the start of the hour holding the step's
start (UTC). The provider reads the day-ahead prices of the hours before that origin (the bundle by
default, or the prices given), forecasts the next hours with a fitted :class:`PriceForecaster`
(its median, or another of its quantiles) and puts them on the scenario's grid, each step taking
the minute-weighted mean of the hours it covers. Steps further than the forecaster's horizon
(48 h) from the origin hold its last hour.

The scenario's prices are rebuilt from the day-ahead forecast by a stated rule (the generator's):
``import = day_ahead + import_adder_eur_per_kwh``; ``export = day_ahead`` (``export_rule="day_ahead"``)
or ``0`` (``"zero"``). The provider never reads the scenario's own price arrays, so it does not see
the truth of the step itself either (``NoisyForecast`` treats that step as known; this provider does
not). Every other series (base load, PV, limits) is passed through from the scenario as the
:class:`~smac_rl.core.forecasts.PerfectForecast` gives it.
"""

from __future__ import annotations

import datetime as dt
from typing import Literal

import numpy as np
import pandas as pd

from smac_rl.core.arrays import ScenarioArrays
from smac_rl.core.arraytypes import FloatArray
from smac_rl.core.forecasts import ExogenousForecast, PerfectForecast
from smac_rl_forecasting.features import HISTORY_DAYS
from smac_rl_forecasting.prices import PRICE_COLUMNS, PriceForecaster
from smac_rl_forecasting.series import ForecastInputError, bundled_prices, check_regular_series

QUANTILE_COLUMNS = {"q10": PRICE_COLUMNS[0], "q50": PRICE_COLUMNS[1], "q90": PRICE_COLUMNS[2]}


class LightGbmPriceForecast:
    """A :class:`~smac_rl.core.forecasts.ForecastProvider` whose prices come from a LightGBM forecaster."""

    def __init__(
        self,
        forecaster: PriceForecaster,
        prices: pd.Series | None = None,
        import_adder_eur_per_kwh: float = 0.0,
        export_rule: Literal["day_ahead", "zero"] = "day_ahead",
        quantile: Literal["q10", "q50", "q90"] = "q50",
    ) -> None:
        """Create the provider.

        Args:
            forecaster: A fitted price forecaster.
            prices: Hourly day-ahead prices [EUR/kWh] on a UTC index (the bundle's 2015-2024 when
                None); only hours before each origin are read.
            import_adder_eur_per_kwh: Retail adder on the day-ahead price for imports [EUR/kWh].
            export_rule: Exports paid at the day-ahead price, or nothing.
            quantile: Which quantile of the forecast is served.

        Raises:
            ForecastInputError: For an unfitted forecaster, bad prices, an unknown rule or quantile.
        """
        if not forecaster.core.is_fitted:
            raise ForecastInputError("forecaster: not fitted; call fit() first")
        if export_rule not in ("day_ahead", "zero"):
            raise ForecastInputError(f"export_rule: got {export_rule!r}; expected day_ahead or zero")
        if quantile not in QUANTILE_COLUMNS:
            raise ForecastInputError(f"quantile: got {quantile!r}; expected q10, q50 or q90")
        if prices is None:
            prices = bundled_prices(
                dt.datetime(2015, 1, 1, tzinfo=dt.UTC), dt.datetime(2025, 1, 1, tzinfo=dt.UTC)
            )
        self.prices = check_regular_series(prices, "prices", 60)
        self.forecaster = forecaster
        self.import_adder_eur_per_kwh = import_adder_eur_per_kwh
        self.export_rule = export_rule
        self.quantile = quantile
        self.name = f"lightgbm_prices_{quantile}"
        self._cache: tuple[pd.Timestamp, FloatArray] | None = None

    def _hourly(self, origin: pd.Timestamp) -> FloatArray:
        """The served quantile for the hours from ``origin`` on, ``(horizon_h,)`` [EUR/kWh]."""
        if self._cache is not None and self._cache[0] == origin:
            return self._cache[1]
        history = self.prices[
            (self.prices.index >= origin - pd.Timedelta(days=HISTORY_DAYS + 1)) & (self.prices.index < origin)
        ]
        if history.shape[0] < 2:
            raise ForecastInputError(
                f"prices: got no hours before origin {origin.isoformat()}; expected "
                f"{HISTORY_DAYS} days of history (the bundle covers 2015 to 2024)"
            )
        frame = self.forecaster.predict(history, origin)
        hourly = frame[QUANTILE_COLUMNS[self.quantile]].to_numpy(dtype=np.float64)
        self._cache = (origin, hourly)
        return hourly

    def forecast(self, arrays: ScenarioArrays, step_index: int, horizon_steps: int) -> ExogenousForecast:
        """Forecast prices from ``step_index`` (see the module docstring); other series are the truth."""
        truth = PerfectForecast().forecast(arrays, step_index, horizon_steps)
        step = pd.Timedelta(hours=arrays.step_h)
        step_start = pd.Timestamp(arrays.start_utc).tz_convert("UTC") + step * step_index
        origin = step_start.floor("h")
        hourly = self._hourly(origin)
        step_min = round(arrays.step_h * 60)
        minutes = (step_start - origin) // pd.Timedelta(minutes=1) + np.arange(truth.n_steps * step_min)
        hours = np.minimum(minutes // 60, hourly.shape[0] - 1)
        day_ahead = hourly[hours].reshape(truth.n_steps, step_min).mean(axis=1)
        export = day_ahead.copy() if self.export_rule == "day_ahead" else np.zeros_like(day_ahead)
        return ExogenousForecast(
            step_index=step_index,
            import_price_eur_per_kwh=day_ahead + self.import_adder_eur_per_kwh,
            export_price_eur_per_kwh=export,
            base_load_kw=truth.base_load_kw,
            pv_available_kw=truth.pv_available_kw,
            import_limit_kw=truth.import_limit_kw,
            export_limit_kw=truth.export_limit_kw,
        )
