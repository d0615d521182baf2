"""Regular series the forecasters read: checks (timezone, gaps, values) and the bundled targets.

A forecaster's input is a ``pandas.Series`` on a regular UTC index (one row per step, no gap).
Anything else is refused with a :class:`ForecastInputError` (a ``ValueError``) naming the field:
naive or non-UTC timestamps, unsorted or duplicated rows, gaps (fill them and flag them first, as
the bundle does for its two missing price hours), steps off the step boundary and non-finite values.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd

from smac_rl.core.errors import SmacError
from smac_rl.data.loaders import caltech_sessions, day_ahead_prices_hourly

PRICE_TIMEZONE = "Europe/Amsterdam"
"""Local time zone of the Dutch day-ahead market (its calendar features and origins)."""

CALTECH_TIMEZONE = "America/Los_Angeles"
"""Local time zone of the Caltech ACN site."""


class ForecastInputError(SmacError, ValueError):
    """A forecaster's input that breaks its contract; the message names the field."""


def check_regular_series(values: pd.Series, field: str, step_min: int) -> pd.Series:
    """Check a series for a forecaster and return it as float on its UTC index.

    Args:
        values: Values indexed by the UTC start of each step.
        field: Name used in error messages (``prices``, ``arrivals``...).
        step_min: Step length the series must have [min].

    Returns:
        The series as ``float64``.

    Raises:
        ForecastInputError: For a non-series, an index that is not a timezone-aware UTC
            ``DatetimeIndex``, unsorted or duplicated timestamps, gaps, timestamps off the step
            boundary, too few rows or non-finite values.
    """
    if not isinstance(values, pd.Series):
        raise ForecastInputError(f"{field}: got {type(values).__name__}; expected a pandas Series")
    index = values.index
    if not isinstance(index, pd.DatetimeIndex):
        raise ForecastInputError(f"{field}.index: got {type(index).__name__}; expected a DatetimeIndex (UTC)")
    if index.tz is None:
        raise ForecastInputError(
            f"{field}.index: got naive timestamps; expected timezone-aware UTC timestamps"
        )
    if str(index.tz) not in ("UTC", "utc", "Etc/UTC"):
        raise ForecastInputError(f"{field}.index: got time zone {index.tz}; expected UTC (convert it first)")
    if len(index) < 2:
        raise ForecastInputError(f"{field}: got {len(index)} rows; expected at least 2")
    step = pd.Timedelta(minutes=step_min)
    if ((index - index[0]) % step != pd.Timedelta(0)).any() or index[0] != index[0].floor(step):
        raise ForecastInputError(f"{field}.index: got timestamps off the {step_min}-minute boundaries")
    deltas = np.diff(index.as_unit("ns").asi8)
    bad = np.flatnonzero(deltas != step.value)
    if bad.size:
        first = int(bad[0])
        gap = pd.Timedelta(int(deltas[first]), unit="ns")
        what = "unsorted or duplicated timestamps" if gap <= pd.Timedelta(0) else f"a gap of {gap}"
        raise ForecastInputError(
            f"{field}.index: got {what} after {index[first].isoformat()}; "
            f"expected one row every {step_min} min (fill gaps by a stated rule and flag them)"
        )
    array = values.to_numpy(dtype=np.float64, na_value=np.nan)
    finite = np.isfinite(array)
    if not finite.all():
        where = index[int(np.flatnonzero(~finite)[0])].isoformat()
        raise ForecastInputError(
            f"{field}: got a missing or non-finite value at {where}; expected finite values"
        )
    return pd.Series(array, index=index, name=values.name)


def check_origin(origin_utc: dt.datetime | pd.Timestamp, step_min: int) -> pd.Timestamp:
    """A forecast origin as a UTC timestamp on the step boundary.

    Args:
        origin_utc: When the forecast is made, timezone-aware.
        step_min: Step length of the series [min].

    Raises:
        ForecastInputError: For a naive origin or one off the step boundary.
    """
    origin = pd.Timestamp(origin_utc)
    if origin.tzinfo is None:
        raise ForecastInputError(
            f"origin_utc: got naive {origin.isoformat()}; expected a timezone-aware instant"
        )
    origin = origin.tz_convert("UTC")
    if origin != origin.floor(pd.Timedelta(minutes=step_min)):
        raise ForecastInputError(
            f"origin_utc: got {origin.isoformat()}; expected a multiple of {step_min} min (floor it first)"
        )
    return origin


def bundled_prices(start_utc: dt.datetime, end_utc: dt.datetime) -> pd.Series:
    """Dutch day-ahead prices of the bundle, hourly, in ``[start_utc, end_utc)`` [EUR/kWh].

    The bundle's two filled hours (2023-12-30 23:00 and 2024-12-30 23:00 UTC) are kept as filled.
    """
    table = day_ahead_prices_hourly(start_utc, end_utc)
    return table["price_eur_per_kwh"].astype(np.float64).rename("price_eur_per_kwh")


def caltech_period_bounds(period: str) -> tuple[pd.Timestamp, pd.Timestamp]:
    """UTC start and end of a Caltech period (``"YYYY-MM-DD YYYY-MM-DD"``, local days, end inclusive)."""
    first, last = period.split()
    start = pd.Timestamp(first).tz_localize(CALTECH_TIMEZONE).tz_convert("UTC")
    end = (pd.Timestamp(last) + pd.Timedelta(days=1)).tz_localize(CALTECH_TIMEZONE).tz_convert("UTC")
    return start, end


def arrival_counts(period: str, step_min: int = 15) -> pd.Series:
    """Arrivals of the bundled Caltech sessions per step over one period (zeros included).

    Args:
        period: One of :data:`smac_rl.data.periods.CALTECH_PERIODS`.
        step_min: Step length [min].

    Returns:
        Counts indexed by the UTC start of each step, from the period's first local midnight to the
        midnight after its last day; arrivals outside that range are dropped.
    """
    sessions = caltech_sessions(period)
    start, end = caltech_period_bounds(period)
    index = pd.date_range(start, end, freq=pd.Timedelta(minutes=step_min), inclusive="left")
    slots = sessions["arrival_utc"].dt.floor(pd.Timedelta(minutes=step_min))
    counts = slots.value_counts().reindex(index, fill_value=0)
    return pd.Series(counts.to_numpy(dtype=np.float64), index=index, name="arrivals")
