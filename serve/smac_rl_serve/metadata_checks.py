"""Checks of an exported forecaster folder, shared by the service's price, arrivals and session forecasters.

An exported forecaster is a folder of ONNX graphs (one per output) and ``metadata.json`` (written by
``smac_rl_forecasting.onnx_export``). The service checks it at start: every failed check raises a
:class:`smac_rl_serve.model.ModelError` naming the file, the field, the value found and the
expectation. The functions here hold the checks every forecaster makes; each forecaster
(:mod:`smac_rl_serve.forecasters` for the slot forecasters, prices and arrivals, and
:mod:`smac_rl_serve.session_forecaster`) adds its own fields.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import numpy as np
import onnxruntime as ort

from smac_rl.core.errors import render_value
from smac_rl_serve.errors import json_safe
from smac_rl_serve.model import ModelError

FORECASTER_SCHEMA_VERSION = 1
"""The forecaster metadata format this service reads (``schema_version``)."""

_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


def expect(where: str, field: str, value: object, ok: bool, expectation: str) -> None:
    """Raise a :class:`ModelError` naming the metadata field when ``ok`` is false.

    Args:
        where: The forecaster and its file (``price forecaster: /path/metadata.json``).
        field: The field checked (``features.timezone``).
        value: The value found.
        ok: Whether it passes.
        expectation: What was expected, in words.
    """
    if not ok:
        raise ModelError(f"{where} field {field} is {render_value(value)}; expected {expectation}")


def json_object(where: str, field: str, value: object, expectation: str) -> dict[str, Any]:
    """``value`` when it is a JSON object, else a :class:`ModelError` naming the field."""
    if not isinstance(value, dict):
        shown = "(missing)" if value is None else render_value(value)
        raise ModelError(f"{where} field {field} is {shown}; expected {expectation}")
    return value


def whole_number(where: str, field: str, value: object) -> int:
    """``value`` when it is a whole number (not a boolean), else a :class:`ModelError` naming the field."""
    if not isinstance(value, int) or isinstance(value, bool):
        raise ModelError(f"{where} field {field} is {render_value(value)}; expected a whole number")
    return value


def read_metadata(model_dir: Path, kind: str, contents: str) -> dict[str, Any]:
    """``metadata.json`` of a forecaster folder: present, a JSON object, of this service's schema version.

    Args:
        model_dir: The folder (its ``metadata.json`` is read from the resolved folder).
        kind: The forecaster in messages (``price forecaster``).
        contents: What the folder should hold, in words (``metadata.json and q10/q50/q90.onnx``).

    Raises:
        ModelError: For a missing file, one that is not JSON or not an object, or another
            ``schema_version`` than :data:`FORECASTER_SCHEMA_VERSION`.
    """
    metadata_path = model_dir.resolve() / "metadata.json"
    where = f"{kind}: {metadata_path}"
    if not metadata_path.is_file():
        raise ModelError(f"{where} is missing; expected {contents} in {model_dir}")
    try:
        raw = json.loads(metadata_path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ModelError(f"{where} is not JSON ({exc})") from None
    if not isinstance(raw, dict):
        raise ModelError(f"{where} is a {type(raw).__name__}; expected a JSON object")
    version = raw.get("schema_version")
    if version != FORECASTER_SCHEMA_VERSION or isinstance(version, bool):
        raise ModelError(
            f"{where} field schema_version is {render_value(version)}; expected "
            f"{FORECASTER_SCHEMA_VERSION} (the metadata format this service reads); "
            "re-export the forecaster"
        )
    return raw


def check_timezone(where: str, features: dict[str, Any]) -> str:
    """The ``features.timezone`` of the metadata, when it is a known IANA time zone name."""
    timezone = features.get("timezone")
    try:
        zone_ok = isinstance(timezone, str) and ZoneInfo(timezone) is not None
    except (ZoneInfoNotFoundError, ValueError, OSError):
        zone_ok = False
    expect(where, "features.timezone", timezone, zone_ok, "an IANA time zone name")
    return str(timezone)


@dataclass(frozen=True)
class HolidayDates:
    """The public holidays a forecaster's metadata lists (its ``holidays`` entry).

    Attributes:
        dates: Public holidays (local dates) of ``first_year .. last_year``.
        first_year: First year the holidays are known for.
        last_year: Last year the holidays are known for.
    """

    dates: frozenset[dt.date]
    first_year: int
    last_year: int


def read_holidays(where: str, raw: dict[str, Any], features: dict[str, Any]) -> HolidayDates:
    """The metadata's ``holidays``: of the features' country and subdivision, years and ISO dates.

    Raises:
        ModelError: For holidays missing, of another country or subdivision, years out of order,
            or dates that are not ISO dates.
    """
    holidays = json_object(
        where,
        "holidays",
        raw.get("holidays"),
        "the public holidays the exporter writes (smac_rl_forecasting.onnx_export.add_holidays_to_metadata)",
    )
    for key in ("country", "subdiv"):
        wanted = features.get(f"holiday_{key}")
        expect(where, f"holidays.{key}", holidays.get(key), holidays.get(key) == wanted, repr(wanted))
    first = whole_number(where, "holidays.first_year", holidays.get("first_year"))
    last = whole_number(where, "holidays.last_year", holidays.get("last_year"))
    expect(where, "holidays.last_year", last, first <= last, f"at least first_year {first}")
    dates = holidays.get("dates")
    if not isinstance(dates, list) or not all(isinstance(d, str) and _DATE.fullmatch(d) for d in dates):
        raise ModelError(
            f"{where} field holidays.dates is {render_value(dates)}; "
            "expected a list of ISO dates (YYYY-MM-DD)"
        )
    try:
        parsed = frozenset(dt.date.fromisoformat(d) for d in dates)
    except ValueError as exc:
        raise ModelError(f"{where} field holidays.dates holds an invalid date ({exc})") from None
    return HolidayDates(dates=parsed, first_year=first, last_year=last)


def check_feature_names(where: str, raw: dict[str, Any], feature_names: Sequence[str], builder: str) -> None:
    """The metadata's ``feature_names`` are ``feature_names`` and ``inputs.features.shape`` their number.

    Args:
        where: The forecaster and its metadata file, in messages.
        raw: The metadata.
        feature_names: The features the service builds, in order.
        builder: The module that builds them, in messages.

    Raises:
        ModelError: For other names, another order or another width.
    """
    names = list(feature_names)
    expect(
        where,
        "feature_names",
        raw.get("feature_names"),
        raw.get("feature_names") == names,
        f"{names} (the features {builder} builds)",
    )
    inputs_entry = json_object(where, "inputs", raw.get("inputs"), "an object with features")
    features_entry = json_object(where, "inputs.features", inputs_entry.get("features"), "an object")
    shape = features_entry.get("shape")
    expect(where, "inputs.features.shape", shape, shape == ["N", len(names)], f"['N', {len(names)}]")


def check_outputs(where: str, raw: dict[str, Any], names: Sequence[str]) -> dict[str, Any]:
    """The metadata's ``outputs``: an object with one entry per graph of ``names``, no more.

    Raises:
        ModelError: For another set of outputs.
    """
    outputs = raw.get("outputs")
    expect(
        where,
        "outputs",
        sorted(outputs) if isinstance(outputs, dict) else outputs,
        isinstance(outputs, dict) and sorted(outputs) == sorted(names),
        f"the outputs {list(names)}",
    )
    return json_object(where, "outputs", outputs, "an object")


def load_graphs(
    where: str, kind: str, model_dir: Path, outputs: object, names: Sequence[str], width: int
) -> tuple[dict[str, Any], dict[str, str]]:
    """Load a forecaster's graphs, one per output, each checked, then run on a zero row.

    Each graph: its ``outputs.<name>.file`` is a file name beside ``metadata.json``, the file exists,
    has the metadata's ``sha256``, loads in onnxruntime (one thread), takes one input ``features``
    of ``width`` columns and maps a zero row to one finite number.

    Args:
        where: The forecaster and its metadata file, in messages.
        kind: The forecaster in messages (``price forecaster``).
        model_dir: The folder.
        outputs: The metadata's ``outputs`` (checked to be an object holding ``names`` before).
        names: The outputs, in order.
        width: Number of features.

    Returns:
        The inference sessions and the graphs' sha256 hex digests, by output name.

    Raises:
        ModelError: On the first failed check.
    """
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    sessions: dict[str, Any] = {}
    digests: dict[str, str] = {}
    for name in names:
        entry = outputs.get(name) if isinstance(outputs, dict) else None
        file_name = entry.get("file") if isinstance(entry, dict) else None
        expected = entry.get("sha256") if isinstance(entry, dict) else None
        expect(
            where,
            f"outputs.{name}.file",
            file_name,
            isinstance(file_name, str) and Path(file_name).name == file_name,
            "a file name beside metadata.json",
        )
        path = model_dir / str(file_name)
        if not path.is_file():
            raise ModelError(f"{kind}: {path} is missing; expected it (metadata.json outputs.{name})")
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        if digest != expected:
            raise ModelError(
                f"{kind}: {path} has sha256 {digest}; metadata.json expects {expected} "
                f"(field outputs.{name}.sha256): the file was altered or replaced"
            )
        digests[name] = digest
        try:
            session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own, undocumented exception types
            raise ModelError(f"{kind}: {path} does not load in onnxruntime ({exc})") from None
        inputs = session.get_inputs()
        graph_width = inputs[0].shape[-1] if len(inputs) == 1 and inputs[0].shape else None
        if len(inputs) != 1 or inputs[0].name != "features" or graph_width != width:
            found = [(i.name, i.shape) for i in inputs]
            raise ModelError(
                f"{kind}: {path} takes {found}; expected one input 'features' of width "
                f"{width} (metadata.json feature_names)"
            )
        sessions[name] = session
    probe_graphs(kind, sessions, width)
    return sessions, digests


def probe_graphs(kind: str, sessions: dict[str, Any], width: int) -> None:
    """Run each graph on a zero row of ``width`` features.

    Raises:
        ModelError: When one fails or does not give one finite number.
    """
    row = np.zeros((1, width), dtype=np.float32)
    for name, session in sessions.items():
        try:
            output = np.asarray(session.run(None, {"features": row})[0], dtype=np.float64)
        except Exception as exc:  # onnxruntime raises its own, undocumented exception types
            raise ModelError(f"{kind}: {name}.onnx fails on a zero row ({exc})") from None
        if output.size != 1 or not np.all(np.isfinite(output)):
            raise ModelError(
                f"{kind}: {name}.onnx gives {output.tolist()} on a zero row; expected one finite number"
            )


def metadata_summary(metadata: dict[str, Any], model_dir: Path) -> dict[str, Any]:
    """The metadata for ``/v1/model`` (the holiday dates counted, not listed), strict-JSON safe."""
    shown = dict(metadata)
    holidays = dict(shown.get("holidays") or {})
    holidays["n_dates"] = len(holidays.pop("dates", []))
    shown["holidays"] = holidays
    return {**{str(k): json_safe(v) for k, v in shown.items()}, "model_dir": str(model_dir)}


class ForecasterFolder:
    """An exported forecaster folder: its checked ``metadata.json`` and, once loaded, its graphs.

    Subclasses set :attr:`kind`, call ``super().__init__`` (which reads the metadata), check their
    own fields and then :meth:`_load_graphs`.

    Attributes:
        kind: The forecaster in messages (``price forecaster``).
        model_dir: The folder, resolved.
        metadata_path: Its ``metadata.json``.
        metadata: The metadata as read.
        where: The forecaster and its metadata file, in messages.
        onnx_sha256: Hash of each graph, by output name.
    """

    kind = "forecaster"

    def __init__(self, model_dir: Path, contents: str) -> None:
        """Read the folder's metadata (:func:`read_metadata`; ``contents`` as there)."""
        self.model_dir = model_dir.resolve()
        self.metadata_path = self.model_dir / "metadata.json"
        self.where = f"{self.kind}: {self.metadata_path}"
        self.metadata: dict[str, Any] = read_metadata(model_dir, self.kind, contents)
        self._sessions: dict[str, Any] = {}
        self._width = 0
        self.onnx_sha256: dict[str, str] = {}

    def _load_graphs(self, outputs: object, names: Sequence[str], width: int) -> None:
        """Load and probe the graphs (:func:`load_graphs`)."""
        self._sessions, self.onnx_sha256 = load_graphs(
            self.where, self.kind, self.model_dir, outputs, names, width
        )
        self._width = width

    def probe(self) -> None:
        """Run each graph on a zero row.

        Raises:
            ModelError: When one fails or does not give one finite number.
        """
        probe_graphs(self.kind, self._sessions, self._width)

    @property
    def name(self) -> str:
        """The model's name (the metadata's ``name``, else the folder's parent's name)."""
        return str(self.metadata.get("name", self.model_dir.parent.name))

    @property
    def version(self) -> str:
        """The model's version (the metadata's ``version``, else the folder's name)."""
        return str(self.metadata.get("version", self.model_dir.name))

    def summary(self) -> dict[str, Any]:
        """The metadata for ``/v1/model`` (the holiday dates counted, not listed), strict-JSON safe."""
        return metadata_summary(self.metadata, self.model_dir)
