"""Rolling-origin evaluation on a short slice: origin rule, baselines and scores."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from smac_rl_forecasting.backtest import (
    ARRIVALS_CANDIDATES,
    Evaluation,
    arrivals_forecaster,
    daily_origins,
    rolling_day_ahead,
    score_arrivals,
    score_prices,
)
from smac_rl_forecasting.cards import PRICE_SUMMARY_COLUMNS, markdown_table
from smac_rl_forecasting.metrics import score
from smac_rl_forecasting.prices import PRICE_COLUMNS, PriceForecaster
from smac_rl_forecasting.series import CALTECH_TIMEZONE, PRICE_TIMEZONE, arrival_counts


def test_origins_are_noon_local_the_day_before() -> None:
    winter, summer = (
        daily_origins(dt.date(2024, 1, 10), dt.date(2024, 1, 10), PRICE_TIMEZONE),
        daily_origins(dt.date(2024, 7, 10), dt.date(2024, 7, 10), PRICE_TIMEZONE),
    )
    assert winter == [pd.Timestamp("2024-01-09 11:00", tz="UTC")]
    assert summer == [pd.Timestamp("2024-07-09 10:00", tz="UTC")]


def test_day_ahead_rows_cover_each_local_day_with_baselines(
    fitted_prices: PriceForecaster, prices_2024: pd.Series
) -> None:
    first, last = dt.date(2024, 3, 30), dt.date(2024, 4, 2)  # DST starts on 2024-03-31: a 23-hour day
    frame = rolling_day_ahead(fitted_prices.core, prices_2024, first, last, PRICE_TIMEZONE)
    assert frame.shape[0] == 24 * 4 - 1
    assert frame["lead_h"].min() >= 12.0
    assert frame["lead_h"].max() <= 36.0
    assert (frame["origin_utc"] < frame["target_utc"]).all()
    targets = pd.DatetimeIndex(frame["target_utc"])
    np.testing.assert_array_equal(frame["actual"], prices_2024.reindex(targets).to_numpy())
    np.testing.assert_array_equal(
        frame["seasonal_naive"], prices_2024.reindex(targets - pd.Timedelta(days=7)).to_numpy()
    )
    lags = [prices_2024.reindex(targets - pd.Timedelta(days=7 * j)).to_numpy() for j in (1, 2, 3, 4)]
    np.testing.assert_allclose(frame["profile_4w"], np.mean(lags, axis=0))
    scores = score_prices(frame.rename(columns=dict(zip(("q10", "q50", "q90"), PRICE_COLUMNS, strict=True))))
    assert list(scores.index) == ["lightgbm", "seasonal_naive", "profile_4w"]
    assert score(scores, "seasonal_naive", "mae_ratio_seasonal_naive") == 1.0
    assert 0.0 <= score(scores, "lightgbm", "coverage_10_90_frac") <= 1.0
    assert np.isnan(score(scores, "profile_4w", "coverage_10_90_frac"))
    assert score(scores, "seasonal_naive", "pinball_q50_eur_per_kwh") == pytest.approx(
        score(scores, "seasonal_naive", "mae_eur_per_kwh") / 2
    )
    table = markdown_table([Evaluation("check", first, last, frame, scores)], PRICE_SUMMARY_COLUMNS)
    assert table.count("\n") == 4


def test_arrivals_forecaster_scores_a_short_slice() -> None:
    series = arrival_counts("2019-05-01 2019-08-31")
    booster = ARRIVALS_CANDIDATES["small"]
    from dataclasses import replace

    core = arrivals_forecaster(replace(booster, n_trees=10, num_threads=1))
    core.fit(series[series.index < pd.Timestamp("2019-07-15", tz="UTC")], origin_every_steps=37)
    frame = rolling_day_ahead(core, series, dt.date(2019, 8, 1), dt.date(2019, 8, 3), CALTECH_TIMEZONE)
    assert frame.shape[0] == 3 * 96
    assert (frame["mean"] > 0).all()
    scores = score_arrivals(frame)
    assert score(scores, "profile_4w", "deviance_ratio_profile_4w") == 1.0
    assert np.isfinite(scores.to_numpy()).all()
