"""Helpers of the service tests: loopback HTTP, OCPP schema validation with Decimal floats, scenarios."""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import json
import socket
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

import ocpp.messages
import uvicorn
from jsonschema import Draft4Validator, FormatChecker

from smac_rl_serve.app import create_app
from smac_rl_serve.schemas import ProfileRequest
from smac_rl_serve.settings import Settings

OcppVersion = Literal["1.6", "2.0.1", "2.1"]


def _is_date_time(text: object) -> bool:
    """RFC 3339 date-time with a zone (jsonschema checks it only with an optional package)."""
    return not isinstance(text, str) or dt.datetime.fromisoformat(text).tzinfo is not None


_FORMATS = FormatChecker()
_FORMATS.checks("date-time", raises=ValueError)(_is_date_time)


@functools.cache
def _request_validator(version: OcppVersion, action: str) -> Draft4Validator:
    """The ``ocpp`` package's schema of a CALL payload, floats parsed as ``Decimal``.

    ``ocpp.messages.get_validator`` reads the same file but caches by action and version only,
    ignoring ``parse_float``: a validator built with floats first would be returned for Decimal too,
    and the 1.6 schema's ``multipleOf: 0.1`` then rejects valid limits such as 14.4. So the schema
    is read here, from the package's files, with the package's naming (2.x CALLs end in ``Request``).
    """
    name = action if version == "1.6" else f"{action}Request"
    schemas = Path(ocpp.messages.__file__).parent / f"v{version.replace('.', '')}" / "schemas"
    schema = json.loads((schemas / f"{name}.json").read_text(encoding="utf-8-sig"), parse_float=Decimal)
    return Draft4Validator(schema, format_checker=_FORMATS)


def validate_ocpp(payload: dict[str, Any], version: OcppVersion, action: str = "SetChargingProfile") -> None:
    """Validate a CALL payload against its OCPP schema, as a peer would parse it (floats as Decimal).

    Raises:
        jsonschema.ValidationError: When the payload breaks the schema.
    """
    wire = json.loads(json.dumps(payload), parse_float=Decimal)
    _request_validator(version, action).validate(wire)


OCPP_VERSIONS: dict[str, OcppVersion] = {"ocpp16": "1.6", "ocpp201": "2.0.1", "ocpp21": "2.1"}
"""The OCPP version of each OCPP profile format."""

OCPP_PAYLOAD_KEYS = ("set_charging_profile", "set_charging_profile_request")
"""Where a profile entry carries its OCPP payload (1.6, and 2.0.1 / 2.1)."""


def validate_answer_profiles(answer: object, request_body: object = None) -> int:
    """Validate every OCPP payload of a service answer against its schema (floats as Decimal).

    Every 200 answer that :func:`call` and :func:`post` receive passes through here, so no test can
    produce an OCPP payload that goes unchecked.

    Args:
        answer: A decoded answer body; answers without ``profiles`` are left alone.
        request_body: The request's body, whose ``format`` (or the API's default) names the format
            of a stateless answer (registry answers name their own).

    Returns:
        The number of payloads validated.

    Raises:
        jsonschema.ValidationError: When a payload breaks its schema.
        AssertionError: When an answer carries an OCPP payload but no format names its version.
    """
    if not isinstance(answer, dict) or not isinstance(answer.get("profiles"), list):
        return 0
    profile_format = answer.get("format")
    if profile_format is None and isinstance(request_body, dict):
        profile_format = request_body.get("format", ProfileRequest.model_fields["format"].default)
    n_validated = 0
    for entry in answer["profiles"]:
        for payload_key in OCPP_PAYLOAD_KEYS:
            if payload_key in entry:
                assert profile_format in OCPP_VERSIONS, (profile_format, payload_key)
                validate_ocpp(entry[payload_key], OCPP_VERSIONS[str(profile_format)])
                n_validated += 1
    return n_validated


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextlib.contextmanager
def serving(settings: Settings) -> Iterator[str]:
    """Run the app of ``settings`` under uvicorn on a free loopback port, in a thread; yield its URL."""
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def call(
    method: str,
    url: str,
    body: object = None,
    headers: dict[str, str] | None = None,
    raw: bytes | None = None,
) -> tuple[int, Any, dict[str, str]]:
    """One HTTP request; answers ``(status, JSON body or text, headers)``, 4xx and 5xx included.

    Header names in the answer are lowercase.
    """
    data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
    request = urllib.request.Request(
        url, data=data, method=method, headers={"Content-Type": "application/json", **(headers or {})}
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            status, text, headers_in = response.status, response.read().decode(), response.headers
    except urllib.error.HTTPError as error:
        status, text, headers_in = error.code, error.read().decode(), error.headers
    answer_headers = {name.lower(): value for name, value in headers_in.items()}
    try:
        answer = json.loads(text)
    except json.JSONDecodeError:
        return status, text, answer_headers
    if status == 200:
        validate_answer_profiles(answer, body)
    return status, answer, answer_headers


def problem_fields(answer: dict[str, Any]) -> list[str]:
    """The field paths of a problem answer (422, 404, ...), in order."""
    return [entry["field"] for entry in answer["detail"]]


def assert_needs_a_key_and_the_forecaster(
    url: str, key: str, path: str, body: dict[str, Any], forecaster_field: str
) -> None:
    """On a keyed service without forecasters: 401 without the key, then a 404 naming the forecaster,
    which ``/v1/model`` lists as null while ``/readyz`` stays ready."""
    status, _answer, _ = call("POST", f"{url}{path}", body)
    assert status == 401
    status, answer, _ = call("POST", f"{url}{path}", body, headers={"Authorization": f"Bearer {key}"})
    assert (status, problem_fields(answer)) == (404, [forecaster_field])
    status, model, _ = call("GET", f"{url}/v1/model")
    assert (status, model[forecaster_field]) == (200, None)
    assert call("GET", f"{url}/readyz")[0] == 200


def post(url: str, body: dict[str, Any]) -> tuple[int, str]:
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            status, text = response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()
    if status == 200:
        validate_answer_profiles(json.loads(text), body)
    return status, text


def get(url: str) -> tuple[int, str]:
    with urllib.request.urlopen(url, timeout=30) as response:
        status, text = response.status, response.read().decode()
    if status == 200 and text.startswith("{"):
        validate_answer_profiles(json.loads(text))
    return status, text


def with_idle_chargers(data: dict[str, Any], n_chargers: int = 17) -> dict[str, Any]:
    """``data`` with idle 11 kW AC chargers added beyond the model's 16 connectors.

    The service then answers with least laxity first, whose profiles are hand-checkable.
    """
    idle = [
        {
            "station_id": f"X{i:02d}",
            "kind": "ac",
            "n_phases": 3,
            "max_current_a": 16.0,
            "connectors": [{"evse_id": 1}],
        }
        for i in range(n_chargers)
    ]
    data["site"]["chargers"] = data["site"]["chargers"] + idle
    return data


def utc_in(minutes: float) -> str:
    """ISO 8601 of now plus ``minutes`` (UTC, ``+00:00``)."""
    return (dt.datetime.now(dt.UTC) + dt.timedelta(minutes=minutes)).isoformat()


def site_config(
    site_id: str, profile_format: str = "ocpp201", n_ac_evses: int = 2, **extra: Any
) -> dict[str, Any]:
    """A registry site: DC1 (50 kW DC), AC1 with ``n_ac_evses`` 11 kW three-phase EVSEs, 40 kW grid."""
    return {
        "site": {
            "site_id": site_id,
            "chargers": [
                {"station_id": "DC1", "kind": "dc", "max_power_kw": 50.0, "connectors": [{"evse_id": 1}]},
                {
                    "station_id": "AC1",
                    "kind": "ac",
                    "n_phases": 3,
                    "max_current_a": 16.0,
                    "connectors": [{"evse_id": k + 1} for k in range(n_ac_evses)],
                },
            ],
            "grid": {"import_limit_kw": 40.0},
        },
        "series": {"import_price_eur_per_kwh": 0.25},
        "format": profile_format,
        **extra,
    }


def session_start(session_id: str, station_id: str = "AC1", evse_id: int = 1, **extra: Any) -> dict[str, Any]:
    """A session plugged in five minutes ago, leaving in three hours, wanting 20 kWh of 60."""
    return {
        "session_id": session_id,
        "station_id": station_id,
        "evse_id": evse_id,
        "transaction_id": f"tx-{session_id}"[:36],
        "arrival_utc": utc_in(-5),
        "departure_utc": utc_in(180),
        "battery_capacity_kwh": 60.0,
        "arrival_soc_frac": 0.3,
        "energy_wanted_kwh": 20.0,
        **extra,
    }
