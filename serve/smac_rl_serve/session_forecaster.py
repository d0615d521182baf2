"""The session-needs forecaster in the service: ONNX graphs and numpy features, no lightgbm or pandas.

The forecasting package exports its session-needs forecaster
(:mod:`smac_rl_forecasting.sessions`) as six graphs, ``q10_energy_kwh.onnx`` .. ``q90_dwell_min.onnx``,
and ``metadata.json`` (``models/forecasters/caltech_session_needs/v1``). For a session arriving at
``a``, the forecaster gives the 10, 50 and 90 % quantiles of the energy it will take [kWh] and of
its dwell time [min], from the local calendar of ``a`` and from the site's sessions that **ended**
before ``a`` (a session still plugged in at ``a`` is never read). INCAR uses them as the driver's
inputs when the driver gives no departure time or energy wanted.

This module rebuilds the graphs' input rows with numpy and the standard library only:
:func:`window_statistics` and :func:`session_features` give, for the same sessions and arrivals, the
values of ``smac_rl_forecasting.sessions.window_statistics`` and ``session_features`` bit for bit
(``tests/serve/test_session_forecaster.py`` checks it on the Caltech sessions, daylight-saving days
and holidays included). The calendar comes from :mod:`zoneinfo`, the public holidays from the
metadata's ``holidays.dates`` (the exporter writes them from the ``holidays`` package).

Windows over the ended sessions of an arrival ``a`` (local hour ``h``, weekday ``w``, local day
``d``): ``28d`` (arrived in ``[a - 28 days, a)``), ``7d`` (``[a - 7 days, a)``), ``same_hour``
(``28d`` in hour ``h``, else the nearest hours present), ``profile_4w`` (``28d`` of weekday ``w``
and hour ``h``, widened to the nearest hours of ``w``, then to ``28d``) and ``seasonal_naive``
(day ``d - 7`` in hour ``h``, widened to its nearest hours, then ``7d``, then ``28d``); each gives
the 10/50/90 % quantiles of each target (numpy's linear rule).

The forecast follows the metadata's ``postprocess``: per target, the three outputs sorted per row,
scaled by the level (1 when not normalised), the interval widened about the median by
``interval_widening`` and all three floored at 0.

History rule: an arrival needs 28 days of ended sessions before it (from the first arrival among
them) and at least ``min_window_sessions`` (10) of them in its ``28d`` window.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import numpy as np
import onnxruntime as ort

from smac_rl.core.arraytypes import BoolArray, FloatArray, IntArray
from smac_rl.core.errors import FieldProblem, ProblemsError, render_value
from smac_rl_serve.errors import json_safe
from smac_rl_serve.forecasters import FORECASTER_SCHEMA_VERSION, _expect, _object, _whole
from smac_rl_serve.model import ModelError

SESSION_TARGETS: tuple[str, ...] = ("energy_kwh", "dwell_min")
"""What is forecast per session: delivered energy [kWh] and dwell time [min]."""

QUANTILE_NAMES = ("q10", "q50", "q90")
QUANTILES_FRAC = (0.1, 0.5, 0.9)

OUTPUT_NAMES: tuple[str, ...] = tuple(f"{q}_{t}" for t in SESSION_TARGETS for q in QUANTILE_NAMES)
"""The six graphs, in the order of the forecasts' columns: ``q10_energy_kwh`` .. ``q90_dwell_min``."""

WINDOW_DAYS = 28
"""Days of ended sessions the features read (and of history an arrival needs)."""

RECENT_DAYS = 7
"""Days of the short window."""

VALUE_GRID_BITS = 6
"""Value features are rounded to multiples of ``2**-6`` (as the forecasting package does)."""

RATIO_GRID_BITS = 12
"""Normalised value features are rounded to multiples of ``2**-12``."""

LEVEL_FLOORS: dict[str, float] = {"energy_kwh": 0.125, "dwell_min": 1.0}
"""Smallest level a normalised target is scaled by [kWh, min] (stated in the metadata's postprocess)."""

WINDOWS = ("28d", "7d", "same_hour", "profile_4w", "seasonal_naive")

MAX_DWELL_MIN = 31 * 24 * 60.0
"""Longest dwell accepted in a history [min] (31 days; Caltech's longest is about 6 days)."""

FIRST_HISTORY_YEAR = 1970
LAST_HISTORY_YEAR = 2199
"""Years (UTC) a history instant may lie in."""

_DAY_NS = 86_400 * 10**9
_MINUTE_NS = 60 * 10**9
_CHUNK_ROWS = 256
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_EPOCH_DATE = dt.date(1970, 1, 1)
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


def session_feature_names() -> list[str]:
    """Ordered feature names (the graphs' input columns; those of ``smac_rl_forecasting.sessions``)."""
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


def postprocess_rule(is_normalized: bool, interval_widening: Sequence[float]) -> str:
    """The ``postprocess`` sentence of the rule :meth:`OnnxSessionNeedsForecaster.forecast` applies.

    The exporter writes the forecaster's own sentence; a folder whose sentence differs states another
    rule, and the service refuses it.
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


class SessionForecastInputError(ProblemsError[FieldProblem]):
    """Arrivals or a history the forecaster cannot use; every problem names its field."""


@dataclass(frozen=True)
class SessionFeatureConfig:
    """How the session features are built (the metadata's ``features`` and ``holidays``).

    Attributes:
        timezone: IANA time zone of the site the forecaster was trained for (the default calendar).
        holiday_dates: Public holidays (local dates) of ``first_holiday_year .. last_holiday_year``.
        first_holiday_year: First year the holidays are known for.
        last_holiday_year: Last year the holidays are known for.
        is_normalized: Value features and outputs scaled by each target's 28-day median.
    """

    timezone: str
    holiday_dates: frozenset[dt.date]
    first_holiday_year: int
    last_holiday_year: int
    is_normalized: bool


def instant_ns(instant: dt.datetime) -> int:
    """An aware instant as nanoseconds since the epoch (UTC), exactly (datetimes hold microseconds)."""
    return (instant - _EPOCH) // dt.timedelta(microseconds=1) * 1000


def _utc_of_ns(value_ns: int) -> dt.datetime:
    return _EPOCH + dt.timedelta(microseconds=value_ns // 1000)


def local_calendar(instants_ns: IntArray, timezone: str) -> tuple[IntArray, IntArray, IntArray, IntArray]:
    """Local day [days since 1970-01-01], hour, minute and weekday (Monday 0) of UTC instants."""
    zone = ZoneInfo(timezone)
    n = instants_ns.shape[0]
    day, hour, minute, weekday = (np.zeros(n, dtype=np.int64) for _ in range(4))
    for i, value in enumerate(instants_ns.tolist()):
        local = _utc_of_ns(int(value)).astimezone(zone)
        day[i] = (local.date() - _EPOCH_DATE).days
        hour[i], minute[i], weekday[i] = local.hour, local.minute, local.weekday()
    return day, hour, minute, weekday


@dataclass(frozen=True)
class SessionLog:
    """A site's sessions, sorted by arrival, as arrays (``smac_rl_forecasting.sessions.SessionHistory``).

    Attributes:
        arrival_ns: Arrival instants [ns since the epoch, UTC], ascending, ``(M,)``.
        departure_ns: Departure instants [ns since the epoch, UTC], ``(M,)``.
        values: ``energy_kwh`` [kWh] and ``dwell_min`` [min] of each session, ``(M, 2)``.
        local_day: Local day of the arrival [days since 1970-01-01], ``(M,)``.
        local_hour: Local hour of the arrival (0-23), ``(M,)``.
        weekday: Local weekday of the arrival (Monday 0), ``(M,)``.
        departure_sorted_ns: Departures in ascending order, ``(M,)``.
        first_arrival_ns: The earliest arrival among the ``k + 1`` earliest departures, ``(M,)``.
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
    def of(
        cls, arrival_ns: IntArray, departure_ns: IntArray, energy_kwh: FloatArray, timezone: str
    ) -> SessionLog:
        """Sort checked sessions by arrival (:func:`check_session_history` checks them).

        Args:
            arrival_ns: Arrivals [ns since the epoch, UTC], any order, ``(M,)``.
            departure_ns: Departures [ns], each after its arrival, ``(M,)``.
            energy_kwh: Delivered energy [kWh], finite and not negative, ``(M,)``.
            timezone: Local time zone of the site.
        """
        arrival = np.asarray(arrival_ns, dtype=np.int64)
        departure = np.asarray(departure_ns, dtype=np.int64)
        energy = np.asarray(energy_kwh, dtype=np.float64)
        order = np.argsort(arrival, kind="stable")
        arrival, departure, energy = arrival[order], departure[order], energy[order]
        dwell_min = (departure - arrival) / 60e9
        day, hour, _minute, weekday = local_calendar(arrival, timezone)
        by_departure = np.argsort(departure, kind="stable")
        first = np.minimum.accumulate(arrival[by_departure]) if arrival.size else np.zeros(0, dtype=np.int64)
        return cls(
            arrival_ns=arrival,
            departure_ns=departure,
            values=np.column_stack([energy, dwell_min]).reshape(-1, 2),
            local_day=day,
            local_hour=hour,
            weekday=weekday,
            departure_sorted_ns=departure[by_departure],
            first_arrival_ns=np.asarray(first, dtype=np.int64),
        )


@dataclass(frozen=True)
class WindowStatistics:
    """Counts and quantiles of the windows of each arrival.

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


def masked_quantiles(values: FloatArray, mask: BoolArray) -> FloatArray:
    """10/50/90 % quantiles of ``values`` under each row of ``mask`` (NaN for an empty row), ``(N, 2, 3)``.

    numpy's linear rule: sort each row's values (the others pushed to the end as infinity) and
    interpolate between positions ``floor`` and ``ceil`` of ``q (n - 1)``.

    Args:
        values: ``(M, 2)`` target values of the sessions.
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


def window_statistics(arrival_ns: IntArray, log: SessionLog, timezone: str) -> WindowStatistics:
    """Counts and quantiles of every window of each arrival; reads only sessions ended before it.

    Args:
        arrival_ns: Arrival instants [ns since the epoch, UTC], ``(N,)``, any order.
        log: The site's sessions.
        timezone: Local time zone of the site.
    """
    n = arrival_ns.shape[0]
    day, hour, _minute, weekday = local_calendar(arrival_ns, timezone)
    ended = np.searchsorted(log.departure_sorted_ns, arrival_ns, side="left")
    first = log.first_arrival_ns[np.maximum(ended - 1, 0)] if log.n_sessions else np.zeros(n, np.int64)
    history_days = np.where(ended > 0, (arrival_ns - first) / _DAY_NS, -1.0)
    counts = np.zeros((3, n), dtype=np.int64)
    quantiles = {w: np.full((n, len(SESSION_TARGETS), len(QUANTILES_FRAC)), np.nan) for w in WINDOWS}
    order = np.argsort(arrival_ns, kind="stable")
    window_ns = WINDOW_DAYS * _DAY_NS
    for start in range(0, n, _CHUNK_ROWS):
        rows = order[start : start + _CHUNK_ROWS]
        a = arrival_ns[rows][:, None]
        lo = int(np.searchsorted(log.arrival_ns, int(a.min()) - window_ns, side="left"))
        hi = int(np.searchsorted(log.arrival_ns, int(a.max()), side="left"))
        arr = log.arrival_ns[None, lo:hi]
        done = log.departure_ns[None, lo:hi] < a
        in_28d = done & (arr >= a - window_ns)
        in_7d = in_28d & (arr >= a - RECENT_DAYS * _DAY_NS)
        hour_gap = np.abs(log.local_hour[None, lo:hi] - hour[rows][:, None]).astype(np.float64)
        same_weekday = in_28d & (log.weekday[None, lo:hi] == weekday[rows][:, None])
        week_before = done & (log.local_day[None, lo:hi] == day[rows][:, None] - 7)
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
        values = log.values[lo:hi]
        for name, mask in masks.items():
            quantiles[name][rows] = masked_quantiles(values, mask)
    return WindowStatistics(counts[0], counts[1], counts[2], np.asarray(history_days, np.float64), quantiles)


def _on_grid(values: FloatArray, bits: int) -> FloatArray:
    """Values rounded to the nearest multiple of ``2**-bits``."""
    scale = float(2**bits)
    return np.asarray(np.round(values * scale) / scale, dtype=np.float64)


def session_features(
    arrival_ns: IntArray, stats: WindowStatistics, config: SessionFeatureConfig, timezone: str | None = None
) -> tuple[FloatArray, FloatArray]:
    """Feature rows of arrivals from their window statistics.

    Args:
        arrival_ns: Arrival instants [ns since the epoch, UTC], ``(N,)``.
        stats: Their :func:`window_statistics`; every arrival must have a non-empty 28-day window.
        config: Holidays and normalisation.
        timezone: Local time zone of the calendar; None: ``config.timezone``.

    Returns:
        ``(X, level)``: features ``(N, F)`` in :func:`session_feature_names` order (float32 values
        held as float64) and the level each target is scaled by, ``(N, 2)`` (ones when not
        normalised).
    """
    day, hour, minute, weekday = local_calendar(arrival_ns, timezone or config.timezone)
    hour_frac = hour + minute / 60.0
    holiday_days = np.asarray(
        sorted((d - _EPOCH_DATE).days for d in config.holiday_dates), dtype=np.int64
    ).reshape(-1)
    is_holiday = np.isin(day, holiday_days)
    columns: list[FloatArray] = [
        np.floor(hour_frac),
        np.round(hour_frac * 60.0),
        weekday.astype(np.float64),
        is_holiday.astype(np.float64),
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


def _utc_text(instant: dt.datetime) -> str:
    try:
        return instant.astimezone(dt.UTC).isoformat()
    except (OverflowError, ValueError):
        return instant.isoformat()


_FIRST_HISTORY = dt.datetime(FIRST_HISTORY_YEAR, 1, 1, tzinfo=dt.UTC)
_END_HISTORY = dt.datetime(LAST_HISTORY_YEAR + 1, 1, 1, tzinfo=dt.UTC)
_HISTORY_RANGE = f"an instant in the years {FIRST_HISTORY_YEAR} to {LAST_HISTORY_YEAR} (UTC)"


@dataclass(frozen=True)
class CheckedHistory:
    """Sessions of a history, checked, in the given order.

    Attributes:
        arrival_ns: Arrivals [ns since the epoch, UTC], ``(M,)``.
        departure_ns: Departures [ns], each after its arrival, ``(M,)``.
        energy_kwh: Delivered energy [kWh], ``(M,)``.
    """

    arrival_ns: IntArray
    departure_ns: IntArray
    energy_kwh: FloatArray

    @property
    def n_sessions(self) -> int:
        """Sessions held."""
        return int(self.arrival_ns.shape[0])


def check_session_history(
    arrival_utc: Sequence[dt.datetime],
    departure_utc: Sequence[dt.datetime],
    energy_kwh: Sequence[float],
    prefix: str = "history",
) -> CheckedHistory:
    """A site's past sessions, checked: aware instants in range, departure after arrival, energy sane.

    Args:
        arrival_utc: Arrival of each session (timezone-aware).
        departure_utc: Departure of each session (timezone-aware), after its arrival and at most
            :data:`MAX_DWELL_MIN` later.
        energy_kwh: Energy each session took [kWh], finite and not negative.
        prefix: Path of the list in error messages (``history``).

    Returns:
        The sessions as arrays.

    Raises:
        SessionForecastInputError: Naming each entry at fault (``history[3].departure_utc``...).
    """
    problems: list[FieldProblem] = []
    if not len(arrival_utc) == len(departure_utc) == len(energy_kwh):
        raise SessionForecastInputError(
            [
                FieldProblem(
                    prefix,
                    f"{len(arrival_utc)} arrivals, {len(departure_utc)} departures, "
                    f"{len(energy_kwh)} energies",
                    "one of each per session",
                )
            ]
        )
    arrivals, departures = [], []
    for i, (arrival, departure, energy) in enumerate(
        zip(arrival_utc, departure_utc, energy_kwh, strict=True)
    ):
        path = f"{prefix}[{i}]"
        instants: list[int | None] = []
        for name, instant in (("arrival_utc", arrival), ("departure_utc", departure)):
            if instant.tzinfo is None or instant.utcoffset() is None:
                problems.append(
                    FieldProblem(f"{path}.{name}", instant.isoformat(), "a timezone-aware instant")
                )
            elif not _FIRST_HISTORY <= instant < _END_HISTORY:
                problems.append(FieldProblem(f"{path}.{name}", instant.isoformat(), _HISTORY_RANGE))
            else:
                instants.append(instant_ns(instant))
                continue
            instants.append(None)
        a_ns, d_ns = instants
        if a_ns is not None and d_ns is not None:
            if d_ns <= a_ns:
                problems.append(
                    FieldProblem(
                        f"{path}.departure_utc",
                        departure.isoformat(),
                        f"after its arrival_utc {_utc_text(arrival)}",
                    )
                )
            elif (d_ns - a_ns) / _MINUTE_NS > MAX_DWELL_MIN:
                problems.append(
                    FieldProblem(
                        f"{path}.departure_utc",
                        departure.isoformat(),
                        f"at most {MAX_DWELL_MIN / 1440:g} days after its arrival_utc {_utc_text(arrival)}",
                    )
                )
        if not np.isfinite(energy) or energy < 0.0:
            problems.append(FieldProblem(f"{path}.energy_kwh", render_value(energy), "a finite number >= 0"))
        arrivals.append(a_ns or 0)
        departures.append(d_ns or 0)
    if problems:
        raise SessionForecastInputError(problems)
    return CheckedHistory(
        arrival_ns=np.asarray(arrivals, dtype=np.int64).reshape(-1),
        departure_ns=np.asarray(departures, dtype=np.int64).reshape(-1),
        energy_kwh=np.asarray(energy_kwh, dtype=np.float64).reshape(-1),
    )


@dataclass(frozen=True)
class SessionNeedsForecast:
    """Quantile forecasts of the sessions arriving at given instants.

    Attributes:
        arrival_utc: Each arrival (UTC), in the given order.
        timezone: Time zone of the calendar features.
        quantiles: Per arrival, the forecasts in :data:`OUTPUT_NAMES` order, ``(N, 6)``: 10/50/90 %
            of the energy [kWh], then of the dwell time [min]; ordered within each target, not
            negative.
        n_sessions_28d: Ended sessions in each arrival's 28-day window, ``(N,)``.
    """

    arrival_utc: list[dt.datetime]
    timezone: str
    quantiles: FloatArray
    n_sessions_28d: IntArray


class OnnxSessionNeedsForecaster:
    """The exported session-needs forecaster: numpy features -> six ONNX graphs -> quantiles [kWh, min].

    Attributes:
        model_dir: The folder (resolved).
        metadata_path: Its ``metadata.json``.
        metadata: The metadata as read.
        config: The feature configuration.
        min_window_sessions: Fewest ended sessions an arrival's 28-day window must hold.
        interval_widening: Per target, the factor the interval is widened by about the median.
        onnx_sha256: Hash of each graph, by output name.
    """

    def __init__(self, model_dir: Path) -> None:
        """Load and check a forecaster folder.

        Checks, in order: ``metadata.json`` exists and is JSON with this service's ``schema_version``;
        ``field`` is ``sessions``, ``targets``, ``window_days``, ``recent_days`` and ``output_names``
        are this module's and ``min_window_sessions`` is a whole number of at least 1; the time zone
        is known, ``is_normalized`` a boolean and the holidays listed for the features' country; the
        feature names are this module's, in order, and ``inputs.features.shape`` has their number;
        ``interval_widening`` holds two finite factors above 0 and ``postprocess`` states the rule
        this module applies; each graph exists, has the metadata's sha256, loads, takes
        ``features`` of that width and maps a zero row to one finite number.

        Raises:
            ModelError: On the first failed check, naming the file, the field, the value found and
                the expectation.
        """
        self.model_dir = model_dir.resolve()
        self.metadata_path = self.model_dir / "metadata.json"
        where = f"session forecaster: {self.metadata_path}"
        if not self.metadata_path.is_file():
            raise ModelError(
                f"session forecaster: {self.metadata_path} is missing; expected metadata.json and "
                f"the six graphs {', '.join(f'{n}.onnx' for n in OUTPUT_NAMES)} in {model_dir}"
            )
        try:
            raw = json.loads(self.metadata_path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ModelError(f"{where} is not JSON ({exc})") from None
        if not isinstance(raw, dict):
            raise ModelError(f"{where} is a {type(raw).__name__}; expected a JSON object")
        self.metadata: dict[str, Any] = raw
        version = raw.get("schema_version")
        if version != FORECASTER_SCHEMA_VERSION or isinstance(version, bool):
            raise ModelError(
                f"{where} field schema_version is {render_value(version)}; expected "
                f"{FORECASTER_SCHEMA_VERSION} (the metadata format this service reads); "
                "re-export the forecaster"
            )
        _expect(where, "field", raw.get("field"), raw.get("field") == "sessions", "'sessions'")
        targets = list(SESSION_TARGETS)
        _expect(where, "targets", raw.get("targets"), raw.get("targets") == targets, repr(targets))
        for key, wanted in (("window_days", WINDOW_DAYS), ("recent_days", RECENT_DAYS)):
            value = _whole(where, key, raw.get(key))
            _expect(where, key, value, value == wanted, f"{wanted} (the windows this service builds)")
        self.min_window_sessions = _whole(where, "min_window_sessions", raw.get("min_window_sessions"))
        _expect(
            where,
            "min_window_sessions",
            self.min_window_sessions,
            self.min_window_sessions >= 1,
            "at least 1",
        )
        outputs = raw.get("outputs")
        names = list(OUTPUT_NAMES)
        _expect(where, "output_names", raw.get("output_names"), raw.get("output_names") == names, repr(names))
        _expect(
            where,
            "outputs",
            sorted(outputs) if isinstance(outputs, dict) else outputs,
            isinstance(outputs, dict) and sorted(outputs) == sorted(names),
            f"the outputs {names}",
        )
        self.config = _feature_config(where, raw)
        feature_names = session_feature_names()
        _expect(
            where,
            "feature_names",
            raw.get("feature_names"),
            raw.get("feature_names") == feature_names,
            f"{feature_names} (the features smac_rl_serve.session_forecaster builds)",
        )
        inputs_entry = _object(where, "inputs", raw.get("inputs"), "an object with features")
        features_entry = _object(where, "inputs.features", inputs_entry.get("features"), "an object")
        shape = features_entry.get("shape")
        width = len(feature_names)
        _expect(where, "inputs.features.shape", shape, shape == ["N", width], f"['N', {width}]")
        widening = raw.get("interval_widening")
        factors: list[Any] = widening if isinstance(widening, list) else []
        _expect(
            where,
            "interval_widening",
            widening,
            len(factors) == len(SESSION_TARGETS)
            and all(
                isinstance(k, int | float) and not isinstance(k, bool) and np.isfinite(k) and k > 0
                for k in factors
            ),
            f"{len(SESSION_TARGETS)} finite factors > 0 (one per target)",
        )
        self.interval_widening = tuple(float(k) for k in factors)
        rule = postprocess_rule(self.config.is_normalized, self.interval_widening)
        _expect(
            where,
            "postprocess",
            raw.get("postprocess"),
            raw.get("postprocess") == rule,
            f"{rule!r} (the rule this service applies)",
        )
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        self._sessions: dict[str, Any] = {}
        self.onnx_sha256: dict[str, str] = {}
        for name in OUTPUT_NAMES:
            entry = outputs[name] if isinstance(outputs, dict) else None
            file_name = entry.get("file") if isinstance(entry, dict) else None
            expected = entry.get("sha256") if isinstance(entry, dict) else None
            _expect(
                where,
                f"outputs.{name}.file",
                file_name,
                isinstance(file_name, str) and Path(file_name).name == file_name,
                "a file name beside metadata.json",
            )
            path = self.model_dir / str(file_name)
            if not path.is_file():
                raise ModelError(
                    f"session forecaster: {path} is missing; expected it (metadata.json outputs.{name})"
                )
            digest = hashlib.sha256(path.read_bytes()).hexdigest()
            if digest != expected:
                raise ModelError(
                    f"session forecaster: {path} has sha256 {digest}; metadata.json expects {expected} "
                    f"(field outputs.{name}.sha256): the file was altered or replaced"
                )
            self.onnx_sha256[name] = digest
            try:
                session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
            except Exception as exc:  # onnxruntime raises its own, undocumented exception types
                raise ModelError(f"session forecaster: {path} does not load in onnxruntime ({exc})") from None
            inputs = session.get_inputs()
            graph_width = inputs[0].shape[-1] if len(inputs) == 1 and inputs[0].shape else None
            if len(inputs) != 1 or inputs[0].name != "features" or graph_width != width:
                found = [(i.name, i.shape) for i in inputs]
                raise ModelError(
                    f"session forecaster: {path} takes {found}; expected one input 'features' of width "
                    f"{width} (metadata.json feature_names)"
                )
            self._sessions[name] = session
        self.probe()

    def probe(self) -> None:
        """Run each graph on a zero row.

        Raises:
            ModelError: When one fails or does not give one finite number.
        """
        row = np.zeros((1, len(session_feature_names())), dtype=np.float32)
        for name, session in self._sessions.items():
            try:
                output = np.asarray(session.run(None, {"features": row})[0], dtype=np.float64)
            except Exception as exc:  # onnxruntime raises its own, undocumented exception types
                raise ModelError(f"session forecaster: {name}.onnx fails on a zero row ({exc})") from None
            if output.size != 1 or not np.all(np.isfinite(output)):
                raise ModelError(
                    f"session forecaster: {name}.onnx gives {output.tolist()} on a zero row; "
                    "expected one finite number"
                )

    @property
    def name(self) -> str:
        """The model's name (``caltech_session_needs``)."""
        return str(self.metadata.get("name", self.model_dir.parent.name))

    @property
    def version(self) -> str:
        """The model's version (``v1``)."""
        return str(self.metadata.get("version", self.model_dir.name))

    def summary(self) -> dict[str, Any]:
        """The metadata for ``/v1/model`` (the holiday dates counted, not listed), strict-JSON safe."""
        metadata = dict(self.metadata)
        holidays = dict(metadata.get("holidays") or {})
        holidays["n_dates"] = len(holidays.pop("dates", []))
        metadata["holidays"] = holidays
        return {**{str(k): json_safe(v) for k, v in metadata.items()}, "model_dir": str(self.model_dir)}

    def history_rule(self) -> str:
        """The history an arrival needs, in words (error messages and docs)."""
        return (
            f"at least {WINDOW_DAYS} days of sessions ended before each arrival (from the first arrival "
            f"among them) and at least {self.min_window_sessions} of them arrived in the {WINDOW_DAYS} "
            "days before it"
        )

    def check_arrivals(
        self, arrivals_utc: Sequence[dt.datetime], timezone: str | None = None, prefix: str = "arrivals_utc"
    ) -> list[FieldProblem]:
        """What keeps the arrivals from being forecast, before any history is read.

        Returns:
            A problem per arrival that is naive or whose local date lies outside the years whose
            public holidays the forecaster knows.
        """
        zone = ZoneInfo(timezone or self.config.timezone)
        first, last = self.config.first_holiday_year, self.config.last_holiday_year
        problems = []
        for i, arrival in enumerate(arrivals_utc):
            path = f"{prefix}[{i}]"
            if arrival.tzinfo is None or arrival.utcoffset() is None:
                problems.append(FieldProblem(path, arrival.isoformat(), "a timezone-aware instant"))
                continue
            try:
                year = arrival.astimezone(zone).year
            except (OverflowError, ValueError):
                year = dt.MINYEAR if arrival.year < 5000 else dt.MAXYEAR
            if not first <= year <= last:
                problems.append(
                    FieldProblem(
                        path,
                        arrival.isoformat(),
                        f"an arrival in {first} to {last} (local time; the years whose public holidays "
                        "the forecaster knows)",
                    )
                )
        return problems

    def forecast(
        self, arrivals_utc: Sequence[dt.datetime], history: CheckedHistory, timezone: str | None = None
    ) -> SessionNeedsForecast:
        """Quantiles of the energy and dwell time of sessions arriving at the given instants.

        Args:
            arrivals_utc: Arrival instants, timezone-aware, in the holidays' years, at least one.
            history: The site's past sessions (:func:`check_session_history`); for each arrival only
                those that ended before it are read, so it may hold later sessions too.
            timezone: The site's IANA time zone; None: the forecaster's (``features.timezone``).

        Returns:
            The forecasts, one row per arrival in the given order.

        Raises:
            SessionForecastInputError: For no arrival, a naive one or one outside the holidays'
                years, or an arrival without the history :meth:`history_rule` states (field
                ``history``, naming the arrival).
        """
        zone_name = timezone or self.config.timezone
        problems = self.check_arrivals(arrivals_utc, zone_name)
        if not arrivals_utc:
            problems.append(FieldProblem("arrivals_utc", "[]", "at least one arrival"))
        if problems:
            raise SessionForecastInputError(problems)
        arrival_ns = np.asarray([instant_ns(a) for a in arrivals_utc], dtype=np.int64)
        log = SessionLog.of(history.arrival_ns, history.departure_ns, history.energy_kwh, zone_name)
        stats = window_statistics(arrival_ns, log, zone_name)
        short = (stats.history_days < WINDOW_DAYS) | (stats.n_sessions_28d < self.min_window_sessions)
        for i in np.flatnonzero(short).tolist():
            when = _utc_text(arrivals_utc[i])
            days = max(float(stats.history_days[i]), 0.0)
            problems.append(
                FieldProblem(
                    "history",
                    f"{days:.1f} days of ended sessions and {int(stats.n_sessions_28d[i])} in the last "
                    f"{WINDOW_DAYS} days before arrivals_utc[{i}] ({when})",
                    self.history_rule(),
                )
            )
        if problems:
            raise SessionForecastInputError(problems)
        features, levels = session_features(arrival_ns, stats, self.config, zone_name)
        rows = features.astype(np.float32)
        raw = {
            name: np.asarray(self._sessions[name].run(None, {"features": rows})[0], dtype=np.float64).reshape(
                -1
            )
            for name in OUTPUT_NAMES
        }
        blocks = []
        for t, target in enumerate(SESSION_TARGETS):
            outputs = np.sort(np.column_stack([raw[f"{q}_{target}"] for q in QUANTILE_NAMES]), axis=1)
            q10, q50, q90 = (outputs * levels[:, t : t + 1]).T
            k = self.interval_widening[t]
            widened = np.column_stack([q50 - k * (q50 - q10), q50, q50 + k * (q90 - q50)])
            blocks.append(np.maximum(widened, 0.0))
        return SessionNeedsForecast(
            arrival_utc=[_utc_of_ns(int(a)) for a in arrival_ns.tolist()],
            timezone=zone_name,
            quantiles=np.asarray(np.concatenate(blocks, axis=1), dtype=np.float64),
            n_sessions_28d=stats.n_sessions_28d,
        )


def _feature_config(where: str, raw: dict[str, Any]) -> SessionFeatureConfig:
    """The feature configuration of the metadata's ``features`` and ``holidays``.

    Raises:
        ModelError: For an unknown time zone, a non-boolean ``is_normalized``, or holidays
            missing, of another country or malformed.
    """
    features = _object(where, "features", raw.get("features"), "an object")
    timezone = features.get("timezone")
    try:
        zone_ok = isinstance(timezone, str) and ZoneInfo(timezone) is not None
    except (ZoneInfoNotFoundError, ValueError, OSError):
        zone_ok = False
    _expect(where, "features.timezone", timezone, zone_ok, "an IANA time zone name")
    is_normalized = features.get("is_normalized")
    _expect(where, "features.is_normalized", is_normalized, isinstance(is_normalized, bool), "true or false")
    holidays = _object(
        where,
        "holidays",
        raw.get("holidays"),
        "the public holidays the exporter writes (smac_rl_forecasting.onnx_export.add_holidays_to_metadata)",
    )
    for key in ("country", "subdiv"):
        wanted = features.get(f"holiday_{key}")
        _expect(where, f"holidays.{key}", holidays.get(key), holidays.get(key) == wanted, repr(wanted))
    first = _whole(where, "holidays.first_year", holidays.get("first_year"))
    last = _whole(where, "holidays.last_year", holidays.get("last_year"))
    _expect(where, "holidays.last_year", last, first <= last, f"at least first_year {first}")
    dates = holidays.get("dates")
    if not isinstance(dates, list) or not all(isinstance(d, str) and _DATE.fullmatch(d) for d in dates):
        raise ModelError(
            f"{where} field holidays.dates is {render_value(dates)}; "
            "expected a list of ISO dates (YYYY-MM-DD)"
        )
    try:
        parsed = frozenset(dt.date.fromisoformat(d) for d in dates)
    except ValueError as exc:
        raise ModelError(f"{where} field holidays.dates holds an invalid date ({exc})") from None
    return SessionFeatureConfig(
        timezone=str(timezone),
        holiday_dates=parsed,
        first_holiday_year=first,
        last_holiday_year=last,
        is_normalized=bool(is_normalized),
    )
