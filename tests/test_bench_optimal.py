"""``smac bench optimal``: the scenario builder, one small measurement, the command (no timed assertions)."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from smac_rl.bench.optimal_speed import OptimalSpeed, bench_scenarios, measure_scenario
from smac_rl.cli.main import app
from smac_rl.core.arrays import compile_scenario
from tests.core.test_units import name_problems

runner = CliRunner()


@pytest.fixture
def keep_affinity() -> Iterator[None]:
    """The command pins the process to one core; give the test process its cores back."""
    cores = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else None
    yield
    if cores is not None:
        os.sched_setaffinity(0, cores)


@pytest.mark.parametrize("n_sessions", [10, 50, 200])
def test_scenarios_have_exactly_n_sessions_and_every_feature(n_sessions: int) -> None:
    scenarios = bench_scenarios(n_sessions)
    positive, negative = compile_scenario(scenarios["positive"]), compile_scenario(scenarios["negative"])
    for spec, arrays in ((scenarios["positive"], positive), (scenarios["negative"], negative)):
        assert len(spec.sessions) == n_sessions  # exactly, not within a tolerance
        assert arrays.n_steps == 96
        assert arrays.step_h == 0.25
        assert spec.site.storage is not None
        assert arrays.site.storage_capacity_kwh > 0
        assert spec.site.pv is not None
        assert arrays.series.pv_available_kw.max() > 0
        assert any(c.is_bidirectional for c in spec.site.chargers)
        assert np.count_nonzero(arrays.sessions.max_discharge_kw > 0) >= 1  # V2G-capable sessions
        assert spec.site.tariff.demand_charge_eur_per_kw > 0
    # Both cases share sessions, PV and base load; only the prices differ.
    assert [s.session_id for s in scenarios["positive"].sessions] == [
        s.session_id for s in scenarios["negative"].sessions
    ]
    np.testing.assert_array_equal(positive.series.pv_available_kw, negative.series.pv_available_kw)
    np.testing.assert_array_equal(positive.series.base_load_kw, negative.series.base_load_kw)
    assert positive.series.import_price_eur_per_kwh.min() > 0
    assert positive.series.export_price_eur_per_kwh.min() > 0
    assert negative.series.export_price_eur_per_kwh.min() < 0
    assert negative.series.import_price_eur_per_kwh.min() < 0


def test_the_record_names_carry_units() -> None:
    assert name_problems(OptimalSpeed) == []


def test_a_small_measurement_is_optimal_with_positive_times() -> None:
    arrays = compile_scenario(bench_scenarios(10)["positive"])
    record = measure_scenario(arrays, "positive", 10, time_limit_s=60.0)
    assert record.status == "optimal"
    assert record.n_sessions == 10
    assert record.n_binaries == sum(record.n_binaries_by_variable.values()) > 0
    assert record.n_binaries_by_variable["z"] > 0  # V2G modes
    for seconds in (
        record.build_s,
        record.solve_s,
        record.replay_score_s,
        record.handover_s,
        record.lp_solve_s,
    ):
        assert seconds is not None
        assert seconds > 0
    assert record.total_s >= (record.build_s or 0.0) + (record.solve_s or 0.0)
    assert record.mip_gap_frac is not None
    assert record.mip_gap_frac <= 1e-4 * (1 + 1e-6)
    # The LP relaxation bounds the minimisation from below.
    assert record.objective_eur is not None
    assert record.lp_objective_eur is not None
    assert record.lp_objective_eur <= record.objective_eur + 1e-6
    assert record.lp_objective_gap_frac is not None
    assert record.lp_objective_gap_frac >= -1e-9
    assert record.target_total_s is None  # targets are stated for N = 200 only
    assert record.is_target_met is None


@pytest.mark.usefixtures("keep_affinity")
def test_the_command_prints_a_table_and_writes_json(tmp_path: Path) -> None:
    out = tmp_path / "optimal.json"
    result = runner.invoke(
        app,
        ["bench", "optimal", "--sizes", "10", "--time-limit-s", "60", "--output", str(out)],
        terminal_width=220,
    )
    assert result.exit_code == 0, result.output
    assert "Optimum's time" in result.output
    figures = json.loads(out.read_text())
    assert figures["setup"]["targets"]["total_s"] == {"positive": 2.0, "negative": 10.0}
    rows = figures["results"]
    assert [(r["n_sessions"], r["price_case"]) for r in rows] == [(10, "positive"), (10, "negative")]
    assert all(r["status"] == "optimal" for r in rows)
    assert rows[1]["n_negative_price_steps"] > 0
    assert rows[1]["n_binaries_by_variable"].get("c_pv", 0) > 0  # curtailment at negative prices


@pytest.mark.parametrize("sizes", ["10,x", "0", ","])
def test_the_command_rejects_bad_sizes(sizes: str) -> None:
    result = runner.invoke(app, ["bench", "optimal", "--sizes", sizes])
    assert result.exit_code == 1
    assert "error: sizes: got" in result.output
