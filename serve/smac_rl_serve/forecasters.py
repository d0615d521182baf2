"""The day-ahead price forecaster in the service: ONNX graphs and numpy features, no lightgbm or pandas.

The forecasting package exports its price forecaster as ``q10.onnx``, ``q50.onnx``, ``q90.onnx``
and ``metadata.json`` (``models/forecasters/nl_day_ahead_prices/v1``). This module rebuilds the
graphs' input rows with numpy and the standard library only: :func:`price_features` gives, for the
same prices and origin, the columns of ``smac_rl_forecasting.features.build_features`` in the same
order with the same float values (``tests/serve/test_forecasters.py`` checks it on the bundled
prices), the calendar from :mod:`zoneinfo` and the public holidays from the metadata's
``holidays.dates`` (the exporter writes them from the ``holidays`` package).

Features of a forecast made at the origin ``o`` (hour start, UTC) for the hour ``t = o + k``
(``k = 0 .. H - 1``), with ``v`` the hourly prices before ``o`` and ``spd = 24``:

- ``lead_h`` = ``k``; ``hour_of_day_h``, ``weekday`` (Monday 0), ``month``, ``is_holiday``: the
  target hour in the forecaster's local time zone;
- ``same_slot_d1 .. _d7`` = ``v[t - (c + d - 1) spd]`` with ``c = k // spd + 1``;
- ``week_lag_1 .. _4`` = ``v[t - 7 spd j]``; ``profile_4w``: their mean;
- ``last`` = ``v[o - 1]``; ``mean_24h``, ``mean_168h``: means of the last day and week;
  ``std_168h``: standard deviation of the last week;
- normalised models: value features become ``(x - level) / scale`` with ``level = mean_168h`` and
  ``scale = max(std_168h, scale_floor)``, ``std_168h`` becomes ``std_168h / scale``, and ``level``,
  ``scale`` are appended.

The forecast is ``variable * scale + level`` of each graph, the three quantiles sorted per row
(the metadata's ``postprocess``).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import numpy.typing as npt

from smac_rl.core.arraytypes import FloatArray
from smac_rl.core.errors import FieldProblem, ProblemsError, render_value
from smac_rl_serve.metadata_checks import (
    ForecasterFolder,
    check_feature_names,
    check_outputs,
    check_timezone,
    expect,
    json_object,
    read_holidays,
    whole_number,
)
from smac_rl_serve.model import ModelError

N_SAME_SLOT_DAYS = 7
N_WEEK_LAGS = 4
HISTORY_DAYS = 7 * N_WEEK_LAGS
"""Days of hourly prices a forecast needs before its origin (the fourth week lag)."""

STEP_MIN = 60
"""Step of the price series [min]: hourly."""

STEPS_PER_DAY = 24 * 60 // STEP_MIN

HISTORY_H = HISTORY_DAYS * STEPS_PER_DAY
"""Hours of prices a forecast needs before its origin (672)."""

MAX_HORIZON_H = 48
"""Longest horizon the service forecasts [h] (the forecaster's ``horizon_steps`` may cap it lower)."""

QUANTILE_OUTPUTS = ("q10", "q50", "q90")
"""The graphs of a price forecaster, in quantile order."""

PRICE_FEATURE_NAMES: tuple[str, ...] = (
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
"""Feature names of a raw (not normalised) price forecaster; normalised ones add ``level, scale``."""


def price_feature_names(is_normalized: bool) -> list[str]:
    """Ordered feature names (the graphs' input columns)."""
    return [*PRICE_FEATURE_NAMES, *(("level", "scale") if is_normalized else ())]


class PriceForecastInputError(ProblemsError[FieldProblem]):
    """Prices or an origin the forecaster cannot use; every problem names its field."""


@dataclass(frozen=True)
class PriceFeatureConfig:
    """How the price forecaster's features are built (the metadata's ``features`` and ``holidays``).

    Attributes:
        timezone: IANA time zone of the calendar features.
        holiday_dates: Public holidays (local dates) of ``first_holiday_year .. last_holiday_year``.
        first_holiday_year: First year the holidays are known for.
        last_holiday_year: Last year the holidays are known for.
        is_normalized: Value features and forecasts scaled by the last week's level and spread.
        scale_floor_eur_per_kwh: Smallest spread used when normalising [EUR/kWh].
    """

    timezone: str
    holiday_dates: frozenset[dt.date]
    first_holiday_year: int
    last_holiday_year: int
    is_normalized: bool
    scale_floor_eur_per_kwh: float

    @property
    def feature_names(self) -> list[str]:
        """Ordered feature names."""
        return price_feature_names(self.is_normalized)


def _calendar(
    origin_utc: dt.datetime, lead_h: npt.NDArray[np.int64], config: PriceFeatureConfig
) -> FloatArray:
    """``hour_of_day_h, weekday, month, is_holiday`` of the target hours in local time, ``(H, 4)``."""
    zone = ZoneInfo(config.timezone)
    rows = []
    for k in lead_h:
        local = (origin_utc + dt.timedelta(minutes=STEP_MIN * int(k))).astimezone(zone)
        hour = local.hour + local.minute / 60.0
        rows.append((hour, local.weekday(), local.month, local.date() in config.holiday_dates))
    return np.asarray(rows, dtype=np.float64).reshape(-1, 4)


def price_features(
    history_eur_per_kwh: FloatArray, origin_utc: dt.datetime, horizon_h: int, config: PriceFeatureConfig
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Feature rows of the hours ``origin_utc .. origin_utc + horizon_h - 1`` from the prices before it.

    Args:
        history_eur_per_kwh: Hourly prices, the last one the hour before the origin, at least
            :data:`HISTORY_H` of them [EUR/kWh], ``(n,)``; every value is read as given (the whole
            array enters the running sums, as in the forecasting package).
        origin_utc: When the forecast is made, timezone-aware, on the hour.
        horizon_h: Hours forecast, 1 to 168 (the week lags reach no further).
        config: The feature configuration.

    Returns:
        ``(X, level, scale)``: features ``(H, F)`` in :attr:`PriceFeatureConfig.feature_names` order
        [float64; the graphs take them as float32], and the level and scale the forecasts are
        scaled back with [EUR/kWh] (0 and 1 when not normalised), ``(H,)`` each.

    Raises:
        PriceForecastInputError: For too little history, a horizon out of range or a naive origin.
    """
    values = np.asarray(history_eur_per_kwh, dtype=np.float64)
    problems = []
    if values.ndim != 1 or values.shape[0] < HISTORY_H:
        problems.append(
            FieldProblem(
                "prices",
                f"{values.shape[0] if values.ndim == 1 else values.shape} hours",
                f"at least {HISTORY_H} hourly prices before origin_utc ({HISTORY_DAYS} days)",
            )
        )
    if not 1 <= horizon_h <= 7 * STEPS_PER_DAY:
        problems.append(FieldProblem("horizon_h", str(horizon_h), f"1 to {7 * STEPS_PER_DAY}"))
    if origin_utc.tzinfo is None:
        problems.append(FieldProblem("origin_utc", origin_utc.isoformat(), "a timezone-aware instant"))
    if problems:
        raise PriceForecastInputError(problems)
    spd = STEPS_PER_DAY
    k = np.arange(horizon_h, dtype=np.int64)
    o = np.full(horizon_h, values.shape[0], dtype=np.int64)
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
        scale = np.maximum(std_168h, config.scale_floor_eur_per_kwh)
    else:
        level, scale = np.zeros(horizon_h), np.ones(horizon_h)
    calendar = _calendar(origin_utc.astimezone(dt.UTC), k, config)
    columns: list[FloatArray] = [k * STEP_MIN / 60.0]
    columns += [calendar[:, i] for i in range(4)]
    columns += [(x - level) / scale for x in value_like]
    columns.append(std_168h / scale if config.is_normalized else std_168h)
    if config.is_normalized:
        columns += [level, scale]
    features = np.column_stack([np.asarray(column, dtype=np.float64) for column in columns])
    return features, np.asarray(level, dtype=np.float64), np.asarray(scale, dtype=np.float64)


@dataclass(frozen=True)
class PriceForecast:
    """Quantile forecasts of consecutive hours.

    Attributes:
        origin_utc: When the forecast was made (UTC).
        start_utc: Start of each forecast hour (UTC), ``H`` of them.
        quantiles_eur_per_kwh: The 10, 50 and 90 % quantiles of each hour [EUR/kWh], ``(H, 3)``,
            ordered per row.
    """

    origin_utc: dt.datetime
    start_utc: list[dt.datetime]
    quantiles_eur_per_kwh: FloatArray


def check_price_history(
    origin_utc: dt.datetime,
    start_utc: Sequence[dt.datetime],
    price_eur_per_kwh: Sequence[float],
    prefix: str = "prices",
) -> FloatArray:
    """The hourly prices before an origin, checked: aware, on the hour, consecutive, finite, enough.

    Prices of hours that start at or after the origin are ignored (the forecast reads only hours
    before it).

    Args:
        origin_utc: When the forecast is made (timezone-aware, on the hour).
        start_utc: Start of each price's hour, ascending.
        price_eur_per_kwh: The prices [EUR/kWh], one per start.
        prefix: Path of the price list in error messages (``prices``).

    Returns:
        The prices before the origin, the last one the hour before it [EUR/kWh].

    Raises:
        PriceForecastInputError: Naming each entry at fault: a naive or off-the-hour instant, a gap,
            a repeated or unsorted hour, a non-finite price, history that stops before the origin
            or is shorter than :data:`HISTORY_H` hours.
    """
    problems: list[FieldProblem] = []
    step = dt.timedelta(minutes=STEP_MIN)
    origin: dt.datetime | None = None
    if origin_utc.tzinfo is None:
        problems.append(FieldProblem("origin_utc", origin_utc.isoformat(), "a timezone-aware instant"))
    else:
        origin = _utc(origin_utc)
        if origin is None or _shift(origin, -step) is None:
            problems.append(FieldProblem("origin_utc", origin_utc.isoformat(), _IN_RANGE))
            origin = None
        elif not _whole_hour(origin):
            problems.append(
                FieldProblem("origin_utc", origin_utc.isoformat(), "a whole hour (minutes, seconds 0)")
            )
            origin = None
    if len(start_utc) != len(price_eur_per_kwh):
        problems.append(
            FieldProblem(
                prefix, f"{len(start_utc)} starts, {len(price_eur_per_kwh)} prices", "one price per start"
            )
        )
        raise PriceForecastInputError(problems)
    previous: dt.datetime | None = None
    last_before: dt.datetime | None = None
    n_before = 0
    for i, (start, price) in enumerate(zip(start_utc, price_eur_per_kwh, strict=True)):
        path = f"{prefix}[{i}]"
        utc = None if start.tzinfo is None else _utc(start)
        if start.tzinfo is None:
            problems.append(FieldProblem(f"{path}.start_utc", start.isoformat(), "a timezone-aware instant"))
        elif utc is None:
            problems.append(FieldProblem(f"{path}.start_utc", start.isoformat(), _IN_RANGE))
        elif not _whole_hour(utc):
            problems.append(FieldProblem(f"{path}.start_utc", start.isoformat(), "the start of an hour"))
            utc = None
        elif previous is not None and utc - previous != step:
            what = "a gap" if utc - previous > step else "a repeated or unsorted hour"
            after = _shift(previous, step)
            problems.append(
                FieldProblem(
                    f"{path}.start_utc",
                    start.isoformat(),
                    f"{'the next hour' if after is None else after.isoformat()}, one hour after "
                    f"{prefix}[{i - 1}] (hourly prices without gaps; got {what})",
                )
            )
        previous = utc  # None after a refused instant: the next entry is not compared with it
        if not np.isfinite(price):
            problems.append(FieldProblem(f"{path}.price_eur_per_kwh", render_value(price), "a finite number"))
        if origin is not None and utc is not None and utc < origin:
            n_before, last_before = i + 1, utc
    if origin is not None and not problems:
        if last_before is None or last_before + step != origin:
            last = "(none)" if last_before is None else last_before.isoformat()
            problems.append(
                FieldProblem(
                    prefix,
                    f"the last hour before origin_utc starts {last}",
                    f"prices up to the origin: the last hour starting {(origin - step).isoformat()}",
                )
            )
        elif n_before < HISTORY_H:
            problems.append(
                FieldProblem(
                    prefix,
                    f"{n_before} hours before origin_utc",
                    f"at least {HISTORY_H} ({HISTORY_DAYS} days of hourly prices before the origin)",
                )
            )
    if problems:
        raise PriceForecastInputError(problems)
    return np.asarray(price_eur_per_kwh[:n_before], dtype=np.float64)


_IN_RANGE = "an instant whose UTC time and the hour before it lie in years 1 to 9999"


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


def _whole_hour(utc: dt.datetime) -> bool:
    """A whole hour (of UTC: time zones with 30-minute offsets make local whole hours half hours)."""
    return utc.minute == 0 and utc.second == 0 and utc.microsecond == 0


class OnnxPriceForecaster(ForecasterFolder):
    """The exported price forecaster: numpy features -> three ONNX graphs -> quantiles [EUR/kWh].

    Attributes:
        model_dir: The model folder, resolved.
        metadata_path: Its ``metadata.json``.
        metadata: The metadata as read.
        config: The feature configuration read from it.
        horizon_h: Longest horizon served [h]: the smaller of :data:`MAX_HORIZON_H` and the
            forecaster's ``horizon_steps``.
    """

    kind = "price forecaster"

    def __init__(self, model_dir: Path) -> None:
        """Load and check a forecaster folder.

        Checks, in order: ``metadata.json`` exists and is JSON with this service's
        ``schema_version``; ``field`` is ``prices`` with outputs ``q10, q50, q90``; the step is
        60 min, the time zone known, the holidays listed for the features' country; the feature
        names are this module's, in order, and ``inputs.features.shape`` has their number; each
        graph exists, has the metadata's sha256, loads, takes ``features`` of that width and maps a
        zero row to one finite number.

        Raises:
            ModelError: On the first failed check, naming the file, the field, the value found and
                the expectation.
        """
        super().__init__(model_dir, "metadata.json and q10/q50/q90.onnx")
        raw, where = self.metadata, self.where
        expect(where, "field", raw.get("field"), raw.get("field") == "prices", "'prices'")
        outputs = check_outputs(where, raw, QUANTILE_OUTPUTS)
        self.config = _feature_config(where, raw)
        names = self.config.feature_names
        check_feature_names(where, raw, names, "smac_rl_serve.forecasters")
        horizon_steps = whole_number(where, "horizon_steps", raw.get("horizon_steps"))
        expect(where, "horizon_steps", horizon_steps, horizon_steps >= 1, "at least 1 [h]")
        self.horizon_h = min(MAX_HORIZON_H, horizon_steps)
        self._load_graphs(outputs, QUANTILE_OUTPUTS, len(names))

    def summary(self) -> dict[str, Any]:
        """The metadata for ``/v1/model`` (the holiday dates counted, not listed), strict-JSON safe."""
        return {**super().summary(), "horizon_h": self.horizon_h}

    def check_origin(self, origin_utc: dt.datetime, horizon_h: int) -> list[FieldProblem]:
        """What keeps a forecast from ``origin_utc`` over ``horizon_h`` hours from being made.

        Returns:
            Problems with the horizon (beyond :attr:`horizon_h`) or the origin (target hours in
            years whose holidays the metadata does not list).
        """
        problems = []
        if not 1 <= horizon_h <= self.horizon_h:
            problems.append(FieldProblem("horizon_h", str(horizon_h), f"1 to {self.horizon_h}"))
            return problems
        zone = ZoneInfo(self.config.timezone)
        first, last = self.config.first_holiday_year, self.config.last_holiday_year
        try:
            years = {(origin_utc + dt.timedelta(hours=h)).astimezone(zone).year for h in (0, horizon_h - 1)}
        except OverflowError:
            years = {dt.MAXYEAR}
        if min(years) < first or max(years) > last:
            problems.append(
                FieldProblem(
                    "origin_utc",
                    origin_utc.isoformat(),
                    f"target hours in {first} to {last} (the years whose public holidays the "
                    "forecaster knows)",
                )
            )
        return problems

    def forecast(
        self, origin_utc: dt.datetime, history_eur_per_kwh: FloatArray, horizon_h: int
    ) -> PriceForecast:
        """Quantile forecasts of the ``horizon_h`` hours from ``origin_utc`` on.

        Args:
            origin_utc: When the forecast is made (timezone-aware, on the hour).
            history_eur_per_kwh: Hourly prices before the origin, the last one the hour before it,
                at least :data:`HISTORY_H` [EUR/kWh] (:func:`check_price_history` gives them).
            horizon_h: Hours forecast, 1 to :attr:`horizon_h`.

        Returns:
            The forecasts.

        Raises:
            PriceForecastInputError: For too little history, a horizon out of range or an origin
                outside the holidays' years.
        """
        if origin_utc.tzinfo is None:
            raise PriceForecastInputError(
                [FieldProblem("origin_utc", origin_utc.isoformat(), "a timezone-aware instant")]
            )
        problems = self.check_origin(origin_utc, horizon_h)
        if problems:
            raise PriceForecastInputError(problems)
        features, level, scale = price_features(history_eur_per_kwh, origin_utc, horizon_h, self.config)
        rows = features.astype(np.float32)
        columns = [
            np.asarray(self._sessions[name].run(None, {"features": rows})[0], dtype=np.float64).reshape(-1)
            for name in QUANTILE_OUTPUTS
        ]
        outputs = np.sort(np.column_stack(columns), axis=1)
        quantiles = np.asarray(outputs * scale[:, None] + level[:, None], dtype=np.float64)
        origin = origin_utc.astimezone(dt.UTC)
        starts = [origin + dt.timedelta(minutes=STEP_MIN * k) for k in range(horizon_h)]
        return PriceForecast(origin_utc=origin, start_utc=starts, quantiles_eur_per_kwh=quantiles)


def _feature_config(where: str, raw: dict[str, Any]) -> PriceFeatureConfig:
    """The feature configuration of the metadata's ``features`` and ``holidays``.

    Raises:
        ModelError: For another step, an unknown time zone, a bad scale floor, or holidays missing,
            of another country or malformed.
    """
    features = json_object(where, "features", raw.get("features"), "an object")
    step = features.get("step_min")
    expect(where, "features.step_min", step, step == STEP_MIN, f"{STEP_MIN} (hourly prices)")
    timezone = check_timezone(where, features)
    is_normalized = features.get("is_normalized")
    expect(where, "features.is_normalized", is_normalized, isinstance(is_normalized, bool), "true or false")
    floor = features.get("scale_floor")
    if not isinstance(floor, int | float) or isinstance(floor, bool) or not np.isfinite(floor) or floor <= 0:
        raise ModelError(
            f"{where} field features.scale_floor is {render_value(floor)}; "
            "expected a positive number [EUR/kWh]"
        )
    holidays = read_holidays(where, raw, features)
    return PriceFeatureConfig(
        timezone=timezone,
        holiday_dates=holidays.dates,
        first_holiday_year=holidays.first_year,
        last_holiday_year=holidays.last_year,
        is_normalized=bool(is_normalized),
        scale_floor_eur_per_kwh=float(floor),
    )
