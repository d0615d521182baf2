"""The profile service: ``create_app(settings)`` builds the FastAPI app.

``POST /v1/profiles`` takes a site state (the scenario format: site, sessions with their current
SoC, a time grid starting now, signals), rolls the policy forward through the core's projection
and physics over the grid, and answers per session with a charging profile.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any, Literal

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict

from smac_rl.core.arrays import compile_scenario
from smac_rl.core.profiles import ocpp201_set_charging_profile, session_profiles, stable_profile_id
from smac_rl.core.scoring import score
from smac_rl.core.simulate import simulate
from smac_rl.core.specs import ScenarioSpec
from smac_rl.core.state import Setpoints, StepContext
from smac_rl.core.validation import check_scenario
from smac_rl.policies import LeastLaxityFirst
from smac_rl_serve.model import OnnxPolicy
from smac_rl_serve.settings import Settings


class ProfileRequest(BaseModel):
    """A request for profiles.

    Attributes:
        scenario: The site state: site, active sessions (``arrival_soc_frac`` = SoC now), a time
            grid starting now (the horizon), and price and limit signals.
        format: ``ocpp201`` (SetChargingProfileRequest per session; V2G is not used, since
            OCPP 2.0.1 limits cannot be negative) or ``json`` (periods in kW, V2G allowed).
    """

    model_config = ConfigDict(extra="forbid")

    scenario: ScenarioSpec
    format: Literal["ocpp201", "json"] = "ocpp201"


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
        if request.format == "ocpp201":
            problems += [
                _problem(
                    f"scenario.sessions[{i}].transaction_id",
                    "nothing",
                    "a transaction id (OCPP TxProfile needs it)",
                )
                for i, s in enumerate(spec.sessions)
                if s.transaction_id is None
            ]
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
        phases: dict[str, int | None] = {
            c.station_id: (int(c.n_phases) if c.kind == "ac" else None) for c in spec.site.chargers
        }
        rendered = []
        for profile in session_profiles(arrays, trace, outlets, phases):
            entry: dict[str, Any] = {
                "session_id": profile.session_id,
                "station_id": profile.station_id,
                "evse_id": profile.evse_id,
                "connector_id": profile.connector_id,
            }
            if request.format == "ocpp201":
                entry["set_charging_profile_request"] = ocpp201_set_charging_profile(
                    profile, stable_profile_id(profile)
                )
            else:
                entry["start_utc"] = profile.start_utc.isoformat()
                entry["periods"] = [
                    {"start_offset_s": p.start_offset_s, "power_kw": p.power_kw} for p in profile.periods
                ]
            rendered.append(entry)
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
