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


@app.command("train")
def train_command(
    config: Annotated[Path | None, typer.Option(help="Training config YAML (keys of TrainConfig).")] = None,
    template: Annotated[str | None, typer.Option(help="Template to train on (overrides the config).")] = None,
    timesteps: Annotated[
        int | None, typer.Option(min=1, help="Environment steps (overrides the config).")
    ] = None,
    seed: Annotated[int | None, typer.Option(min=0, help="Seed (overrides the config).")] = None,
    run_dir: Annotated[Path, typer.Option(help="Folder for the run's files.")] = Path("runs/train"),
    tracking_uri: Annotated[str, typer.Option(help="MLflow tracking URI.")] = "sqlite:///mlflow.db",
) -> None:
    """Train PPO on generated days of a template, tracked in MLflow."""
    try:
        from smac_rl.agents.config import TrainConfig
        from smac_rl.agents.train import train
    except ImportError as exc:
        raise _fail(f"smac train needs the [train] extra ({exc.name} is missing)") from None
    from pydantic import ValidationError

    from smac_rl.core.scenario_io import problems_from_pydantic, read_data_file

    try:
        data = dict(read_data_file(config)) if config is not None else {}  # type: ignore[call-overload]
        overrides = {"template": template, "total_timesteps": timesteps, "seed": seed}
        data.update({k: v for k, v in overrides.items() if v is not None})
        train_config = TrainConfig.model_validate(data)
    except ScenarioError as exc:
        raise _fail_problems(exc) from None
    except ValidationError as exc:
        raise _fail_problems(ScenarioError(problems_from_pydantic(exc.errors()), str(config))) from None
    try:
        result = train(train_config, run_dir, tracking_uri, progress_bar=console.is_terminal)
    except ScenarioError as exc:
        raise _fail_problems(exc) from None
    except SmacError as exc:
        raise _fail(str(exc)) from None
    console.print(
        f"trained {train_config.total_timesteps} steps; model {result.model_path}; MLflow run {result.run_id}"
    )


@app.command("export")
def export_command(
    run_dir: Annotated[Path, typer.Option(help="A training run folder (model.zip and train_config.yaml).")],
    out: Annotated[Path | None, typer.Option(help="Export folder; default <run_dir>/export.")] = None,
) -> None:
    """Export a trained policy to ONNX (normalisation and action scaling inside) with metadata.json."""
    try:
        from stable_baselines3 import PPO

        from smac_rl.agents.config import TrainConfig
        from smac_rl.agents.export import export_policy
    except ImportError as exc:
        raise _fail(f"smac export needs the [train] extra ({exc.name} is missing)") from None
    from smac_rl.core.observation import ObservationLayout
    from smac_rl.core.scenario_io import read_data_file

    model_path, config_path = run_dir / "model.zip", run_dir / "train_config.yaml"
    if not model_path.is_file() or not config_path.is_file():
        raise _fail(f"run-dir: got {str(run_dir)!r}; expected a folder with model.zip and train_config.yaml")
    config = TrainConfig.model_validate(read_data_file(config_path))
    model = PPO.load(model_path, device="cpu")
    target = out or run_dir / "export"
    metadata = export_policy(
        model, ObservationLayout(config.n_connectors_max), target, "unknown", config.template, 15, 96
    )
    console.print(f"wrote {target / 'policy.onnx'} (sha256 {metadata.onnx_sha256[:12]}...) and metadata.json")


@app.command("serve")
def serve_command(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port.")] = 8000,
    model: Annotated[Path | None, typer.Option(help="Model folder (policy.onnx + metadata.json).")] = None,
) -> None:
    """Serve charging profiles over HTTP (FastAPI under uvicorn)."""
    try:
        import uvicorn

        from smac_rl_serve.app import create_app
        from smac_rl_serve.model import ModelError
        from smac_rl_serve.settings import Settings
    except ImportError as exc:
        raise _fail(f"smac serve needs the [serve] extra ({exc.name} is missing)") from None
    try:
        application = create_app(Settings(model_dir=model) if model is not None else Settings())
    except ModelError as exc:
        raise _fail(str(exc)) from None
    uvicorn.run(application, host=host, port=port)


@app.command("demo")
def demo(
    site: Annotated[str, typer.Option(help="Pilot template of the demo day.")] = "turku_ultrafast_hub",
    date: Annotated[
        str, typer.Option(help="Local day to generate (the 2024 test year by default).")
    ] = "2024-07-09",
    timesteps: Annotated[int, typer.Option(min=1, help="PPO training steps.")] = 60_000,
    run_dir: Annotated[Path, typer.Option(help="Folder for this demo's files.")] = Path("runs/demo"),
    tracking_uri: Annotated[str, typer.Option(help="MLflow tracking URI.")] = "sqlite:///mlflow.db",
) -> None:
    """The main job: a generated day; uncontrolled, LLF, the optimum and a briefly trained PPO."""
    import datetime as dt

    from smac_rl.agents.config import TrainConfig
    from smac_rl.agents.export import export_policy
    from smac_rl.agents.policy import Sb3Policy
    from smac_rl.agents.train import train
    from smac_rl.cli.render import kpi_table, scenario_summary
    from smac_rl.core.scenario_io import scenario_to_yaml
    from smac_rl.data.generator import generate_scenario
    from smac_rl.data.template_spec import load_template

    try:
        template = load_template(site)
        spec, _ = generate_scenario(template, dt.date.fromisoformat(date), 1, seed=0)
    except ValueError:
        raise _fail(f"date: got {date!r}; expected a day as YYYY-MM-DD") from None
    except ScenarioError as exc:
        raise _fail_problems(exc) from None
    except SmacError as exc:
        raise _fail(str(exc)) from None
    _write_output(run_dir / "scenario.yaml", scenario_to_yaml(spec))
    console.print(scenario_summary(spec))
    arrays = compile_scenario(spec)
    results = _run_with_progress(arrays, [make_heuristic(name) for name in HEURISTICS])
    results.append(("optimal", _optimum_kpis(arrays)))
    config = TrainConfig(template=site, total_timesteps=timesteps)
    console.print(f"training PPO for {timesteps} steps on {site} days of 2023 (MLflow: {tracking_uri}) ...")
    trained = train(config, run_dir / "ppo", tracking_uri, progress_bar=console.is_terminal)
    ppo = Sb3Policy(trained.model, trained.layout)
    results += _run_with_progress(arrays, [ppo])
    capture = _savings_capture(arrays, results)
    console.print(kpi_table(results, title=f"{spec.name}", savings_capture=capture))
    exported = export_policy(
        trained.model, trained.layout, run_dir / "export", trained.run_id, site, spec.time_grid.step_min, 96
    )
    console.print(
        f"Exported the PPO policy to {run_dir / 'export'} (sha256 {exported.onnx_sha256[:12]}...); "
        "models/ is left as it is.\n"
        f"Open the runs:       .venv/bin/mlflow ui --backend-store-uri {tracking_uri}\n"
        f"Serve this policy:   .venv/bin/smac serve --model {run_dir / 'export'}\n"
        "Serve the default:   .venv/bin/smac serve",
        highlight=False,
        soft_wrap=True,
    )


def main() -> None:
    """Entry point of the ``smac`` console script."""
    app()
