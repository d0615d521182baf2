"""Features known at the forecast origin, for every (origin, lead) pair of a regular series.

The features and their arithmetic are those of :mod:`smac_rl.features.series` (numpy only, shared
with the service, which builds the same rows from a request's history); this module is the pandas
side of the forecasting package: the configuration with its holiday country, the public holidays
from the ``holidays`` package, the input checks and the instants of a ``pandas`` index.

Notation: the series ``v`` has ``spd`` steps per day; a forecast made at origin position ``o`` knows
``v[:o]`` only (steps that start before the origin) and targets ``t = o + k`` for leads
``k = 0 .. H - 1`` (``H <= 7 * spd``). Every feature reads positions ``< o`` (the list is in
:mod:`smac_rl.features.series`): lead, local calendar of the target step, same-slot and week lags,
the 4-week profile, the last value and the means and spread of the last day and week, and, when
normalised, ``level`` and ``scale`` by which the value features and the target are normalised.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import numpy as np
import pandas as pd

from smac_rl.core.arraytypes import FloatArray, IntArray
from smac_rl.features.series import (
    HISTORY_DAYS,
    N_SAME_SLOT_DAYS,
    N_WEEK_LAGS,
    SeriesFeatureSpec,
    calendar_columns,
    local_years,
    series_features,
)

__all__ = [
    "HISTORY_DAYS",
    "N_SAME_SLOT_DAYS",
    "N_WEEK_LAGS",
    "FeatureConfig",
    "build_features",
    "calendar_features",
    "feature_names",
]


@dataclass(frozen=True)
class FeatureConfig(SeriesFeatureSpec):
    """How features are built for one series.

    Attributes:
        step_min: Step length of the series [min].
        timezone: IANA time zone of the calendar features.
        holiday_country: ISO country code of the public holidays (``holidays`` package).
        holiday_subdiv: Subdivision of the holidays (a state), or None.
        is_normalized: Scale value features and target by the last week's level and spread.
        scale_floor: Smallest spread used when normalising [unit of the series].
    """

    step_min: int
    timezone: str
    holiday_country: str
    holiday_subdiv: str | None = None
    is_normalized: bool = False
    scale_floor: float = 0.01


def feature_names(config: FeatureConfig) -> list[str]:
    """Ordered feature names (the columns of :func:`build_features`)."""
    return config.feature_names


@cache
def _holiday_days(country: str, subdiv: str | None, first_year: int, last_year: int) -> IntArray:
    """Public holidays of ``first_year .. last_year`` (``holidays`` package) [days since 1970-01-01]."""
    import holidays

    days = holidays.country_holidays(country, subdiv=subdiv, years=range(first_year, last_year + 1))
    return np.asarray(np.array(sorted(days), dtype="datetime64[D]").astype(np.int64), dtype=np.int64)


def _holidays_of(instants_ns: IntArray, config: FeatureConfig) -> IntArray:
    """The holidays of the instants' local years (none for no instant) [days since 1970-01-01]."""
    if instants_ns.size == 0:
        return np.zeros(0, dtype=np.int64)
    first_year, last_year = local_years(instants_ns, config.timezone)
    return _holiday_days(config.holiday_country, config.holiday_subdiv, first_year, last_year)


def calendar_features(times_utc: pd.DatetimeIndex, config: FeatureConfig) -> FloatArray:
    """Calendar columns ``hour_of_day_h, weekday, month, is_holiday`` of UTC instants, ``(N, 4)``."""
    instants_ns = np.asarray(times_utc.as_unit("ns").asi8, dtype=np.int64)
    return calendar_columns(instants_ns, config.timezone, _holidays_of(instants_ns, config))


def build_features(
    values: FloatArray,
    start_utc: pd.Timestamp,
    origin_pos: IntArray,
    lead_steps: IntArray,
    config: FeatureConfig,
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Feature rows for (origin, lead) pairs of a regular series; reads only ``values[:origin]``.

    Args:
        values: The series ``v``, ``(n,)``; positions at or after an origin are never read for it.
        start_utc: UTC start of ``values[0]`` (timezone-aware).
        origin_pos: Origin position ``o`` of each row, ``(N,)``, each at least
            :attr:`FeatureConfig.history_steps`.
        lead_steps: Lead ``k`` of each row, ``(N,)``, ``0 <= k < max_horizon_steps``.
        config: The feature configuration.

    Returns:
        ``(X, level, scale)``: features ``(N, F)`` in :func:`feature_names` order, and the level and
        scale each row's target is normalised with (0 and 1 when not normalised), ``(N,)`` each.

    Raises:
        ValueError: For a naive ``start_utc``, origins with too little history or leads out of range.
    """
    o = np.asarray(origin_pos, dtype=np.int64)
    k = np.asarray(lead_steps, dtype=np.int64)
    if start_utc.tzinfo is None:
        raise ValueError(f"start_utc: got {start_utc} (naive); expected a timezone-aware timestamp")
    if o.size and (o.min() < config.history_steps or o.max() > values.shape[0]):
        raise ValueError(
            f"origin_pos: got {int(o.min())} to {int(o.max())}; expected {config.history_steps} "
            f"to {values.shape[0]} (28 days of history before each origin)"
        )
    if k.size and (k.min() < 0 or k.max() >= config.max_horizon_steps):
        raise ValueError(
            f"lead_steps: got up to {int(k.max())}; expected 0 to {config.max_horizon_steps - 1}"
        )
    start_ns = int(start_utc.as_unit("ns").value)
    step_ns = config.step_min * 60 * 10**9
    targets_ns = start_ns + (o + k) * step_ns
    holidays = _holidays_of(targets_ns, config)
    return series_features(values, start_ns, o, k, config, holidays)
