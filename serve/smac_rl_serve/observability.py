"""Operations: Prometheus metrics, request ids and one JSON log line per request.

Each app owns a :class:`ServiceMetrics` with its own ``CollectorRegistry`` (never the global one),
so several apps can live in one process (the tests build many). :class:`RequestTelemetry` is the
outermost ASGI middleware: it takes a valid incoming ``X-Request-ID`` or makes one, echoes it in
the response, counts and times the request by its route template and writes the log line.
Logging is configured by :func:`configure_logging`, called from ``create_app`` (nothing happens at
import).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import re
import sys
import time
import uuid
from typing import Any, Literal

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

FallbackReason = Literal["too_many_connectors", "inference_error", "non_finite_output"]
"""Why least laxity first answered instead of the model."""

FALLBACK_REASONS: tuple[FallbackReason, ...] = ("too_many_connectors", "inference_error", "non_finite_output")

LATENCY_BUCKETS_S = (0.001, 0.0025, 0.005, 0.0075, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
"""Request latency buckets [s]: fine from 1 ms to 100 ms, coarse beyond."""

REQUEST_ID_HEADER = "X-Request-ID"
REQUEST_ID_PATTERN = re.compile(r"[\x21-\x7e]{1,128}")
"""An accepted incoming request id: 1 to 128 visible ASCII characters (a UUID fits)."""

UNMATCHED_ROUTE = "unmatched"
"""The route label of requests no route matched (keeps the label set bounded)."""

REQUEST_LOGGER = "smac_rl_serve.requests"
"""The logger of the per-request lines; ``smac_rl_serve`` is the parent of all service loggers."""


class ServiceMetrics:
    """The service's Prometheus metrics, in a registry of their own.

    Attributes:
        registry: The collector registry ``/metrics`` renders.
        requests: ``smac_http_requests_total{method, route, status}``.
        latency: ``smac_http_request_duration_seconds{method, route}``.
        fallbacks: ``smac_llf_fallbacks_total{reason}``.
        v2g_withheld: ``smac_v2g_withheld_sessions_total{format}`` (OCPP 1.6 and 2.0.1 answers).
        sessions_rendered: ``smac_profile_sessions_rendered_total{format}``.
        replays: ``smac_idempotent_replays_total{kind}``.
        events: ``smac_registry_events_total{kind}``.
        model_info: ``smac_model_info{onnx_sha256, schema_version, n_connectors_max}`` (always 1).
    """

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "smac_http_requests",
            "HTTP requests answered, by route template and status.",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "smac_http_request_duration_seconds",
            "Time from receiving a request to the end of its answer [s], by route template.",
            ["method", "route"],
            buckets=LATENCY_BUCKETS_S,
            registry=self.registry,
        )
        self.fallbacks = Counter(
            "smac_llf_fallbacks",
            "Rollouts answered by least laxity first instead of the model, by reason.",
            ["reason"],
            registry=self.registry,
        )
        self.v2g_withheld = Counter(
            "smac_v2g_withheld_sessions",
            "Sessions that may discharge planned charge-only, their format having no discharge, by format.",
            ["format"],
            registry=self.registry,
        )
        self.sessions_rendered = Counter(
            "smac_profile_sessions_rendered",
            "Session profiles rendered (POST /v1/profiles and registry answers), by format.",
            ["format"],
            registry=self.registry,
        )
        self.replays = Counter(
            "smac_idempotent_replays",
            "Registry events answered with the stored answer of their idempotency key, by kind.",
            ["kind"],
            registry=self.registry,
        )
        self.events = Counter(
            "smac_registry_events",
            "Registry events answered with profiles (replays included), by kind.",
            ["kind"],
            registry=self.registry,
        )
        self.model_info = Gauge(
            "smac_model_info",
            "The loaded policy (value 1).",
            ["onnx_sha256", "schema_version", "n_connectors_max"],
            registry=self.registry,
        )
        for reason in FALLBACK_REASONS:
            self.fallbacks.labels(reason)  # exported at 0 before the first fallback

    def observe_request(self, method: str, route: str, status: int, duration_s: float) -> None:
        """Count and time one answered request."""
        self.requests.labels(method, route, str(status)).inc()
        self.latency.labels(method, route).observe(duration_s)


class JsonFormatter(logging.Formatter):
    """One JSON object per record: ``time`` (UTC, ISO 8601), ``level``, ``logger``, ``message``.

    The fields of ``extra={"fields": {...}}`` are added at the top level.
    """

    def format(self, record: logging.LogRecord) -> str:
        """The record as one line of JSON."""
        entry: dict[str, Any] = {
            "time": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            entry.update(fields)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def configure_logging(level: int = logging.INFO) -> logging.Handler:
    """Give the ``smac_rl_serve`` loggers one JSON handler on stderr (idempotent).

    The loggers do not propagate to the root logger, so each line is written once.

    Args:
        level: The level of the service loggers.

    Returns:
        The handler (tests may point it at another stream with ``setStream``).
    """
    logger = logging.getLogger("smac_rl_serve")
    logger.setLevel(level)
    logger.propagate = False
    for handler in logger.handlers:
        if isinstance(handler.formatter, JsonFormatter):
            return handler
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    logger.addHandler(handler)
    return handler


def accepted_request_id(value: str | None) -> str:
    """The incoming request id when valid, else a new one (32 hex digits)."""
    if value is not None and REQUEST_ID_PATTERN.fullmatch(value):
        return value
    return uuid.uuid4().hex


class RequestTelemetry:
    """ASGI middleware: request id, metrics and one JSON log line per HTTP request.

    The request id is kept in ``request.state.request_id``; routes that know the caller's tenants
    put them in ``request.state.tenant`` for the log line.
    """

    def __init__(self, app: ASGIApp, metrics: ServiceMetrics) -> None:
        self.app = app
        self.metrics = metrics
        self.logger = logging.getLogger(REQUEST_LOGGER)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Run the request, then count, time and log it."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = dict(scope.get("headers") or []).get(REQUEST_ID_HEADER.lower().encode())
        request_id = accepted_request_id(incoming.decode("latin-1") if incoming is not None else None)
        state: dict[str, Any] = scope.setdefault("state", {})
        state["request_id"] = request_id
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
                headers = [
                    (name, value)
                    for name, value in message.get("headers", [])
                    if name.lower() != REQUEST_ID_HEADER.lower().encode()
                ]
                headers.append((REQUEST_ID_HEADER.lower().encode(), request_id.encode()))
                message = {**message, "headers": headers}
            await send(message)

        start = time.perf_counter()
        try:
            await self.app(scope, receive, send_with_id)
        finally:
            duration_s = time.perf_counter() - start
            route_object = scope.get("route")
            route = getattr(route_object, "path", None) or UNMATCHED_ROUTE
            method = str(scope.get("method", ""))
            self.metrics.observe_request(method, route, status, duration_s)
            fields: dict[str, Any] = {
                "request_id": request_id,
                "method": method,
                "route": route,
                "path": scope.get("path", ""),
                "status": status,
                "duration_ms": round(duration_s * 1000.0, 3),
            }
            tenant = state.get("tenant")
            if tenant is not None:
                fields["tenant"] = tenant
            self.logger.info("request", extra={"fields": fields})
