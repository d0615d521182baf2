"""The ``smac`` command."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Annotated

import typer

from smac_rl.cli.agents import export_command, serve_command, train_command
from smac_rl.cli.common import (
    console,
    fail,
    fail_problems,
    optimum_kpis,
    resolve_scenario,
    run_with_progress,
    savings_capture,
    write_output,
)
from smac_rl.cli.data import data_app
from smac_rl.cli.scenario import scenario_app
from smac_rl.core.arrays import compile_scenario
from smac_rl.core.errors import ScenarioError, SmacError
from smac_rl.policies import HEURISTICS, make_heuristic

app = typer.Typer(
    name="smac",
    help="SMAC-RL: smart-charging scenarios, policies and KPIs.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.add_typer(scenario_app, name="scenario")
app.add_typer(data_app, name="data")
app.command("train")(train_command)
app.command("export")(export_command)
app.command("serve")(serve_command)


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
        spec = resolve_scenario(scenario, builtin)
        policies = [make_heuristic(name) for name in names if name != "optimal"]
    except ScenarioError as exc:
        raise fail_problems(exc) from None
    except SmacError as exc:
        raise fail(str(exc)) from None
    arrays = compile_scenario(spec)
    results = run_with_progress(arrays, policies)
    if "optimal" in names:
        results.append(("optimal", optimum_kpis(arrays)))
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

    console.print(kpi_table(results, title=f"KPIs on {spec.name}", savings_capture=capture))


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
    results = run_with_progress(arrays, [make_heuristic(name) for name in HEURISTICS])
    results.append(("optimal", optimum_kpis(arrays)))
    config = TrainConfig(template=site, total_timesteps=timesteps)
    console.print(f"training PPO for {timesteps} steps on {site} days of 2023 (MLflow: {tracking_uri}) ...")
    trained = train(config, run_dir / "ppo", tracking_uri, progress_bar=console.is_terminal)
    ppo = Sb3Policy(trained.model, trained.layout)
    results += run_with_progress(arrays, [ppo])
    capture = savings_capture(arrays, results)
    console.print(kpi_table(results, title=f"{spec.name}", savings_capture=capture))
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
