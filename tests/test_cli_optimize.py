"""``smac optimize``: one scenario's optimum, a batch to parquet with one MLflow run, one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import mlflow
import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from smac_rl.cli.main import app
from smac_rl.optimal.batch import result_columns
from tests.core.tiny import tiny_data

runner = CliRunner()

BATCH = ["optimize", "--template", "berlin_residential_garage", "--first-day", "2024-05-06"]


def _tiny(tmp_path: Path) -> Path:
    file = tmp_path / "tiny.yaml"
    file.write_text(yaml.safe_dump(tiny_data()))
    return file


def test_batch_writes_parquet_and_logs_one_mlflow_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # MLflow puts a SQLite store's artifacts under ./mlruns
    out = tmp_path / "results.parquet"
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    args = [*BATCH, "--days", "2", "--backend", "joblib", "--jobs", "2", "--out", str(out)]
    result = runner.invoke(app, [*args, "--tracking-uri", uri], terminal_width=200)
    assert result.exit_code == 0, result.output
    assert f"wrote {out}: 2 site-days (0 failed)" in result.output
    assert "share optimal" in result.output
    frame = pd.read_parquet(out)
    assert list(frame.columns) == list(result_columns())
    assert frame["job_label"].tolist() == [
        "berlin_residential_garage/2024-05-06/s0",
        "berlin_residential_garage/2024-05-07/s0",
    ]
    assert frame["status"].tolist() == ["optimal", "optimal"]
    assert frame["error"].isna().all()
    assert (frame["optimal_objective_eur"] <= frame["uncontrolled_objective_eur"] + 1e-6).all()
    client = mlflow.MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name("smac-rl-optimize")
    assert experiment is not None
    runs = client.search_runs([experiment.experiment_id])
    assert len(runs) == 1
    run = runs[0]
    assert run.info.status == "FINISHED"
    params = run.data.params
    assert (params["template"], params["days"], params["backend"]) == (
        "berlin_residential_garage",
        "2",
        "joblib",
    )
    metrics = run.data.metrics
    assert metrics["share_optimal_frac"] == 1.0
    assert metrics["n_days"] == 2
    assert metrics["median_solve_s"] > 0
    assert metrics["mean_savings_possible_eur"] == pytest.approx(frame["savings_possible_eur"].mean())
    assert run.data.tags["git_sha"]
    assert [a.path for a in client.list_artifacts(run.info.run_id)] == ["results.parquet"]


def test_batch_without_tracking_writes_only_the_parquet(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, [*BATCH, "--backend", "serial", "--no-track"], terminal_width=200)
    assert result.exit_code == 0, result.output
    default_out = tmp_path / "berlin_residential_garage_2024-05-06_1d_1seeds.parquet"
    assert len(pd.read_parquet(default_out)) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == [default_out.name]


def test_one_builtin_scenario_prints_status_optimal() -> None:
    result = runner.invoke(app, ["optimize", "--builtin", "demo_workplace"], terminal_width=200)
    assert result.exit_code == 0, result.output
    assert "status OPTIMAL" in result.output
    assert "Optimum of demo_workplace" in result.output
    assert "total cost [EUR]" in result.output


def test_one_scenario_writes_its_profile_as_json_and_parquet(tmp_path: Path) -> None:
    file = _tiny(tmp_path)
    result = runner.invoke(app, ["optimize", "--scenario", str(file), "--out", str(tmp_path / "o.json")])
    assert result.exit_code == 0, result.output
    payload = json.loads((tmp_path / "o.json").read_text())
    assert payload["status"] == "optimal"
    assert payload["kpis"]["total_cost_eur"] == pytest.approx(94 / 3)  # tests/optimal: the tiny optimum
    assert len(payload["step_start_utc"]) == 4
    dc1 = payload["connectors"][0]
    assert dc1["station_id"] == "DC1"
    assert dc1["ev_power_kw"][:3] == pytest.approx([10 / 3, 40 / 3, 40 / 3])
    assert [s["session_id"] for s in payload["sessions"]] == ["S1", "S2"]
    result = runner.invoke(app, ["optimize", "--scenario", str(file), "--out", str(tmp_path / "o.parquet")])
    assert result.exit_code == 0, result.output
    frame = pd.read_parquet(tmp_path / "o.parquet")
    assert frame["DC1.1.1.ev_power_kw"].tolist()[:3] == pytest.approx([10 / 3, 40 / 3, 40 / 3])
    assert frame.attrs["status"] == "optimal"
    assert frame.attrs["kpis"]["peak_import_kw"] == pytest.approx(55 / 3)


def test_both_builders_give_the_tiny_optimum(tmp_path: Path) -> None:
    file = _tiny(tmp_path)
    for builder in ("assemble", "pyomo"):
        out = tmp_path / f"{builder}.json"
        result = runner.invoke(
            app, ["optimize", "--scenario", str(file), "--builder", builder, "--out", str(out)]
        )
        assert result.exit_code == 0, result.output
        payload = json.loads(out.read_text())
        assert payload["builder"] == builder
        assert payload["kpis"]["total_cost_eur"] == pytest.approx(94 / 3)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            [*BATCH[:3], "--first-day", "06.05.2024"],
            "first-day: got '06.05.2024'; expected a day as YYYY-MM-DD",
        ),
        (
            ["optimize", "--template", "atlantis", "--first-day", "2024-05-06"],
            "template: got 'atlantis'; expected a template name (barcelona_public_hub,",
        ),
        (
            [*BATCH[:3], "--first-day", "2030-01-01"],
            "prices: got 2029-12-31T23:00:00+00:00 to 2030-01-01T23:00:00+00:00; expected a non-empty range",
        ),
        ([*BATCH, "--backend", "ray"], "backend: got 'ray'; expected one of serial, joblib, dask"),
        ([*BATCH, "--scheduler", "tcp://h:8786"], "with --backend joblib; expected --backend dask"),
        ([*BATCH, "--out", "results.csv"], "out: got 'results.csv'; expected a .parquet file"),
        (["optimize", "--days", "3"], "days: got 3 without --template; expected --template for a batch"),
        ([*BATCH, "--builtin", "demo_workplace"], "got both; expected one of them"),
        (["optimize", "--builtin", "demo_workplace", "--out", "o.csv"], "expected a .json or .parquet file"),
        (["optimize", "--builder", "gurobi"], "builder: got 'gurobi'; expected assemble or pyomo"),
    ],
)
def test_errors_are_one_line(
    args: list[str], message: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, [*args, "--no-track"] if "--template" in args else args)
    assert result.exit_code == 1
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1, result.output
    assert lines[0].startswith("error: ")
    assert message in lines[0]
    assert list(tmp_path.iterdir()) == []  # nothing written


def test_an_unwritable_output_fails_before_any_work(tmp_path: Path) -> None:
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    out = blocker / "results.parquet"  # a folder that is a file
    result = runner.invoke(app, [*BATCH, "--no-track", "--out", str(out)], terminal_width=400)
    assert result.exit_code == 1
    assert f"error: out: got '{out}'; expected a writable file path" in result.output
    single = runner.invoke(app, ["optimize", "--scenario", str(_tiny(tmp_path)), "--out", str(out)])
    assert single.exit_code == 1
    assert f"error: out: got '{out}'; expected a writable file path" in single.output
