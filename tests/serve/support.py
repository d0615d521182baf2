"""Helpers of the service tests: loopback HTTP, OCPP schema validation with Decimal floats, scenarios."""

from __future__ import annotations

import datetime as dt
import functools
import json
import socket
import urllib.error
import urllib.request
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

import ocpp.messages
from jsonschema import Draft4Validator, FormatChecker

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


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def post(url: str, body: dict[str, Any]) -> tuple[int, str]:
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def get(url: str) -> tuple[int, str]:
    with urllib.request.urlopen(url, timeout=30) as response:
        return response.status, response.read().decode()


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
