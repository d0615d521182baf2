"""The time grid: mapping instants to steps and resolving series onto the grid."""

from __future__ import annotations

import datetime as dt
import math
from zoneinfo import ZoneInfo

import numpy as np

from smac_rl.core.arraytypes import FloatArray
from smac_rl.core.specs.scenario import HeldSeries, SeriesValue, TimeGridSpec
from smac_rl.core.specs.site import TimeOfUsePeriod


def step_offset(grid: TimeGridSpec, instant_utc: dt.datetime) -> float:
    """Position of an instant on the grid, in steps from the start (fractional, may be negative).

    Args:
        grid: The time grid.
        instant_utc: A timezone-aware instant.

    Returns:
        ``(instant_utc - start_utc) / step`` [steps].
    """
    return (instant_utc - grid.start_utc).total_seconds() / (grid.step_min * 60.0)


def first_full_step(grid: TimeGridSpec, arrival_utc: dt.datetime) -> int:
    """First step whose whole interval lies after the arrival (``ceil``), not below 0."""
    return max(0, math.ceil(step_offset(grid, arrival_utc) - 1e-9))


def end_step(grid: TimeGridSpec, departure_utc: dt.datetime) -> int:
    """Step at which a departing EV is gone (``floor``): the last step it charges is one before.

    The result may exceed ``n_steps`` for EVs that leave after the horizon.
    """
    return math.floor(step_offset(grid, departure_utc) + 1e-9)


def step_starts_utc(grid: TimeGridSpec) -> list[dt.datetime]:
    """Start instant of every step, in UTC."""
    start = grid.start_utc.astimezone(dt.UTC)
    return [start + dt.timedelta(minutes=grid.step_min * k) for k in range(grid.n_steps)]


def series_shape_problem(value: SeriesValue, grid: TimeGridSpec) -> str | None:
    """Say why a series does not fit the grid, or None when it fits.

    Args:
        value: A constant, a list of one value per step, or a held series.
        grid: The time grid.

    Returns:
        The expectation the series fails, or None.
    """
    if isinstance(value, list) and len(value) != grid.n_steps:
        return f"one value per time-grid step ({grid.n_steps} values), not {len(value)}"
    if isinstance(value, HeldSeries):
        if value.step_min % grid.step_min != 0:
            return f"step_min a multiple of the grid's step_min {grid.step_min}, not {value.step_min}"
        if len(value.values) * value.step_min != grid.n_steps * grid.step_min:
            needed = grid.n_steps * grid.step_min / value.step_min
            return f"{needed:g} values of {value.step_min} min to cover the grid, not {len(value.values)}"
    return None


def resolve_series(value: SeriesValue, grid: TimeGridSpec) -> FloatArray:
    """Resolve a series onto the grid (shape-checked specs only).

    Args:
        value: A constant, a list of one value per step, or a held series.
        grid: The time grid.

    Returns:
        Array of shape ``(n_steps,)``.
    """
    if isinstance(value, HeldSeries):
        repeat = value.step_min // grid.step_min
        return np.repeat(np.asarray(value.values, dtype=np.float64), repeat)
    if isinstance(value, list):
        return np.asarray(value, dtype=np.float64)
    return np.full(grid.n_steps, float(value), dtype=np.float64)


def series_values(value: SeriesValue) -> list[float]:
    """Every number a series holds (one for a constant)."""
    if isinstance(value, HeldSeries):
        return list(value.values)
    if isinstance(value, list):
        return list(value)
    return [float(value)]


def resolve_time_of_use(periods: list[TimeOfUsePeriod], grid: TimeGridSpec, timezone: str) -> FloatArray:
    """Price of each step from time-of-use blocks in local time (daylight saving handled).

    Each step takes the block with the latest ``start_local`` at or before the step's local start
    time; before the earliest block of the day, the last block of the previous day holds.

    Args:
        periods: Time-of-use blocks.
        grid: The time grid.
        timezone: IANA time zone of the site.

    Returns:
        Import price per step [EUR/kWh], shape ``(n_steps,)``.
    """
    tz = ZoneInfo(timezone)
    ordered = sorted(periods, key=lambda p: p.start_local)
    starts = [p.start_local for p in ordered]
    prices = np.empty(grid.n_steps, dtype=np.float64)
    for k, instant in enumerate(step_starts_utc(grid)):
        local = instant.astimezone(tz).time()
        index = max((i for i, s in enumerate(starts) if s <= local), default=len(ordered) - 1)
        prices[k] = ordered[index].import_price_eur_per_kwh
    return prices
