"""Day-ahead price forecaster: hourly quantiles (10/50/90 %) up to 48 h from any hourly origin.

A forecast made at ``origin_utc`` reads only prices of hours that start before it (conservative:
in the market, the next day's prices are published around 12:45 CET, so some are known earlier).
Features are those of :mod:`smac_rl_forecasting.features` with the calendar of Europe/Amsterdam
and Dutch public holidays; value features and the target are normalised by the last week's mean
and spread. Training origins are every 7 hours, so every hour of the day is an origin.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import replace

import pandas as pd

from smac_rl_forecasting.features import FeatureConfig
from smac_rl_forecasting.model import BoosterConfig, SlotForecaster
from smac_rl_forecasting.series import PRICE_TIMEZONE, ForecastInputError

PRICE_COLUMNS = ("price_q10_eur_per_kwh", "price_q50_eur_per_kwh", "price_q90_eur_per_kwh")
"""Columns of :meth:`PriceForecaster.predict`: the 10, 50 and 90 % quantiles [EUR/kWh]."""

MAX_HORIZON_H = 48
"""Longest horizon of the price forecaster [h]."""

PRICE_FEATURES = FeatureConfig(
    step_min=60,
    timezone=PRICE_TIMEZONE,
    holiday_country="NL",
    is_normalized=True,
    scale_floor=0.005,
)
"""Feature configuration of the price forecaster (spread floor 0.005 EUR/kWh)."""

PRICE_BOOSTER = BoosterConfig(objective="quantile", quantiles=(0.1, 0.5, 0.9))
"""Default LightGBM settings of the price forecaster."""


class PriceForecaster:
    """Quantile forecaster of hourly day-ahead prices [EUR/kWh].

    Example:
        >>> forecaster = PriceForecaster().fit(prices_until_2022)  # doctest: +SKIP
        >>> forecaster.predict(prices, origin_utc)  # doctest: +SKIP
    """

    def __init__(
        self,
        booster: BoosterConfig = PRICE_BOOSTER,
        is_normalized: bool = True,
        horizon_h: int = MAX_HORIZON_H,
        origin_every_h: int = 7,
    ) -> None:
        """Create an unfitted forecaster.

        Args:
            booster: LightGBM settings (objective ``quantile``, quantiles 0.1, 0.5, 0.9).
            is_normalized: Normalise by the last week's level and spread (see the features).
            horizon_h: Longest horizon [h], 1 to 48.
            origin_every_h: Spacing of the training origins [h].

        Raises:
            ForecastInputError: For a horizon out of range or a booster that is not the three quantiles.
        """
        if not 1 <= horizon_h <= MAX_HORIZON_H:
            raise ForecastInputError(f"horizon_h: got {horizon_h}; expected 1 to {MAX_HORIZON_H}")
        if booster.objective != "quantile" or booster.quantiles != (0.1, 0.5, 0.9):
            raise ForecastInputError(
                f"booster: got {booster.objective} {booster.quantiles}; expected quantile (0.1, 0.5, 0.9)"
            )
        if origin_every_h < 1:
            raise ForecastInputError(f"origin_every_h: got {origin_every_h}; expected at least 1")
        features = replace(PRICE_FEATURES, is_normalized=is_normalized)
        self.core = SlotForecaster("prices", features, booster, horizon_steps=horizon_h)
        self.origin_every_h = origin_every_h

    @classmethod
    def from_core(cls, core: SlotForecaster) -> PriceForecaster:
        """Wrap a fitted core (read back with :meth:`SlotForecaster.from_json`)."""
        forecaster = cls(booster=core.booster, is_normalized=core.features.is_normalized)
        forecaster.core = core
        return forecaster

    @property
    def horizon_h(self) -> int:
        """Longest horizon [h]."""
        return self.core.horizon_steps

    def fit(self, prices: pd.Series) -> PriceForecaster:
        """Fit on hourly prices [EUR/kWh] indexed by UTC hour starts (at least 30 days).

        Raises:
            ForecastInputError: For naive or non-UTC timestamps, gaps, non-finite values or too
                little history; the message names the field.
        """
        self.core.fit(prices, origin_every_steps=self.origin_every_h)
        return self

    def predict(
        self, prices: pd.Series, origin_utc: dt.datetime | pd.Timestamp, horizon_h: int | None = None
    ) -> pd.DataFrame:
        """Quantile forecasts of the hours from ``origin_utc`` on.

        Args:
            prices: Hourly prices [EUR/kWh] on a UTC index, at least 28 days before the origin;
                prices of hours from the origin on are ignored.
            origin_utc: When the forecast is made (timezone-aware, on the hour).
            horizon_h: Hours forecast (default: the fitted horizon).

        Returns:
            :data:`PRICE_COLUMNS` and ``lead_h``, indexed by ``target_utc`` (hour starts).

        Raises:
            ForecastInputError: For bad prices, a naive or misaligned origin or too little history.
        """
        frame = self.predict_many(prices, [origin_utc], horizon_h)
        return frame.set_index("target_utc")[["lead_h", *PRICE_COLUMNS]]

    def predict_many(
        self,
        prices: pd.Series,
        origins_utc: Sequence[dt.datetime | pd.Timestamp],
        horizon_h: int | None = None,
    ) -> pd.DataFrame:
        """Forecasts from several origins, one row per (origin, target hour); see :meth:`predict`."""
        frame = self.core.predict_many(prices, origins_utc, horizon_h)
        return frame.rename(columns=dict(zip(("q10", "q50", "q90"), PRICE_COLUMNS, strict=True)))
