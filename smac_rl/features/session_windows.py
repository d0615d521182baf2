"""Window statistics and features of the session-needs forecaster, numpy and the standard library only.

One implementation shared by the forecasting package (:mod:`smac_rl_forecasting.sessions`, which
fits and exports the forecaster) and the service (:mod:`smac_rl_serve.session_forecaster`, which runs
the exported graphs): the same code builds the rows a model is trained on and the rows it is served.

For a session arriving at ``a``, the features read the local calendar of ``a`` and the sessions that
**ended** before ``a`` (``departure < a``); a session still plugged in at ``a`` is never read.

**Windows** over the ended sessions of an arrival ``a`` with local hour ``h``, weekday ``w`` and
local day ``d``:

- ``28d``: arrived in ``[a - 28 days, a)``; ``7d``: arrived in ``[a - 7 days, a)``.
- ``same_hour``: the ``28d`` sessions that arrived in local hour ``h``; when there are none, those of
  the nearest hours that have some (``|hour - h|`` smallest).
- ``profile_4w``: the ``28d`` sessions of weekday ``w`` and hour ``h``, widened to the nearest hours
  of weekday ``w``, then to all ``28d`` sessions.
- ``seasonal_naive``: the sessions that arrived on local day ``d - 7`` in hour ``h``, widened to the
  nearest hours of that day, then to ``7d``, then ``28d``.

Each window gives the 10/50/90 % quantiles of each target (numpy's linear rule).

**Features** (:func:`session_feature_names`): ``hour_local_h``, ``minute_of_day_min``, ``weekday``,
``is_holiday``, ``n_sessions_28d``, ``n_sessions_7d``, ``n_same_hour_28d`` and, per target ``T``:
``level_T`` (median of ``28d``), the 10/90 % quantiles of ``28d``, the 10/50/90 % quantiles of
``same_hour``, the median of ``profile_4w`` and the median of ``7d`` (the ``28d`` median when ``7d``
is empty), rounded to multiples of ``2**-VALUE_GRID_BITS`` kWh or min. When normalised, every value
feature of ``T`` but ``level_T`` is divided by ``level_T`` floored at :data:`LEVEL_FLOORS` and rounded
to ``2**-RATIO_GRID_BITS``. Every feature is a float32 number (what the ONNX graphs read).

**Outputs** (:func:`widen_quantiles`, stated in words by :func:`postprocess_rule`): per target, the
three quantile outputs sorted per row, scaled by the level, widened about the median by a factor ``k``
and floored at 0.

The local calendar comes from :mod:`zoneinfo`; the public holidays are given by the caller (the
forecasting package asks the ``holidays`` package, the service reads the dates its metadata lists).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Self
from zoneinfo import ZoneInfo

import numpy as np

from smac_rl.core.arraytypes import BoolArray, FloatArray, IntArray

SESSION_TARGETS: tuple[str, ...] = ("energy_kwh", "dwell_min")
"""What is forecast per session: delivered energy [kWh] and dwell time [min]."""

WINDOW_DAYS = 28
"""Days of ended sessions the features read (and of history an arrival needs) [days]."""

RECENT_DAYS = 7
"""Days of the short window [days]."""

MIN_WINDOW_SESSIONS = 10
"""Fewest ended sessions in the 28-day window of an arrival (the forecasting package's rule; an
exported forecaster states its own in its metadata)."""

LEVEL_FLOORS: dict[str, float] = {"energy_kwh": 0.125, "dwell_min": 1.0}
"""Smallest level a normalised target is scaled by [kWh, min]."""

VALUE_GRID_BITS = 6
"""Value features are rounded to multiples of ``2**-6`` (1/64 kWh or min). LightGBM splits halfway
between two training values (in float64); the ONNX graphs hold thresholds in float32. On a binary
grid the halfway points are float32 numbers too, so both send every row the same way (on a decimal
grid, a value unseen in training can sit at the midpoint of its neighbours, which float32 rounds
onto it: found as a 15-minute parity gap)."""

RATIO_GRID_BITS = 12
"""Normalised value features are rounded to multiples of ``2**-12`` (same reason)."""

WINDOWS = ("28d", "7d", "same_hour", "profile_4w", "seasonal_naive")
"""Windows whose quantiles are computed for every arrival (see the module docstring)."""

QUANTILES_FRAC = (0.1, 0.5, 0.9)
"""Quantile levels of the windows' statistics and of the forecasts."""

DAY_NS = 86_400 * 10**9
"""One day [ns]."""

_CHUNK_ROWS = 256
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_EPOCH_DATE = dt.date(1970, 1, 1)


def session_feature_names() -> list[str]:
    """Ordered feature names (the columns of :func:`session_features`, the graphs' input columns)."""
    names = [
        "hour_local_h",
        "minute_of_day_min",
        "weekday",
        "is_holiday",
        "n_sessions_28d",
        "n_sessions_7d",
        "n_same_hour_28d",
    ]
    for target in SESSION_TARGETS:
        names += [
            f"level_{target}",
            f"q10_28d_{target}",
            f"q90_28d_{target}",
            f"q10_same_hour_{target}",
            f"q50_same_hour_{target}",
            f"q90_same_hour_{target}",
            f"q50_profile_4w_{target}",
            f"q50_7d_{target}",
        ]
    return names


def instant_ns(instant: dt.datetime) -> int:
    """An aware instant as nanoseconds since the epoch (UTC), exactly (datetimes hold microseconds)."""
    return (instant - _EPOCH) // dt.timedelta(microseconds=1) * 1000


def utc_of_ns(value_ns: int) -> dt.datetime:
    """The UTC datetime of nanoseconds since the epoch (truncated to the microsecond)."""
    return _EPOCH + dt.timedelta(microseconds=value_ns // 1000)


def day_of_date(date: dt.date) -> int:
    """A date as days since 1970-01-01."""
    return (date - _EPOCH_DATE).days


@dataclass(frozen=True)
class LocalCalendar:
    """Local calendar of UTC instants in a time zone.

    Attributes:
        day: Local day [days since 1970-01-01], ``(N,)``.
        hour: Local hour (0-23), ``(N,)``.
        minute: Minute of the local hour (0-59), ``(N,)``.
        weekday: Local weekday (Monday 0), ``(N,)``.
    """

    day: IntArray
    hour: IntArray
    minute: IntArray
    weekday: IntArray

    def is_holiday(self, holiday_days: Sequence[int] | IntArray) -> BoolArray:
        """Whether each local day is one of ``holiday_days`` [days since 1970-01-01], ``(N,)``."""
        days = np.asarray(holiday_days, dtype=np.int64).reshape(-1)
        return np.asarray(np.isin(self.day, days), dtype=np.bool_)

    def years(self) -> tuple[int, int]:
        """First and last local year of the instants (at least one instant)."""
        years = self.day.astype("datetime64[D]").astype("datetime64[Y]").astype(np.int64) + 1970
        return int(years.min()), int(years.max())


def local_calendar(instants_ns: IntArray, timezone: str) -> LocalCalendar:
    """Local day, hour, minute and weekday of UTC instants [ns since the epoch] in an IANA time zone."""
    zone = ZoneInfo(timezone)
    n = int(np.shape(instants_ns)[0])
    day, hour, minute, weekday = (np.zeros(n, dtype=np.int64) for _ in range(4))
    for i, value in enumerate(np.asarray(instants_ns, dtype=np.int64).tolist()):
        local = utc_of_ns(int(value)).astimezone(zone)
        day[i] = day_of_date(local.date())
        hour[i], minute[i], weekday[i] = local.hour, local.minute, local.weekday()
    return LocalCalendar(day=day, hour=hour, minute=minute, weekday=weekday)


@dataclass(frozen=True)
class SessionArrays:
    """A site's sessions, sorted by arrival, as arrays (what :func:`window_statistics` reads).

    Attributes:
        arrival_ns: Arrival instants [ns since the epoch, UTC], ascending, ``(M,)``.
        departure_ns: Departure instants [ns since the epoch, UTC], ``(M,)``.
        values: ``energy_kwh`` [kWh] and ``dwell_min`` [min] of each session, ``(M, 2)``.
        local_day: Local day of the arrival [days since 1970-01-01], ``(M,)``.
        local_hour: Local hour of the arrival (0-23), ``(M,)``.
        weekday: Local weekday of the arrival (Monday 0), ``(M,)``.
        departure_sorted_ns: Departures in ascending order [ns], ``(M,)``.
        first_arrival_ns: ``first_arrival_ns[k]``: the earliest arrival among the ``k + 1``
            earliest departures [ns], ``(M,)``.
    """

    arrival_ns: IntArray
    departure_ns: IntArray
    values: FloatArray
    local_day: IntArray
    local_hour: IntArray
    weekday: IntArray
    departure_sorted_ns: IntArray
    first_arrival_ns: IntArray

    @property
    def n_sessions(self) -> int:
        """Sessions held."""
        return int(self.arrival_ns.shape[0])

    @classmethod
    def of(cls, arrival_ns: IntArray, departure_ns: IntArray, energy_kwh: FloatArray, timezone: str) -> Self:
        """Sort checked sessions by arrival (the callers check them: each side has its own input).

        Args:
            arrival_ns: Arrivals [ns since the epoch, UTC], any order, ``(M,)``.
            departure_ns: Departures [ns], each after its arrival, ``(M,)``.
            energy_kwh: Delivered energy [kWh], finite and not negative, ``(M,)``.
            timezone: Local time zone of the site.
        """
        arrival = np.asarray(arrival_ns, dtype=np.int64).reshape(-1)
        departure = np.asarray(departure_ns, dtype=np.int64).reshape(-1)
        energy = np.asarray(energy_kwh, dtype=np.float64).reshape(-1)
        order = np.argsort(arrival, kind="stable")
        arrival, departure, energy = arrival[order], departure[order], energy[order]
        dwell_min = (departure - arrival) / 60e9
        calendar = local_calendar(arrival, timezone)
        by_departure = np.argsort(departure, kind="stable")
        first = np.minimum.accumulate(arrival[by_departure]) if arrival.size else np.zeros(0, dtype=np.int64)
        return cls(
            arrival_ns=arrival,
            departure_ns=departure,
            values=np.column_stack([energy, dwell_min]).reshape(-1, 2),
            local_day=calendar.day,
            local_hour=calendar.hour,
            weekday=calendar.weekday,
            departure_sorted_ns=departure[by_departure],
            first_arrival_ns=np.asarray(first, dtype=np.int64),
        )


@dataclass(frozen=True)
class WindowStatistics:
    """Counts and quantiles of the windows of each arrival (module docstring).

    Attributes:
        n_sessions_28d: Ended sessions in the 28-day window, ``(N,)``.
        n_sessions_7d: Ended sessions in the 7-day window, ``(N,)``.
        n_same_hour_28d: Those of the 28-day window in the arrival's local hour, ``(N,)``.
        history_days: Days from the first arrival among the ended sessions to the arrival
            (``-1`` when none ended) [days], ``(N,)``.
        quantiles: Per window of :data:`WINDOWS`, the 10/50/90 % quantiles of each target,
            ``(N, 2, 3)`` [kWh, min] (NaN where the window is empty).
    """

    n_sessions_28d: IntArray
    n_sessions_7d: IntArray
    n_same_hour_28d: IntArray
    history_days: FloatArray
    quantiles: dict[str, FloatArray]

    def has_enough_history(self, min_window_sessions: int = MIN_WINDOW_SESSIONS) -> BoolArray:
        """Arrivals with 28 days of ended sessions and ``min_window_sessions`` of them in their window."""
        return np.asarray(
            (self.history_days >= WINDOW_DAYS) & (self.n_sessions_28d >= min_window_sessions),
            dtype=np.bool_,
        )

    @property
    def has_history(self) -> BoolArray:
        """:meth:`has_enough_history` with :data:`MIN_WINDOW_SESSIONS`."""
        return self.has_enough_history()

    def subset(self, keep: BoolArray) -> WindowStatistics:
        """The statistics of the kept arrivals."""
        return WindowStatistics(
            self.n_sessions_28d[keep],
            self.n_sessions_7d[keep],
            self.n_same_hour_28d[keep],
            self.history_days[keep],
            {name: q[keep] for name, q in self.quantiles.items()},
        )


def masked_quantiles(values: FloatArray, mask: BoolArray) -> FloatArray:
    """10/50/90 % quantiles of ``values`` under each row of ``mask`` (NaN for an empty row), ``(N, 2, 3)``.

    numpy's default (linear) rule, vectorised: sort each row's values (the others pushed to the end
    as infinity) and interpolate between positions ``floor`` and ``ceil`` of ``q (n - 1)``.

    Args:
        values: ``(M, 2)`` target values of the sessions [kWh, min].
        mask: ``(N, M)`` sessions of each row's window.
    """
    n_rows, n_targets = mask.shape[0], values.shape[1]
    out = np.full((n_rows, n_targets, len(QUANTILES_FRAC)), np.nan)
    counts = mask.sum(axis=1)
    rows = np.flatnonzero(counts > 0)
    if rows.size == 0:
        return out
    sub, n = mask[rows], counts[rows]
    position = np.asarray(QUANTILES_FRAC)[None, :] * (n[:, None] - 1)
    below = np.floor(position).astype(np.int64)
    above = np.minimum(below + 1, n[:, None] - 1)
    weight = position - below
    for t in range(n_targets):
        ordered = np.sort(np.where(sub, values[None, :, t], np.inf), axis=1)
        low = np.take_along_axis(ordered, below, axis=1)
        high = np.take_along_axis(ordered, above, axis=1)
        out[rows, t, :] = low + weight * (high - low)
    return out


def nearest_hours(mask: BoolArray, hour_gap: FloatArray) -> BoolArray:
    """``mask`` narrowed to the sessions of the smallest hour gap present in each row.

    Args:
        mask: ``(N, M)`` sessions of each row's window.
        hour_gap: ``(N, M)`` distance of each session's local hour to the row's [h].
    """
    gap = np.where(mask, hour_gap, np.inf)
    smallest = gap.min(axis=1, keepdims=True, initial=np.inf)
    return np.asarray(mask & (gap <= smallest), dtype=np.bool_)


def fallback(first: BoolArray, *others: BoolArray) -> BoolArray:
    """Per row, the first of the masks (``(N, M)`` each) that is not empty."""
    result = first.copy()
    for other in others:
        empty = ~result.any(axis=1)
        result[empty] = other[empty]
    return result


def window_statistics(arrival_ns: IntArray, history: SessionArrays, timezone: str) -> WindowStatistics:
    """Counts and quantiles of every window of each arrival; reads only sessions ended before it.

    Args:
        arrival_ns: Arrival instants [ns since the epoch, UTC], ``(N,)``, any order.
        history: The site's sessions.
        timezone: Local time zone of the site.
    """
    n = arrival_ns.shape[0]
    calendar = local_calendar(arrival_ns, timezone)
    day, hour, weekday = calendar.day, calendar.hour, calendar.weekday
    ended = np.searchsorted(history.departure_sorted_ns, arrival_ns, side="left")
    first = (
        history.first_arrival_ns[np.maximum(ended - 1, 0)] if history.n_sessions else np.zeros(n, np.int64)
    )
    history_days = np.where(ended > 0, (arrival_ns - first) / DAY_NS, -1.0)
    counts = np.zeros((3, n), dtype=np.int64)
    quantiles = {w: np.full((n, len(SESSION_TARGETS), len(QUANTILES_FRAC)), np.nan) for w in WINDOWS}
    order = np.argsort(arrival_ns, kind="stable")
    window_ns = WINDOW_DAYS * DAY_NS
    for start in range(0, n, _CHUNK_ROWS):
        rows = order[start : start + _CHUNK_ROWS]
        a = arrival_ns[rows][:, None]
        lo = int(np.searchsorted(history.arrival_ns, int(a.min()) - window_ns, side="left"))
        hi = int(np.searchsorted(history.arrival_ns, int(a.max()), side="left"))
        arr = history.arrival_ns[None, lo:hi]
        done = history.departure_ns[None, lo:hi] < a
        in_28d = done & (arr >= a - window_ns)
        in_7d = in_28d & (arr >= a - RECENT_DAYS * DAY_NS)
        hour_gap = np.abs(history.local_hour[None, lo:hi] - hour[rows][:, None]).astype(np.float64)
        same_weekday = in_28d & (history.weekday[None, lo:hi] == weekday[rows][:, None])
        week_before = done & (history.local_day[None, lo:hi] == day[rows][:, None] - 7)
        masks = {
            "28d": in_28d,
            "7d": in_7d,
            "same_hour": nearest_hours(in_28d, hour_gap),
            "profile_4w": fallback(nearest_hours(same_weekday, hour_gap), in_28d),
            "seasonal_naive": fallback(nearest_hours(week_before, hour_gap), in_7d, in_28d),
        }
        counts[0, rows] = in_28d.sum(axis=1)
        counts[1, rows] = in_7d.sum(axis=1)
        counts[2, rows] = (in_28d & (hour_gap == 0.0)).sum(axis=1)
        values = history.values[lo:hi]
        for name, mask in masks.items():
            quantiles[name][rows] = masked_quantiles(values, mask)
    return WindowStatistics(counts[0], counts[1], counts[2], np.asarray(history_days, np.float64), quantiles)


def on_grid(values: FloatArray, bits: int) -> FloatArray:
    """Values rounded to the nearest multiple of ``2**-bits``."""
    scale = float(2**bits)
    return np.asarray(np.round(values * scale) / scale, dtype=np.float64)


def session_features(
    calendar: LocalCalendar, is_holiday: BoolArray, stats: WindowStatistics, is_normalized: bool
) -> tuple[FloatArray, FloatArray]:
    """Feature rows of arrivals from their local calendar and window statistics.

    Args:
        calendar: Local calendar of the arrivals (:func:`local_calendar`), ``(N,)`` each.
        is_holiday: Whether each arrival's local day is a public holiday, ``(N,)``.
        stats: Their :func:`window_statistics`; every arrival must have a non-empty 28-day window.
        is_normalized: Divide each target's value features by its level.

    Returns:
        ``(X, level)``: features ``(N, F)`` in :func:`session_feature_names` order (float32 values
        held as float64) and the level each target is scaled by, ``(N, 2)`` [kWh, min] (ones when not
        normalised).
    """
    hour_frac = calendar.hour + calendar.minute / 60.0
    columns: list[FloatArray] = [
        np.floor(hour_frac),
        np.round(hour_frac * 60.0),
        calendar.weekday.astype(np.float64),
        np.asarray(is_holiday, dtype=np.float64),
        stats.n_sessions_28d.astype(np.float64),
        stats.n_sessions_7d.astype(np.float64),
        stats.n_same_hour_28d.astype(np.float64),
    ]
    levels = np.ones((calendar.day.shape[0], len(SESSION_TARGETS)))
    q = stats.quantiles
    for t, target in enumerate(SESSION_TARGETS):
        median_28d = on_grid(q["28d"][:, t, 1], VALUE_GRID_BITS)
        recent = np.where(np.isnan(q["7d"][:, t, 1]), median_28d, q["7d"][:, t, 1])
        if is_normalized:
            levels[:, t] = np.maximum(median_28d, LEVEL_FLOORS[target])
        value_features = [
            q["28d"][:, t, 0],
            q["28d"][:, t, 2],
            *(q["same_hour"][:, t, i] for i in range(3)),
            q["profile_4w"][:, t, 1],
            recent,
        ]
        columns.append(median_28d)
        bits = RATIO_GRID_BITS if is_normalized else VALUE_GRID_BITS
        columns += [on_grid(on_grid(x, VALUE_GRID_BITS) / levels[:, t], bits) for x in value_features]
    features = np.column_stack(columns).astype(np.float32).astype(np.float64)
    return features, levels


def widen_quantiles(sorted_outputs: FloatArray, level: FloatArray, widening: float) -> FloatArray:
    """One target's forecasts from its three sorted quantile outputs, ``(N, 3)`` [kWh or min].

    ``q = outputs * level``; then ``q10 = q50 - k (q50 - q10)``, ``q90 = q50 + k (q90 - q50)`` with
    ``k = widening``, and all three floored at 0.

    Args:
        sorted_outputs: q10/q50/q90 outputs of the graphs or boosters, sorted per row, ``(N, 3)``.
        level: The target's level per row (ones when not normalised), ``(N,)``.
        widening: Factor ``k`` the interval is stretched by about the median (1: as is).
    """
    q10, q50, q90 = (sorted_outputs * level[:, None]).T
    widened = np.column_stack([q50 - widening * (q50 - q10), q50, q50 + widening * (q90 - q50)])
    return np.asarray(np.maximum(widened, 0.0), dtype=np.float64)


def postprocess_rule(is_normalized: bool, interval_widening: Sequence[float]) -> str:
    """The ``postprocess`` sentence of an exported forecaster: the rule :func:`widen_quantiles` applies.

    The exporter writes it into ``metadata.json``; the service refuses a folder stating another rule.

    Args:
        is_normalized: Outputs are scaled by the level (floored at :data:`LEVEL_FLOORS`).
        interval_widening: Factor ``k`` per target of :data:`SESSION_TARGETS`.
    """
    if is_normalized:
        scaled = "times the feature level_<target> floored at " + ", ".join(
            f"{v:g} for {t}" for t, v in LEVEL_FLOORS.items()
        )
    else:
        scaled = "as is"
    widening = ", ".join(f"{k:.6g} for {t}" for t, k in zip(SESSION_TARGETS, interval_widening, strict=True))
    return (
        "per target (energy_kwh, dwell_min): sort the three quantile outputs q10/q50/q90 per row, "
        f"take them {scaled}, widen the interval about the median by k ({widening}): "
        "q10 = q50 - k (q50 - q10), q90 = q50 + k (q90 - q50), then floor all three at 0; features "
        "are built from the sessions that ended before the arrival (see the feature names and "
        "smac_rl_forecasting.sessions)"
    )
