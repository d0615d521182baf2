"""The profile service: ``create_app(settings)`` builds the FastAPI app.

``POST /v1/profiles`` takes a site state (the scenario format: site, sessions with their current
SoC, a time grid starting now, signals), rolls the policy forward through the core's projection
and physics over the grid, and answers per session with a charging profile. The registry under
``/v1/sites`` keeps sites, sessions and capacity signals for INCAR's event flow and answers each
event the same way (:mod:`smac_rl_serve.sites`). ``POST /v1/forecasts/prices`` answers day-ahead
price quantiles from the exported LightGBM forecaster, run with onnxruntime on numpy features
(:mod:`smac_rl_serve.forecasters`); ``POST /v1/forecasts/sessions`` answers the energy and dwell
time expected of sessions arriving, from the site's ended sessions, the same way
(:mod:`smac_rl_serve.session_forecaster`); ``POST /v1/forecasts/arrivals`` answers the expected
number of sessions arriving per step (the Poisson mean) from the site's arrival counts, with the
price forecaster's features (:mod:`smac_rl_serve.series_features`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from fastapi.security import HTTPAuthorizationCredentials
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from smac_rl_serve.auth import KeyRing, configured_keys
from smac_rl_serve.catalog import resolve_model_dir
from smac_rl_serve.db import create_registry_engine, upgrade_schema
from smac_rl_serve.errors import ApiError, install_error_handlers, problem, problem_responses
from smac_rl_serve.forecasters import (
    OnnxArrivalsForecaster,
    OnnxPriceForecaster,
    check_price_history,
)
from smac_rl_serve.limits import BodyLimit
from smac_rl_serve.model import ModelError, OnnxPolicy
from smac_rl_serve.observability import RequestTelemetry, ServiceMetrics, configure_logging
from smac_rl_serve.planning import Planner
from smac_rl_serve.registry import Registry
from smac_rl_serve.schemas import (
    FORMAT_DESCRIPTION,
    RATE_UNIT_DESCRIPTION,
    ArrivalsForecastAnswer,
    ArrivalsForecastRequest,
    ArrivalsForecastStep,
    PlanAnswer,
    PriceForecastAnswer,
    PriceForecastHour,
    PriceForecastRequest,
    ProfileRequest,
    SessionForecastAnswer,
    SessionForecastRequest,
    SessionNeedsEntry,
)
from smac_rl_serve.series_features import SeriesForecastInputError
from smac_rl_serve.session_forecaster import (
    OnnxSessionNeedsForecaster,
    SessionForecastInputError,
    check_session_history,
)
from smac_rl_serve.settings import Settings
from smac_rl_serve.sites import bearer, registry_router, tenant_label

__all__ = [
    "FORMAT_DESCRIPTION",
    "RATE_UNIT_DESCRIPTION",
    "ProfileRequest",
    "create_app",
    "create_app_from_environment",
]


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the service with its policy (and forecasters) loaded and checked and its database migrated.

    ``settings.model_dir`` may be a folder or ``NAME@ALIAS`` (:mod:`smac_rl_serve.catalog`).
    Configures the JSON logging of the ``smac_rl_serve`` loggers (one line per request).

    Raises:
        ModelError: When the model folder or a forecaster folder (price, session needs, arrivals) is missing,
            altered or of another layout.
        ValueError: When the API keys are malformed or the database URL is unusable.
    """
    settings = settings or Settings()
    configure_logging()
    policy = OnnxPolicy(resolve_model_dir(settings.model_dir))
    forecaster = (
        None if settings.price_forecaster_dir is None else OnnxPriceForecaster(settings.price_forecaster_dir)
    )
    session_forecaster = (
        None
        if settings.session_forecaster_dir is None
        else OnnxSessionNeedsForecaster(settings.session_forecaster_dir)
    )
    arrivals_forecaster = (
        None
        if settings.arrivals_forecaster_dir is None
        else OnnxArrivalsForecaster(settings.arrivals_forecaster_dir)
    )
    metrics = ServiceMetrics()
    meta = policy.metadata
    metrics.model_info.labels(meta.onnx_sha256, str(meta.schema_version), str(meta.n_connectors_max)).set(1)
    planner = Planner(policy, metrics)
    keys = KeyRing(configured_keys(settings))
    engine = create_registry_engine(settings.database_url)
    upgrade_schema(engine)
    registry = Registry(engine, planner, settings)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        yield
        engine.dispose()

    app = FastAPI(title="SMAC-RL profile service", version="0.2.0", lifespan=lifespan)
    app.state.keys = keys
    app.state.metrics = metrics
    app.add_middleware(BodyLimit, n_body_bytes_max=settings.n_body_bytes_max)
    app.add_middleware(RequestTelemetry, metrics=metrics)  # outermost: sees the 413s too
    install_error_handlers(app)

    @app.exception_handler(OperationalError)
    async def database_busy(_request: Request, _exc: OperationalError) -> JSONResponse:
        return JSONResponse(
            status_code=503,
            content={"detail": [problem("database", "unavailable or busy", "a retry in a moment")]},
            headers={"Retry-After": "1"},
        )

    def profiles_caller(
        request: Request,
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
    ) -> None:
        if not settings.allow_anonymous_profiles:
            who = keys.require(credentials.credentials if credentials else None)
            request.state.tenant = tenant_label(who)

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz")
    def readyz() -> dict[str, str]:
        """Ready when the model answers a zero observation and the database answers."""
        try:
            policy.probe()
            if forecaster is not None:
                forecaster.probe()
            if session_forecaster is not None:
                session_forecaster.probe()
            if arrivals_forecaster is not None:
                arrivals_forecaster.probe()
        except ModelError:
            raise ApiError.of(503, "model", "failing", "a model that answers") from None
        try:
            with engine.connect() as connection:
                connection.execute(text("SELECT 1"))
        except OperationalError:
            raise ApiError.of(503, "database", "unreachable", "a reachable database") from None
        return {"status": "ready"}

    @app.get("/v1/model")
    def model() -> dict[str, Any]:
        """The loaded model's metadata (observation entries left out), its folder and ONNX path.

        ``price_forecaster``: the price forecaster's metadata (holiday dates counted, not listed),
        its folder and horizon, or null when none is loaded; ``session_forecaster`` and
        ``arrivals_forecaster`` likewise.
        """
        return {
            **policy.metadata.model_dump(mode="json", exclude={"observation"}),
            "model_dir": str(policy.model_dir),
            "onnx_path": str(policy.onnx_path),
            "price_forecaster": None if forecaster is None else forecaster.summary(),
            "session_forecaster": None if session_forecaster is None else session_forecaster.summary(),
            "arrivals_forecaster": None if arrivals_forecaster is None else arrivals_forecaster.summary(),
        }

    @app.get("/metrics", response_class=PlainTextResponse)
    def metrics_text() -> Response:
        """Prometheus metrics of this app (text exposition format)."""
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    @app.post(
        "/v1/profiles",
        response_model=PlanAnswer,
        dependencies=[Depends(profiles_caller)],
        responses=problem_responses(
            {
                401: "No API key, or an unknown one (when keys are configured).",
                413: "The body is larger than the service accepts.",
                422: "Invalid input: every problem with its field path, value and expectation.",
            }
        ),
    )
    def profiles(request: ProfileRequest) -> JSONResponse:
        """Profiles of a whole site state, stateless.

        Needs a key when keys are configured, unless the settings allow anonymous profile requests.
        """
        spec = request.scenario
        problems = planner.problems(spec, request.format, request.rate_unit, scenario_prefix="scenario.")
        if len(spec.sessions) > settings.n_sessions_max:
            problems.append(
                problem("scenario.sessions", str(len(spec.sessions)), f"at most {settings.n_sessions_max}")
            )
        if spec.time_grid.n_steps > settings.max_horizon_steps:
            problems.append(
                problem(
                    "scenario.time_grid.n_steps",
                    str(spec.time_grid.n_steps),
                    f"at most {settings.max_horizon_steps}",
                )
            )
        if problems:
            return JSONResponse(status_code=422, content={"detail": problems})
        return JSONResponse(content=planner.answer(spec, request.format, request.rate_unit))

    @app.post(
        "/v1/forecasts/prices",
        response_model=PriceForecastAnswer,
        dependencies=[Depends(profiles_caller)],
        responses=problem_responses(
            {
                401: "No API key, or an unknown one (when keys are configured).",
                404: "The service runs without a price forecaster.",
                413: "The body is larger than the service accepts.",
                422: "Invalid input: every problem with its field path, value and expectation.",
            }
        ),
    )
    def price_forecast(request: PriceForecastRequest) -> PriceForecastAnswer:
        """Day-ahead price quantiles (10/50/90 %) of the hours from ``origin_utc`` on, stateless.

        Needs a key as ``POST /v1/profiles`` does. Reads only the prices of hours before the origin.
        """
        if forecaster is None:
            raise ApiError.of(
                404, "price_forecaster", "none loaded", "a service started with a price_forecaster_dir"
            )
        problems = forecaster.check_origin(request.origin_utc, request.horizon_h)
        try:
            history = check_price_history(
                request.origin_utc,
                [p.start_utc for p in request.prices],
                [p.price_eur_per_kwh for p in request.prices],
            )
        except SeriesForecastInputError as exc:
            problems += exc.problems
        if problems:
            raise ApiError.from_problems(problems)
        result = forecaster.forecast(request.origin_utc, history, request.horizon_h)
        return PriceForecastAnswer(
            forecaster={"name": forecaster.name, "version": forecaster.version},
            onnx_sha256=dict(forecaster.onnx_sha256),
            origin_utc=result.origin_utc.isoformat(),
            n_history_h=int(history.shape[0]),
            forecasts=[
                PriceForecastHour(
                    start_utc=start.isoformat(),
                    lead_h=float(k),
                    price_q10_eur_per_kwh=float(q[0]),
                    price_q50_eur_per_kwh=float(q[1]),
                    price_q90_eur_per_kwh=float(q[2]),
                )
                for k, (start, q) in enumerate(
                    zip(result.start_utc, result.quantiles_eur_per_kwh, strict=True)
                )
            ],
        )

    @app.post(
        "/v1/forecasts/sessions",
        response_model=SessionForecastAnswer,
        dependencies=[Depends(profiles_caller)],
        responses=problem_responses(
            {
                401: "No API key, or an unknown one (when keys are configured).",
                404: "The service runs without a session forecaster.",
                413: "The body is larger than the service accepts.",
                422: "Invalid input: every problem with its field path, value and expectation.",
            }
        ),
    )
    def session_forecast(request: SessionForecastRequest) -> SessionForecastAnswer:
        """Energy [kWh] and dwell time [min] quantiles (10/50/90 %) of sessions arriving, stateless.

        Needs a key as ``POST /v1/profiles`` does. For each arrival, reads only the history's
        sessions that ended before it.
        """
        if session_forecaster is None:
            raise ApiError.of(
                404, "session_forecaster", "none loaded", "a service started with a session_forecaster_dir"
            )
        problems = session_forecaster.check_arrivals(request.arrivals_utc, request.timezone)
        try:
            history = check_session_history(
                [s.arrival_utc for s in request.history],
                [s.departure_utc for s in request.history],
                [s.energy_kwh for s in request.history],
            )
        except SessionForecastInputError as exc:
            problems += exc.problems
        if problems:
            raise ApiError.from_problems(problems)
        try:
            result = session_forecaster.forecast(request.arrivals_utc, history, request.timezone)
        except SessionForecastInputError as exc:
            raise ApiError.from_problems(exc.problems) from None
        return SessionForecastAnswer(
            forecaster={"name": session_forecaster.name, "version": session_forecaster.version},
            onnx_sha256=dict(session_forecaster.onnx_sha256),
            timezone=result.timezone,
            n_history_sessions=history.n_sessions,
            forecasts=[
                SessionNeedsEntry(
                    arrival_utc=arrival.isoformat(),
                    n_sessions_28d=int(n),
                    energy_q10_kwh=float(q[0]),
                    energy_q50_kwh=float(q[1]),
                    energy_q90_kwh=float(q[2]),
                    dwell_q10_min=float(q[3]),
                    dwell_q50_min=float(q[4]),
                    dwell_q90_min=float(q[5]),
                )
                for arrival, n, q in zip(
                    result.arrival_utc, result.n_sessions_28d.tolist(), result.quantiles, strict=True
                )
            ],
        )

    @app.post(
        "/v1/forecasts/arrivals",
        response_model=ArrivalsForecastAnswer,
        dependencies=[Depends(profiles_caller)],
        responses=problem_responses(
            {
                401: "No API key, or an unknown one (when keys are configured).",
                404: "The service runs without an arrivals forecaster.",
                413: "The body is larger than the service accepts.",
                422: "Invalid input: every problem with its field path, value and expectation.",
            }
        ),
    )
    def arrivals_forecast(request: ArrivalsForecastRequest) -> ArrivalsForecastAnswer:
        """Expected arrivals per step (the Poisson mean) of the steps from ``origin_utc`` on, stateless.

        Needs a key as ``POST /v1/profiles`` does. Reads only the counts of steps before the origin.
        """
        if arrivals_forecaster is None:
            raise ApiError.of(
                404,
                "arrivals_forecaster",
                "none loaded",
                "a service started with an arrivals_forecaster_dir",
            )
        problems = arrivals_forecaster.check_origin(request.origin_utc, request.horizon_h)
        try:
            history = arrivals_forecaster.check_history(
                request.origin_utc,
                [c.start_utc for c in request.history],
                [float(c.n_arrivals) for c in request.history],
            )
        except SeriesForecastInputError as exc:
            problems += exc.problems
        if problems:
            raise ApiError.from_problems(problems)
        result = arrivals_forecaster.forecast(request.origin_utc, history, request.horizon_h)
        return ArrivalsForecastAnswer(
            forecaster={"name": arrivals_forecaster.name, "version": arrivals_forecaster.version},
            onnx_sha256=dict(arrivals_forecaster.onnx_sha256),
            origin_utc=result.origin_utc.isoformat(),
            step_min=result.step_min,
            n_history_steps=int(history.shape[0]),
            forecasts=[
                ArrivalsForecastStep(
                    start_utc=start.isoformat(),
                    lead_h=k * result.step_min / 60.0,
                    n_arrivals_mean=float(mean),
                )
                for k, (start, mean) in enumerate(
                    zip(result.start_utc, result.n_arrivals_mean.tolist(), strict=True)
                )
            ],
        )

    app.include_router(registry_router(registry, settings))
    return app


def create_app_from_environment() -> FastAPI:
    """The app with :meth:`Settings.from_environment` (``uvicorn --factory`` entry point)."""
    return create_app(Settings.from_environment())
