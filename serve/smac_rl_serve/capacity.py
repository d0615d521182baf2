"""Capacity signals: OSCP 2.0 capacity forecasts and OpenADR 3 events, mapped onto limit blocks.

Both shapes become :class:`CapacityBlock` rows (direction, start, end, limit in kW); a rollout reads
them as the scenario's ``import_limit_kw`` and ``export_limit_kw`` series (:func:`limit_series`).

* OSCP 2.0 ``UpdateGroupCapacityForecast``: ``{group_id, type, forecasted_blocks: [{capacity,
  phase, unit, start_time, end_time}]}``. ``type`` ``CONSUMPTION`` limits import, ``GENERATION``
  limits export; ``phase`` must be ``ALL`` (the site total) and ``unit`` ``KW`` or ``W``.
* OpenADR 3 event: ``{programID, intervalPeriod: {start, duration}, payloadDescriptors,
  intervals: [{id, intervalPeriod?, payloads: [{type, values: [limit]}]}]}`` with payload types
  ``IMPORT_CAPACITY_LIMIT`` and ``EXPORT_CAPACITY_LIMIT``. An interval without its own
  ``intervalPeriod`` follows the previous one with the event's duration (the first starts at the
  event's start). Units come from the payload descriptor of the type: ``KW`` (default) or ``W``.

Where signals overlap, the one received later wins over the span it covers; steps no signal covers
keep the static limits of ``site.grid``. The other fields of either standard object are accepted and
ignored; wire names stay as the standards spell them.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Discriminator, Field, Tag

from smac_rl.core.errors import render_value
from smac_rl.core.specs import TimeGridSpec
from smac_rl.core.timegrid import step_starts_utc
from smac_rl_serve.errors import ApiError, problem
from smac_rl_serve.timewindow import TimeWindow

Direction = Literal["import", "export"]
MAX_LIMIT_KW = 1e6
"""Largest limit accepted [kW] (the core's bound on any power series)."""


class _Foreign(BaseModel):
    """Base of the standards' objects: other fields ignored, no NaN."""

    model_config = ConfigDict(extra="ignore", frozen=True, allow_inf_nan=False)


class OscpForecastedBlock(_Foreign):
    """OSCP 2.0 ``ForecastedBlock`` (wire names of the standard)."""

    capacity: float = Field(ge=0, description="The limit, in `unit`.")
    phase: Literal["ONE", "TWO", "THREE", "ALL", "UNKNOWN"] = "ALL"
    unit: Literal["A", "W", "KW", "WH", "KWH"]
    start_time: AwareDatetime
    end_time: AwareDatetime


class OscpCapacityForecast(_Foreign):
    """OSCP 2.0 ``UpdateGroupCapacityForecast`` (wire names of the standard)."""

    group_id: str = Field(min_length=1, max_length=256)
    type: Literal["CONSUMPTION", "GENERATION", "FALLBACK_CONSUMPTION", "FALLBACK_GENERATION", "OPTIMUM"]
    forecasted_blocks: list[OscpForecastedBlock] = Field(min_length=1)


class OpenAdrIntervalPeriod(_Foreign):
    """OpenADR 3 ``intervalPeriod``: a start and an ISO 8601 duration in days, hours, minutes, seconds."""

    start: AwareDatetime
    duration: dt.timedelta | None = None


class OpenAdrValuesMap(_Foreign):
    """OpenADR 3 ``valuesMap``: a payload type and its values."""

    type: str = Field(min_length=1, max_length=128)
    values: list[float] = Field(min_length=1)


class OpenAdrInterval(_Foreign):
    """OpenADR 3 ``interval``."""

    id: int
    intervalPeriod: OpenAdrIntervalPeriod | None = None  # noqa: N815 (the standard's name)
    payloads: list[OpenAdrValuesMap] = Field(min_length=1)


class OpenAdrPayloadDescriptor(_Foreign):
    """OpenADR 3 ``eventPayloadDescriptor``."""

    payloadType: str  # noqa: N815 (the standard's name)
    units: str | None = None


class OpenAdrEvent(_Foreign):
    """OpenADR 3 ``event`` (wire names of the standard)."""

    programID: str = Field(min_length=1, max_length=256)  # noqa: N815 (the standard's name)
    eventName: str | None = None  # noqa: N815 (the standard's name)
    intervalPeriod: OpenAdrIntervalPeriod | None = None  # noqa: N815 (the standard's name)
    payloadDescriptors: list[OpenAdrPayloadDescriptor] = Field(default_factory=list)  # noqa: N815
    intervals: list[OpenAdrInterval] = Field(min_length=1)


def _shape(body: Any) -> str | None:
    if isinstance(body, dict):
        if "forecasted_blocks" in body:
            return "oscp"
        if "intervals" in body:
            return "openadr"
        return None
    return "oscp" if isinstance(body, OscpCapacityForecast) else "openadr"


CapacitySignal = Annotated[
    Annotated[OscpCapacityForecast, Tag("oscp")] | Annotated[OpenAdrEvent, Tag("openadr")],
    Discriminator(
        _shape,
        custom_error_type="capacity_shape",
        custom_error_message="an OSCP UpdateGroupCapacityForecast (with forecasted_blocks) or an "
        "OpenADR 3 event (with intervals)",
    ),
]
"""The body of ``POST /v1/sites/{site_id}/capacity``: either standard's object."""


@dataclass(frozen=True)
class CapacityBlock:
    """A limit on the site's grid exchange over a span.

    Attributes:
        direction: ``import`` or ``export``.
        start_utc: Start.
        end_utc: End, after the start.
        limit_kw: The limit [kW].
    """

    direction: Direction
    start_utc: dt.datetime
    end_utc: dt.datetime
    limit_kw: float


_KW_PER_UNIT = {"KW": 1.0, "W": 0.001}
_TOO_LARGE = f"at most {MAX_LIMIT_KW:g} kW"
_OSCP_DIRECTIONS: dict[str, Direction] = {"CONSUMPTION": "import", "GENERATION": "export"}
_OPENADR_DIRECTIONS: dict[str, Direction] = {
    "IMPORT_CAPACITY_LIMIT": "import",
    "EXPORT_CAPACITY_LIMIT": "export",
}


def signal_blocks(
    signal: OscpCapacityForecast | OpenAdrEvent, n_blocks_max: int, window: TimeWindow
) -> list[CapacityBlock]:
    """The limit blocks of a capacity signal.

    Args:
        signal: An OSCP capacity forecast or an OpenADR 3 event.
        n_blocks_max: Largest number of blocks or intervals accepted.
        window: The instants a block may start and end at.

    Returns:
        The blocks, in the signal's order.

    Raises:
        ApiError: A 422 naming each field the service cannot map (with the ``oscp.`` or ``openadr.``
            prefix of the body's shape).
    """
    if isinstance(signal, OscpCapacityForecast):
        blocks, problems = _oscp_blocks(signal, n_blocks_max, window)
    else:
        blocks, problems = _openadr_blocks(signal, n_blocks_max, window)
    if problems:
        raise ApiError(422, problems)
    return blocks


def _oscp_blocks(
    signal: OscpCapacityForecast, n_blocks_max: int, window: TimeWindow
) -> tuple[list[CapacityBlock], list[dict[str, str]]]:
    problems: list[dict[str, str]] = []
    direction = _OSCP_DIRECTIONS.get(signal.type)
    if direction is None:
        problems.append(
            problem("oscp.type", render_value(signal.type), "CONSUMPTION (import) or GENERATION (export)")
        )
    if len(signal.forecasted_blocks) > n_blocks_max:
        problems.append(
            problem(
                "oscp.forecasted_blocks", f"{len(signal.forecasted_blocks)} blocks", f"at most {n_blocks_max}"
            )
        )
    blocks: list[CapacityBlock] = []
    for i, block in enumerate(signal.forecasted_blocks):
        path = f"oscp.forecasted_blocks[{i}]"
        if block.phase != "ALL":
            problems.append(problem(f"{path}.phase", render_value(block.phase), "ALL (the site's total)"))
        if block.unit not in _KW_PER_UNIT:
            problems.append(problem(f"{path}.unit", render_value(block.unit), "KW or W (a power limit)"))
        if block.end_time <= block.start_time:
            problems.append(
                problem(
                    f"{path}.end_time", block.end_time.isoformat(), f"after start_time {block.start_time}"
                )
            )
        for name, instant in (("start_time", block.start_time), ("end_time", block.end_time)):
            outside = window.problem(f"{path}.{name}", instant)
            if outside is not None:
                problems.append(outside)
        limit_kw = block.capacity * _KW_PER_UNIT.get(block.unit, 1.0)
        if limit_kw > MAX_LIMIT_KW:
            problems.append(problem(f"{path}.capacity", render_value(block.capacity), _TOO_LARGE))
        if direction is not None and block.unit in _KW_PER_UNIT and block.end_time > block.start_time:
            blocks.append(CapacityBlock(direction, block.start_time, block.end_time, limit_kw))
    return blocks, problems


def _openadr_blocks(
    signal: OpenAdrEvent, n_blocks_max: int, window: TimeWindow
) -> tuple[list[CapacityBlock], list[dict[str, str]]]:
    problems: list[dict[str, str]] = []
    units = {d.payloadType: (d.units or "KW").upper() for d in signal.payloadDescriptors}
    for i, descriptor in enumerate(signal.payloadDescriptors):
        unit = (descriptor.units or "KW").upper()
        if descriptor.payloadType in _OPENADR_DIRECTIONS and unit not in _KW_PER_UNIT:
            problems.append(
                problem(f"openadr.payloadDescriptors[{i}].units", render_value(descriptor.units), "KW or W")
            )
    if len(signal.intervals) > n_blocks_max:
        problems.append(
            problem("openadr.intervals", f"{len(signal.intervals)} intervals", f"at most {n_blocks_max}")
        )
    default = signal.intervalPeriod
    blocks: list[CapacityBlock] = []
    previous_end: dt.datetime | None = None
    for i, interval in enumerate(signal.intervals):
        path = f"openadr.intervals[{i}]"
        period = interval.intervalPeriod
        start = period.start if period is not None else previous_end or (default.start if default else None)
        duration = (period.duration if period is not None else None) or (
            default.duration if default else None
        )
        if start is None or duration is None or duration <= dt.timedelta(0):
            problems.append(
                problem(
                    f"{path}.intervalPeriod",
                    "nothing" if period is None else render_value(period.model_dump(mode="json")),
                    "a start and a positive duration (PT15M, PT1H, P1D), here or in the event's "
                    "intervalPeriod",
                )
            )
            previous_end = None
            continue
        outside = [
            p
            for p in (
                window.problem(f"{path}.intervalPeriod.start", start),
                window.span_problem(f"{path}.intervalPeriod.duration", duration),
            )
            if p is not None
        ]
        if outside:
            problems.extend(outside)
            previous_end = None
            continue
        previous_end = start + duration
        for j, payload in enumerate(interval.payloads):
            direction = _OPENADR_DIRECTIONS.get(payload.type)
            if direction is None:
                problems.append(
                    problem(
                        f"{path}.payloads[{j}].type",
                        render_value(payload.type),
                        "IMPORT_CAPACITY_LIMIT or EXPORT_CAPACITY_LIMIT (send other payloads elsewhere)",
                    )
                )
                continue
            value = payload.values[0]
            limit_kw = value * _KW_PER_UNIT.get(units.get(payload.type, "KW"), 1.0)
            if not 0 <= limit_kw <= MAX_LIMIT_KW:
                problems.append(
                    problem(
                        f"{path}.payloads[{j}].values[0]", render_value(value), f"a limit >= 0, {_TOO_LARGE}"
                    )
                )
                continue
            blocks.append(CapacityBlock(direction, start, start + duration, limit_kw))
    return blocks, problems


def limit_series(
    blocks: list[tuple[CapacityBlock, int]], direction: Direction, grid: TimeGridSpec, static_limit_kw: float
) -> list[float] | None:
    """The limit of each step of a grid from stored blocks, or None when no block touches the grid.

    A step takes the blocks overlapping it from the latest signal among them (the highest
    version), and the lowest of their limits; steps no block overlaps keep ``static_limit_kw``.

    Args:
        blocks: Stored blocks with the site version of the signal that brought each.
        direction: ``import`` or ``export``.
        grid: The rollout's time grid.
        static_limit_kw: The site's static limit in that direction [kW].

    Returns:
        One limit per step [kW], or None.
    """
    relevant = [(b, v) for b, v in blocks if b.direction == direction]
    step = dt.timedelta(minutes=grid.step_min)
    values: list[float] = []
    touched = False
    for start in step_starts_utc(grid):
        overlapping = [(b, v) for b, v in relevant if b.start_utc < start + step and b.end_utc > start]
        if not overlapping:
            values.append(static_limit_kw)
            continue
        touched = True
        latest = max(v for _, v in overlapping)
        values.append(min(b.limit_kw for b, v in overlapping if v == latest))
    return values if touched else None
