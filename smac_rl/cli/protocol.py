"""The evaluation protocol over many days: ``smac evaluate --template T --first-day D --days N``.

The engine is :mod:`smac_rl.optimal.protocol` (uncontrolled, the policies asked for and the
optimum on each day, scored by the one scorer); this module resolves the ``--policy`` values,
prints the per-policy summary table and writes the JSON report. Runs are serial in this process.
"""

from __future__ import annotations

import datetime as dt
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from smac_rl.core.arrays import ScenarioArrays
    from smac_rl.core.scoring import Kpis
    from smac_rl.core.simulate import Trace


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
    plot: Path | None = None,
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
        plot: Folder for one figure per day and policy (uncontrolled and the optimum included).
    """
    from rich.markup import escape
    from rich.table import Table

    from smac_rl.cli.common import console, data_extra_missing, fail, fail_problems, print_table
    from smac_rl.cli.policies import resolve_policy
    from smac_rl.core.errors import ScenarioError, SmacError
    from smac_rl.core.specs import ObjectiveSpec

    try:
        from smac_rl.data.episode_plots import plot_episodes
        from smac_rl.optimal.protocol import (
            SUMMARY_HEADERS,
            DaySet,
            evaluate_days,
            summary_cells,
            write_report,
        )
    except ImportError as exc:
        raise data_extra_missing(exc) from None
    try:
        start = dt.date.fromisoformat(first_day)
    except ValueError:
        raise fail(f"first-day: got {first_day!r}; expected a day as YYYY-MM-DD") from None
    names = [n for n in dict.fromkeys(policy_specs) if n not in {"optimal", "uncontrolled"}]
    spec = None if objective is None else ObjectiveSpec.model_validate({"name": objective})
    days = DaySet(template, start, n_days, n_seeds, spec, caltech_replay)
    factories = {name: partial(resolve_policy, name) for name in names}

    def say(scenario: str, n_policies: int) -> None:
        console.print(f"{scenario}: {n_policies} policies and the optimum ...", highlight=False)

    figures: list[Path] = []

    def draw(arrays: ScenarioArrays, runs: list[tuple[str, Trace, Kpis]]) -> None:
        if plot is None:
            return
        try:
            figures.extend(plot_episodes(arrays, runs, plot))
        except OSError as exc:
            raise fail(f"plot: got {str(plot)!r}; expected a writable folder ({exc.strerror})") from None

    try:
        result = evaluate_days(days, factories, time_limit_s, on_day=say, on_runs=draw)
    except ScenarioError as exc:
        raise fail_problems(exc) from None
    except SmacError as exc:
        raise fail(str(exc)) from None
    records, summary = result.records, result.summary
    table = Table(
        title=f"{template}: {n_days} day(s) x {n_seeds} seed(s) from {start}, objective {objective or 'cost'}"
    )
    for header in SUMMARY_HEADERS:
        table.add_column(escape(header), justify="left" if header == "policy" else "right")
    for name, row in summary.items():
        table.add_row(*summary_cells(name, row))
    print_table(table)
    if plot is not None:
        console.print(f"wrote {len(figures)} episode figure(s) to {plot}", highlight=False)
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
