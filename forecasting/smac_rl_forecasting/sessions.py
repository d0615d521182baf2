"""Session needs at arrival: quantiles 10/50/90 of delivered energy and dwell time (LightGBM).

For each session, at its arrival instant ``a``, :class:`SessionNeedsForecaster` predicts the 10, 50
and 90 % quantiles of ``energy_kwh`` (the energy delivered over the session) and ``dwell_min``
(departure minus arrival). What it may read at ``a``:

- the calendar of ``a`` in the site's local time: hour, minute of day, weekday and public holiday
  (``holidays`` package; US/California for Caltech);
- the sessions that **ended** before ``a`` (``departure_utc < a``): their arrival, energy and dwell.
  A session still plugged in at ``a``, or a later one, is never read, since its energy and dwell
  are not known yet (the no-leakage test alters exactly those sessions).

**Windows** over the ended sessions, for an arrival ``a`` with local hour ``h``, weekday ``w`` and
local day ``d``:

- ``28d``: arrived in ``[a - 28 days, a)``; ``7d``: arrived in ``[a - 7 days, a)``.
- ``same_hour``: the ``28d`` sessions that arrived in local hour ``h``; when there are none, those of
  the nearest hours that have some (``|hour - h|`` smallest).
- ``profile_4w``: the ``28d`` sessions of weekday ``w`` and hour ``h`` (the weekday-by-hour profile
  of the last 4 weeks), widened to the nearest hours of weekday ``w``, then to all ``28d`` sessions.
- ``seasonal_naive``: the sessions that arrived on local day ``d - 7`` in hour ``h`` (same weekday
  and hour one week earlier), widened to the nearest hours of that day, then to ``7d``, then ``28d``.

**Features** (:func:`session_feature_names`): ``hour_local_h``, ``minute_of_day_min``, ``weekday``,
``is_holiday``, ``n_sessions_28d``, ``n_sessions_7d``, ``n_same_hour_28d`` and, per target ``T``:
``level_T`` (median of the ``28d`` window), the 10/90 % quantiles of ``28d``, the 10/50/90 %
quantiles of ``same_hour``, the median of ``profile_4w`` and the median of ``7d`` (the ``28d`` median
when ``7d`` is empty), rounded to 1/64 kWh or min (:data:`VALUE_GRID_BITS`), so every feature is
a float32 number, what the ONNX graphs read. When normalised
(:attr:`SessionFeatureConfig.is_normalized`), every value feature of ``T`` but ``level_T`` and the
target are divided by ``level_T`` (floored at :data:`LEVEL_FLOORS`): one model stays valid when the
site's regime moves (2021's dwell times are a third of 2019's).

**Outputs.** Six quantile boosters (``q10_energy_kwh`` .. ``q90_dwell_min``); per target the three
outputs are sorted (never crossing), scaled back by the level, widened about the median by
:attr:`SessionNeedsForecaster.interval_widening` and floored at 0.

**Baselines** (:meth:`SessionNeedsForecaster.predict` with ``include_baselines``): the empirical
10/50/90 % quantiles (numpy's linear rule) of the ``seasonal_naive`` and ``profile_4w`` windows.

**History.** An arrival needs 28 days of ended sessions before it (from the first arrival among the
sessions that ended before it) and at least :data:`MIN_WINDOW_SESSIONS` of them in its ``28d``
window; :meth:`SessionNeedsForecaster.predict` refuses one without them and
:meth:`SessionNeedsForecaster.fit` skips it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from dataclasses import field as dataclass_field
from typing import Any

import numpy as np
import pandas as pd

from smac_rl.core.arraytypes import BoolArray, FloatArray, IntArray
from smac_rl_forecasting.features import FeatureConfig, calendar_features
from smac_rl_forecasting.model import BoosterConfig, predict_boosters, train_boosters
from smac_rl_forecasting.series import CALTECH_TIMEZONE, ForecastInputError

SESSION_TARGETS: tuple[str, ...] = ("energy_kwh", "dwell_min")
"""What is forecast per session: delivered energy [kWh] and dwell time [min]."""

WINDOW_DAYS = 28
"""Days of ended sessions the features and the profile baseline read (4 weeks)."""

RECENT_DAYS = 7
"""Days of the short window."""

MIN_WINDOW_SESSIONS = 10
"""Fewest ended sessions in the 28-day window of an arrival."""

MIN_TRAINING_SESSIONS = 100
"""Fewest sessions with enough history a fit needs."""

LEVEL_FLOORS: dict[str, float] = {"energy_kwh": 0.125, "dwell_min": 1.0}
"""Smallest level a target is normalised by [kWh, min]."""

VALUE_GRID_BITS = 6
"""Value features are rounded to multiples of ``2**-6`` (1/64 kWh or min). LightGBM splits halfway
between two training values (in float64); the ONNX graphs hold thresholds in float32. On a binary
grid the halfway points are float32 numbers too, so both send every row the same way (on a decimal
grid, a value unseen in training can sit at the midpoint of its neighbours, which float32 rounds
onto it: found as a 15-minute parity gap)."""

RATIO_GRID_BITS = 12
"""Normalised value features are rounded to multiples of ``2**-12`` (same reason)."""

SESSION_PARITY_TOLERANCE = 1e-3
"""Largest ONNX-LightGBM difference of a session graph's output [kWh, min, or a ratio when
normalised]: raw dwell outputs run to hundreds of minutes, where float32 sums of leaf values drift
by about 1e-4."""

SESSION_COLUMNS = ("arrival_utc", "departure_utc", "delivered_energy_kwh")
"""Columns a sessions table must have (those of ``smac_rl.data.caltech_sessions``)."""

WINDOWS = ("28d", "7d", "same_hour", "profile_4w", "seasonal_naive")
"""Windows whose quantiles are computed for every arrival (see the module docstring)."""

BASELINE_WINDOWS = ("seasonal_naive", "profile_4w")
"""Windows whose quantiles are the baselines."""

QUANTILES_FRAC = (0.1, 0.5, 0.9)
"""Quantile levels of the windows' statistics and the baselines."""

_DAY_NS = 86_400 * 10**9
_CHUNK_ROWS = 256
_UTC_NAMES = ("UTC", "utc", "Etc/UTC")


@dataclass(frozen=True)
class SessionFeatureConfig:
    """Calendar and normalisation of the session features.

    Attributes:
        timezone: IANA time zone of the site (local hour, weekday, day).
        holiday_country: ISO country code of the public holidays (``holidays`` package).
        holiday_subdiv: Subdivision of the holidays (a state), or None.
        is_normalized: Divide each target and its value features by its 28-day median.
    """

    timezone: str = CALTECH_TIMEZONE
    holiday_country: str = "US"
    holiday_subdiv: str | None = "CA"
    is_normalized: bool = True

    @property
    def calendar(self) -> FeatureConfig:
        """The slot features' configuration, for :func:`calendar_features`."""
        return FeatureConfig(
            step_min=1,
            timezone=self.timezone,
            holiday_country=self.holiday_country,
            holiday_subdiv=self.holiday_subdiv,
        )


def session_feature_names() -> list[str]:
    """Ordered feature names (the columns of :func:`session_features`)."""
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


def _utc_nanoseconds(values: pd.Series, name: str) -> IntArray:
    """A column of timezone-aware UTC datetimes as nanoseconds since the epoch."""
    if not isinstance(values.dtype, pd.DatetimeTZDtype):
        if pd.api.types.is_datetime64_dtype(values.dtype):
            raise ForecastInputError(f"{name}: got naive timestamps; expected timezone-aware UTC timestamps")
        raise ForecastInputError(
            f"{name}: got dtype {values.dtype}; expected timezone-aware UTC datetimes "
            "(pandas.to_datetime(..., utc=True))"
        )
    if str(values.dtype.tz) not in _UTC_NAMES:
        raise ForecastInputError(f"{name}: got time zone {values.dtype.tz}; expected UTC (convert it first)")
    if values.isna().any():
        raise ForecastInputError(
            f"{name}: got a missing timestamp at row {int(np.flatnonzero(values.isna())[0])}"
        )
    return np.asarray(pd.DatetimeIndex(values).as_unit("ns").asi8, dtype=np.int64)


@dataclass(frozen=True)
class SessionHistory:
    """Checked sessions, sorted by arrival, as arrays.

    Attributes:
        arrival_ns: Arrival instants [ns since the epoch, UTC], ascending, ``(M,)``.
        departure_ns: Departure instants [ns since the epoch, UTC], ``(M,)``.
        values: ``energy_kwh`` and ``dwell_min`` of each session, ``(M, 2)``.
        local_day: Local day of the arrival [days since 1970-01-01], ``(M,)``.
        local_hour: Local hour of the arrival (0-23), ``(M,)``.
        weekday: Local weekday of the arrival (Monday 0), ``(M,)``.
        departure_sorted_ns: Departures in ascending order, ``(M,)``.
        first_arrival_ns: ``first_arrival_ns[k]``: the earliest arrival among the ``k + 1``
            earliest departures, ``(M,)``.
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
    def from_frame(cls, sessions: pd.DataFrame, timezone: str, field: str = "sessions") -> SessionHistory:
        """Check a sessions table and hold it as arrays.

        Args:
            sessions: One row per session with :data:`SESSION_COLUMNS` (UTC datetimes and the
                delivered energy [kWh]); other columns are ignored.
            timezone: Local time zone of the site.
            field: Name used in error messages.

        Raises:
            ForecastInputError: For a non-table, a missing column, naive or non-UTC or missing
                timestamps, a departure not after its arrival, or an energy that is negative or not
                finite.
        """
        if not isinstance(sessions, pd.DataFrame):
            raise ForecastInputError(f"{field}: got {type(sessions).__name__}; expected a pandas DataFrame")
        missing = [c for c in SESSION_COLUMNS if c not in sessions.columns]
        if missing:
            raise ForecastInputError(
                f"{field}: got no column {', '.join(missing)}; expected columns {', '.join(SESSION_COLUMNS)}"
            )
        arrival = _utc_nanoseconds(sessions["arrival_utc"], f"{field}.arrival_utc")
        departure = _utc_nanoseconds(sessions["departure_utc"], f"{field}.departure_utc")
        energy = pd.to_numeric(sessions["delivered_energy_kwh"], errors="coerce").to_numpy(dtype=np.float64)
        bad = np.flatnonzero(~np.isfinite(energy) | (energy < 0.0))
        if bad.size:
            raise ForecastInputError(
                f"{field}.delivered_energy_kwh: got {sessions['delivered_energy_kwh'].iloc[int(bad[0])]!r} "
                f"at row {int(bad[0])}; expected a finite value >= 0"
            )
        bad = np.flatnonzero(departure <= arrival)
        if bad.size:
            row = int(bad[0])
            left = pd.Timestamp(int(departure[row]), tz="UTC").isoformat()
            came = pd.Timestamp(int(arrival[row]), tz="UTC").isoformat()
            raise ForecastInputError(
                f"{field}.departure_utc: got {left} at row {row}; expected after its arrival_utc {came}"
            )
        order = np.argsort(arrival, kind="stable")
        arrival, departure, energy = arrival[order], departure[order], energy[order]
        dwell_min = (departure - arrival) / 60e9
        day, hour, weekday = _local_calendar(arrival, timezone)
        by_departure = np.argsort(departure, kind="stable")
        return cls(
            arrival_ns=arrival,
            departure_ns=departure,
            values=np.column_stack([energy, dwell_min]),
            local_day=day,
            local_hour=hour,
            weekday=weekday,
            departure_sorted_ns=departure[by_departure],
            first_arrival_ns=np.minimum.accumulate(arrival[by_departure]),
        )


def _local_calendar(instants_ns: IntArray, timezone: str) -> tuple[IntArray, IntArray, IntArray]:
    """Local day [days since the epoch], hour and weekday of UTC instants."""
    local = pd.DatetimeIndex(pd.to_datetime(instants_ns, unit="ns", utc=True)).tz_convert(timezone)
    naive = local.tz_localize(None).as_unit("ns")
    day = np.asarray(naive.normalize().asi8 // _DAY_NS, dtype=np.int64)
    return day, np.asarray(local.hour, dtype=np.int64), np.asarray(local.dayofweek, dtype=np.int64)


def check_arrivals(arrivals_utc: Sequence[dt.datetime | pd.Timestamp] | pd.DatetimeIndex) -> IntArray:
    """Arrival instants as UTC nanoseconds since the epoch.

    Raises:
        ForecastInputError: For a naive instant or an empty sequence.
    """
    if isinstance(arrivals_utc, pd.DatetimeIndex):
        if arrivals_utc.tz is None:
            raise ForecastInputError("arrivals_utc: got naive timestamps; expected timezone-aware instants")
        stamps = arrivals_utc.tz_convert("UTC").as_unit("ns")
        result = np.asarray(stamps.asi8, dtype=np.int64)
    else:
        values = []
        for value in arrivals_utc:
            stamp = pd.Timestamp(value)
            if stamp.tzinfo is None:
                raise ForecastInputError(
                    f"arrivals_utc: got naive {stamp.isoformat()}; expected a timezone-aware instant"
                )
            values.append(stamp.tz_convert("UTC").as_unit("ns").value)
        result = np.asarray(values, dtype=np.int64)
    if result.size == 0:
        raise ForecastInputError("arrivals_utc: got no arrival; expected at least one")
    return result


@dataclass(frozen=True)
class WindowStatistics:
    """Counts and quantiles of the windows of each arrival (module docstring).

    Attributes:
        n_sessions_28d: Ended sessions in the 28-day window, ``(N,)``.
        n_sessions_7d: Ended sessions in the 7-day window, ``(N,)``.
        n_same_hour_28d: Those of the 28-day window in the arrival's local hour, ``(N,)``.
        history_days: Days from the first arrival among the ended sessions to the arrival
            (``-1`` when none ended), ``(N,)``.
        quantiles: Per window of :data:`WINDOWS`, the 10/50/90 % quantiles of each target,
            ``(N, 2, 3)`` (NaN where the window is empty).
    """

    n_sessions_28d: IntArray
    n_sessions_7d: IntArray
    n_same_hour_28d: IntArray
    history_days: FloatArray
    quantiles: dict[str, FloatArray]

    @property
    def has_history(self) -> BoolArray:
        """Arrivals with 28 days of ended sessions and enough of them in their 28-day window."""
        return np.asarray(
            (self.history_days >= WINDOW_DAYS) & (self.n_sessions_28d >= MIN_WINDOW_SESSIONS), dtype=np.bool_
        )


def masked_quantiles(values: FloatArray, mask: BoolArray) -> FloatArray:
    """10/50/90 % quantiles of ``values`` under each row of ``mask`` (NaN for an empty row), ``(N, 2, 3)``.

    numpy's default (linear) rule, vectorised: sort each row's values (others pushed to the end as
    infinity) and interpolate between positions ``floor`` and ``ceil`` of ``q * (n - 1)``.

    Args:
        values: ``(M, 2)`` target values of the history's sessions.
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


def _nearest_hours(mask: BoolArray, hour_gap: FloatArray) -> BoolArray:
    """``mask`` narrowed to the sessions of the smallest hour gap present in each row."""
    gap = np.where(mask, hour_gap, np.inf)
    smallest = gap.min(axis=1, keepdims=True, initial=np.inf)
    return np.asarray(mask & (gap <= smallest), dtype=np.bool_)


def _fallback(first: BoolArray, *others: BoolArray) -> BoolArray:
    """Per row, the first of the masks that is not empty."""
    result = first.copy()
    for other in others:
        empty = ~result.any(axis=1)
        result[empty] = other[empty]
    return result


def window_statistics(arrival_ns: IntArray, history: SessionHistory, timezone: str) -> WindowStatistics:
    """Counts and quantiles of every window of each arrival; reads only sessions ended before it.

    Args:
        arrival_ns: Arrival instants [ns since the epoch, UTC], ``(N,)``, any order.
        history: The sessions.
        timezone: Local time zone of the site.
    """
    n = arrival_ns.shape[0]
    day, hour, weekday = _local_calendar(arrival_ns, timezone)
    ended = np.searchsorted(history.departure_sorted_ns, arrival_ns, side="left")
    first = (
        history.first_arrival_ns[np.maximum(ended - 1, 0)] if history.n_sessions else np.zeros(n, np.int64)
    )
    history_days = np.where(ended > 0, (arrival_ns - first) / _DAY_NS, -1.0)
    counts = np.zeros((3, n), dtype=np.int64)
    quantiles = {w: np.full((n, len(SESSION_TARGETS), len(QUANTILES_FRAC)), np.nan) for w in WINDOWS}
    order = np.argsort(arrival_ns, kind="stable")
    window_ns = WINDOW_DAYS * _DAY_NS
    for start in range(0, n, _CHUNK_ROWS):
        rows = order[start : start + _CHUNK_ROWS]
        a = arrival_ns[rows][:, None]
        lo = int(np.searchsorted(history.arrival_ns, int(a.min()) - window_ns, side="left"))
        hi = int(np.searchsorted(history.arrival_ns, int(a.max()), side="left"))
        arr = history.arrival_ns[None, lo:hi]
        done = history.departure_ns[None, lo:hi] < a
        in_28d = done & (arr >= a - window_ns)
        in_7d = in_28d & (arr >= a - RECENT_DAYS * _DAY_NS)
        hour_gap = np.abs(history.local_hour[None, lo:hi] - hour[rows][:, None]).astype(np.float64)
        same_weekday = in_28d & (history.weekday[None, lo:hi] == weekday[rows][:, None])
        week_before = done & (history.local_day[None, lo:hi] == day[rows][:, None] - 7)
        masks = {
            "28d": in_28d,
            "7d": in_7d,
            "same_hour": _nearest_hours(in_28d, hour_gap),
            "profile_4w": _fallback(_nearest_hours(same_weekday, hour_gap), in_28d),
            "seasonal_naive": _fallback(_nearest_hours(week_before, hour_gap), in_7d, in_28d),
        }
        counts[0, rows] = in_28d.sum(axis=1)
        counts[1, rows] = in_7d.sum(axis=1)
        counts[2, rows] = (in_28d & (hour_gap == 0.0)).sum(axis=1)
        values = history.values[lo:hi]
        for name, mask in masks.items():
            quantiles[name][rows] = masked_quantiles(values, mask)
    return WindowStatistics(counts[0], counts[1], counts[2], np.asarray(history_days, np.float64), quantiles)


def _on_grid(values: FloatArray, bits: int) -> FloatArray:
    """Values rounded to the nearest multiple of ``2**-bits``."""
    scale = float(2**bits)
    return np.asarray(np.round(values * scale) / scale, dtype=np.float64)


def session_features(
    arrival_ns: IntArray, stats: WindowStatistics, config: SessionFeatureConfig
) -> tuple[FloatArray, FloatArray]:
    """Feature rows of arrivals from their window statistics.

    Args:
        arrival_ns: Arrival instants [ns since the epoch, UTC], ``(N,)``.
        stats: Their :func:`window_statistics`; every arrival must have a non-empty 28-day window.
        config: Calendar and normalisation.

    Returns:
        ``(X, level)``: features ``(N, F)`` in :func:`session_feature_names` order and the level each
        target is normalised by, ``(N, 2)`` (ones when not normalised).
    """
    times = pd.DatetimeIndex(pd.to_datetime(arrival_ns, unit="ns", utc=True))
    calendar = calendar_features(times, config.calendar)
    hour_frac = calendar[:, 0]
    columns: list[FloatArray] = [
        np.floor(hour_frac),
        np.round(hour_frac * 60.0),
        calendar[:, 1],
        calendar[:, 3],
        stats.n_sessions_28d.astype(np.float64),
        stats.n_sessions_7d.astype(np.float64),
        stats.n_same_hour_28d.astype(np.float64),
    ]
    levels = np.ones((arrival_ns.shape[0], len(SESSION_TARGETS)))
    q = stats.quantiles
    for t, target in enumerate(SESSION_TARGETS):
        median_28d = _on_grid(q["28d"][:, t, 1], VALUE_GRID_BITS)
        recent = np.where(np.isnan(q["7d"][:, t, 1]), median_28d, q["7d"][:, t, 1])
        if config.is_normalized:
            levels[:, t] = np.maximum(median_28d, LEVEL_FLOORS[target])
        value_features = [
            q["28d"][:, t, 0],
            q["28d"][:, t, 2],
            *(q["same_hour"][:, t, i] for i in range(3)),
            q["profile_4w"][:, t, 1],
            recent,
        ]
        columns.append(median_28d)
        bits = RATIO_GRID_BITS if config.is_normalized else VALUE_GRID_BITS
        columns += [_on_grid(_on_grid(x, VALUE_GRID_BITS) / levels[:, t], bits) for x in value_features]
    features = np.column_stack(columns).astype(np.float32).astype(np.float64)
    return features, levels


@dataclass(frozen=True)
class SessionTrainingSummary:
    """What a fit saw.

    Attributes:
        first_arrival_utc: First training arrival (ISO 8601).
        last_arrival_utc: Last training arrival.
        n_sessions: Training sessions (those with enough history).
        n_skipped: Sessions skipped for too little history before them.
    """

    first_arrival_utc: str
    last_arrival_utc: str
    n_sessions: int
    n_skipped: int


SESSION_BOOSTER = BoosterConfig(
    objective="quantile", quantiles=QUANTILES_FRAC, n_trees=150, num_leaves=7, min_data_in_leaf=40
)
"""Default LightGBM settings of the session forecaster (small: about 2,500 training sessions)."""


@dataclass
class SessionNeedsForecaster:
    """Quantiles 10/50/90 of a session's delivered energy [kWh] and dwell time [min] at its arrival.

    Six LightGBM quantile boosters (``q10_energy_kwh`` .. ``q90_dwell_min``) on the features of
    the module docstring; each target's quantiles are sorted (they never cross), scaled back by its
    level and floored at 0.

    Example:
        >>> forecaster = SessionNeedsForecaster().fit(caltech_sessions(period))  # doctest: +SKIP
        >>> forecaster.predict(arrivals_utc, sessions_so_far)  # doctest: +SKIP

    Attributes:
        features: Calendar and normalisation.
        booster: LightGBM settings (objective ``quantile``).
        field: Name in error messages and graph names.
        boosters: Fitted boosters by output name (empty before :meth:`fit`).
        training: Summary of the fit, or None.
        interval_widening: Per target, the factor ``k`` that stretches the interval about the
            median: ``q10 = q50 - k (q50 - q10)``, ``q90 = q50 + k (q90 - q50)`` (1: the boosters'
            own; :func:`widening_for_coverage` calibrates it on data the fit did not see).
    """

    features: SessionFeatureConfig = dataclass_field(default_factory=SessionFeatureConfig)
    booster: BoosterConfig = SESSION_BOOSTER
    field: str = "sessions"
    boosters: dict[str, Any] = dataclass_field(default_factory=dict)
    training: SessionTrainingSummary | None = None
    interval_widening: tuple[float, ...] = (1.0, 1.0)

    def __post_init__(self) -> None:
        """Check the objective, the quantile levels and the widening."""
        if self.booster.objective != "quantile":
            raise ForecastInputError(
                f"booster.objective: got {self.booster.objective!r}; expected 'quantile'"
            )
        if tuple(self.booster.quantiles) != QUANTILES_FRAC:
            raise ForecastInputError(
                f"booster.quantiles: got {self.booster.quantiles}; expected {QUANTILES_FRAC}"
            )
        widening = self.interval_widening
        if len(widening) != len(SESSION_TARGETS) or not all(np.isfinite(k) and k > 0 for k in widening):
            raise ForecastInputError(
                f"interval_widening: got {widening}; expected {len(SESSION_TARGETS)} finite factors > 0"
            )

    @property
    def is_fitted(self) -> bool:
        """True once :meth:`fit` has run."""
        return bool(self.boosters)

    @property
    def feature_names(self) -> list[str]:
        """Ordered feature names."""
        return session_feature_names()

    @property
    def output_names(self) -> list[str]:
        """Output columns: ``q10_energy_kwh``, ``q50_energy_kwh``, ... ``q90_dwell_min``."""
        return [f"{q}_{t}" for t in SESSION_TARGETS for q in self.booster.output_names]

    @property
    def postprocess(self) -> str:
        """How the exported graphs' outputs become forecasts, in words (``metadata.json``)."""
        if self.features.is_normalized:
            scaled = "times the feature level_<target> floored at " + ", ".join(
                f"{v:g} for {t}" for t, v in LEVEL_FLOORS.items()
            )
        else:
            scaled = "as is"
        widening = ", ".join(
            f"{k:.6g} for {t}" for t, k in zip(SESSION_TARGETS, self.interval_widening, strict=True)
        )
        return (
            "per target (energy_kwh, dwell_min): sort the three quantile outputs q10/q50/q90 per row, "
            f"take them {scaled}, widen the interval about the median by k ({widening}): "
            "q10 = q50 - k (q50 - q10), q90 = q50 + k (q90 - q50), then floor all three at 0; features "
            "are built from the sessions that ended before the arrival (see the feature names and "
            "smac_rl_forecasting.sessions)"
        )

    def history(self, sessions: pd.DataFrame, field: str = "sessions") -> SessionHistory:
        """Check a sessions table (errors as :meth:`SessionHistory.from_frame`)."""
        return SessionHistory.from_frame(sessions, self.features.timezone, field)

    def fit(self, sessions: pd.DataFrame) -> SessionNeedsForecaster:
        """Fit on every session of the table that has enough history before its arrival.

        Each session's features read only the table's sessions that ended before it arrived.

        Args:
            sessions: One row per session (:data:`SESSION_COLUMNS`).

        Returns:
            Itself, fitted.

        Raises:
            ForecastInputError: For a bad table or fewer than :data:`MIN_TRAINING_SESSIONS`
                sessions with 28 days of history.
        """
        history = self.history(sessions)
        stats = window_statistics(history.arrival_ns, history, self.features.timezone)
        keep = stats.has_history
        n_kept = int(keep.sum())
        if n_kept < MIN_TRAINING_SESSIONS:
            raise ForecastInputError(
                f"sessions: got {n_kept} sessions with {WINDOW_DAYS} days of history and at least "
                f"{MIN_WINDOW_SESSIONS} ended sessions in their window; expected at least "
                f"{MIN_TRAINING_SESSIONS}"
            )
        arrivals = history.arrival_ns[keep]
        features, levels = session_features(arrivals, _subset(stats, keep), self.features)
        self.boosters = {}
        for t, target in enumerate(SESSION_TARGETS):
            label = history.values[keep, t] / levels[:, t]
            self.boosters |= train_boosters(features, label, self.feature_names, self.booster, f"_{target}")
        self.training = SessionTrainingSummary(
            first_arrival_utc=pd.Timestamp(int(arrivals.min()), tz="UTC").isoformat(),
            last_arrival_utc=pd.Timestamp(int(arrivals.max()), tz="UTC").isoformat(),
            n_sessions=n_kept,
            n_skipped=history.n_sessions - n_kept,
        )
        return self

    def feature_rows(
        self,
        arrivals_utc: Sequence[dt.datetime | pd.Timestamp] | pd.DatetimeIndex,
        sessions: pd.DataFrame,
    ) -> tuple[FloatArray, FloatArray, WindowStatistics]:
        """Feature rows of arrivals; arguments and errors as :meth:`predict`.

        Returns:
            ``(X, level, stats)``: features ``(N, F)``, levels ``(N, 2)`` and window statistics.
        """
        arrival_ns = check_arrivals(arrivals_utc)
        history = self.history(sessions)
        stats = window_statistics(arrival_ns, history, self.features.timezone)
        short = np.flatnonzero(~stats.has_history)
        if short.size:
            i = int(short[0])
            when = pd.Timestamp(int(arrival_ns[i]), tz="UTC").isoformat()
            if stats.history_days[i] < WINDOW_DAYS:
                got = max(float(stats.history_days[i]), 0.0)
                raise ForecastInputError(
                    f"sessions: got {got:.1f} days of ended sessions before arrival {when}; "
                    f"expected at least {WINDOW_DAYS}"
                )
            raise ForecastInputError(
                f"sessions: got {int(stats.n_sessions_28d[i])} sessions ended in the {WINDOW_DAYS} days "
                f"before arrival {when}; expected at least {MIN_WINDOW_SESSIONS}"
            )
        features, levels = session_features(arrival_ns, stats, self.features)
        return features, levels, stats

    def predict_raw(self, features: FloatArray, levels: FloatArray) -> FloatArray:
        """Outputs for feature rows in :attr:`output_names` order, ``(N, 6)`` [kWh, min].

        Raises:
            ForecastInputError: Before :meth:`fit`.
        """
        if not self.is_fitted:
            raise ForecastInputError(f"{self.field} forecaster: not fitted; call fit() first")
        blocks = []
        for t, target in enumerate(SESSION_TARGETS):
            boosters = [self.boosters[f"{q}_{target}"] for q in self.booster.output_names]
            q10, q50, q90 = (predict_boosters(boosters, features, "quantile") * levels[:, t : t + 1]).T
            k = self.interval_widening[t]
            widened = np.column_stack([q50 - k * (q50 - q10), q50, q50 + k * (q90 - q50)])
            blocks.append(np.maximum(widened, 0.0))
        return np.asarray(np.concatenate(blocks, axis=1), dtype=np.float64)

    def predict(
        self,
        arrivals_utc: Sequence[dt.datetime | pd.Timestamp] | pd.DatetimeIndex,
        sessions: pd.DataFrame,
        include_baselines: bool = False,
    ) -> pd.DataFrame:
        """Quantiles of the energy and dwell time of sessions arriving at the given instants.

        Args:
            arrivals_utc: Arrival instants, timezone-aware.
            sessions: Sessions known so far (:data:`SESSION_COLUMNS`); for each arrival only those
                that ended before it are read, so the table may hold later sessions too.
            include_baselines: Also return the baselines' quantiles (``seasonal_naive_q10_energy_kwh``,
                ``profile_4w_q50_dwell_min``...).

        Returns:
            One row per arrival, in the given order: ``arrival_utc`` and :attr:`output_names`
            [kWh, min] (and the baselines' columns).

        Raises:
            ForecastInputError: For a naive arrival, a bad sessions table, an arrival with less than
                28 days of ended sessions before it or fewer than :data:`MIN_WINDOW_SESSIONS` in its
                window, or an unfitted forecaster.
        """
        features, levels, stats = self.feature_rows(arrivals_utc, sessions)
        outputs = self.predict_raw(features, levels)
        arrival_ns = check_arrivals(arrivals_utc)
        frame = pd.DataFrame({"arrival_utc": pd.to_datetime(arrival_ns, unit="ns", utc=True)})
        for i, name in enumerate(self.output_names):
            frame[name] = outputs[:, i]
        if include_baselines:
            for window in BASELINE_WINDOWS:
                for t, target in enumerate(SESSION_TARGETS):
                    for i, q in enumerate(self.booster.output_names):
                        frame[f"{window}_{q}_{target}"] = stats.quantiles[window][:, t, i]
        return frame

    def describe(self) -> dict[str, Any]:
        """Configuration and training summary as plain JSON-able values."""
        return {
            "field": self.field,
            "targets": list(SESSION_TARGETS),
            "window_days": WINDOW_DAYS,
            "recent_days": RECENT_DAYS,
            "min_window_sessions": MIN_WINDOW_SESSIONS,
            "features": asdict(self.features),
            "booster": asdict(self.booster),
            "feature_names": self.feature_names,
            "output_names": self.output_names,
            "interval_widening": list(self.interval_widening),
            "training": None if self.training is None else asdict(self.training),
        }


def widening_for_coverage(
    actual: FloatArray, q10: FloatArray, q50: FloatArray, q90: FloatArray, coverage_frac: float = 0.8
) -> float:
    """The smallest widening ``k`` whose interval covers at least ``coverage_frac`` of the truths.

    A truth ``y`` below the median is covered when ``q50 - k (q50 - q10) <= y``, i.e. when
    ``k >= (q50 - y) / (q50 - q10)``; above it, when ``k >= (y - q50) / (q90 - q50)``. ``k`` is the
    ``ceil(coverage_frac * n)``-th smallest of these needs (a zero-width side covers only its median).

    Args:
        actual: Truths, ``(n,)``.
        q10: Forecast 10 % quantiles (unwidened), ``(n,)``.
        q50: Forecast medians, ``(n,)``.
        q90: Forecast 90 % quantiles (unwidened), ``(n,)``.
        coverage_frac: Share of truths to cover, in (0, 1).

    Raises:
        ForecastInputError: For an empty or mis-shaped input, a share out of range, or too few
            truths coverable at any finite widening.
    """
    y, lo, mid, hi = (np.asarray(x, dtype=np.float64) for x in (actual, q10, q50, q90))
    if y.ndim != 1 or y.size == 0 or not (y.shape == lo.shape == mid.shape == hi.shape):
        raise ForecastInputError(f"actual: got shape {y.shape}; expected equal non-empty 1-D arrays")
    if not 0.0 < coverage_frac < 1.0:
        raise ForecastInputError(f"coverage_frac: got {coverage_frac}; expected a share in (0, 1)")
    with np.errstate(divide="ignore", invalid="ignore"):
        need = np.where(y < mid, (mid - y) / (mid - lo), np.where(y > mid, (y - mid) / (hi - mid), 0.0))
    need = np.where(np.isnan(need), np.inf, need)
    k = float(np.sort(need)[int(np.ceil(coverage_frac * y.size)) - 1])
    if not np.isfinite(k) or k <= 0.0:
        raise ForecastInputError(
            f"actual: got a widening of {k} for {coverage_frac:.0%} coverage; expected a finite one > 0"
        )
    return k


def _subset(stats: WindowStatistics, keep: BoolArray) -> WindowStatistics:
    """The statistics of the kept arrivals."""
    return WindowStatistics(
        stats.n_sessions_28d[keep],
        stats.n_sessions_7d[keep],
        stats.n_same_hour_28d[keep],
        stats.history_days[keep],
        {name: q[keep] for name, q in stats.quantiles.items()},
    )


def session_targets(sessions: pd.DataFrame, timezone: str = CALTECH_TIMEZONE) -> pd.DataFrame:
    """The truth of each session, sorted by arrival: ``arrival_utc``, ``energy_kwh``, ``dwell_min``."""
    history = SessionHistory.from_frame(sessions, timezone)
    return pd.DataFrame(
        {
            "arrival_utc": pd.to_datetime(history.arrival_ns, unit="ns", utc=True),
            "energy_kwh": history.values[:, 0],
            "dwell_min": history.values[:, 1],
        }
    )
