"""The service's side of the slot forecasters' series features (prices, arrivals): request checks.

The features themselves, their names and their arithmetic are :mod:`smac_rl.features.series` (numpy
and :mod:`zoneinfo` only), the one implementation the forecasting package trains on
(``smac_rl_forecasting.features.build_features`` wraps it for pandas) and the service serves with.
What is the service's alone lives here: :class:`SeriesFeatureConfig` (the metadata's ``features``
with the public holidays its ``holidays.dates`` list; the exporter writes them from the
``holidays`` package), :func:`series_features` (the checks of a history given as an array, then the
shared rows with the origin at its end) and :func:`check_series_history` (a history given as JSON
instants and values). ``tests/serve/test_forecasters.py`` (bundled prices) and
``tests/serve/test_arrivals_forecaster.py`` (Caltech arrival counts, daylight-saving days and
holidays included) check that the rows equal ``build_features`` bit for bit.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from smac_rl.core.arraytypes import FloatArray
from smac_rl.core.errors import FieldProblem, ProblemsError, render_value
from smac_rl.features.series import HISTORY_DAYS, SeriesFeatureSpec
from smac_rl.features.series import series_features as shared_series_features
from smac_rl.features.session_windows import day_of_date, instant_ns


class SeriesForecastInputError(ProblemsError[FieldProblem]):
    """A series or an origin a slot forecaster cannot use; every problem names its field."""


@dataclass(frozen=True)
class SeriesFeatureConfig(SeriesFeatureSpec):
    """How a slot forecaster's features are built (the metadata's ``features`` and ``holidays``).

    Attributes:
        step_min: Step length of the series [min], a divisor of 60.
        timezone: IANA time zone of the calendar features.
        holiday_dates: Public holidays (local dates) of ``first_holiday_year .. last_holiday_year``.
        first_holiday_year: First year the holidays are known for.
        last_holiday_year: Last year the holidays are known for.
        is_normalized: Value features and forecasts scaled by the last week's level and spread.
        scale_floor: Smallest spread used when normalising [unit of the series: EUR/kWh for
            prices, arrivals per step for arrivals].
    """

    step_min: int
    timezone: str
    holiday_dates: frozenset[dt.date]
    first_holiday_year: int
    last_holiday_year: int
    is_normalized: bool
    scale_floor: float


def series_features(
    history: FloatArray,
    origin_utc: dt.datetime,
    horizon_steps: int,
    config: SeriesFeatureConfig,
    field: str = "history",
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Feature rows of the steps ``origin_utc .. + horizon_steps - 1`` from the values before it.

    The checks are the service's; the rows are :func:`smac_rl.features.series.series_features` of
    the history with the origin at its end.

    Args:
        history: The series, the last value the step before the origin, at least
            :attr:`SeriesFeatureConfig.history_steps` of them [unit of the series], ``(n,)``;
            every value is read as given (the whole array enters the running sums, as in the
            forecasting package).
        origin_utc: When the forecast is made, timezone-aware, on a step start.
        horizon_steps: Steps forecast, 1 to :attr:`SeriesFeatureConfig.max_horizon_steps`.
        config: The feature configuration.
        field: Name of the history in error messages.

    Returns:
        ``(X, level, scale)``: features ``(H, F)`` in :attr:`SeriesFeatureConfig.feature_names`
        order [float64; the graphs take them as float32], and the level and scale the forecasts are
        scaled back with [unit of the series] (0 and 1 when not normalised), ``(H,)`` each.

    Raises:
        SeriesForecastInputError: For too little history, a horizon out of range or a naive origin.
    """
    values = np.asarray(history, dtype=np.float64)
    problems = []
    if values.ndim != 1 or values.shape[0] < config.history_steps:
        problems.append(
            FieldProblem(
                field,
                f"{values.shape[0] if values.ndim == 1 else values.shape} steps",
                f"at least {config.history_steps} steps of {config.step_min} min before origin_utc "
                f"({HISTORY_DAYS} days)",
            )
        )
    if not 1 <= horizon_steps <= config.max_horizon_steps:
        problems.append(FieldProblem("horizon_steps", str(horizon_steps), f"1 to {config.max_horizon_steps}"))
    if origin_utc.tzinfo is None:
        problems.append(FieldProblem("origin_utc", origin_utc.isoformat(), "a timezone-aware instant"))
    if problems:
        raise SeriesForecastInputError(problems)
    n = values.shape[0]
    start_ns = instant_ns(origin_utc) - n * config.step_min * 60 * 10**9
    origin_pos = np.full(horizon_steps, n, dtype=np.int64)
    lead_steps = np.arange(horizon_steps, dtype=np.int64)
    holiday_days = [day_of_date(date) for date in config.holiday_dates]
    return shared_series_features(values, start_ns, origin_pos, lead_steps, config, holiday_days)


@dataclass(frozen=True)
class SeriesWording:
    """How a history's entries are named in error messages.

    Attributes:
        prefix: Path of the list in the request body (``prices``, ``history``).
        value_field: Name of each entry's value (``price_eur_per_kwh``, ``n_arrivals``).
        plural: The values in words (``prices``, ``arrival counts``).
        singular: One value in words (``price``, ``count``).
        step_min: Step length of the series [min], a divisor of 60.
    """

    prefix: str
    value_field: str
    plural: str
    singular: str
    step_min: int

    @property
    def unit(self) -> str:
        """One step in words: ``hour`` for hourly series, else ``step``."""
        return "hour" if self.step_min == 60 else "step"

    @property
    def series(self) -> str:
        """The series in words (``hourly prices``, ``arrival counts every 15 min``)."""
        return f"hourly {self.plural}" if self.step_min == 60 else f"{self.plural} every {self.step_min} min"

    @property
    def step(self) -> str:
        """The step length in words (``one hour``, ``15 min``)."""
        return "one hour" if self.step_min == 60 else f"{self.step_min} min"

    @property
    def minutes(self) -> str:
        """The minutes a step may start at (``0, 15, 30 or 45``)."""
        values = [str(m) for m in range(0, 60, self.step_min)]
        return values[0] if len(values) == 1 else f"{', '.join(values[:-1])} or {values[-1]}"

    @property
    def origin_expectation(self) -> str:
        """What ``origin_utc`` must be."""
        if self.step_min == 60:
            return "a whole hour (minutes, seconds 0)"
        return f"the start of a {self.step_min}-minute step (minutes {self.minutes} in UTC, seconds 0)"

    @property
    def start_expectation(self) -> str:
        """What each entry's ``start_utc`` must be."""
        if self.step_min == 60:
            return "the start of an hour"
        return f"the start of a {self.step_min}-minute step (minutes {self.minutes} in UTC, seconds 0)"


def check_series_history(
    origin_utc: dt.datetime,
    start_utc: Sequence[dt.datetime],
    values: Sequence[float],
    history_steps: int,
    wording: SeriesWording,
) -> FloatArray:
    """The values of the steps before an origin, checked: aware, on step starts, consecutive, finite, enough.

    Values of steps that start at or after the origin are ignored (the forecast reads only steps
    before it).

    Args:
        origin_utc: When the forecast is made (timezone-aware, on a step start).
        start_utc: Start of each value's step, ascending.
        values: The values, one per start [unit of the series].
        history_steps: Fewest steps needed before the origin.
        wording: Names of the list, its values and its step in messages.

    Returns:
        The values before the origin, the last one the step before it.

    Raises:
        SeriesForecastInputError: Naming each entry at fault: a naive or off-step instant, a gap,
            a repeated or unsorted step, a non-finite value, history that stops before the origin
            or is shorter than ``history_steps``.
    """
    problems: list[FieldProblem] = []
    prefix, unit = wording.prefix, wording.unit
    step = dt.timedelta(minutes=wording.step_min)
    in_range = f"an instant whose UTC time and the {unit} before it lie in years 1 to 9999"
    origin: dt.datetime | None = None
    if origin_utc.tzinfo is None:
        problems.append(FieldProblem("origin_utc", origin_utc.isoformat(), "a timezone-aware instant"))
    else:
        origin = _utc(origin_utc)
        if origin is None or _shift(origin, -step) is None:
            problems.append(FieldProblem("origin_utc", origin_utc.isoformat(), in_range))
            origin = None
        elif not on_step(origin, wording.step_min):
            problems.append(FieldProblem("origin_utc", origin_utc.isoformat(), wording.origin_expectation))
            origin = None
    if len(start_utc) != len(values):
        problems.append(
            FieldProblem(
                prefix,
                f"{len(start_utc)} starts, {len(values)} {wording.plural}",
                f"one {wording.singular} per start",
            )
        )
        raise SeriesForecastInputError(problems)
    previous: dt.datetime | None = None
    last_before: dt.datetime | None = None
    n_before = 0
    for i, (start, value) in enumerate(zip(start_utc, values, strict=True)):
        path = f"{prefix}[{i}]"
        utc = None if start.tzinfo is None else _utc(start)
        if start.tzinfo is None:
            problems.append(FieldProblem(f"{path}.start_utc", start.isoformat(), "a timezone-aware instant"))
        elif utc is None:
            problems.append(FieldProblem(f"{path}.start_utc", start.isoformat(), in_range))
        elif not on_step(utc, wording.step_min):
            problems.append(FieldProblem(f"{path}.start_utc", start.isoformat(), wording.start_expectation))
            utc = None
        elif previous is not None and utc - previous != step:
            what = "a gap" if utc - previous > step else f"a repeated or unsorted {unit}"
            after = _shift(previous, step)
            problems.append(
                FieldProblem(
                    f"{path}.start_utc",
                    start.isoformat(),
                    f"{f'the next {unit}' if after is None else after.isoformat()}, {wording.step} after "
                    f"{prefix}[{i - 1}] ({wording.series} without gaps; got {what})",
                )
            )
        previous = utc  # None after a refused instant: the next entry is not compared with it
        if not np.isfinite(value):
            problems.append(
                FieldProblem(f"{path}.{wording.value_field}", render_value(value), "a finite number")
            )
        if origin is not None and utc is not None and utc < origin:
            n_before, last_before = i + 1, utc
    if origin is not None and not problems:
        if last_before is None or last_before + step != origin:
            last = "(none)" if last_before is None else last_before.isoformat()
            problems.append(
                FieldProblem(
                    prefix,
                    f"the last {unit} before origin_utc starts {last}",
                    f"{wording.plural} up to the origin: the last {unit} starting "
                    f"{(origin - step).isoformat()}",
                )
            )
        elif n_before < history_steps:
            problems.append(
                FieldProblem(
                    prefix,
                    f"{n_before} {unit}s before origin_utc",
                    f"at least {history_steps} ({HISTORY_DAYS} days of {wording.series} before the origin)",
                )
            )
    if problems:
        raise SeriesForecastInputError(problems)
    return np.asarray(values[:n_before], dtype=np.float64)


def on_step(utc: dt.datetime, step_min: int) -> bool:
    """Whether a UTC instant starts a step of ``step_min`` minutes (a divisor of 60).

    Checked in UTC: time zones with 30- or 45-minute offsets make local step starts fall elsewhere.
    """
    return utc.minute % step_min == 0 and utc.second == 0 and utc.microsecond == 0


def _utc(instant: dt.datetime) -> dt.datetime | None:
    """An aware instant in UTC, or None when that falls outside years 1 to 9999."""
    try:
        return instant.astimezone(dt.UTC)
    except (OverflowError, ValueError):
        return None


def _shift(instant: dt.datetime, delta: dt.timedelta) -> dt.datetime | None:
    """``instant + delta``, or None when that falls outside years 1 to 9999."""
    try:
        return instant + delta
    except OverflowError:
        return None
