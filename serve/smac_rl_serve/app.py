"""The profile service: ``create_app(settings)`` builds the FastAPI app.

``POST /v1/profiles`` takes a site state (the scenario format: site, sessions with their current
SoC, a time grid starting now, signals), rolls the policy forward through the core's projection
and physics over the grid, and answers per session with a charging profile.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from smac_rl.core.arrays import compile_scenario
from smac_rl.core.profiles import (
    ProfileFormat,
    RateUnit,
    SessionProfile,
    format_problems,
    json_profile,
    ocpi22_charging_profile,
    ocpp16_set_charging_profile,
    ocpp21_set_charging_profile,
    ocpp201_set_charging_profile,
    session_profiles,
    stable_profile_id,
)
from smac_rl.core.scoring import score
from smac_rl.core.simulate import simulate
from smac_rl.core.specs import ScenarioSpec
from smac_rl.core.state import Setpoints, StepContext
from smac_rl.core.validation import check_scenario
from smac_rl.policies import LeastLaxityFirst
from smac_rl_serve.model import OnnxPolicy
from smac_rl_serve.settings import Settings

FORMAT_DESCRIPTION = """The answer's format, per session:

* `ocpp16`: `set_charging_profile`, an OCPP 1.6 `SetChargingProfile.req` (TxProfile, Absolute;
  `connectorId` = the session's `evse_id`; the sessions' `transaction_id` must be integers). Charge
  only: the rollout runs without V2G.
* `ocpp201` (default): `set_charging_profile_request`, an OCPP 2.0.1 `SetChargingProfileRequest`
  (TxProfile, Absolute). Charge only: the rollout runs without V2G.
* `ocpp21`: `set_charging_profile_request`, an OCPP 2.1 `SetChargingProfileRequest` with V2G: a
  discharging period has `operationMode` `CentralSetpoint`, a negative `setpoint` and
  `dischargeLimit`, and `limit` 0; other periods are plain limits.
* `ocpi22`: `charging_profile`, an OCPI 2.2 `ChargingProfile` (`start_date_time`,
  `charging_rate_unit`, `charging_profile_period`). OCPI has no discharge: a session that may
  discharge (`allow_v2g` at a bidirectional charger) gets a 422.
* `json`: `start_utc` and `periods` (`start_offset_s`, `power_kw`; negative discharges), V2G allowed.

Every OCPP format needs each session's `transaction_id` (a TxProfile names its transaction).
Limits are rounded toward zero (whole W, or 0.1 A) and consecutive equal periods merged."""

RATE_UNIT_DESCRIPTION = """Unit of the limits in the OCPP and OCPI formats: `W` (total power, whole
watts) or `A` (current per phase in steps of 0.1 A = W / (phases x the charger's `voltage_v`); AC
only: a session at a DC charger gets a 422, since its current depends on the battery voltage).
The `json` format answers in kW and accepts only `W`."""


class ProfileRequest(BaseModel):
    """A request for charging profiles of every session on a site.

    Attributes:
        scenario: The site state: site, active sessions (``arrival_soc_frac`` = SoC now), a time
            grid starting now (the horizon), and price and limit signals.
        format: ``ocpp16``, ``ocpp201``, ``ocpp21``, ``ocpi22`` or ``json`` (see
            :data:`FORMAT_DESCRIPTION`).
        rate_unit: ``W`` or ``A`` for the OCPP and OCPI limits (see :data:`RATE_UNIT_DESCRIPTION`).
    """

    model_config = ConfigDict(extra="forbid")

    scenario: ScenarioSpec = Field(
        description="The site state: the scenario format with the active sessions (arrival_soc_frac = "
        "SoC now) and a time grid starting now (the horizon)."
    )
    format: ProfileFormat = Field(default="ocpp201", description=FORMAT_DESCRIPTION)
    rate_unit: RateUnit = Field(default="W", description=RATE_UNIT_DESCRIPTION)


Renderer = Callable[[SessionProfile, RateUnit], dict[str, Any]]

RENDERERS: dict[ProfileFormat, Renderer] = {
    "ocpp16": lambda p, unit: {
        "set_charging_profile": ocpp16_set_charging_profile(p, stable_profile_id(p), unit)
    },
    "ocpp201": lambda p, unit: {
        "set_charging_profile_request": ocpp201_set_charging_profile(p, stable_profile_id(p), unit)
    },
    "ocpp21": lambda p, unit: {
        "set_charging_profile_request": ocpp21_set_charging_profile(p, stable_profile_id(p), unit)
    },
    "ocpi22": lambda p, unit: {"charging_profile": ocpi22_charging_profile(p, unit)},
    "json": lambda p, _unit: json_profile(p),
}
"""The per-session fields of each format (the renderers of :mod:`smac_rl.core.profiles`)."""

CHARGE_ONLY_FORMATS = ("ocpp16", "ocpp201")
"""Formats whose limits cannot be negative: their rollout runs with V2G off."""


def _problem(path: str, value: str, expectation: str) -> dict[str, str]:
    return {"field": path, "value": value, "expected": expectation}


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the service with its policy loaded and checked.

    Raises:
        ModelError: When the model folder is missing, altered or of another layout.
    """
    settings = settings or Settings()
    policy = OnnxPolicy(settings.model_dir)
    app = FastAPI(title="SMAC-RL profile service", version="0.1.0")

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/v1/model")
    def model() -> dict[str, Any]:
        return policy.metadata.model_dump(mode="json", exclude={"observation"})

    @app.post("/v1/profiles")
    def profiles(request: ProfileRequest) -> JSONResponse:
        spec = request.scenario
        problems = [_problem(p.path, p.value, p.expectation) for p in check_scenario(spec)]
        if len(spec.sessions) > settings.max_sessions:
            problems.append(
                _problem("scenario.sessions", str(len(spec.sessions)), f"at most {settings.max_sessions}")
            )
        if spec.time_grid.n_steps > settings.max_horizon_steps:
            problems.append(
                _problem(
                    "scenario.time_grid.n_steps",
                    str(spec.time_grid.n_steps),
                    f"at most {settings.max_horizon_steps}",
                )
            )
        problems += [
            _problem(p.path, p.value, p.expectation)
            for p in format_problems(spec, request.format, request.rate_unit)
        ]
        if request.format in CHARGE_ONLY_FORMATS:
            spec = spec.model_copy(
                update={"sessions": [s.model_copy(update={"allow_v2g": False}) for s in spec.sessions]}
            )
        if problems:
            return JSONResponse(status_code=422, content={"detail": problems})
        arrays = compile_scenario(spec)
        fallback = None
        decide: Callable[[StepContext], Setpoints]
        if arrays.site.n_connectors > policy.layout.n_connectors_max:
            heuristic = LeastLaxityFirst()
            decide, answered_by = heuristic.act, heuristic.name
            fallback = (
                f"the site has {arrays.site.n_connectors} connectors, the model room for "
                f"{policy.layout.n_connectors_max}: least laxity first answered"
            )
        else:
            decide, answered_by = policy.bound(arrays), policy.name
        trace = simulate(arrays, decide)
        outlets = [(s.station_id, s.evse_id, s.connector_id, s.transaction_id) for s in spec.sessions]
        render = RENDERERS[request.format]
        rendered = [
            {
                "session_id": profile.session_id,
                "station_id": profile.station_id,
                "evse_id": profile.evse_id,
                "connector_id": profile.connector_id,
                **render(profile, request.rate_unit),
            }
            for profile in session_profiles(arrays, trace, outlets)
        ]
        start = spec.time_grid.start_utc.astimezone(dt.UTC)
        events = [t for s in spec.sessions for t in (s.arrival_utc, s.departure_utc) if t > start]
        valid_until = min([start + dt.timedelta(minutes=spec.time_grid.step_min), *events]).astimezone(dt.UTC)
        return JSONResponse(
            content={
                "policy": answered_by,
                "fallback_reason": fallback,
                "model_onnx_sha256": policy.metadata.onnx_sha256,
                "valid_until_utc": valid_until.isoformat(),
                "kpis": score(arrays, trace).as_dict(),
                "profiles": rendered,
            }
        )

    @app.exception_handler(ValueError)
    async def value_error(_request: Request, exc: ValueError) -> JSONResponse:
        return JSONResponse(status_code=422, content={"detail": [_problem("request", "", str(exc))]})

    return app
