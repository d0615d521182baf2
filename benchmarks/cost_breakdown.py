"""Where a policy loses against the MPC and the optimum: each day's cost split into its parts.

``smac evaluate`` ranks policies by the objective; this script shows what the objective is made of,
per generated day: energy cost, demand charge, peak import and unmet energy, for uncontrolled
charging, the given policies (anything ``smac evaluate --policy`` takes: a heuristic name, an
exported policy folder, ``mpc``) and the perfect-foresight optimum.

Run: ``.venv/bin/python benchmarks/cost_breakdown.py TEMPLATE OBJECTIVE FIRST_DAY N_DAYS POLICY...``
(e.g. ``budapest_workplace peak 2023-01-09 4 models/policies/budapest_workplace_peak/v2 mpc``).
"""

from __future__ import annotations

import datetime as dt
import sys

from smac_rl.cli.policies import resolve_policy
from smac_rl.core.scoring import Kpis
from smac_rl.core.specs import ObjectiveSpec
from smac_rl.optimal.protocol import DaySet, day_scenarios
from smac_rl.optimal.solve import solve_optimal
from smac_rl.policies import run_policy


def _cells(name: str, kpis: Kpis) -> str:
    return (
        f"| {name} | {kpis.objective_eur:.1f} | {kpis.energy_cost_eur:.1f} | {kpis.demand_charge_eur:.1f} "
        f"| {kpis.peak_import_kw:.0f} | {kpis.unmet_energy_kwh:.1f} |"
    )


def main(argv: list[str]) -> None:
    """Print one markdown table per day."""
    if len(argv) < 5:
        raise SystemExit(__doc__)
    template, objective, first_day, n_days = argv[0], argv[1], dt.date.fromisoformat(argv[2]), int(argv[3])
    days = DaySet(template, first_day, n_days, 1, ObjectiveSpec.model_validate({"name": objective}))
    for name, _seed, arrays in day_scenarios(days):
        print(f"\n{name}\n")
        print("| policy | objective [EUR] | energy [EUR] | demand charge [EUR] | peak [kW] | unmet [kWh] |")
        print("|---|---:|---:|---:|---:|---:|")
        for spec in ["uncontrolled", *argv[4:]]:
            _, kpis = run_policy(arrays, resolve_policy(spec, arrays))
            print(_cells(spec, kpis), flush=True)
        print(_cells("optimum", solve_optimal(arrays).kpis), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
