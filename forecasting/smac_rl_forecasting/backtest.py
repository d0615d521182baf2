"""Honest backtests of the forecasters on the splits of DESIGN.md section 4, with baselines.

**Rule of the rolling origin.** One forecast per local day ``D``: made at 12:00 local time on day
``D - 1`` (around the day-ahead auction's gate closure), reading only steps that start before that
instant, for every step of local day ``D`` (leads 12 to 36 h). The same rule serves prices
(Europe/Amsterdam, hourly) and arrivals (America/Los_Angeles, 15-minute steps).

**Baselines, in the same run and on the same targets.** ``seasonal_naive``: the value one week
before the target. ``profile_4w``: the weekday-by-time-of-day profile of the last 4 weeks before
the origin, i.e. the mean of the values 1, 2, 3 and 4 weeks before the target (all before the
origin). Baselines give a point forecast; their pinball losses use it for every quantile and they
have no interval.

**Prices** (:func:`price_backtest`): each candidate configuration is fitted on targets before
2023-01-01 00:00 UTC and scored on the days of 2023 (selection, by mean pinball loss); the selected
one is refitted on targets before 2024-01-01 and scored once on the days of 2024 (report). Stress
weeks are scored apart: 2022-08-29 (a model refitted on targets before that Monday), 2023-05-29
(the selection model) and 2024-08-26 (the report model).

**Arrivals** (:func:`arrivals_backtest`): fitted on 2019-05..08, selected on 2019-09..12, reported
on 2021-05..08, with 2020-02..05 (COVID collapse) reported apart as a regime-shift stress. The
periods are separate blocks, so a block's first 29 days only serve as history: its scored days
start on day 30.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd

from smac_rl.data.periods import CALTECH_PERIODS
from smac_rl_forecasting.features import HISTORY_DAYS
from smac_rl_forecasting.metrics import (
    interval_coverage_frac,
    mae,
    pinball_loss,
    poisson_deviance,
    rmse,
    score,
)
from smac_rl_forecasting.model import BoosterConfig, SlotForecaster
from smac_rl_forecasting.prices import PRICE_COLUMNS, PriceForecaster
from smac_rl_forecasting.series import (
    CALTECH_TIMEZONE,
    PRICE_TIMEZONE,
    arrival_counts,
    bundled_prices,
    caltech_period_bounds,
)

ORIGIN_HOUR_LOCAL = 12
"""Local hour of the daily forecast origin (the day before the targets)."""

BASELINES = ("seasonal_naive", "profile_4w")
"""Baselines scored beside every forecaster."""

PRICE_FIT_END_UTC = pd.Timestamp("2023-01-01", tz="UTC")
PRICE_SELECT_END_UTC = pd.Timestamp("2024-01-01", tz="UTC")
PRICE_SELECT_DAYS = (dt.date(2023, 1, 1), dt.date(2023, 12, 31))
PRICE_REPORT_DAYS = (dt.date(2024, 1, 1), dt.date(2024, 12, 31))
PRICE_STRESS_WEEKS = (dt.date(2022, 8, 29), dt.date(2023, 5, 29), dt.date(2024, 8, 26))
"""First days (Mondays) of the price stress weeks."""

ARRIVALS_FIT, ARRIVALS_SELECT, ARRIVALS_STRESS, ARRIVALS_REPORT = CALTECH_PERIODS
"""Caltech periods: fit, select, regime-shift stress (2020), report (2021)."""

Progress = Callable[[str], None]
"""Receives one line per stage of a backtest."""


def _quiet(_line: str) -> None:
    """A progress callback that says nothing."""


@dataclass(frozen=True)
class Evaluation:
    """Scores of one forecaster and the baselines over one range of days.

    Attributes:
        label: What was scored (``select_2023``, ``report_2024``, ``stress_2022-08-29``...).
        first_day: First local day scored.
        last_day: Last local day scored.
        forecasts: One row per target: ``origin_utc``, ``target_utc``, ``lead_h``, the forecaster's
            outputs, ``actual`` and the baselines.
        scores: One row per method (the forecaster, then :data:`BASELINES`), one column per metric.
    """

    label: str
    first_day: dt.date
    last_day: dt.date
    forecasts: pd.DataFrame
    scores: pd.DataFrame


def daily_origins(first_day: dt.date, last_day: dt.date, timezone: str) -> list[pd.Timestamp]:
    """UTC origins of the days ``first_day .. last_day``: 12:00 local on each day before."""
    days = pd.date_range(first_day - dt.timedelta(days=1), last_day - dt.timedelta(days=1), freq="D")
    return [
        (day + pd.Timedelta(hours=ORIGIN_HOUR_LOCAL)).tz_localize(timezone).tz_convert("UTC") for day in days
    ]


def rolling_day_ahead(
    core: SlotForecaster, series: pd.Series, first_day: dt.date, last_day: dt.date, timezone: str
) -> pd.DataFrame:
    """Day-ahead forecasts of every step of ``first_day .. last_day`` with truth and baselines.

    Args:
        core: A fitted forecaster whose horizon reaches the end of the next local day (48 h).
        series: The series, covering 28 days before the first origin and every target.
        first_day: First local day forecast.
        last_day: Last local day forecast.
        timezone: Local time zone of the days and origins.

    Returns:
        The forecasts' rows for the targets of the next local day, with ``actual``,
        ``seasonal_naive`` and ``profile_4w``.
    """
    origins = daily_origins(first_day, last_day, timezone)
    frame = core.predict_many(series, origins)
    target_day = frame["target_utc"].dt.tz_convert(timezone).dt.date
    origin_day = frame["origin_utc"].dt.tz_convert(timezone).dt.date
    frame = pd.DataFrame(frame[target_day == origin_day + dt.timedelta(days=1)].reset_index(drop=True))
    targets = pd.DatetimeIndex(frame["target_utc"])
    week = pd.Timedelta(days=7)
    frame["actual"] = series.reindex(targets).to_numpy()
    lags = [series.reindex(targets - week * j).to_numpy() for j in range(1, 5)]
    frame["seasonal_naive"] = lags[0]
    frame["profile_4w"] = np.mean(lags, axis=0)
    if frame[["actual", *BASELINES]].isna().any().any():
        raise ValueError(
            f"series: got missing values for targets {first_day} to {last_day}; expected them all"
        )
    return frame


def score_prices(forecasts: pd.DataFrame) -> pd.DataFrame:
    """Price scores of the forecaster (``lightgbm``) and the baselines; ratios to the baselines' MAE."""
    y = forecasts["actual"].to_numpy()
    rows: dict[str, dict[str, float]] = {}
    methods = {"lightgbm": [forecasts[c].to_numpy() for c in PRICE_COLUMNS]}
    methods |= {name: [forecasts[name].to_numpy()] * 3 for name in BASELINES}
    for name, (q10, q50, q90) in methods.items():
        rows[name] = {
            "mae_eur_per_kwh": mae(y, q50),
            "rmse_eur_per_kwh": rmse(y, q50),
            "pinball_q10_eur_per_kwh": pinball_loss(y, q10, 0.1),
            "pinball_q50_eur_per_kwh": pinball_loss(y, q50, 0.5),
            "pinball_q90_eur_per_kwh": pinball_loss(y, q90, 0.9),
            "coverage_10_90_frac": interval_coverage_frac(y, q10, q90) if name == "lightgbm" else np.nan,
        }
    scores = pd.DataFrame.from_dict(rows, orient="index")
    scores["pinball_mean_eur_per_kwh"] = scores[[f"pinball_q{q}_eur_per_kwh" for q in (10, 50, 90)]].mean(
        axis=1
    )
    for baseline in BASELINES:
        scores[f"mae_ratio_{baseline}"] = scores["mae_eur_per_kwh"] / score(
            scores, baseline, "mae_eur_per_kwh"
        )
    return scores


def score_arrivals(forecasts: pd.DataFrame) -> pd.DataFrame:
    """Arrival scores (Poisson deviance, MAE) of the forecaster and the baselines; deviance ratios."""
    y = forecasts["actual"].to_numpy()
    rows: dict[str, dict[str, float]] = {}
    for name in ("mean", *BASELINES):
        forecast = forecasts[name].to_numpy()
        rows["lightgbm" if name == "mean" else name] = {
            "poisson_deviance": poisson_deviance(y, forecast),
            "mae_arrivals": mae(y, forecast),
            "rmse_arrivals": rmse(y, forecast),
        }
    scores = pd.DataFrame.from_dict(rows, orient="index")
    for baseline in BASELINES:
        scores[f"deviance_ratio_{baseline}"] = scores["poisson_deviance"] / score(
            scores, baseline, "poisson_deviance"
        )
    return scores


@dataclass(frozen=True)
class PriceBacktestConfig:
    """Settings of the price backtest.

    Attributes:
        candidates: Configurations compared on 2023: ``normalized`` (value features and target
            scaled by the last week) and ``raw``.
        booster: LightGBM settings shared by the candidates.
        origin_every_h: Spacing of the training origins [h].
    """

    candidates: tuple[str, ...] = ("normalized", "raw")
    booster: BoosterConfig = field(default_factory=lambda: BoosterConfig(num_threads=2))
    origin_every_h: int = 7

    def forecaster(self, candidate: str) -> PriceForecaster:
        """An unfitted forecaster of a candidate configuration."""
        if candidate not in ("normalized", "raw"):
            raise ValueError(f"candidates: got {candidate!r}; expected normalized or raw")
        return PriceForecaster(
            booster=self.booster, is_normalized=candidate == "normalized", origin_every_h=self.origin_every_h
        )


@dataclass(frozen=True)
class PriceBacktestResult:
    """Everything a price backtest produced.

    Attributes:
        selection: The 2023 evaluation of each candidate.
        selected: The candidate chosen by mean pinball loss on 2023.
        report: The one evaluation on 2024 (model fitted on targets before 2024).
        stress: The stress weeks' evaluations.
        report_forecaster: The model scored on 2024.
    """

    selection: dict[str, Evaluation]
    selected: str
    report: Evaluation
    stress: list[Evaluation]
    report_forecaster: PriceForecaster


def _evaluate_prices(
    forecaster: PriceForecaster, prices: pd.Series, days: tuple[dt.date, dt.date], label: str
) -> Evaluation:
    forecasts = rolling_day_ahead(forecaster.core, prices, days[0], days[1], PRICE_TIMEZONE)
    forecasts = forecasts.rename(columns=dict(zip(("q10", "q50", "q90"), PRICE_COLUMNS, strict=True)))
    return Evaluation(label, days[0], days[1], forecasts, score_prices(forecasts))


def price_backtest(
    config: PriceBacktestConfig | None = None, progress: Progress = _quiet
) -> PriceBacktestResult:
    """The full price backtest (minutes: four to five fits on up to nine years of hours).

    Args:
        config: Settings; the defaults when None.
        progress: Receives a line per stage.

    Returns:
        Selection, report and stress evaluations.
    """
    config = config or PriceBacktestConfig()
    prices = bundled_prices(dt.datetime(2015, 1, 1, tzinfo=dt.UTC), dt.datetime(2025, 1, 1, tzinfo=dt.UTC))
    selection: dict[str, Evaluation] = {}
    fitted: dict[str, PriceForecaster] = {}
    for candidate in config.candidates:
        progress(f"fitting candidate {candidate} on targets before {PRICE_FIT_END_UTC.date()}")
        fitted[candidate] = config.forecaster(candidate).fit(prices[prices.index < PRICE_FIT_END_UTC])
        selection[candidate] = _evaluate_prices(
            fitted[candidate], prices, PRICE_SELECT_DAYS, f"select_2023_{candidate}"
        )
    selected = min(
        selection, key=lambda c: score(selection[c].scores, "lightgbm", "pinball_mean_eur_per_kwh")
    )
    progress(f"selected {selected}; refitting on targets before {PRICE_SELECT_END_UTC.date()}")
    final = config.forecaster(selected).fit(prices[prices.index < PRICE_SELECT_END_UTC])
    report = _evaluate_prices(final, prices, PRICE_REPORT_DAYS, "report_2024")
    stress = []
    for monday in PRICE_STRESS_WEEKS:
        days = (monday, monday + dt.timedelta(days=6))
        if monday.year == 2022:
            week_start = pd.Timestamp(monday).tz_localize(PRICE_TIMEZONE).tz_convert("UTC")
            progress(f"refitting {selected} on targets before {monday} for its stress week")
            model = config.forecaster(selected).fit(prices[prices.index < week_start])
        else:
            model = fitted[selected] if monday.year == 2023 else final
        stress.append(_evaluate_prices(model, prices, days, f"stress_{monday}"))
    return PriceBacktestResult(selection, selected, report, stress, final)


@dataclass(frozen=True)
class ArrivalsBacktestResult:
    """Everything an arrivals backtest produced.

    Attributes:
        selection: The 2019-09..12 evaluation of each candidate.
        selected: The candidate chosen by Poisson deviance on 2019-09..12.
        report: The one evaluation on 2021-05..08.
        stress: The 2020-02..05 (COVID) evaluation.
        report_forecaster: The selected model (fitted on 2019-05..08).
    """

    selection: dict[str, Evaluation]
    selected: str
    report: Evaluation
    stress: list[Evaluation]
    report_forecaster: SlotForecaster


ARRIVALS_CANDIDATES: dict[str, BoosterConfig] = {
    "small": BoosterConfig(objective="poisson", n_trees=100, num_leaves=7, min_data_in_leaf=200),
    "medium": BoosterConfig(objective="poisson", n_trees=200, num_leaves=15, min_data_in_leaf=100),
}
"""Arrival model candidates compared on 2019-09..12."""


def arrivals_forecaster(booster: BoosterConfig, horizon_h: int = 48) -> SlotForecaster:
    """An unfitted arrivals forecaster (15-minute counts, Caltech calendar with Californian holidays)."""
    from smac_rl_forecasting.features import FeatureConfig

    features = FeatureConfig(
        step_min=15, timezone=CALTECH_TIMEZONE, holiday_country="US", holiday_subdiv="CA", is_normalized=False
    )
    return SlotForecaster("arrivals", features, booster, horizon_steps=horizon_h * 4)


def _scored_days(period: str) -> tuple[dt.date, dt.date]:
    start, end = caltech_period_bounds(period)
    first = start.tz_convert(CALTECH_TIMEZONE).date() + dt.timedelta(days=HISTORY_DAYS + 1)
    return first, (end.tz_convert(CALTECH_TIMEZONE) - pd.Timedelta(days=1)).date()


def _evaluate_arrivals(core: SlotForecaster, period: str, label: str) -> Evaluation:
    first, last = _scored_days(period)
    forecasts = rolling_day_ahead(core, arrival_counts(period), first, last, CALTECH_TIMEZONE)
    return Evaluation(label, first, last, forecasts, score_arrivals(forecasts))


def arrivals_backtest(
    candidates: tuple[str, ...] = tuple(ARRIVALS_CANDIDATES),
    num_threads: int = 2,
    progress: Progress = _quiet,
) -> ArrivalsBacktestResult:
    """The arrivals backtest: fit 2019-05..08, select 2019-09..12, report 2021-05..08, stress 2020.

    Args:
        candidates: Names of :data:`ARRIVALS_CANDIDATES` to compare.
        num_threads: LightGBM threads.
        progress: Receives a line per stage.
    """
    series = arrival_counts(ARRIVALS_FIT)
    selection: dict[str, Evaluation] = {}
    fitted: dict[str, SlotForecaster] = {}
    for name in candidates:
        if name not in ARRIVALS_CANDIDATES:
            raise ValueError(f"candidates: got {name!r}; expected one of {', '.join(ARRIVALS_CANDIDATES)}")
        progress(f"fitting arrivals candidate {name} on {ARRIVALS_FIT}")
        booster = replace(ARRIVALS_CANDIDATES[name], num_threads=num_threads)
        fitted[name] = arrivals_forecaster(booster).fit(series)
        selection[name] = _evaluate_arrivals(fitted[name], ARRIVALS_SELECT, f"select_2019-09..12_{name}")
    selected = min(selection, key=lambda c: score(selection[c].scores, "lightgbm", "poisson_deviance"))
    progress(f"selected {selected}; reporting on {ARRIVALS_REPORT}")
    report = _evaluate_arrivals(fitted[selected], ARRIVALS_REPORT, "report_2021-05..08")
    stress = [_evaluate_arrivals(fitted[selected], ARRIVALS_STRESS, "stress_2020-02..05")]
    return ArrivalsBacktestResult(selection, selected, report, stress, fitted[selected])
