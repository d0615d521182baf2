"""Hyperparameter sweeps: Optuna trials run as Dask tasks, the parent process tracks and registers.

``smac sweep CONFIG [--scheduler ADDRESS]``. The parent asks Optuna for a trial's parameters,
submits the trial (train on the training days, score on the selection days,
:func:`run_trial`) to a Dask cluster (a ``LocalCluster`` when no address is given), tells Optuna
the score when the task returns, and logs each trial as a nested MLflow run under the sweep's run.
Workers touch neither the study's storage nor MLflow: they return the score, the selection
report and the model's bytes, so a cluster needs no shared disk. Only the parent writes the study,
to an Optuna journal file (safe for parallel writers; a rerun of the same command resumes the
study and runs only the trials still missing).

After the search, the best parameters are retrained with ``final_seeds`` more seeds (Dask tasks
too); the best of those runs is registered in the MLflow registry under the sweep's name and
promoted to ``champion`` when it beats the current one on the same selection days
(:mod:`smac_rl.agents.registry`).

Every trial is scored on the same selection days, against uncontrolled charging and the
optimum computed once in the parent (:func:`smac_rl.optimal.protocol.day_references`).
"""

from __future__ import annotations

import io
import json
import math
import os
import socket
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import mlflow
import yaml
from pydantic import Field, ValidationError, model_validator

from smac_rl.agents.config import TrainConfig
from smac_rl.agents.evaluation import evaluate_model, policy_name, selection_metrics, selection_score
from smac_rl.agents.provenance import provenance_tags
from smac_rl.agents.registry import Registration, register_run
from smac_rl.agents.reports import summary_table
from smac_rl.agents.train import fit_model, flat_params
from smac_rl.core.errors import SmacError
from smac_rl.core.scenario_io import problems_from_pydantic, read_data_file
from smac_rl.core.specs.base import StrictModel
from smac_rl.optimal.protocol import DayRecord, DayReference, day_references, write_report

FIXED_KEYS = frozenset(
    {"template", "objective", "selection_days", "test_days", "n_connectors_max", "eval_time_limit_s"}
)
"""Train keys a search may not vary: every trial must be judged on the same days and problem."""


class SearchParam(StrictModel):
    """One dimension of the search space.

    Attributes:
        kind: ``float``, ``int`` or ``categorical``.
        low: Lowest value (``float`` and ``int``).
        high: Highest value (``float`` and ``int``).
        log: Sample on a log scale (``float`` and ``int``).
        choices: The values (``categorical``).
    """

    kind: Literal["float", "int", "categorical"]
    low: float | None = None
    high: float | None = None
    log: bool = False
    choices: list[Any] | None = Field(default=None, min_length=1)

    @model_validator(mode="after")
    def _complete(self) -> SearchParam:
        if self.kind == "categorical":
            if self.choices is None:
                raise ValueError("choices: missing; expected the values of a categorical parameter")
            return self
        if self.low is None or self.high is None or not self.low < self.high:
            raise ValueError(f"low, high: got {self.low}, {self.high}; expected numbers with low < high")
        if self.log and self.low <= 0:
            raise ValueError(f"low: got {self.low}; expected a positive number on a log scale")
        return self


class SweepConfig(StrictModel):
    """A sweep: a base training config, a search space and a budget.

    Attributes:
        name: Study name, MLflow run name and registered model name.
        train: The base training config (keys of :class:`TrainConfig`); each trial overrides the
            searched keys.
        search_space: Train key -> how to sample it (not the keys of :data:`FIXED_KEYS`).
        n_trials: Trials of the study in all (a resumed study runs only the missing ones).
        sampler_seed: Seed of Optuna's TPE sampler.
        final_seeds: Extra seeds the best parameters are retrained with after the search.
        register_best: Register the best run in the MLflow registry (promoted to ``champion`` if better).
    """

    name: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    train: TrainConfig
    search_space: dict[str, SearchParam] = Field(min_length=1)
    n_trials: int = Field(ge=1, le=10_000)
    sampler_seed: int = Field(default=0, ge=0)
    final_seeds: int = Field(default=0, ge=0, le=100)
    register_best: bool = True

    @model_validator(mode="after")
    def _searchable(self) -> SweepConfig:
        for key in self.search_space:
            if key not in TrainConfig.model_fields:
                raise ValueError(f"search_space.{key}: not a training key; expected keys of TrainConfig")
            if key in FIXED_KEYS:
                raise ValueError(
                    f"search_space.{key}: every trial is judged on the same problem and days; "
                    f"expected none of {', '.join(sorted(FIXED_KEYS))}"
                )
        return self


def load_sweep_config(path: Path) -> SweepConfig:
    """Read and validate a sweep YAML; ``base_config`` (relative to it) supplies ``train``'s defaults.

    Raises:
        ScenarioError: For an unreadable file or invalid content, with the field paths.
    """
    from smac_rl.core.errors import ScenarioError

    data = dict(read_data_file(path))  # type: ignore[call-overload]
    base = data.pop("base_config", None)
    if base is not None:
        base_path = (path.parent / str(base)).resolve()
        train = dict(read_data_file(base_path))  # type: ignore[call-overload]
        train.update(data.get("train") or {})
        data["train"] = train
    try:
        return SweepConfig.model_validate(data)
    except ValidationError as exc:
        raise ScenarioError(problems_from_pydantic(exc.errors()), str(path)) from None


@dataclass(frozen=True)
class TrialOutcome:
    """What a trial task returns to the parent.

    Attributes:
        number: Trial number (or seed run label) in the sweep.
        score: Selection score (median savings capture).
        summary: The protocol's per-policy summary on the selection days.
        records: Every policy on every selection day.
        model_zip: The trained SB3 model (``model.zip`` bytes).
        wall_s: Wall time of the task [s].
        worker: Where it ran (host name and process id).
    """

    number: int
    score: float
    summary: dict[str, dict[str, Any]]
    records: list[DayRecord]
    model_zip: bytes
    wall_s: float
    worker: str


def run_trial(
    number: int, config_data: dict[str, Any], references: Mapping[tuple[str, int], DayReference]
) -> TrialOutcome:
    """Train one config and score it on the selection days (runs on a Dask worker, one torch thread).

    Args:
        number: The trial's number.
        config_data: The trial's :class:`TrainConfig` as JSON-ready data.
        references: Uncontrolled and the optimum on each selection day.

    Returns:
        The score, the selection report and the model's bytes.
    """
    import torch

    torch.set_num_threads(1)
    started = time.perf_counter()
    config = TrainConfig.model_validate(config_data)
    model = fit_model(config)
    selection = evaluate_model(model, config, "selection", references)
    buffer = io.BytesIO()
    model.save(buffer)
    score = selection_score(selection.summary[policy_name(config)])
    wall_s = time.perf_counter() - started
    worker = f"{socket.gethostname()}:{os.getpid()}"
    model_zip = buffer.getvalue()
    return TrialOutcome(number, score, selection.summary, selection.records, model_zip, wall_s, worker)


@dataclass(frozen=True)
class TrialRecord:
    """A finished trial as the parent logged it.

    Attributes:
        label: ``trial-N`` or ``seed-S``.
        params: The searched values (or the seed).
        score: Selection score (None: the trial failed).
        run_id: Its nested MLflow run.
        run_dir: Where its files are (model, config, selection report).
        error: Why it failed.
    """

    label: str
    params: dict[str, Any]
    score: float | None
    run_id: str
    run_dir: Path
    error: str | None = None


@dataclass(frozen=True)
class SweepResult:
    """A finished sweep.

    Attributes:
        parent_run_id: The sweep's MLflow run.
        trials: Trials run by this call (earlier calls' trials stay in the study).
        seed_runs: The best parameters retrained with other seeds.
        best: The best run (trial or seed run) of this call.
        registration: What registering it did (None: not registered).
    """

    parent_run_id: str
    trials: list[TrialRecord]
    seed_runs: list[TrialRecord]
    best: TrialRecord | None
    registration: Registration | None


def suggest(trial: Any, space: Mapping[str, SearchParam]) -> dict[str, Any]:
    """The values an Optuna trial draws for every dimension of the space."""
    params: dict[str, Any] = {}
    for key, param in space.items():
        low, high = param.low or 0.0, param.high or 0.0
        if param.kind == "categorical":
            params[key] = trial.suggest_categorical(key, param.choices)
        elif param.kind == "int":
            params[key] = trial.suggest_int(key, int(low), int(high), log=param.log)
        else:
            params[key] = trial.suggest_float(key, low, high, log=param.log)
    return params


def run_sweep(
    config: SweepConfig,
    sweep_dir: Path,
    tracking_uri: str,
    scheduler: str | None = None,
    n_workers: int = 2,
    experiment: str = "smac-rl-sweeps",
    say: Callable[[str], None] = print,
) -> SweepResult:
    """Run (or resume) a sweep on a Dask cluster (module docstring).

    Args:
        config: The sweep.
        sweep_dir: Folder of the study journal and of every run's files (created).
        tracking_uri: MLflow tracking URI (runs and registry).
        scheduler: Address of a Dask scheduler; None: a ``LocalCluster`` of ``n_workers`` processes.
        n_workers: Workers of the local cluster (one thread each).
        experiment: MLflow experiment of the sweep's runs.
        say: Where progress lines go.

    Returns:
        The trials, the seed runs, the best run and its registration.

    Raises:
        SmacError: When every trial failed, or the scheduler cannot be reached.
    """
    import optuna
    from distributed import Client, LocalCluster
    from optuna.storages.journal import JournalFileBackend

    sweep_dir.mkdir(parents=True, exist_ok=True)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    journal = JournalFileBackend(str(sweep_dir / "optuna.journal"))
    study = optuna.create_study(
        study_name=config.name,
        storage=optuna.storages.JournalStorage(journal),
        direction="maximize",
        sampler=optuna.samplers.TPESampler(seed=config.sampler_seed),
        load_if_exists=True,
    )
    finished = [t for t in study.trials if t.state.is_finished()]
    n_missing = max(0, config.n_trials - len(finished))
    from smac_rl.agents.evaluation import day_set

    say(f"{config.name}: {len(finished)} trial(s) already in the study, {n_missing} to run")
    say("scoring uncontrolled charging and the optimum on the selection days ...")
    references = day_references(day_set(config.train, "selection"), config.train.eval_time_limit_s)
    cluster = None
    try:
        if scheduler is None:
            cluster = LocalCluster(  # type: ignore[no-untyped-call]
                n_workers=n_workers, threads_per_worker=1, processes=True, dashboard_address=":0"
            )
            client = Client(cluster)  # type: ignore[no-untyped-call]
        else:
            client = Client(scheduler, timeout="30s")  # type: ignore[no-untyped-call]
    except OSError as exc:
        raise SmacError(f"scheduler: got {scheduler!r}; expected a reachable Dask scheduler: {exc}") from None
    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_experiment(experiment)
    try:
        with mlflow.start_run(run_name=config.name) as parent:
            mlflow.set_tags(provenance_tags())
            mlflow.log_params({"sweep.n_trials": config.n_trials, "sweep.sampler_seed": config.sampler_seed})
            mlflow.log_params(flat_params(config.train))
            mlflow.log_dict(config.model_dump(mode="json"), "sweep_config.json")
            shared = client.scatter(references, broadcast=True)  # type: ignore[no-untyped-call]
            runner = _Runner(client, shared, sweep_dir, config, say)
            trials = runner.search(study, n_missing)
            seed_runs = runner.seeds(study) if config.final_seeds else []
            candidates = [t for t in trials + seed_runs if t.score is not None]
            if not candidates and n_missing:
                raise SmacError(f"{config.name}: every trial failed; first error: {trials[0].error}")
            best = max(candidates, key=lambda t: t.score or -math.inf) if candidates else None
            registration = None
            if best is not None:
                mlflow.log_metric("best_selection_score", best.score or -math.inf)
                mlflow.set_tag("best_run_id", best.run_id)
                if config.register_best:
                    days = config.train.selection_days
                    score = best.score or -math.inf
                    registration = register_run(tracking_uri, config.name, best.run_id, score, days)
                    say(f"registered {config.name} v{registration.version}: {registration.reason}")
            return SweepResult(parent.info.run_id, trials, seed_runs, best, registration)
    finally:
        client.close()  # type: ignore[no-untyped-call]
        if cluster is not None:
            cluster.close()


class _Runner:
    """Submits trial tasks, collects them as they finish, writes their files and nested MLflow runs."""

    def __init__(
        self, client: Any, references: Any, sweep_dir: Path, config: SweepConfig, say: Callable[[str], None]
    ) -> None:
        self.client, self.references, self.sweep_dir = client, references, sweep_dir
        self.config, self.say = config, say
        self.slots = max(1, sum(client.nthreads().values()))

    def search(self, study: Any, n_trials: int) -> list[TrialRecord]:
        """Run ``n_trials`` new trials of the study, at most one per worker thread at a time."""
        records: list[TrialRecord] = []
        pending: dict[Any, tuple[Any, dict[str, Any], TrainConfig]] = {}
        asked = 0
        while asked < n_trials or pending:
            while asked < n_trials and len(pending) < self.slots:
                trial, asked = study.ask(), asked + 1
                params = suggest(trial, self.config.search_space)
                try:
                    trial_config = TrainConfig.model_validate({**self.config.train.model_dump(), **params})
                except ValidationError as exc:
                    study.tell(trial, state=_failed())
                    error = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
                    records.append(self._log(f"trial-{trial.number}", params, None, None, error))
                    continue
                future = self._submit(trial.number, trial_config)
                pending[future] = (trial, params, trial_config)
            for future in self._finished(pending):
                trial, params, trial_config = pending.pop(future)
                outcome, failure = _result(future)
                if outcome is None or not math.isfinite(outcome.score):
                    study.tell(trial, state=_failed())
                    why = failure or "every selection day was excluded (under 1 EUR to save): no score"
                    records.append(self._log(f"trial-{trial.number}", params, trial_config, None, why))
                    continue
                record = self._log(f"trial-{trial.number}", params, trial_config, outcome, None)
                trial.set_user_attr("mlflow_run_id", record.run_id)
                study.tell(trial, outcome.score)
                records.append(record)
        return sorted(records, key=lambda r: int(r.label.rsplit("-", 1)[1]))

    def seeds(self, study: Any) -> list[TrialRecord]:
        """Retrain the study's best parameters with ``final_seeds`` other seeds (in parallel)."""
        if not any(t.state.name == "COMPLETE" for t in study.trials):
            return []
        base = {**self.config.train.model_dump(), **study.best_trial.params}
        pending: dict[Any, tuple[Any, dict[str, Any], TrainConfig]] = {}
        for k in range(1, self.config.final_seeds + 1):
            seed_config = TrainConfig.model_validate({**base, "seed": self.config.train.seed + k})
            pending[self._submit(-k, seed_config)] = (None, {"seed": seed_config.seed}, seed_config)
        records = []
        while pending:
            for future in self._finished(pending):
                _, params, seed_config = pending.pop(future)
                outcome, error = _result(future)
                records.append(self._log(f"seed-{params['seed']}", params, seed_config, outcome, error))
        return records

    def _submit(self, number: int, config: TrainConfig) -> Any:
        data = config.model_dump(mode="json")
        return self.client.submit(run_trial, number, data, self.references, pure=False)

    @staticmethod
    def _finished(pending: Mapping[Any, Any]) -> list[Any]:
        from distributed import wait

        done, _ = wait(list(pending), return_when="FIRST_COMPLETED")  # type: ignore[no-untyped-call]
        return list(done)

    def _log(
        self,
        label: str,
        params: dict[str, Any],
        config: TrainConfig | None,
        outcome: TrialOutcome | None,
        error: str | None,
    ) -> TrialRecord:
        """Write a finished run's files and its nested MLflow run."""
        run_dir = self.sweep_dir / label
        run_dir.mkdir(parents=True, exist_ok=True)
        with mlflow.start_run(run_name=f"{self.config.name}/{label}", nested=True) as run:
            mlflow.set_tags({**provenance_tags(), "sweep": self.config.name})
            mlflow.log_params({f"searched.{key}": value for key, value in params.items()})
            if config is not None:
                (run_dir / "train_config.yaml").write_text(
                    yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False), encoding="utf-8"
                )
                mlflow.log_params(flat_params(config))
                mlflow.log_artifact(str(run_dir / "train_config.yaml"))
            if outcome is None:
                mlflow.set_tag("error", (error or "")[:5000])
                self.say(f"{label}: failed: {error}")
                return TrialRecord(label, params, None, run.info.run_id, run_dir, error)
            (run_dir / "model.zip").write_bytes(outcome.model_zip)
            write_report(run_dir / "selection.json", outcome.records, outcome.summary, {"params": params})
            title = f"# {self.config.name} {label}"
            lines = [title, "", json.dumps(params), "", *summary_table(outcome.summary)]
            (run_dir / "report.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
            name = policy_name(config) if config is not None else ""
            mlflow.log_metrics({**selection_metrics(outcome.summary.get(name, {})), "wall_s": outcome.wall_s})
            mlflow.log_metric("selection_score", outcome.score)
            mlflow.set_tag("worker", outcome.worker)
            for file_name in ("model.zip", "selection.json", "report.md"):
                mlflow.log_artifact(str(run_dir / file_name))
            took = f"{outcome.wall_s:.0f} s"
            self.say(f"{label}: selection score {outcome.score:.4f}, {took}, {json.dumps(params)}")
            return TrialRecord(label, params, outcome.score, run.info.run_id, run_dir)


def _failed() -> Any:
    import optuna

    return optuna.trial.TrialState.FAIL


def _result(future: Any) -> tuple[TrialOutcome | None, str | None]:
    """A finished task's outcome, or why it failed."""
    try:
        outcome: TrialOutcome = future.result()
    except Exception as exc:  # a trial's failure is recorded, not raised: the sweep goes on
        return None, f"{type(exc).__name__}: {exc}"
    return outcome, None


def sweep_summary(result: SweepResult) -> list[dict[str, Any]]:
    """One row per run of a sweep (label, score, params, run id, error), best first."""
    rows = [asdict(t) | {"run_dir": str(t.run_dir)} for t in result.trials + result.seed_runs]
    return sorted(rows, key=lambda row: -math.inf if row["score"] is None else -row["score"])
