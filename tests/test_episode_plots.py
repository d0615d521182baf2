"""Episode figures: one PNG per policy and episode, panels that follow the site, and ``evaluate --plot``."""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from smac_rl.cli.main import app
from smac_rl.core.arrays import ScenarioArrays, compile_scenario
from smac_rl.core.scenario_io import load_builtin_scenario, parse_scenario
from smac_rl.data.episode_plots import (
    episode_figure,
    episode_panels,
    episode_plot_path,
    plot_episode,
    plot_episodes,
    session_power_kw,
)
from smac_rl.policies import make_heuristic, run_policy
from tests.core.tiny import tiny_data

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

runner = CliRunner()


def _with_storage(data: dict[str, Any]) -> dict[str, Any]:
    data["site"]["storage"] = {"capacity_kwh": 20.0, "max_charge_kw": 10.0, "max_discharge_kw": 10.0}
    return data


def _with_pv(data: dict[str, Any]) -> dict[str, Any]:
    data["site"]["pv"] = {"peak_power_kwp": 10.0, "tilt_deg": 30.0, "azimuth_deg": 180.0}
    data["series"]["pv_available_kw"] = [0.0, 4.0, 8.0, 2.0]
    return data


def _arrays(data: dict[str, Any]) -> ScenarioArrays:
    return compile_scenario(parse_scenario(data))


def _png_size(path: Path) -> tuple[int, int]:
    """Width and height [pixels] from the PNG header."""
    header = path.read_bytes()[:24]
    assert header[:8] == PNG_SIGNATURE
    assert header[12:16] == b"IHDR"
    width, height = struct.unpack(">II", header[16:24])
    return int(width), int(height)


@pytest.mark.parametrize(
    ("variant", "expected"),
    [
        ("plain", ("grid", "sessions", "soc", "prices")),
        ("storage", ("grid", "sessions", "soc", "storage", "prices")),
        ("pv", ("grid", "sessions", "soc", "pv", "prices")),
        ("both", ("grid", "sessions", "soc", "storage", "pv", "prices")),
    ],
)
def test_panels_follow_the_site(variant: str, expected: tuple[str, ...]) -> None:
    data = tiny_data()
    if variant in ("storage", "both"):
        data = _with_storage(data)
    if variant in ("pv", "both"):
        data = _with_pv(data)
    arrays = _arrays(data)
    assert episode_panels(arrays) == expected
    trace, kpis = run_policy(arrays, make_heuristic("llf"))
    figure = episode_figure(arrays, trace, kpis, "least_laxity_first")
    assert len(figure.axes) == len(expected)
    assert "tiny" in figure.get_suptitle()
    assert f"total cost {kpis.total_cost_eur:.2f} EUR" in figure.get_suptitle()


def test_plot_episode_writes_a_readable_png(tmp_path: Path) -> None:
    arrays = compile_scenario(load_builtin_scenario("demo_workplace"))
    trace, kpis = run_policy(arrays, make_heuristic("llf"))
    path = plot_episode(arrays, trace, kpis, "least_laxity_first", tmp_path / "sub" / "episode.png")
    assert path == tmp_path / "sub" / "episode.png"
    width_px, height_px = _png_size(path)
    # Six panels of 2.3 inch plus the title, 13 inch wide, at 100 dpi.
    assert (width_px, height_px) == (1300, 1470)
    assert 20_000 < path.stat().st_size < 2_000_000


def test_session_power_follows_the_connectors() -> None:
    arrays = _arrays(tiny_data())
    trace, _ = run_policy(arrays, make_heuristic("uncontrolled"))
    power_kw = session_power_kw(arrays, trace)
    assert power_kw.shape == (arrays.n_steps, arrays.sessions.n_sessions)
    assert np.isclose(power_kw.sum(), trace.ev_power_kw.sum())
    # S2 (AC1, connector 1) leaves after step 0: no power afterwards.
    assert power_kw[0, 1] > 0.0
    assert np.all(power_kw[1:, 1] == 0.0)


def test_file_names_are_sanitised_and_unique(tmp_path: Path) -> None:
    assert episode_plot_path(tmp_path, "day 1/site", "onnx:models/p v1") == (
        tmp_path / "day_1_site__onnx_models_p_v1.png"
    )
    arrays = _arrays(tiny_data())
    trace, kpis = run_policy(arrays, make_heuristic("llf"))
    written = plot_episodes(arrays, [("a/b", trace, kpis), ("a b", trace, kpis)], tmp_path / "figs")
    assert [p.name for p in written] == ["tiny__a_b.png", "tiny__a_b__2.png"]
    assert all(p.is_file() for p in written)


def test_evaluate_writes_one_figure_per_policy(tmp_path: Path) -> None:
    args = ["evaluate", "--builtin", "demo_workplace", "--policy", "llf", "--plot", str(tmp_path)]
    result = runner.invoke(app, args, terminal_width=200)
    assert result.exit_code == 0, result.output
    figure = tmp_path / "demo_workplace__least_laxity_first.png"
    assert figure.read_bytes()[:8] == PNG_SIGNATURE
    assert f"wrote 1 episode figure(s) to {tmp_path}" in result.output


def test_evaluate_plots_the_optimum_and_keeps_json_on_stdout(tmp_path: Path) -> None:
    file = tmp_path / "scenario.yaml"
    file.write_text(yaml.safe_dump(tiny_data()))
    args = ["evaluate", "--scenario", str(file), "--policy", "llf", "--policy", "optimal"]
    result = runner.invoke(app, [*args, "--json", "--plot", str(tmp_path / "figs")])
    assert result.exit_code == 0, result.output
    assert set(json.loads(result.stdout)["kpis"]) == {"least_laxity_first", "optimal"}
    for policy_name in ("least_laxity_first", "optimal"):
        assert (tmp_path / "figs" / f"tiny__{policy_name}.png").read_bytes()[:8] == PNG_SIGNATURE


def test_evaluate_reports_an_unwritable_plot_folder(tmp_path: Path) -> None:
    blocker = tmp_path / "file.txt"
    blocker.write_text("not a folder")
    args = ["evaluate", "--builtin", "demo_workplace", "--policy", "llf", "--plot", str(blocker)]
    result = runner.invoke(app, args)
    assert result.exit_code == 1
    assert "expected a writable folder" in result.output
