"""Shared fixtures: a slice of the bundled prices and a tiny fitted price forecaster (fast, deterministic)."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest

from smac_rl_forecasting.model import BoosterConfig
from smac_rl_forecasting.prices import PriceForecaster
from smac_rl_forecasting.series import bundled_prices

TINY_BOOSTER = BoosterConfig(n_trees=15, num_leaves=7, min_data_in_leaf=20, num_threads=1, seed=0)
"""Few small trees, one thread: fast and reproducible."""


def tiny_price_forecaster() -> PriceForecaster:
    """An unfitted forecaster with :data:`TINY_BOOSTER`, training origins every 11 h."""
    return PriceForecaster(booster=TINY_BOOSTER, origin_every_h=11)


@pytest.fixture(scope="session")
def prices_2024() -> pd.Series:
    """Bundled prices 2024-01-01 .. 2024-05-01 UTC [EUR/kWh]."""
    return bundled_prices(dt.datetime(2024, 1, 1, tzinfo=dt.UTC), dt.datetime(2024, 5, 1, tzinfo=dt.UTC))


@pytest.fixture(scope="session")
def fitted_prices(prices_2024: pd.Series) -> PriceForecaster:
    """The tiny forecaster fitted on targets before 2024-03-01."""
    return tiny_price_forecaster().fit(prices_2024[prices_2024.index < pd.Timestamp("2024-03-01", tz="UTC")])
