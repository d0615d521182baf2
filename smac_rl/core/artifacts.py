"""Metadata of an exported policy: what the service checks before it serves a model."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from smac_rl.core.observation import ObservationLayout
from smac_rl.core.specs.base import StrictModel
from smac_rl.core.units import SIGN_CONVENTION

POLICY_SCHEMA_VERSION = 1


class FeatureEntry(StrictModel):
    """One observation entry as recorded in the metadata."""

    name: str
    unit: str
    scale: float


class PolicyMetadata(StrictModel):
    """``metadata.json`` beside ``policy.onnx``.

    Attributes:
        schema_version: Version of this format.
        kind: What the ONNX graph maps: raw observations to setpoints in kW.
        n_connectors_max: Connectors the policy has room for.
        observation: Ordered observation entries (name, unit, normalisation divisor).
        action: Ordered output names (connector setpoints, then storage, then the import cap) [kW].
        step_min: Step length the policy was trained on [min].
        horizon_steps: Episode length it was trained on [steps].
        sign_convention: The project's sign convention.
        input_name: ONNX input name; output_name: ONNX output name.
        onnx_sha256: sha256 of ``policy.onnx``.
        onnx_opset_version: ONNX opset.
        mlflow_run_id: The training run.
        git_sha: Commit the policy was trained from.
        template: Template it was trained on.
        deadline_floor_margin_steps: The policy's deadline floor: the graph's connector setpoints
            are raised to :func:`smac_rl.core.observation.deadline_floor_kw` with this margin [steps]
            at the request's own step length (the service does it after the graph, as training did);
            None: the graph's setpoints as they are.
        is_price_rank_observed: The observation's site features end with the price ranks
            (:data:`smac_rl.core.observation.PRICE_OUTLOOK_FEATURES`); absent in older metadata (False).
        is_load_outlook_observed: The observation's site features add the net-load outlook
            (:data:`smac_rl.core.observation.LOAD_OUTLOOK_FEATURES`); absent in older metadata (False).
        is_import_cap_acted: The graph's output ends with the site's import cap [kW]; the service
            holds the setpoints to it after the floor
            (:meth:`smac_rl.core.observation.ObservationLayout.completed`); absent in older metadata
            (False).
        is_min_current_rounded: The service rounds the graph's charging setpoints below the minimum
            current to 0 or the minimum before the floor
            (:func:`smac_rl.core.observation.round_to_minimum_current`), and raises urgent deadline
            floors below it to it; absent in older metadata (False).
        is_paid_peak_filled: The service keeps the import cap at least at the billing peak so far
            and raises charging up to it, least laxity first
            (:func:`smac_rl.core.observation.fill_to_paid_peak`); absent in older metadata (False).
    """

    schema_version: Literal[1] = 1
    kind: Literal["observation_to_setpoints_kw"] = "observation_to_setpoints_kw"
    n_connectors_max: int = Field(ge=1)
    observation: list[FeatureEntry]
    action: list[str]
    step_min: int
    horizon_steps: int
    sign_convention: str = SIGN_CONVENTION
    input_name: str = "observation"
    output_name: str = "setpoints_kw"
    onnx_sha256: str
    onnx_opset_version: int
    mlflow_run_id: str
    git_sha: str
    template: str
    deadline_floor_margin_steps: float | None = Field(default=None, ge=0)
    is_price_rank_observed: bool = False
    is_load_outlook_observed: bool = False
    is_import_cap_acted: bool = False
    is_min_current_rounded: bool = False
    is_paid_peak_filled: bool = False


def layout_entries(layout: ObservationLayout) -> list[FeatureEntry]:
    """The layout's observation entries for the metadata."""
    return [
        FeatureEntry(name=name, unit=unit, scale=float(scale))
        for name, unit, scale in zip(layout.names(), layout.units(), layout.scales(), strict=True)
    ]


def action_names(layout: ObservationLayout) -> list[str]:
    """Output names: ``c00.power_kw`` ... then ``storage.power_kw``, then ``site.import_cap_kw`` if acted."""
    cap = ["site.import_cap_kw"] if layout.is_import_cap_acted else []
    return [f"c{c:02d}.power_kw" for c in range(layout.n_connectors_max)] + ["storage.power_kw", *cap]
