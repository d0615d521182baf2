"""Charging profiles per session from a rollout, and their renderings for INCAR.

A profile is the rollout's setpoints at the session's connector, from the first step to its
departure or the horizon's end, with consecutive equal periods merged. Each wire format has one
pure renderer here; all of them share :func:`rated_periods`, which converts the periods to the
requested unit and rounds every limit toward zero (whole W, or 0.1 A per phase), so that their
sum never exceeds what the projection allowed, then merges periods whose rendered limits are equal.

Rounding toward zero lowers every charging limit, but it also lowers every discharge, which raises
the site's import: with V2G, a plan at its import limit could be rendered above it by up to one
quantum (1 W, or 0.1 A per phase) per discharging session. A rollout whose profiles will be rounded
and may discharge is therefore planned against the import limit less :func:`rounding_margin_kw`
(:func:`with_import_margin`): the rendered limits then stay within the true limit.

Formats (:data:`ProfileFormat`):

* ``ocpp16``: OCPP 1.6 ``SetChargingProfile.req`` (``connectorId`` = the EVSE id: a 1.6 connector
  is an independently controlled outlet, what OCPP 2.x calls an EVSE; integer ``transactionId``).
* ``ocpp201``: OCPP 2.0.1 ``SetChargingProfileRequest``.
* ``ocpp21``: OCPP 2.1 ``SetChargingProfileRequest``; a discharging period carries
  ``operationMode: CentralSetpoint`` with a negative ``setpoint`` and ``dischargeLimit``.
* ``ocpi22``: OCPI 2.2 ``ChargingProfile`` object (charge only: OCPI has no discharge).
* ``json``: the periods in kW, V2G included.

Every OCPP profile is an absolute ``TxProfile`` at stack level 0 without ``duration``: the last
period holds until the next profile, so the site stays protected if a re-request is late. In A,
limits are per phase (``chargingRateUnit`` A of OCPP and OCPI): current = power / (phases x
phase-to-neutral voltage); DC connectors have no current in A the request could give (it depends on
the battery voltage), so A is refused for them.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import math
import re
from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Any, Literal, TypeVar

import numpy as np

from smac_rl.core.arrays import ScenarioArrays
from smac_rl.core.errors import FieldProblem, render_value
from smac_rl.core.simulate import Trace
from smac_rl.core.specs import ScenarioSpec

ProfileFormat = Literal["ocpp16", "ocpp201", "ocpp21", "ocpi22", "json"]
"""The wire formats a profile request may ask for (see the module docstring)."""

RateUnit = Literal["W", "A"]
"""Unit of rendered limits: total power in W, or current per phase in A."""

OCPP2_TRANSACTION_ID_MAX_CHARS = 36
"""Longest ``transactionId`` OCPP 2.0.1 and 2.1 accept [characters]."""

_INTEGER = re.compile(r"-?[0-9]+")
_T = TypeVar("_T")


@dataclass(frozen=True)
class ProfilePeriod:
    """One constant-power period.

    Attributes:
        start_offset_s: Start, seconds after the profile's start [s].
        power_kw: Setpoint (sign convention of :mod:`smac_rl.core.units`) [kW].
    """

    start_offset_s: int
    power_kw: float


@dataclass(frozen=True)
class SessionProfile:
    """The planned power of one session.

    Attributes:
        session_id: Session.
        transaction_id: OCPP transaction id, if known.
        station_id: OCPP charging station.
        evse_id: OCPP EVSE.
        connector_id: OCPP connector.
        start_utc: Start of the first period.
        duration_s: Length of the profile [s].
        periods: Periods, merged where consecutive powers are equal.
        n_phases: AC phases of the charger (OCPP ``numberPhases``); None for DC.
        phase_a_per_kw: AC current per phase per kW at the connector [A/kW]; None for DC.
    """

    session_id: str
    transaction_id: str | None
    station_id: str
    evse_id: int
    connector_id: int
    start_utc: dt.datetime
    duration_s: int
    periods: tuple[ProfilePeriod, ...]
    n_phases: int | None = None
    phase_a_per_kw: float | None = None


def _merge_equal(periods: Iterable[tuple[int, _T]]) -> list[tuple[int, _T]]:
    """``(start, value)`` pairs with each run of equal consecutive values kept as its first pair."""
    merged: list[tuple[int, _T]] = []
    for start, value in periods:
        if not merged or merged[-1][1] != value:
            merged.append((start, value))
    return merged


def session_profiles(
    arrays: ScenarioArrays,
    trace: Trace,
    outlets: list[tuple[str, int, int, str | None]],
) -> list[SessionProfile]:
    """Profiles of the sessions plugged in during the rollout.

    Args:
        arrays: The compiled scenario (its connectors' phase currents give ``numberPhases`` and A).
        trace: Its rollout.
        outlets: ``(station_id, evse_id, connector_id, transaction_id)`` per session, in session order.

    Returns:
        One profile per session with at least one step in the horizon.
    """
    sessions, step_s = arrays.sessions, round(arrays.step_h * 3600)
    profiles = []
    for s, session_id in enumerate(sessions.session_ids):
        first, end = int(sessions.first_step[s]), min(int(sessions.end_step[s]), arrays.n_steps)
        if end <= first:
            continue
        c = int(sessions.connector_index[s])
        column = trace.ev_power_kw[first:end, c]
        phase_row = arrays.site.connector_phase_a_per_kw[c]
        n_phases = int(np.count_nonzero(phase_row))
        station, evse, connector, transaction = outlets[s]
        profiles.append(
            SessionProfile(
                session_id=session_id,
                transaction_id=transaction,
                station_id=station,
                evse_id=evse,
                connector_id=connector,
                start_utc=arrays.start_utc + dt.timedelta(seconds=first * step_s),
                duration_s=(end - first) * step_s,
                periods=tuple(
                    ProfilePeriod(start, power)
                    for start, power in _merge_equal((k * step_s, float(p)) for k, p in enumerate(column))
                ),
                n_phases=n_phases or None,
                phase_a_per_kw=float(phase_row.max()) if n_phases else None,
            )
        )
    return profiles


def stable_profile_id(profile: SessionProfile) -> int:
    """A profile id that stays the same for a session across requests (station, EVSE, transaction).

    OCPP replaces a profile with the same id, so ids must not shift when other sessions come or go.
    """
    key = f"{profile.station_id}|{profile.evse_id}|{profile.transaction_id or profile.session_id}"
    return 1 + int(hashlib.sha256(key.encode()).hexdigest()[:8], 16) % 1_000_000_000


def _truncate(value: float) -> int:
    """``value`` rounded toward zero, forgiving float noise of 1e-6 below a whole number."""
    return math.trunc(value + (1e-6 if value > 0 else -1e-6 if value < 0 else 0.0))


def watts_toward_zero(power_kw: float) -> int:
    """A setpoint in whole watts, rounded toward zero [W]."""
    return _truncate(power_kw * 1000.0)


def amps_toward_zero(power_kw: float, phase_a_per_kw: float) -> float:
    """An AC setpoint as current per phase in steps of 0.1 A, rounded toward zero [A].

    Args:
        power_kw: Setpoint at the connector [kW].
        phase_a_per_kw: Current per phase per kW, 1000 / (phases x phase-to-neutral voltage) [A/kW].

    Returns:
        The current per phase, a multiple of 0.1 A no larger in magnitude than the setpoint's [A].
    """
    return _truncate(power_kw * phase_a_per_kw * 10.0) / 10.0


def rounding_margin_kw(arrays: ScenarioArrays, rate_unit: RateUnit) -> float:
    """Import headroom that absorbs rounding every discharge toward zero (module docstring) [kW].

    One rounding quantum per session that may discharge: 1 W, or in A 0.1 A on each of its
    connector's phases.

    Args:
        arrays: The compiled scenario.
        rate_unit: The unit the profiles will be rendered in.

    Returns:
        The margin; 0 when no session may discharge.
    """
    sessions = arrays.sessions
    may_discharge = sessions.max_discharge_kw > 0.0
    if not np.any(may_discharge):
        return 0.0
    if rate_unit == "W":
        return 1e-3 * int(np.count_nonzero(may_discharge))
    # 0.1 A per phase is 0.1 / a_per_kw [kW] at a connector drawing a_per_kw A per phase per kW
    a_per_kw = arrays.site.connector_phase_a_per_kw.max(axis=1)[sessions.connector_index[may_discharge]]
    return float(np.sum(0.1 / a_per_kw[a_per_kw > 0.0]))


def with_import_margin(arrays: ScenarioArrays, margin_kw: float) -> ScenarioArrays:
    """The scenario with its import limit lowered by ``margin_kw`` at every step (itself for 0).

    Args:
        arrays: The compiled scenario.
        margin_kw: Headroom to keep [kW], from :func:`rounding_margin_kw`.

    Returns:
        A scenario to plan with; score the plan on the original one.
    """
    if margin_kw <= 0.0:
        return arrays
    series = replace(arrays.series, import_limit_kw=arrays.series.import_limit_kw - margin_kw)
    return replace(arrays, series=series)


def rated_periods(profile: SessionProfile, rate_unit: RateUnit) -> list[tuple[int, float]]:
    """The profile's periods in the wire unit, rounded toward zero, equal neighbours merged.

    Args:
        profile: A session profile.
        rate_unit: ``W`` (total power, whole watts) or ``A`` (current per phase, 0.1 A steps; AC only).

    Returns:
        ``(start_offset_s, limit)`` per period: start [s] and limit [W as int, or A]; negative
        limits discharge.

    Raises:
        ValueError: When A is asked for a DC profile.
    """
    a_per_kw = profile.phase_a_per_kw
    if rate_unit == "W":
        return _merge_equal((p.start_offset_s, watts_toward_zero(p.power_kw)) for p in profile.periods)
    if a_per_kw is None:
        raise ValueError(
            f"sessions: {profile.session_id!r} is at DC station {profile.station_id!r}; "
            "a DC current cannot be given in A (it depends on the battery voltage): ask for W"
        )
    return _merge_equal((p.start_offset_s, amps_toward_zero(p.power_kw, a_per_kw)) for p in profile.periods)


def _utc_text(instant: dt.datetime) -> str:
    """An aware datetime as RFC 3339 UTC text with a ``Z`` suffix."""
    return instant.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


def _charge_only(profile: SessionProfile, format_name: str) -> None:
    """Refuse a profile that discharges, for a format whose limits cannot be negative.

    Raises:
        ValueError: When a period discharges.
    """
    if any(p.power_kw < 0 for p in profile.periods):
        raise ValueError(f"sessions: {profile.session_id!r} discharges; {format_name} has no discharge")


def _transaction_id(profile: SessionProfile) -> str:
    """The transaction id a TxProfile needs.

    Raises:
        ValueError: When the profile has none.
    """
    if profile.transaction_id is None:
        raise ValueError(f"sessions: {profile.session_id!r} has no transaction_id; a TxProfile needs one")
    return profile.transaction_id


def _ocpp_period(profile: SessionProfile, start_s: int, limit: float) -> dict[str, Any]:
    """An OCPP ``ChargingSchedulePeriod`` with ``numberPhases`` on AC (absent on DC)."""
    period: dict[str, Any] = {"startPeriod": start_s, "limit": limit}
    if profile.n_phases is not None:
        period["numberPhases"] = profile.n_phases
    return period


def ocpp16_set_charging_profile(
    profile: SessionProfile, profile_id: int, rate_unit: RateUnit = "W"
) -> dict[str, Any]:
    """An OCPP 1.6 ``SetChargingProfile.req`` payload (TxProfile, absolute).

    ``connectorId`` is the session's EVSE id (a 1.6 connector is an independently controlled
    outlet, an EVSE in OCPP 2.x). OCPP 1.6 cannot express discharge: roll out without V2G.

    Args:
        profile: A session profile whose transaction id is an integer.
        profile_id: ``chargingProfileId``.
        rate_unit: ``W`` or ``A`` (AC only).

    Returns:
        The payload, as JSON-ready dicts.

    Raises:
        ValueError: When the profile discharges, its transaction id is missing or not an integer,
            or A is asked for a DC profile.
    """
    transaction = _transaction_id(profile)
    if not _INTEGER.fullmatch(transaction):
        raise ValueError(
            f"sessions: {profile.session_id!r} has transaction_id {transaction!r}; OCPP 1.6 needs an integer"
        )
    _charge_only(profile, "OCPP 1.6")
    return {
        "connectorId": profile.evse_id,
        "csChargingProfiles": {
            "chargingProfileId": profile_id,
            "transactionId": int(transaction),
            "stackLevel": 0,
            "chargingProfilePurpose": "TxProfile",
            "chargingProfileKind": "Absolute",
            "chargingSchedule": {
                "startSchedule": _utc_text(profile.start_utc),
                "chargingRateUnit": rate_unit,
                "chargingSchedulePeriod": [
                    _ocpp_period(profile, start, limit) for start, limit in rated_periods(profile, rate_unit)
                ],
            },
        },
    }


def _ocpp2_request(
    profile: SessionProfile, profile_id: int, rate_unit: RateUnit, periods: list[dict[str, Any]]
) -> dict[str, Any]:
    """The ``SetChargingProfileRequest`` frame OCPP 2.0.1 and 2.1 share around the periods."""
    transaction = _transaction_id(profile)
    if len(transaction) > OCPP2_TRANSACTION_ID_MAX_CHARS:
        raise ValueError(
            f"sessions: {profile.session_id!r} has a transaction_id longer than "
            f"{OCPP2_TRANSACTION_ID_MAX_CHARS} characters, more than OCPP 2.x accepts"
        )
    schedule = {
        "id": profile_id,
        "startSchedule": _utc_text(profile.start_utc),
        "chargingRateUnit": rate_unit,
        "chargingSchedulePeriod": periods,
    }
    return {
        "evseId": profile.evse_id,
        "chargingProfile": {
            "id": profile_id,
            "stackLevel": 0,
            "chargingProfilePurpose": "TxProfile",
            "chargingProfileKind": "Absolute",
            "transactionId": transaction,
            "chargingSchedule": [schedule],
        },
    }


def ocpp201_set_charging_profile(
    profile: SessionProfile, profile_id: int, rate_unit: RateUnit = "W"
) -> dict[str, Any]:
    """An OCPP 2.0.1 ``SetChargingProfileRequest`` payload (TxProfile, absolute).

    OCPP 2.0.1 cannot express discharge: roll out with V2G disabled before rendering in this format.

    Args:
        profile: A session profile with a transaction id.
        profile_id: Profile and schedule id.
        rate_unit: ``W`` or ``A`` (AC only).

    Returns:
        The payload, as JSON-ready dicts.

    Raises:
        ValueError: When the profile discharges or has no transaction id (TxProfile needs one), or
            A is asked for a DC profile.
    """
    _charge_only(profile, "OCPP 2.0.1")
    periods = [_ocpp_period(profile, start, limit) for start, limit in rated_periods(profile, rate_unit)]
    return _ocpp2_request(profile, profile_id, rate_unit, periods)


def ocpp21_set_charging_profile(
    profile: SessionProfile, profile_id: int, rate_unit: RateUnit = "W"
) -> dict[str, Any]:
    """An OCPP 2.1 ``SetChargingProfileRequest`` payload (TxProfile, absolute), V2G included.

    A charging or idle period is a plain ``limit`` (operation mode absent: ``ChargingOnly``). A
    discharging period has ``operationMode`` ``CentralSetpoint`` (this service is the central
    system's planner), ``setpoint`` and ``dischargeLimit`` both the planned discharge (negative),
    and ``limit`` 0, so the station never discharges more than planned nor charges in it.

    Args:
        profile: A session profile with a transaction id.
        profile_id: Profile and schedule id.
        rate_unit: ``W`` or ``A`` (AC only; setpoints then per phase too).

    Returns:
        The payload, as JSON-ready dicts.

    Raises:
        ValueError: When the profile has no transaction id or A is asked for a DC profile.
    """
    periods = []
    for start, limit in rated_periods(profile, rate_unit):
        if limit < 0:
            period = _ocpp_period(profile, start, 0)
            period.update(operationMode="CentralSetpoint", setpoint=limit, dischargeLimit=limit)
        else:
            period = _ocpp_period(profile, start, limit)
        periods.append(period)
    return _ocpp2_request(profile, profile_id, rate_unit, periods)


def ocpi22_charging_profile(profile: SessionProfile, rate_unit: RateUnit = "W") -> dict[str, Any]:
    """An OCPI 2.2 ``ChargingProfile`` object (the ``charging_profile`` of ``SetChargingProfile``).

    OCPI 2.2 has no discharge. ``duration`` and ``min_charging_rate`` are left out (the last
    period holds until the next profile; the EV's minimum rate is the CPO's to add).

    Args:
        profile: A session profile.
        rate_unit: ``W`` or ``A`` (AC only).

    Returns:
        The object, as JSON-ready dicts.

    Raises:
        ValueError: When the profile discharges or A is asked for a DC profile.
    """
    _charge_only(profile, "OCPI 2.2")
    return {
        "start_date_time": _utc_text(profile.start_utc),
        "charging_rate_unit": rate_unit,
        "charging_profile_period": [
            {"start_period": start, "limit": limit} for start, limit in rated_periods(profile, rate_unit)
        ],
    }


def json_profile(profile: SessionProfile) -> dict[str, Any]:
    """The plain JSON rendering: the start (ISO 8601, ``+00:00``) and the periods in kW, V2G negative."""
    return {
        "start_utc": profile.start_utc.astimezone(dt.UTC).isoformat(),
        "periods": [{"start_offset_s": p.start_offset_s, "power_kw": p.power_kw} for p in profile.periods],
    }


def format_problems(
    spec: ScenarioSpec, profile_format: ProfileFormat, rate_unit: RateUnit
) -> list[FieldProblem]:
    """What a profile request cannot get in its format and unit, before any rollout.

    Paths are relative to the request body ``{scenario, format, rate_unit}``. Sessions at unknown
    stations are left to the scenario checks.

    Args:
        spec: The request's scenario.
        profile_format: The requested format.
        rate_unit: The requested unit.

    Returns:
        One problem per offending field and session; empty when the request can be answered.
    """
    chargers = {c.station_id: c for c in spec.site.chargers}
    problems: list[FieldProblem] = []
    if rate_unit == "A" and profile_format == "json":
        problems.append(FieldProblem("rate_unit", "'A'", "W: the json format answers in kW (power_kw)"))
    for i, session in enumerate(spec.sessions):
        path, charger = f"scenario.sessions[{i}]", chargers.get(session.station_id)
        transaction = session.transaction_id
        if profile_format.startswith("ocpp"):
            if transaction is None:
                problems.append(
                    FieldProblem(
                        f"{path}.transaction_id", "nothing", "a transaction id (OCPP TxProfile needs it)"
                    )
                )
            elif profile_format == "ocpp16" and not _INTEGER.fullmatch(transaction):
                problems.append(
                    FieldProblem(
                        f"{path}.transaction_id",
                        render_value(transaction),
                        "an integer (OCPP 1.6 transactionId is an integer)",
                    )
                )
            elif profile_format != "ocpp16" and len(transaction) > OCPP2_TRANSACTION_ID_MAX_CHARS:
                problems.append(
                    FieldProblem(
                        f"{path}.transaction_id",
                        render_value(transaction),
                        f"at most {OCPP2_TRANSACTION_ID_MAX_CHARS} characters (OCPP 2.x transactionId)",
                    )
                )
        if charger is None:
            continue
        if profile_format == "ocpi22" and session.allow_v2g and charger.is_bidirectional:
            problems.append(
                FieldProblem(
                    f"{path}.allow_v2g",
                    "True",
                    f"false for format ocpi22: session {session.session_id!r} may discharge (V2G) at "
                    f"bidirectional station {charger.station_id!r}, and OCPI 2.2 has no discharge; "
                    "ask for ocpp21 or json to use V2G",
                )
            )
        if rate_unit == "A" and charger.kind == "dc":
            problems.append(
                FieldProblem(
                    "rate_unit",
                    "'A'",
                    f"W: session {session.session_id!r} is at DC station {charger.station_id!r}, whose "
                    "current depends on the battery voltage, which the request does not give",
                )
            )
    return problems
