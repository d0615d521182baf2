"""Shared pieces of the ``smac`` commands: consoles, one-line errors, outputs, policy runs."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console, RenderableType
from rich.markup import escape

from smac_rl.core.arrays import ScenarioArrays
from smac_rl.core.errors import ProblemsError, SmacError
from smac_rl.core.scenario_io import load_builtin_scenario, load_scenario
from smac_rl.core.scoring import Kpis
from smac_rl.core.simulate import Trace
from smac_rl.core.specs import ScenarioSpec
from smac_rl.policies import Policy, make_heuristic, run_policy

DEFAULT_SCENARIO = "demo_workplace"

console = Console()
error_console = Console(stderr=True)

ScenarioFile = Annotated[Path, typer.Argument(help="Scenario file (.yaml, .yml or .json).")]


def fail(message: str) -> typer.Exit:
    """Print one error line and return the exit to raise (code 1); ``[...]`` in it is text, not markup."""
    error_console.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
    return typer.Exit(code=1)


def fail_problems(exc: ProblemsError[Any]) -> typer.Exit:
    """Print every problem of an input on its own line and return the exit to raise (code 1)."""
    where = f"{exc.source}: " if exc.source else ""
    for problem in exc.problems:
        error_console.print(
            f"[bold red]error:[/] {escape(f'{where}{problem}')}", highlight=False, soft_wrap=True
        )
    return typer.Exit(code=1)


NON_TERMINAL_WIDTH = 200
"""Characters per line of tables written to a file or pipe (no terminal to fit)."""


def print_table(table: RenderableType) -> None:
    """Print a table whole: at the terminal's width, or :data:`NON_TERMINAL_WIDTH` when piped."""
    if console.is_terminal:
        console.print(table)
    else:  # a print's width is capped at its console's, so piped output gets a wide console of its own
        Console(width=NON_TERMINAL_WIDTH, highlight=False).print(table)


def write_output(path: Path, text: str) -> None:
    """Write an output file, or fail with one line naming the path."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise fail(f"out: got {str(path)!r}; expected a writable file path ({exc.strerror})") from None


def resolve_scenario(file: Path | None, builtin: str | None) -> ScenarioSpec:
    """The scenario from a file, a built-in name, or the default built-in."""
    if file is not None and builtin is not None:
        raise SmacError("--scenario and --builtin: got both; expected one of them")
    if file is not None:
        return load_scenario(file)
    return load_builtin_scenario(builtin or DEFAULT_SCENARIO)


def run_with_progress(arrays: ScenarioArrays, policies: list[Policy]) -> list[tuple[str, Kpis]]:
    """Run each policy on the scenario with a progress bar (on a terminal); ``(name, KPIs)`` each."""
    return [(name, kpis) for name, _, kpis in run_with_progress_traces(arrays, policies)]


def run_with_progress_traces(arrays: ScenarioArrays, policies: list[Policy]) -> list[tuple[str, Trace, Kpis]]:
    """Run each policy on the scenario with a progress bar (on a terminal); ``(name, trace, KPIs)`` each."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn

    results: list[tuple[str, Trace, Kpis]] = []
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=True, disable=not console.is_terminal) as progress:
        for policy in policies:
            task = progress.add_task(policy.name, total=arrays.n_steps)

            def advance(_step: int, task: TaskID = task) -> None:
                progress.advance(task)

            trace, kpis = run_policy(arrays, policy, advance)
            results.append((policy.name, trace, kpis))
    return results


def data_extra_missing(exc: ImportError) -> typer.Exit:
    """The one-line error for a command run without the [data] extra."""
    return fail(
        f"this command needs the [data] extra ({exc.name} is missing): "
        "pip install -c constraints.txt -e '.[data]', or run make test once"
    )


def optimum_kpis(arrays: ScenarioArrays) -> Kpis:
    """KPIs of the perfect-foresight optimum (needs the [milp] extra)."""
    return optimum_run(arrays)[1]


def optimum_run(arrays: ScenarioArrays) -> tuple[Trace, Kpis]:
    """The perfect-foresight optimum's profile replayed through the physics, and its KPIs (needs [milp])."""
    try:
        from smac_rl.optimal.solve import solve_optimal
    except ImportError as exc:
        raise fail(
            f"policy optimal needs the [milp] extra ({exc.name} is missing): "
            "pip install -c constraints.txt -e '.[milp]'"
        ) from None
    try:
        with console.status("solving the perfect-foresight optimum (HiGHS)"):
            result = solve_optimal(arrays)
    except SmacError as exc:
        raise fail(str(exc)) from None
    return result.trace, result.kpis


def savings_capture(
    arrays: ScenarioArrays, results: list[tuple[str, Kpis]]
) -> dict[str, float | None] | None:
    """Savings capture of every policy on the scenario's objective when the optimum is among the results."""
    from smac_rl.core.scoring import savings_capture_frac

    by_name = dict(results)
    if "optimal" not in by_name:
        return None
    uncontrolled = by_name.get("uncontrolled") or run_policy(arrays, make_heuristic("uncontrolled"))[1]
    oracle = by_name["optimal"].objective_eur
    return {
        name: savings_capture_frac(uncontrolled.objective_eur, kpis.objective_eur, oracle)
        for name, kpis in results
    }
