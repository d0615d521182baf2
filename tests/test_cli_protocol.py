"""The evaluation protocol over generated days: the summary's arithmetic by hand, and the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from smac_rl.cli.main import app
from smac_rl.optimal.protocol import DayRecord, summarize


def _record(day: str, policy: str, objective_eur: float, capture: float | None) -> DayRecord:
    return DayRecord("s", day, 0, policy, objective_eur, objective_eur, 0.0, 1.0, 0.0, capture, "optimal")


def test_summary_by_hand() -> None:
    # Day 1: uncontrolled 10, optimum 5, policy 7.5 -> capture 0.5; day 2: 20, 10, 20 -> 0.0.
    # Median 0.25; pooled (2.5 + 0) / (5 + 10) = 1/6. Day 3: 3 vs 2.5 -> under 1 EUR: excluded.
    records = [_record("d1", "p", 7.5, 0.5), _record("d2", "p", 20.0, 0.0), _record("d3", "p", 3.0, None)]
    uncontrolled = {("d1", 0): 10.0, ("d2", 0): 20.0, ("d3", 0): 3.0}
    oracle = {("d1", 0): 5.0, ("d2", 0): 10.0, ("d3", 0): 2.5}
    row = summarize(records, uncontrolled, oracle)["p"]
    assert row["savings_capture_median_frac"] == pytest.approx(0.25)
    assert row["savings_capture_pooled_frac"] == pytest.approx(1 / 6)
    assert row["n_days_excluded"] == 1
    assert row["objective_mean_eur"] == pytest.approx((7.5 + 20.0 + 3.0) / 3)


def test_protocol_on_generated_days(tmp_path: Path) -> None:
    out = tmp_path / "eval.json"
    result = CliRunner().invoke(
        app,
        [
            "evaluate",
            "--template",
            "rome_v2g_fleet",
            "--first-day",
            "2024-05-06",
            "--days",
            "2",
            "--policy",
            "llf",
            "--out",
            str(out),
            "--plot",
            str(tmp_path / "figures"),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "optimum proven optimal on 2 of 2 day(s)" in result.output
    report = json.loads(out.read_text())
    assert list(report["summary"]) == ["uncontrolled", "llf", "optimal"]
    assert report["summary"]["uncontrolled"]["savings_capture_median_frac"] == pytest.approx(0.0)
    assert report["summary"]["optimal"]["savings_capture_median_frac"] == pytest.approx(1.0)
    assert len(report["records"]) == 6
    # One figure per day and policy, the references included.
    assert "wrote 6 episode figure(s)" in result.output
    scenarios = sorted({r["scenario"] for r in report["records"]})
    expected = {f"{s}__{p}.png" for s in scenarios for p in ("uncontrolled", "llf", "optimal")}
    assert {f.name for f in (tmp_path / "figures").iterdir()} == expected
    assert all(f.read_bytes()[:4] == b"\x89PNG" for f in (tmp_path / "figures").iterdir())


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--template", "rome_v2g_fleet", "--first-day", "2024-13-01"], "first-day: got '2024-13-01'"),
        (["--template", "rome_v2g_fleet", "--builtin", "demo_workplace"], "--template: got it with"),
        (
            ["--template", "rome_v2g_fleet", "--objective", "setpoint_tracking"],
            "objective: got 'setpoint_tracking'",
        ),
        (["--template", "nowhere", "--days", "1"], "nowhere"),
    ],
)
def test_bad_protocol_arguments_are_one_line(args: list[str], message: str) -> None:
    result = CliRunner().invoke(app, ["evaluate", *args])
    assert result.exit_code == 1
    assert message in result.output


def test_protocol_replays_caltech_days(tmp_path: Path) -> None:
    out = tmp_path / "replay.json"
    result = CliRunner().invoke(
        app,
        [
            "evaluate",
            "--template",
            "budapest_workplace",
            "--first-day",
            "2021-06-07",
            "--days",
            "1",
            "--caltech-replay",
            "--policy",
            "llf",
            "--out",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text())
    assert report["setup"]["sessions"] == "caltech_replay"
    assert "caltech_replay" in report["records"][0]["scenario"]


def test_protocol_refuses_a_replay_day_outside_the_periods() -> None:
    result = CliRunner().invoke(
        app,
        [
            "evaluate",
            "--template",
            "budapest_workplace",
            "--first-day",
            "2024-06-07",
            "--days",
            "1",
            "--caltech-replay",
        ],
    )
    assert result.exit_code == 1
    assert "day: got 2024-06-07" in result.output
