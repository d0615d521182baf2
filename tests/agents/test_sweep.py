"""``smac sweep``: Optuna trials as Dask tasks on a LocalCluster of 2 workers; registry; champion export."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import mlflow
import optuna
import pytest
import yaml
from typer.testing import CliRunner

from smac_rl.agents.registry import CHAMPION_ALIAS, find_champion
from smac_rl.agents.sweep import SweepResult, load_sweep_config, run_sweep
from smac_rl.cli.main import app
from smac_rl.core.errors import ScenarioError
from smac_rl_serve.catalog import resolve_model_dir
from smac_rl_serve.model import OnnxPolicy

TINY_TRAIN: dict[str, Any] = {
    "template": "rome_v2g_fleet",
    "total_timesteps": 128,
    "n_envs": 2,
    "n_steps": 64,
    "batch_size": 64,
    "n_epochs": 1,
    "n_connectors_max": 6,
    "net_arch": [16, 16],
    "pool_size": 2,
    "selection_days": {"first_day": "2023-03-06", "n_days": 1},
    "test_days": {"first_day": "2024-03-04", "n_days": 1},
}
SWEEP: dict[str, Any] = {
    "name": "tiny-sweep",
    "n_trials": 2,
    "train": TINY_TRAIN,
    "search_space": {
        "learning_rate": {"kind": "float", "low": 1e-4, "high": 1e-3, "log": True},
        "gamma": {"kind": "categorical", "choices": [0.95, 0.99]},
    },
}


FLOAT: dict[str, Any] = {"kind": "float", "low": 0.1, "high": 0.2}


def _uri(root: Path) -> str:
    return f"sqlite:///{root / 'mlflow.db'}"


def _write(path: Path, data: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def swept(tmp_path_factory: pytest.TempPathFactory) -> tuple[SweepResult, Path]:
    root = tmp_path_factory.mktemp("sweep")
    config = load_sweep_config(_write(root / "sweep.yaml", SWEEP))
    result = run_sweep(
        config, root / "sweep", f"sqlite:///{root / 'mlflow.db'}", n_workers=2, say=lambda _: None
    )
    return result, root


def _study(root: Path) -> optuna.Study:
    backend = optuna.storages.journal.JournalFileBackend(str(root / "sweep" / "optuna.journal"))
    return optuna.load_study(study_name="tiny-sweep", storage=optuna.storages.JournalStorage(backend))


def test_two_trials_run_as_dask_tasks_and_the_parent_tracks_them(swept: tuple[SweepResult, Path]) -> None:
    result, root = swept
    assert [t.label for t in result.trials] == ["trial-0", "trial-1"]
    assert all(t.score is not None and t.error is None for t in result.trials)
    study = _study(root)
    assert [t.state for t in study.trials] == [optuna.trial.TrialState.COMPLETE] * 2
    assert sorted(t.value for t in study.trials) == sorted(t.score for t in result.trials)  # type: ignore[type-var]
    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{root / 'mlflow.db'}")
    parent = client.get_run(result.parent_run_id)
    children = client.search_runs(
        [parent.info.experiment_id], filter_string=f"tags.mlflow.parentRunId = '{result.parent_run_id}'"
    )
    assert len(children) == 2
    by_id = {run.info.run_id: run for run in children}
    for trial in result.trials:
        child = by_id[trial.run_id]
        assert child.data.metrics["selection_score"] == pytest.approx(trial.score)
        assert child.data.params["searched.gamma"] in {"0.95", "0.99"}
        assert not child.data.tags["worker"].endswith(f":{os.getpid()}")  # trained in a worker process
        assert {a.path for a in client.list_artifacts(trial.run_id)} >= {
            "model.zip",
            "selection.json",
            "report.md",
        }
        assert (trial.run_dir / "model.zip").is_file()
    assert parent.data.tags["git_sha"]
    best = max(result.trials, key=lambda t: t.score or 0.0)
    assert result.best == best
    assert parent.data.metrics["best_selection_score"] == pytest.approx(best.score)


def test_the_best_trial_is_registered_as_champion(swept: tuple[SweepResult, Path]) -> None:
    result, root = swept
    assert result.registration is not None
    assert result.best is not None
    assert (result.registration.version, result.registration.promoted) == ("1", True)
    champion = find_champion(
        mlflow.MlflowClient(tracking_uri=f"sqlite:///{root / 'mlflow.db'}"), "tiny-sweep"
    )
    assert champion is not None
    assert (champion.run_id, champion.version) == (result.best.run_id, "1")
    assert champion.score == pytest.approx(result.best.score)
    assert champion.selection_days == "2023-03-06..2023-03-06 x1"


def _export_champion(root: Path, *options: str) -> None:
    """``smac export --champion tiny-sweep`` from the swept registry, run in ``root``; it must succeed."""
    uri = f"sqlite:///{root / 'mlflow.db'}"
    done = CliRunner().invoke(app, ["export", "--champion", "tiny-sweep", "--tracking-uri", uri, *options])
    assert done.exit_code == 0, done.output


def test_export_of_the_champion_writes_a_servable_version_with_its_card(
    swept: tuple[SweepResult, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    _, root = swept
    monkeypatch.chdir(root)
    _export_champion(root)
    family = root / "models" / "policies" / "tiny-sweep"
    assert json.loads((family / "ALIASES.json").read_text()) == {CHAMPION_ALIAS: "v1"}
    card = (family / "v1" / "MODEL_CARD.md").read_text()
    for needle in ("## Data and splits", "| tiny-sweep/v1 |", "| optimal | 100.0% |", "| price_threshold |"):
        assert needle in card
    assert "Test days (reported once, here): 2024-03-04..2024-03-04" in card
    folder = resolve_model_dir("tiny-sweep@champion", family.parent)
    assert folder == family / "v1"
    assert OnnxPolicy(folder).metadata.n_connectors_max == 6
    _export_champion(root, "--no-card")
    assert json.loads((family / "ALIASES.json").read_text()) == {CHAMPION_ALIAS: "v2", "previous": "v1"}


def test_card_scores_an_export_again_keeping_its_registry_line_and_commands(
    swept: tuple[SweepResult, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    _, root = swept
    monkeypatch.chdir(root)
    folder = root / "exports" / "tiny-card" / "v1"
    _export_champion(root, "--out", str(folder))
    card_path = folder / "MODEL_CARD.md"
    exported = card_path.read_text()
    registry_line = next(line for line in exported.splitlines() if line.startswith("- Provenance:"))
    assert ", registry `tiny-sweep` v1 (alias champion" in registry_line
    # A card scored again before: its `smac card` lines are replaced, not repeated.
    old_lines = "\n# scored again at git 0123 by:\nsmac card old --config x.yaml\n```\n"
    earlier = exported.replace("\n```\n", old_lines) + "\n## Notes\n- Written by hand.\n"
    card_path.write_text(earlier)
    config = _write(root / "card_train.yaml", TINY_TRAIN)

    wrong = _write(root / "card_wrong.yaml", {**TINY_TRAIN, "is_min_current_rounded": True})
    refused = CliRunner().invoke(app, ["card", str(folder), "--config", str(wrong)])
    assert refused.exit_code == 1
    assert "is_min_current_rounded False" in refused.output
    assert "gives True" in refused.output
    missing = CliRunner().invoke(app, ["card", str(root / "exports"), "--config", str(config)])
    assert missing.exit_code == 1
    assert "policy_dir: got" in missing.output
    assert "policy.onnx and metadata.json" in missing.output
    assert card_path.read_text() == earlier  # refused: nothing written

    done = CliRunner().invoke(app, ["card", str(folder), "--config", str(config)])
    assert done.exit_code == 0, done.output
    card = card_path.read_text()
    assert registry_line in card.splitlines()
    reproduce = _reproduce_block(card)
    assert reproduce[0].startswith("# trained by: ")
    assert reproduce[:2] == _reproduce_block(exported)
    assert reproduce[2].startswith("# scored again at git ")
    assert reproduce[3] == f"smac card {folder} --config {config}"
    assert len(reproduce) == 4
    assert card.endswith("```\n\n## Notes\n- Written by hand.\n")  # sections after the commands kept
    for needle in ("| tiny-card/v1 |", "| optimal | 100.0% |", "Test days (reported once, here): 2024-03-04"):
        assert needle in card


def _reproduce_block(card: str) -> list[str]:
    return card.split("## Reproduce\n```bash\n")[1].split("\n```")[0].splitlines()


def test_a_rerun_resumes_the_study_and_runs_only_the_missing_trials(swept: tuple[SweepResult, Path]) -> None:
    first, root = swept
    config = load_sweep_config(_write(root / "sweep3.yaml", {**SWEEP, "n_trials": 3}))
    result = run_sweep(
        config, root / "sweep", f"sqlite:///{root / 'mlflow.db'}", n_workers=2, say=lambda _: None
    )
    assert [t.label for t in result.trials] == ["trial-2"]
    assert len(_study(root).trials) == 3
    assert result.registration is not None
    beat = (result.trials[0].score or 0.0) > max(t.score or 0.0 for t in first.trials)
    assert result.registration.promoted is beat


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            {"search_space": {"learning_rat": {"kind": "float", "low": 0.1, "high": 0.2}}},
            "search_space.learning_rat",
        ),
        (
            {"search_space": {"template": {"kind": "categorical", "choices": ["a"]}}},
            "judged on the same problem",
        ),
        (
            {"search_space": {"gamma": {"kind": "float", "low": 0.9, "high": 0.5}}},
            "expected numbers with low < high",
        ),
        ({"n_trial": 3}, "n_trial"),
        ({"train": {**TINY_TRAIN, "n_env": 2}}, "train.n_env"),
    ],
)
def test_bad_sweep_configs_are_refused_naming_the_field(
    tmp_path: Path, change: dict[str, Any], message: str
) -> None:
    with pytest.raises(ScenarioError, match=message.replace(".", r"\.")):
        load_sweep_config(_write(tmp_path / "sweep.yaml", {**SWEEP, **change}))


def test_base_config_supplies_the_train_block(tmp_path: Path) -> None:
    _write(tmp_path / "base.yaml", TINY_TRAIN)
    data = {k: v for k, v in SWEEP.items() if k != "train"}
    config = load_sweep_config(
        _write(tmp_path / "sweep.yaml", {**data, "base_config": "base.yaml", "train": {"seed": 7}})
    )
    assert (config.train.template, config.train.seed, config.train.n_envs) == ("rome_v2g_fleet", 7, 2)
