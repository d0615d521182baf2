"""Optima of many site-days at once: serial, on local processes (joblib) or on a Dask cluster.

Each job is one generated local day of a template (template, day, seed) or one scenario file. A
worker builds the scenario, solves its perfect-foresight optimum with one solver thread (the
standard form assembled from the arrays by default, or the pyomo model: ``builder``), runs
uncontrolled charging and least-laxity-first on it (the savings-capture denominators), and returns
a plain, picklable :class:`DayResult`. Workers write nothing: the caller (the parent process)
owns any tracking store and output file. A day that fails (dates outside the bundled prices, a
solver that finds no solution, any other error) comes back as a record with ``error`` set; the
batch goes on.

Savings (DESIGN.md section 3), on the scenario's named objective ``objective_eur`` of the scorer:

* ``savings_possible_eur`` = ``objective_uncontrolled - objective_optimal``
* ``llf_savings_capture_frac`` = ``(objective_uncontrolled - objective_llf) / savings_possible_eur``,
  None on days whose possible saving is under 1 EUR.

pyomo, pandas, joblib and Dask are imported where they are used, so importing this module is light.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
import socket
import statistics
import time
import traceback
import typing
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from smac_rl.core.errors import SmacError
from smac_rl.core.scoring import Kpis
from smac_rl.data.periods import CALTECH_PERIODS

if TYPE_CHECKING:
    import pandas as pd
    from distributed import Client

    from smac_rl.core.arrays import ScenarioArrays
    from smac_rl.core.simulate import Trace
    from smac_rl.core.specs import ScenarioSpec
    from smac_rl.optimal.solve import Builder

Backend = Literal["serial", "joblib", "dask"]
BACKENDS: tuple[Backend, ...] = ("serial", "joblib", "dask")
"""Where the jobs run: in this process, on local processes (joblib, loky), or on Dask workers."""

DEFAULT_TIME_LIMIT_S = 120.0
"""Solver time limit per day [s] (the limit of :func:`smac_rl.optimal.solve.solve_optimal`)."""

DEFAULT_MIP_GAP_FRAC = 1e-4
"""Relative MIP gap at which the solver stops."""

DEFAULT_DASK_WORKERS = 2
"""Worker processes of the local Dask cluster when ``n_jobs`` is not given."""

KPI_PREFIXES: tuple[str, ...] = ("optimal", "uncontrolled", "llf")
"""Column prefixes of the three KPI sets in :func:`results_frame` (``<prefix>_<kpi name>``)."""


@dataclass(frozen=True)
class DayJob:
    """One generated local day of a template.

    The same job always gives the same scenario: ``smac scenario generate --site <template>
    --date <local_day> --seed <seed>`` writes it.

    Attributes:
        template: Built-in template name or template YAML file (readable by the workers).
        local_day: Local calendar day of the site.
        seed: Seed of every random draw of the generator (>= 0).
        session_source: ``elaad`` (sampled distributions) or ``caltech`` (resampled sessions).
        caltech_period: Caltech period for ``session_source="caltech"``.
    """

    template: str
    local_day: dt.date
    seed: int
    session_source: Literal["elaad", "caltech"] = "elaad"
    caltech_period: str = CALTECH_PERIODS[0]

    @property
    def label(self) -> str:
        """A short name of the job for messages: ``template/day/s<seed>``."""
        return f"{self.template}/{self.local_day.isoformat()}/s{self.seed}"


@dataclass(frozen=True)
class ScenarioFileJob:
    """One scenario file (readable by the workers: on a remote cluster, a path they share).

    Attributes:
        path: The scenario file (``.yaml``, ``.yml`` or ``.json``).
    """

    path: Path

    @property
    def label(self) -> str:
        """The file's path."""
        return str(self.path)


Job = DayJob | ScenarioFileJob
"""What a worker solves."""


@dataclass(frozen=True)
class DayResult:
    """The optimum of one job, with uncontrolled and LLF on the same scenario: a plain record.

    Fields after ``wall_s`` are None where the job failed before they were known.

    Attributes:
        job_label: The job's label (``template/day/s<seed>`` or the scenario file).
        template_name: Template of a generated day; None for a scenario file.
        local_day: Local day of a generated day; None for a scenario file.
        seed: Generator seed of a generated day; None for a scenario file.
        worker_name: ``host:pid`` of the process that ran the job.
        wall_s: Time the job took in its worker: generation, heuristics and solve; a worker's first
            job also pays for importing pyomo and reading the data bundle [s].
        error: ``ExceptionType: message`` when the job failed; None when it succeeded.
        scenario_name: The scenario's name.
        objective_name: The scenario's named objective (``cost``, ``peak``...).
        n_connectors: Connectors of the site.
        n_sessions: Sessions of the scenario.
        n_turned_away: Arrivals the generator turned away (no free connector); None for a file.
        status: How the solve ended, a :class:`smac_rl.optimal.solve.SolverStatus` value
            (``optimal`` or ``time_limit``).
        mip_gap_frac: Relative gap between the solution and the bound [0..1].
        n_binaries: Binary variables of the model.
        build_s: Time to build the model (assembled arrays or pyomo model) [s].
        solve_s: Time to compile it to matrices and solve it [s].
        builder: The builder that built it: ``assemble`` or ``pyomo``
            (:data:`smac_rl.optimal.solve.Builder`).
        objective_eur: The solver's objective (the scorer's plus penalised limit slack) [EUR].
        optimal_kpis: KPIs of the optimum's replayed profile.
        uncontrolled_kpis: KPIs of uncontrolled charging (every connector at its maximum, projected).
        llf_kpis: KPIs of least-laxity-first.
        n_sessions_not_fully_served: Sessions with unmet energy under the optimum.
        n_sessions_not_fully_served_uncontrolled: Sessions with unmet energy under uncontrolled charging.
        savings_possible_eur: Uncontrolled minus optimal ``objective_eur`` (module docstring) [EUR].
        llf_savings_capture_frac: LLF's savings capture; None under 1 EUR of possible saving [0..1].
    """

    job_label: str
    template_name: str | None
    local_day: dt.date | None
    seed: int | None
    worker_name: str
    wall_s: float
    error: str | None = None
    scenario_name: str | None = None
    objective_name: str | None = None
    n_connectors: int | None = None
    n_sessions: int | None = None
    n_turned_away: int | None = None
    status: str | None = None
    mip_gap_frac: float | None = None
    n_binaries: int | None = None
    build_s: float | None = None
    solve_s: float | None = None
    builder: str | None = None
    objective_eur: float | None = None
    optimal_kpis: Kpis | None = None
    uncontrolled_kpis: Kpis | None = None
    llf_kpis: Kpis | None = None
    n_sessions_not_fully_served: int | None = None
    n_sessions_not_fully_served_uncontrolled: int | None = None
    savings_possible_eur: float | None = None
    llf_savings_capture_frac: float | None = None

    @property
    def is_ok(self) -> bool:
        """True when the job produced an optimum."""
        return self.error is None

    def as_row(self) -> dict[str, object]:
        """The record flattened to one row: every scalar, then ``<prefix>_<kpi>`` per KPI set.

        Every row has the same keys (None where unknown), so failed days keep the table's columns.
        """
        row: dict[str, object] = {
            f.name: getattr(self, f.name) for f in dataclasses.fields(self) if not f.name.endswith("_kpis")
        }
        for prefix, kpis in zip(
            KPI_PREFIXES, (self.optimal_kpis, self.uncontrolled_kpis, self.llf_kpis), strict=True
        ):
            for f in dataclasses.fields(Kpis):
                row[f"{prefix}_{f.name}"] = None if kpis is None else getattr(kpis, f.name)
        return row


@dataclass(frozen=True)
class BatchSummary:
    """Figures of a batch, over all its jobs.

    Attributes:
        n_days: Jobs in the batch.
        n_failed: Jobs that ended with an error.
        n_optimal: Jobs solved to proven optimality (within the MIP gap).
        n_time_limit: Jobs stopped at the time limit with a feasible solution.
        share_optimal_frac: ``n_optimal / n_days`` (failed jobs count as not optimal) [0..1].
        mean_solve_s: Mean solver time over the solved jobs [s]; None when none was solved.
        median_solve_s: Median solver time over the solved jobs [s]; None when none was solved.
        max_solve_s: Longest solver time [s]; None when none was solved.
        mean_savings_possible_eur: Mean possible saving over the solved jobs [EUR]; None when none.
        llf_savings_capture_mean_frac: Mean of LLF's savings capture over the included days [0..1].
        n_days_savings_excluded: Solved days left out of savings capture (under 1 EUR to save).
    """

    n_days: int
    n_failed: int
    n_optimal: int
    n_time_limit: int
    share_optimal_frac: float | None
    mean_solve_s: float | None
    median_solve_s: float | None
    max_solve_s: float | None
    mean_savings_possible_eur: float | None
    llf_savings_capture_mean_frac: float | None
    n_days_savings_excluded: int


def day_jobs(
    template: str,
    first_day: dt.date,
    n_days: int,
    n_seeds: int = 1,
    session_source: Literal["elaad", "caltech"] = "elaad",
    caltech_period: str = CALTECH_PERIODS[0],
) -> list[DayJob]:
    """The jobs of ``n_days`` consecutive local days with seeds ``0 .. n_seeds - 1`` each.

    Args:
        template: Built-in template name or template YAML file.
        first_day: First local day.
        n_days: Number of days (>= 1).
        n_seeds: Seeds per day (>= 1).
        session_source: ``elaad`` or ``caltech``.
        caltech_period: Caltech period for ``caltech``.

    Returns:
        Day-major jobs: every seed of the first day, then of the next.

    Raises:
        SmacError: For a day or seed count under 1, or days past what ``datetime`` can represent.
    """
    if n_days < 1:
        raise SmacError(f"days: got {n_days}; expected a whole number >= 1")
    if n_seeds < 1:
        raise SmacError(f"seeds: got {n_seeds}; expected a whole number >= 1")
    try:
        days = [first_day + dt.timedelta(days=k) for k in range(n_days)]
    except OverflowError:
        raise SmacError(
            f"days: got {n_days} day(s) from {first_day.isoformat()}; expected days before year 10000"
        ) from None
    return [
        DayJob(template, day, seed, session_source, caltech_period) for day in days for seed in range(n_seeds)
    ]


def _worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def _build(job: Job) -> tuple[ScenarioSpec, int | None]:
    """The job's scenario, and the turned-away count of a generated day."""
    if isinstance(job, ScenarioFileJob):
        from smac_rl.core.scenario_io import load_scenario

        return load_scenario(job.path), None
    from smac_rl.data.generator import generate_scenario
    from smac_rl.data.template_spec import load_template

    spec, report = generate_scenario(
        load_template(job.template), job.local_day, 1, job.seed, job.session_source, job.caltech_period
    )
    return spec, report.n_turned_away


def _n_not_fully_served(arrays: ScenarioArrays, trace: Trace) -> int:
    """Sessions left with unmet energy by a rollout (the scorer's rule)."""
    from smac_rl.core.scoring import SERVED_TOL_KWH, unmet_energy_per_session_kwh

    return int((unmet_energy_per_session_kwh(arrays, trace) > SERVED_TOL_KWH).sum())


def _blank(job: Job, worker_name: str) -> DayResult:
    """The record of a job before anything is known but what the job says."""
    return DayResult(
        job_label=job.label,
        template_name=job.template if isinstance(job, DayJob) else None,
        local_day=job.local_day if isinstance(job, DayJob) else None,
        seed=job.seed if isinstance(job, DayJob) else None,
        worker_name=worker_name,
        wall_s=0.0,
    )


def solve_day(
    job: Job,
    time_limit_s: float = DEFAULT_TIME_LIMIT_S,
    mip_gap_frac: float = DEFAULT_MIP_GAP_FRAC,
    builder: Builder = "assemble",
) -> DayResult:
    """Solve one job: build its scenario, its optimum (one solver thread), uncontrolled and LLF.

    This is what a worker runs. It never raises for a failing day: the record carries the error.

    Args:
        job: A generated day or a scenario file.
        time_limit_s: Solver time limit [s].
        mip_gap_frac: Relative MIP gap at which the solver stops.
        builder: How the optimum is built (:func:`smac_rl.optimal.solve.solve_optimal`).

    Returns:
        The record, with ``error`` set when the day failed (and the fields known by then).
    """
    started = time.perf_counter()
    record = _blank(job, _worker_name())
    try:
        from smac_rl.core.arrays import compile_scenario
        from smac_rl.core.scoring import savings_capture_frac
        from smac_rl.policies import make_heuristic, run_policy

        spec, n_turned_away = _build(job)
        arrays = compile_scenario(spec)
        record = dataclasses.replace(
            record,
            scenario_name=spec.name,
            objective_name=spec.objective.name,
            n_connectors=arrays.site.n_connectors,
            n_sessions=arrays.sessions.n_sessions,
            n_turned_away=n_turned_away,
        )
        uncontrolled_trace, uncontrolled = run_policy(arrays, make_heuristic("uncontrolled"))
        llf = run_policy(arrays, make_heuristic("least_laxity_first"))[1]
        record = dataclasses.replace(
            record,
            uncontrolled_kpis=uncontrolled,
            llf_kpis=llf,
            n_sessions_not_fully_served_uncontrolled=_n_not_fully_served(arrays, uncontrolled_trace),
        )
        from smac_rl.optimal.solve import solve_optimal

        optimum = solve_optimal(arrays, time_limit_s, mip_gap_frac, n_threads=1, builder=builder)
        oracle = optimum.kpis
        record = dataclasses.replace(
            record,
            status=optimum.status.value,
            mip_gap_frac=optimum.mip_gap_frac,
            n_binaries=optimum.n_binaries,
            build_s=optimum.build_s,
            solve_s=optimum.solve_s,
            builder=optimum.builder,
            objective_eur=optimum.objective_eur,
            optimal_kpis=oracle,
            n_sessions_not_fully_served=_n_not_fully_served(arrays, optimum.trace),
            savings_possible_eur=uncontrolled.objective_eur - oracle.objective_eur,
            llf_savings_capture_frac=savings_capture_frac(
                uncontrolled.objective_eur, llf.objective_eur, oracle.objective_eur
            ),
        )
    except Exception as exc:  # a failed day is a record, never the end of the batch
        record = dataclasses.replace(record, error=_error_text(exc))
    return dataclasses.replace(record, wall_s=time.perf_counter() - started)


def _error_text(exc: BaseException) -> str:
    """``Type: message`` on one line; the last frame for errors outside the project's own."""
    text = f"{type(exc).__name__}: {' '.join(str(exc).split())}"
    if not isinstance(exc, SmacError):
        frames = traceback.extract_tb(exc.__traceback__)
        if frames:
            text += f" (at {Path(frames[-1].filename).name}:{frames[-1].lineno})"
    return text


def _failed(job: Job, exc: BaseException) -> DayResult:
    """The record of a job whose worker did not answer (it died, or the cluster failed)."""
    return dataclasses.replace(_blank(job, ""), error=_error_text(exc))


def _solve_indexed(
    index: int, job: Job, time_limit_s: float, mip_gap_frac: float, builder: Builder
) -> tuple[int, DayResult]:
    return index, solve_day(job, time_limit_s, mip_gap_frac, builder)


def optimize_days(
    jobs: Sequence[Job],
    backend: Backend = "joblib",
    n_jobs: int | None = None,
    scheduler_address: str | None = None,
    time_limit_s: float = DEFAULT_TIME_LIMIT_S,
    mip_gap_frac: float = DEFAULT_MIP_GAP_FRAC,
    on_result: Callable[[DayResult], None] | None = None,
    builder: Builder = "assemble",
) -> list[DayResult]:
    """Solve the optimum of every job, in parallel; failed days come back as error records.

    Args:
        jobs: Generated days and scenario files.
        backend: ``serial`` (this process), ``joblib`` (local processes) or ``dask``.
        n_jobs: Parallel processes for ``joblib`` (default: every CPU core) and workers of the
            local Dask cluster (default :data:`DEFAULT_DASK_WORKERS`); ignored with a scheduler.
        scheduler_address: Address of a running Dask scheduler (``tcp://host:8786``), whose workers
            have this package installed; without it ``dask`` starts a local cluster of processes
            with one thread each and closes it at the end.
        time_limit_s: Solver time limit per day [s].
        mip_gap_frac: Relative MIP gap at which the solver stops.
        on_result: Called in this process with each record as it finishes (progress reporting).
        builder: How each optimum is built: ``assemble`` (the standard form from the arrays) or
            ``pyomo`` (:func:`smac_rl.optimal.solve.solve_optimal`; the same optimum).

    Returns:
        One record per job, in the jobs' order.

    Raises:
        SmacError: For an unknown backend or builder, a scheduler without ``dask``, ``n_jobs``
            under 1, a non-positive time limit, or a scheduler that cannot be reached.
    """
    from smac_rl.optimal.solve import BUILDERS

    if backend not in BACKENDS:
        raise SmacError(f"backend: got {backend!r}; expected one of {', '.join(BACKENDS)}")
    if scheduler_address is not None and backend != "dask":
        raise SmacError(f"scheduler: got {scheduler_address!r} with backend {backend}; expected backend dask")
    if n_jobs is not None and n_jobs < 1:
        raise SmacError(f"jobs: got {n_jobs}; expected a whole number >= 1")
    if not time_limit_s > 0:
        raise SmacError(f"time limit: got {time_limit_s} s; expected a number > 0")
    if builder not in BUILDERS:
        raise SmacError(f"builder: got {builder!r}; expected one of {', '.join(BUILDERS)}")
    if not jobs:
        return []
    report = on_result or (lambda _record: None)
    if backend == "serial":
        results = []
        for job in jobs:
            results.append(solve_day(job, time_limit_s, mip_gap_frac, builder))
            report(results[-1])
        return results
    if backend == "joblib":
        return _run_joblib(jobs, n_jobs or os.cpu_count() or 1, time_limit_s, mip_gap_frac, builder, report)
    return _run_dask(
        jobs, n_jobs or DEFAULT_DASK_WORKERS, scheduler_address, time_limit_s, mip_gap_frac, builder, report
    )


def _run_joblib(
    jobs: Sequence[Job],
    n_jobs: int,
    time_limit_s: float,
    mip_gap_frac: float,
    builder: Builder,
    report: Callable[[DayResult], None],
) -> list[DayResult]:
    from joblib import Parallel, delayed

    by_index: dict[int, DayResult] = {}
    parallel = Parallel(n_jobs=min(n_jobs, len(jobs)), return_as="generator_unordered")
    tasks = (
        delayed(_solve_indexed)(i, job, time_limit_s, mip_gap_frac, builder) for i, job in enumerate(jobs)
    )
    for index, record in parallel(tasks):
        by_index[index] = record
        report(record)
    return [by_index[i] for i in range(len(jobs))]


def _run_dask(
    jobs: Sequence[Job],
    n_workers: int,
    scheduler_address: str | None,
    time_limit_s: float,
    mip_gap_frac: float,
    builder: Builder,
    report: Callable[[DayResult], None],
) -> list[DayResult]:
    from distributed import Client, LocalCluster

    if scheduler_address is not None:
        try:
            client = Client(scheduler_address)  # type: ignore[no-untyped-call]
        except (OSError, TimeoutError) as exc:
            raise SmacError(
                f"scheduler: got {scheduler_address!r}; expected the address of a running Dask "
                f"scheduler ({' '.join(str(exc).split())})"
            ) from None
        with client:
            return _map_on(client, jobs, time_limit_s, mip_gap_frac, builder, report)
    # Dask's constructors are untyped; the cluster and its client close when the batch ends.
    cluster = LocalCluster(  # type: ignore[no-untyped-call]
        n_workers=n_workers, threads_per_worker=1, processes=True, dashboard_address=None
    )
    with cluster, Client(cluster) as local_client:  # type: ignore[no-untyped-call]
        return _map_on(local_client, jobs, time_limit_s, mip_gap_frac, builder, report)


def _map_on(
    client: Client,
    jobs: Sequence[Job],
    time_limit_s: float,
    mip_gap_frac: float,
    builder: Builder,
    report: Callable[[DayResult], None],
) -> list[DayResult]:
    from distributed import as_completed

    futures = client.map(
        solve_day,
        list(jobs),
        time_limit_s=time_limit_s,
        mip_gap_frac=mip_gap_frac,
        builder=builder,
        pure=False,
    )
    index_of = {future.key: i for i, future in enumerate(futures)}
    by_index: dict[int, DayResult] = {}
    for future in as_completed(futures):  # type: ignore[no-untyped-call]
        index = index_of[future.key]
        try:
            record = future.result()
        except Exception as exc:  # a worker that died: the day fails, the batch goes on
            record = _failed(jobs[index], exc)
        by_index[index] = record
        report(record)
    return [by_index[i] for i in range(len(jobs))]


def summarize_results(results: Sequence[DayResult]) -> BatchSummary:
    """The batch's figures: failures, share solved to optimality, solver times, savings.

    Args:
        results: Records from :func:`optimize_days`.

    Returns:
        The summary (means and medians over the solved days).
    """
    from smac_rl.core.scoring import MIN_SAVINGS_DENOMINATOR_EUR

    solved = [r for r in results if r.is_ok]
    times = [r.solve_s for r in solved if r.solve_s is not None]
    possible = [r.savings_possible_eur for r in solved if r.savings_possible_eur is not None]
    captures = [r.llf_savings_capture_frac for r in solved if r.llf_savings_capture_frac is not None]
    n_optimal = sum(1 for r in solved if r.status == "optimal")
    return BatchSummary(
        n_days=len(results),
        n_failed=len(results) - len(solved),
        n_optimal=n_optimal,
        n_time_limit=sum(1 for r in solved if r.status == "time_limit"),
        share_optimal_frac=n_optimal / len(results) if results else None,
        mean_solve_s=statistics.fmean(times) if times else None,
        median_solve_s=statistics.median(times) if times else None,
        max_solve_s=max(times) if times else None,
        mean_savings_possible_eur=statistics.fmean(possible) if possible else None,
        llf_savings_capture_mean_frac=statistics.fmean(captures) if captures else None,
        n_days_savings_excluded=sum(1 for p in possible if p < MIN_SAVINGS_DENOMINATOR_EUR),
    )


def results_frame(results: Sequence[DayResult]) -> pd.DataFrame:
    """The records as a table, one row per job (:meth:`DayResult.as_row`), in the jobs' order.

    Counts and seeds are nullable integers, every KPI and figure a float (NaN where unknown), so
    the columns keep their types when some days failed.
    """
    import pandas as pd

    frame = pd.DataFrame([r.as_row() for r in results], columns=list(result_columns()))
    return frame.astype(result_columns())


def result_columns() -> dict[str, str]:
    """Columns of :func:`results_frame` and their pandas dtypes, in order."""
    hints = typing.get_type_hints(DayResult)
    dtypes = {"int": "Int64", "float": "float64", "str": "string", "date": "object"}
    columns: dict[str, str] = {}
    for f in dataclasses.fields(DayResult):
        if f.name.endswith("_kpis"):
            continue
        kinds = [
            a.__name__ for a in typing.get_args(hints[f.name]) or (hints[f.name],) if a is not type(None)
        ]
        columns[f.name] = dtypes[kinds[0]]
    for prefix in KPI_PREFIXES:
        for f in dataclasses.fields(Kpis):
            columns[f"{prefix}_{f.name}"] = "float64"
    return columns


def write_results_parquet(results: Sequence[DayResult], path: Path) -> None:
    """Write the records to a parquet file (pandas and pyarrow), creating its folder.

    Args:
        results: Records from :func:`optimize_days`.
        path: The parquet file.

    Raises:
        OSError: When the file cannot be written.
    """
    frame = results_frame(results)
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_parquet(path, engine="pyarrow", index=False)
