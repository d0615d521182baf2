"""``smac forecast``: fit and backtest the LightGBM forecasters (prices, arrivals), tracked in MLflow."""

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
    from smac_rl_forecasting.backtest import ArrivalsBacktestResult, Evaluation, PriceBacktestResult

forecast_app = typer.Typer(
    rich_markup_mode=None,
    help="LightGBM forecasters of day-ahead prices and Caltech arrivals: fit, backtest, ONNX export.",
    no_args_is_help=True,
)


class Target(StrEnum):
    """What is forecast."""

    prices = "prices"
    arrivals = "arrivals"


DEFAULT_NAMES = {Target.prices: "nl_day_ahead_prices", Target.arrivals: "caltech_arrivals"}

TargetOption = Annotated[Target, typer.Option(help="prices (Dutch day-ahead) or arrivals (Caltech, 15 min).")]
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
    from smac_rl_forecasting.plots import error_by_hour_png, forecast_figure_png

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
        frame = evaluation.forecasts
        shown = frame
        if not evaluation.label.startswith("stress"):
            first = frame["target_utc"].min()
            shown = frame[frame["target_utc"] < first + dt.timedelta(days=14)]
        written.append(
            forecast_figure_png(
                shown,
                directory / f"{evaluation.label}_forecast.png",
                f"{target.value}: {evaluation.label} (first 14 days or the week)",
                median,
                band,
                unit,
                timezone,
            )
        )
        written.append(
            error_by_hour_png(
                frame,
                directory / f"{evaluation.label}_error_by_hour.png",
                f"{target.value}: error by hour, {evaluation.label}",
                median,
                unit,
                timezone,
            )
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
    scored once on 2024, plus three stress weeks (several minutes). Arrivals: fit 2019-05..08,
    select 2019-09..12, report 2021-05..08, 2020 apart (under a minute).
    """
    try:
        import mlflow

        from smac_rl.agents.tracking import provenance_tags
        from smac_rl_forecasting import backtest, cards
    except ImportError as exc:
        raise _forecast_extra_missing(exc) from None
    from dataclasses import asdict, replace

    out = run_dir / target.value
    result: PriceBacktestResult | ArrivalsBacktestResult
    columns: tuple[str, ...]
    try:
        if target is Target.prices:
            config = backtest.PriceBacktestConfig()
            config = replace(config, booster=replace(config.booster, num_threads=threads, n_trees=n_trees))
            params: dict[str, Any] = {"candidates": ",".join(config.candidates), **asdict(config.booster)}
            result = backtest.price_backtest(config, progress=_say)
            columns, timezone = cards.PRICE_SUMMARY_COLUMNS, "Europe/Amsterdam"
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
        mlflow.log_params(
            {**params, "target": target.value, "selected": result.selected, "origin": "12:00 local, next day"}
        )
        _log_evaluations(evaluations)
        for path in [*plots, out / "backtest.json"]:
            mlflow.log_artifact(str(path))
        run_id = run.info.run_id
    if export is not None:
        _export(result, target, export, version, run_id)
    if isinstance(result, backtest.PriceBacktestResult):
        lines = cards.price_target_lines(result)
    else:
        lines = cards.arrivals_target_lines(result)
    unit = "EUR/kWh; pinball: mean of q10/q50/q90" if target is Target.prices else "arrivals per 15 min"
    title = (
        f"Backtest of the {target.value} forecaster [{unit}] (selected: {result.selected}; run {run_id[:8]})"
    )
    _print_wide(_summary_table(title, evaluations, columns))
    for line in lines:
        _say(line)
    _say(f"plots and scores in {out}; open the run: .venv/bin/mlflow ui --backend-store-uri {tracking_uri}")


def _export(
    result: PriceBacktestResult | ArrivalsBacktestResult,
    target: Target,
    directory: Path,
    version: str,
    run_id: str,
) -> None:
    import shlex
    import sys

    from smac_rl.agents.tracking import git_sha
    from smac_rl_forecasting import cards
    from smac_rl_forecasting.backtest import PriceBacktestResult
    from smac_rl_forecasting.onnx_export import OnnxParityError, export_forecaster

    name = DEFAULT_NAMES[target]
    command = "smac " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    if isinstance(result, PriceBacktestResult):
        core = result.report_forecaster.core
        card = cards.price_model_card(result, name, version, command)
    else:
        core = result.report_forecaster
        card = cards.arrivals_model_card(result, name, version, command)
    forecasts = result.report.forecasts
    from smac_rl_forecasting.series import arrival_counts, bundled_prices

    if target is Target.prices:
        series = bundled_prices(
            dt.datetime(2015, 1, 1, tzinfo=dt.UTC), dt.datetime(2025, 1, 1, tzinfo=dt.UTC)
        )
    else:
        from smac_rl_forecasting.backtest import ARRIVALS_REPORT

        series = arrival_counts(ARRIVALS_REPORT)
    origins = sorted(set(forecasts["origin_utc"]))
    _, _, features, _, _ = core.feature_rows(series, origins)
    extra = {
        "target": target.value,
        "selected": result.selected,
        "mlflow_run_id": run_id,
        "git_sha": git_sha(),
        "report_scores": result.report.scores.to_dict(orient="index"),
        "command": command,
    }
    try:
        exported = export_forecaster(core, directory, features, name, version, extra, card)
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
    """Fit the default configuration (prices: normalized; arrivals: medium) and export it to ONNX.

    Prices are fitted on the bundle's hours up to ``--until``; arrivals on Caltech 2019-05..08. The
    card carries no test scores: run ``smac forecast backtest --export DIR`` for a scored model.
    """
    try:
        import mlflow

        from smac_rl.agents.tracking import git_sha, provenance_tags
        from smac_rl_forecasting import backtest
        from smac_rl_forecasting.model import SlotForecaster
        from smac_rl_forecasting.onnx_export import OnnxParityError, export_forecaster
        from smac_rl_forecasting.prices import PriceForecaster
        from smac_rl_forecasting.series import arrival_counts, bundled_prices
    except ImportError as exc:
        raise _forecast_extra_missing(exc) from None
    from dataclasses import replace

    try:
        end_day = dt.date.fromisoformat(until)
    except ValueError:
        raise fail(f"until: got {until!r}; expected a day as YYYY-MM-DD") from None
    core: SlotForecaster
    try:
        if target is Target.prices:
            end = dt.datetime.combine(end_day + dt.timedelta(days=1), dt.time(), tzinfo=dt.UTC)
            series = bundled_prices(
                dt.datetime(2015, 1, 1, tzinfo=dt.UTC), min(end, dt.datetime(2025, 1, 1, tzinfo=dt.UTC))
            )
            booster = replace(backtest.PriceBacktestConfig().booster, num_threads=threads)
            booster = booster if n_trees is None else replace(booster, n_trees=n_trees)
            _say(f"fitting the price forecaster on {series.index[0].date()} to {series.index[-1].date()} ...")
            core = PriceForecaster(booster=booster).fit(series).core
            data = f"Dutch day-ahead prices, targets up to {until}"
        else:
            series = arrival_counts(backtest.ARRIVALS_FIT)
            booster = replace(backtest.ARRIVALS_CANDIDATES["medium"], num_threads=threads)
            booster = booster if n_trees is None else replace(booster, n_trees=n_trees)
            _say(f"fitting the arrivals forecaster on Caltech {backtest.ARRIVALS_FIT} ...")
            core = backtest.arrivals_forecaster(booster).fit(series)
            data = f"Caltech arrivals per 15 min, {backtest.ARRIVALS_FIT}"
    except SmacError as exc:
        raise fail(str(exc)) from None
    last_origin = series.index[-1] + (series.index[1] - series.index[0])
    origins = [last_origin - dt.timedelta(days=d) for d in range(14)]
    _, _, features, _, _ = core.feature_rows(series, origins)
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
            )
        except (OnnxParityError, OSError) as exc:
            raise fail(str(exc)) from None
        for path in exported.onnx_files.values():
            mlflow.log_artifact(str(path))
        mlflow.log_artifact(str(out / "metadata.json"))
        mlflow.log_metric("onnx_parity_max_abs_error", exported.max_parity_error)
    _say(f"wrote {out} (ONNX-LightGBM parity {exported.max_parity_error:.2g}; MLflow run {run_id[:8]})")
