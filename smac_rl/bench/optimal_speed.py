"""``smac bench optimal``: where the perfect-foresight optimum's time goes, at N = 10, 50 and 200 sessions.

The scenarios: one local day (96 steps of 15 minutes, 2024-07-04, Europe/Amsterdam) on the
benchmark site (``bench_site.yaml``: 25 connectors with ten bidirectional V2G chargers, a 200 kWh
battery with self-discharge, 150 kWp of PV, a demand charge), repeated as ``ceil(N / 40)`` blocks
so that N sessions find connectors: station ids of block ``b >= 2`` get the suffix ``-B<b>``;
storage size and power, PV peak, grid limits and base load scale with the blocks. Sessions come
from the generator (ElaadNL distributions, the template's groups with their means scaled up to
about 1.5 N, V2G allowed for every fleet session on the V2G chargers); exactly N of them are kept,
drawn per group in proportion to the generated counts (largest remainders), so the measured count
is the requested one. Each N has two price cases on the same sessions, PV and base load:

* ``positive``: the real Dutch day-ahead prices of Wednesday 2024-07-03 (0.059 to 0.167 EUR/kWh,
  none negative) on the same clock hours, plus the template's 0.10 EUR/kWh retail adder;
* ``negative``: the real day-ahead prices of Thursday 2024-07-04, negative from 10:00 to 18:00 local
  (down to -0.149 EUR/kWh, so exports cost money; with the adder, imports are paid for from 13:00 to
  15:00), plus the same adder.

Figures, per (N, price case), on one thread (HiGHS ``threads=1``; the command pins the process to
one core):

* ``build_s``, ``compile_s``, ``solve_s``: as :func:`smac_rl.optimal.solve.solve_optimal` measures
  them with the chosen builder (``--builder``): the build (``assemble``: the standard form's arrays
  from the scenario, :mod:`smac_rl.optimal.assemble`; ``pyomo``: the pyomo model), then
  ``solve_s`` = ``compile_s`` (compilation to a HiGHS LP: pyomo's standard-form compiler, or the
  assembled arrays handed over) plus every HiGHS run (``highs_s``: the rounding path's two LPs,
  then branch and bound where rounding does not prove optimality);
* ``replay_score_s``: the rest of that call (loading the solution, replay through the projection
  and the physics, scoring, counting the binaries); ``total_s`` is the whole call, from the compiled
  scenario to the result;
* ``handover_s``: appsi's hand-over alone (``set_instance``) of the pyomo model, timed on a second
  build (the way the oracle used to reach HiGHS; for comparison only);
* the LP relaxation (binaries made continuous in [0, 1], ``core.relax_integer_vars``), solved with
  the same options: its hand-over plus solve time, HiGHS's own run time, its objective, and the
  relative gap between it and the MIP's objective (how weak the relaxation is).

The model's binaries here (counted per variable in each record), where
:func:`smac_rl.optimal.model.binary_needs` puts them: V2G charge/discharge modes ``z`` where the
reachability floor rises above what the session can never go below or where simultaneous charge
and discharge could pay, storage modes ``zs`` on every step (the benchmark battery self-discharges
and has a minimum), and PV curtailment ``c_pv`` on steps with a negative price and PV.

Targets (issue 6): at N = 200, proven optimal with a MIP gap <= 1e-4 in <= 2 s with positive prices
and <= 10 s with negative-price hours, counted on ``total_s``. The solver's time limit keeps every
solve finite; a solve stopped there is reported as ``time_limit`` with its gap.
"""

from __future__ import annotations

import datetime as dt
import math
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from smac_rl.core.errors import SmacError

if TYPE_CHECKING:
    import pyomo.environ as pyo

    from smac_rl.core.arrays import ScenarioArrays
    from smac_rl.core.specs import ScenarioSpec
    from smac_rl.data.template_spec import SiteTemplate
    from smac_rl.optimal.solve import Builder, OptimalResult

PriceCase = Literal["positive", "negative"]
PRICE_CASES: tuple[PriceCase, ...] = ("positive", "negative")
SCENARIO_DAY = dt.date(2024, 7, 4)
"""Local day of the grid, the sessions, PV and base load, and of the ``negative`` case's prices."""
PRICE_DAYS: dict[PriceCase, dt.date] = {"positive": dt.date(2024, 7, 3), "negative": SCENARIO_DAY}
"""Day whose Dutch day-ahead prices each case uses (module docstring)."""
DEFAULT_SIZES: tuple[int, ...] = (10, 50, 200)
DEFAULT_TIME_LIMIT_S = 120.0
N_THREADS = 1
MIP_GAP_FRAC = 1e-4
"""Relative MIP gap at which HiGHS stops, as :func:`solve_optimal` uses by default."""
SESSIONS_PER_BLOCK = 40
"""Sessions per copy of the 25-connector benchmark site (few EVs are turned away at this load)."""
OVERSAMPLING = 1.5
"""Generated sessions per wanted session (before the draw of exactly N), first try."""
MAX_TRIES = 5
TARGET_N_SESSIONS = 200
TARGET_TOTAL_S: dict[PriceCase, float] = {"positive": 2.0, "negative": 10.0}
"""Issue 6's time targets at N = 200, on ``total_s`` [s]."""
TARGET_GAP_FRAC = 1e-4


@dataclass(frozen=True)
class OptimalSpeed:
    """One (N, price case) measurement (module docstring).

    Attributes:
        n_sessions_requested: Sessions asked for.
        price_case: ``positive`` or ``negative``.
        n_sessions: Sessions in the scenario (the measured N).
        n_connectors: Connectors of the scaled site.
        n_steps: Steps of the time grid.
        n_v2g_sessions: Sessions that may discharge (V2G allowed, on a bidirectional charger).
        n_negative_price_steps: Steps where the import or the export price is negative.
        n_binaries: Binary variables of the optimum's model.
        n_binaries_by_variable: Binaries per pyomo variable (``z`` V2G modes, ``zs`` storage modes,
            ``c_pv`` PV curtailment, ``zq`` storage direction, ``d_imp``, ``y_min``/``w_top``).
        n_rows: Active constraints of the pyomo model.
        n_columns: Variables of the pyomo model that are not fixed.
        status: ``optimal``, ``time_limit`` (stopped with a solution) or ``no_solution``.
        mip_gap_frac: Relative gap between the solution and the bound; None without a solution.
        objective_eur: The solver's objective; None without a solution [EUR].
        build_s: The build: the assembled arrays, or the pyomo model [s].
        solve_s: ``compile_s`` plus HiGHS [s].
        replay_score_s: Loading the solution, replay, scoring and counting the binaries [s].
        total_s: From the compiled scenario to the result [s].
        handover_s: Appsi's hand-over of the pyomo model alone, on a second build [s].
        highs_s: ``solve_s - compile_s``: HiGHS's share of the solve [s].
        lp_build_s: Build of the model relaxed for the LP [s].
        lp_solve_s: The LP relaxation's hand-over plus solve [s].
        lp_highs_s: HiGHS's own run time on the LP relaxation [s].
        lp_objective_eur: The LP relaxation's objective; None when it did not solve [EUR].
        lp_objective_gap_frac: ``(MIP objective - LP objective) / |MIP objective|``; None without both.
        time_limit_s: The solver's time limit [s].
        target_total_s: Issue 6's time target for this row; None where N is not the target's [s].
        is_target_met: Optimal, gap within the target, in time; None where there is no target.
        error: The solver's message when no solution was found; empty otherwise.
        path: How the optimum was solved: ``rounding`` (proven by the rounded LP, no branch and
            bound) or ``branch_and_bound`` (started from the rounded solution); empty without one.
        builder: The builder of the optimum: ``assemble`` or ``pyomo``.
        compile_s: Of ``solve_s``, the compilation to a HiGHS LP and its hand-over [s].
    """

    n_sessions_requested: int
    price_case: str
    n_sessions: int
    n_connectors: int
    n_steps: int
    n_v2g_sessions: int
    n_negative_price_steps: int
    n_binaries: int
    n_binaries_by_variable: dict[str, int]
    n_rows: int
    n_columns: int
    status: str
    mip_gap_frac: float | None
    objective_eur: float | None
    build_s: float | None
    solve_s: float | None
    replay_score_s: float | None
    total_s: float
    handover_s: float
    highs_s: float | None
    lp_build_s: float
    lp_solve_s: float
    lp_highs_s: float
    lp_objective_eur: float | None
    lp_objective_gap_frac: float | None
    time_limit_s: float
    target_total_s: float | None
    is_target_met: bool | None
    error: str = field(default="")
    path: str = field(default="")
    builder: str = field(default="assemble")
    compile_s: float | None = field(default=None)


def scaled_template(n_sessions: int, oversampling: float = OVERSAMPLING) -> SiteTemplate:
    """The benchmark site repeated in blocks for ``n_sessions`` sessions (module docstring).

    Args:
        n_sessions: Sessions wanted (at least 1).
        oversampling: Generated sessions per wanted session.

    Returns:
        The validated template: ``ceil(n_sessions / 40)`` blocks, group means scaled so that a
        weekday generates about ``oversampling * n_sessions`` arrivals.

    Raises:
        SmacError: For fewer than one session.
    """
    from smac_rl.bench.env_speed import bench_template_path
    from smac_rl.data.template_spec import SiteTemplate, load_template

    if n_sessions < 1:
        raise SmacError(f"sessions: got {n_sessions}; expected at least 1")
    base = load_template(str(bench_template_path()))
    n_blocks = max(1, math.ceil(n_sessions / SESSIONS_PER_BLOCK))
    data = base.model_dump(mode="json")

    def renamed(station_id: str, block: int) -> str:
        return station_id if block == 1 else f"{station_id}-B{block}"

    site = data["site"]
    site["site_id"] = f"bench-optimal-{n_blocks}x25"
    site["name"] = f"Benchmark site, {n_blocks} x 25 connectors (illustrative)"
    site["chargers"] = [
        {**charger, "station_id": renamed(charger["station_id"], block)}
        for block in range(1, n_blocks + 1)
        for charger in site["chargers"]
    ]
    for key in ("capacity_kwh", "max_charge_kw", "max_discharge_kw"):
        site["storage"][key] *= n_blocks
    site["pv"]["peak_power_kwp"] *= n_blocks
    for key in ("import_limit_kw", "export_limit_kw"):
        site["grid"][key] *= n_blocks
    data["base_load"]["mean_kw"] *= n_blocks
    weekday_total = sum(g.mean_sessions_per_weekday for g in base.session_groups)
    scale = oversampling * n_sessions / weekday_total
    for group in data["session_groups"]:
        group["station_ids"] = [
            renamed(s, block) for block in range(1, n_blocks + 1) for s in group["station_ids"]
        ]
        group["mean_sessions_per_weekday"] *= scale
        group["mean_sessions_per_weekend_day"] *= scale
    data["template_id"] = f"bench_optimal_{n_blocks}x25"
    data["description"] = (
        f"Illustrative benchmark site for the optimum's speed: {n_blocks} block(s) of "
        f"{base.template_id} for about {n_sessions} sessions."
    )
    return SiteTemplate.model_validate(data)


def bench_scenarios(n_sessions: int, seed: int = 0) -> dict[PriceCase, ScenarioSpec]:
    """The two price cases with exactly ``n_sessions`` sessions (module docstring).

    Args:
        n_sessions: Sessions wanted (at least 1).
        seed: Seed of the generator and of the draw of N sessions.

    Returns:
        Per price case, the validated scenario; sessions, PV and base load are the same in both.

    Raises:
        SmacError: When the generator gives fewer sessions than wanted after every try.
    """
    from smac_rl.data.generator import generate_scenario, local_days_grid, scenario_from_sessions
    from smac_rl.data.loaders import day_ahead_prices_on_grid

    oversampling = OVERSAMPLING
    for _ in range(MAX_TRIES):
        template = scaled_template(n_sessions, oversampling)
        generated, _ = generate_scenario(template, SCENARIO_DAY, 1, seed)
        sessions: list[dict[str, Any]] = generated.model_dump(mode="json")["sessions"]
        if len(sessions) >= n_sessions:
            break
        oversampling *= 1.5
    else:
        raise SmacError(
            f"sessions: got {len(sessions)} generated after {MAX_TRIES} tries; expected at least {n_sessions}"
        )
    group_of = {station: g.name for g in template.session_groups for station in g.station_ids}
    chosen = _draw_per_group(sessions, [group_of[s["station_id"]] for s in sessions], n_sessions, seed)
    timezone = template.site.timezone
    grid = local_days_grid(timezone, SCENARIO_DAY, 1, template.step_min)
    scenarios: dict[PriceCase, ScenarioSpec] = {}
    for case in PRICE_CASES:
        price_day = PRICE_DAYS[case]
        day_ahead = day_ahead_prices_on_grid(local_days_grid(timezone, price_day, 1, template.step_min))
        # Fresh streams per case: the base load and the clouds come out the same in both.
        streams = [np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(4)]
        name = f"bench_optimal_n{n_sessions}_{case}_s{seed}"
        description = (
            f"{n_sessions} generated sessions on {template.template_id} on {SCENARIO_DAY.isoformat()}, "
            f"Dutch day-ahead prices of {price_day.isoformat()} ({case} price case), seed {seed}."
        )
        scenarios[case] = scenario_from_sessions(
            template, grid, chosen, streams, name, description, day_ahead
        )
    return scenarios


def _draw_per_group(
    sessions: list[dict[str, Any]], groups: list[str], n_sessions: int, seed: int
) -> list[dict[str, Any]]:
    """Exactly ``n_sessions`` sessions, per group in proportion to its count (largest remainders)."""
    rng = np.random.default_rng(seed)
    members: dict[str, list[int]] = {}
    for index, group in enumerate(groups):
        members.setdefault(group, []).append(index)
    names = sorted(members)
    shares = {g: n_sessions * len(members[g]) / len(sessions) for g in names}
    quotas = {g: math.floor(shares[g]) for g in names}
    by_remainder = sorted(names, key=lambda g: (quotas[g] - shares[g], g))
    for g in by_remainder[: n_sessions - sum(quotas.values())]:
        quotas[g] += 1
    kept = sorted(int(i) for g in names for i in rng.choice(members[g], size=quotas[g], replace=False))
    return [sessions[i] for i in kept]


def count_binaries(model: pyo.ConcreteModel) -> dict[str, int]:
    """Binary variables of a model per pyomo variable name."""
    import pyomo.environ as pyo

    counts = Counter(
        v.parent_component().name for v in model.component_data_objects(pyo.Var) if v.is_binary()
    )
    return dict(sorted(counts.items()))


def _highs(time_limit_s: float) -> Any:
    """An appsi HiGHS solver with :func:`solve_optimal`'s options."""
    from pyomo.contrib.appsi.solvers import Highs

    solver = Highs()
    solver.config.time_limit = time_limit_s
    solver.config.mip_gap = MIP_GAP_FRAC
    solver.config.load_solution = False
    solver.highs_options = {"threads": N_THREADS, "random_seed": 0}
    return solver


def measure_scenario(
    arrays: ScenarioArrays,
    price_case: PriceCase,
    n_sessions_requested: int,
    time_limit_s: float = DEFAULT_TIME_LIMIT_S,
    builder: Builder = "assemble",
) -> OptimalSpeed:
    """Measure the optimum of one compiled scenario (module docstring), in this process.

    Args:
        arrays: The compiled scenario.
        price_case: Its price case (a target is looked up by it).
        n_sessions_requested: Sessions asked for (a target is looked up by it).
        time_limit_s: The solver's time limit, for the MIP and for the LP relaxation [s].
        builder: How :func:`smac_rl.optimal.solve.solve_optimal` builds the optimum.

    Returns:
        The figures.
    """
    import pyomo.environ as pyo
    from pyomo.contrib.appsi.base import TerminationCondition

    from smac_rl.optimal.model import OptimalError, build_model
    from smac_rl.optimal.solve import SolverStatus, solve_optimal

    started = time.perf_counter()
    result: OptimalResult | None = None
    error = ""
    try:
        result = solve_optimal(
            arrays, time_limit_s=time_limit_s, mip_gap_frac=MIP_GAP_FRAC, n_threads=N_THREADS, builder=builder
        )
    except OptimalError as exc:
        error = str(exc)
    total_s = time.perf_counter() - started

    model = build_model(arrays)
    binaries = count_binaries(model)
    n_rows = sum(1 for _ in model.component_data_objects(pyo.Constraint, active=True))
    n_columns = sum(1 for v in model.component_data_objects(pyo.Var) if not v.fixed)
    before = time.perf_counter()
    _highs(time_limit_s).set_instance(model)
    handover_s = time.perf_counter() - before

    relax = pyo.TransformationFactory("core.relax_integer_vars")  # loads its plugin before the timer
    before = time.perf_counter()
    relaxed = build_model(arrays)
    relax.apply_to(relaxed)
    lp_build_s = time.perf_counter() - before
    before = time.perf_counter()
    lp = _highs(time_limit_s).solve(relaxed)
    lp_solve_s = time.perf_counter() - before
    lp_objective = (
        float(lp.best_feasible_objective)
        if lp.termination_condition == TerminationCondition.optimal
        else None
    )

    series = arrays.series
    negative = (series.import_price_eur_per_kwh < 0) | (series.export_price_eur_per_kwh < 0)
    target_s = TARGET_TOTAL_S[price_case] if n_sessions_requested == TARGET_N_SESSIONS else None
    objective = None if result is None else result.objective_eur
    gap = None if result is None else result.mip_gap_frac
    is_met = None
    if target_s is not None:
        is_met = (
            result is not None
            and result.status is SolverStatus.OPTIMAL
            and result.mip_gap_frac <= TARGET_GAP_FRAC
            and total_s <= target_s
        )
    return OptimalSpeed(
        n_sessions_requested=n_sessions_requested,
        price_case=price_case,
        n_sessions=arrays.sessions.n_sessions,
        n_connectors=arrays.site.n_connectors,
        n_steps=arrays.n_steps,
        n_v2g_sessions=int(np.count_nonzero(arrays.sessions.max_discharge_kw > 0)),
        n_negative_price_steps=int(np.count_nonzero(negative)),
        n_binaries=sum(binaries.values()),
        n_binaries_by_variable=binaries,
        n_rows=n_rows,
        n_columns=n_columns,
        status="no_solution" if result is None else result.status.value,
        mip_gap_frac=gap,
        objective_eur=objective,
        build_s=None if result is None else result.build_s,
        solve_s=None if result is None else result.solve_s,
        replay_score_s=None if result is None else total_s - result.build_s - result.solve_s,
        total_s=total_s,
        handover_s=handover_s,
        highs_s=None if result is None else max(result.solve_s - result.compile_s, 0.0),
        lp_build_s=lp_build_s,
        lp_solve_s=lp_solve_s,
        lp_highs_s=float(lp.wallclock_time),
        lp_objective_eur=lp_objective,
        lp_objective_gap_frac=(
            None
            if objective is None or lp_objective is None
            else (objective - lp_objective) / max(abs(objective), 1e-9)
        ),
        time_limit_s=time_limit_s,
        target_total_s=target_s,
        is_target_met=is_met,
        error=error,
        path="" if result is None else result.path.value,
        builder=builder if result is None else result.builder,
        compile_s=None if result is None else result.compile_s,
    )


def measure_optimal(
    sizes: Sequence[int] = DEFAULT_SIZES,
    time_limit_s: float = DEFAULT_TIME_LIMIT_S,
    seed: int = 0,
    on_record: Callable[[OptimalSpeed], None] | None = None,
    builder: Builder = "assemble",
) -> list[OptimalSpeed]:
    """Measure every (N, price case) of the benchmark (module docstring).

    Args:
        sizes: Session counts N.
        time_limit_s: The solver's time limit per solve [s].
        seed: Seed of the scenarios.
        on_record: Called with each record as soon as it is measured (progress).
        builder: How the optimum is built (``assemble`` or ``pyomo``).

    Returns:
        One record per (N, price case), in order.
    """
    from smac_rl.core.arrays import compile_scenario

    records = []
    for n_sessions in sizes:
        for case, spec in bench_scenarios(n_sessions, seed).items():
            record = measure_scenario(compile_scenario(spec), case, n_sessions, time_limit_s, builder)
            if on_record is not None:
                on_record(record)
            records.append(record)
    return records


def report(
    records: Sequence[OptimalSpeed], time_limit_s: float, seed: int, builder: Builder = "assemble"
) -> dict[str, Any]:
    """Everything measured, with the setup and the targets, as one JSON-ready mapping."""
    return {
        "setup": {
            "builder": builder,
            "scenario_day": SCENARIO_DAY.isoformat(),
            "price_days": {case: day.isoformat() for case, day in PRICE_DAYS.items()},
            "site": "bench_site.yaml repeated in ceil(N / 40) blocks of 25 connectors",
            "n_threads": N_THREADS,
            "mip_gap_frac": MIP_GAP_FRAC,
            "time_limit_s": time_limit_s,
            "seed": seed,
            "targets": {
                "n_sessions": TARGET_N_SESSIONS,
                "total_s": TARGET_TOTAL_S,
                "mip_gap_frac": TARGET_GAP_FRAC,
            },
        },
        "results": [asdict(r) for r in records],
    }
