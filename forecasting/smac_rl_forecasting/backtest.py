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

**Session needs** (:func:`sessions_backtest`): the same Caltech splits, one forecast per session at
its arrival (energy delivered and dwell time, quantiles 10/50/90) reading only the sessions of the
same block that ended before it; a block's sessions are scored once 28 days of ended sessions lie
before them. Baselines are the empirical quantiles of the sessions of the same weekday and hour one
week earlier (``seasonal_naive``) and of the weekday-by-hour profile of the last 4 weeks
(``profile_4w``), both widened when empty (:mod:`smac_rl_forecasting.sessions`); unlike the slot
baselines they have intervals. Candidates (``raw``, ``normalized``) are fitted on 2019-05..08 and
selected by the mean over both targets of the pinball loss relative to ``profile_4w`` on 2019-09..12;
the selected one's intervals are then widened (or narrowed) about the median by the factor per
target that covers 80 % of the 2019-09..12 sessions
(:func:`~smac_rl_forecasting.sessions.widening_for_coverage`), and that model is scored once on
2021 and on 2020. The selection table shows the unwidened candidates (their out-of-sample scores).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd

from smac_rl.data.loaders import caltech_sessions
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
from smac_rl_forecasting.sessions import (
    BASELINE_WINDOWS,
    SESSION_BOOSTER,
    SESSION_TARGETS,
    SessionFeatureConfig,
    SessionNeedsForecaster,
    session_targets,
    widening_for_coverage,
    window_statistics,
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


SESSIONS_CANDIDATES: dict[str, SessionFeatureConfig] = {
    "raw": SessionFeatureConfig(is_normalized=False),
    "normalized": SessionFeatureConfig(is_normalized=True),
}
"""Session-needs candidates compared on 2019-09..12: targets and value features as they are, or
divided by each target's 28-day median."""

SESSIONS_DEFAULT_CANDIDATE = "raw"
"""The candidate ``smac forecast backtest --target sessions`` selected on 2019-09..12 (``fit`` uses it)."""

SESSION_SHORT_NAMES = {"energy_kwh": "energy", "dwell_min": "dwell"}
"""Short name of each session target in ratio and coverage columns."""


def score_sessions(forecasts: pd.DataFrame) -> pd.DataFrame:
    """Session scores of the forecaster (``lightgbm``) and the baselines, per target.

    Columns per target ``T`` (``energy_kwh``, ``dwell_min``; short ``energy``, ``dwell``):
    ``mae_T``, ``rmse_T`` (of the median), ``pinball_q10_T`` .. ``pinball_q90_T``,
    ``pinball_mean_T``, ``coverage_10_90_<short>_frac`` and, per baseline ``B``,
    ``mae_ratio_<short>_B`` and ``pinball_ratio_<short>_B`` (the method's over the baseline's).

    Args:
        forecasts: One row per session: ``actual_T``, the forecaster's ``q10_T`` .. ``q90_T`` and
            the baselines' ``<B>_q10_T`` ...
    """
    rows: dict[str, dict[str, float]] = {}
    for method in ("lightgbm", *BASELINE_WINDOWS):
        prefix = "" if method == "lightgbm" else f"{method}_"
        row: dict[str, float] = {}
        for target in SESSION_TARGETS:
            y = forecasts[f"actual_{target}"].to_numpy()
            q10, q50, q90 = (forecasts[f"{prefix}{q}_{target}"].to_numpy() for q in ("q10", "q50", "q90"))
            row[f"mae_{target}"] = mae(y, q50)
            row[f"rmse_{target}"] = rmse(y, q50)
            pinballs = [pinball_loss(y, f, a) for f, a in ((q10, 0.1), (q50, 0.5), (q90, 0.9))]
            for level, value in zip((10, 50, 90), pinballs, strict=True):
                row[f"pinball_q{level}_{target}"] = value
            row[f"pinball_mean_{target}"] = float(np.mean(pinballs))
            row[f"coverage_10_90_{SESSION_SHORT_NAMES[target]}_frac"] = interval_coverage_frac(y, q10, q90)
        rows[method] = row
    scores = pd.DataFrame.from_dict(rows, orient="index")
    for target in SESSION_TARGETS:
        short = SESSION_SHORT_NAMES[target]
        for baseline in BASELINE_WINDOWS:
            for metric in ("mae", "pinball_mean"):
                ratio = scores[f"{metric}_{target}"] / score(scores, baseline, f"{metric}_{target}")
                scores[f"{metric.split('_')[0]}_ratio_{short}_{baseline}"] = ratio
    return scores


def evaluate_sessions(
    forecaster: SessionNeedsForecaster,
    sessions: pd.DataFrame,
    label: str,
    max_days: int | None = None,
) -> Evaluation:
    """Score a fitted forecaster on every session of a block that has enough history.

    Args:
        forecaster: The fitted forecaster.
        sessions: The block's sessions; each is forecast from those that ended before it arrived.
        label: Name of the evaluation.
        max_days: Score only the sessions of the first ``max_days`` local days that have enough
            history (all when None).

    Returns:
        The evaluation; its forecasts hold one row per scored session: ``arrival_utc``,
        ``target_utc`` (the arrival, for the plots), the forecaster's and the baselines' quantiles
        and ``actual_energy_kwh``, ``actual_dwell_min``.

    Raises:
        ValueError: When no session of the block has enough history.
    """
    timezone = forecaster.features.timezone
    truth = session_targets(sessions, timezone)
    history = forecaster.history(sessions)
    eligible = window_statistics(history.arrival_ns, history, timezone).has_history
    local_day = truth["arrival_utc"].dt.tz_convert(timezone).dt.date
    if not eligible.any():
        raise ValueError(f"sessions: got no session with enough history in {label}; expected some")
    if max_days is not None:
        first = local_day[eligible].min()
        eligible &= (local_day < first + dt.timedelta(days=max_days)).to_numpy()
    scored = truth[eligible].reset_index(drop=True)
    forecasts = forecaster.predict(pd.DatetimeIndex(scored["arrival_utc"]), sessions, include_baselines=True)
    forecasts.insert(1, "target_utc", forecasts["arrival_utc"])
    for target in SESSION_TARGETS:
        forecasts[f"actual_{target}"] = scored[target].to_numpy()
    days = local_day[eligible]
    return Evaluation(label, days.min(), days.max(), forecasts, score_sessions(forecasts))


def widened_to_coverage(
    forecaster: SessionNeedsForecaster, evaluation: Evaluation, coverage_frac: float = 0.8
) -> SessionNeedsForecaster:
    """The forecaster with the widening per target that covers ``coverage_frac`` of an evaluation.

    The evaluation must be this forecaster's, unwidened, on sessions it was not fitted on.
    """
    frame = evaluation.forecasts
    widening = tuple(
        widening_for_coverage(
            frame[f"actual_{target}"].to_numpy(),
            frame[f"q10_{target}"].to_numpy(),
            frame[f"q50_{target}"].to_numpy(),
            frame[f"q90_{target}"].to_numpy(),
            coverage_frac,
        )
        for target in SESSION_TARGETS
    )
    return replace(forecaster, interval_widening=widening)


@dataclass(frozen=True)
class SessionsBacktestConfig:
    """Settings of the session-needs backtest.

    Attributes:
        candidates: Names of :data:`SESSIONS_CANDIDATES` compared on 2019-09..12.
        booster: LightGBM settings shared by the candidates.
        max_days: Score only the first ``max_days`` eligible days of each block (None: all; a
            small value makes a quick check, not a result).
        coverage_frac: Share of the 2019-09..12 sessions the selected model's 10-90 % intervals are
            widened to cover, or None to keep the boosters' intervals.
    """

    candidates: tuple[str, ...] = tuple(SESSIONS_CANDIDATES)
    booster: BoosterConfig = field(default_factory=lambda: replace(SESSION_BOOSTER, num_threads=2))
    max_days: int | None = None
    coverage_frac: float | None = 0.8


@dataclass(frozen=True)
class SessionsBacktestResult:
    """Everything a session-needs backtest produced.

    Attributes:
        selection: The 2019-09..12 evaluation of each candidate.
        selected: The candidate chosen by the mean pinball ratio to ``profile_4w`` on 2019-09..12.
        report: The one evaluation on 2021-05..08.
        stress: The 2020-02..05 (COVID) evaluation.
        report_forecaster: The selected model (fitted on 2019-05..08, intervals widened on
            2019-09..12: its ``interval_widening``).
    """

    selection: dict[str, Evaluation]
    selected: str
    report: Evaluation
    stress: list[Evaluation]
    report_forecaster: SessionNeedsForecaster


def session_selection_score(scores: pd.DataFrame) -> float:
    """Mean over both targets of the forecaster's pinball loss relative to ``profile_4w`` (lower wins)."""
    ratios = [
        score(scores, "lightgbm", f"pinball_ratio_{s}_profile_4w") for s in SESSION_SHORT_NAMES.values()
    ]
    return float(np.mean(ratios))


def sessions_backtest(
    config: SessionsBacktestConfig | None = None, progress: Progress = _quiet
) -> SessionsBacktestResult:
    """The session-needs backtest: fit 2019-05..08, select 2019-09..12, report 2021-05..08, stress 2020.

    Args:
        config: Settings; the defaults when None.
        progress: Receives a line per stage.

    Raises:
        ValueError: For an unknown candidate.
    """
    config = config or SessionsBacktestConfig()
    fit_sessions = caltech_sessions(ARRIVALS_FIT)
    selection: dict[str, Evaluation] = {}
    fitted: dict[str, SessionNeedsForecaster] = {}
    for name in config.candidates:
        if name not in SESSIONS_CANDIDATES:
            raise ValueError(f"candidates: got {name!r}; expected one of {', '.join(SESSIONS_CANDIDATES)}")
        progress(f"fitting session-needs candidate {name} on {ARRIVALS_FIT}")
        forecaster = SessionNeedsForecaster(features=SESSIONS_CANDIDATES[name], booster=config.booster)
        fitted[name] = forecaster.fit(fit_sessions)
        selection[name] = evaluate_sessions(
            fitted[name], caltech_sessions(ARRIVALS_SELECT), f"select_2019-09..12_{name}", config.max_days
        )
    selected = min(selection, key=lambda c: session_selection_score(selection[c].scores))
    model = fitted[selected]
    if config.coverage_frac is not None:
        model = widened_to_coverage(model, selection[selected], config.coverage_frac)
        progress(
            f"selected {selected}; intervals widened by "
            f"{', '.join(f'{k:.3f}' for k in model.interval_widening)} (energy, dwell) to cover "
            f"{config.coverage_frac:.0%} of {ARRIVALS_SELECT}"
        )
    progress(f"reporting {selected} on {ARRIVALS_REPORT} and {ARRIVALS_STRESS}")
    report = evaluate_sessions(
        model, caltech_sessions(ARRIVALS_REPORT), "report_2021-05..08", config.max_days
    )
    stress = [
        evaluate_sessions(model, caltech_sessions(ARRIVALS_STRESS), "stress_2020-02..05", config.max_days)
    ]
    return SessionsBacktestResult(selection, selected, report, stress, model)
