"""The MLflow model registry: trained runs registered under a name, the best promoted to ``champion``.

A registered version points at its training run (``model.zip``, ``train_config.yaml``, the
selection report). Each version carries its selection score (median savings capture on the
selection days, :func:`smac_rl.agents.evaluation.selection_score`) and which selection days it was
scored on. Promotion is by rule: a version becomes the champion when there is none, or when it
scored higher than the champion *on the same selection days* (scores on different days are not
comparable, so the champion stays and the reason says so); ``force`` promotes regardless.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import mlflow
from mlflow.exceptions import MlflowException

from smac_rl.agents.config import DaysConfig
from smac_rl.core.errors import SmacError

CHAMPION_ALIAS = "champion"
SCORE_TAG = "selection_score"
DAYS_TAG = "selection_days"
RUN_FILES = ("model.zip", "train_config.yaml")
"""Files of a training run that an export needs."""


@dataclass(frozen=True)
class Registration:
    """What registering a run did.

    Attributes:
        name: Registered model name.
        version: The new version.
        promoted: Whether it became the champion.
        reason: Why it was (or was not) promoted.
    """

    name: str
    version: str
    promoted: bool
    reason: str


@dataclass(frozen=True)
class Champion:
    """The version a registered model's ``champion`` alias points at.

    Attributes:
        name: Registered model name.
        version: Its version.
        run_id: The training run.
        score: Its selection score.
        selection_days: The days it was scored on (``FIRST..LAST xSEEDS``).
        command: The command that trained it (its run's ``command`` tag).
    """

    name: str
    version: str
    run_id: str
    score: float
    selection_days: str
    command: str = ""


def days_key(days: DaysConfig) -> str:
    """A day set as a tag value: ``2023-01-09..2023-01-15 x1``."""
    return f"{days.first_day}..{days.last_day} x{days.n_seeds}"


def find_champion(client: mlflow.MlflowClient, name: str) -> Champion | None:
    """The current champion of a registered model, or None (no such model, or no champion yet)."""
    try:
        version = client.get_model_version_by_alias(name, CHAMPION_ALIAS)
    except MlflowException:
        return None
    score = float(version.tags.get(SCORE_TAG, "-inf"))
    days = version.tags.get(DAYS_TAG, "")
    command = client.get_run(str(version.run_id)).data.tags.get("command", "")
    return Champion(name, str(version.version), str(version.run_id), score, days, command)


def register_run(
    tracking_uri: str, name: str, run_id: str, score: float, days: DaysConfig, force: bool = False
) -> Registration:
    """Register a training run as a new version of ``name`` and promote it when it beats the champion.

    Args:
        tracking_uri: MLflow tracking URI (the registry lives in the same store).
        name: Registered model name.
        run_id: The training run (its artifacts hold ``model.zip`` and ``train_config.yaml``).
        score: Its selection score.
        days: The selection days it was scored on.
        force: Promote whatever the scores.

    Returns:
        The new version and whether it is the champion now.

    Raises:
        SmacError: When the run does not exist or lacks the model files.
    """
    client = mlflow.MlflowClient(tracking_uri=tracking_uri)
    try:
        run = client.get_run(run_id)
    except MlflowException:
        raise SmacError(f"run_id: got {run_id!r}; expected a run of the store {tracking_uri}") from None
    present = {artifact.path for artifact in client.list_artifacts(run_id)}
    missing = [f for f in RUN_FILES if f not in present]
    if missing:
        raise SmacError(f"run_id: got {run_id!r}; its artifacts lack {', '.join(missing)}")
    try:
        client.get_registered_model(name)
    except MlflowException:
        description = "SMAC-RL charging policies (smac train --register, smac sweep)"
        client.create_registered_model(name, description=description)
    key = days_key(days)
    tags = {SCORE_TAG: repr(float(score)), DAYS_TAG: key}
    version = client.create_model_version(name, run.info.artifact_uri, run_id=run_id, tags=tags)
    current = find_champion(client, name)
    promoted, reason = _promotion(current, score, key, force)
    if promoted:
        client.set_registered_model_alias(name, CHAMPION_ALIAS, str(version.version))
    return Registration(name, str(version.version), promoted, reason)


def _promotion(current: Champion | None, score: float, key: str, force: bool) -> tuple[bool, str]:
    """Whether a new version with ``score`` on days ``key`` replaces ``current``, and why."""
    if force:
        return True, "promoted on request (force)"
    if current is None:
        return True, "first champion"
    if current.selection_days != key:
        return False, (
            f"not promoted: champion v{current.version} was scored on {current.selection_days}, this run on "
            f"{key}; scores on different days do not compare (force to promote anyway)"
        )
    comparison = f"selection score {score:.4f} against champion v{current.version}'s {current.score:.4f}"
    if not math.isfinite(score) or score <= current.score:
        return False, f"not promoted: {comparison}"
    return True, f"promoted: {comparison}"


def download_champion(tracking_uri: str, name: str, dst: Path) -> Champion:
    """Download the champion's training files (:data:`RUN_FILES`) into ``dst``.

    Raises:
        SmacError: When ``name`` has no champion in the store.
    """
    client = mlflow.MlflowClient(tracking_uri=tracking_uri)
    champion = find_champion(client, name)
    if champion is None:
        raise SmacError(
            f"champion: got {name!r}; expected a registered model with a {CHAMPION_ALIAS!r} alias in "
            f"{tracking_uri} (smac train --register NAME or smac sweep registers one)"
        )
    dst.mkdir(parents=True, exist_ok=True)
    for file_name in RUN_FILES:
        client.download_artifacts(champion.run_id, file_name, str(dst))
    return champion
