"""The evaluation protocol over many days: ``smac evaluate --template T --first-day D --days N``.

For each day (and seed) of a template: uncontrolled charging, the policies asked for and the
perfect-foresight optimum run on the same scenario, each scored by the one scorer on the
scenario's objective; ``savings_capture_frac`` compares each policy with uncontrolled and the
optimum (days whose possible saving is under 1 EUR are excluded and counted). Days are generated
(ElaadNL sessions) or, with ``caltech_replay``, the real Caltech sessions of each day replayed on
the template's site. The summary is per policy: mean, median and pooled savings capture, unmet
energy, sessions fully served, limit violations, and how many days the optimum was proven
optimal. Runs are serial in this process.
"""

from __future__ import annotations

import datetime as dt
import json
import statistics
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from smac_rl.core.scoring import Kpis, savings_capture_frac, summarize_savings_capture


@dataclass(frozen=True)
class DayRecord:
    """One policy on one day.

    Attributes:
        scenario: Scenario name.
        local_day: The generated local day (ISO).
        seed: Generator seed of the day.
        policy: Policy name.
        objective_eur: The scenario's objective [EUR].
        total_cost_eur: Total cost [EUR].
        unmet_energy_kwh: Unmet energy [kWh].
        sessions_fully_served_frac: Share of sessions fully served (None without sessions).
        limit_violation_kwh: Energy beyond the grid limits [kWh].
        savings_capture_frac: Share of the optimum's saving over uncontrolled (None: day excluded).
        optimum_status: How the optimum's solve ended (its gap bounds the capture's accuracy).
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


def day_records(
    scenario: str,
    local_day: dt.date,
    seed: int,
    results: list[tuple[str, Kpis]],
    uncontrolled: Kpis,
    optimum: Kpis,
    optimum_status: str,
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
                uncontrolled.objective_eur, kpis.objective_eur, optimum.objective_eur
            ),
            optimum_status=optimum_status,
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
            "unmet_energy_mean_kwh": statistics.fmean(r.unmet_energy_kwh for r in mine),
            "sessions_fully_served_min_frac": min(served) if served else None,
            "limit_violation_total_kwh": sum(r.limit_violation_kwh for r in mine),
            "n_optimum_proven": sum(1 for r in mine if r.optimum_status == "optimal"),
        }
    return summary


def write_report(
    path: Path, records: list[DayRecord], summary: dict[str, dict[str, Any]], setup: dict[str, Any]
) -> None:
    """Write the records and the summary as one JSON file (created folders; raises OSError)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {"setup": setup, "summary": summary, "records": [asdict(r) for r in records]}
    path.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")


def run_protocol(
    template: str,
    first_day: str,
    n_days: int,
    n_seeds: int,
    policy_specs: list[str],
    objective: str | None,
    time_limit_s: float,
    out: Path | None,
    caltech_replay: bool = False,
) -> None:
    """Run the protocol and print the per-policy summary (module docstring); errors exit with one line.

    Args:
        template: Pilot template name or YAML file.
        first_day: First local day (ISO).
        n_days: Consecutive days.
        n_seeds: Seeds per day (0 .. n_seeds - 1).
        policy_specs: ``--policy`` values (``optimal`` is always run; uncontrolled too).
        objective: Objective name for every day; None: the generated days' own (``cost``).
        time_limit_s: The optimum's time limit per day [s].
        out: Where to write the JSON report, if anywhere.
        caltech_replay: Replay the real Caltech sessions of each day on the template's site
            (days inside a bundled Caltech period) instead of generating sessions.
    """
    from rich.markup import escape
    from rich.table import Table

    from smac_rl.cli.common import console, data_extra_missing, fail, fail_problems, print_table
    from smac_rl.cli.policies import resolve_policy
    from smac_rl.core.arrays import compile_scenario
    from smac_rl.core.errors import ScenarioError, SmacError
    from smac_rl.core.scenario_io import parse_scenario
    from smac_rl.policies import make_heuristic, run_policy

    try:
        from smac_rl.data.generator import generate_scenario, replay_caltech_day
        from smac_rl.data.template_spec import load_template
        from smac_rl.optimal.solve import solve_optimal
    except ImportError as exc:
        raise data_extra_missing(exc) from None
    try:
        start = dt.date.fromisoformat(first_day)
    except ValueError:
        raise fail(f"first-day: got {first_day!r}; expected a day as YYYY-MM-DD") from None
    names = [n for n in dict.fromkeys(policy_specs) if n not in {"optimal", "uncontrolled"}]
    records: list[DayRecord] = []
    uncontrolled_by_day: dict[tuple[str, int], float] = {}
    oracle_by_day: dict[tuple[str, int], float] = {}
    try:
        site = load_template(template)
        for k in range(n_days):
            day = start + dt.timedelta(days=k)
            for seed in range(n_seeds):
                if caltech_replay:
                    spec, _ = replay_caltech_day(site, day, seed=seed)
                else:
                    spec, _ = generate_scenario(site, day, 1, seed=seed)
                if objective is not None:
                    data = spec.model_dump(mode="json")
                    data["objective"] = {"name": objective}
                    spec = parse_scenario(data, source=f"{spec.name} with objective {objective}")
                arrays = compile_scenario(spec)
                console.print(f"{spec.name}: {len(names) + 2} policies and the optimum ...", highlight=False)
                uncontrolled = run_policy(arrays, make_heuristic("uncontrolled"))[1]
                optimum = solve_optimal(arrays, time_limit_s=time_limit_s)
                results = [("uncontrolled", uncontrolled)]
                results += [(n, run_policy(arrays, resolve_policy(n, arrays))[1]) for n in names]
                results.append(("optimal", optimum.kpis))
                records += day_records(
                    spec.name, day, seed, results, uncontrolled, optimum.kpis, optimum.status.value
                )
                uncontrolled_by_day[(day.isoformat(), seed)] = uncontrolled.objective_eur
                oracle_by_day[(day.isoformat(), seed)] = optimum.kpis.objective_eur
    except ScenarioError as exc:
        raise fail_problems(exc) from None
    except SmacError as exc:
        raise fail(str(exc)) from None
    summary = summarize(records, uncontrolled_by_day, oracle_by_day)
    table = Table(
        title=f"{template}: {n_days} day(s) x {n_seeds} seed(s) from {start}, objective {objective or 'cost'}"
    )
    for header in (
        "policy",
        "median capture",
        "pooled capture",
        "excluded days",
        "mean objective [EUR]",
        "mean unmet [kWh]",
        "min fully served",
        "violation [kWh]",
    ):
        table.add_column(escape(header), justify="left" if header == "policy" else "right")

    def pct(value: float | None) -> str:
        return "n/a" if value is None else f"{value:.0%}"

    for name, row in summary.items():
        table.add_row(
            name,
            pct(row["savings_capture_median_frac"]),
            pct(row["savings_capture_pooled_frac"]),
            str(row["n_days_excluded"]),
            f"{row['objective_mean_eur']:.2f}",
            f"{row['unmet_energy_mean_kwh']:.2f}",
            pct(row["sessions_fully_served_min_frac"]),
            f"{row['limit_violation_total_kwh']:.2f}",
        )
    print_table(table)
    proven = summary["optimal"]["n_optimum_proven"]
    console.print(f"optimum proven optimal on {proven} of {n_days * n_seeds} day(s)", highlight=False)
    if out is not None:
        setup = {
            "template": template,
            "first_day": start.isoformat(),
            "days": n_days,
            "seeds": n_seeds,
            "objective": objective or "cost",
            "policies": ["uncontrolled", *names, "optimal"],
            "sessions": "caltech_replay" if caltech_replay else "generated",
            "time_limit_s": time_limit_s,
        }
        try:
            write_report(out, records, summary, setup)
        except OSError as exc:
            raise fail(f"out: got {str(out)!r}; expected a writable file path ({exc.strerror})") from None
        console.print(f"wrote {out}", highlight=False)
