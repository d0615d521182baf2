"""Charging profiles per session from a rollout, and their OCPP 2.0.1 rendering.

A profile is the rollout's setpoints at the session's connector, from the first step to its
departure or the horizon's end, with consecutive equal periods merged. OCPP limits are in W,
rounded toward zero so that their sum never exceeds what the projection allowed.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import math
from dataclasses import dataclass
from typing import Any

from smac_rl.core.arrays import ScenarioArrays
from smac_rl.core.simulate import Trace


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


def session_profiles(
    arrays: ScenarioArrays,
    trace: Trace,
    outlets: list[tuple[str, int, int, str | None]],
    phases_by_station: dict[str, int | None] | None = None,
) -> list[SessionProfile]:
    """Profiles of the sessions plugged in during the rollout.

    Args:
        arrays: The compiled scenario.
        trace: Its rollout.
        outlets: ``(station_id, evse_id, connector_id, transaction_id)`` per session, in session order.
        phases_by_station: AC phases per station (None for DC), rendered as ``numberPhases``.

    Returns:
        One profile per session with at least one step in the horizon.
    """
    sessions, step_s = arrays.sessions, round(arrays.step_h * 3600)
    profiles = []
    for s, session_id in enumerate(sessions.session_ids):
        first, end = int(sessions.first_step[s]), min(int(sessions.end_step[s]), arrays.n_steps)
        if end <= first:
            continue
        column = trace.ev_power_kw[first:end, int(sessions.connector_index[s])]
        periods: list[ProfilePeriod] = []
        for k, power in enumerate(column):
            if not periods or periods[-1].power_kw != float(power):
                periods.append(ProfilePeriod(k * step_s, float(power)))
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
                periods=tuple(periods),
                n_phases=(phases_by_station or {}).get(station),
            )
        )
    return profiles


def stable_profile_id(profile: SessionProfile) -> int:
    """A profile id that stays the same for a session across requests (station, EVSE, transaction).

    OCPP replaces a profile with the same id, so ids must not shift when other sessions come or go.
    """
    key = f"{profile.station_id}|{profile.evse_id}|{profile.transaction_id or profile.session_id}"
    return 1 + int(hashlib.sha256(key.encode()).hexdigest()[:8], 16) % 1_000_000_000


def watts_toward_zero(power_kw: float) -> int:
    """A setpoint in whole watts, rounded toward zero [W]."""
    return math.trunc(power_kw * 1000.0 + (1e-6 if power_kw > 0 else -1e-6 if power_kw < 0 else 0.0))


def ocpp201_set_charging_profile(profile: SessionProfile, profile_id: int) -> dict[str, Any]:
    """An OCPP 2.0.1 ``SetChargingProfileRequest`` payload (TxProfile, absolute, in W).

    OCPP 2.0.1 cannot express discharge: roll out with V2G disabled before rendering in this format.

    Raises:
        ValueError: When the profile discharges or has no transaction id (TxProfile needs one).
    """
    if profile.transaction_id is None:
        raise ValueError(f"sessions: {profile.session_id!r} has no transaction_id; a TxProfile needs one")
    if any(p.power_kw < 0 for p in profile.periods):
        raise ValueError(f"sessions: {profile.session_id!r} discharges; OCPP 2.0.1 limits cannot be negative")
    periods: list[dict[str, Any]] = [
        {"startPeriod": p.start_offset_s, "limit": watts_toward_zero(p.power_kw)} for p in profile.periods
    ]
    if profile.n_phases is not None:
        for period in periods:
            period["numberPhases"] = profile.n_phases
    # No duration: the last period holds until the next profile, so the site stays protected if a
    # re-request is late.
    schedule = {
        "id": profile_id,
        "startSchedule": profile.start_utc.astimezone(dt.UTC).isoformat().replace("+00:00", "Z"),
        "chargingRateUnit": "W",
        "chargingSchedulePeriod": periods,
    }
    return {
        "evseId": profile.evse_id,
        "chargingProfile": {
            "id": profile_id,
            "stackLevel": 0,
            "chargingProfilePurpose": "TxProfile",
            "chargingProfileKind": "Absolute",
            "transactionId": profile.transaction_id,
            "chargingSchedule": [schedule],
        },
    }
