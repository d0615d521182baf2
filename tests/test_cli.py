"""The ``smac`` command: validate, show, evaluate, demo; one clear line per error and exit 1."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from smac_rl.cli.main import app
from tests.core.tiny import tiny_data

runner = CliRunner()


def _write(tmp_path: Path, data: dict[str, object]) -> Path:
    file = tmp_path / "scenario.yaml"
    file.write_text(yaml.safe_dump(data))
    return file


def test_validate_accepts_a_valid_file(tmp_path: Path) -> None:
    result = runner.invoke(app, ["scenario", "validate", str(_write(tmp_path, tiny_data()))])
    assert result.exit_code == 0, result.output
    assert "valid scenario 'tiny' (2 chargers, 2 sessions, 4 steps)" in result.output


def test_validate_reports_each_problem_on_one_line(tmp_path: Path) -> None:
    data = tiny_data()
    data["sessions"][0]["arrival_soc_frac"] = 1.4
    data["sessions"][1]["station_id"] = "XX"
    file = _write(tmp_path, data)
    result = runner.invoke(app, ["scenario", "validate", str(file)])
    assert result.exit_code == 1
    lines = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert lines == [f"error: {file}: sessions[0].arrival_soc_frac: got 1.4; expected a number <= 1"]
    # Field errors come first; cross-field checks run once the fields parse.
    data["sessions"][0]["arrival_soc_frac"] = 0.5
    result = runner.invoke(app, ["scenario", "validate", str(_write(tmp_path, data))])
    assert (
        "sessions[1].station_id: got 'XX'; expected a station_id of site.chargers (AC1, DC1)" in result.output
    )


def test_show_summarises_assets_and_sessions(tmp_path: Path) -> None:
    result = runner.invoke(app, ["scenario", "show", str(_write(tmp_path, tiny_data()))], terminal_width=200)
    assert result.exit_code == 0, result.output
    for fragment in (
        "Scenario tiny",
        "4 steps of 60 min",
        "import limit 29 kW",
        "DC1",
        "AC1",
        "11.04",
        "S1",
        "S2",
    ):
        assert fragment in result.output


def test_evaluate_prints_kpis_as_json(tmp_path: Path) -> None:
    file = _write(tmp_path, tiny_data())
    result = runner.invoke(app, ["evaluate", "--scenario", str(file), "--policy", "llf", "--json"])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.output)
    assert payload["kpis"]["least_laxity_first"]["total_cost_eur"] == 42.8


def test_evaluate_rejects_an_unknown_policy(tmp_path: Path) -> None:
    result = runner.invoke(
        app, ["evaluate", "--scenario", str(_write(tmp_path, tiny_data())), "--policy", "magic"]
    )
    assert result.exit_code == 1
    assert "policy: got 'magic'; expected one of uncontrolled, least_laxity_first, llf" in result.output


def test_evaluate_rejects_both_sources(tmp_path: Path) -> None:
    file = _write(tmp_path, tiny_data())
    result = runner.invoke(app, ["evaluate", "--scenario", str(file), "--builtin", "demo_workplace"])
    assert result.exit_code == 1
    assert "got both; expected one of them" in result.output


def test_demo_runs_every_component_and_leaves_models_alone(tmp_path: Path) -> None:
    models = Path(__file__).parents[1] / "models" / "policies" / "default" / "v1" / "policy.onnx"
    before = models.read_bytes()
    args = ["demo", "--timesteps", "256", "--run-dir", str(tmp_path / "demo")]
    result = runner.invoke(
        app, [*args, "--tracking-uri", f"sqlite:///{tmp_path / 'mlflow.db'}"], terminal_width=200
    )
    assert result.exit_code == 0, result.output
    for fragment in (
        "uncontrolled",
        "least_laxity_first",
        "optimal",
        "ppo",
        "total cost [EUR]",
        "savings capture",
    ):
        assert fragment in result.output
    assert (tmp_path / "demo" / "export" / "policy.onnx").is_file()
    assert (tmp_path / "demo" / "scenario.yaml").is_file()
    assert models.read_bytes() == before


def test_console_script_is_installed() -> None:
    smac = Path(sys.executable).with_name("smac")
    completed = subprocess.run([str(smac), "--help"], capture_output=True, text=True, check=False, timeout=60)
    assert completed.returncode == 0, completed.stderr
    for command in ("demo", "evaluate", "scenario"):
        assert command in completed.stdout


def test_templates_lists_the_five_pilots() -> None:
    result = runner.invoke(app, ["scenario", "templates"], terminal_width=200)
    assert result.exit_code == 0, result.output
    for name in ("barcelona_public_hub", "berlin_residential_garage", "budapest_workplace", "rome_v2g_fleet"):
        assert name in result.output
    assert "turku_ultrafast_hub" in result.output


def test_generate_writes_a_valid_scenario_and_a_plot(tmp_path: Path) -> None:
    out, plot = tmp_path / "day.yaml", tmp_path / "day.png"
    args = [
        "scenario",
        "generate",
        "--site",
        "berlin_residential_garage",
        "--date",
        "2024-10-27",
        "--seed",
        "4",
    ]
    result = runner.invoke(app, [*args, "--out", str(out), "--plot", str(plot)], terminal_width=200)
    assert result.exit_code == 0, result.output
    assert "100 steps of 15 min" in result.output  # the 25-hour day of the autumn clock change
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    validated = runner.invoke(app, ["scenario", "validate", str(out)])
    assert validated.exit_code == 0, validated.output


def test_generate_errors_are_one_line(tmp_path: Path) -> None:
    result = runner.invoke(
        app, ["scenario", "generate", "--site", "berlin_residential_garage", "--date", "27.10.2024"]
    )
    assert result.exit_code == 1
    assert "date: got '27.10.2024'; expected a day as YYYY-MM-DD" in result.output
    result = runner.invoke(
        app,
        [
            "scenario",
            "generate",
            "--site",
            "rome_v2g_fleet",
            "--date",
            "2030-01-01",
            "--out",
            str(tmp_path / "x.yaml"),
        ],
    )
    assert result.exit_code == 1
    assert "expected a non-empty range within 2015-01-01" in result.output
    assert not (tmp_path / "x.yaml").exists()


def test_evaluate_with_the_optimum_reports_savings_capture(tmp_path: Path) -> None:
    file = _write(tmp_path, tiny_data())
    args = ["evaluate", "--scenario", str(file), "--policy", "uncontrolled", "--policy", "llf"]
    result = runner.invoke(app, [*args, "--policy", "optimal", "--json"])
    assert result.exit_code == 0, result.output
    capture = json.loads(result.output)["savings_capture_frac"]
    # Costs 46.6 (uncontrolled), 42.8 (LLF), 94/3 (optimum, tests/optimal): LLF captures
    # (46.6 - 42.8) / (46.6 - 94/3) = 3.8 / 15.2667 = 0.2489.
    assert capture["uncontrolled"] == 0.0
    assert abs(capture["least_laxity_first"] - 3.8 / (46.6 - 94 / 3)) < 1e-6
    assert abs(capture["optimal"] - 1.0) < 1e-9


def test_train_then_export(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    config = tmp_path / "train.yaml"
    days = "selection_days: {first_day: 2023-03-06, n_days: 1}\n"
    days += "test_days: {first_day: 2024-03-04, n_days: 1}\n"
    config.write_text("n_envs: 1\nn_steps: 64\nbatch_size: 64\nn_epochs: 1\nn_connectors_max: 8\n" + days)
    args = ["train", "--config", str(config), "--timesteps", "128", "--template", "rome_v2g_fleet"]
    result = runner.invoke(
        app, [*args, "--run-dir", str(run_dir), "--tracking-uri", f"sqlite:///{tmp_path / 'm.db'}"]
    )
    assert result.exit_code == 0, result.output
    exported = runner.invoke(app, ["export", "--run-dir", str(run_dir)])
    assert exported.exit_code == 0, exported.output
    metadata = json.loads((run_dir / "export" / "metadata.json").read_text())
    assert metadata["mlflow_run_id"] == (run_dir / "mlflow_run_id.txt").read_text().strip()
    assert metadata["template"] == "rome_v2g_fleet"
    card = (run_dir / "export" / "MODEL_CARD.md").read_text()
    assert "Test days (reported once, here): 2024-03-04..2024-03-04" in card
    assert "| run/export | " in card  # the exported graph, scored as the service runs it
    # The same graph served with another decoding: the metadata carries it, the card says so; an
    # option at training's value is no change.
    decoded_dir = tmp_path / "decoded"
    decoding = ["--decoding", "deadline_floor_margin_steps=0.5", "--decoding", "is_min_current_rounded=false"]
    decoded = runner.invoke(app, ["export", "--run-dir", str(run_dir), "--out", str(decoded_dir), *decoding])
    assert decoded.exit_code == 0, decoded.output
    decoded_metadata = json.loads((decoded_dir / "metadata.json").read_text())
    assert decoded_metadata["deadline_floor_margin_steps"] == 0.5
    assert decoded_metadata["onnx_sha256"] == metadata["onnx_sha256"]
    decoded_card = (decoded_dir / "MODEL_CARD.md").read_text()
    assert (
        "(`smac export --decoding`): `deadline_floor_margin_steps` 0.5 (trained with None). The graph"
        in decoded_card
    )
    # The fill prices no energy: refused for this cost-objective policy, and nothing is written.
    refused_dir = tmp_path / "refused"
    fill = ["--decoding", "is_paid_peak_filled=true"]
    refused = runner.invoke(
        app, ["export", "--run-dir", str(run_dir), "--out", str(refused_dir), *fill], terminal_width=200
    )
    assert refused.exit_code == 1
    assert "is_paid_peak_filled true with objective.name 'cost'" in refused.output
    assert not refused_dir.exists()


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("is_price_rank_observed=true", "expected NAME=VALUE with NAME one of deadline_floor_margin_steps"),
        ("is_paid_peak_filled", "expected NAME=VALUE"),
        ("is_paid_peak_filled=yes", "expected is_paid_peak_filled=true or is_paid_peak_filled=false"),
        ("deadline_floor_margin_steps=-1", "expected deadline_floor_margin_steps=M with 0 <= M <= 96"),
        ("deadline_floor_margin_steps=x", "expected deadline_floor_margin_steps=M with 0 <= M <= 96"),
    ],
)
def test_export_refuses_a_bad_decoding_and_writes_nothing(tmp_path: Path, value: str, expected: str) -> None:
    out = tmp_path / "out"
    args = ["export", "--run-dir", str(tmp_path), "--out", str(out), "--decoding", value]
    result = runner.invoke(app, args, terminal_width=200)
    assert result.exit_code == 1
    assert f"decoding: got {value!r}; {expected}" in result.output
    assert not out.exists()


def test_export_refuses_an_option_given_twice(tmp_path: Path) -> None:
    args = ["export", "--run-dir", str(tmp_path), "--decoding", "is_paid_peak_filled=true"]
    result = runner.invoke(app, [*args, "--decoding", " is_paid_peak_filled=false"], terminal_width=200)
    assert result.exit_code == 1
    assert "decoding: got is_paid_peak_filled twice; expected each option at most once" in result.output


@pytest.mark.parametrize(
    ("metadata", "expected"),
    [
        ('{"n_connectors_max": 4}', "(observation: Field required; "),
        ("{bad", "((top level): Invalid JSON"),
    ],
)
def test_card_refuses_bad_metadata_naming_the_field_and_writes_nothing(
    tmp_path: Path, metadata: str, expected: str
) -> None:
    (tmp_path / "policy.onnx").write_bytes(b"")
    (tmp_path / "metadata.json").write_text(metadata)
    config = Path("experiments/budapest_workplace_peak_ppo_mpc_expert_cap_half.yaml")
    result = runner.invoke(app, ["card", str(tmp_path), "--config", str(config)], terminal_width=300)
    assert result.exit_code == 1
    path = tmp_path / "metadata.json"
    assert f"policy_dir: {path} is not valid policy metadata {expected}" in result.output
    assert not (tmp_path / "MODEL_CARD.md").exists()


def test_train_rejects_an_unknown_config_key(tmp_path: Path) -> None:
    config = tmp_path / "train.yaml"
    config.write_text("learning_rat: 0.1\n")
    result = runner.invoke(app, ["train", "--config", str(config), "--run-dir", str(tmp_path / "r")])
    assert result.exit_code == 1
    assert "learning_rat: got 0.1; expected no such key (unknown keys are rejected" in result.output


def test_serve_refuses_a_missing_model(tmp_path: Path) -> None:
    result = runner.invoke(app, ["serve", "--model", str(tmp_path / "none")])
    assert result.exit_code == 1
    assert "is missing; expected policy.onnx and metadata.json" in result.output


def test_serve_refuses_a_missing_price_forecaster(tmp_path: Path) -> None:
    result = runner.invoke(app, ["serve", "--price-forecaster", str(tmp_path / "none")], terminal_width=200)
    assert result.exit_code == 1
    assert "metadata.json is missing; expected metadata.json and q10/q50/q90.onnx" in result.output


def test_export_needs_exactly_one_source(tmp_path: Path) -> None:
    result = runner.invoke(app, ["export"])
    assert result.exit_code == 1
    assert "expected exactly one of --run-dir DIR or --champion NAME" in result.output
    uri = f"sqlite:///{tmp_path / 'm.db'}"
    missing = runner.invoke(app, ["export", "--champion", "x", "--tracking-uri", uri])
    assert missing.exit_code == 1
    assert "champion: got 'x'; expected a registered model with a 'champion' alias" in missing.output


def test_train_refuses_a_layout_too_small_for_the_template(tmp_path: Path) -> None:
    config = tmp_path / "small.yaml"
    config.write_text("n_connectors_max: 1\n")
    result = runner.invoke(app, ["train", "--config", str(config), "--run-dir", str(tmp_path / "s")])
    assert result.exit_code == 1
    assert (
        "n_connectors_max: got 1; expected at least the 2 connectors of turku_ultrafast_hub" in result.output
    )
    assert not (tmp_path / "s").exists()
