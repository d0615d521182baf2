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
price forecaster's features (the endpoints: :mod:`smac_rl_serve.forecast_routes`).
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
from smac_rl_serve.forecast_routes import forecasts_router
from smac_rl_serve.forecasters import OnnxArrivalsForecaster, OnnxPriceForecaster
from smac_rl_serve.limits import BodyLimit
from smac_rl_serve.model import ModelError, OnnxPolicy
from smac_rl_serve.observability import RequestTelemetry, ServiceMetrics, configure_logging
from smac_rl_serve.planning import Planner
from smac_rl_serve.registry import Registry
from smac_rl_serve.schemas import (
    FORMAT_DESCRIPTION,
    RATE_UNIT_DESCRIPTION,
    PlanAnswer,
    ProfileRequest,
)
from smac_rl_serve.session_forecaster import OnnxSessionNeedsForecaster
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

    app.include_router(
        forecasts_router(forecaster, session_forecaster, arrivals_forecaster, [Depends(profiles_caller)])
    )
    app.include_router(registry_router(registry, settings))
    return app


def create_app_from_environment() -> FastAPI:
    """The app with :meth:`Settings.from_environment` (``uvicorn --factory`` entry point)."""
    return create_app(Settings.from_environment())
