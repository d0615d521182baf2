"""``smac forecast``: fit writes ONNX + metadata tracked in MLflow; bad options are one line and exit 1."""

from __future__ import annotations

import json
from pathlib import Path

import mlflow
from typer.testing import CliRunner

from smac_rl.cli.main import app

runner = CliRunner()


def test_fit_arrivals_writes_a_model_and_an_mlflow_run(tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    out = tmp_path / "model"
    args = [
        "forecast",
        "fit",
        "--target",
        "arrivals",
        "--n-trees",
        "3",
        "--out",
        str(out),
        "--tracking-uri",
        uri,
    ]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    metadata = json.loads((out / "metadata.json").read_text())
    assert sorted(p.name for p in out.iterdir()) == ["MODEL_CARD.md", "mean.onnx", "metadata.json"]
    assert metadata["booster"]["objective"] == "poisson"
    run = mlflow.MlflowClient(tracking_uri=uri).get_run(metadata["mlflow_run_id"])
    assert run.data.params["target"] == "arrivals"
    assert run.data.metrics["onnx_parity_max_abs_error"] <= 1e-4


def test_bad_options_fail_in_one_line(tmp_path: Path) -> None:
    result = runner.invoke(app, ["forecast", "fit", "--until", "2023-13-01", "--out", str(tmp_path)])
    assert result.exit_code == 1
    assert "error: until: got '2023-13-01'; expected a day as YYYY-MM-DD" in result.output
    result = runner.invoke(app, ["forecast", "backtest", "--target", "wind"])
    assert result.exit_code == 2
