"""The price forecaster: shapes, ordered quantiles, determinism and no leakage past the origin."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from smac_rl_forecasting.features import build_features, feature_names
from smac_rl_forecasting.model import SlotForecaster
from smac_rl_forecasting.prices import PRICE_COLUMNS, PRICE_FEATURES, PriceForecaster
from tests.forecasting.conftest import tiny_price_forecaster

ORIGIN = pd.Timestamp("2024-03-20 11:00", tz="UTC")


def test_forecast_has_48_ordered_hourly_quantiles(
    fitted_prices: PriceForecaster, prices_2024: pd.Series
) -> None:
    frame = fitted_prices.predict(prices_2024, ORIGIN)
    assert list(frame.columns) == ["lead_h", *PRICE_COLUMNS]
    assert frame.shape[0] == 48
    assert frame.index[0] == ORIGIN
    assert (np.diff(pd.DatetimeIndex(frame.index).as_unit("s").asi8) == 3600).all()
    q10, q50, q90 = (frame[c].to_numpy() for c in PRICE_COLUMNS)
    assert (q10 <= q50).all()
    assert (q50 <= q90).all()
    assert np.isfinite(q50).all()
    np.testing.assert_array_equal(frame["lead_h"], np.arange(48.0))


def test_fitting_twice_gives_the_same_model(prices_2024: pd.Series) -> None:
    train = prices_2024[prices_2024.index < pd.Timestamp("2024-02-15", tz="UTC")]
    first = tiny_price_forecaster().fit(train).predict(prices_2024, ORIGIN)
    second = tiny_price_forecaster().fit(train).predict(prices_2024, ORIGIN)
    pd.testing.assert_frame_equal(first, second)


def test_prices_from_the_origin_on_do_not_change_the_forecast(
    fitted_prices: PriceForecaster, prices_2024: pd.Series
) -> None:
    before = fitted_prices.predict(prices_2024, ORIGIN)
    after_origin = prices_2024.index >= ORIGIN
    rng = np.random.default_rng(0)
    shuffled = prices_2024.copy()
    shuffled[after_origin] = rng.permutation(shuffled[after_origin].to_numpy())
    perturbed = prices_2024.copy()
    perturbed[after_origin] = perturbed[after_origin] * 10.0 + 3.0
    cut = prices_2024[~after_origin]
    for variant in (shuffled, perturbed, cut):
        pd.testing.assert_frame_equal(fitted_prices.predict(variant, ORIGIN), before)
    changed = prices_2024.copy()
    changed.iloc[-1 - int((changed.index >= ORIGIN).sum())] += 1.0
    assert not fitted_prices.predict(changed, ORIGIN).equals(before)


def test_features_read_nothing_at_or_after_the_origin() -> None:
    values = np.linspace(0.0, 1.0, 24 * 40)
    origin = 24 * 30 + 5
    values[origin:] = np.nan
    lead = np.arange(48)
    features, level, scale = build_features(
        values, pd.Timestamp("2024-01-01", tz="UTC"), np.full(48, origin), lead, PRICE_FEATURES
    )
    assert features.shape == (48, len(feature_names(PRICE_FEATURES)))
    assert np.isfinite(features).all()
    assert np.isfinite(level).all()
    assert np.isfinite(scale).all()


def test_calendar_features_use_local_time_and_dutch_holidays() -> None:
    values = np.ones(24 * 40)
    origin = np.array([24 * 29])  # 2024-01-30 00:00 UTC
    names = feature_names(PRICE_FEATURES)
    start = pd.Timestamp("2024-01-01", tz="UTC")
    features, _, _ = build_features(values, start, origin, np.array([0]), PRICE_FEATURES)
    row = dict(zip(names, features[0], strict=True))
    assert row["hour_of_day_h"] == 1.0  # 01:00 CET
    assert row["weekday"] == 1.0  # Tuesday
    assert row["is_holiday"] == 0.0
    kings_day = pd.Timestamp("2024-04-27 10:00", tz="UTC")
    position = np.array([(kings_day - start) // pd.Timedelta(hours=1)])
    long_values = np.ones(int(position[0]) + 1)
    features, _, _ = build_features(long_values, start, position, np.array([0]), PRICE_FEATURES)
    assert dict(zip(names, features[0], strict=True))["is_holiday"] == 1.0


def test_a_naive_start_is_refused_not_read_as_utc() -> None:
    values = np.ones(24 * 40)
    naive = pd.Timestamp("2024-01-01")
    with pytest.raises(
        ValueError, match=r"start_utc: got 2024-01-01 00:00:00 \(naive\); expected a timezone-aware"
    ):
        build_features(values, naive, np.array([24 * 29]), np.array([0]), PRICE_FEATURES)


def test_a_fitted_forecaster_survives_json(fitted_prices: PriceForecaster, prices_2024: pd.Series) -> None:
    again = PriceForecaster.from_core(SlotForecaster.from_json(fitted_prices.core.to_json()))
    pd.testing.assert_frame_equal(
        again.predict(prices_2024, ORIGIN), fitted_prices.predict(prices_2024, ORIGIN)
    )
    assert again.core.training == fitted_prices.core.training


def test_predict_many_matches_predict(fitted_prices: PriceForecaster, prices_2024: pd.Series) -> None:
    origins = [ORIGIN, ORIGIN + dt.timedelta(hours=7)]
    many = fitted_prices.predict_many(prices_2024, origins, 24)
    one = fitted_prices.predict(prices_2024, origins[1], 24)
    np.testing.assert_allclose(many[PRICE_COLUMNS[1]].to_numpy()[24:], one[PRICE_COLUMNS[1]].to_numpy())
