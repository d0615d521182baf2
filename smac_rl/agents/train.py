"""Training (PPO, SAC, TD3, TQC) on the batched env of a pilot template's days, tracked in MLflow."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mlflow
import yaml
from stable_baselines3 import PPO, SAC, TD3
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.logger import Logger
from stable_baselines3.common.vec_env import VecEnv

from smac_rl.agents.config import TrainConfig
from smac_rl.agents.envs import training_vec_env
from smac_rl.agents.networks import EquivariantActorCriticPolicy
from smac_rl.agents.tracking import DEFAULT_TRACKING_URI, MlflowWriter, provenance_tags
from smac_rl.core.errors import SmacError
from smac_rl.core.observation import ObservationLayout
from smac_rl.data.template_spec import load_template


@dataclass(frozen=True)
class TrainResult:
    """A finished training run.

    Attributes:
        model: The trained model.
        layout: Its observation and action layout.
        model_path: Saved SB3 model (``model.zip``).
        run_id: MLflow run id.
        config: The configuration trained with.
    """

    model: BaseAlgorithm
    layout: ObservationLayout
    model_path: Path
    run_id: str
    config: TrainConfig


def train(
    config: TrainConfig,
    run_dir: Path,
    tracking_uri: str = DEFAULT_TRACKING_URI,
    experiment: str = "smac-rl",
    progress_bar: bool = False,
) -> TrainResult:
    """Train the config's algorithm and log the run (params, metrics by step, config, provenance, model).

    Args:
        config: The training configuration.
        run_dir: Folder for this run's files (created).
        tracking_uri: MLflow tracking URI (a local SQLite store by default).
        experiment: MLflow experiment name.
        progress_bar: Show SB3's progress bar.

    Returns:
        The trained model and where it was saved.

    Raises:
        SmacError: When the template has more connectors than ``n_connectors_max`` (or is unknown).
    """
    n_connectors = sum(len(c.connectors) for c in load_template(config.template).site.chargers)
    if n_connectors > config.n_connectors_max:
        raise SmacError(
            f"n_connectors_max: got {config.n_connectors_max}; expected at least the {n_connectors} "
            f"connectors of {config.template}"
        )
    run_dir.mkdir(parents=True, exist_ok=True)
    config_path = run_dir / "train_config.yaml"
    config_path.write_text(yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False), encoding="utf-8")
    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_experiment(experiment)
    layout = ObservationLayout(config.n_connectors_max)
    with mlflow.start_run(run_name=run_dir.name) as run:
        mlflow.set_tags(provenance_tags())
        mlflow.log_params(config.model_dump(mode="json"))
        mlflow.log_artifact(str(config_path))
        envs = training_vec_env(config)
        model = build_model(config, envs)
        model.set_logger(Logger(folder=None, output_formats=[MlflowWriter()]))
        model.learn(total_timesteps=config.total_timesteps, progress_bar=progress_bar)
        (run_dir / "mlflow_run_id.txt").write_text(run.info.run_id + "\n", encoding="utf-8")
        model_path = run_dir / "model.zip"
        model.save(model_path)
        mlflow.log_artifact(str(model_path))
        envs.close()
        return TrainResult(model, layout, model_path, run.info.run_id, config)


def build_model(config: TrainConfig, envs: VecEnv) -> BaseAlgorithm:
    """The untrained SB3 model of a config on its environments (CPU, seeded)."""
    common: dict[str, Any] = {
        "learning_rate": config.learning_rate,
        "batch_size": config.batch_size,
        "gamma": config.gamma,
        "seed": config.seed,
        "device": "cpu",
        "verbose": 0,
    }
    if config.algorithm == "ppo":
        if config.policy_network == "equivariant":
            kwargs = {"n_connectors_max": config.n_connectors_max, "hidden_size": config.hidden_size}
            return PPO(
                EquivariantActorCriticPolicy,
                envs,
                n_steps=config.n_steps,
                n_epochs=config.n_epochs,
                policy_kwargs=kwargs,
                **common,
            )
        return PPO(
            "MlpPolicy",
            envs,
            n_steps=config.n_steps,
            n_epochs=config.n_epochs,
            policy_kwargs={"net_arch": list(config.net_arch)},
            **common,
        )
    off_policy: dict[str, Any] = {
        "buffer_size": config.buffer_size,
        "learning_starts": config.learning_starts,
        "policy_kwargs": {"net_arch": list(config.net_arch)},
        **common,
    }
    if config.algorithm == "sac":
        return SAC("MlpPolicy", envs, **off_policy)
    if config.algorithm == "td3":
        return TD3("MlpPolicy", envs, **off_policy)
    from sb3_contrib import TQC

    return TQC("MlpPolicy", envs, **off_policy)
