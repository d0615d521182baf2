"""The ``smac`` command."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Annotated

import typer

from smac_rl.cli.agents import export_command, serve_command, sweep_command, train_command
from smac_rl.cli.bench import bench_app
from smac_rl.cli.cards import card_command
from smac_rl.cli.common import (
    console,
    data_extra_missing,
    error_console,
    fail,
    fail_problems,
    optimum_kpis,
    optimum_run,
    print_table,
    resolve_scenario,
    run_with_progress,
    run_with_progress_traces,
    savings_capture,
    write_output,
)
from smac_rl.cli.data import data_app
from smac_rl.cli.forecast import forecast_app
from smac_rl.cli.optimize import optimize_command
from smac_rl.cli.policies import policy_option_help, resolve_policy
from smac_rl.cli.scenario import scenario_app
from smac_rl.core.arrays import ScenarioArrays, compile_scenario
from smac_rl.core.errors import ScenarioError, SmacError
from smac_rl.core.scoring import Kpis
from smac_rl.core.simulate import Trace
from smac_rl.policies import HEURISTICS, make_heuristic

app = typer.Typer(
    rich_markup_mode=None,
    name="smac",
    help="SMAC-RL: smart-charging scenarios, policies and KPIs.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.add_typer(scenario_app, name="scenario")
app.add_typer(data_app, name="data")
app.add_typer(bench_app, name="bench")
app.add_typer(forecast_app, name="forecast")
app.command("train")(train_command)
app.command("sweep")(sweep_command)
app.command("export")(export_command)
app.command("card")(card_command)
app.command("serve")(serve_command)
app.command("optimize")(optimize_command)


@app.command("evaluate")
def evaluate(
    scenario: Annotated[
        Path | None, typer.Option(help="Scenario file; the built-in demo scenario when omitted.")
    ] = None,
    builtin: Annotated[str | None, typer.Option(help="A built-in scenario instead of a file.")] = None,
    policy: Annotated[
        list[str] | None,
        typer.Option(help=policy_option_help()),
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the KPIs as JSON instead of a table.")
    ] = False,
    plot: Annotated[
        Path | None,
        typer.Option(
            help="Folder to write one PNG per policy's episode into, <scenario>__<policy>.png "
            "(needs [data]); with --template, one per day and policy, uncontrolled and the optimum too."
        ),
    ] = None,
    template: Annotated[
        str | None,
        typer.Option(
            help="Evaluate on generated days of this template instead (the protocol; needs [data,milp])."
        ),
    ] = None,
    first_day: Annotated[str, typer.Option(help="With --template: first local day.")] = "2024-01-08",
    days: Annotated[int, typer.Option(min=1, max=366, help="With --template: consecutive days.")] = 7,
    seeds: Annotated[int, typer.Option(min=1, max=100, help="With --template: seeds per day.")] = 1,
    objective: Annotated[
        str | None,
        typer.Option(help="With --template: cost, peak, load_balancing or v2g_profit (default cost)."),
    ] = None,
    time_limit_s: Annotated[
        float,
        typer.Option("--time-limit-s", min=1.0, help="With --template: the optimum's limit per day [s]."),
    ] = 120.0,
    out: Annotated[Path | None, typer.Option(help="With --template: write the JSON report here.")] = None,
    caltech_replay: Annotated[
        bool,
        typer.Option(
            help="With --template: replay each day's real Caltech sessions (days of a bundled period)."
        ),
    ] = False,
) -> None:
    """Run policies on a scenario and print their KPIs from the one scorer.

    With ``optimal`` among them, savings capture is reported against uncontrolled charging. With
    ``--template``, every policy runs on generated days next to uncontrolled and the optimum, and a
    per-policy summary of savings capture, unmet energy and violations is printed.
    """
    if template is not None:
        if scenario is not None or builtin is not None:
            raise fail("--template: got it with --scenario or --builtin; expected one source of days")
        if objective not in {None, "cost", "peak", "load_balancing", "v2g_profit"}:
            raise fail(f"objective: got {objective!r}; expected cost, peak, load_balancing or v2g_profit")
        from smac_rl.cli.protocol import run_protocol

        run_protocol(
            template,
            first_day,
            days,
            seeds,
            policy or list(HEURISTICS),
            objective,
            time_limit_s,
            out,
            caltech_replay,
            plot,
        )
        return
    names = policy or list(HEURISTICS)
    try:
        spec = resolve_scenario(scenario, builtin)
        arrays = compile_scenario(spec)
        policies = [resolve_policy(name, arrays) for name in names if name != "optimal"]
    except ScenarioError as exc:
        raise fail_problems(exc) from None
    except SmacError as exc:
        raise fail(str(exc)) from None
    runs = run_with_progress_traces(arrays, policies)
    if "optimal" in names:
        runs.append(("optimal", *optimum_run(arrays)))
    results = [(name, kpis) for name, _, kpis in runs]
    if plot is not None:
        _write_episode_plots(arrays, runs, plot, as_json)
    capture = savings_capture(arrays, results)
    if as_json:
        payload = {
            "scenario": spec.name,
            "kpis": {n: k.as_dict() for n, k in results},
            "savings_capture_frac": capture,
        }
        console.print_json(json.dumps(payload))
        return
    from smac_rl.cli.render import kpi_table

    title = f"KPIs on {spec.name} (objective: {spec.objective.name})"
    print_table(kpi_table(results, title=title, savings_capture=capture))


def _write_episode_plots(
    arrays: ScenarioArrays, runs: list[tuple[str, Trace, Kpis]], directory: Path, as_json: bool
) -> None:
    """Write one PNG per policy's episode and say where (on stderr when stdout carries JSON)."""
    try:
        from smac_rl.data.episode_plots import plot_episodes
    except ImportError as exc:
        raise data_extra_missing(exc) from None
    try:
        written = plot_episodes(arrays, runs, directory)
    except OSError as exc:
        raise fail(f"plot: got {str(directory)!r}; expected a writable folder ({exc.strerror})") from None
    out = error_console if as_json else console
    out.print(
        f"wrote {len(written)} episode figure(s) to {directory}: {', '.join(p.name for p in written)}",
        highlight=False,
        soft_wrap=True,
    )


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
        raise fail(f"date: got {date!r}; expected a day as YYYY-MM-DD") from None
    except ScenarioError as exc:
        raise fail_problems(exc) from None
    except SmacError as exc:
        raise fail(str(exc)) from None
    write_output(run_dir / "scenario.yaml", scenario_to_yaml(spec))
    console.print(scenario_summary(spec))
    arrays = compile_scenario(spec)
    heuristics = [make_heuristic(name) for name in ("uncontrolled", "least_laxity_first")]
    results = run_with_progress(arrays, heuristics)
    results.append(("optimal", optimum_kpis(arrays)))
    config = TrainConfig(template=site, total_timesteps=timesteps)
    console.print(f"training PPO for {timesteps} steps on {site} days of 2023 (MLflow: {tracking_uri}) ...")
    trained = train(config, run_dir / "ppo", tracking_uri, progress_bar=console.is_terminal)
    ppo = Sb3Policy(trained.model, trained.layout)
    results += run_with_progress(arrays, [ppo])
    capture = savings_capture(arrays, results)
    print_table(kpi_table(results, title=f"{spec.name}", savings_capture=capture))
    exported = export_policy(trained.model, trained.layout, run_dir / "export", trained.run_id, site)
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
