"""Scenarios from a user's own data: a sessions CSV (plain or Caltech layout) and a prices CSV.

The site, base load and PV come from a template; everything read from the user's files is
validated row by row first (``smac_rl.data.importers``), so nothing is produced from a bad file.
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd

from smac_rl.core.arraytypes import FloatArray
from smac_rl.core.errors import FieldProblem, ScenarioError
from smac_rl.core.specs import ScenarioSpec, TimeGridSpec
from smac_rl.data.generator import (
    GenerationReport,
    GeneratorError,
    assign_sessions,
    local_days_grid,
    scenario_from_sessions,
)
from smac_rl.data.importers import read_caltech_sessions_csv, read_plain_sessions_lines, read_prices_csv
from smac_rl.data.loaders import average_onto_grid
from smac_rl.data.template_spec import SiteTemplate

SessionLayout = Literal["plain", "caltech"]
MAX_IMPORT_DAYS = 366


def import_scenario(
    template: SiteTemplate,
    sessions_csv: Path,
    layout: SessionLayout,
    prices_csv: Path | None = None,
    seed: int = 0,
    first_day: dt.date | None = None,
    n_days: int | None = None,
) -> tuple[ScenarioSpec, GenerationReport]:
    """Build a scenario from a user's sessions (and optionally prices) on a template's site.

    Plain-layout sessions keep their station, EVSE and connector (they must exist on the site);
    Caltech-layout sessions keep their times and delivered energy (energy wanted = delivered)
    and get an EV, SoC and free connector as generated sessions do. The grid runs over whole local
    days, from ``first_day`` (default: the day of the first arrival) for ``n_days`` (default:
    through the day of the last departure).

    Args:
        template: Site template.
        sessions_csv: The sessions file.
        layout: ``plain`` or ``caltech``.
        prices_csv: Import prices [EUR/kWh or EUR/MWh]; default: bundled day-ahead plus the template's adder.
        seed: Seed of the imputations and generated series.
        first_day: First local day of the grid.
        n_days: Number of days.

    Returns:
        The validated scenario and a report (sessions, turned away, capped).

    Raises:
        CsvImportError: For bad rows (every one named by line and column).
        GeneratorError: For a span or prices that do not cover the grid.
        ScenarioError: When the sessions do not fit the site (unknown station, overlap...).
    """
    if seed < 0:
        raise GeneratorError(f"seed: got {seed}; expected a whole number >= 0")
    tz = ZoneInfo(template.site.timezone)
    streams = [np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(4)]
    report = GenerationReport()
    lines: list[int] = []
    if layout == "plain":
        numbered = read_plain_sessions_lines(sessions_csv)
        lines = [line for line, _ in numbered]
        specs = [spec for _, spec in numbered]
        spans = [(s.arrival_utc, s.departure_utc) for s in specs]
    else:
        stays = read_caltech_sessions_csv(sessions_csv)
        spans = [(s.arrival_utc, s.departure_utc) for s in stays]
    start_day = first_day or min(a for a, _ in spans).astimezone(tz).date()
    days = (
        n_days
        if n_days is not None
        else (max(d for _, d in spans).astimezone(tz).date() - start_day).days + 1
    )
    if not 1 <= days <= MAX_IMPORT_DAYS:
        raise GeneratorError(
            f"days: got {days}; expected 1 to {MAX_IMPORT_DAYS} (the sessions' span or --days)"
        )
    grid = local_days_grid(template.site.timezone, start_day, days, template.step_min)
    if layout == "plain":
        sessions = [s.model_dump(mode="json", exclude_none=True) for s in specs]
        report.n_sessions = len(sessions)
    else:
        arrivals = [
            (
                s.arrival_utc,
                (s.departure_utc - s.arrival_utc).total_seconds() / 3600.0,
                s.delivered_energy_kwh,
            )
            for s in stays
        ]
        sessions = assign_sessions(template.site, grid, arrivals, streams[1], report)
    prices = None if prices_csv is None else prices_on_grid(read_prices_csv(prices_csv), grid)
    name = f"{template.template_id}_import_{Path(sessions_csv).stem}"
    description = (
        f"Imported from {Path(sessions_csv).name} ({layout} layout) on the illustrative template "
        f"{template.template_id!r}; prices from {Path(prices_csv).name if prices_csv else 'the bundle'}; "
        f"seed {seed}."
    )
    try:
        spec = scenario_from_sessions(template, grid, sessions, streams, name, description, None, prices)
    except ScenarioError as exc:
        if not lines:
            raise
        raise ScenarioError([_at_line(p, lines) for p in exc.problems], str(sessions_csv)) from None
    return spec, report


def _at_line(problem: FieldProblem, lines: list[int]) -> FieldProblem:
    """Name a session problem by the CSV line and column it came from."""
    match = re.match(r"^sessions\[(\d+)\](?:\.(\w+))?", problem.path)
    if match is None:
        return problem
    column = match.group(2) or "(row)"
    return FieldProblem(
        f"line {lines[int(match.group(1))]}, column {column}", problem.value, problem.expectation
    )


MAX_PRICE_STEP_MIN = 60
"""Longest price interval accepted from a user's file [min] (day-ahead markets use 15 to 60)."""


def prices_on_grid(prices: pd.Series, grid: TimeGridSpec) -> FloatArray:
    """A user's regular price series on a grid (overlap-weighted, as the bundled prices).

    Args:
        prices: Prices [EUR/kWh] indexed by UTC start times (regular, sorted).
        grid: The time grid.

    Returns:
        Price per step [EUR/kWh].

    Raises:
        GeneratorError: When the interval is longer than an hour or the prices do not cover the grid.
    """
    index = pd.DatetimeIndex(prices.index)
    step = index[1] - index[0] if len(index) > 1 else pd.Timedelta(minutes=MAX_PRICE_STEP_MIN)
    if step > pd.Timedelta(minutes=MAX_PRICE_STEP_MIN):
        raise GeneratorError(
            f"prices: got one price every {step}; expected intervals of at most {MAX_PRICE_STEP_MIN} min"
        )
    covered_end = index[-1] + step
    start, end = pd.Timestamp(grid.start_utc), pd.Timestamp(grid.end_utc)
    if index[0] > start or covered_end < end:
        raise GeneratorError(
            f"prices: got {index[0].isoformat()} to {covered_end.isoformat()}; "
            f"expected prices covering {start.isoformat()} to {end.isoformat()}"
        )
    return average_onto_grid(prices, grid)
