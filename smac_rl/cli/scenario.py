"""``smac scenario``: validate, show, templates, generate, import."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Annotated

import typer

from smac_rl.cli.common import (
    ScenarioFile,
    console,
    data_extra_missing,
    fail,
    fail_problems,
    resolve_scenario,
    write_output,
)
from smac_rl.core.errors import ProblemsError, ScenarioError, SmacError
from smac_rl.core.scenario_io import load_scenario
from smac_rl.data.periods import CALTECH_PERIODS

scenario_app = typer.Typer(
    rich_markup_mode=None, help="Validate, inspect, generate and import scenarios.", no_args_is_help=True
)


@scenario_app.command("validate")
def scenario_validate(file: ScenarioFile) -> None:
    """Check a scenario file; print every problem with its field path, exit 1 on any."""
    try:
        spec = load_scenario(file)
    except ScenarioError as exc:
        raise fail_problems(exc) from None
    console.print(
        f"{file}: valid scenario {spec.name!r} ({len(spec.site.chargers)} chargers, "
        f"{len(spec.sessions)} sessions, {spec.time_grid.n_steps} steps)",
        highlight=False,
        soft_wrap=True,
    )


@scenario_app.command("show")
def scenario_show(
    file: Annotated[
        Path | None, typer.Argument(help="Scenario file; the built-in demo scenario when omitted.")
    ] = None,
    builtin: Annotated[
        str | None,
        typer.Option(help="A built-in scenario instead of a file (demo_workplace)."),
    ] = None,
) -> None:
    """Print a readable summary of a scenario: horizon, assets, tariff, sessions."""
    from smac_rl.cli.render import scenario_summary

    try:
        spec = resolve_scenario(file, builtin)
    except ScenarioError as exc:
        raise fail_problems(exc) from None
    except SmacError as exc:
        raise fail(str(exc)) from None
    console.print(scenario_summary(spec))


@scenario_app.command("templates")
def scenario_templates() -> None:
    """List the built-in pilot site templates (illustrative configurations)."""
    try:
        from smac_rl.data.template_spec import load_template, template_names
    except ImportError as exc:
        raise data_extra_missing(exc) from None
    for name in template_names():
        template = load_template(name)
        console.print(f"[bold]{name}[/]: {' '.join(template.description.split())}", highlight=False)


@scenario_app.command("generate")
def scenario_generate(
    site: Annotated[
        str, typer.Option(help="Template name (see 'smac scenario templates') or template YAML file.")
    ],
    date: Annotated[str, typer.Option(help="First local day, YYYY-MM-DD (2015-01-01 to 2024-12-31).")],
    days: Annotated[int, typer.Option(min=1, max=366, help="Number of local days.")] = 1,
    seed: Annotated[int, typer.Option(min=0, help="Seed of every random draw (>= 0).")] = 0,
    sessions: Annotated[
        str, typer.Option(help="Session source: elaad (distributions) or caltech (resampled).")
    ] = "elaad",
    period: Annotated[str, typer.Option(help="Caltech period for --sessions caltech.")] = CALTECH_PERIODS[0],
    out: Annotated[
        Path | None, typer.Option(help="Scenario file to write; default <name>.yaml here.")
    ] = None,
    plot: Annotated[
        Path | None, typer.Option(help="Also write a PNG of the generated days against the sources.")
    ] = None,
) -> None:
    """Generate site-days from a template: sessions, prices, PV and base load on one grid."""
    try:
        from smac_rl.data.generator import generate_scenario
        from smac_rl.data.template_spec import load_template
    except ImportError as exc:
        raise data_extra_missing(exc) from None
    from smac_rl.core.scenario_io import scenario_to_yaml

    try:
        first_day = dt.date.fromisoformat(date)
    except ValueError:
        raise fail(f"date: got {date!r}; expected a day as YYYY-MM-DD") from None
    if sessions not in ("elaad", "caltech"):
        raise fail(f"sessions: got {sessions!r}; expected elaad or caltech")
    if plot is not None and plot.suffix.lower() != ".png":
        raise fail(f"plot: got {str(plot)!r}; expected a .png file")
    try:
        template = load_template(site)
        spec, report = generate_scenario(
            template, first_day, days, seed, "caltech" if sessions == "caltech" else "elaad", period
        )
    except ScenarioError as exc:
        raise fail_problems(exc) from None
    except SmacError as exc:
        raise fail(str(exc)) from None
    if plot is not None:
        from smac_rl.data.plots import plot_generated

        try:
            written = plot_generated(spec, template, plot, sessions, period)
        except OSError as exc:
            raise fail(f"plot: got {str(plot)!r}; expected a writable file path ({exc.strerror})") from None
        console.print(f"wrote {written}", highlight=False, soft_wrap=True)
    target = out or Path(f"{spec.name}.yaml")
    write_output(target, scenario_to_yaml(spec))
    console.print(
        f"wrote {target}: {report.n_sessions} sessions "
        f"({report.n_turned_away} turned away, no free connector; "
        f"{report.n_energy_capped} energy requests capped), "
        f"{spec.time_grid.n_steps} steps of {spec.time_grid.step_min} min",
        highlight=False,
        soft_wrap=True,
    )


@scenario_app.command("import")
def scenario_import(
    site: Annotated[
        str, typer.Option(help="Template name or template YAML file: the site, base load and PV.")
    ],
    sessions: Annotated[Path, typer.Option(help="Sessions CSV (columns in docs/DATA_FORMATS.md).")],
    layout: Annotated[
        str, typer.Option(help="Sessions layout: plain (SessionSpec columns) or caltech (ACN-Data).")
    ] = "plain",
    prices: Annotated[
        Path | None, typer.Option(help="Prices CSV (time_utc, price_eur_per_kwh or _mwh).")
    ] = None,
    seed: Annotated[
        int, typer.Option(min=0, help="Seed of the imputations and generated series (>= 0).")
    ] = 0,
    date: Annotated[str | None, typer.Option(help="First local day; default: the first arrival's.")] = None,
    days: Annotated[
        int | None, typer.Option(min=1, max=366, help="Number of days; default: through the last departure.")
    ] = None,
    out: Annotated[
        Path | None, typer.Option(help="Scenario file to write; default <name>.yaml here.")
    ] = None,
) -> None:
    """Build a scenario from your own sessions (and prices) on a template site; a bad row writes nothing."""
    try:
        from smac_rl.data.import_scenario import import_scenario
        from smac_rl.data.template_spec import load_template
    except ImportError as exc:
        raise data_extra_missing(exc) from None
    from smac_rl.core.scenario_io import scenario_to_yaml

    if layout not in ("plain", "caltech"):
        raise fail(f"layout: got {layout!r}; expected plain or caltech")
    try:
        first_day = None if date is None else dt.date.fromisoformat(date)
    except ValueError:
        raise fail(f"date: got {date!r}; expected a day as YYYY-MM-DD") from None
    try:
        template = load_template(site)
        spec, report = import_scenario(
            template, sessions, "caltech" if layout == "caltech" else "plain", prices, seed, first_day, days
        )
    except ProblemsError as exc:
        raise fail_problems(exc) from None
    except SmacError as exc:
        raise fail(str(exc)) from None
    target = out or Path(f"{spec.name}.yaml")
    write_output(target, scenario_to_yaml(spec))
    console.print(
        f"wrote {target}: {report.n_sessions} sessions "
        f"({report.n_turned_away} turned away, no free connector), "
        f"{spec.time_grid.n_steps} steps of {spec.time_grid.step_min} min",
        highlight=False,
        soft_wrap=True,
    )
