"""Optima of many site-days: joblib and Dask give the serial records; a failing day is a record."""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
import socket
from pathlib import Path

import pandas as pd
import pytest
import yaml

from smac_rl.core.errors import SmacError
from smac_rl.optimal.batch import (
    DEFAULT_MIP_GAP_FRAC,
    DayJob,
    DayResult,
    Job,
    ScenarioFileJob,
    day_jobs,
    optimize_days,
    result_columns,
    results_frame,
    solve_day,
    summarize_results,
    write_results_parquet,
)
from tests.core.test_units import name_problems
from tests.core.tiny import tiny_data

# Two small days of the residential garage: under a second each to solve.
JOBS = [
    DayJob("berlin_residential_garage", dt.date(2024, 5, 6), 0),
    DayJob("berlin_residential_garage", dt.date(2024, 5, 7), 1),
]


@pytest.fixture(scope="module")
def serial() -> list[DayResult]:
    return optimize_days(JOBS, backend="serial")


def _without_timings(record: DayResult) -> DayResult:
    """The record less what depends on the run: where and how long."""
    return dataclasses.replace(record, worker_name="", wall_s=0.0, build_s=None, solve_s=None)


def _assert_same(results: list[DayResult], expected: list[DayResult]) -> None:
    assert [r.job_label for r in results] == [r.job_label for r in expected]
    for got, want in zip(results, expected, strict=True):
        assert got.error is None, got.error
        assert got.objective_eur == pytest.approx(want.objective_eur, rel=1e-9)
        # One solver thread and a fixed solver seed: the same profile in any process.
        assert _without_timings(got) == _without_timings(want)


def test_serial_records_are_complete(serial: list[DayResult]) -> None:
    for record, job in zip(serial, JOBS, strict=True):
        assert record.error is None, record.error
        assert (record.template_name, record.local_day, record.seed) == (
            job.template,
            job.local_day,
            job.seed,
        )
        assert record.scenario_name == f"berlin_residential_garage_{job.local_day}_1d_elaad_s{job.seed}"
        assert record.status == "optimal"
        assert record.objective_name == "cost"
        assert record.optimal_kpis is not None
        assert record.uncontrolled_kpis is not None
        assert record.llf_kpis is not None
        assert record.n_sessions is not None
        assert record.n_sessions > 0
        assert record.build_s is not None
        assert record.solve_s is not None
        # The optimum is never worse than uncontrolled or LLF on the scenario's objective.
        assert record.optimal_kpis.objective_eur <= record.llf_kpis.objective_eur + 1e-6
        assert record.savings_possible_eur == pytest.approx(
            record.uncontrolled_kpis.objective_eur - record.optimal_kpis.objective_eur
        )
        # Uncontrolled charging runs every EV at full power from arrival on this uncongested garage, so
        # a session it leaves short cannot be served (2024-05-06 has one); the optimum serves the rest.
        assert record.n_sessions_not_fully_served == record.n_sessions_not_fully_served_uncontrolled


def test_joblib_batch_gives_the_serial_records(serial: list[DayResult]) -> None:
    finished: list[str] = []
    results = optimize_days(
        JOBS, backend="joblib", n_jobs=2, on_result=lambda r: finished.append(r.job_label)
    )
    _assert_same(results, serial)
    assert sorted(finished) == sorted(job.label for job in JOBS)
    here = f"{socket.gethostname()}:{os.getpid()}"
    assert all(r.worker_name != here for r in results)  # solved in worker processes


def test_dask_local_cluster_gives_the_serial_records(serial: list[DayResult]) -> None:
    from distributed import LocalCluster

    cluster = LocalCluster(  # type: ignore[no-untyped-call]
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
    )
    with cluster:
        results = optimize_days(JOBS, backend="dask", scheduler_address=cluster.scheduler_address)
    _assert_same(results, serial)
    here = f"{socket.gethostname()}:{os.getpid()}"
    assert all(r.worker_name != here for r in results)


def test_dask_without_a_scheduler_starts_and_closes_its_own_cluster(serial: list[DayResult]) -> None:
    _assert_same(optimize_days(JOBS[:1], backend="dask", n_jobs=1), serial[:1])


def test_a_failing_day_is_a_record_and_the_others_succeed(tmp_path: Path) -> None:
    tiny = tmp_path / "tiny.yaml"
    tiny.write_text(yaml.safe_dump(tiny_data()))
    jobs: list[Job] = [
        ScenarioFileJob(tiny),
        DayJob("berlin_residential_garage", dt.date(2030, 1, 1), 0),  # after the bundled prices
        ScenarioFileJob(tmp_path / "missing.yaml"),
    ]
    results = optimize_days(jobs, backend="joblib", n_jobs=2)
    ok, late, missing = results
    assert ok.error is None
    assert ok.objective_eur == pytest.approx(94 / 3)  # the hand-derived optimum of tests/optimal
    assert ok.template_name is None
    assert ok.local_day is None
    assert late.error is not None
    assert late.error.startswith("GeneratorError: prices: got 2029-12-31T23:00:00+00:00")
    assert (late.template_name, late.local_day, late.seed) == (
        "berlin_residential_garage",
        dt.date(2030, 1, 1),
        0,
    )
    assert late.status is None
    assert late.optimal_kpis is None
    assert missing.error is not None
    assert missing.error.startswith("ScenarioError: ")
    summary = summarize_results(results)
    assert (summary.n_days, summary.n_failed, summary.n_optimal) == (3, 2, 1)
    assert summary.share_optimal_frac == pytest.approx(1 / 3)


def test_a_solver_failure_keeps_what_was_known(tmp_path: Path) -> None:
    # A time limit too short to find any solution: the solver fails, the heuristics' KPIs stay.
    record = solve_day(JOBS[1], time_limit_s=1e-9)
    assert record.error is not None
    assert record.error.startswith("OptimalError: ")
    assert record.uncontrolled_kpis is not None
    assert record.optimal_kpis is None
    assert record.scenario_name == "berlin_residential_garage_2024-05-07_1d_elaad_s1"


def test_parquet_keeps_every_column_and_type(serial: list[DayResult], tmp_path: Path) -> None:
    failed = solve_day(DayJob("berlin_residential_garage", dt.date(2030, 1, 1), 3))
    path = tmp_path / "out" / "results.parquet"
    write_results_parquet([*serial, failed], path)
    frame = pd.read_parquet(path)
    assert list(frame.columns) == list(result_columns())
    assert frame.equals(results_frame([*serial, failed]))
    assert list(frame["status"][:2]) == ["optimal", "optimal"]
    assert frame["status"].isna().tolist() == [False, False, True]
    assert list(frame["seed"]) == [0, 1, 3]
    assert str(frame["n_sessions"].dtype) == "Int64"
    assert frame["n_sessions"].isna().tolist() == [False, False, True]
    assert frame["optimal_total_cost_eur"].dtype == "float64"
    assert frame.loc[0, "optimal_objective_eur"] == serial[0].optimal_kpis.objective_eur  # type: ignore[union-attr]
    assert frame["local_day"].tolist() == [dt.date(2024, 5, 6), dt.date(2024, 5, 7), dt.date(2030, 1, 1)]


def test_the_pyomo_builder_gives_the_same_days(serial: list[DayResult]) -> None:
    """The batch builds by assembling the arrays by default; the pyomo model gives the same optima."""
    assert [r.builder for r in serial] == ["assemble", "assemble"]
    by_pyomo = optimize_days(JOBS, backend="serial", builder="pyomo")
    assert [r.builder for r in by_pyomo] == ["pyomo", "pyomo"]
    for got, want in zip(by_pyomo, serial, strict=True):
        assert got.error is None, got.error
        assert got.status == want.status == "optimal"
        assert got.n_binaries == want.n_binaries
        # Both stop within the MIP gap, possibly at different incumbents (BENCHMARKS.md: up to 1.5e-5).
        assert got.objective_eur == pytest.approx(want.objective_eur, rel=DEFAULT_MIP_GAP_FRAC)
        assert got.optimal_kpis is not None
        assert got.optimal_kpis.total_cost_eur == pytest.approx(got.objective_eur, rel=1e-6, abs=1e-6)


def test_summary_of_the_serial_days(serial: list[DayResult]) -> None:
    summary = summarize_results(serial)
    assert (summary.n_days, summary.n_failed, summary.n_optimal, summary.n_time_limit) == (2, 0, 2, 0)
    assert summary.share_optimal_frac == 1.0
    assert summary.mean_savings_possible_eur == pytest.approx(
        sum(r.savings_possible_eur or 0.0 for r in serial) / 2
    )
    assert summarize_results([]).share_optimal_frac is None


def test_day_jobs_are_day_major() -> None:
    jobs = day_jobs("rome_v2g_fleet", dt.date(2024, 3, 30), n_days=2, n_seeds=2)
    assert [j.label for j in jobs] == [
        "rome_v2g_fleet/2024-03-30/s0",
        "rome_v2g_fleet/2024-03-30/s1",
        "rome_v2g_fleet/2024-03-31/s0",
        "rome_v2g_fleet/2024-03-31/s1",
    ]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"backend": "ray"}, "backend: got 'ray'; expected one of serial, joblib, dask"),
        ({"backend": "joblib", "scheduler_address": "tcp://x:8786"}, "expected backend dask"),
        ({"n_jobs": 0}, "jobs: got 0; expected a whole number >= 1"),
        ({"time_limit_s": 0.0}, "time limit: got 0.0 s; expected a number > 0"),
        ({"builder": "gurobi"}, "builder: got 'gurobi'; expected one of assemble, pyomo"),
    ],
)
def test_bad_options_are_refused(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(SmacError, match=message):
        optimize_days(JOBS, **kwargs)  # type: ignore[arg-type]


def test_day_jobs_refuse_bad_counts() -> None:
    with pytest.raises(SmacError, match="days: got 0"):
        day_jobs("rome_v2g_fleet", dt.date(2024, 1, 1), 0)
    with pytest.raises(SmacError, match="seeds: got 0"):
        day_jobs("rome_v2g_fleet", dt.date(2024, 1, 1), 1, n_seeds=0)


def test_record_names_carry_units() -> None:
    # A seed names a random stream, like an id; every other number carries its unit.
    assert name_problems(DayResult) == ["DayResult.seed: no unit suffix (int | None)"]
