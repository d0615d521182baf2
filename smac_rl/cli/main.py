"""The ``smac`` command."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from smac_rl.core.arrays import ScenarioArrays, compile_scenario
from smac_rl.core.errors import ProblemsError, ScenarioError, SmacError
from smac_rl.core.scenario_io import load_builtin_scenario, load_scenario
from smac_rl.core.scoring import Kpis
from smac_rl.core.specs import ScenarioSpec
from smac_rl.data.periods import CALTECH_PERIODS
from smac_rl.policies import HEURISTICS, Policy, make_heuristic, run_policy

DEFAULT_SCENARIO = "demo_workplace"

app = typer.Typer(
    name="smac",
    help="SMAC-RL: smart-charging scenarios, policies and KPIs.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
scenario_app = typer.Typer(help="Validate and inspect scenarios.", no_args_is_help=True)
app.add_typer(scenario_app, name="scenario")
data_app = typer.Typer(help="The data bundle and the online sources.", no_args_is_help=True)
app.add_typer(data_app, name="data")

console = Console()
error_console = Console(stderr=True)

ScenarioFile = Annotated[Path, typer.Argument(help="Scenario file (.yaml, .yml or .json).")]


def _fail(message: str) -> typer.Exit:
    error_console.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    return typer.Exit(code=1)


def _fail_problems(exc: ProblemsError[Any]) -> typer.Exit:
    where = f"{exc.source}: " if exc.source else ""
    for problem in exc.problems:
        error_console.print(f"[bold red]error:[/] {where}{problem}", highlight=False, soft_wrap=True)
    return typer.Exit(code=1)


def _write_output(path: Path, text: str) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise _fail(f"out: got {str(path)!r}; expected a writable file path ({exc.strerror})") from None


def _resolve_scenario(file: Path | None, builtin: str | None) -> ScenarioSpec:
    if file is not None and builtin is not None:
        raise SmacError("--scenario and --builtin: got both; expected one of them")
    if file is not None:
        return load_scenario(file)
    return load_builtin_scenario(builtin or DEFAULT_SCENARIO)


def _run_with_progress(arrays: ScenarioArrays, policies: list[Policy]) -> list[tuple[str, Kpis]]:
    """Run each policy on the scenario with a progress bar (on a terminal)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn

    results: list[tuple[str, Kpis]] = []
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=True, disable=not console.is_terminal) as progress:
        for policy in policies:
            task = progress.add_task(policy.name, total=arrays.n_steps)

            def advance(_step: int, task: TaskID = task) -> None:
                progress.advance(task)

            _, kpis = run_policy(arrays, policy, advance)
            results.append((policy.name, kpis))
    return results


@scenario_app.command("validate")
def scenario_validate(file: ScenarioFile) -> None:
    """Check a scenario file; print every problem with its field path, exit 1 on any."""
    try:
        spec = load_scenario(file)
    except ScenarioError as exc:
        raise _fail_problems(exc) from None
    console.print(
        f"{file}: valid scenario {spec.name!r} ({len(spec.site.chargers)} chargers, "
        f"{len(spec.sessions)} sessions, {spec.time_grid.n_steps} steps)",
        highlight=False,
        soft_wrap=True,
    )


@scenario_app.command("show")
def scenario_show(
    file: Annotated[
        Path | None, typer.Argument(help="Scenario file; the built-in demo scenario when omitted.")
    ] = None,
    builtin: Annotated[
        str | None,
        typer.Option(help="A built-in scenario instead of a file (demo_workplace)."),
    ] = None,
) -> None:
    """Print a readable summary of a scenario: horizon, assets, tariff, sessions."""
    from smac_rl.cli.render import scenario_summary

    try:
        spec = _resolve_scenario(file, builtin)
    except ScenarioError as exc:
        raise _fail_problems(exc) from None
    except SmacError as exc:
        raise _fail(str(exc)) from None
    console.print(scenario_summary(spec))


def _data_extra_missing(exc: ImportError) -> typer.Exit:
    return _fail(
        f"this command needs the [data] extra ({exc.name} is missing): "
        "pip install -c constraints.txt -e '.[data]', or run make test once"
    )


@scenario_app.command("templates")
def scenario_templates() -> None:
    """List the built-in pilot site templates (illustrative configurations)."""
    try:
        from smac_rl.data.template_spec import load_template, template_names
    except ImportError as exc:
        raise _data_extra_missing(exc) from None
    for name in template_names():
        template = load_template(name)
        console.print(f"[bold]{name}[/]: {' '.join(template.description.split())}", highlight=False)


@scenario_app.command("generate")
def scenario_generate(
    site: Annotated[
        str, typer.Option(help="Template name (see 'smac scenario templates') or template YAML file.")
    ],
    date: Annotated[str, typer.Option(help="First local day, YYYY-MM-DD (2015-01-01 to 2024-12-31).")],
    days: Annotated[int, typer.Option(min=1, max=366, help="Number of local days.")] = 1,
    seed: Annotated[int, typer.Option(min=0, help="Seed of every random draw (>= 0).")] = 0,
    sessions: Annotated[
        str, typer.Option(help="Session source: elaad (distributions) or caltech (resampled).")
    ] = "elaad",
    period: Annotated[str, typer.Option(help="Caltech period for --sessions caltech.")] = CALTECH_PERIODS[0],
    out: Annotated[
        Path | None, typer.Option(help="Scenario file to write; default <name>.yaml here.")
    ] = None,
    plot: Annotated[
        Path | None, typer.Option(help="Also write a PNG of the generated days against the sources.")
    ] = None,
) -> None:
    """Generate site-days from a template: sessions, prices, PV and base load on one grid."""
    try:
        from smac_rl.data.generator import generate_scenario
        from smac_rl.data.template_spec import load_template
    except ImportError as exc:
        raise _data_extra_missing(exc) from None
    from smac_rl.core.scenario_io import scenario_to_yaml

    try:
        first_day = dt.date.fromisoformat(date)
    except ValueError:
        raise _fail(f"date: got {date!r}; expected a day as YYYY-MM-DD") from None
    if sessions not in ("elaad", "caltech"):
        raise _fail(f"sessions: got {sessions!r}; expected elaad or caltech")
    if plot is not None and plot.suffix.lower() != ".png":
        raise _fail(f"plot: got {str(plot)!r}; expected a .png file")
    try:
        template = load_template(site)
        spec, report = generate_scenario(
            template, first_day, days, seed, "caltech" if sessions == "caltech" else "elaad", period
        )
    except ScenarioError as exc:
        raise _fail_problems(exc) from None
    except SmacError as exc:
        raise _fail(str(exc)) from None
    if plot is not None:
        from smac_rl.data.plots import plot_generated

        try:
            written = plot_generated(spec, template, plot, sessions, period)
        except OSError as exc:
            raise _fail(f"plot: got {str(plot)!r}; expected a writable file path ({exc.strerror})") from None
        console.print(f"wrote {written}", highlight=False, soft_wrap=True)
    target = out or Path(f"{spec.name}.yaml")
    _write_output(target, scenario_to_yaml(spec))
    console.print(
        f"wrote {target}: {report.n_sessions} sessions "
        f"({report.n_turned_away} turned away, no free connector; "
        f"{report.n_energy_capped} energy requests capped), "
        f"{spec.time_grid.n_steps} steps of {spec.time_grid.step_min} min",
        highlight=False,
        soft_wrap=True,
    )


@scenario_app.command("import")
def scenario_import(
    site: Annotated[
        str, typer.Option(help="Template name or template YAML file: the site, base load and PV.")
    ],
    sessions: Annotated[Path, typer.Option(help="Sessions CSV (columns in docs/DATA_FORMATS.md).")],
    layout: Annotated[
        str, typer.Option(help="Sessions layout: plain (SessionSpec columns) or caltech (ACN-Data).")
    ] = "plain",
    prices: Annotated[
        Path | None, typer.Option(help="Prices CSV (time_utc, price_eur_per_kwh or _mwh).")
    ] = None,
    seed: Annotated[
        int, typer.Option(min=0, help="Seed of the imputations and generated series (>= 0).")
    ] = 0,
    date: Annotated[str | None, typer.Option(help="First local day; default: the first arrival's.")] = None,
    days: Annotated[
        int | None, typer.Option(min=1, max=366, help="Number of days; default: through the last departure.")
    ] = None,
    out: Annotated[
        Path | None, typer.Option(help="Scenario file to write; default <name>.yaml here.")
    ] = None,
) -> None:
    """Build a scenario from your own sessions (and prices) on a template site; a bad row writes nothing."""
    try:
        from smac_rl.data.import_scenario import import_scenario
        from smac_rl.data.template_spec import load_template
    except ImportError as exc:
        raise _data_extra_missing(exc) from None
    from smac_rl.core.scenario_io import scenario_to_yaml

    if layout not in ("plain", "caltech"):
        raise _fail(f"layout: got {layout!r}; expected plain or caltech")
    try:
        first_day = None if date is None else dt.date.fromisoformat(date)
    except ValueError:
        raise _fail(f"date: got {date!r}; expected a day as YYYY-MM-DD") from None
    try:
        template = load_template(site)
        spec, report = import_scenario(
            template, sessions, "caltech" if layout == "caltech" else "plain", prices, seed, first_day, days
        )
    except ProblemsError as exc:
        raise _fail_problems(exc) from None
    except SmacError as exc:
        raise _fail(str(exc)) from None
    target = out or Path(f"{spec.name}.yaml")
    _write_output(target, scenario_to_yaml(spec))
    console.print(
        f"wrote {target}: {report.n_sessions} sessions "
        f"({report.n_turned_away} turned away, no free connector), "
        f"{spec.time_grid.n_steps} steps of {spec.time_grid.step_min} min",
        highlight=False,
        soft_wrap=True,
    )


@data_app.command("verify")
def data_verify() -> None:
    """Check every bundled data file against the sha256 in its provenance file."""
    try:
        from smac_rl.data.loaders import provenance, verify_bundle
    except ImportError as exc:
        raise _data_extra_missing(exc) from None
    problems = verify_bundle()
    for problem in problems:
        error_console.print(f"[bold red]error:[/] {problem}", highlight=False, soft_wrap=True)
    if problems:
        raise typer.Exit(code=1)
    console.print(f"bundle intact: {len(provenance()['files'])} files match PROVENANCE.json", highlight=False)


def _instant(name: str, text: str) -> dt.datetime:
    try:
        value = dt.datetime.fromisoformat(text)
    except ValueError:
        raise _fail(
            f"{name}: got {text!r}; expected an ISO 8601 time with offset, e.g. 2024-05-01T00:00:00Z"
        ) from None
    if value.tzinfo is None:
        raise _fail(f"{name}: got {text!r}; expected a time with a UTC offset (Z or +02:00)")
    return value


@data_app.command("fetch-prices")
def data_fetch_prices(
    area: Annotated[str, typer.Option(help="ENTSO-E bidding zone (NL, DE_LU, ES, IT_NORD, FI...).")],
    start: Annotated[str, typer.Option(help="Start, ISO 8601 with offset.")],
    end: Annotated[str, typer.Option(help="End (exclusive), ISO 8601 with offset.")],
    out: Annotated[Path, typer.Option(help="Prices CSV to write (the --prices format of scenario import).")],
    token: Annotated[
        str, typer.Option(envvar="SMAC_ENTSOE_TOKEN", help="ENTSO-E API token.", show_default=False)
    ] = "",
    base_url: Annotated[
        str | None, typer.Option(help="Endpoint instead of the public one (proxy, mirror).")
    ] = None,
) -> None:
    """Download day-ahead prices from the ENTSO-E Transparency Platform (needs a token)."""
    try:
        from smac_rl.data.online import fetch_entsoe_day_ahead_prices
    except ImportError as exc:
        raise _data_extra_missing(exc) from None
    first, last = _instant("start", start), _instant("end", end)
    try:
        prices = fetch_entsoe_day_ahead_prices(token, area, first, last, base_url)
    except SmacError as exc:
        raise _fail(str(exc)) from None
    _write_output(out, prices.to_csv(date_format="%Y-%m-%dT%H:%M:%SZ", float_format="%.6f"))
    console.print(f"wrote {out}: {len(prices)} prices of {area}", highlight=False, soft_wrap=True)


@data_app.command("fetch-acn")
def data_fetch_acn(
    site: Annotated[str, typer.Option(help="ACN site: caltech, jpl or office001.")],
    start: Annotated[str, typer.Option(help="Start of the connection times, ISO 8601 with offset.")],
    end: Annotated[str, typer.Option(help="End (exclusive), ISO 8601 with offset.")],
    out: Annotated[Path, typer.Option(help="Sessions CSV to write (the caltech layout of scenario import).")],
    token: Annotated[
        str, typer.Option(envvar="SMAC_ACN_TOKEN", help="ACN-Data API token.", show_default=False)
    ] = "",
    base_url: Annotated[
        str | None, typer.Option(help="API root instead of the public one (proxy, mirror).")
    ] = None,
) -> None:
    """Download charging sessions from ACN-Data (Caltech) (needs a token)."""
    try:
        from smac_rl.data.online import caltech_sessions_csv, fetch_acn_sessions
    except ImportError as exc:
        raise _data_extra_missing(exc) from None
    first, last = _instant("start", start), _instant("end", end)
    try:
        sessions, n_dropped = fetch_acn_sessions(token, site, first, last, base_url)
    except SmacError as exc:
        raise _fail(str(exc)) from None
    _write_output(out, caltech_sessions_csv(sessions))
    console.print(
        f"wrote {out}: {len(sessions)} sessions of {site} ({n_dropped} left out: no energy delivered)",
        highlight=False,
        soft_wrap=True,
    )


@app.command("evaluate")
def evaluate(
    scenario: Annotated[
        Path | None, typer.Option(help="Scenario file; the built-in demo scenario when omitted.")
    ] = None,
    builtin: Annotated[str | None, typer.Option(help="A built-in scenario instead of a file.")] = None,
    policy: Annotated[
        list[str] | None,
        typer.Option(
            help=f"Policy to evaluate, repeatable: {', '.join(HEURISTICS)} (alias llf) or optimal "
            "(perfect-foresight optimum, needs [milp]). Default: the heuristics."
        ),
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the KPIs as JSON instead of a table.")
    ] = False,
) -> None:
    """Run policies on a scenario and print their KPIs from the one scorer.

    With ``optimal`` among them, savings capture is reported against uncontrolled charging.
    """
    names = policy or list(HEURISTICS)
    try:
        spec = _resolve_scenario(scenario, builtin)
        policies = [make_heuristic(name) for name in names if name != "optimal"]
    except ScenarioError as exc:
        raise _fail_problems(exc) from None
    except SmacError as exc:
        raise _fail(str(exc)) from None
    arrays = compile_scenario(spec)
    results = _run_with_progress(arrays, policies)
    if "optimal" in names:
        results.append(("optimal", _optimum_kpis(arrays)))
    capture = _savings_capture(arrays, results)
    if as_json:
        payload = {
            "scenario": spec.name,
            "kpis": {n: k.as_dict() for n, k in results},
            "savings_capture_frac": capture,
        }
        console.print_json(json.dumps(payload))
        return
    from smac_rl.cli.render import kpi_table

    console.print(kpi_table(results, title=f"KPIs on {spec.name}", savings_capture=capture))


def _optimum_kpis(arrays: ScenarioArrays) -> Kpis:
    try:
        from smac_rl.optimal.solve import solve_optimal
    except ImportError as exc:
        raise _fail(
            f"policy optimal needs the [milp] extra ({exc.name} is missing): "
            "pip install -c constraints.txt -e '.[milp]'"
        ) from None
    try:
        with console.status("solving the perfect-foresight optimum (HiGHS)"):
            return solve_optimal(arrays).kpis
    except SmacError as exc:
        raise _fail(str(exc)) from None


def _savings_capture(
    arrays: ScenarioArrays, results: list[tuple[str, Kpis]]
) -> dict[str, float | None] | None:
    """Savings capture of every policy when the optimum is among the results (needs uncontrolled too)."""
    from smac_rl.core.scoring import savings_capture_frac

    by_name = dict(results)
    if "optimal" not in by_name:
        return None
    uncontrolled = by_name.get("uncontrolled") or run_policy(arrays, make_heuristic("uncontrolled"))[1]
    oracle = by_name["optimal"].total_cost_eur
    return {
        name: savings_capture_frac(uncontrolled.total_cost_eur, kpis.total_cost_eur, oracle)
        for name, kpis in results
    }


@app.command("demo")
def demo(
    builtin: Annotated[str, typer.Option(help="Built-in scenario to run.")] = DEFAULT_SCENARIO,
) -> None:
    """The main job: show the built-in scenario and evaluate every heuristic on it."""
    from smac_rl.cli.render import kpi_table, scenario_summary

    try:
        spec = load_builtin_scenario(builtin)
    except ScenarioError as exc:
        raise _fail_problems(exc) from None
    console.print(scenario_summary(spec))
    arrays = compile_scenario(spec)
    results = _run_with_progress(arrays, [make_heuristic(name) for name in HEURISTICS])
    console.print(kpi_table(results, title=f"Heuristics on {spec.name}"))
    console.print(
        "Costs, peak and unmet energy come from one scorer over one physics step; every setpoint passed the "
        "safety projection ('projected away' is what it removed).",
        highlight=False,
    )


def main() -> None:
    """Entry point of the ``smac`` console script."""
    app()
