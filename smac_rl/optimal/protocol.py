"""The evaluation protocol's engine: policies next to uncontrolled charging and the optimum, day by day.

For each day (and seed) of a :class:`DaySet`: uncontrolled charging, the policies asked for and the
perfect-foresight optimum run on the same scenario, each scored by the one scorer on the
scenario's objective; ``savings_capture_frac`` compares each policy with uncontrolled and the
optimum (days whose possible saving is under 1 EUR are excluded and counted,
:func:`smac_rl.core.scoring.savings_capture_frac`). Days are generated (ElaadNL sessions) or, with
``caltech_replay``, the real Caltech sessions of each day replayed on the template's site.

``smac evaluate --template`` prints what :func:`evaluate_days` returns; the agents' selection (the
evaluation callback, the sweep's trials, the champion's card) scores on it too, so every number
in a report comes from this one loop.
"""

from __future__ import annotations

import datetime as dt
import json
import statistics
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from smac_rl.core.arrays import ScenarioArrays, compile_scenario
from smac_rl.core.scenario_io import parse_scenario
from smac_rl.core.scoring import Kpis, savings_capture_frac, summarize_savings_capture
from smac_rl.core.simulate import Trace
from smac_rl.core.specs import ObjectiveSpec
from smac_rl.data.generator import generate_scenario, replay_caltech_day
from smac_rl.data.template_spec import load_template
from smac_rl.optimal.solve import solve_optimal
from smac_rl.policies import Policy, make_heuristic, run_policy

PolicyFactory = Callable[[ScenarioArrays], Policy]
"""Builds a policy ready to run on one day's scenario (a fresh one per day)."""

UNCONTROLLED = "uncontrolled"
OPTIMAL = "optimal"


@dataclass(frozen=True)
class DaySet:
    """Which days a protocol runs on.

    Attributes:
        template: Pilot template name or template YAML file.
        first_day: First local day.
        n_days: Consecutive days.
        n_seeds: Generator seeds per day (``0 .. n_seeds - 1``).
        objective: The objective (name and weights) every day is judged on; None: the days' own
            (``cost`` for generated days).
        caltech_replay: Replay the real Caltech sessions of each day (days inside a bundled Caltech
            period) instead of generating sessions.
    """

    template: str
    first_day: dt.date
    n_days: int
    n_seeds: int = 1
    objective: ObjectiveSpec | None = None
    caltech_replay: bool = False

    def day_keys(self) -> list[tuple[str, int]]:
        """``(local_day ISO, seed)`` of every scenario, in order."""
        days = [self.first_day + dt.timedelta(days=k) for k in range(self.n_days)]
        return [(day.isoformat(), seed) for day in days for seed in range(self.n_seeds)]


@dataclass(frozen=True)
class DayReference:
    """What a day's policies are compared with: uncontrolled charging and the optimum.

    Attributes:
        uncontrolled: Uncontrolled charging's KPIs.
        optimum: The optimum's KPIs.
        optimum_status: How the optimum's solve ended (its gap bounds the capture's accuracy).
    """

    uncontrolled: Kpis
    optimum: Kpis
    optimum_status: str


@dataclass(frozen=True)
class DayRecord:
    """One policy on one day.

    Attributes:
        scenario: Scenario name.
        local_day: The local day (ISO).
        seed: Generator seed of the day.
        policy: Policy name.
        objective_eur: The scenario's objective [EUR].
        total_cost_eur: Total cost [EUR].
        unmet_energy_kwh: Unmet energy [kWh].
        sessions_fully_served_frac: Share of sessions fully served (None without sessions).
        limit_violation_kwh: Energy beyond the grid limits [kWh].
        savings_capture_frac: Share of the optimum's saving over uncontrolled (None: day excluded).
        optimum_status: How the optimum's solve ended.
    """

    scenario: str
    local_day: str
    seed: int
    policy: str
    objective_eur: float
    total_cost_eur: float
    unmet_energy_kwh: float
    sessions_fully_served_frac: float | None
    limit_violation_kwh: float
    savings_capture_frac: float | None
    optimum_status: str


@dataclass(frozen=True)
class ProtocolResult:
    """Every record and the per-policy summary of a protocol run.

    Attributes:
        records: One record per policy and day, uncontrolled first and the optimum last.
        summary: Policy name -> summary values (:func:`summarize`).
        references: ``(local_day, seed)`` -> the day's reference (reusable by a later run on the
            same days).
    """

    records: list[DayRecord]
    summary: dict[str, dict[str, Any]]
    references: dict[tuple[str, int], DayReference] = field(default_factory=dict)


def day_scenarios(days: DaySet) -> Iterator[tuple[str, int, ScenarioArrays]]:
    """The compiled scenario of each ``(local_day, seed)`` of a day set, with its name.

    Raises:
        ScenarioError: For a template or day the generator refuses.
        SmacError: For an unknown template, or a replayed day outside the bundled Caltech periods.
    """
    site = load_template(days.template)
    for local_day, seed in days.day_keys():
        day = dt.date.fromisoformat(local_day)
        if days.caltech_replay:
            spec, _ = replay_caltech_day(site, day, seed=seed)
        else:
            spec, _ = generate_scenario(site, day, 1, seed=seed)
        if days.objective is not None:
            data = spec.model_dump(mode="json")
            data["objective"] = days.objective.model_dump(mode="json")
            spec = parse_scenario(data, source=f"{spec.name} with objective {days.objective.name}")
        yield spec.name, seed, compile_scenario(spec)


def day_references(days: DaySet, time_limit_s: float = 60.0) -> dict[tuple[str, int], DayReference]:
    """Uncontrolled charging and the optimum on every day of a day set (compute once, reuse)."""
    references = {}
    for (local_day, seed), (_, _, arrays) in zip(days.day_keys(), day_scenarios(days), strict=True):
        optimum = solve_optimal(arrays, time_limit_s=time_limit_s)
        uncontrolled = run_policy(arrays, make_heuristic(UNCONTROLLED))[1]
        references[(local_day, seed)] = DayReference(uncontrolled, optimum.kpis, optimum.status.value)
    return references


def evaluate_days(
    days: DaySet,
    policies: Mapping[str, PolicyFactory],
    time_limit_s: float = 60.0,
    references: Mapping[tuple[str, int], DayReference] | None = None,
    on_day: Callable[[str, int], None] | None = None,
    on_runs: Callable[[ScenarioArrays, list[tuple[str, Trace, Kpis]]], None] | None = None,
) -> ProtocolResult:
    """Run policies on every day of a day set next to uncontrolled charging and the optimum.

    Args:
        days: The days.
        policies: Name -> factory of the policy (``uncontrolled`` and ``optimal`` are always run;
            names equal to them are ignored).
        time_limit_s: The optimum's time limit per day [s].
        references: Uncontrolled and the optimum per day, when already known (:func:`day_references`);
            missing days are computed.
        on_day: Called with each scenario's name and its number of policies before it runs.
        on_runs: Called after each day with its scenario and every run's ``(policy, trace, KPIs)``
            (for figures): uncontrolled, the policies and the optimum, whose trace is its profile
            replayed through the physics; the optimum is left out on a day whose reference was
            given (its trace is not kept there).

    Returns:
        The records, the per-policy summary and the references used.
    """
    named = {name: make for name, make in policies.items() if name not in {UNCONTROLLED, OPTIMAL}}
    records: list[DayRecord] = []
    used: dict[tuple[str, int], DayReference] = {}
    for key, (name, seed, arrays) in zip(days.day_keys(), day_scenarios(days), strict=True):
        if on_day is not None:
            on_day(name, len(named) + 2)
        reference = (references or {}).get(key)
        reference_runs: list[tuple[str, Trace, Kpis]] = []  # computed here: kept for on_runs
        if reference is None:
            uncontrolled_trace, uncontrolled = run_policy(arrays, make_heuristic(UNCONTROLLED))
            optimum = solve_optimal(arrays, time_limit_s=time_limit_s)
            reference = DayReference(uncontrolled, optimum.kpis, optimum.status.value)
            reference_runs = [
                (UNCONTROLLED, uncontrolled_trace, uncontrolled),
                (OPTIMAL, optimum.trace, optimum.kpis),
            ]
        used[key] = reference
        policy_runs = [
            (policy_name, *run_policy(arrays, make(arrays))) for policy_name, make in named.items()
        ]
        results = [
            (UNCONTROLLED, reference.uncontrolled),
            *((policy_name, kpis) for policy_name, _, kpis in policy_runs),
            (OPTIMAL, reference.optimum),
        ]
        records += day_records(name, dt.date.fromisoformat(key[0]), seed, results, reference)
        if on_runs is not None:
            on_runs(arrays, [*reference_runs[:1], *policy_runs, *reference_runs[1:]])
    uncontrolled_by_day = {key: r.uncontrolled.objective_eur for key, r in used.items()}
    oracle_by_day = {key: r.optimum.objective_eur for key, r in used.items()}
    return ProtocolResult(records, summarize(records, uncontrolled_by_day, oracle_by_day), used)


def day_records(
    scenario: str, local_day: dt.date, seed: int, results: list[tuple[str, Kpis]], reference: DayReference
) -> list[DayRecord]:
    """The records of one day's policies (savings capture on the scenario's objective)."""
    return [
        DayRecord(
            scenario=scenario,
            local_day=local_day.isoformat(),
            seed=seed,
            policy=name,
            objective_eur=kpis.objective_eur,
            total_cost_eur=kpis.total_cost_eur,
            unmet_energy_kwh=kpis.unmet_energy_kwh,
            sessions_fully_served_frac=kpis.sessions_fully_served_frac,
            limit_violation_kwh=kpis.limit_violation_kwh,
            savings_capture_frac=savings_capture_frac(
                reference.uncontrolled.objective_eur, kpis.objective_eur, reference.optimum.objective_eur
            ),
            optimum_status=reference.optimum_status,
        )
        for name, kpis in results
    ]


def summarize(
    records: list[DayRecord], uncontrolled: dict[tuple[str, int], float], oracle: dict[tuple[str, int], float]
) -> dict[str, dict[str, Any]]:
    """Per-policy summary over the days (module docstring).

    Args:
        records: Every policy's records.
        uncontrolled: Uncontrolled objective per ``(local_day, seed)`` [EUR].
        oracle: Optimum objective per ``(local_day, seed)`` [EUR].

    Returns:
        Policy name -> summary values.
    """
    summary: dict[str, dict[str, Any]] = {}
    for name in dict.fromkeys(r.policy for r in records):
        mine = [r for r in records if r.policy == name]
        capture = summarize_savings_capture(
            (uncontrolled[(r.local_day, r.seed)], r.objective_eur, oracle[(r.local_day, r.seed)])
            for r in mine
        )
        included = [r.savings_capture_frac for r in mine if r.savings_capture_frac is not None]
        served = [r.sessions_fully_served_frac for r in mine if r.sessions_fully_served_frac is not None]
        summary[name] = {
            "n_days": len(mine),
            "savings_capture_median_frac": statistics.median(included) if included else None,
            "savings_capture_mean_frac": capture.mean_frac,
            "savings_capture_pooled_frac": capture.pooled_frac,
            "n_days_excluded": capture.n_days_excluded,
            "objective_mean_eur": statistics.fmean(r.objective_eur for r in mine),
            "total_cost_mean_eur": statistics.fmean(r.total_cost_eur for r in mine),
            "unmet_energy_mean_kwh": statistics.fmean(r.unmet_energy_kwh for r in mine),
            "sessions_fully_served_min_frac": min(served) if served else None,
            "limit_violation_total_kwh": sum(r.limit_violation_kwh for r in mine),
            "n_optimum_proven": sum(1 for r in mine if r.optimum_status == "optimal"),
        }
    return summary


SUMMARY_HEADERS = (
    "policy",
    "median capture",
    "pooled capture",
    "excluded days",
    "mean objective [EUR]",
    "mean unmet [kWh]",
    "min fully served",
    "violation [kWh]",
)
"""Columns of a summary table (:func:`summary_cells`), for the terminal and for markdown."""


def summary_cells(name: str, row: dict[str, Any], percent_digits: int = 0) -> list[str]:
    """One policy's summary row as the texts of :data:`SUMMARY_HEADERS`.

    Args:
        name: Policy name.
        row: Its summary (:func:`summarize`).
        percent_digits: Decimals of the percentages.
    """

    def pct(value: float | None) -> str:
        return "n/a" if value is None else f"{value:.{percent_digits}%}"

    return [
        name,
        pct(row["savings_capture_median_frac"]),
        pct(row["savings_capture_pooled_frac"]),
        str(row["n_days_excluded"]),
        f"{row['objective_mean_eur']:.2f}",
        f"{row['unmet_energy_mean_kwh']:.2f}",
        pct(row["sessions_fully_served_min_frac"]),
        f"{row['limit_violation_total_kwh']:.2f}",
    ]


def write_report(
    path: Path, records: list[DayRecord], summary: dict[str, dict[str, Any]], setup: dict[str, Any]
) -> None:
    """Write the records and the summary as one JSON file (created folders; raises OSError)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {"setup": setup, "summary": summary, "records": [asdict(r) for r in records]}
    path.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
