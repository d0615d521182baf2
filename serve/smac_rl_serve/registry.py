"""The site and session registry behind INCAR's event flow.

Every event runs in one database transaction:

1. lock the site's row (``SELECT ... FOR UPDATE``; ``BEGIN IMMEDIATE`` on SQLite), so events on
   one site are serialised;
2. check the caller's tenancy (404 unknown site, 403 another tenant's);
3. look up the event's ``Idempotency-Key`` for the site: the same key with the same request
   returns the stored answer and changes nothing; with another request it is a 409;
4. apply the change, build the site's scenario now (:mod:`smac_rl_serve.scenarios`), check it with
   the core's checks and the format's (a 422 rolls everything back), roll out and render;
5. write the decision log entry and the idempotency record, bump the site version, commit.

An answer is sent only after its commit, so every acknowledged event is durable; an event whose
answer was lost can be sent again with its key.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError
from sqlalchemy import Engine, delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from smac_rl.core.errors import render_value
from smac_rl.core.profiles import ProfileFormat, RateUnit
from smac_rl.core.scenario_io import problems_from_pydantic
from smac_rl.core.specs import ScenarioSpec, SessionSpec
from smac_rl.core.validation import check_scenario
from smac_rl_serve.auth import Caller
from smac_rl_serve.capacity import CapacityBlock, Direction, OpenAdrEvent, OscpCapacityForecast, signal_blocks
from smac_rl_serve.db import CapacityBlockRow, DecisionRow, IdempotencyRow, SessionRow, SiteRow
from smac_rl_serve.errors import ApiError, problem
from smac_rl_serve.planning import Planner
from smac_rl_serve.scenarios import LiveSession, session_probe, site_scenario
from smac_rl_serve.schemas import (
    CapacityBlockState,
    DecisionEntry,
    DecisionPage,
    MeterValues,
    SessionEnd,
    SessionState,
    SiteConfig,
    SiteState,
)
from smac_rl_serve.settings import Settings
from smac_rl_serve.timewindow import TimeWindow

_ATTEMPTS = 3
"""Transactions retried on a unique-key race (two sites inserting one session id at once)."""

_SESSION_PATH = re.compile(r"^(?:scenario\.)?sessions\[(\d+)\](.*)$")


def utc_now() -> dt.datetime:
    """Now, timezone-aware."""
    return dt.datetime.now(dt.UTC)


@dataclass(frozen=True)
class EventRequest:
    """What the registry needs to know about a request besides its change.

    Attributes:
        event: ``site``, ``session_start``, ``meter_values``, ``session_end``, ``capacity`` or ``query``.
        site_id: The site.
        session_id: The session the event is about, if any.
        idempotency_key: The event's key, if any.
        request_sha256: Fingerprint of the request (method, path, query, body).
        body: The request body as JSON data (for the decision log).
        profile_format: A format asked for in the query; None: the site's.
        rate_unit: A unit asked for in the query; None: the site's.
    """

    event: str
    site_id: str
    session_id: str | None = None
    idempotency_key: str | None = None
    request_sha256: str = ""
    body: Any = None
    profile_format: ProfileFormat | None = None
    rate_unit: RateUnit | None = None


@dataclass(frozen=True)
class Outcome:
    """An answer to send.

    Attributes:
        status_code: HTTP status.
        content: JSON body.
        is_replay: The stored answer of an earlier request with the same idempotency key.
    """

    status_code: int
    content: dict[str, Any]
    is_replay: bool = False


Change = Callable[[Session, SiteRow, dt.datetime], None]
"""Applies an event to the locked site's state."""

Create = Callable[[Session, dt.datetime], SiteRow]
"""Creates a site that is not there yet (``PUT`` only)."""


def _not_found(path: str, value: str, what: str) -> ApiError:
    return ApiError.of(404, path, render_value(value), what)


def _forbidden(path: str, value: str) -> ApiError:
    return ApiError.of(403, path, render_value(value), "an id of a tenant this API key acts for")


class Registry:
    """Sites, sessions and capacity signals in a database, answered through a :class:`Planner`."""

    def __init__(
        self, engine: Engine, planner: Planner, settings: Settings, clock: Callable[[], dt.datetime] = utc_now
    ) -> None:
        self._open = sessionmaker(engine, expire_on_commit=False)
        self._planner = planner
        self._settings = settings
        self._clock = clock

    # Events ----------------------------------------------------------------------------------

    def put_site(self, caller: Caller, request: EventRequest, config: SiteConfig) -> Outcome:
        """Create or replace a site's configuration (``PUT /v1/sites/{site_id}``)."""
        stored = config.model_dump_json(exclude={"tenant_id"})

        def create(db: Session, now: dt.datetime) -> SiteRow:
            owner = self._owner(caller, config.tenant_id)
            self._check_config(request.site_id, config)
            site = SiteRow(
                site_id=request.site_id,
                tenant_id=owner,
                config_json=stored,
                site_version=0,
                created_at_utc=now,
                updated_at_utc=now,
            )
            db.add(site)
            return site

        def change(_db: Session, site: SiteRow, _now: dt.datetime) -> None:
            if config.tenant_id is not None and config.tenant_id != site.tenant_id:
                raise ApiError.of(
                    422,
                    "tenant_id",
                    render_value(config.tenant_id),
                    f"{site.tenant_id!r}: a site keeps its owner",
                )
            self._check_config(request.site_id, config)
            site.config_json = stored

        return self._event(caller, request, change, create)

    def start_session(self, caller: Caller, request: EventRequest, spec: SessionSpec) -> Outcome:
        """Start a session at a site (``POST /v1/sites/{site_id}/sessions``)."""

        def change(db: Session, site: SiteRow, now: dt.datetime) -> None:
            existing = db.get(SessionRow, spec.session_id)
            if existing is not None:
                if existing.site_id != site.site_id:
                    other = db.get(SiteRow, existing.site_id)
                    if other is None or not caller.may_act_for(other.tenant_id):
                        raise _forbidden("session_id", spec.session_id)
                raise ApiError.of(
                    409,
                    "session_id",
                    render_value(spec.session_id),
                    f"a new session id (this one was started at site {existing.site_id!r}; "
                    "resend the same event with its Idempotency-Key to get its answer)",
                )
            active = _active_sessions(db, site.site_id)
            if len(active) >= self._settings.n_active_sessions_max:
                raise ApiError.of(
                    409,
                    "path.site_id",
                    f"{len(active)} active sessions",
                    f"at most {self._settings.n_active_sessions_max} active sessions per site: end one first",
                )
            self._check_new_session(_config(site), spec, active, now)
            db.add(
                SessionRow(
                    session_id=spec.session_id,
                    site_id=site.site_id,
                    is_active=True,
                    spec_json=spec.model_dump_json(),
                    soc_frac=spec.arrival_soc_frac,
                    energy_delivered_kwh=None,
                    measured_at_utc=spec.arrival_utc,
                    started_at_utc=now,
                    ended_at_utc=None,
                )
            )

        return self._event(caller, request, change)

    def meter_values(self, caller: Caller, request: EventRequest, values: MeterValues) -> Outcome:
        """Record a session's state of charge or energy reading (``POST .../meter_values``)."""

        def change(db: Session, site: SiteRow, now: dt.datetime) -> None:
            row = _active(self._own_session(db, caller, site, request.session_id or ""))
            spec = SessionSpec.model_validate_json(row.spec_json)
            if values.soc_frac is None and values.energy_delivered_kwh is None:
                raise ApiError.of(
                    422, "soc_frac", "nothing", "soc_frac or energy_delivered_kwh, at least one"
                )
            self._check_instant("measured_at_utc", values.measured_at_utc, spec, now)
            if values.measured_at_utc < row.measured_at_utc:
                return  # an older reading than the one held: the newer stays
            if values.soc_frac is not None:
                soc = values.soc_frac
            else:
                gained_kwh = float(values.energy_delivered_kwh or 0.0) * spec.charge_efficiency_frac
                soc = min(1.0, spec.arrival_soc_frac + gained_kwh / spec.battery_capacity_kwh)
            row.soc_frac, row.measured_at_utc = soc, values.measured_at_utc
            if values.energy_delivered_kwh is not None:
                row.energy_delivered_kwh = values.energy_delivered_kwh

        return self._event(caller, request, change)

    def end_session(self, caller: Caller, request: EventRequest, end: SessionEnd) -> Outcome:
        """End a session (``POST .../end``); the site's other sessions are re-planned."""

        def change(db: Session, site: SiteRow, now: dt.datetime) -> None:
            row = _active(self._own_session(db, caller, site, request.session_id or ""))
            spec = SessionSpec.model_validate_json(row.spec_json)
            ended = end.ended_at_utc or now
            self._check_instant("ended_at_utc", ended, spec, now)
            row.is_active, row.ended_at_utc = False, ended
            if end.energy_delivered_kwh is not None:
                row.energy_delivered_kwh = end.energy_delivered_kwh

        return self._event(caller, request, change)

    def capacity(
        self, caller: Caller, request: EventRequest, signal: OscpCapacityForecast | OpenAdrEvent
    ) -> Outcome:
        """Store a capacity signal's limits (``POST /v1/sites/{site_id}/capacity``)."""
        source = "oscp" if isinstance(signal, OscpCapacityForecast) else "openadr"

        def change(db: Session, site: SiteRow, now: dt.datetime) -> None:
            blocks = signal_blocks(signal, self._settings.n_capacity_blocks_max, self._window())
            db.execute(
                delete(CapacityBlockRow).where(
                    CapacityBlockRow.site_id == site.site_id, CapacityBlockRow.end_utc <= now
                )
            )
            for block in blocks:
                db.add(
                    CapacityBlockRow(
                        site_id=site.site_id,
                        signal_version=site.site_version + 1,
                        direction=block.direction,
                        start_utc=block.start_utc,
                        end_utc=block.end_utc,
                        limit_kw=block.limit_kw,
                        source=source,
                    )
                )

        return self._event(caller, request, change)

    def profiles(self, caller: Caller, request: EventRequest) -> Outcome:
        """The current profiles of a site's active sessions (logged like an event's answer)."""
        return self._event(caller, request, None)

    # Reads -------------------------------------------------------------------------------------

    def site_state(self, caller: Caller, site_id: str) -> SiteState:
        """A site's configuration, active sessions and capacity limits to come."""
        with self._open() as db, db.begin():
            site = self._readable_site(db, caller, site_id)
            now = self._clock()
            blocks = db.scalars(
                select(CapacityBlockRow)
                .where(CapacityBlockRow.site_id == site_id, CapacityBlockRow.end_utc > now)
                .order_by(CapacityBlockRow.start_utc, CapacityBlockRow.block_id)
            ).all()
            return SiteState(
                site_id=site.site_id,
                tenant_id=site.tenant_id,
                site_version=site.site_version,
                config=json.loads(site.config_json),
                sessions=[_session_state(r) for r in _active_sessions(db, site_id)],
                capacity_blocks=[
                    CapacityBlockState(
                        direction=b.direction,
                        start_utc=b.start_utc.isoformat(),
                        end_utc=b.end_utc.isoformat(),
                        limit_kw=b.limit_kw,
                        source=b.source,
                        signal_version=b.signal_version,
                    )
                    for b in blocks
                ],
            )

    def session_state(self, caller: Caller, site_id: str, session_id: str) -> SessionState:
        """A session of a site, active or ended."""
        with self._open() as db, db.begin():
            site = self._readable_site(db, caller, site_id)
            return _session_state(self._own_session(db, caller, site, session_id))

    def decisions(self, caller: Caller, site_id: str, n_items: int, before_id: int | None) -> DecisionPage:
        """A page of a site's decision log, newest first."""
        with self._open() as db, db.begin():
            self._readable_site(db, caller, site_id)
            query = select(DecisionRow).where(DecisionRow.site_id == site_id)
            if before_id is not None:
                query = query.where(DecisionRow.decision_id < before_id)
            rows = db.scalars(query.order_by(DecisionRow.decision_id.desc()).limit(n_items + 1)).all()
        items = [_decision_entry(r) for r in rows[:n_items]]
        more = len(rows) > n_items
        return DecisionPage(items=items, next_before_id=items[-1].decision_id if more and items else None)

    # The transaction ---------------------------------------------------------------------------

    def _event(
        self, caller: Caller, request: EventRequest, change: Change | None, create: Create | None = None
    ) -> Outcome:
        attempt = 1
        while True:
            try:
                outcome = self._attempt(caller, request, change, create)
            except IntegrityError:
                if attempt == _ATTEMPTS:
                    raise
                attempt += 1
                continue
            metrics = self._planner.metrics
            metrics.events.labels(request.event).inc()
            if outcome.is_replay:
                metrics.replays.labels(request.event).inc()
            return outcome

    def _attempt(
        self, caller: Caller, request: EventRequest, change: Change | None, create: Create | None
    ) -> Outcome:
        with self._open() as db, db.begin():
            site = db.scalars(
                select(SiteRow).where(SiteRow.site_id == request.site_id).with_for_update()
            ).one_or_none()
            now = self._clock()  # after the lock: the time the event is applied at
            if site is None:
                if create is None:
                    raise _not_found(
                        "path.site_id", request.site_id, "a site configured with PUT /v1/sites/{site_id}"
                    )
                site = create(db, now)
            else:
                if not caller.may_act_for(site.tenant_id):
                    raise _forbidden("path.site_id", request.site_id)
                replay = _stored_answer(db, site, request)
                if replay is not None:
                    return replay
                if change is not None:
                    change(db, site, now)
            if change is not None:
                site.site_version += 1
                site.updated_at_utc = now
                db.flush()
            content = self._answer(db, site, request, now)
            if request.idempotency_key is not None and change is not None:
                db.add(
                    IdempotencyRow(
                        site_id=site.site_id,
                        idempotency_key=request.idempotency_key,
                        request_sha256=request.request_sha256,
                        status_code=200,
                        answer_json=json.dumps(content),
                        created_at_utc=now,
                    )
                )
            return Outcome(200, content)

    def _answer(self, db: Session, site: SiteRow, request: EventRequest, now: dt.datetime) -> dict[str, Any]:
        config = _config(site)
        profile_format = request.profile_format or config.format
        rate_unit = request.rate_unit or config.rate_unit
        rows = _active_sessions(db, site.site_id)
        blocks = db.scalars(select(CapacityBlockRow).where(CapacityBlockRow.site_id == site.site_id)).all()
        spec = site_scenario(
            config,
            [LiveSession(SessionSpec.model_validate_json(r.spec_json), r.soc_frac) for r in rows],
            [
                (CapacityBlock(_direction(b.direction), b.start_utc, b.end_utc, b.limit_kw), b.signal_version)
                for b in blocks
            ],
            now,
        )
        unit_path = "query.rate_unit" if request.rate_unit else "rate_unit"
        problems = self._planner.problems(spec, profile_format, rate_unit, rate_unit_path=unit_path)
        if problems:
            raise ApiError(422, [_event_problem(p, spec, request.session_id) for p in problems])
        plan = self._planner.answer(spec, profile_format, rate_unit)
        decision = DecisionRow(
            site_id=site.site_id,
            created_at_utc=now,
            event=request.event,
            session_id=request.session_id,
            idempotency_key=request.idempotency_key,
            site_version=site.site_version,
            request_json=json.dumps(request.body),
            scenario_json=spec.model_dump_json(),
            format=profile_format,
            rate_unit=rate_unit,
            model_json=json.dumps(self._planner.model_version()),
            answer_json="{}",
        )
        db.add(decision)
        db.flush()
        content = {
            "site_id": site.site_id,
            "event": request.event,
            "session_id": request.session_id,
            "decision_id": decision.decision_id,
            "site_version": site.site_version,
            "format": profile_format,
            "rate_unit": rate_unit,
            **plan,
        }
        decision.answer_json = json.dumps(content)
        return content

    # Checks ------------------------------------------------------------------------------------

    def _check_config(self, site_id: str, config: SiteConfig) -> None:
        problems = self._config_problems(site_id, config)
        if problems:
            raise ApiError(422, problems)

    def _config_problems(self, site_id: str, config: SiteConfig) -> list[dict[str, str]]:
        problems: list[dict[str, str]] = []
        if config.site.site_id != site_id:
            problems.append(
                problem("site.site_id", render_value(config.site.site_id), f"the path's site id {site_id!r}")
            )
        if config.time_grid.n_steps > self._settings.max_horizon_steps:
            problems.append(
                problem(
                    "time_grid.n_steps",
                    str(config.time_grid.n_steps),
                    f"at most {self._settings.max_horizon_steps}",
                )
            )
        try:
            probe = site_scenario(config, [], [], self._clock())
        except ValidationError as exc:
            # Only the time grid can fail here: the rest was validated as the request's body.
            found = problems_from_pydantic(exc.errors())
            return problems + [problem(f"time_grid.{p.path}", p.value, p.expectation) for p in found]
        return problems + self._planner.problems(probe, config.format, config.rate_unit)

    def _check_new_session(
        self, config: SiteConfig, spec: SessionSpec, active: list[SessionRow], now: dt.datetime
    ) -> None:
        window = self._window()
        outside = [window.problem(name, getattr(spec, name)) for name in ("arrival_utc", "departure_utc")]
        if any(outside):
            raise ApiError(422, [p for p in outside if p is not None])
        probe = session_probe(config, spec)
        problems = [
            problem(p.path.removeprefix("sessions[0]").lstrip("."), p.value, p.expectation)
            for p in check_scenario(probe)
            if p.path.startswith("sessions[0]")
        ]
        if spec.departure_utc <= now:
            problems.append(
                problem(
                    "departure_utc",
                    spec.departure_utc.isoformat(),
                    f"a departure after now ({now.isoformat()})",
                )
            )
        if problems:
            raise ApiError(422, problems)
        for row in active:
            other = SessionSpec.model_validate_json(row.spec_json)
            same_evse = (other.station_id, other.evse_id) == (spec.station_id, spec.evse_id)
            if (
                same_evse
                and other.departure_utc > max(now, spec.arrival_utc)
                and other.arrival_utc < spec.departure_utc
            ):
                raise ApiError.of(
                    409,
                    "evse_id",
                    f"station {spec.station_id!r} EVSE {spec.evse_id}",
                    f"a free EVSE: session {other.session_id!r} holds it until "
                    f"{other.departure_utc.isoformat()} (end it first)",
                )

    def _check_instant(self, path: str, instant: dt.datetime, spec: SessionSpec, now: dt.datetime) -> None:
        if instant > now + dt.timedelta(seconds=self._settings.clock_skew_s):
            raise ApiError.of(422, path, instant.isoformat(), f"not in the future (now is {now.isoformat()})")
        if instant < spec.arrival_utc:
            raise ApiError.of(
                422,
                path,
                instant.isoformat(),
                f"at or after the session's arrival {spec.arrival_utc.isoformat()}",
            )

    def _window(self) -> TimeWindow:
        return TimeWindow(self._clock(), self._settings.max_instant_offset_h)

    # Tenancy -----------------------------------------------------------------------------------

    @staticmethod
    def _owner(caller: Caller, tenant_id: str | None) -> str:
        if tenant_id is not None:
            if not caller.may_act_for(tenant_id):
                raise _forbidden("tenant_id", tenant_id)
            return tenant_id
        if len(caller.tenant_ids) != 1:
            raise ApiError.of(
                422,
                "tenant_id",
                "nothing",
                f"the owner of the new site, one of {sorted(caller.tenant_ids)} (this key acts for several)",
            )
        return next(iter(caller.tenant_ids))

    @staticmethod
    def _readable_site(db: Session, caller: Caller, site_id: str) -> SiteRow:
        site = db.get(SiteRow, site_id)
        if site is None:
            raise _not_found("path.site_id", site_id, "a site configured with PUT /v1/sites/{site_id}")
        if not caller.may_act_for(site.tenant_id):
            raise _forbidden("path.site_id", site_id)
        return site

    @staticmethod
    def _own_session(db: Session, caller: Caller, site: SiteRow, session_id: str) -> SessionRow:
        row = db.get(SessionRow, session_id)
        if row is None:
            raise _not_found("path.session_id", session_id, f"a session started at site {site.site_id!r}")
        if row.site_id != site.site_id:
            other = db.get(SiteRow, row.site_id)
            if other is None or not caller.may_act_for(other.tenant_id):
                raise _forbidden("path.session_id", session_id)
            raise _not_found(
                "path.session_id",
                session_id,
                f"a session of site {site.site_id!r} (it is at {row.site_id!r})",
            )
        return row


def _stored_answer(db: Session, site: SiteRow, request: EventRequest) -> Outcome | None:
    """The stored answer of the request's idempotency key on the site, or None.

    Raises:
        ApiError: 409 when the key was used for another request.
    """
    if request.idempotency_key is None:
        return None
    stored = db.get(IdempotencyRow, (site.site_id, request.idempotency_key))
    if stored is None:
        return None
    if stored.request_sha256 != request.request_sha256:
        raise ApiError.of(
            409,
            "header.Idempotency-Key",
            render_value(request.idempotency_key),
            "a new key: this one was used for another request on this site",
        )
    return Outcome(stored.status_code, json.loads(stored.answer_json), is_replay=True)


def _active(row: SessionRow) -> SessionRow:
    if not row.is_active:
        ended = row.ended_at_utc.isoformat() if row.ended_at_utc else "?"
        raise ApiError.of(
            409, "path.session_id", render_value(row.session_id), f"an active session (it ended at {ended})"
        )
    return row


def _config(site: SiteRow) -> SiteConfig:
    return SiteConfig.model_validate_json(site.config_json)


def _direction(text: str) -> Direction:
    return "export" if text == "export" else "import"


def _active_sessions(db: Session, site_id: str) -> list[SessionRow]:
    return list(
        db.scalars(
            select(SessionRow)
            .where(SessionRow.site_id == site_id, SessionRow.is_active.is_(True))
            .order_by(SessionRow.started_at_utc, SessionRow.session_id)
        ).all()
    )


def _event_problem(found: dict[str, str], spec: ScenarioSpec, session_id: str | None) -> dict[str, str]:
    """A scenario problem named for the caller: the event's own fields, or ``sessions[<id>]``."""
    path = found["field"]
    match = _SESSION_PATH.match(path)
    if match is None:
        return problem(path.removeprefix("scenario."), found["value"], found["expected"])
    index, rest = int(match.group(1)), match.group(2)
    named = spec.sessions[index].session_id
    if named == session_id and rest:
        return problem(rest.lstrip("."), found["value"], found["expected"])
    return problem(f"sessions[{named}]{rest}", found["value"], found["expected"])


def _session_state(row: SessionRow) -> SessionState:
    return SessionState(
        session_id=row.session_id,
        site_id=row.site_id,
        is_active=row.is_active,
        spec=json.loads(row.spec_json),
        soc_frac=row.soc_frac,
        energy_delivered_kwh=row.energy_delivered_kwh,
        measured_at_utc=row.measured_at_utc.isoformat(),
        ended_at_utc=row.ended_at_utc.isoformat() if row.ended_at_utc else None,
    )


def _decision_entry(row: DecisionRow) -> DecisionEntry:
    return DecisionEntry(
        decision_id=row.decision_id,
        created_at_utc=row.created_at_utc.isoformat(),
        event=row.event,
        session_id=row.session_id,
        idempotency_key=row.idempotency_key,
        site_version=row.site_version,
        request=json.loads(row.request_json),
        scenario=json.loads(row.scenario_json),
        format=row.format,  # type: ignore[arg-type]
        rate_unit=row.rate_unit,  # type: ignore[arg-type]
        model=json.loads(row.model_json),
        answer=json.loads(row.answer_json),
    )
