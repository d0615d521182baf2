"""``smac evaluate --policy``: heuristics, an exported ONNX model, ``module:Class``; one line per error."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from smac_rl.cli.main import app
from tests.core.tiny import tiny_data

runner = CliRunner()

MODEL_DIR = Path(__file__).parents[1] / "models" / "policies" / "default" / "v1"
"""The default exported policy the service loads (16 connectors, works on the demo scenario)."""


def _tiny_file(tmp_path: Path) -> Path:
    file = tmp_path / "scenario.yaml"
    file.write_text(yaml.safe_dump(tiny_data()))
    return file


def _evaluate_json(*args: str) -> dict[str, dict[str, float]]:
    result = runner.invoke(app, ["evaluate", *args, "--json"])
    assert result.exit_code == 0, result.output
    kpis: dict[str, dict[str, float]] = json.loads(result.output)["kpis"]
    return kpis


def _error_of(*args: str) -> str:
    """The one error line of a failing evaluate run."""
    result = runner.invoke(app, ["evaluate", *args], terminal_width=400)
    assert result.exit_code == 1, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1, result.output
    assert lines[0].startswith("error: "), result.output
    return lines[0]


def test_module_class_policy_runs_like_its_heuristic_twin(tmp_path: Path) -> None:
    file = str(_tiny_file(tmp_path))
    kpis = _evaluate_json(
        "--scenario", file, "--policy", "tests.policy_plugins:MaxRate", "--policy", "uncontrolled"
    )
    # MaxRate asks every connector's upper bound, as uncontrolled does: the same 46.6 EUR on tiny
    # (derived in tests/policies/test_heuristics_tiny.py).
    assert kpis["max_rate"]["total_cost_eur"] == pytest.approx(46.6)
    assert kpis["max_rate"] == kpis["uncontrolled"]


def test_new_heuristics_by_alias(tmp_path: Path) -> None:
    file = str(_tiny_file(tmp_path))
    kpis = _evaluate_json(
        "--scenario", file, "--policy", "cheapest_hours", "--policy", "edf", "--policy", "round_robin"
    )
    assert set(kpis) == {"price_threshold", "earliest_deadline_first", "equal_share"}
    # Cheapest hours on tiny: 37.0 EUR (tests/policies/test_schedulers_tiny.py).
    assert kpis["price_threshold"]["total_cost_eur"] == pytest.approx(37.0)


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        (
            "tests.no_such_module:Policy",
            "policy: got 'tests.no_such_module:Policy'; expected module:Class with an importable module "
            "(no module named 'tests.no_such_module')",
        ),
        (
            "tests.policy_plugins:Missing",
            "policy: got 'tests.policy_plugins:Missing'; expected module:Class naming a class of "
            "tests.policy_plugins (it has no attribute 'Missing')",
        ),
        (
            "tests.policy_plugins:NotAPolicy",
            "policy: got 'tests.policy_plugins:NotAPolicy'; expected a class whose instances follow the "
            "Policy protocol (a name string and act(context) -> Setpoints)",
        ),
        (
            "tests.policy_plugins:NeedsArguments",
            "policy: got 'tests.policy_plugins:NeedsArguments'; expected a class made without arguments "
            "(TypeError: NeedsArguments.__init__() missing 1 required positional argument: 'scale_frac')",
        ),
        (
            "tests.policy_plugins:NOT_A_CLASS",
            "policy: got 'tests.policy_plugins:NOT_A_CLASS'; expected module:Class naming a class, not an "
            "object of type int",
        ),
        (":Policy", "policy: got ':Policy'; expected module:Class with both parts"),
    ],
)
def test_bad_module_class_is_one_line(tmp_path: Path, spec: str, expected: str) -> None:
    assert _error_of("--scenario", str(_tiny_file(tmp_path)), "--policy", spec) == f"error: {expected}"


def test_unknown_policy_lists_every_kind(tmp_path: Path) -> None:
    line = _error_of("--scenario", str(_tiny_file(tmp_path)), "--policy", "magic")
    assert line.startswith(
        "error: policy: got 'magic'; expected one of uncontrolled, least_laxity_first, llf, equal_share, "
        "round_robin, earliest_deadline_first, edf, price_threshold, cheapest_hours or optimal"
    )
    # [milp] and [serve] are printed as written, not taken for console markup.
    for fragment in (
        "needs [milp]",
        "needs [serve]",
        "policy.onnx + metadata.json",
        "module:Class",
        "mpc:noisy",
    ):
        assert fragment in line


def test_mpc_by_name(tmp_path: Path) -> None:
    file = str(_tiny_file(tmp_path))
    kpis = _evaluate_json(
        "--scenario", file, "--policy", "mpc", "--policy", "mpc:noisy", "--policy", "mpc:noisy:0.5"
    )
    assert set(kpis) == {"mpc_perfect", "mpc_noisy_0.1", "mpc_noisy_0.5"}
    # Both tiny sessions arrive at step 0 and the 24 h window covers the day: the MPC with perfect
    # forecasts is the optimum, 94/3 EUR (tests/optimal/test_optimal.py); noise costs a little.
    assert kpis["mpc_perfect"]["total_cost_eur"] == pytest.approx(94 / 3, rel=1e-6)
    assert kpis["mpc_noisy_0.5"]["total_cost_eur"] >= 94 / 3 - 1e-6


@pytest.mark.parametrize("spec", ["mpc:perfect", "mpc:noisy:-0.1", "mpc:noisy:x", "mpc:noisy:0.1:2"])
def test_bad_mpc_value_is_one_line(tmp_path: Path, spec: str) -> None:
    assert _error_of("--scenario", str(_tiny_file(tmp_path)), "--policy", spec) == (
        f"error: policy: got {spec!r}; expected mpc, mpc:noisy or mpc:noisy:SIGMA with SIGMA a "
        "fraction >= 0 (e.g. mpc:noisy:0.2)"
    )


def test_onnx_folder_and_file_give_the_same_kpis(tmp_path: Path) -> None:
    folder = tmp_path / "model"
    shutil.copytree(MODEL_DIR, folder)
    kpis = _evaluate_json(
        "--builtin", "demo_workplace", "--policy", str(folder), "--policy", str(folder / "policy.onnx")
    )
    by_folder, by_file = kpis[f"onnx:{folder}"], kpis[f"onnx:{folder / 'policy.onnx'}"]
    assert by_folder == by_file
    assert by_folder["energy_delivered_kwh"] > 0.0
    assert by_folder["limit_violation_kwh"] == 0.0


def test_onnx_errors_are_one_line(tmp_path: Path) -> None:
    scenario = ("--builtin", "demo_workplace")
    missing = tmp_path / "none"
    assert _error_of(*scenario, "--policy", str(missing)) == (
        f"error: policy: got '{missing}'; expected an exported model: a folder with policy.onnx and "
        "metadata.json, or its policy.onnx file"
    )
    folder = tmp_path / "model"
    shutil.copytree(MODEL_DIR, folder)
    (folder / "metadata.json").unlink()
    assert _error_of(*scenario, "--policy", str(folder)) == (
        f"error: model: {folder / 'metadata.json'} is missing; "
        f"expected policy.onnx and metadata.json in {folder}"
    )
