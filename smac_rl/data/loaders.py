"""Typed loaders of the shipped data bundle (smac_rl/data/bundle/, provenance in DATA_SOURCES.md)."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

import numpy as np
import pandas as pd

from smac_rl.core.arraytypes import FloatArray
from smac_rl.core.errors import SmacError
from smac_rl.core.specs import TimeGridSpec
from smac_rl.data.periods import CALTECH_PERIODS as CALTECH_PERIODS

BUNDLE_PACKAGE = "smac_rl.data.bundle"


class DataRangeError(SmacError):
    """A request for data outside what the bundle holds."""


def bundle_bytes(filename: str) -> bytes:
    """Raw bytes of one bundle file."""
    return (resources.files(BUNDLE_PACKAGE) / filename).read_bytes()


def provenance() -> dict[str, Any]:
    """The bundle's ``PROVENANCE.json``: per file its sha256, source wheel and cleaning report."""
    data: dict[str, Any] = json.loads(bundle_bytes("PROVENANCE.json"))
    return data


def verify_bundle() -> list[str]:
    """Check every shipped file against its sha256 in ``PROVENANCE.json``.

    Returns:
        One line per mismatching or missing file; empty when the bundle is intact.
    """
    problems = []
    for filename, entry in provenance()["files"].items():
        try:
            digest = hashlib.sha256(bundle_bytes(filename)).hexdigest()
        except FileNotFoundError:
            problems.append(f"{filename}: missing")
            continue
        if digest != entry["sha256"]:
            problems.append(f"{filename}: sha256 {digest} differs from the provenance's {entry['sha256']}")
    return problems


@cache
def _prices_table() -> pd.DataFrame:
    with resources.as_file(resources.files(BUNDLE_PACKAGE) / "nl_day_ahead_prices.csv.gz") as path:
        table = pd.read_csv(path, compression="gzip")
    table["hour_start_utc"] = pd.to_datetime(table["hour_start_utc"], utc=True)
    return table.set_index("hour_start_utc")


def day_ahead_prices_hourly(start_utc: dt.datetime, end_utc: dt.datetime) -> pd.DataFrame:
    """Dutch day-ahead prices, one row per hour starting in ``[start_utc, end_utc)``.

    Args:
        start_utc: First instant wanted, timezone-aware.
        end_utc: End of the range (exclusive), timezone-aware.

    Returns:
        Columns ``price_eur_per_kwh`` and ``is_filled`` (1 for the two hours filled by the
        cleaning rule), indexed by ``hour_start_utc``.

    Raises:
        DataRangeError: When the range is empty, naive or outside 2015-01-01 to 2024-12-31 (UTC).
    """
    table = _prices_table()
    first, last = table.index[0], table.index[-1] + pd.Timedelta(hours=1)
    if start_utc.tzinfo is None or end_utc.tzinfo is None:
        raise DataRangeError("start_utc/end_utc: got a naive datetime; expected timezone-aware instants")
    start, end = pd.Timestamp(start_utc).floor("h"), pd.Timestamp(end_utc)
    if not (first <= start and end <= last and start < end):
        raise DataRangeError(
            f"prices: got {start_utc.isoformat()} to {end_utc.isoformat()}; "
            f"expected a non-empty range within {first.isoformat()} to {last.isoformat()} "
            "(Dutch day-ahead prices in the bundle)"
        )
    return table.loc[(table.index >= start) & (table.index < end)]


def day_ahead_prices_on_grid(grid: TimeGridSpec) -> FloatArray:
    """Dutch day-ahead prices on a scenario's time grid [EUR/kWh], ``(n_steps,)``.

    Each step takes the mean of the hourly prices over its interval, weighted by overlap (a
    15-minute step holds its hour's price; a 2-hour step averages two hours).

    Raises:
        DataRangeError: When the grid reaches outside the bundled years.
    """
    start = pd.Timestamp(grid.start_utc).tz_convert("UTC")
    end = pd.Timestamp(grid.end_utc).tz_convert("UTC")
    hourly = day_ahead_prices_hourly(start.to_pydatetime(), end.to_pydatetime())["price_eur_per_kwh"]
    return average_onto_grid(hourly, grid)


def average_onto_grid(values: pd.Series, grid: TimeGridSpec) -> FloatArray:
    """Put a step-wise series onto a grid: each grid step takes the overlap-weighted mean.

    Each value holds from its index time until the next one (the last until the grid's end), so a
    grid step inside one interval takes its value and a longer grid step averages the intervals it
    covers, minute by minute.

    Args:
        values: Values indexed by UTC start times, sorted, covering the grid's start.
        grid: The time grid.

    Returns:
        One value per grid step, ``(n_steps,)``.
    """
    start = pd.Timestamp(grid.start_utc).tz_convert("UTC")
    minutes = pd.date_range(start, pd.Timestamp(grid.end_utc).tz_convert("UTC"), freq="min", inclusive="left")
    positions = pd.DatetimeIndex(values.index).searchsorted(minutes, side="right") - 1
    per_minute = values.to_numpy(dtype=float)[positions]
    return np.asarray(per_minute.reshape(grid.n_steps, grid.step_min).mean(axis=1), dtype=np.float64)


def caltech_sessions(period: str | None = None) -> pd.DataFrame:
    """Caltech ACN sessions (cleaned), optionally of one period of :data:`CALTECH_PERIODS`.

    Raises:
        DataRangeError: For an unknown period.
    """
    if period is not None and period not in CALTECH_PERIODS:
        raise DataRangeError(f"period: got {period!r}; expected one of {', '.join(CALTECH_PERIODS)}")
    table = _caltech_table()
    return table if period is None else table[table["period"] == period].reset_index(drop=True)


@cache
def _caltech_table() -> pd.DataFrame:
    with resources.as_file(resources.files(BUNDLE_PACKAGE) / "caltech_sessions.csv.gz") as path:
        table = pd.read_csv(path, compression="gzip", dtype={"session_id": str, "station_id": str})
    for column in ("arrival_utc", "departure_utc", "estimated_departure_utc"):
        table[column] = pd.to_datetime(table[column], utc=True)
    return table


ELAAD_TABLES = (
    "arrivals_weekday",
    "arrivals_weekend",
    "connection_time",
    "energy_demand",
    "mean_energy_by_arrival",
    "mean_connection_time_by_arrival",
)


def elaad_table(name: str) -> pd.DataFrame:
    """One cleaned ElaadNL distribution (columns documented in DATA_SOURCES.md).

    Args:
        name: One of :data:`ELAAD_TABLES`.

    Raises:
        DataRangeError: For an unknown name.
    """
    if name not in ELAAD_TABLES:
        raise DataRangeError(f"table: got {name!r}; expected one of {', '.join(ELAAD_TABLES)}")
    with resources.as_file(resources.files(BUNDLE_PACKAGE) / f"elaad_{name}.csv") as path:
        return pd.read_csv(path)


AVERAGE_DC_WINDOW_SOC_FRAC = (0.1, 0.8)
"""SoC window over which an EV spec's average DC charging power is quoted (the usual 10-80 %)."""


def _dc_window_hours_per_kwh(taper_start_soc_frac: float) -> float:
    """Hours per kWh of capacity to charge across :data:`AVERAGE_DC_WINDOW_SOC_FRAC` at 1 kW maximum.

    With the core's CC-CV rule (full power up to ``s0``, then ``P (1 - s) / (1 - s0)``), charging
    from ``a`` to ``b`` takes ``C / P`` times ``max(s0 - a, 0) + (1 - s0) ln((1 - max(a, s0)) / (1 - b))``
    when ``s0 < b``, and ``C / P (b - a)`` otherwise.
    """
    low, high = AVERAGE_DC_WINDOW_SOC_FRAC
    s0 = taper_start_soc_frac
    if s0 >= high:
        return high - low
    return max(s0 - low, 0.0) + (1.0 - s0) * float(np.log((1.0 - max(low, s0)) / (1.0 - high)))


def dc_taper_start_soc_frac(max_dc_charge_kw: float, avg_dc_charge_kw: float) -> float | None:
    """The taper start that makes the core's CC-CV rule average ``avg`` over the 10-80 % window.

    Solves ``(b - a) / hours(s0) = avg / max`` for ``s0`` (:func:`_dc_window_hours_per_kwh`,
    decreasing in ``s0``, so the average power grows with the taper start) by bisection to 1e-6.
    Worked example: a Tesla Model 3 (170 kW maximum, 100 kW average, ratio 0.588) tapers from about
    0.21: ``(0.21 - 0.1) + 0.79 ln(0.79 / 0.2) = 1.195`` hours per kWh at 1 kW and ``0.7 / 1.195 = 0.586``.

    Args:
        max_dc_charge_kw: The EV's DC charging limit [kW].
        avg_dc_charge_kw: Its average DC charging power over the 10-80 % window [kW].

    Returns:
        The taper start [0..1] rounded to 0.001 (at least 0.001); None when the average is at or
        above the maximum (no taper within the window: the charging class default applies) or a
        power is not positive.
    """
    if max_dc_charge_kw <= 0.0 or avg_dc_charge_kw <= 0.0 or avg_dc_charge_kw >= max_dc_charge_kw:
        return None
    low, high = AVERAGE_DC_WINDOW_SOC_FRAC
    wanted_hours = (high - low) * max_dc_charge_kw / avg_dc_charge_kw
    lower, upper = 0.0, high
    if _dc_window_hours_per_kwh(lower) <= wanted_hours:
        return 0.001  # slower than tapering from empty: the earliest start
    while upper - lower > 1e-6:
        middle = 0.5 * (lower + upper)
        if _dc_window_hours_per_kwh(middle) > wanted_hours:
            lower = middle
        else:
            upper = middle
    return max(round(0.5 * (lower + upper), 3), 0.001)


@dataclass(frozen=True)
class EvModel:
    """One EV model of the bundled spec mix.

    Attributes:
        model: Model name.
        n_registrations: Registrations in the Netherlands (weight in the mix).
        battery_capacity_kwh: Usable battery capacity [kWh].
        max_ac_charge_kw: On-board charger limit [kW].
        max_dc_charge_kw: DC charging limit [kW].
        avg_dc_charge_kw: Average DC charging power [kW].
        max_ac_discharge_kw: AC discharge limit (0: no AC V2G) [kW].
        max_dc_discharge_kw: DC discharge limit (0: no DC V2G) [kW].
    """

    model: str
    n_registrations: int
    battery_capacity_kwh: float
    max_ac_charge_kw: float
    max_dc_charge_kw: float
    avg_dc_charge_kw: float
    max_ac_discharge_kw: float
    max_dc_discharge_kw: float

    @property
    def dc_taper_start_soc_frac(self) -> float | None:
        """The model's DC taper start from its maximum and average DC power (None: no taper seen).

        See :func:`dc_taper_start_soc_frac`.
        """
        return dc_taper_start_soc_frac(self.max_dc_charge_kw, self.avg_dc_charge_kw)


def ev_models(mix: str = "fleet") -> list[EvModel]:
    """EV models of a spec mix: ``"fleet"`` (13 models) or ``"v2g_2024"`` (8 V2G-capable models).

    Raises:
        DataRangeError: For an unknown mix.
    """
    data = json.loads(bundle_bytes("ev_specs.json"))
    if mix not in data:
        raise DataRangeError(f"mix: got {mix!r}; expected one of {', '.join(sorted(data))}")
    fields = EvModel.__dataclass_fields__
    return [EvModel(**{k: v for k, v in entry.items() if k in fields}) for entry in data[mix]]


def acn_tariffs() -> dict[str, Any]:
    """The acnportal tariff schedules converted to EUR (rate in the ``usd_to_eur`` key)."""
    data: dict[str, Any] = json.loads(bundle_bytes("acn_tariffs.json"))
    return data
