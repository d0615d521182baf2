"""``smac forecast``: fit and backtest the LightGBM forecasters (prices, arrivals, sessions), in MLflow."""

from __future__ import annotations

import datetime as dt
import json
import math
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from smac_rl.cli.common import NON_TERMINAL_WIDTH, console, fail, print_table
from smac_rl.core.errors import SmacError

if TYPE_CHECKING:
    import pandas as pd

    from smac_rl_forecasting.backtest import (
        ArrivalsBacktestResult,
        Evaluation,
        PriceBacktestResult,
        SessionsBacktestResult,
    )
    from smac_rl_forecasting.onnx_export import ExportableForecaster

    BacktestResult = PriceBacktestResult | ArrivalsBacktestResult | SessionsBacktestResult

forecast_app = typer.Typer(
    rich_markup_mode=None,
    help=(
        "LightGBM forecasters of day-ahead prices, Caltech arrivals and Caltech session needs (energy, "
        "dwell time): fit, backtest, ONNX export."
    ),
    no_args_is_help=True,
)


class Target(StrEnum):
    """What is forecast."""

    prices = "prices"
    arrivals = "arrivals"
    sessions = "sessions"


DEFAULT_NAMES = {
    Target.prices: "nl_day_ahead_prices",
    Target.arrivals: "caltech_arrivals",
    Target.sessions: "caltech_session_needs",
}

TargetOption = Annotated[
    Target,
    typer.Option(
        help=(
            "prices (Dutch day-ahead), arrivals (Caltech, 15 min) or sessions (Caltech energy and dwell "
            "time at arrival)."
        )
    ),
]
TrackingOption = Annotated[str, typer.Option(help="MLflow tracking URI.")]
ThreadsOption = Annotated[int, typer.Option(min=1, help="LightGBM threads (results depend on it).")]


def _forecast_extra_missing(exc: ImportError) -> typer.Exit:
    return fail(
        f"this command needs the [forecast] and [data] extras ({exc.name} is missing): "
        "pip install -c constraints.txt -e '.[forecast,data,train]'"
    )


def _say(line: str) -> None:
    console.print(line, highlight=False, soft_wrap=True)


def _print_wide(table: Table) -> None:
    """Print a table whole; when piped, at :data:`NON_TERMINAL_WIDTH` columns.

    ``print_table`` asks for that width, but rich caps a print's width at the console's own (80
    columns when piped), which truncates the wide score tables.
    """
    if console.is_terminal:
        print_table(table)
    else:
        from rich.console import Console

        Console(width=NON_TERMINAL_WIDTH).print(table)


def _log_evaluations(evaluations: list[Evaluation]) -> None:
    import mlflow

    metrics = {}
    for evaluation in evaluations:
        for method, scores in evaluation.scores.iterrows():
            for column, value in scores.items():
                if not math.isnan(float(value)):
                    metrics[f"{evaluation.label}.{method}.{column}"] = float(value)
    mlflow.log_metrics(metrics)


def _summary_table(title: str, evaluations: list[Evaluation], columns: tuple[str, ...]) -> Table:
    from rich.markup import escape

    from smac_rl_forecasting.cards import SHORT_HEADERS, summary_rows

    table = Table(title=escape(title))
    for header in ("period", "days", "method"):
        table.add_column(header)
    for column in columns:
        table.add_column(SHORT_HEADERS.get(column, column), justify="right")
    for row in summary_rows(evaluations, columns):
        table.add_row(*row)
    return table


def _plots(evaluations: list[Evaluation], directory: Path, target: Target, timezone: str) -> list[Path]:
    if target is Target.sessions:
        return _session_plots(evaluations, directory, timezone)
    if target is Target.prices:
        median, band, unit = (
            "price_q50_eur_per_kwh",
            ("price_q10_eur_per_kwh", "price_q90_eur_per_kwh"),
            "EUR/kWh",
        )
    else:
        median, band, unit = "mean", None, "arrivals per 15 min"
    written = []
    for evaluation in evaluations:
        written += _evaluation_plots(
            evaluation.forecasts, evaluation.label, directory, target.value, median, band, unit, timezone
        )
    return written


def _evaluation_plots(
    frame: pd.DataFrame,
    label: str,
    directory: Path,
    what: str,
    median: str,
    band: tuple[str, str] | None,
    unit: str,
    timezone: str,
) -> list[Path]:
    """Forecast-against-actual (first 14 days; all of a stress period) and error-by-hour figures."""
    from smac_rl_forecasting.plots import error_by_hour_png, forecast_figure_png

    shown = frame
    if not label.startswith("stress"):
        first = frame["target_utc"].min()
        shown = frame[frame["target_utc"] < first + dt.timedelta(days=14)]
    return [
        forecast_figure_png(
            shown,
            directory / f"{label}_forecast.png",
            f"{what}: {label} (first 14 days or the week)",
            median,
            band,
            unit,
            timezone,
        ),
        error_by_hour_png(
            frame,
            directory / f"{label}_error_by_hour.png",
            f"{what}: error by hour, {label}",
            median,
            unit,
            timezone,
        ),
    ]


def _session_plots(evaluations: list[Evaluation], directory: Path, timezone: str) -> list[Path]:
    """The figures of each session target, by arrival time (baselines drawn at their median)."""
    from smac_rl_forecasting.backtest import BASELINES, SESSION_SHORT_NAMES

    written = []
    for evaluation in evaluations:
        frame = evaluation.forecasts
        for target, short in SESSION_SHORT_NAMES.items():
            view = frame[["target_utc", f"q10_{target}", f"q50_{target}", f"q90_{target}"]].copy()
            view["actual"] = frame[f"actual_{target}"]
            for baseline in BASELINES:
                view[baseline] = frame[f"{baseline}_q50_{target}"]
            written += _evaluation_plots(
                view,
                f"{evaluation.label}_{short}",
                directory,
                f"session {short} at arrival",
                f"q50_{target}",
                (f"q10_{target}", f"q90_{target}"),
                "kWh" if target == "energy_kwh" else "min",
                timezone,
            )
    return written


@forecast_app.command("backtest")
def backtest_command(
    target: TargetOption = Target.prices,
    tracking_uri: TrackingOption = "sqlite:///mlflow.db",
    run_dir: Annotated[Path, typer.Option(help="Folder for plots and score files.")] = Path("runs/forecast"),
    export: Annotated[
        Path | None,
        typer.Option(help="Also write the reported model as ONNX + metadata.json + MODEL_CARD.md here."),
    ] = None,
    version: Annotated[str, typer.Option(help="Version written into the exported metadata.")] = "v1",
    threads: ThreadsOption = 2,
    n_trees: Annotated[int, typer.Option(min=1, help="Boosting rounds per price booster.")] = 200,
) -> None:
    """Backtest on the DESIGN.md splits with baselines in the same run; log to MLflow; print the table.

    Prices: candidates fitted to 2022 and selected on 2023, the selected one refitted to 2023 and
    scored once on 2024, plus three stress weeks (several minutes). Arrivals and sessions (energy
    and dwell time at each arrival): fit 2019-05..08, select 2019-09..12, report 2021-05..08, 2020
    apart (under a minute each).
    """
    try:
        import mlflow

        from smac_rl.agents.tracking import provenance_tags
        from smac_rl_forecasting import backtest, cards
    except ImportError as exc:
        raise _forecast_extra_missing(exc) from None
    from dataclasses import asdict, replace

    out = run_dir / target.value
    result: BacktestResult
    columns: tuple[str, ...]
    origin = "12:00 local, next day"
    try:
        if target is Target.prices:
            config = backtest.PriceBacktestConfig()
            config = replace(config, booster=replace(config.booster, num_threads=threads, n_trees=n_trees))
            params: dict[str, Any] = {"candidates": ",".join(config.candidates), **asdict(config.booster)}
            result = backtest.price_backtest(config, progress=_say)
            columns, timezone = cards.PRICE_SUMMARY_COLUMNS, "Europe/Amsterdam"
        elif target is Target.sessions:
            sessions_config = backtest.SessionsBacktestConfig()
            sessions_config = replace(
                sessions_config, booster=replace(sessions_config.booster, num_threads=threads)
            )
            params = {"candidates": ",".join(sessions_config.candidates), **asdict(sessions_config.booster)}
            result = backtest.sessions_backtest(sessions_config, progress=_say)
            params["interval_widening"] = ",".join(
                f"{k:.6g}" for k in result.report_forecaster.interval_widening
            )
            columns, timezone = cards.SESSIONS_SUMMARY_COLUMNS, "America/Los_Angeles"
            origin = "each session's arrival (sessions ended before it)"
        else:
            params = {"candidates": ",".join(backtest.ARRIVALS_CANDIDATES), "num_threads": threads}
            result = backtest.arrivals_backtest(num_threads=threads, progress=_say)
            columns, timezone = cards.ARRIVALS_SUMMARY_COLUMNS, "America/Los_Angeles"
    except SmacError as exc:
        raise fail(str(exc)) from None
    evaluations = [*result.selection.values(), result.report, *result.stress]
    out.mkdir(parents=True, exist_ok=True)
    plots = _plots(evaluations, out / "plots", target, timezone)
    selection = {name: e.scores.to_dict(orient="index") for name, e in result.selection.items()}
    scores = {e.label: e.scores.to_dict(orient="index") for e in [result.report, *result.stress]}
    summary = {"target": target.value, "selected": result.selected, "selection": selection, "scores": scores}
    (out / "backtest.json").write_text(json.dumps(summary, indent=2, default=float) + "\n", encoding="utf-8")
    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_experiment(f"forecast-{target.value}")
    with mlflow.start_run(run_name=f"backtest-{target.value}") as run:
        mlflow.set_tags(provenance_tags())
        mlflow.log_params({**params, "target": target.value, "selected": result.selected, "origin": origin})
        _log_evaluations(evaluations)
        for path in [*plots, out / "backtest.json"]:
            mlflow.log_artifact(str(path))
        run_id = run.info.run_id
    if export is not None:
        _export(result, target, export, version, run_id)
    if isinstance(result, backtest.PriceBacktestResult):
        lines = cards.price_target_lines(result)
    elif isinstance(result, backtest.SessionsBacktestResult):
        lines = cards.sessions_target_lines(result)
    else:
        lines = cards.arrivals_target_lines(result)
    unit = {
        Target.prices: "EUR/kWh; pinball: mean of q10/q50/q90",
        Target.arrivals: "arrivals per 15 min",
        Target.sessions: "energy kWh, dwell min; pinball: mean of q10/q50/q90; ratios: model / baseline",
    }[target]
    title = (
        f"Backtest of the {target.value} forecaster [{unit}] (selected: {result.selected}; run {run_id[:8]})"
    )
    if target is Target.sessions:
        for name, target_columns in cards.SESSIONS_COLUMNS_BY_TARGET.items():
            _print_wide(_summary_table(f"{title}: {name}", evaluations, target_columns))
    else:
        _print_wide(_summary_table(title, evaluations, columns))
    for line in lines:
        _say(line)
    _say(f"plots and scores in {out}; open the run: .venv/bin/mlflow ui --backend-store-uri {tracking_uri}")


def _export(
    result: BacktestResult,
    target: Target,
    directory: Path,
    version: str,
    run_id: str,
) -> None:
    import shlex
    import sys

    from smac_rl.agents.tracking import git_sha
    from smac_rl_forecasting import cards
    from smac_rl_forecasting.backtest import PriceBacktestResult, SessionsBacktestResult
    from smac_rl_forecasting.onnx_export import PARITY_TOLERANCE, OnnxParityError, export_forecaster
    from smac_rl_forecasting.series import arrival_counts, bundled_prices
    from smac_rl_forecasting.sessions import SESSION_PARITY_TOLERANCE

    name = DEFAULT_NAMES[target]
    command = "smac " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    forecasts = result.report.forecasts
    core: ExportableForecaster
    if isinstance(result, SessionsBacktestResult):
        import pandas as pd

        from smac_rl.data.loaders import caltech_sessions
        from smac_rl_forecasting.backtest import ARRIVALS_REPORT

        core = result.report_forecaster
        card = cards.sessions_model_card(result, name, version, command)
        features = result.report_forecaster.feature_rows(
            pd.DatetimeIndex(forecasts["arrival_utc"]), caltech_sessions(ARRIVALS_REPORT)
        )[0]
    else:
        if isinstance(result, PriceBacktestResult):
            slot = result.report_forecaster.core
            card = cards.price_model_card(result, name, version, command)
            series = bundled_prices(
                dt.datetime(2015, 1, 1, tzinfo=dt.UTC), dt.datetime(2025, 1, 1, tzinfo=dt.UTC)
            )
        else:
            from smac_rl_forecasting.backtest import ARRIVALS_REPORT

            slot = result.report_forecaster
            card = cards.arrivals_model_card(result, name, version, command)
            series = arrival_counts(ARRIVALS_REPORT)
        origins = sorted(set(forecasts["origin_utc"]))
        _, _, features, _, _ = slot.feature_rows(series, origins)
        core = slot
    extra = {
        "target": target.value,
        "selected": result.selected,
        "mlflow_run_id": run_id,
        "git_sha": git_sha(),
        "report_scores": result.report.scores.to_dict(orient="index"),
        "command": command,
    }
    tolerance = SESSION_PARITY_TOLERANCE if target is Target.sessions else PARITY_TOLERANCE
    try:
        exported = export_forecaster(core, directory, features, name, version, extra, card, tolerance)
    except (OnnxParityError, OSError) as exc:
        raise fail(str(exc)) from None
    _say(
        f"exported {', '.join(p.name for p in exported.onnx_files.values())} to {directory} "
        f"(ONNX-LightGBM parity {exported.max_parity_error:.2g} on {features.shape[0]} rows)"
    )


@forecast_app.command("fit")
def fit_command(
    target: TargetOption = Target.prices,
    until: Annotated[
        str, typer.Option(help="Last day (UTC) whose targets are fitted on, YYYY-MM-DD (prices only).")
    ] = "2023-12-31",
    out: Annotated[
        Path, typer.Option(help="Folder for the ONNX graphs, metadata.json and MODEL_CARD.md.")
    ] = Path("runs/forecast/model"),
    version: Annotated[str, typer.Option(help="Version written into the metadata.")] = "v1",
    tracking_uri: TrackingOption = "sqlite:///mlflow.db",
    threads: ThreadsOption = 2,
    n_trees: Annotated[
        int | None, typer.Option(min=1, help="Boosting rounds per booster (default: the backtested setting).")
    ] = None,
) -> None:
    """Fit the default configuration and export it to ONNX.

    Configurations: prices normalized, arrivals medium, sessions the backtest's choice. Prices are
    fitted on the bundle's hours up to ``--until``; arrivals and sessions on Caltech 2019-05..08.
    The card carries no test scores: run ``smac forecast backtest --export DIR`` for a scored model.
    """
    try:
        import mlflow

        from smac_rl.agents.tracking import git_sha, provenance_tags
        from smac_rl_forecasting import backtest
        from smac_rl_forecasting.onnx_export import PARITY_TOLERANCE, OnnxParityError, export_forecaster
        from smac_rl_forecasting.prices import PriceForecaster
        from smac_rl_forecasting.series import arrival_counts, bundled_prices
        from smac_rl_forecasting.sessions import (
            SESSION_BOOSTER,
            SESSION_PARITY_TOLERANCE,
            SessionNeedsForecaster,
        )
    except ImportError as exc:
        raise _forecast_extra_missing(exc) from None
    from dataclasses import replace

    try:
        end_day = dt.date.fromisoformat(until)
    except ValueError:
        raise fail(f"until: got {until!r}; expected a day as YYYY-MM-DD") from None
    core: ExportableForecaster
    try:
        if target is Target.prices:
            end = dt.datetime.combine(end_day + dt.timedelta(days=1), dt.time(), tzinfo=dt.UTC)
            series = bundled_prices(
                dt.datetime(2015, 1, 1, tzinfo=dt.UTC), min(end, dt.datetime(2025, 1, 1, tzinfo=dt.UTC))
            )
            booster = replace(backtest.PriceBacktestConfig().booster, num_threads=threads)
            booster = booster if n_trees is None else replace(booster, n_trees=n_trees)
            _say(f"fitting the price forecaster on {series.index[0].date()} to {series.index[-1].date()} ...")
            slot = PriceForecaster(booster=booster).fit(series).core
            data = f"Dutch day-ahead prices, targets up to {until}"
        elif target is Target.sessions:
            from smac_rl.data.loaders import caltech_sessions

            sessions = caltech_sessions(backtest.ARRIVALS_FIT)
            booster = replace(SESSION_BOOSTER, num_threads=threads)
            booster = booster if n_trees is None else replace(booster, n_trees=n_trees)
            candidate = backtest.SESSIONS_DEFAULT_CANDIDATE
            _say(f"fitting the session-needs forecaster ({candidate}) on Caltech {backtest.ARRIVALS_FIT} ...")
            features_config = backtest.SESSIONS_CANDIDATES[candidate]
            sessions_core = SessionNeedsForecaster(features=features_config, booster=booster).fit(sessions)
            check = backtest.evaluate_sessions(
                sessions_core, caltech_sessions(backtest.ARRIVALS_SELECT), backtest.ARRIVALS_SELECT
            )
            sessions_core = backtest.widened_to_coverage(sessions_core, check)
            widening = sessions_core.interval_widening
            _say(
                f"intervals widened by {widening[0]:.3f} (energy), {widening[1]:.3f} (dwell) on {check.label}"
            )
            last = sessions["arrival_utc"].max()
            recent = sessions["arrival_utc"][sessions["arrival_utc"] >= last - dt.timedelta(days=14)]
            features = sessions_core.feature_rows(list(recent), sessions)[0]
            core = sessions_core
            data = (
                f"Caltech sessions, {backtest.ARRIVALS_FIT}; 10-90 % intervals widened to cover 80 % of "
                f"{backtest.ARRIVALS_SELECT}"
            )
        else:
            series = arrival_counts(backtest.ARRIVALS_FIT)
            booster = replace(backtest.ARRIVALS_CANDIDATES["medium"], num_threads=threads)
            booster = booster if n_trees is None else replace(booster, n_trees=n_trees)
            _say(f"fitting the arrivals forecaster on Caltech {backtest.ARRIVALS_FIT} ...")
            slot = backtest.arrivals_forecaster(booster).fit(series)
            data = f"Caltech arrivals per 15 min, {backtest.ARRIVALS_FIT}"
        if target is not Target.sessions:
            last_origin = series.index[-1] + (series.index[1] - series.index[0])
            origins = [last_origin - dt.timedelta(days=d) for d in range(14)]
            _, _, features, _, _ = slot.feature_rows(series, origins)
            core = slot
    except SmacError as exc:
        raise fail(str(exc)) from None
    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_experiment(f"forecast-{target.value}")
    with mlflow.start_run(run_name=f"fit-{target.value}") as run:
        mlflow.set_tags(provenance_tags())
        mlflow.log_params({"target": target.value, "data": data, **core.describe()["booster"]})
        run_id = run.info.run_id
        name = DEFAULT_NAMES[target]
        card = (
            f"# {name} {version}\n\nLightGBM {target.value} forecaster fitted on {data}. "
            "No test scores here: "
            f"`smac forecast backtest --target {target.value} --export DIR` writes a scored model.\n"
        )
        try:
            exported = export_forecaster(
                core,
                out,
                features,
                name,
                version,
                {"mlflow_run_id": run_id, "git_sha": git_sha(), "data": data},
                card,
                SESSION_PARITY_TOLERANCE if target is Target.sessions else PARITY_TOLERANCE,
            )
        except (OnnxParityError, OSError) as exc:
            raise fail(str(exc)) from None
        for path in exported.onnx_files.values():
            mlflow.log_artifact(str(path))
        mlflow.log_artifact(str(out / "metadata.json"))
        mlflow.log_metric("onnx_parity_max_abs_error", exported.max_parity_error)
    _say(f"wrote {out} (ONNX-LightGBM parity {exported.max_parity_error:.2g}; MLflow run {run_id[:8]})")
