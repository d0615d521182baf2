"""The ONNX policy the service runs: loaded, checked against its metadata, rolled out through the core."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import threading
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path

import numpy as np
import numpy.typing as npt
import onnxruntime as ort
from pydantic import ValidationError

from smac_rl.core.arrays import ScenarioArrays
from smac_rl.core.artifacts import POLICY_SCHEMA_VERSION, PolicyMetadata, action_names, layout_entries
from smac_rl.core.errors import SmacError, render_value
from smac_rl.core.observation import ObservationLayout, calendar_table
from smac_rl.core.state import Setpoints, StepContext
from smac_rl_serve.observability import FallbackReason


class ModelError(SmacError):
    """A model folder the service refuses to serve; the message says why."""


class InferenceError(SmacError):
    """The graph failed, or gave non-finite setpoints, on one step; the planner falls back.

    Attributes:
        reason: ``inference_error`` or ``non_finite_output``.
    """

    def __init__(self, reason: FallbackReason, message: str) -> None:
        super().__init__(message)
        self.reason: FallbackReason = reason


CALENDAR_CACHE_SIZE = 256
"""Calendar tables an :class:`OnnxPolicy` keeps (a site's requests and events within one period
share one; 96 steps take 4 KiB)."""


class CalendarCache:
    """The core's :func:`~smac_rl.core.observation.calendar_table` of recent grids, least recently used out.

    A table depends on the grid (time zone, start, step, length) and the exogenous series (the
    price outlook); the key is those, the series by their bytes, so any change to a series is a new
    key. Safe across threads; the tables are read-only.
    """

    def __init__(
        self, n_tables_max: int = CALENDAR_CACHE_SIZE, calendar_flags: tuple[bool, bool] = (False, False)
    ) -> None:
        """Keep at most ``n_tables_max`` tables, with the outlook features the model observes.

        Args:
            n_tables_max: Tables kept.
            calendar_flags: :attr:`ObservationLayout.calendar_flags` of the model's layout.
        """
        self.n_tables_max = n_tables_max
        self.calendar_flags = calendar_flags
        self._tables: OrderedDict[tuple[object, ...], npt.NDArray[np.float64]] = OrderedDict()
        self._lock = threading.Lock()

    @staticmethod
    def key(arrays: ScenarioArrays) -> tuple[object, ...]:
        """What a calendar table is a function of."""
        series = hashlib.blake2b(digest_size=16)
        for field in dataclasses.fields(arrays.series):
            value = getattr(arrays.series, field.name)
            series.update(
                np.ascontiguousarray(value).tobytes()
                if isinstance(value, np.ndarray)
                else repr(value).encode()
            )
        return (arrays.timezone, arrays.start_utc, arrays.step_h, arrays.n_steps, series.digest())

    def table(self, arrays: ScenarioArrays) -> npt.NDArray[np.float64]:
        """The calendar table of a scenario, ``(T, calendar_width(...))``, computed on a miss."""
        key = self.key(arrays)
        with self._lock:
            table = self._tables.get(key)
            if table is not None:
                self._tables.move_to_end(key)
                return table
        table = np.asarray(calendar_table(arrays, None, *self.calendar_flags), dtype=np.float64)
        table.flags.writeable = False
        with self._lock:
            self._tables[key] = table
            while len(self._tables) > self.n_tables_max:
                self._tables.popitem(last=False)
        return table

    def __len__(self) -> int:
        """Tables held."""
        return len(self._tables)


class OnnxPolicy:
    """The exported policy behind the common protocol: observation -> ONNX -> setpoints [kW].

    Attributes:
        model_dir: The model folder, resolved.
        onnx_path: Its ``policy.onnx``.
        metadata_path: Its ``metadata.json``.
        metadata: The checked metadata.
        layout: The observation layout of ``metadata.n_connectors_max``.
    """

    name = "onnx"

    def __init__(self, model_dir: Path) -> None:
        """Load and check a model folder.

        Checks, in order: both files exist; ``metadata.json`` is JSON with this service's
        ``schema_version``; it is valid metadata; the sha256 of ``policy.onnx`` is its
        ``onnx_sha256``; its observation entries (names, order, units, scales) and action names are
        those of :class:`ObservationLayout` for its ``n_connectors_max``; the graph has its input and
        output names and maps a zero observation to finite setpoints of the action's size.

        Raises:
            ModelError: On the first failed check, naming the file, the field, the value found and
                the expectation.
        """
        self.model_dir = model_dir.resolve()
        self.onnx_path, self.metadata_path = self.model_dir / "policy.onnx", self.model_dir / "metadata.json"
        for path in (self.onnx_path, self.metadata_path):
            if not path.is_file():
                raise ModelError(
                    f"model: {path} is missing; expected policy.onnx and metadata.json in {model_dir}"
                )
        self.metadata = _read_metadata(self.metadata_path)
        digest = hashlib.sha256(self.onnx_path.read_bytes()).hexdigest()
        if digest != self.metadata.onnx_sha256:
            raise ModelError(
                f"model: {self.onnx_path} has sha256 {digest}; metadata.json expects "
                f"{self.metadata.onnx_sha256} (field onnx_sha256): the file was altered or replaced"
            )
        self.layout = ObservationLayout.of(self.metadata.n_connectors_max, self.metadata)
        _check_layout(self.metadata_path, self.metadata, self.layout)
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        try:
            self._session = ort.InferenceSession(
                str(self.onnx_path), options, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:  # onnxruntime raises its own, undocumented exception types
            raise ModelError(f"model: {self.onnx_path} does not load in onnxruntime ({exc})") from None
        graph_names = {
            "input_name": [i.name for i in self._session.get_inputs()],
            "output_name": [o.name for o in self._session.get_outputs()],
        }
        for field_name, names in graph_names.items():
            value = getattr(self.metadata, field_name)
            if value not in names:
                raise ModelError(
                    f"model: {self.metadata_path} field {field_name} is {value!r}; "
                    f"expected one of the graph's names {names} in {self.onnx_path}"
                )
        self.probe()
        self._act: Callable[[StepContext], Setpoints] = self._unbound
        self._calendars = CalendarCache(calendar_flags=self.layout.calendar_flags)

    def probe(self) -> None:
        """Run the graph on a zero observation (``/readyz`` and the start both do).

        Raises:
            ModelError: When it fails or its output is not finite, of shape ``(1, action size)``
                (``C_max + 1`` setpoints, then the import cap if the policy acts on it).
        """
        observation = np.zeros((1, self.layout.size), dtype=np.float32)
        try:
            output = self._infer(observation)
        except InferenceError as exc:
            raise ModelError(f"model: {self.onnx_path} fails on a zero observation ({exc})") from None
        expected = (1, self.layout.action_size)
        if output.shape != expected:
            cap = " and the import cap" if self.layout.is_import_cap_acted else ""
            raise ModelError(
                f"model: {self.onnx_path} output {self.metadata.output_name} has shape {output.shape}; "
                f"expected {expected} (n_connectors_max + 1 setpoints{cap})"
            )

    def _infer(self, observation: npt.NDArray[np.float32]) -> npt.NDArray[np.float64]:
        """Setpoints [kW] of a batch of observations.

        Raises:
            InferenceError: When onnxruntime fails or an output is NaN or infinite.
        """
        try:
            feed = {self.metadata.input_name: observation}
            output = self._session.run([self.metadata.output_name], feed)[0]
        except Exception as exc:  # onnxruntime raises its own, undocumented exception types
            raise InferenceError("inference_error", f"{type(exc).__name__}: {exc}") from exc
        kw = np.asarray(output, dtype=np.float64)
        if not np.all(np.isfinite(kw)):
            raise InferenceError("non_finite_output", "the graph gave NaN or infinite setpoints")
        return kw

    def bound(self, arrays: ScenarioArrays) -> Callable[[StepContext], Setpoints]:
        """A decide function for one rollout of ``arrays`` (no shared state: safe across threads).

        The function raises :class:`InferenceError` when the graph fails or gives non-finite output.
        """
        calendar = self._calendars.table(arrays)  # once per rollout at most, not per step

        def act(context: StepContext) -> Setpoints:
            rows = np.broadcast_to(calendar[context.step_index], (context.batch_size, calendar.shape[1]))
            kw = self._infer(self.layout.observe_rows(context, rows).astype(np.float32))
            n_max = self.layout.n_connectors_max
            setpoints = Setpoints(
                ev_power_kw=kw[:, : context.site.n_connectors], storage_power_kw=kw[:, n_max]
            )
            cap_kw = kw[:, n_max + 1] if self.layout.is_import_cap_acted else None
            return self.layout.completed(context, setpoints, cap_kw)

        return act

    def begin_episode(self, arrays: ScenarioArrays) -> None:
        """Bind the policy to one scenario (protocol use in one thread, e.g. evaluation scripts)."""
        self._act = self.bound(arrays)

    def act(self, context: StepContext) -> Setpoints:
        """Setpoints from the graph for the scenario given to :meth:`begin_episode`."""
        return self._act(context)

    @staticmethod
    def _unbound(_context: StepContext) -> Setpoints:
        raise RuntimeError("OnnxPolicy: call begin_episode(arrays) first")


def _read_metadata(path: Path) -> PolicyMetadata:
    """The metadata of ``path``, its schema version checked first.

    Raises:
        ModelError: When it is not JSON, of another schema version, or not valid metadata.
    """
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ModelError(f"model: {path} is not JSON ({exc})") from None
    version = raw.get("schema_version") if isinstance(raw, dict) else None
    if version != POLICY_SCHEMA_VERSION or isinstance(version, bool):
        raise ModelError(
            f"model: {path} field schema_version is {render_value(version)}; expected "
            f"{POLICY_SCHEMA_VERSION} (the metadata format this service reads); re-export the policy"
        )
    try:
        return PolicyMetadata.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "(top level)"
        if first["type"] == "missing":
            value, expectation = "(missing)", "the field to be present"
        else:
            value, expectation = render_value(first.get("input")), first["msg"]
            expectation = expectation.removeprefix("Input should be ").removeprefix("Value error, ")
        raise ModelError(
            f"model: {path} field {where} is {value}; expected {expectation} "
            f"({exc.error_count()} problem(s) in all)"
        ) from None


def _check_layout(path: Path, metadata: PolicyMetadata, layout: ObservationLayout) -> None:
    """Compare the metadata's observation and action layout with this code's, entry by entry.

    Raises:
        ModelError: Naming the first entry that differs, or the lengths when one list is longer.
    """
    origin = f"smac_rl.core.observation for n_connectors_max={layout.n_connectors_max}"
    expected = layout_entries(layout)
    got = metadata.observation
    for k, (entry, want) in enumerate(zip(got, expected, strict=False)):
        for attribute in ("name", "unit", "scale"):
            value, wanted = getattr(entry, attribute), getattr(want, attribute)
            if value != wanted:
                raise ModelError(
                    f"model: {path} field observation[{k}].{attribute} is {value!r}; expected {wanted!r} "
                    f"(the layout of {origin}); re-export the policy"
                )
    if len(got) != len(expected):
        raise ModelError(
            f"model: {path} field observation has {len(got)} entries; expected {len(expected)} "
            f"(the layout of {origin}); re-export the policy"
        )
    names = action_names(layout)
    if metadata.action != names:
        k = next(
            (i for i, (a, b) in enumerate(zip(metadata.action, names, strict=False)) if a != b),
            min(len(metadata.action), len(names)),
        )
        value = metadata.action[k] if k < len(metadata.action) else "(missing)"
        wanted = names[k] if k < len(names) else "(no entry)"
        raise ModelError(
            f"model: {path} field action[{k}] is {value!r}; expected {wanted!r} (the action names of "
            f"{origin}); re-export the policy"
        )
