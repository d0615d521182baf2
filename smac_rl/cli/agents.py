"""``smac train``, ``smac export`` and ``smac serve``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from smac_rl.cli.common import console, fail, fail_problems
from smac_rl.core.errors import ScenarioError, SmacError


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
    """Train an agent (PPO, SAC, TD3 or TQC) on the batched env of a template's days, tracked in MLflow."""
    try:
        from smac_rl.agents.config import TrainConfig
        from smac_rl.agents.train import train
    except ImportError as exc:
        raise fail(f"smac train needs the [train] extra ({exc.name} is missing)") from None
    from pydantic import ValidationError

    from smac_rl.core.scenario_io import problems_from_pydantic, read_data_file

    try:
        data = dict(read_data_file(config)) if config is not None else {}  # type: ignore[call-overload]
        overrides = {"template": template, "total_timesteps": timesteps, "seed": seed}
        data.update({k: v for k, v in overrides.items() if v is not None})
        train_config = TrainConfig.model_validate(data)
    except ScenarioError as exc:
        raise fail_problems(exc) from None
    except ValidationError as exc:
        raise fail_problems(ScenarioError(problems_from_pydantic(exc.errors()), str(config))) from None
    try:
        result = train(train_config, run_dir, tracking_uri, progress_bar=console.is_terminal)
    except ScenarioError as exc:
        raise fail_problems(exc) from None
    except SmacError as exc:
        raise fail(str(exc)) from None
    console.print(
        f"trained {train_config.total_timesteps} steps; model {result.model_path}; MLflow run {result.run_id}"
    )


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
        raise fail(f"smac export needs the [train] extra ({exc.name} is missing)") from None
    from smac_rl.core.observation import ObservationLayout
    from smac_rl.core.scenario_io import read_data_file

    model_path, config_path = run_dir / "model.zip", run_dir / "train_config.yaml"
    if not model_path.is_file() or not config_path.is_file():
        raise fail(f"run-dir: got {str(run_dir)!r}; expected a folder with model.zip and train_config.yaml")
    config = TrainConfig.model_validate(read_data_file(config_path))
    model = PPO.load(model_path, device="cpu")
    target = out or run_dir / "export"
    metadata = export_policy(
        model, ObservationLayout(config.n_connectors_max), target, _run_id(run_dir), config.template
    )
    console.print(f"wrote {target / 'policy.onnx'} (sha256 {metadata.onnx_sha256[:12]}...) and metadata.json")


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
) -> None:
    """Serve charging profiles over HTTP (FastAPI under uvicorn), with the site registry."""
    try:
        import uvicorn

        from smac_rl_serve.app import create_app
        from smac_rl_serve.model import ModelError
        from smac_rl_serve.settings import DEFAULT_MODEL_DIR, Settings
    except ImportError as exc:
        raise fail(f"smac serve needs the [serve] extra ({exc.name} is missing)") from None
    settings = Settings(
        model_dir=model or DEFAULT_MODEL_DIR, database_url=database_url, api_keys_file=api_keys
    )
    try:
        application = create_app(settings)
    except (ModelError, ValueError) as exc:
        raise fail(str(exc)) from None
    uvicorn.run(application, host=host, port=port, access_log=False)  # the app logs each request as JSON


def _run_id(run_dir: Path) -> str:
    """The MLflow run id that training wrote beside the model, or ``unknown``."""
    path = run_dir / "mlflow_run_id.txt"
    return path.read_text(encoding="utf-8").strip() if path.is_file() else "unknown"
