"""Features of a regular series for the slot forecasters (prices, arrivals): numpy and zoneinfo only.

One implementation shared by the forecasting package (``smac_rl_forecasting.features.build_features``,
a pandas wrapper that fits and exports the day-ahead price forecaster, hourly, and the arrivals
forecaster, 15-minute counts) and the service (``smac_rl_serve.series_features``, which checks a
request's history and runs the exported graphs): the same code builds the rows a model is trained
on and the rows it is served.

Notation: the series ``v`` has ``spd`` steps per day; a forecast made at origin position ``o`` knows
``v[:o]`` only (steps that start before the origin) and targets ``t = o + k`` for leads
``k = 0 .. H - 1`` (``H <= 7 * spd``). Every feature reads positions ``< o``:

- ``lead_h``: ``k`` in hours.
- ``hour_of_day_h`` (hour + minute / 60), ``weekday`` (Monday 0), ``month``, ``is_holiday``: the
  calendar of the target step's start in local time (:mod:`zoneinfo`; the public holidays are given
  by the caller as local days: the forecasting package asks the ``holidays`` package, the service
  reads the dates its metadata lists).
- ``same_slot_d1`` .. ``_d7``: ``v[t - (c + d - 1) * spd]`` with ``c = k // spd + 1``, the same time
  of day on the last 7 days before the origin.
- ``week_lag_1`` .. ``_4``: ``v[t - 7 * spd * j]``, the same weekday and time 1..4 weeks before the
  target; ``profile_4w``: their mean (the weekday-by-slot profile of the last 4 weeks).
- ``last``: ``v[o - 1]``; ``mean_24h``, ``mean_168h``, ``std_168h``: mean of the last day and week
  before the origin, standard deviation of the last week (running sums over the whole array given).
- ``level``, ``scale`` (only when normalised): ``mean_168h`` and ``max(std_168h, scale_floor)``.

When normalised, every value-like feature (lags, profile, last, means) becomes ``(x - level) / scale``,
``std_168h`` becomes ``std_168h / scale``, and so does the target; forecasts are scaled back
(:data:`SLOT_POSTPROCESS`). This keeps one model valid across price regimes (2022's crisis levels
and 2024's lower ones).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from smac_rl.core.arraytypes import FloatArray, IntArray
from smac_rl.features.session_windows import local_calendar

N_SAME_SLOT_DAYS = 7
"""Days of the same-slot lags."""

N_WEEK_LAGS = 4
"""Weeks of the week lags."""

HISTORY_DAYS = 7 * N_WEEK_LAGS
"""Days of history a forecast needs before its origin (the fourth week lag) [days]."""

SERIES_FEATURE_NAMES: tuple[str, ...] = (
    "lead_h",
    "hour_of_day_h",
    "weekday",
    "month",
    "is_holiday",
    *(f"same_slot_d{d}" for d in range(1, N_SAME_SLOT_DAYS + 1)),
    *(f"week_lag_{j}" for j in range(1, N_WEEK_LAGS + 1)),
    "profile_4w",
    "last",
    "mean_24h",
    "mean_168h",
    "std_168h",
)
"""Feature names of a raw (not normalised) slot forecaster; normalised ones add ``level, scale``."""

SLOT_POSTPROCESS = (
    "forecast = variable * scale + level (level, scale: the features of those names; 0 and 1 "
    "when not normalised); quantiles sorted per row"
)
"""The ``postprocess`` of a slot forecaster's metadata: the rule the service applies, word for word."""

_MINUTE_NS = 60 * 10**9


def series_feature_names(is_normalized: bool) -> list[str]:
    """Ordered feature names (the columns of :func:`series_features`, the graphs' input columns)."""
    return [*SERIES_FEATURE_NAMES, *(("level", "scale") if is_normalized else ())]


class SeriesFeatureSpec:
    """What the features of a series depend on, besides the holidays (a base of the configurations).

    The forecasting package's ``FeatureConfig`` and the service's ``SeriesFeatureConfig`` are frozen
    dataclasses with these fields (and their own way to the holidays); this class gives them the
    derived sizes and names.

    Attributes:
        step_min: Step length of the series [min], a divisor of a day.
        timezone: IANA time zone of the calendar features.
        is_normalized: Value features and target scaled by the last week's level and spread.
        scale_floor: Smallest spread used when normalising [unit of the series].
    """

    step_min: int
    timezone: str
    is_normalized: bool
    scale_floor: float

    @property
    def steps_per_day(self) -> int:
        """Steps per day ``spd``."""
        return 24 * 60 // self.step_min

    @property
    def history_steps(self) -> int:
        """Steps a forecast needs before its origin (28 days)."""
        return HISTORY_DAYS * self.steps_per_day

    @property
    def max_horizon_steps(self) -> int:
        """Longest horizon the week lags allow (one week) [steps]."""
        return 7 * self.steps_per_day

    @property
    def feature_names(self) -> list[str]:
        """Ordered feature names (:func:`series_feature_names`)."""
        return series_feature_names(self.is_normalized)


def local_years(instants_ns: IntArray, timezone: str) -> tuple[int, int]:
    """First and last local year of UTC instants [ns since the epoch] (at least one instant).

    Local time only moves forward, so the earliest and the latest instant give them.
    """
    values = np.asarray(instants_ns, dtype=np.int64).reshape(-1)
    ends = np.array([values.min(), values.max()], dtype=np.int64)
    return local_calendar(ends, timezone).years()


def calendar_columns(
    instants_ns: IntArray, timezone: str, holiday_days: Sequence[int] | IntArray
) -> FloatArray:
    """``hour_of_day_h, weekday, month, is_holiday`` of UTC instants in local time, ``(N, 4)``.

    Each distinct instant is converted once (a series' targets repeat across origins).

    Args:
        instants_ns: UTC instants [ns since the epoch], ``(N,)``.
        timezone: IANA time zone of the calendar.
        holiday_days: Public holidays as local days [days since 1970-01-01].
    """
    values = np.asarray(instants_ns, dtype=np.int64).reshape(-1)
    if values.size == 0:
        return np.zeros((0, 4), dtype=np.float64)
    distinct, inverse = np.unique(values, return_inverse=True)
    calendar = local_calendar(distinct, timezone)
    hour = calendar.hour + calendar.minute / 60.0
    month = calendar.day.astype("datetime64[D]").astype("datetime64[M]").astype(np.int64) % 12 + 1
    columns = (hour, calendar.weekday, month, calendar.is_holiday(holiday_days))
    table = np.column_stack([np.asarray(c, dtype=np.float64) for c in columns])
    return np.asarray(table[inverse.reshape(-1)], dtype=np.float64)


def series_features(
    values: FloatArray,
    start_ns: int,
    origin_pos: IntArray,
    lead_steps: IntArray,
    spec: SeriesFeatureSpec,
    holiday_days: Sequence[int] | IntArray,
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Feature rows for (origin, lead) pairs of a regular series; reads only ``values[:origin]``.

    The callers check their input (each side has its own: a pandas series, a request's history).

    Args:
        values: The series ``v`` [unit of the series], ``(n,)``; every value enters the running
            sums, but a row never reads a position at or after its origin.
        start_ns: UTC start of ``values[0]`` [ns since the epoch].
        origin_pos: Origin position ``o`` of each row, ``(N,)``, each from
            :attr:`SeriesFeatureSpec.history_steps` to ``n``.
        lead_steps: Lead ``k`` of each row, ``(N,)``, ``0 <= k <``
            :attr:`SeriesFeatureSpec.max_horizon_steps`.
        spec: Step, time zone and normalisation of the features.
        holiday_days: Public holidays of the targets' local years [days since 1970-01-01].

    Returns:
        ``(X, level, scale)``: features ``(N, F)`` in :attr:`SeriesFeatureSpec.feature_names` order
        [float64; the graphs take them as float32], and the level and scale each row's target is
        normalised with [unit of the series] (0 and 1 when not normalised), ``(N,)`` each.
    """
    values = np.asarray(values, dtype=np.float64)
    spd = spec.steps_per_day
    o = np.asarray(origin_pos, dtype=np.int64)
    k = np.asarray(lead_steps, dtype=np.int64)
    t = o + k
    cumsum = np.concatenate([[0.0], np.cumsum(values)])
    cumsum_sq = np.concatenate([[0.0], np.cumsum(values * values)])
    mean_24h = (cumsum[o] - cumsum[o - spd]) / spd
    week = 7 * spd
    mean_168h = (cumsum[o] - cumsum[o - week]) / week
    var_168h = (cumsum_sq[o] - cumsum_sq[o - week]) / week - mean_168h**2
    std_168h = np.sqrt(np.maximum(var_168h, 0.0))
    c = k // spd + 1
    same_slot = [values[t - (c + d - 1) * spd] for d in range(1, N_SAME_SLOT_DAYS + 1)]
    week_lags = [values[t - week * j] for j in range(1, N_WEEK_LAGS + 1)]
    profile = np.mean(week_lags, axis=0)
    value_like = [*same_slot, *week_lags, profile, values[o - 1], mean_24h, mean_168h]
    if spec.is_normalized:
        level = mean_168h
        scale = np.maximum(std_168h, spec.scale_floor)
    else:
        level, scale = np.zeros(t.shape[0]), np.ones(t.shape[0])
    calendar = calendar_columns(start_ns + t * (spec.step_min * _MINUTE_NS), spec.timezone, holiday_days)
    columns = [k * spec.step_min / 60.0]
    columns += [calendar[:, i] for i in range(4)]
    columns += [(x - level) / scale for x in value_like]
    columns.append(std_168h / scale if spec.is_normalized else std_168h)
    if spec.is_normalized:
        columns += [level, scale]
    features = np.column_stack([np.asarray(column, dtype=np.float64) for column in columns])
    return features, np.asarray(level, dtype=np.float64), np.asarray(scale, dtype=np.float64)
