"""``smac optimize``: the perfect-foresight optimum of one scenario, or of many site-days in parallel."""

from __future__ import annotations

import datetime as dt
import importlib.util
import json
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

import typer

from smac_rl.cli.common import console, error_console, fail, fail_problems, print_table, resolve_scenario
from smac_rl.core.errors import ScenarioError, SmacError
from smac_rl.data.periods import CALTECH_PERIODS

if TYPE_CHECKING:
    from smac_rl.core.arrays import ScenarioArrays
    from smac_rl.core.specs import ScenarioSpec
    from smac_rl.optimal.batch import Backend, BatchSummary, DayJob, DayResult
    from smac_rl.optimal.solve import Builder, OptimalResult

EXPERIMENT_NAME = "smac-rl-optimize"
"""MLflow experiment of the batch runs."""

SINGLE_OUTPUT_SUFFIXES = (".json", ".parquet")


def optimize_command(
    scenario: Annotated[Path | None, typer.Option(help="One scenario file to solve.")] = None,
    builtin: Annotated[
        str | None, typer.Option(help="One built-in scenario to solve (demo_workplace).")
    ] = None,
    template: Annotated[
        str | None,
        typer.Option(help="Batch: template name (see 'smac scenario templates') or template YAML file."),
    ] = None,
    first_day: Annotated[
        str | None, typer.Option(help="Batch: first local day, YYYY-MM-DD (2015-01-01 to 2024-12-31).")
    ] = None,
    days: Annotated[int, typer.Option(min=1, help="Batch: consecutive local days.")] = 1,
    seeds: Annotated[int, typer.Option(min=1, help="Batch: generator seeds per day (0 .. seeds-1).")] = 1,
    sessions: Annotated[
        str, typer.Option(help="Batch: session source, elaad (distributions) or caltech (resampled).")
    ] = "elaad",
    period: Annotated[
        str, typer.Option(help="Batch: Caltech period for --sessions caltech.")
    ] = CALTECH_PERIODS[0],
    backend: Annotated[
        str, typer.Option(help="Batch: serial, joblib (local processes) or dask (a cluster).")
    ] = "joblib",
    jobs: Annotated[
        int | None,
        typer.Option(
            min=1, help="Batch: processes (joblib; default every core) or local Dask workers (default 2)."
        ),
    ] = None,
    scheduler: Annotated[
        str | None,
        typer.Option(
            help="Batch: address of a running Dask scheduler (tcp://host:8786); a local one if omitted."
        ),
    ] = None,
    time_limit: Annotated[float, typer.Option(min=0.001, help="Solver time limit per scenario [s].")] = 120.0,
    mip_gap: Annotated[
        float, typer.Option(min=0.0, max=1.0, help="Relative MIP gap to stop at [0..1].")
    ] = 1e-4,
    builder: Annotated[
        str,
        typer.Option(
            help="How the optimum is built: assemble (matrices from the arrays, fast) or pyomo (the "
            "readable model); the same optimum."
        ),
    ] = "assemble",
    out: Annotated[
        Path | None,
        typer.Option(
            help="One scenario: profile and KPIs as .json or .parquet. Batch: results .parquet "
            "(default <template>_<first-day>_<days>d_<seeds>seeds.parquet here)."
        ),
    ] = None,
    tracking_uri: Annotated[str, typer.Option(help="Batch: MLflow tracking URI.")] = "sqlite:///mlflow.db",
    track: Annotated[bool, typer.Option("--track/--no-track", help="Batch: log one MLflow run.")] = True,
) -> None:
    """Solve the perfect-foresight optimum (HiGHS): of one scenario, or of many generated site-days.

    One scenario (--scenario or --builtin, the demo by default): prints the optimum's KPIs, the
    solver status, gap and times. A batch (--template with --first-day): every day x seed is
    generated, solved with one solver thread, and compared with uncontrolled charging and LLF;
    results go to parquet and, from this process only, to one MLflow run.
    """
    if builder not in ("assemble", "pyomo"):
        raise fail(f"builder: got {builder!r}; expected assemble or pyomo")
    chosen: Builder = "pyomo" if builder == "pyomo" else "assemble"
    if template is None:
        batch_only = {"first-day": first_day, "days": None if days == 1 else days}
        batch_only["seeds"] = None if seeds == 1 else seeds
        for option, value in batch_only.items():
            if value is not None:
                raise fail(f"{option}: got {value!r} without --template; expected --template for a batch")
        _optimize_one(scenario, builtin, time_limit, mip_gap, out, chosen)
        return
    if scenario is not None or builtin is not None:
        raise fail("--template and --scenario/--builtin: got both; expected one of them")
    if first_day is None:
        raise fail("first-day: missing; expected a day as YYYY-MM-DD with --template")
    args = _batch_args(
        template, first_day, days, seeds, sessions, period, backend, jobs, scheduler, time_limit, mip_gap
    )
    _optimize_batch(replace(args, builder=chosen), out, tracking_uri if track else None)


def _needs(modules: tuple[str, ...], what: str, install: str) -> None:
    """Fail with one line when a module of an extra is not installed."""
    for module in modules:
        if importlib.util.find_spec(module) is None:
            raise fail(
                f"{what} needs the [{install}] extra ({module} is missing): "
                f"pip install -c constraints.txt -e '.[{install}]'"
            )


# --- one scenario -----------------------------------------------------------------------------


def _optimize_one(
    scenario: Path | None,
    builtin: str | None,
    time_limit_s: float,
    mip_gap_frac: float,
    out: Path | None,
    builder: Builder = "assemble",
) -> None:
    _needs(("pyomo", "highspy"), "smac optimize", "milp")
    from smac_rl.cli.render import kpi_table
    from smac_rl.core.arrays import compile_scenario
    from smac_rl.optimal.solve import solve_optimal

    if out is not None and out.suffix.lower() not in SINGLE_OUTPUT_SUFFIXES:
        raise fail(f"out: got {str(out)!r}; expected a .json or .parquet file")
    if out is not None and out.suffix.lower() == ".parquet":
        _needs(("pandas", "pyarrow"), "a parquet output", "milp")
    try:
        spec = resolve_scenario(scenario, builtin)
        arrays = compile_scenario(spec)
    except ScenarioError as exc:
        raise fail_problems(exc) from None
    except SmacError as exc:
        raise fail(str(exc)) from None
    if out is not None:
        _check_writable(out)
    try:
        with console.status(f"solving the perfect-foresight optimum of {spec.name} (HiGHS)"):
            result = solve_optimal(arrays, time_limit_s, mip_gap_frac, builder=builder)
    except SmacError as exc:
        raise fail(str(exc)) from None
    print_table(kpi_table([("optimal", result.kpis)], title=f"Optimum of {spec.name}"))
    console.print(
        f"status {result.status.name}; MIP gap {result.mip_gap_frac:.4%}; {result.n_binaries} binaries; "
        f"build ({result.builder}) {result.build_s:.2f} s; solve {result.solve_s:.2f} s; "
        f"solver objective ({spec.objective.name}) {result.objective_eur:.2f} EUR",
        highlight=False,
        soft_wrap=True,
    )
    if out is not None:
        _write_single(out, spec, arrays, result)
        console.print(f"wrote {out}", highlight=False, soft_wrap=True)


def _single_payload(spec: ScenarioSpec, arrays: ScenarioArrays, result: OptimalResult) -> dict[str, Any]:
    """The optimum as JSON: solver figures, KPIs, the per-step profile and each session's profile."""
    from smac_rl.core.arrays import connector_keys
    from smac_rl.core.profiles import json_profile, session_profiles
    from smac_rl.core.timegrid import step_starts_utc

    outlets = [(s.station_id, s.evse_id, s.connector_id, s.transaction_id) for s in spec.sessions]
    trace = result.trace
    return {
        "scenario": spec.name,
        "objective_name": spec.objective.name,
        "status": result.status.value,
        "mip_gap_frac": result.mip_gap_frac,
        "n_binaries": result.n_binaries,
        "builder": result.builder,
        "build_s": result.build_s,
        "compile_s": result.compile_s,
        "solve_s": result.solve_s,
        "objective_eur": result.objective_eur,
        "kpis": result.kpis.as_dict(),
        "step_min": spec.time_grid.step_min,
        "step_start_utc": [t.isoformat() for t in step_starts_utc(spec.time_grid)],
        "connectors": [
            {
                "station_id": station,
                "evse_id": evse,
                "connector_id": connector,
                "ev_power_kw": trace.ev_power_kw[:, c].tolist(),
            }
            for c, (station, evse, connector) in enumerate(connector_keys(spec.site))
        ],
        "storage_power_kw": trace.storage_power_kw.tolist(),
        "grid_import_kw": trace.grid_import_kw.tolist(),
        "grid_export_kw": trace.grid_export_kw.tolist(),
        "sessions": [
            {"session_id": p.session_id, **json_profile(p)} for p in session_profiles(arrays, trace, outlets)
        ],
    }


def _write_single(out: Path, spec: ScenarioSpec, arrays: ScenarioArrays, result: OptimalResult) -> None:
    """Write the optimum as JSON, or as a parquet table of steps with the rest in its metadata."""
    payload = _single_payload(spec, arrays, result)
    try:
        if out.suffix.lower() == ".json":
            out.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
            return
        import pandas as pd

        columns: dict[str, Any] = {
            "step_start_utc": pd.to_datetime(payload["step_start_utc"], utc=True),
            "grid_import_kw": payload["grid_import_kw"],
            "grid_export_kw": payload["grid_export_kw"],
            "storage_power_kw": payload["storage_power_kw"],
        }
        for connector in payload["connectors"]:
            key = f"{connector['station_id']}.{connector['evse_id']}.{connector['connector_id']}"
            columns[f"{key}.ev_power_kw"] = connector["ev_power_kw"]
        frame = pd.DataFrame(columns)
        in_columns = {"step_start_utc", "connectors", "grid_import_kw", "grid_export_kw", "storage_power_kw"}
        frame.attrs = {k: v for k, v in payload.items() if k not in in_columns}
        frame.to_parquet(out, engine="pyarrow", index=False)
    except OSError as exc:
        raise fail(f"out: got {str(out)!r}; expected a writable file path ({exc.strerror})") from None


def _check_writable(out: Path) -> None:
    """Fail before any work when the output file cannot be written (a folder, no permission...)."""
    existed = out.exists()
    try:
        if out.is_dir():
            raise IsADirectoryError(21, "Is a directory")
        out.parent.mkdir(parents=True, exist_ok=True)
        with out.open("ab"):
            pass
    except OSError as exc:
        raise fail(f"out: got {str(out)!r}; expected a writable file path ({exc.strerror})") from None
    if not existed:
        out.unlink()


# --- a batch of site-days ---------------------------------------------------------------------


@dataclass(frozen=True)
class _BatchArgs:
    """The batch's options, checked (see the command's help)."""

    template: str
    first_day: dt.date
    n_days: int
    n_seeds: int
    sessions: Literal["elaad", "caltech"]
    period: str
    backend: Backend
    n_jobs: int | None
    scheduler: str | None
    time_limit_s: float
    mip_gap_frac: float
    builder: Builder = "assemble"


def _batch_args(
    template: str,
    first_day: str,
    n_days: int,
    n_seeds: int,
    sessions: str,
    period: str,
    backend: str,
    n_jobs: int | None,
    scheduler: str | None,
    time_limit_s: float,
    mip_gap_frac: float,
) -> _BatchArgs:
    """Check the options that need no data; fail with one line on the first problem."""
    from smac_rl.optimal.batch import BACKENDS

    try:
        day = dt.date.fromisoformat(first_day)
    except ValueError:
        raise fail(f"first-day: got {first_day!r}; expected a day as YYYY-MM-DD") from None
    if sessions not in ("elaad", "caltech"):
        raise fail(f"sessions: got {sessions!r}; expected elaad or caltech")
    if sessions == "caltech" and period not in CALTECH_PERIODS:
        raise fail(f"period: got {period!r}; expected one of {', '.join(CALTECH_PERIODS)}")
    chosen = next((b for b in BACKENDS if b == backend), None)
    if chosen is None:
        raise fail(f"backend: got {backend!r}; expected one of {', '.join(BACKENDS)}")
    if scheduler is not None and chosen != "dask":
        raise fail(f"scheduler: got {scheduler!r} with --backend {chosen}; expected --backend dask")
    return _BatchArgs(
        template=template,
        first_day=day,
        n_days=n_days,
        n_seeds=n_seeds,
        sessions="caltech" if sessions == "caltech" else "elaad",
        period=period,
        backend=chosen,
        n_jobs=n_jobs,
        scheduler=scheduler,
        time_limit_s=time_limit_s,
        mip_gap_frac=mip_gap_frac,
    )


def _batch_jobs(args: _BatchArgs) -> tuple[str, list[DayJob]]:
    """The template's id and the jobs; every input problem fails here, before any work."""
    _needs(("pandas", "pvlib"), "a batch", "data")
    _needs(("pyarrow",), "a batch's parquet output", "milp")
    if args.backend == "joblib":
        _needs(("joblib",), "--backend joblib", "milp")
    if args.backend == "dask":
        _needs(("distributed",), "--backend dask", "distributed")
    if args.scheduler is None:
        _needs(("pyomo", "highspy"), "smac optimize", "milp")
    from smac_rl.data.generator import local_days_grid
    from smac_rl.data.loaders import day_ahead_prices_on_grid
    from smac_rl.data.template_spec import load_template, template_names
    from smac_rl.optimal.batch import day_jobs

    names = template_names()
    if args.template not in names and not Path(args.template).is_file():
        raise fail(
            f"template: got {args.template!r}; expected a template name ({', '.join(names)}) or a YAML file"
        )
    try:
        template = load_template(args.template)
        # Every day must lie within the bundled prices: say so now, not once per day.
        grid = local_days_grid(template.site.timezone, args.first_day, args.n_days, template.step_min)
        day_ahead_prices_on_grid(grid)
        # Workers load the template again: by name, or by the file's absolute path.
        name = args.template if args.template in names else str(Path(args.template).resolve())
        jobs = day_jobs(name, args.first_day, args.n_days, args.n_seeds, args.sessions, args.period)
    except ScenarioError as exc:
        raise fail_problems(exc) from None
    except SmacError as exc:
        raise fail(str(exc)) from None
    return template.template_id, jobs


def _optimize_batch(args: _BatchArgs, out: Path | None, tracking_uri: str | None) -> None:
    template_id, jobs = _batch_jobs(args)
    if tracking_uri is not None:
        _needs(("mlflow",), "tracking (or pass --no-track)", "train")
    target = out or Path(f"{template_id}_{args.first_day}_{args.n_days}d_{args.n_seeds}seeds.parquet")
    if target.suffix.lower() != ".parquet":
        raise fail(f"out: got {str(target)!r}; expected a .parquet file")
    _check_writable(target)
    from smac_rl.optimal.batch import summarize_results, write_results_parquet

    started = time.perf_counter()
    results = _run_with_progress(jobs, args)
    wall_s = time.perf_counter() - started
    try:
        write_results_parquet(results, target)
    except OSError as exc:
        raise fail(f"out: got {str(target)!r}; expected a writable file path ({exc.strerror})") from None
    summary = summarize_results(results)
    print_table(
        _summary_table(summary, f"Optima of {template_id}: {args.n_days} day(s) x {args.n_seeds} seed(s)")
    )
    for record in results:
        if record.error is not None:
            error_console.print(
                f"[bold yellow]failed:[/] {record.job_label}: {record.error}", highlight=False, soft_wrap=True
            )
    console.print(
        f"wrote {target}: {len(results)} site-days ({summary.n_failed} failed) in {wall_s:.1f} s "
        f"on {args.backend}",
        highlight=False,
        soft_wrap=True,
    )
    if tracking_uri is not None:
        run_id = _log_run(tracking_uri, args, template_id, summary, wall_s, target)
        console.print(f"MLflow run {run_id} ({tracking_uri})", highlight=False, soft_wrap=True)
    if summary.n_failed == summary.n_days:
        raise typer.Exit(code=1)


def _run_with_progress(jobs: list[DayJob], args: _BatchArgs) -> list[DayResult]:
    """Run the batch with a progress bar over finished site-days (on a terminal)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from smac_rl.optimal.batch import optimize_days

    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=True, disable=not console.is_terminal) as progress:
        task = progress.add_task(f"optima ({args.backend})", total=len(jobs))

        def advance(record: DayResult) -> None:
            progress.update(task, advance=1, description=f"optima ({args.backend}): {record.job_label}")

        try:
            return optimize_days(
                jobs,
                backend=args.backend,
                n_jobs=args.n_jobs,
                scheduler_address=args.scheduler,
                time_limit_s=args.time_limit_s,
                mip_gap_frac=args.mip_gap_frac,
                on_result=advance,
                builder=args.builder,
            )
        except SmacError as exc:
            raise fail(str(exc)) from None


def _summary_table(summary: BatchSummary, title: str) -> Any:
    from rich.markup import escape
    from rich.table import Table

    def shown(value: float | None, fmt: str) -> str:
        return "n/a" if value is None else fmt.format(value)

    table = Table(title=title, min_width=len(title) + 4)
    table.add_column("figure", style="bold")
    table.add_column("value", justify="right")
    rows = (
        ("site-days", str(summary.n_days)),
        ("failed", str(summary.n_failed)),
        ("optimal", str(summary.n_optimal)),
        ("stopped at the time limit", str(summary.n_time_limit)),
        ("share optimal", shown(summary.share_optimal_frac, "{:.0%}")),
        ("mean solve [s]", shown(summary.mean_solve_s, "{:.2f}")),
        ("median solve [s]", shown(summary.median_solve_s, "{:.2f}")),
        ("max solve [s]", shown(summary.max_solve_s, "{:.2f}")),
        ("mean savings possible [EUR]", shown(summary.mean_savings_possible_eur, "{:.2f}")),
        ("LLF savings capture, mean", shown(summary.llf_savings_capture_mean_frac, "{:.0%}")),
        ("days under 1 EUR to save", str(summary.n_days_savings_excluded)),
    )
    for label, value in rows:
        table.add_row(escape(label), value)
    return table


def _log_run(
    tracking_uri: str, args: _BatchArgs, template_id: str, summary: BatchSummary, wall_s: float, parquet: Path
) -> str:
    """Log the batch as one MLflow run from this process: params, summary metrics, the parquet."""
    import dataclasses
    from importlib import metadata

    import mlflow
    from mlflow.entities import Metric, Param
    from mlflow.exceptions import MlflowException

    from smac_rl.agents.provenance import provenance_tags

    tags = provenance_tags()
    for package in ("joblib", "dask", "distributed", "pyarrow"):
        try:
            tags[f"version.{package}"] = metadata.version(package)
        except metadata.PackageNotFoundError:
            tags[f"version.{package}"] = "not installed"
    params = {
        "template": template_id,
        "first_day": args.first_day.isoformat(),
        "days": args.n_days,
        "seeds": args.n_seeds,
        "sessions": args.sessions,
        "backend": args.backend,
        "jobs": "default" if args.n_jobs is None else args.n_jobs,
        "scheduler": args.scheduler or "local",
        "time_limit_s": args.time_limit_s,
        "mip_gap_frac": args.mip_gap_frac,
        "builder": args.builder,
    }
    if args.sessions == "caltech":
        params["caltech_period"] = args.period
    figures: dict[str, float | None] = {
        k: float(v) if v is not None else None for k, v in dataclasses.asdict(summary).items()
    }
    figures["wall_s"] = wall_s
    now_ms = int(time.time() * 1000)
    client = mlflow.MlflowClient(tracking_uri=tracking_uri)
    run_id: str | None = None
    try:
        experiment = client.get_experiment_by_name(EXPERIMENT_NAME)
        experiment_id = (
            experiment.experiment_id if experiment is not None else client.create_experiment(EXPERIMENT_NAME)
        )
        run_name = f"optimize-{template_id}-{args.first_day}-{args.n_days}d-{args.n_seeds}s"
        run_id = client.create_run(experiment_id, run_name=run_name, tags=tags).info.run_id
        client.log_batch(
            run_id,
            metrics=[Metric(k, v, now_ms, 0) for k, v in figures.items() if v is not None],
            params=[Param(k, str(v)) for k, v in params.items()],
        )
        client.log_artifact(run_id, str(parquet))
        client.set_terminated(run_id)
    except (MlflowException, OSError) as exc:
        if run_id is not None:
            client.set_terminated(run_id, status="FAILED")
        raise fail(
            f"tracking-uri: got {tracking_uri!r}; expected a usable MLflow store "
            f"({' '.join(str(exc).split())}); the results are in {parquet}"
        ) from None
    return run_id
