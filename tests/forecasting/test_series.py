"""Input checks: every bad series or origin is refused with a ValueError naming the field."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from smac_rl.data.loaders import caltech_sessions
from smac_rl_forecasting.prices import PriceForecaster
from smac_rl_forecasting.series import ForecastInputError, arrival_counts, check_regular_series


def _hourly(n: int = 48, tz: str | None = "UTC") -> pd.Series:
    index = pd.date_range("2024-01-01", periods=n, freq="h", tz=tz)
    return pd.Series(np.linspace(0.0, 1.0, n), index=index)


def test_a_regular_utc_series_passes() -> None:
    checked = check_regular_series(_hourly(), "prices", 60)
    assert checked.dtype == np.float64


@pytest.mark.parametrize(
    ("series", "message"),
    [
        (_hourly(tz=None), "prices.index: got naive timestamps"),
        (_hourly(tz="Europe/Amsterdam"), "prices.index: got time zone Europe/Amsterdam; expected UTC"),
        (
            _hourly().drop(_hourly().index[5]),
            "prices.index: got a gap of 0 days 02:00:00 after 2024-01-01T04:00",
        ),
        (pd.concat([_hourly(5), _hourly(5)]), "prices.index: got unsorted or duplicated timestamps"),
        (
            _hourly().where(lambda s: s.index != s.index[3]),
            "prices: got a missing or non-finite value at 2024",
        ),
        (pd.Series([1.0, 2.0]), "prices.index: got RangeIndex"),
        (
            _hourly().set_axis(_hourly().index + pd.Timedelta(minutes=7)),
            "prices.index: got timestamps off the 60-minute boundaries",
        ),
    ],
)
def test_bad_series_are_refused_naming_the_field(series: pd.Series, message: str) -> None:
    with pytest.raises(ValueError, match=r"^" + message.replace("(", r"\(").replace(")", r"\)")):
        check_regular_series(series, "prices", 60)


def test_too_little_history_is_refused() -> None:
    with pytest.raises(ForecastInputError, match=r"^prices: got 48 rows; expected at least 720"):
        PriceForecaster().fit(_hourly())


def test_bad_origins_and_horizons_are_refused(fitted_prices: PriceForecaster, prices_2024: pd.Series) -> None:
    with pytest.raises(ValueError, match=r"^origin_utc: got naive"):
        fitted_prices.predict(prices_2024, dt.datetime(2024, 3, 10, 12))
    with pytest.raises(ValueError, match=r"^origin_utc: got 2024-03-10T12:30:00"):
        fitted_prices.predict(prices_2024, dt.datetime(2024, 3, 10, 12, 30, tzinfo=dt.UTC))
    with pytest.raises(ValueError, match=r"^prices: got 24 steps before origin 2024-01-02T00:00:00\+00:00"):
        fitted_prices.predict(prices_2024, dt.datetime(2024, 1, 2, tzinfo=dt.UTC))
    with pytest.raises(ValueError, match=r"^horizon_steps: got 49; expected 1 to 48"):
        fitted_prices.predict(prices_2024, dt.datetime(2024, 3, 10, tzinfo=dt.UTC), horizon_h=49)
    with pytest.raises(ValueError, match=r"^horizon_h: got 49"):
        PriceForecaster(horizon_h=49)


def test_arrival_counts_count_every_session_of_the_period_once() -> None:
    period = "2021-05-01 2021-08-31"
    counts = arrival_counts(period)
    index = pd.DatetimeIndex(counts.index)
    assert index.tz is not None
    assert (np.diff(index.as_unit("s").asi8) == 900).all()
    sessions = caltech_sessions(period)
    inside = sessions["arrival_utc"].between(
        counts.index[0], counts.index[-1] + pd.Timedelta(minutes=15), inclusive="left"
    )
    assert counts.sum() == inside.sum()
    assert counts.index[0] == pd.Timestamp("2021-05-01 07:00", tz="UTC")  # local midnight (PDT)
