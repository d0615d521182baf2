"""Training (PPO, SAC, TD3, TQC) on the batched env of a template's days, judged on selection days."""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mlflow
import torch
import yaml
from stable_baselines3 import PPO, SAC, TD3
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.logger import Logger
from stable_baselines3.common.policies import ActorCriticPolicy
from stable_baselines3.common.vec_env import VecEnv

from smac_rl.agents.config import TrainConfig
from smac_rl.agents.envs import training_vec_env
from smac_rl.agents.evaluation import (
    SelectionCallback,
    evaluate_model,
    policy_name,
    selection_metrics,
    selection_score,
)
from smac_rl.agents.networks import EquivariantActorCriticPolicy
from smac_rl.agents.reports import summary_table
from smac_rl.agents.tracking import DEFAULT_TRACKING_URI, MlflowWriter, provenance_tags
from smac_rl.core.errors import SmacError
from smac_rl.core.observation import ObservationLayout
from smac_rl.data.template_spec import load_template
from smac_rl.optimal.protocol import ProtocolResult, write_report


@dataclass(frozen=True)
class TrainResult:
    """A finished training run.

    Attributes:
        model: The trained model (the best on the selection days when the callback ran).
        layout: Its observation and action layout.
        model_path: Saved SB3 model (``model.zip``).
        run_id: MLflow run id.
        config: The configuration trained with.
        selection: The model on the selection days next to uncontrolled and the optimum.
        selection_score: Its median savings capture there (:func:`selection_score`).
    """

    model: BaseAlgorithm
    layout: ObservationLayout
    model_path: Path
    run_id: str
    config: TrainConfig
    selection: ProtocolResult
    selection_score: float


def check_connectors(config: TrainConfig) -> None:
    """Refuse a template with more connectors than the policy has room for.

    Raises:
        SmacError: When the template has more connectors than ``n_connectors_max`` (or is unknown).
    """
    n_connectors = sum(len(c.connectors) for c in load_template(config.template).site.chargers)
    if n_connectors > config.n_connectors_max:
        raise SmacError(
            f"n_connectors_max: got {config.n_connectors_max}; expected at least the {n_connectors} "
            f"connectors of {config.template}"
        )


def fit_model(
    config: TrainConfig,
    logger: Logger | None = None,
    callback: BaseCallback | None = None,
    progress_bar: bool = False,
    log_metric: Callable[[str, float, int], None] | None = None,
) -> BaseAlgorithm:
    """Train the config's algorithm on its batched env (no tracking: :func:`train` adds it).

    With ``imitation_days``, PPO's actor first imitates the optimum on that many training days.

    Args:
        config: The training configuration.
        logger: SB3 logger to write to (none: SB3's silent default).
        callback: Called during training.
        progress_bar: Show SB3's progress bar.
        log_metric: Receives ``(name, value, step)`` of the imitation's progress.

    Returns:
        The trained model.
    """
    check_connectors(config)
    envs = training_vec_env(config)
    try:
        model = build_model(config, envs)
        if logger is not None:
            model.set_logger(logger)
        if config.imitation_days:
            imitate(model, config, log_metric)
        if config.init_model is not None:
            start_from(model, config)
        if config.value_warmup_timesteps:
            warm_up_value(model, config.value_warmup_timesteps)
        model.learn(
            total_timesteps=config.total_timesteps,
            callback=callback,
            progress_bar=progress_bar,
            reset_num_timesteps=not config.value_warmup_timesteps,
        )
    finally:
        envs.close()
    return model


def imitate(
    model: BaseAlgorithm, config: TrainConfig, log_metric: Callable[[str, float, int], None] | None = None
) -> None:
    """Pretrain PPO's actor on the optimum's actions (:mod:`smac_rl.agents.imitation`), then set its noise.

    With ``dagger_rounds``, each round adds the imitated policy's own states labelled by the optimum
    and fits again on everything; ``imitation.loss`` continues its epoch count across rounds and
    ``imitation.n_samples`` is logged after each (step = round).
    """
    from smac_rl.agents.imitation import aggregate, clone_behaviour, demonstrations, learner_demonstrations

    policy = model.policy
    if not isinstance(policy, ActorCriticPolicy):
        raise SmacError(f"imitation_days: needs PPO's actor-critic policy; got {type(policy).__name__}")
    data = demonstrations(config, config.dagger_jobs)
    for round_index in range(config.dagger_rounds + 1):
        if round_index:
            data = aggregate(data, learner_demonstrations(config, policy, round_index, config.dagger_jobs))
        if log_metric is not None:
            log_metric("imitation.n_samples", float(data.observations.shape[0]), round_index)
        dagger_epochs = config.dagger_epochs or config.imitation_epochs
        n_epochs = dagger_epochs if round_index else config.imitation_epochs
        first_epoch = config.imitation_epochs + (round_index - 1) * dagger_epochs if round_index else 0

        def on_epoch(epoch: int, loss: float, first_epoch: int = first_epoch) -> None:
            if log_metric is not None:
                log_metric("imitation.loss", loss, first_epoch + epoch)

        clone_behaviour(
            policy,
            data,
            n_epochs,
            config.imitation_learning_rate,
            config.batch_size,
            config.seed + round_index,
            on_epoch,
        )
    set_action_std(model, config.imitation_action_std)


def set_action_std(model: BaseAlgorithm, action_std: float) -> None:
    """Set a Gaussian actor's exploration noise to ``action_std`` in every action dimension."""
    log_std = getattr(model.policy, "log_std", None)
    if isinstance(log_std, torch.nn.Parameter):
        with torch.no_grad():
            log_std.fill_(math.log(action_std))


def start_from(model: BaseAlgorithm, config: TrainConfig) -> None:
    """Copy the policy weights of ``config.init_model`` into the fresh model, then set its noise.

    The fresh model keeps this config's hyperparameters (learning rate, steps, batch...); only the
    network's weights (actor, critic, noise) come from the file.

    Raises:
        SmacError: When the file is missing, is not a saved PPO model, or its network differs.
    """
    path = config.init_model
    if path is None:
        return
    if not path.is_file():
        raise SmacError(f"init_model: got {str(path)!r}; expected a saved PPO model file (not found)")
    parent = load_model(config, path, field="init_model")
    try:
        model.policy.load_state_dict(parent.policy.state_dict())
    except RuntimeError as exc:
        first = str(exc).splitlines()[-1].strip()
        raise SmacError(
            f"init_model: got {str(path)!r}, whose network differs from this config's ({first}); "
            "expected a model trained with the same policy_network, hidden_size, pooling, "
            "n_connectors_max and observation"
        ) from None
    set_action_std(model, config.imitation_action_std)


CRITIC_PREFIXES = ("value_net.", "mlp_extractor.critic.", "mlp_extractor.value_net.")
"""Names of the critic's own parameters in SB3's actor-critic policies (the equivariant one and the MLP)."""


def warm_up_value(model: BaseAlgorithm, timesteps: int) -> None:
    """Run PPO for ``timesteps`` steps with every parameter but the critic's frozen.

    The actor's loss is still computed, but no actor weight (nor its noise) moves; the value
    network fits the returns of the imitated policy. Everything is trainable again afterwards.

    Raises:
        SmacError: For a model without an actor-critic policy or without critic parameters.
    """
    policy = model.policy
    if not isinstance(policy, ActorCriticPolicy):
        raise SmacError(
            f"value_warmup_timesteps: needs PPO's actor-critic policy; got {type(policy).__name__}"
        )
    frozen = [p for name, p in policy.named_parameters() if not name.startswith(CRITIC_PREFIXES)]
    if len(frozen) == len(list(policy.parameters())):
        raise SmacError(f"value_warmup_timesteps: {type(policy).__name__} has no critic parameter to train")
    for parameter in frozen:
        parameter.requires_grad_(False)
    try:
        model.learn(total_timesteps=timesteps)
    finally:
        for parameter in frozen:
            parameter.requires_grad_(True)


def train(
    config: TrainConfig,
    run_dir: Path,
    tracking_uri: str = DEFAULT_TRACKING_URI,
    experiment: str = "smac-rl",
    progress_bar: bool = False,
) -> TrainResult:
    """Train, judge on the selection days and log the run (params, metrics by step, provenance, artifacts).

    Artifacts: the config, the model, the selection evaluation (``selection.json``) and a markdown
    report (``report.md``). With ``eval_every_steps`` the selection days are scored during training
    too and the best model is kept.

    Args:
        config: The training configuration.
        run_dir: Folder for this run's files (created).
        tracking_uri: MLflow tracking URI (a local SQLite store by default).
        experiment: MLflow experiment name.
        progress_bar: Show SB3's progress bar.

    Returns:
        The trained model, where it was saved, and its selection score.

    Raises:
        SmacError: When the template has more connectors than ``n_connectors_max`` (or is unknown).
    """
    check_connectors(config)
    run_dir.mkdir(parents=True, exist_ok=True)
    config_path = run_dir / "train_config.yaml"
    config_path.write_text(yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False), encoding="utf-8")
    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_experiment(experiment)
    layout = config.layout()
    with mlflow.start_run(run_name=run_dir.name) as run:
        mlflow.set_tags(provenance_tags())
        if config.init_model is not None and config.init_model.is_file():
            digest = hashlib.sha256(config.init_model.read_bytes()).hexdigest()
            mlflow.set_tag("init_model_sha256", digest)
        mlflow.log_params(flat_params(config))
        mlflow.log_artifact(str(config_path))
        (run_dir / "mlflow_run_id.txt").write_text(run.info.run_id + "\n", encoding="utf-8")
        best_path = run_dir / "best_model.zip"
        callback = SelectionCallback(config, best_path) if config.eval_every_steps is not None else None
        logger = Logger(folder=None, output_formats=[MlflowWriter()])
        model = fit_model(config, logger, callback, progress_bar, _log_metric)
        references = callback.references if callback is not None else None
        selection = evaluate_model(model, config, "selection", references)
        score = selection_score(selection.summary[policy_name(config)])
        if callback is not None and callback.best_score > score:
            model = type(model).load(best_path, device="cpu")
            selection = evaluate_model(model, config, "selection", selection.references)
            score = selection_score(selection.summary[policy_name(config)])
        row = selection.summary[policy_name(config)]
        mlflow.log_metrics(selection_metrics(row), step=model.num_timesteps)
        mlflow.log_metric("selection_score", score)
        model_path = run_dir / "model.zip"
        model.save(model_path)
        mlflow.log_artifact(str(model_path))
        for path in write_selection_files(run_dir, config, selection):
            mlflow.log_artifact(str(path))
        return TrainResult(model, layout, model_path, run.info.run_id, config, selection, score)


def _log_metric(name: str, value: float, step: int) -> None:
    mlflow.log_metric(name, value, step=step)


def flat_params(config: TrainConfig) -> dict[str, Any]:
    """The config as MLflow parameters (nested blocks flattened with dots)."""
    flat: dict[str, Any] = {}
    for key, value in config.model_dump(mode="json").items():
        if isinstance(value, dict):
            flat.update({f"{key}.{inner}": item for inner, item in value.items()})
        else:
            flat[key] = value
    return flat


def write_selection_files(run_dir: Path, config: TrainConfig, selection: ProtocolResult) -> list[Path]:
    """Write ``selection.json`` (records and summary) and ``report.md`` (the summary table) to ``run_dir``."""
    json_path, report_path = run_dir / "selection.json", run_dir / "report.md"
    days = config.selection_days
    setup = {"selection_days": days.model_dump(mode="json")}
    write_report(json_path, selection.records, selection.summary, setup)
    lines = [
        f"# Training run `{run_dir.name}`",
        "",
        f"{config.algorithm} on `{config.template}` (objective `{config.objective.name}`), "
        f"{config.total_timesteps} steps, trained on {config.first_day}..{config.last_day}.",
        "",
        f"Selection days {days.first_day}..{days.last_day} ({days.n_seeds} seed(s) each):",
        "",
        *summary_table(selection.summary),
    ]
    report_path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return [json_path, report_path]


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
            kwargs = {
                "n_connectors_max": config.n_connectors_max,
                "hidden_size": config.hidden_size,
                "pooling": config.pooling,
            }
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


def load_model(config: TrainConfig, path: Path, field: str = "model") -> BaseAlgorithm:
    """Load a saved model of a config's algorithm (CPU); errors name ``field``.

    Raises:
        SmacError: When the file is not a model of that algorithm.
    """
    algorithms: dict[str, type[BaseAlgorithm]] = {"ppo": PPO, "sac": SAC, "td3": TD3}
    if config.algorithm == "tqc":
        from sb3_contrib import TQC

        algorithms["tqc"] = TQC
    try:
        return algorithms[config.algorithm].load(path, device="cpu")
    except (ValueError, KeyError, OSError, RuntimeError) as exc:
        expected = f"a saved {config.algorithm} model ({exc})"
        raise SmacError(f"{field}: got {str(path)!r}; expected {expected}") from None
