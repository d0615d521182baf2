"""Features known at the forecast origin, for every (origin, lead) pair of a regular series.

Notation: the series ``v`` has ``spd`` steps per day; a forecast made at origin position ``o`` knows
``v[:o]`` only (steps that start before the origin) and targets ``t = o + k`` for leads
``k = 0 .. H - 1`` (``H <= 7 * spd``). Every feature reads positions ``< o``:

- ``lead_h``: ``k`` in hours.
- ``hour_of_day_h``, ``weekday``, ``month``, ``is_holiday``: calendar of the target step in local
  time (public holidays from the ``holidays`` package).
- ``same_slot_d1`` .. ``_d7``: ``v[t - (c + d - 1) * spd]`` with ``c = k // spd + 1``, the same time
  of day on the last 7 days before the origin.
- ``week_lag_1`` .. ``_4``: ``v[t - 7 * spd * j]``, the same weekday and time 1..4 weeks before the
  target; ``profile_4w``: their mean (the weekday-by-slot profile of the last 4 weeks).
- ``last``: ``v[o - 1]``; ``mean_24h``, ``mean_168h``, ``std_168h``: mean of the last day and week
  before the origin, standard deviation of the last week.
- ``level``, ``scale`` (only when normalised): ``mean_168h`` and ``max(std_168h, scale_floor)``.

When normalised, every value-like feature (lags, profile, last, means) becomes ``(x - level) / scale``
and so does the target; forecasts are scaled back. This keeps one model valid across price regimes
(2022's crisis levels and 2024's lower ones).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import numpy as np
import pandas as pd

from smac_rl.core.arraytypes import FloatArray, IntArray

N_SAME_SLOT_DAYS = 7
N_WEEK_LAGS = 4
HISTORY_DAYS = 7 * N_WEEK_LAGS
"""Days of history a forecast needs before its origin (the fourth week lag)."""


@dataclass(frozen=True)
class FeatureConfig:
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

    @property
    def steps_per_day(self) -> int:
        """Steps per day ``spd``."""
        return 24 * 60 // self.step_min

    @property
    def history_steps(self) -> int:
        """Steps a forecast needs before its origin."""
        return HISTORY_DAYS * self.steps_per_day

    @property
    def max_horizon_steps(self) -> int:
        """Longest horizon the week lags allow (one week)."""
        return 7 * self.steps_per_day


def feature_names(config: FeatureConfig) -> list[str]:
    """Ordered feature names (the columns of :func:`build_features`)."""
    names = ["lead_h", "hour_of_day_h", "weekday", "month", "is_holiday"]
    names += [f"same_slot_d{d}" for d in range(1, N_SAME_SLOT_DAYS + 1)]
    names += [f"week_lag_{j}" for j in range(1, N_WEEK_LAGS + 1)]
    names += ["profile_4w", "last", "mean_24h", "mean_168h", "std_168h"]
    if config.is_normalized:
        names += ["level", "scale"]
    return names


@cache
def _holiday_days(country: str, subdiv: str | None, first_year: int, last_year: int) -> np.ndarray:
    import holidays

    days = holidays.country_holidays(country, subdiv=subdiv, years=range(first_year, last_year + 1))
    return np.array(sorted(days), dtype="datetime64[D]")


def calendar_features(times_utc: pd.DatetimeIndex, config: FeatureConfig) -> FloatArray:
    """Calendar columns ``hour_of_day_h, weekday, month, is_holiday`` of UTC instants, ``(N, 4)``."""
    local = times_utc.tz_convert(config.timezone)
    hour = local.hour.to_numpy() + local.minute.to_numpy() / 60.0
    days = local.tz_localize(None).to_numpy().astype("datetime64[D]")
    years = local.year
    holidays = _holiday_days(
        config.holiday_country, config.holiday_subdiv, int(years.min()), int(years.max())
    )
    is_holiday = np.isin(days, holidays)
    columns = (hour, local.dayofweek.to_numpy(), local.month.to_numpy(), is_holiday)
    return np.column_stack([np.asarray(c, dtype=np.float64) for c in columns])


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
        start_utc: UTC start of ``values[0]``.
        origin_pos: Origin position ``o`` of each row, ``(N,)``, each at least
            :attr:`FeatureConfig.history_steps`.
        lead_steps: Lead ``k`` of each row, ``(N,)``, ``0 <= k < max_horizon_steps``.
        config: The feature configuration.

    Returns:
        ``(X, level, scale)``: features ``(N, F)`` in :func:`feature_names` order, and the level and
        scale each row's target is normalised with (0 and 1 when not normalised), ``(N,)`` each.

    Raises:
        ValueError: For origins with too little history or leads out of range.
    """
    spd = config.steps_per_day
    o = np.asarray(origin_pos, dtype=np.int64)
    k = np.asarray(lead_steps, dtype=np.int64)
    if o.size and (o.min() < config.history_steps or o.max() > values.shape[0]):
        raise ValueError(
            f"origin_pos: got {int(o.min())} to {int(o.max())}; expected {config.history_steps} "
            f"to {values.shape[0]} (28 days of history before each origin)"
        )
    if k.size and (k.min() < 0 or k.max() >= config.max_horizon_steps):
        raise ValueError(
            f"lead_steps: got up to {int(k.max())}; expected 0 to {config.max_horizon_steps - 1}"
        )
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
    if config.is_normalized:
        level = mean_168h
        scale = np.maximum(std_168h, config.scale_floor)
    else:
        level, scale = np.zeros(t.shape[0]), np.ones(t.shape[0])
    step = pd.Timedelta(minutes=config.step_min)
    times = pd.DatetimeIndex(start_utc + step * t)
    columns = [k * config.step_min / 60.0]
    calendar = calendar_features(times, config) if t.size else np.zeros((0, 4))
    columns += [calendar[:, i] for i in range(4)]
    columns += [(x - level) / scale for x in value_like]
    columns.append(std_168h / scale if config.is_normalized else std_168h)
    if config.is_normalized:
        columns += [level, scale]
    features = np.column_stack([np.asarray(c, dtype=np.float64) for c in columns])
    return features, np.asarray(level, dtype=np.float64), np.asarray(scale, dtype=np.float64)
