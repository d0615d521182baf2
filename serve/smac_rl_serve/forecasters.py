"""The slot forecasters in the service (day-ahead prices, arrivals): ONNX graphs and numpy features.

The forecasting package exports its slot forecasters (``smac_rl_forecasting.model.SlotForecaster``)
as one ONNX graph per output and ``metadata.json``:

- the day-ahead price forecaster, hourly quantiles ``q10.onnx``, ``q50.onnx``, ``q90.onnx``
  (``models/forecasters/nl_day_ahead_prices/v1``), served by ``POST /v1/forecasts/prices``;
- the arrivals forecaster, the Poisson mean of the arrivals per 15-minute step, ``mean.onnx``
  (``models/forecasters/caltech_arrivals/v1``), served by ``POST /v1/forecasts/arrivals``.

Both read the same features of their series, built by the one implementation the forecasting
package trains with (:mod:`smac_rl.features.series`, numpy and the standard library only; no
lightgbm, pandas or holidays) after the service's checks (:mod:`smac_rl_serve.series_features`), and
both follow the same ``postprocess``: ``variable * scale + level`` of each graph, the outputs
sorted per row (:data:`~smac_rl.features.series.SLOT_POSTPROCESS`). The folder checks are
those of :mod:`smac_rl_serve.metadata_checks` plus each forecaster's own fields
(:class:`OnnxSlotForecaster`).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar
from zoneinfo import ZoneInfo

import numpy as np

from smac_rl.core.arraytypes import FloatArray
from smac_rl.core.errors import FieldProblem, render_value
from smac_rl.features.series import HISTORY_DAYS, SLOT_POSTPROCESS
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
from smac_rl_serve.series_features import (
    SeriesFeatureConfig,
    SeriesForecastInputError,
    SeriesWording,
    check_series_history,
    series_features,
)

PriceForecastInputError = SeriesForecastInputError
"""Prices or an origin the price forecaster cannot use (the slot forecasters' one error type)."""

ArrivalsForecastInputError = SeriesForecastInputError
"""Arrival counts or an origin the arrivals forecaster cannot use (the same type)."""

MAX_HORIZON_H = 48
"""Longest horizon the service forecasts [h] (a forecaster's ``horizon_steps`` may cap it lower)."""

PRICE_STEP_MIN = 60
"""Step of the price series [min]: hourly."""

HISTORY_H = HISTORY_DAYS * 24 * 60 // PRICE_STEP_MIN
"""Hours of prices a price forecast needs before its origin (672)."""

QUANTILE_OUTPUTS = ("q10", "q50", "q90")
"""The graphs of a price forecaster, in quantile order."""

MEAN_OUTPUTS = ("mean",)
"""The graph of an arrivals forecaster: the Poisson mean."""

PRICE_WORDING = SeriesWording(
    prefix="prices",
    value_field="price_eur_per_kwh",
    plural="prices",
    singular="price",
    step_min=PRICE_STEP_MIN,
)
"""How ``POST /v1/forecasts/prices`` names its price list in errors."""


def price_features(
    history_eur_per_kwh: FloatArray, origin_utc: dt.datetime, horizon_h: int, config: SeriesFeatureConfig
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Feature rows of the hours from ``origin_utc`` on (:func:`series_features` of hourly prices).

    Args:
        history_eur_per_kwh: Hourly prices, the last one the hour before the origin, at least
            :data:`HISTORY_H` of them [EUR/kWh].
        origin_utc: When the forecast is made, timezone-aware, on the hour.
        horizon_h: Hours forecast, 1 to 168.
        config: The feature configuration (step 60 min).

    Returns:
        ``(X, level, scale)`` as :func:`series_features` [EUR/kWh].

    Raises:
        SeriesForecastInputError: For too little history, a horizon out of range or a naive origin.
    """
    return series_features(history_eur_per_kwh, origin_utc, horizon_h, config, field="prices")


def check_price_history(
    origin_utc: dt.datetime,
    start_utc: Sequence[dt.datetime],
    price_eur_per_kwh: Sequence[float],
) -> FloatArray:
    """The hourly prices before an origin, checked (:func:`check_series_history` on hours).

    Args:
        origin_utc: When the forecast is made (timezone-aware, on the hour).
        start_utc: Start of each price's hour, ascending.
        price_eur_per_kwh: The prices [EUR/kWh], one per start.

    Returns:
        The prices before the origin, the last one the hour before it [EUR/kWh].

    Raises:
        SeriesForecastInputError: Naming each entry of ``prices`` at fault.
    """
    return check_series_history(origin_utc, start_utc, price_eur_per_kwh, HISTORY_H, PRICE_WORDING)


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


@dataclass(frozen=True)
class ArrivalsForecast:
    """Expected arrivals of consecutive steps.

    Attributes:
        origin_utc: When the forecast was made (UTC).
        step_min: Step length [min].
        start_utc: Start of each forecast step (UTC), ``H`` of them.
        n_arrivals_mean: The Poisson mean of the arrivals in each step (sessions starting in it),
            ``(H,)``.
    """

    origin_utc: dt.datetime
    step_min: int
    start_utc: list[dt.datetime]
    n_arrivals_mean: FloatArray


class OnnxSlotForecaster(ForecasterFolder):
    """An exported slot forecaster: numpy series features -> one ONNX graph per output.

    Subclasses name the series (:attr:`field_name`), the outputs, the steps they accept and the
    series' unit; :meth:`__init__` checks the folder.

    Attributes:
        config: The feature configuration read from the metadata.
        horizon_h: Longest horizon served [h]: the smaller of :data:`MAX_HORIZON_H` and the
            forecaster's ``horizon_steps`` (whole hours).
    """

    field_name: ClassVar[str] = ""
    output_names: ClassVar[tuple[str, ...]] = ()
    steps_min: ClassVar[tuple[int, ...]] = (PRICE_STEP_MIN,)
    step_expectation: ClassVar[str] = ""
    series_unit: ClassVar[str] = ""

    def __init__(self, model_dir: Path) -> None:
        """Load and check a forecaster folder.

        Checks, in order: ``metadata.json`` exists and is JSON with this service's
        ``schema_version``; ``field`` is the forecaster's with its outputs; the step is one this
        forecaster takes, the time zone known, ``is_normalized`` a flag, ``scale_floor`` above 0
        and the holidays listed for the features' country; the feature names are those
        :mod:`smac_rl.features.series` builds, in order, and ``inputs.features.shape`` has
        their number; ``horizon_steps`` covers at least one hour; ``postprocess`` states the rule
        this service applies, word for word; each graph exists, has the metadata's sha256, loads,
        takes ``features`` of that width and maps a zero row to one finite number.

        Raises:
            ModelError: On the first failed check, naming the file, the field, the value found and
                the expectation.
        """
        names = self.output_names
        super().__init__(model_dir, f"metadata.json and {'/'.join(names)}.onnx")
        raw, where = self.metadata, self.where
        expect(where, "field", raw.get("field"), raw.get("field") == self.field_name, repr(self.field_name))
        outputs = check_outputs(where, raw, names)
        self._check_fields(raw)
        self.config = self._feature_config(raw)
        width = len(self.config.feature_names)
        check_feature_names(where, raw, self.config.feature_names, "smac_rl.features.series")
        horizon_steps = whole_number(where, "horizon_steps", raw.get("horizon_steps"))
        minimum = -(-60 // self.config.step_min)
        expect(
            where,
            "horizon_steps",
            horizon_steps,
            horizon_steps >= minimum,
            f"at least {minimum} (one hour of {self.config.step_min}-minute steps)",
        )
        self.horizon_h = min(MAX_HORIZON_H, horizon_steps * self.config.step_min // 60)
        postprocess = raw.get("postprocess")
        expect(
            where,
            "postprocess",
            postprocess,
            postprocess == SLOT_POSTPROCESS,
            f"{SLOT_POSTPROCESS!r} (the rule this service applies)",
        )
        self._load_graphs(outputs, names, width)

    def _check_fields(self, raw: dict[str, Any]) -> None:
        """Fields only this forecaster checks (none here)."""

    def _feature_config(self, raw: dict[str, Any]) -> SeriesFeatureConfig:
        """The feature configuration of the metadata's ``features`` and ``holidays``.

        Raises:
            ModelError: For a step this forecaster does not take, an unknown time zone, a bad
                scale floor, or holidays missing, of another country or malformed.
        """
        where = self.where
        features = json_object(where, "features", raw.get("features"), "an object")
        step = features.get("step_min")
        if not isinstance(step, int) or isinstance(step, bool) or step not in self.steps_min:
            raise ModelError(
                f"{where} field features.step_min is {render_value(step)}; expected {self.step_expectation}"
            )
        timezone = check_timezone(where, features)
        is_normalized = features.get("is_normalized")
        expect(
            where, "features.is_normalized", is_normalized, isinstance(is_normalized, bool), "true or false"
        )
        floor = features.get("scale_floor")
        if (
            not isinstance(floor, int | float)
            or isinstance(floor, bool)
            or not np.isfinite(floor)
            or floor <= 0
        ):
            raise ModelError(
                f"{where} field features.scale_floor is {render_value(floor)}; "
                f"expected a positive number [{self.series_unit}]"
            )
        holidays = read_holidays(where, raw, features)
        return SeriesFeatureConfig(
            step_min=step,
            timezone=timezone,
            holiday_dates=holidays.dates,
            first_holiday_year=holidays.first_year,
            last_holiday_year=holidays.last_year,
            is_normalized=bool(is_normalized),
            scale_floor=float(floor),
        )

    def summary(self) -> dict[str, Any]:
        """The metadata for ``/v1/model`` (the holiday dates counted, not listed), strict-JSON safe."""
        return {**super().summary(), "horizon_h": self.horizon_h}

    def check_origin(self, origin_utc: dt.datetime, horizon_h: int) -> list[FieldProblem]:
        """What keeps a forecast from ``origin_utc`` over ``horizon_h`` hours from being made.

        Returns:
            Problems with the horizon (beyond :attr:`horizon_h`) or the origin (target steps in
            years whose holidays the metadata does not list).
        """
        problems = []
        if not 1 <= horizon_h <= self.horizon_h:
            problems.append(FieldProblem("horizon_h", str(horizon_h), f"1 to {self.horizon_h}"))
            return problems
        zone = ZoneInfo(self.config.timezone)
        first, last = self.config.first_holiday_year, self.config.last_holiday_year
        last_lead = dt.timedelta(minutes=60 * horizon_h - self.config.step_min)
        try:
            years = {(origin_utc + lead).astimezone(zone).year for lead in (dt.timedelta(0), last_lead)}
        except OverflowError:
            years = {dt.MAXYEAR}
        if min(years) < first or max(years) > last:
            unit = "hours" if self.config.step_min == 60 else "steps"
            problems.append(
                FieldProblem(
                    "origin_utc",
                    origin_utc.isoformat(),
                    f"target {unit} in {first} to {last} (the years whose public holidays the "
                    "forecaster knows)",
                )
            )
        return problems

    def run(
        self, origin_utc: dt.datetime, history: FloatArray, horizon_h: int, field: str
    ) -> tuple[dt.datetime, list[dt.datetime], FloatArray]:
        """The forecaster's outputs for the steps of ``horizon_h`` hours from ``origin_utc`` on.

        Args:
            origin_utc: When the forecast is made (timezone-aware, on a step start).
            history: The series before the origin, the last value the step before it, at least
                28 days of it [unit of the series].
            horizon_h: Hours forecast, 1 to :attr:`horizon_h`.
            field: Name of the history in error messages.

        Returns:
            The origin (UTC), the start of each step and the outputs ``(H, outputs)`` after the
            ``postprocess`` (``variable * scale + level``, sorted per row) [unit of the series].

        Raises:
            SeriesForecastInputError: For too little history, a horizon out of range or an origin
                outside the holidays' years.
        """
        if origin_utc.tzinfo is None:
            raise SeriesForecastInputError(
                [FieldProblem("origin_utc", origin_utc.isoformat(), "a timezone-aware instant")]
            )
        problems = self.check_origin(origin_utc, horizon_h)
        if problems:
            raise SeriesForecastInputError(problems)
        step_min = self.config.step_min
        n_steps = horizon_h * 60 // step_min
        features, level, scale = series_features(history, origin_utc, n_steps, self.config, field=field)
        rows = features.astype(np.float32)
        columns = [
            np.asarray(self._sessions[name].run(None, {"features": rows})[0], dtype=np.float64).reshape(-1)
            for name in self.output_names
        ]
        outputs = np.sort(np.column_stack(columns), axis=1)
        values = np.asarray(outputs * scale[:, None] + level[:, None], dtype=np.float64)
        origin = origin_utc.astimezone(dt.UTC)
        starts = [origin + dt.timedelta(minutes=step_min * k) for k in range(n_steps)]
        return origin, starts, values


class OnnxPriceForecaster(OnnxSlotForecaster):
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
    field_name = "prices"
    output_names = QUANTILE_OUTPUTS
    steps_min = (PRICE_STEP_MIN,)
    step_expectation = f"{PRICE_STEP_MIN} (hourly prices)"
    series_unit = "EUR/kWh"

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
            SeriesForecastInputError: For too little history, a horizon out of range or an origin
                outside the holidays' years.
        """
        origin, starts, quantiles = self.run(origin_utc, history_eur_per_kwh, horizon_h, "prices")
        return PriceForecast(origin_utc=origin, start_utc=starts, quantiles_eur_per_kwh=quantiles)


ARRIVAL_STEPS_MIN = (5, 10, 15, 20, 30, 60)
"""Step lengths an arrivals forecaster may have [min] (divisors of 60; ``caltech_arrivals``: 15)."""


class OnnxArrivalsForecaster(OnnxSlotForecaster):
    """The exported arrivals forecaster: numpy features -> ``mean.onnx`` -> expected arrivals per step.

    The graph is a LightGBM booster with the Poisson objective: its output is the mean of the
    number of sessions arriving in each step (the metadata's ``booster.objective`` is checked).

    Attributes:
        model_dir: The model folder, resolved.
        metadata_path: Its ``metadata.json``.
        metadata: The metadata as read.
        config: The feature configuration read from it (``caltech_arrivals``: 15-minute steps,
            America/Los_Angeles, US/California holidays, not normalised).
        horizon_h: Longest horizon served [h].
    """

    kind = "arrivals forecaster"
    field_name = "arrivals"
    output_names = MEAN_OUTPUTS
    steps_min = ARRIVAL_STEPS_MIN
    step_expectation = f"one of {list(ARRIVAL_STEPS_MIN)} (minutes dividing an hour)"
    series_unit = "arrivals per step"

    def _check_fields(self, raw: dict[str, Any]) -> None:
        """``booster.objective`` is ``poisson``: the graph's output is a mean count."""
        booster = json_object(self.where, "booster", raw.get("booster"), "an object with objective")
        objective = booster.get("objective")
        expect(
            self.where,
            "booster.objective",
            objective,
            objective == "poisson",
            "'poisson' (the graph gives the mean count per step)",
        )

    @property
    def wording(self) -> SeriesWording:
        """How ``POST /v1/forecasts/arrivals`` names its history in errors."""
        return SeriesWording(
            prefix="history",
            value_field="n_arrivals",
            plural="arrival counts",
            singular="count",
            step_min=self.config.step_min,
        )

    def check_history(
        self, origin_utc: dt.datetime, start_utc: Sequence[dt.datetime], n_arrivals: Sequence[float]
    ) -> FloatArray:
        """The arrival counts before an origin, checked (:func:`check_series_history` on this step).

        Args:
            origin_utc: When the forecast is made (timezone-aware, on a step start).
            start_utc: Start of each count's step, ascending.
            n_arrivals: Sessions that arrived in each step, one per start.

        Returns:
            The counts before the origin, the last one the step before it.

        Raises:
            SeriesForecastInputError: Naming each entry of ``history`` at fault.
        """
        return check_series_history(
            origin_utc, start_utc, n_arrivals, self.config.history_steps, self.wording
        )

    def forecast(self, origin_utc: dt.datetime, history: FloatArray, horizon_h: int) -> ArrivalsForecast:
        """Expected arrivals of the steps of ``horizon_h`` hours from ``origin_utc`` on.

        Args:
            origin_utc: When the forecast is made (timezone-aware, on a step start).
            history: Arrivals per step before the origin, the last one the step before it, at
                least 28 days of steps (:meth:`check_history` gives them).
            horizon_h: Hours forecast, 1 to :attr:`horizon_h`.

        Returns:
            The forecasts, ``horizon_h * 60 / step_min`` steps.

        Raises:
            SeriesForecastInputError: For too little history, a horizon out of range or an origin
                outside the holidays' years.
        """
        origin, starts, means = self.run(origin_utc, history, horizon_h, "history")
        return ArrivalsForecast(
            origin_utc=origin, step_min=self.config.step_min, start_utc=starts, n_arrivals_mean=means[:, 0]
        )
