"""The ONNX policy the service runs: loaded, checked against its metadata, rolled out through the core."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnxruntime as ort
from pydantic import ValidationError

from smac_rl.core.arrays import ScenarioArrays
from smac_rl.core.artifacts import PolicyMetadata, action_names, layout_entries
from smac_rl.core.errors import SmacError
from smac_rl.core.observation import ObservationLayout
from smac_rl.core.state import Setpoints, StepContext


class ModelError(SmacError):
    """A model folder the service refuses to serve; the message says why."""


class OnnxPolicy:
    """The exported policy behind the common protocol: observation -> ONNX -> setpoints [kW]."""

    name = "onnx"

    def __init__(self, model_dir: Path) -> None:
        """Load and check a model folder.

        Raises:
            ModelError: When a file is missing, the metadata is invalid, the ONNX hash differs from
                the metadata's, or the layout differs from this code's.
        """
        onnx_path, metadata_path = model_dir / "policy.onnx", model_dir / "metadata.json"
        for path in (onnx_path, metadata_path):
            if not path.is_file():
                raise ModelError(
                    f"model: {path} is missing; expected policy.onnx and metadata.json in {model_dir}"
                )
        try:
            self.metadata = PolicyMetadata.model_validate_json(metadata_path.read_text(encoding="utf-8"))
        except ValidationError as exc:
            raise ModelError(
                f"model: {metadata_path} is not valid metadata ({exc.error_count()} problems)"
            ) from None
        digest = hashlib.sha256(onnx_path.read_bytes()).hexdigest()
        if digest != self.metadata.onnx_sha256:
            raise ModelError(
                f"model: {onnx_path} has sha256 {digest}; metadata.json expects {self.metadata.onnx_sha256}"
            )
        self.layout = ObservationLayout(self.metadata.n_connectors_max)
        if self.metadata.observation != layout_entries(self.layout) or self.metadata.action != action_names(
            self.layout
        ):
            raise ModelError(
                "model: its observation or action layout differs from this service's; re-export it"
            )
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        self._session = ort.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])
        self._act: Callable[[StepContext], Setpoints] = self._unbound

    def bound(self, arrays: ScenarioArrays) -> Callable[[StepContext], Setpoints]:
        """A decide function for one rollout of ``arrays`` (no shared state: safe across threads)."""

        def act(context: StepContext) -> Setpoints:
            observation = self.layout.observe(arrays, context).astype(np.float32)
            output = self._session.run([self.metadata.output_name], {self.metadata.input_name: observation})[
                0
            ]
            kw = np.asarray(output, dtype=np.float64)
            return Setpoints(ev_power_kw=kw[:, : context.site.n_connectors], storage_power_kw=kw[:, -1])

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
