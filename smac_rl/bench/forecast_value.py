"""The value of forecasting: the MPC's cost with perfect, LightGBM and seasonal-naive price forecasts.

On the same generated days of a pilot template (one local day per scenario, ElaadNL sessions, the
template's objective ``cost``), five methods run on each day, each scored by the one scorer:

* ``uncontrolled``: every connector at its maximum rate, then the safety projection;
* ``optimal``: the perfect-foresight optimum of the whole day (the oracle);
* ``mpc_perfect``: the rolling-horizon MPC (:class:`~smac_rl.optimal.mpc.MpcPolicy`) with
  :class:`~smac_rl.core.forecasts.PerfectForecast`;
* ``mpc_lightgbm_prices_q50``: the same MPC with the LightGBM day-ahead price forecaster's median
  (:class:`~smac_rl_forecasting.provider.LightGbmPriceForecast`, the promoted ONNX model
  ``models/forecasters/nl_day_ahead_prices/v1`` by default, fitted on targets before 2024);
* ``mpc_seasonal_naive_prices``: the same MPC with the price of the same hour one week earlier
  (:class:`~smac_rl_forecasting.provider.SeasonalNaivePriceForecast`).

The days, uncontrolled charging, the oracle, the records and the summary (savings capture median
and pooled, as ``smac evaluate --template`` reports them) come from the evaluation protocol's
engine, :func:`smac_rl.optimal.protocol.evaluate_days`, with one policy factory per MPC.

The three MPCs differ only in their price forecasts: every other series (PV, base load, limits)
is perfect for all three, the current step's values are measured (the MPC takes them from the
step's context), and sessions are known from their arrival on (no session foresight). The price
providers rebuild the scenario's prices by the template's rule (day-ahead plus retail adder for
imports, day-ahead or zero for exports); :func:`run_forecast_value` checks that the rule
reproduces the generated prices. The forecast origin of a step is the start of its hour, reading
only prices before it: a conservative view (day-ahead prices of a whole day are published around
12:45 CET the day before), so the comparison measures what forecasts are worth when prices are
not known ahead; within a published day, a real operator's loss from forecasting is smaller.

MPC windows are ``horizon_h`` long (24 h by default) and cut at the day's end, as the oracle's
horizon is.

Run: ``smac bench forecast-value [--template T] [--first-day D] [--days N] [--horizon-h H] [--output JSON]``.
"""

from __future__ import annotations

import datetime as dt
import statistics
import zoneinfo
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from smac_rl.core.arrays import ScenarioArrays
from smac_rl.core.errors import SmacError
from smac_rl.core.forecasts import ExogenousForecast, ForecastProvider
from smac_rl.core.specs import TimeGridSpec

if TYPE_CHECKING:
    from smac_rl.optimal.protocol import ProtocolResult

DEFAULT_TEMPLATE = "turku_ultrafast_hub"
"""Pilot template of the benchmark: 2 x 350 kW DC, a 300 kWh battery, 100 kWp PV, demand charge."""

DEFAULT_FIRST_DAY = dt.date(2024, 4, 15)
"""First local day (a Monday of the prices' report year 2024)."""

DEFAULT_N_DAYS = 5
"""Consecutive days (about a minute and a half per day on one core)."""

DEFAULT_HORIZON_H = 24.0
"""MPC window [h] (cut at the day's end)."""

DEFAULT_PRICE_MODEL_DIR = Path("models/forecasters/nl_day_ahead_prices/v1")
"""The promoted price forecaster's folder, relative to the repository root."""

MPC_METHODS = ("mpc_perfect", "mpc_lightgbm_prices_q50", "mpc_seasonal_naive_prices")
"""The MPCs, by the name of their price forecast."""

METHODS = ("uncontrolled", *MPC_METHODS, "optimal")
"""Every method, in report order (the protocol's: uncontrolled first, the optimum last)."""

PRICE_RULE_TOL_EUR_PER_KWH = 1e-4
"""Largest difference allowed between the generated prices and the providers' rule [EUR/kWh] (the
generator rounds prices to 5 decimals)."""


@dataclass(frozen=True)
class MpcDayFigures:
    """One MPC on one day, besides its KPIs.

    Attributes:
        method: The MPC's name.
        scenario: The day's scenario name (template, day and generator seed).
        local_day: The day (ISO).
        price_mae_eur_per_kwh: Mean absolute error of the import prices it planned with, over every
            window's steps after the first (the first is measured, not forecast) [EUR/kWh].
        step_median_s: Median wall-clock time of its steps [s].
        n_steps: Steps run.
    """

    method: str
    scenario: str
    local_day: str
    price_mae_eur_per_kwh: float
    step_median_s: float
    n_steps: int


@dataclass(frozen=True)
class ForecastValueResult:
    """What :func:`run_forecast_value` measured.

    Attributes:
        protocol: The protocol's records and per-method summary.
        mpc_days: Per MPC and day, the forecast error and step time.
        setup: The run's settings, as plain values.
    """

    protocol: ProtocolResult
    mpc_days: list[MpcDayFigures]
    setup: dict[str, Any]


class _ErrorRecorder:
    """A provider that also sums the absolute error of its import-price forecasts after the first step."""

    def __init__(self, provider: ForecastProvider) -> None:
        self.provider = provider
        self.abs_error_sum_eur_per_kwh = 0.0
        self.n_values = 0

    @property
    def name(self) -> str:
        """The wrapped provider's name."""
        return self.provider.name

    def forecast(self, arrays: ScenarioArrays, step_index: int, horizon_steps: int) -> ExogenousForecast:
        """The wrapped provider's forecast, its error recorded."""
        forecast = self.provider.forecast(arrays, step_index, horizon_steps)
        truth = arrays.series.import_price_eur_per_kwh[step_index : step_index + forecast.n_steps]
        error = np.abs(forecast.import_price_eur_per_kwh - truth)[1:]
        self.abs_error_sum_eur_per_kwh += float(error.sum())
        self.n_values += int(error.shape[0])
        return forecast

    def mae_eur_per_kwh(self) -> float:
        """Mean absolute error so far [EUR/kWh] (0 before any value)."""
        return self.abs_error_sum_eur_per_kwh / self.n_values if self.n_values else 0.0


def check_price_rule(arrays: ScenarioArrays, adder_eur_per_kwh: float, export_rule: str) -> None:
    """Check that the bundled day-ahead prices and the template's rule rebuild the scenario's prices.

    Args:
        arrays: The generated scenario.
        adder_eur_per_kwh: Retail adder on imports [EUR/kWh].
        export_rule: ``day_ahead`` or ``zero``.

    Raises:
        SmacError: When they differ by more than :data:`PRICE_RULE_TOL_EUR_PER_KWH`.
    """
    from smac_rl.data.loaders import day_ahead_prices_on_grid

    grid = TimeGridSpec(
        start_utc=arrays.start_utc, step_min=round(arrays.step_h * 60), n_steps=arrays.n_steps
    )
    day_ahead = day_ahead_prices_on_grid(grid)
    export = day_ahead if export_rule == "day_ahead" else np.zeros_like(day_ahead)
    for name, rebuilt in (
        ("import_price_eur_per_kwh", day_ahead + adder_eur_per_kwh),
        ("export_price_eur_per_kwh", export),
    ):
        gap = float(np.max(np.abs(getattr(arrays.series, name) - rebuilt)))
        if gap > PRICE_RULE_TOL_EUR_PER_KWH:
            raise SmacError(
                f"{arrays.name}: got {name} {gap:.3g} EUR/kWh away from the bundled day-ahead prices "
                f"with the template's rule; expected at most {PRICE_RULE_TOL_EUR_PER_KWH} (the price "
                "forecasts rebuild prices by that rule)"
            )


def run_forecast_value(
    template: str = DEFAULT_TEMPLATE,
    first_day: dt.date = DEFAULT_FIRST_DAY,
    n_days: int = DEFAULT_N_DAYS,
    n_seeds: int = 1,
    horizon_h: float = DEFAULT_HORIZON_H,
    price_model_dir: Path = DEFAULT_PRICE_MODEL_DIR,
    time_limit_s: float = 60.0,
    progress: Callable[[str], None] | None = None,
) -> ForecastValueResult:
    """Run every method on every day (module docstring).

    Args:
        template: Pilot template name or YAML file.
        first_day: First local day; the day must start after the price model's last training target.
        n_days: Consecutive days, at least 1.
        n_seeds: Generator seeds per day (0 .. n_seeds - 1), at least 1.
        horizon_h: MPC window [h], positive (at least one step is used).
        price_model_dir: Folder of the exported LightGBM price forecaster (``metadata.json`` and
            ``q10/q50/q90.onnx``).
        time_limit_s: The oracle's time limit per day [s].
        progress: Called with a line before each day.

    Returns:
        The protocol's records and summary, and the MPCs' forecast errors and step times.

    Raises:
        SmacError: For bad arguments, days the price model was fitted on, a template whose prices
            the rule does not rebuild, or any error of the generator, the solver or a provider.
        ImportError: Without the [data], [milp], [forecast] or [serve] (onnxruntime) extras.
    """
    from smac_rl.core.forecasts import PerfectForecast
    from smac_rl.data.template_spec import load_template
    from smac_rl.optimal.mpc import MpcPolicy
    from smac_rl.optimal.protocol import DaySet, PolicyFactory, evaluate_days
    from smac_rl.policies import Policy
    from smac_rl_forecasting.provider import (
        LightGbmPriceForecast,
        SeasonalNaivePriceForecast,
        load_onnx_price_forecaster,
    )

    if n_days < 1:
        raise SmacError(f"days: got {n_days}; expected at least 1")
    if n_seeds < 1:
        raise SmacError(f"seeds: got {n_seeds}; expected at least 1")
    if not (np.isfinite(horizon_h) and horizon_h > 0.0):
        raise SmacError(f"horizon_h: got {horizon_h}; expected a positive number of hours")
    site = load_template(template)
    forecaster = load_onnx_price_forecaster(price_model_dir)
    training = forecaster.core.training
    if training is not None:
        fitted_until = dt.datetime.fromisoformat(training.last_target_utc)
        day_start = dt.datetime.combine(first_day, dt.time(), tzinfo=zoneinfo.ZoneInfo(site.site.timezone))
        if day_start <= fitted_until:
            raise SmacError(
                f"first_day: got {first_day.isoformat()}; expected a day that starts after the price "
                f"model's last training target ({training.last_target_utc}), e.g. in 2024"
            )
    adder, export_rule = site.prices.retail_adder_eur_per_kwh, site.prices.export_price
    lightgbm = LightGbmPriceForecast(forecaster, import_adder_eur_per_kwh=adder, export_rule=export_rule)
    naive = SeasonalNaivePriceForecast(
        lightgbm.prices, import_adder_eur_per_kwh=adder, export_rule=export_rule
    )
    providers: dict[str, ForecastProvider] = dict(
        zip(MPC_METHODS, (PerfectForecast(), lightgbm, naive), strict=True)
    )
    runs: list[tuple[str, ScenarioArrays, _ErrorRecorder, MpcPolicy]] = []

    def factory(method: str) -> PolicyFactory:
        def make(arrays: ScenarioArrays) -> Policy:
            if method == MPC_METHODS[0]:
                check_price_rule(arrays, adder, export_rule)
            recorder = _ErrorRecorder(providers[method])
            policy = MpcPolicy(recorder, horizon_steps=max(1, round(horizon_h / arrays.step_h)))
            runs.append((method, arrays, recorder, policy))
            return policy

        return make

    def on_day(scenario: str, n_methods: int) -> None:
        if progress is not None:
            progress(f"{scenario}: {n_methods} methods ...")

    days = DaySet(template, first_day, n_days, n_seeds)
    result = evaluate_days(days, {m: factory(m) for m in MPC_METHODS}, time_limit_s, on_day=on_day)
    keys = [key for key in days.day_keys() for _ in MPC_METHODS]
    mpc_days = [
        MpcDayFigures(
            method=method,
            scenario=arrays.name,
            local_day=local_day,
            price_mae_eur_per_kwh=recorder.mae_eur_per_kwh(),
            step_median_s=statistics.median(t.total_s for t in policy.timings),
            n_steps=len(policy.timings),
        )
        for (local_day, _), (method, arrays, recorder, policy) in zip(keys, runs, strict=True)
    ]
    setup = {
        "command": "smac bench forecast-value",
        "template": template,
        "first_day": first_day.isoformat(),
        "days": n_days,
        "seeds": n_seeds,
        "objective": "cost",
        "sessions": "generated (ElaadNL)",
        "methods": list(METHODS),
        "mpc_horizon_h": horizon_h,
        "mpc_window": "horizon_h long, cut at the end of the one-day scenario (as the oracle's horizon)",
        "price_forecasts": (
            "made at the start of each step's hour from earlier prices only; the MPC's first step uses "
            "the measured price; every other series perfect; sessions known from their arrival"
        ),
        "price_model": str(price_model_dir),
        "price_model_last_training_target_utc": None if training is None else training.last_target_utc,
        "price_rule": {"retail_adder_eur_per_kwh": adder, "export_price": export_rule},
        "time_limit_s": time_limit_s,
    }
    return ForecastValueResult(result, mpc_days, setup)


def method_summary(result: ForecastValueResult) -> dict[str, dict[str, Any]]:
    """The protocol's per-method summary with the total cost and, for the MPCs, forecast error and speed.

    Adds ``total_cost_sum_eur`` (over days and seeds), ``price_mae_eur_per_kwh`` (mean over the
    days; None for non-MPC methods) and ``mpc_step_median_s`` (median of the days' medians).
    """
    summary: dict[str, dict[str, Any]] = {name: dict(row) for name, row in result.protocol.summary.items()}
    for name, row in summary.items():
        mine = [r for r in result.protocol.records if r.policy == name]
        row["total_cost_sum_eur"] = sum(r.total_cost_eur for r in mine)
        figures = [f for f in result.mpc_days if f.method == name]
        row["price_mae_eur_per_kwh"] = (
            statistics.fmean(f.price_mae_eur_per_kwh for f in figures) if figures else None
        )
        row["mpc_step_median_s"] = statistics.median(f.step_median_s for f in figures) if figures else None
    return summary


def report(result: ForecastValueResult) -> dict[str, Any]:
    """The JSON report: setup, per-method summary, per-day records and the MPCs' per-day figures."""
    from dataclasses import asdict

    return {
        "setup": result.setup,
        "summary": method_summary(result),
        "records": [asdict(r) for r in result.protocol.records],
        "mpc_days": [asdict(f) for f in result.mpc_days],
    }
