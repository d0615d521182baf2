"""The registry's HTTP routes: ``/v1/sites/...`` for INCAR's event flow.

Each event (site configuration, session start, meter values, session end, capacity signal)
answers with the re-planned profiles of every active session of the site (they share its grid
connection). POST events need an ``Idempotency-Key`` header; ``PUT`` takes one optionally. A
replayed answer carries ``Idempotent-Replayed: true``.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Header, Path, Query, Request
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from smac_rl.core.errors import render_value
from smac_rl.core.profiles import ProfileFormat, RateUnit
from smac_rl.core.specs import SessionSpec
from smac_rl_serve.auth import Caller, KeyRing
from smac_rl_serve.capacity import CapacitySignal
from smac_rl_serve.errors import ApiError, problem_responses
from smac_rl_serve.registry import EventRequest, Outcome, Registry
from smac_rl_serve.schemas import (
    FORMAT_DESCRIPTION,
    ID_PATTERN,
    RATE_UNIT_DESCRIPTION,
    DecisionPage,
    EventAnswer,
    MeterValues,
    SessionEnd,
    SessionState,
    SiteConfig,
    SiteState,
)
from smac_rl_serve.settings import Settings

KEY_PATTERN = r"^[\x21-\x7e]{1,200}$"
"""Idempotency keys: 1 to 200 printable ASCII characters without spaces (a UUID fits)."""

bearer = HTTPBearer(auto_error=False, description="An API key: `Authorization: Bearer <key>`.")

_ERRORS = problem_responses(
    {
        401: "No API key, or an unknown one.",
        403: "The site, session or tenant belongs to a tenant the key does not act for.",
        404: "Unknown site or session.",
        409: "Idempotency key reused for another request; session id in use; EVSE occupied; session ended.",
        413: "Body over the size bound.",
        422: "Invalid input; each problem names its field.",
    }
)

SiteId = Annotated[str, Path(pattern=ID_PATTERN, description="The CPO's site id.")]
SessionId = Annotated[str, Path(pattern=ID_PATTERN, description="The session id (unique across sites).")]
EventKey = Annotated[
    str,
    Header(
        alias="Idempotency-Key",
        pattern=KEY_PATTERN,
        description="Unique per event and site: a repeat with the same body gets the stored answer.",
    ),
]
FormatQuery = Annotated[
    ProfileFormat | None,
    Query(alias="format", description="Overrides the site's format. " + FORMAT_DESCRIPTION),
]
RateUnitQuery = Annotated[
    RateUnit | None, Query(description="Overrides the site's rate unit. " + RATE_UNIT_DESCRIPTION)
]


def fingerprint(request: Request, body: Any) -> str:
    """SHA-256 of a request's method, path, query and body (canonical JSON)."""
    query = sorted(request.query_params.multi_items())
    text = json.dumps([request.method, request.url.path, query, body], sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def caller(
    request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]
) -> Caller:
    """The caller of a request, by its bearer key (``app.state.keys``, a :class:`KeyRing`).

    Raises:
        ApiError: 401 without a key or with an unknown one, when keys are configured.
    """
    keys: KeyRing = request.app.state.keys
    who = keys.require(credentials.credentials if credentials else None)
    request.state.tenant = tenant_label(who)
    return who


def tenant_label(who: Caller) -> str:
    """The caller's tenants for the request log: their ids, sorted, comma-separated."""
    return ",".join(sorted(who.tenant_ids))


Authorized = Annotated[Caller, Depends(caller)]
"""A route parameter holding the request's caller."""


def _send(outcome: Outcome) -> JSONResponse:
    headers = {"Idempotent-Replayed": "true"} if outcome.is_replay else None
    return JSONResponse(outcome.content, status_code=outcome.status_code, headers=headers)


def registry_router(registry: Registry, settings: Settings) -> APIRouter:
    """The ``/v1/sites`` routes over a registry."""
    router = APIRouter(prefix="/v1/sites", tags=["registry"], responses=_ERRORS)

    def event(
        request: Request,
        kind: str,
        site_id: str,
        body: Any,
        key: str | None,
        session_id: str | None = None,
        profile_format: ProfileFormat | None = None,
        rate_unit: RateUnit | None = None,
    ) -> EventRequest:
        return EventRequest(
            event=kind,
            site_id=site_id,
            session_id=session_id,
            idempotency_key=key,
            request_sha256=fingerprint(request, body),
            body=body,
            profile_format=profile_format,
            rate_unit=rate_unit,
        )

    @router.put("/{site_id}", response_model=EventAnswer)
    def put_site(
        request: Request,
        site_id: SiteId,
        config: SiteConfig,
        who: Authorized,
        format: FormatQuery = None,
        rate_unit: RateUnitQuery = None,
        idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key", pattern=KEY_PATTERN)] = None,
    ) -> JSONResponse:
        """Create or replace a site (the CPO's configuration); a new site belongs to the caller's tenant.

        The site is checked with the core's checks, and so are its active sessions against it.
        Answers with the re-planned profiles of the site's active sessions.
        """
        body = config.model_dump(mode="json")
        return _send(
            registry.put_site(
                who, event(request, "site", site_id, body, idempotency_key, None, format, rate_unit), config
            )
        )

    @router.get("/{site_id}", response_model=SiteState)
    def get_site(site_id: SiteId, who: Authorized) -> SiteState:
        """The site's configuration, active sessions and capacity limits to come."""
        return registry.site_state(who, site_id)

    @router.post("/{site_id}/sessions", response_model=EventAnswer)
    def start_session(
        request: Request,
        site_id: SiteId,
        session: SessionSpec,
        who: Authorized,
        idempotency_key: EventKey,
        format: FormatQuery = None,
        rate_unit: RateUnitQuery = None,
    ) -> JSONResponse:
        """A session started, with the driver's and the charge point's inputs.

        The driver's: battery, SoC at arrival, departure, energy wanted; the charge point's: station,
        EVSE, connector, transaction id. ``session_id`` is unique across all sites. Answers with the
        re-planned profiles of the site's active sessions, this one included.
        """
        if not re.fullmatch(ID_PATTERN, session.session_id):
            raise ApiError.of(
                422, "session_id", render_value(session.session_id), f"an id matching {ID_PATTERN}"
            )
        body = session.model_dump(mode="json")
        return _send(
            registry.start_session(
                who,
                event(
                    request,
                    "session_start",
                    site_id,
                    body,
                    idempotency_key,
                    session.session_id,
                    format,
                    rate_unit,
                ),
                session,
            )
        )

    @router.get("/{site_id}/sessions/{session_id}", response_model=SessionState)
    def get_session(site_id: SiteId, session_id: SessionId, who: Authorized) -> SessionState:
        """A session of the site, active or ended."""
        return registry.session_state(who, site_id, session_id)

    @router.post("/{site_id}/sessions/{session_id}/meter_values", response_model=EventAnswer)
    def meter_values(
        request: Request,
        site_id: SiteId,
        session_id: SessionId,
        values: MeterValues,
        who: Authorized,
        idempotency_key: EventKey,
        format: FormatQuery = None,
        rate_unit: RateUnitQuery = None,
    ) -> JSONResponse:
        """A state of charge or energy reading; a reading older than the one held changes nothing."""
        body = values.model_dump(mode="json")
        return _send(
            registry.meter_values(
                who,
                event(request, "meter_values", site_id, body, idempotency_key, session_id, format, rate_unit),
                values,
            )
        )

    @router.post("/{site_id}/sessions/{session_id}/end", response_model=EventAnswer)
    def end_session(
        request: Request,
        site_id: SiteId,
        session_id: SessionId,
        who: Authorized,
        idempotency_key: EventKey,
        end: Annotated[SessionEnd | None, Body()] = None,
        format: FormatQuery = None,
        rate_unit: RateUnitQuery = None,
    ) -> JSONResponse:
        """The session is over; the site's other sessions are re-planned."""
        end = end or SessionEnd()
        body = end.model_dump(mode="json")
        return _send(
            registry.end_session(
                who,
                event(request, "session_end", site_id, body, idempotency_key, session_id, format, rate_unit),
                end,
            )
        )

    @router.post("/{site_id}/capacity", response_model=EventAnswer)
    def capacity(
        request: Request,
        site_id: SiteId,
        signal: Annotated[CapacitySignal, Body()],
        who: Authorized,
        idempotency_key: EventKey,
        format: FormatQuery = None,
        rate_unit: RateUnitQuery = None,
    ) -> JSONResponse:
        """A capacity signal: OSCP 2.0 capacity forecast or OpenADR 3 capacity-limit event.

        Either an OSCP ``UpdateGroupCapacityForecast`` or an OpenADR 3 event with
        ``IMPORT_CAPACITY_LIMIT`` / ``EXPORT_CAPACITY_LIMIT`` payloads. Its blocks become the site's
        import or export limit over their spans (a later signal wins where they overlap); the site's
        sessions are re-planned under them.
        """
        body = signal.model_dump(mode="json")
        return _send(
            registry.capacity(
                who,
                event(request, "capacity", site_id, body, idempotency_key, None, format, rate_unit),
                signal,
            )
        )

    @router.get("/{site_id}/profiles", response_model=EventAnswer)
    def profiles(
        request: Request,
        site_id: SiteId,
        who: Authorized,
        format: FormatQuery = None,
        rate_unit: RateUnitQuery = None,
    ) -> JSONResponse:
        """The current profiles of the site's active sessions (logged in the decision log)."""
        return _send(
            registry.profiles(who, event(request, "query", site_id, None, None, None, format, rate_unit))
        )

    @router.get("/{site_id}/decisions", response_model=DecisionPage)
    def decisions(
        site_id: SiteId,
        who: Authorized,
        limit: Annotated[int, Query(ge=1, description="Page size (at most the settings' bound, 100).")] = 20,
        before_id: Annotated[
            int | None, Query(ge=1, le=2**31 - 1, description="Entries before this decision id.")
        ] = None,
    ) -> DecisionPage:
        """The site's decision log, newest first: inputs (the scenario rolled out), model, outputs, time.

        Replay an entry with ``POST /v1/profiles`` and its ``{scenario, format, rate_unit}``.
        """
        if limit > settings.n_decisions_page_max:
            raise ApiError.of(422, "query.limit", str(limit), f"at most {settings.n_decisions_page_max}")
        return registry.decisions(who, site_id, limit, before_id)

    return router
