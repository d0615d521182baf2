"""``smac train``, ``smac sweep``, ``smac export`` and ``smac serve``."""

from __future__ import annotations

import json
import math
import os
import re
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from smac_rl.cli.common import console, fail, fail_problems
from smac_rl.core.errors import ScenarioError, SmacError

if TYPE_CHECKING:
    from smac_rl.agents.config import TrainConfig

TrackingOption = Annotated[str, typer.Option(help="MLflow tracking URI (runs and model registry).")]
POLICIES_DIR = Path("models/policies")


def _train_extra_missing(command: str, exc: ImportError) -> typer.Exit:
    return fail(f"smac {command} needs the [train] extra ({exc.name} is missing)")


def read_train_config(path: Path | None, overrides: dict[str, object]) -> TrainConfig:
    """A training config from YAML (or defaults) with CLI overrides; errors exit naming the fields."""
    from pydantic import ValidationError

    from smac_rl.agents.config import TrainConfig
    from smac_rl.core.scenario_io import problems_from_pydantic, read_data_file

    try:
        data = dict(read_data_file(path)) if path is not None else {}  # type: ignore[call-overload]
        data.update({k: v for k, v in overrides.items() if v is not None})
        return TrainConfig.model_validate(data)
    except ScenarioError as exc:
        raise fail_problems(exc) from None
    except ValidationError as exc:
        raise fail_problems(ScenarioError(problems_from_pydantic(exc.errors()), str(path))) from None


def train_command(
    config: Annotated[Path | None, typer.Option(help="Training config YAML (keys of TrainConfig).")] = None,
    template: Annotated[str | None, typer.Option(help="Template to train on (overrides the config).")] = None,
    timesteps: Annotated[
        int | None, typer.Option(min=1, help="Environment steps (overrides the config).")
    ] = None,
    seed: Annotated[int | None, typer.Option(min=0, help="Seed (overrides the config).")] = None,
    run_dir: Annotated[Path, typer.Option(help="Folder for the run's files.")] = Path("runs/train"),
    tracking_uri: TrackingOption = "sqlite:///mlflow.db",
    register: Annotated[
        str | None,
        typer.Option(
            help="Register the run in the MLflow registry under this name; champion if it scores best."
        ),
    ] = None,
    force_promote: Annotated[
        bool, typer.Option(help="With --register: make it the champion whatever the scores.")
    ] = False,
) -> None:
    """Train an agent (PPO, SAC, TD3 or TQC) on the batched env of a template's days, tracked in MLflow.

    After training, the model is scored on the config's selection days next to uncontrolled charging,
    and the optimum (median savings capture: its selection score).
    """
    try:
        from smac_rl.agents.registry import register_run
        from smac_rl.agents.train import train
    except ImportError as exc:
        raise _train_extra_missing("train", exc) from None
    train_config = read_train_config(
        config, {"template": template, "total_timesteps": timesteps, "seed": seed}
    )
    try:
        result = train(train_config, run_dir, tracking_uri, progress_bar=console.is_terminal)
    except ScenarioError as exc:
        raise fail_problems(exc) from None
    except SmacError as exc:
        raise fail(str(exc)) from None
    console.print(
        f"trained {train_config.total_timesteps} steps; model {result.model_path}; "
        f"MLflow run {result.run_id}; "
        f"selection score (median savings capture) {result.selection_score:.4f}",
        highlight=False,
    )
    console.print(f"report: {run_dir / 'report.md'}", highlight=False)
    if register is not None:
        try:
            done = register_run(
                tracking_uri,
                register,
                result.run_id,
                result.selection_score,
                train_config.selection_days,
                force_promote,
            )
        except SmacError as exc:
            raise fail(str(exc)) from None
        console.print(f"registered {done.name} v{done.version}: {done.reason}", highlight=False)


def sweep_command(
    config: Annotated[
        Path, typer.Argument(help="Sweep YAML: name, train (or base_config), search_space, n_trials.")
    ],
    scheduler: Annotated[
        str | None,
        typer.Option(help="Dask scheduler address (tcp://host:8786); none: a LocalCluster on this machine."),
    ] = None,
    workers: Annotated[int, typer.Option(min=1, max=256, help="Workers of the LocalCluster.")] = 2,
    sweep_dir: Annotated[
        Path | None, typer.Option(help="Folder of the study journal and the runs; default runs/sweeps/NAME.")
    ] = None,
    tracking_uri: TrackingOption = "sqlite:///mlflow.db",
) -> None:
    """Optuna sweep whose trials train and score as Dask tasks; the best run is registered in MLflow."""
    try:
        from smac_rl.agents.sweep import load_sweep_config, run_sweep
    except ImportError as exc:
        raise fail(f"smac sweep needs the [train] and [distributed] extras ({exc.name} is missing)") from None
    try:
        sweep = load_sweep_config(config)
    except ScenarioError as exc:
        raise fail_problems(exc) from None
    target = sweep_dir or Path("runs/sweeps") / sweep.name

    def say(line: str) -> None:
        console.print(line, highlight=False, soft_wrap=True)

    try:
        result = run_sweep(sweep, target, tracking_uri, scheduler, workers, say=say)
    except ScenarioError as exc:
        raise fail_problems(exc) from None
    except SmacError as exc:
        raise fail(str(exc)) from None
    from rich.table import Table

    from smac_rl.agents.sweep import sweep_summary
    from smac_rl.cli.common import print_table

    table = Table(
        title=f"sweep {sweep.name}: runs of this call, best first (MLflow run {result.parent_run_id})"
    )
    for header in ("run", "selection score", "params", "MLflow run", "error"):
        table.add_column(header)
    for row in sweep_summary(result):
        score = "failed" if row["score"] is None else f"{row['score']:.4f}"
        table.add_row(row["label"], score, json.dumps(row["params"]), row["run_id"], row["error"] or "")
    print_table(table)
    if result.best is not None:
        say(f"best: {result.best.label} ({result.best.run_dir})")


def export_command(
    run_dir: Annotated[
        Path | None, typer.Option(help="A training run folder (model.zip and train_config.yaml).")
    ] = None,
    champion: Annotated[
        str | None,
        typer.Option(
            help="Export the registered model NAME's champion (MLflow registry) instead of a run folder."
        ),
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option(
            help="Export folder; default models/policies/NAME/vN for --champion, <run_dir>/export otherwise."
        ),
    ] = None,
    card: Annotated[
        bool,
        typer.Option(help="Write MODEL_CARD.md: the exported policy scored on the selection and test days."),
    ] = True,
    tracking_uri: TrackingOption = "sqlite:///mlflow.db",
    decoding: Annotated[
        list[str] | None,
        typer.Option(
            help="NAME=VALUE: serve the graph with this decoding option instead of training's "
            "(deadline_floor_margin_steps, is_min_current_rounded, is_paid_peak_filled); repeatable."
        ),
    ] = None,
) -> None:
    """Export a trained policy to ONNX (normalisation and action scaling inside), metadata.json and a card.

    With --champion NAME the registry's champion is exported to models/policies/NAME/vN (the next free
    version) and models/policies/NAME/ALIASES.json names it champion, which `smac serve --model NAME@champion`
    loads.
    """
    if (run_dir is None) == (champion is None):
        raise fail("run-dir, champion: expected exactly one of --run-dir DIR or --champion NAME")
    changes = decoding_changes(decoding or [])
    try:
        from smac_rl.agents.export import export_policy
        from smac_rl.agents.registry import download_champion
        from smac_rl.agents.train import load_model
    except ImportError as exc:
        raise _train_extra_missing("export", exc) from None

    with tempfile.TemporaryDirectory(prefix="smac-export-") as scratch:
        registry = None
        if champion is not None:
            if not re.fullmatch(r"[A-Za-z0-9_.-]{1,64}", champion) or champion in {".", ".."}:
                raise fail(
                    f"champion: got {champion!r}; expected a registered model name (letters, digits, _ . -)"
                )
            try:
                found = download_champion(tracking_uri, champion, Path(scratch))
            except SmacError as exc:
                raise fail(str(exc)) from None
            source, run_id, trained_by = Path(scratch), found.run_id, found.command
            registry = f"`{champion}` v{found.version} (alias champion, selection score {found.score:.4f})"
            target = out or _next_version(POLICIES_DIR / champion)
        elif run_dir is not None:
            source, run_id, trained_by = run_dir, _run_id(run_dir), ""
            target = out or run_dir / "export"
        model_path, config_path = source / "model.zip", source / "train_config.yaml"
        if not model_path.is_file() or not config_path.is_file():
            raise fail(
                f"run-dir: got {str(source)!r}; expected a folder with model.zip and train_config.yaml"
            )
        config = read_train_config(config_path, {})
        try:
            model = load_model(config, model_path)
        except SmacError as exc:
            raise fail(str(exc)) from None
        trained_decoding = {
            name: getattr(config, name) for name in changes if getattr(config, name) != changes[name]
        }
        if trained_decoding:
            config = with_decoding(config, changes)
        layout = config.layout()
        metadata = export_policy(model, layout, target, run_id, config.template)
    console.print(f"wrote {target / 'policy.onnx'} (sha256 {metadata.onnx_sha256[:12]}...) and metadata.json")
    if card:
        from smac_rl.cli.cards import invoked_command, write_card

        command = invoked_command()
        commands = [f"# trained by: {trained_by}", command] if trained_by else [command]
        write_card(target, config, metadata, registry, commands, trained_decoding)
    if champion is not None and out is None:
        aliases_path = target.parent / "ALIASES.json"
        aliases = json.loads(aliases_path.read_text(encoding="utf-8")) if aliases_path.is_file() else {}
        if aliases.get("champion") not in {None, target.name}:
            aliases["previous"] = aliases["champion"]
        aliases["champion"] = target.name
        aliases_path.write_text(json.dumps(aliases, indent=2) + "\n", encoding="utf-8")
        console.print(f"{aliases_path}: {aliases} (serve it as {champion}@champion)", highlight=False)


def with_decoding(config: TrainConfig, changes: dict[str, float | bool | None]) -> TrainConfig:
    """The config with other decoding options, validated as a config file would be (errors exit)."""
    from pydantic import ValidationError

    from smac_rl.agents.config import TrainConfig
    from smac_rl.core.scenario_io import problems_from_pydantic

    try:
        return TrainConfig.model_validate({**config.model_dump(), **changes})
    except ValidationError as exc:
        problems = problems_from_pydantic(exc.errors())
        raise fail_problems(ScenarioError(problems, "--decoding")) from None


def decoding_changes(values: list[str]) -> dict[str, float | bool | None]:
    """``--decoding NAME=VALUE`` options parsed: booleans ``true``/``false``, the margin a number or ``none``.

    Raises:
        typer.Exit: On an unknown name or a value of the wrong kind (nothing is written).
    """
    from smac_rl.core.observation import DECODING_OPTIONS

    changes: dict[str, float | bool | None] = {}
    for value in values:
        name, sep, text = value.partition("=")
        name = name.strip()
        if name in changes:
            raise fail(f"decoding: got {name} twice; expected each option at most once")
        if not sep or name not in DECODING_OPTIONS:
            raise fail(
                f"decoding: got {value!r}; expected NAME=VALUE with NAME one of {', '.join(DECODING_OPTIONS)}"
            )
        lowered = text.strip().lower()
        if name.startswith("is_"):
            if lowered not in {"true", "false"}:
                raise fail(f"decoding: got {value!r}; expected {name}=true or {name}=false")
            changes[name] = lowered == "true"
            continue
        if lowered == "none":
            changes[name] = None
            continue
        try:
            margin = float(text)
        except ValueError:
            margin = math.nan
        if not 0.0 <= margin <= 96.0:
            raise fail(f"decoding: got {value!r}; expected {name}=M with 0 <= M <= 96 steps, or none")
        changes[name] = margin
    return changes


def _next_version(folder: Path) -> Path:
    """``folder/vN`` for the first N above every existing ``vK``."""
    taken = [int(p.name[1:]) for p in folder.glob("v*") if p.is_dir() and p.name[1:].isdigit()]
    return folder / f"v{max(taken, default=0) + 1}"


def serve_command(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port.")] = 8000,
    model: Annotated[
        Path | None,
        typer.Option(
            help="Model folder (policy.onnx + metadata.json), or NAME@ALIAS: the version that "
            "models/policies/NAME/ALIASES.json names for ALIAS (or the folder NAME/ALIAS)."
        ),
    ] = None,
    database_url: Annotated[
        str,
        typer.Option(help="Registry database: sqlite:///file.db or postgresql+psycopg://user:pw@host/db."),
    ] = "sqlite:///smac-serve.db",
    api_keys: Annotated[
        Path | None,
        typer.Option(help="JSON or YAML file of {sha256_of_key: [tenant_id, ...]}; none: no keys asked."),
    ] = None,
    price_forecaster: Annotated[
        str | None,
        typer.Option(
            help="Price forecaster folder (q10/q50/q90.onnx + metadata.json) for POST /v1/forecasts/prices; "
            "'none' serves none; default: the shipped nl_day_ahead_prices/v1."
        ),
    ] = None,
    session_forecaster: Annotated[
        str | None,
        typer.Option(
            help="Session-needs forecaster folder (six ONNX graphs + metadata.json) for "
            "POST /v1/forecasts/sessions; 'none' serves none; default: the shipped caltech_session_needs/v1."
        ),
    ] = None,
    arrivals_forecaster: Annotated[
        str | None,
        typer.Option(
            help="Arrivals forecaster folder (mean.onnx + metadata.json) for POST /v1/forecasts/arrivals; "
            "'none' serves none; default: the shipped caltech_arrivals/v1."
        ),
    ] = None,
    workers: Annotated[
        int,
        typer.Option(
            min=1,
            max=64,
            help="Worker processes (uvicorn's); each loads the model and shares the registry's database, "
            "whose per-site locks keep concurrent events consistent across them.",
        ),
    ] = 1,
) -> None:
    """Serve charging profiles over HTTP (FastAPI under uvicorn), with the site registry.

    The app is built and checked here first (model, forecasters, keys, database migrated), so a bad
    setting fails before any worker starts; with ``--workers`` above 1, each worker process builds
    its own app from the same settings, handed over as ``SMAC_*`` variables.
    """
    try:
        import uvicorn

        from smac_rl_serve.app import create_app
        from smac_rl_serve.model import ModelError
        from smac_rl_serve.settings import (
            DEFAULT_ARRIVALS_FORECASTER_DIR,
            DEFAULT_MODEL_DIR,
            DEFAULT_PRICE_FORECASTER_DIR,
            DEFAULT_SESSION_FORECASTER_DIR,
            Settings,
            parse_forecaster_dir,
        )
    except ImportError as exc:
        raise fail(f"smac serve needs the [serve] extra ({exc.name} is missing)") from None
    settings = Settings(
        model_dir=model or DEFAULT_MODEL_DIR,
        database_url=database_url,
        api_keys_file=api_keys,
        price_forecaster_dir=parse_forecaster_dir(price_forecaster, DEFAULT_PRICE_FORECASTER_DIR),
        session_forecaster_dir=parse_forecaster_dir(session_forecaster, DEFAULT_SESSION_FORECASTER_DIR),
        arrivals_forecaster_dir=parse_forecaster_dir(arrivals_forecaster, DEFAULT_ARRIVALS_FORECASTER_DIR),
    )
    try:
        application = create_app(settings)
        environment = settings.to_environment()
    except (ModelError, ValueError) as exc:
        raise fail(str(exc)) from None
    if workers == 1:
        uvicorn.run(application, host=host, port=port, access_log=False)  # the app logs each request as JSON
        return
    os.environ.update(environment)  # read by each worker's create_app_from_environment
    uvicorn.run(
        "smac_rl_serve.app:create_app_from_environment",
        factory=True,
        workers=workers,
        host=host,
        port=port,
        access_log=False,
    )


def _run_id(run_dir: Path) -> str:
    """The MLflow run id that training wrote beside the model, or ``unknown``."""
    path = run_dir / "mlflow_run_id.txt"
    return path.read_text(encoding="utf-8").strip() if path.is_file() else "unknown"
