"""An exported policy scored with its own decoding and with the minimum-current rounding added.

The graph of a policy stays as trained; what changes is how the service decodes its setpoints
(:meth:`smac_rl.core.observation.ObservationLayout.completed`): with ``+round`` the charging asks
below the chargers' minimum current are rounded to 0 or the minimum
(:func:`smac_rl.core.observation.round_to_minimum_current`) instead of all being set to 0 by the
projection; with ``+fill`` charging is raised up to the day's highest import so far
(:func:`smac_rl.core.observation.fill_to_paid_peak`); with ``+margin=M`` the deadline floor keeps ``M``
steps to spare instead of the trained margin. Selection or test days as ``smac evaluate`` scores
them (median savings capture).

Run: ``.venv/bin/python benchmarks/decoding_variants.py TEMPLATE OBJECTIVE FIRST_DAY N_DAYS
MODEL[+round][+fill][+margin=M]...``
(e.g. ``budapest_workplace peak 2023-01-09 7 models/policies/budapest_workplace_peak/v3
models/policies/budapest_workplace_peak/v3+round``).
"""

from __future__ import annotations

import datetime as dt
import sys
from dataclasses import replace
from pathlib import Path

from smac_rl.core.arrays import ScenarioArrays
from smac_rl.core.specs import ObjectiveSpec
from smac_rl.optimal.protocol import DaySet, PolicyFactory, evaluate_days
from smac_rl.policies import Policy
from smac_rl_serve.model import OnnxPolicy

ROUND = "+round"
FILL = "+fill"
MARGIN = "margin="


def _factory(spec: str) -> PolicyFactory:
    """``FOLDER[+round][+fill][+margin=M]``: the folder's policy, rounded, filled, another margin [steps]."""
    folder, *options = spec.split("+")
    changes: dict[str, object] = {}
    for option in options:
        if option == ROUND[1:]:
            changes["is_min_current_rounded"] = True
        elif option == FILL[1:]:
            changes["is_paid_peak_filled"] = True
        elif option.startswith(MARGIN):
            changes["deadline_floor_margin_steps"] = float(option[len(MARGIN) :])
        else:
            raise SystemExit(f"variant {option!r} of {spec!r}: expected round, fill or {MARGIN}M")

    def make(arrays: ScenarioArrays) -> Policy:
        policy = OnnxPolicy(Path(folder))
        policy.layout = replace(policy.layout, **changes)  # type: ignore[arg-type]
        policy.begin_episode(arrays)
        return policy

    return make


def main(argv: list[str]) -> None:
    """Print the median and pooled savings capture of each variant."""
    if len(argv) < 5:
        raise SystemExit(__doc__)
    template, objective, first_day, n_days = argv[0], argv[1], dt.date.fromisoformat(argv[2]), int(argv[3])
    days = DaySet(template, first_day, n_days, 1, ObjectiveSpec.model_validate({"name": objective}))
    result = evaluate_days(days, {spec: _factory(spec) for spec in argv[4:]})
    print("| policy | median capture | pooled capture | unmet [kWh/day] |")
    print("|---|---:|---:|---:|")
    for name, row in result.summary.items():
        median, pooled = row["savings_capture_median_frac"], row["savings_capture_pooled_frac"]
        print(
            f"| {name} | {100 * median:.1f} % | {100 * (pooled or 0.0):.1f} % "
            f"| {row['unmet_energy_mean_kwh']:.2f} |"
        )


if __name__ == "__main__":
    main(sys.argv[1:])
