"""Error answers: every 4xx names the field, the value and the expectation; nothing becomes a 5xx.

The body of an error is ``{"detail": [{"field", "value", "expected"}, ...]}``. Field paths are
dotted with list indices, relative to the request body (``site.chargers[0].max_current_a``), or
``path.<name>``, ``query.<name>`` and ``header.<name>`` for the other parts of a request. Errors
found by pydantic also keep FastAPI's ``type``, ``loc`` and ``msg``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from smac_rl.core.errors import FieldProblem, render_value
from smac_rl.core.scenario_io import describe_expectation

PROBLEM_RESPONSE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "detail": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "field": {"type": "string"},
                    "value": {"type": "string"},
                    "expected": {"type": "string"},
                },
            },
        }
    },
}
"""OpenAPI schema of an error body."""


def problem_responses(texts: dict[int, str]) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` of an endpoint: each status with its description and the error body schema.

    Args:
        texts: Status code -> what it means for the endpoint.
    """
    return {
        status: {"description": text, "content": {"application/json": {"schema": PROBLEM_RESPONSE_SCHEMA}}}
        for status, text in texts.items()
    }


def problem(path: str, value: str, expectation: str) -> dict[str, str]:
    """One entry of an error's ``detail``."""
    return {"field": path, "value": value, "expected": expectation}


class ApiError(Exception):
    """A request the service answers with a 4xx and the problems found.

    Attributes:
        status_code: The HTTP status (400 to 499).
        detail: The problems, each ``{field, value, expected}``.
        headers: Extra response headers (``WWW-Authenticate`` on a 401).
    """

    def __init__(
        self, status_code: int, detail: Sequence[dict[str, str]], headers: dict[str, str] | None = None
    ) -> None:
        self.status_code = status_code
        self.detail = list(detail)
        self.headers = headers or {}
        super().__init__(f"{status_code}: {self.detail}")

    @classmethod
    def of(cls, status_code: int, path: str, value: str, expectation: str) -> ApiError:
        """An error with one problem."""
        return cls(status_code, [problem(path, value, expectation)])

    @classmethod
    def from_problems(cls, problems: Sequence[FieldProblem], prefix: str = "") -> ApiError:
        """A 422 from the core's problems, their paths prefixed (``scenario.``)."""
        return cls(422, [problem(prefix + p.path, p.value, p.expectation) for p in problems])


def json_safe(value: object) -> object:
    """``value`` with non-finite floats as text (strict JSON has no NaN) and other objects as repr."""
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    if value is None or isinstance(value, str | int | bool):
        return value
    return repr(value)


def _dotted(loc: Sequence[int | str]) -> str:
    """``["body", "site", "chargers", 0, "kind"]`` -> ``site.chargers[0].kind``."""
    parts = list(loc)
    if parts and parts[0] == "body":
        parts = parts[1:]
    text = ""
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "body"


def _validation_entry(error: dict[str, Any]) -> dict[str, Any]:
    value = "nothing" if error.get("type") == "missing" else render_value(error.get("input"))
    return {
        "field": _dotted(error.get("loc", ())),
        "value": value,
        "expected": describe_expectation(error),  # type: ignore[arg-type]
        "type": error.get("type"),
        "loc": list(error.get("loc", ())),
        "msg": error.get("msg"),
        "input": json_safe(error.get("input")),
    }


def install_error_handlers(app: FastAPI) -> None:
    """Render :class:`ApiError`, request validation errors, HTTP errors and ``ValueError`` as answers."""

    @app.exception_handler(ApiError)
    async def api_error(_request: Request, exc: ApiError) -> JSONResponse:
        return JSONResponse(status_code=exc.status_code, content={"detail": exc.detail}, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def validation_error(_request: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse(
            status_code=422, content={"detail": [_validation_entry(dict(e)) for e in exc.errors()]}
        )

    @app.exception_handler(HTTPException)
    async def http_error(_request: Request, exc: HTTPException) -> JSONResponse:
        detail = exc.detail if isinstance(exc.detail, list) else [problem("request", "", str(exc.detail))]
        return JSONResponse(status_code=exc.status_code, content={"detail": detail}, headers=exc.headers)

    @app.exception_handler(ValueError)
    async def value_error(_request: Request, exc: ValueError) -> JSONResponse:
        return JSONResponse(status_code=422, content={"detail": [problem("request", "", str(exc))]})

    @app.exception_handler(OverflowError)
    async def overflow_error(_request: Request, exc: OverflowError) -> JSONResponse:
        # Dates near year 1 or 9999 overflow in the core's date arithmetic.
        expectation = f"dates and numbers whose arithmetic stays in range ({exc})"
        return JSONResponse(status_code=422, content={"detail": [problem("request", "", expectation)]})
