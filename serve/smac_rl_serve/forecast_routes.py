"""The forecast endpoints: ``POST /v1/forecasts/{prices,sessions,arrivals}``, stateless.

Each runs one exported forecaster loaded and checked at start (:mod:`smac_rl_serve.forecasters`,
:mod:`smac_rl_serve.session_forecaster`) on the history the caller sends, and answers 404 when the
service runs without it. They share the key rule of ``POST /v1/profiles``, the documented error
responses and one way of collecting every input problem before answering 422.
"""

from __future__ import annotations

from typing import Any, TypeVar

from fastapi import APIRouter

from smac_rl_serve.errors import ApiError, problem_responses
from smac_rl_serve.forecasters import OnnxArrivalsForecaster, OnnxPriceForecaster, check_price_history
from smac_rl_serve.schemas import (
    ArrivalsForecastAnswer,
    ArrivalsForecastRequest,
    ArrivalsForecastStep,
    PriceForecastAnswer,
    PriceForecastHour,
    PriceForecastRequest,
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

_Forecaster = TypeVar("_Forecaster")


def forecast_responses(missing: str) -> dict[int | str, dict[str, Any]]:
    """The documented error responses of a forecast endpoint whose forecaster may be ``missing``."""
    return problem_responses(
        {
            401: "No API key, or an unknown one (when keys are configured).",
            404: f"The service runs without {missing}.",
            413: "The body is larger than the service accepts.",
            422: "Invalid input: every problem with its field path, value and expectation.",
        }
    )


def loaded(forecaster: _Forecaster | None, field: str, article: str = "a") -> _Forecaster:
    """The forecaster, or a 404 naming the ``field`` whose setting (``<field>_dir``) would load it."""
    if forecaster is None:
        raise ApiError.of(404, field, "none loaded", f"a service started with {article} {field}_dir")
    return forecaster


def forecasts_router(
    prices: OnnxPriceForecaster | None,
    sessions: OnnxSessionNeedsForecaster | None,
    arrivals: OnnxArrivalsForecaster | None,
    dependencies: list[Any],
) -> APIRouter:
    """The three forecast endpoints on the loaded forecasters (None: that endpoint answers 404).

    Args:
        prices: The day-ahead price forecaster.
        sessions: The session-needs forecaster.
        arrivals: The arrivals forecaster.
        dependencies: The caller check of ``POST /v1/profiles`` (keys), applied to each endpoint.
    """
    router = APIRouter(dependencies=dependencies)

    @router.post(
        "/v1/forecasts/prices",
        response_model=PriceForecastAnswer,
        responses=forecast_responses("a price forecaster"),
    )
    def price_forecast(request: PriceForecastRequest) -> PriceForecastAnswer:
        """Day-ahead price quantiles (10/50/90 %) of the hours from ``origin_utc`` on, stateless.

        Needs a key as ``POST /v1/profiles`` does. Reads only the prices of hours before the origin.
        """
        forecaster = loaded(prices, "price_forecaster")
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

    @router.post(
        "/v1/forecasts/sessions",
        response_model=SessionForecastAnswer,
        responses=forecast_responses("a session forecaster"),
    )
    def session_forecast(request: SessionForecastRequest) -> SessionForecastAnswer:
        """Energy [kWh] and dwell time [min] quantiles (10/50/90 %) of sessions arriving, stateless.

        Needs a key as ``POST /v1/profiles`` does. For each arrival, reads only the history's
        sessions that ended before it.
        """
        forecaster = loaded(sessions, "session_forecaster")
        problems = forecaster.check_arrivals(request.arrivals_utc, request.timezone)
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
            result = forecaster.forecast(request.arrivals_utc, history, request.timezone)
        except SessionForecastInputError as exc:
            raise ApiError.from_problems(exc.problems) from None
        return SessionForecastAnswer(
            forecaster={"name": forecaster.name, "version": forecaster.version},
            onnx_sha256=dict(forecaster.onnx_sha256),
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

    @router.post(
        "/v1/forecasts/arrivals",
        response_model=ArrivalsForecastAnswer,
        responses=forecast_responses("an arrivals forecaster"),
    )
    def arrivals_forecast(request: ArrivalsForecastRequest) -> ArrivalsForecastAnswer:
        """Expected arrivals per step (the Poisson mean) of the steps from ``origin_utc`` on, stateless.

        Needs a key as ``POST /v1/profiles`` does. Reads only the counts of steps before the origin.
        """
        forecaster = loaded(arrivals, "arrivals_forecaster", article="an")
        problems = forecaster.check_origin(request.origin_utc, request.horizon_h)
        try:
            history = forecaster.check_history(
                request.origin_utc,
                [c.start_utc for c in request.history],
                [float(c.n_arrivals) for c in request.history],
            )
        except SeriesForecastInputError as exc:
            problems += exc.problems
        if problems:
            raise ApiError.from_problems(problems)
        result = forecaster.forecast(request.origin_utc, history, request.horizon_h)
        return ArrivalsForecastAnswer(
            forecaster={"name": forecaster.name, "version": forecaster.version},
            onnx_sha256=dict(forecaster.onnx_sha256),
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

    return router
