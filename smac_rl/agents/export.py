"""Export a trained SB3 policy to ONNX: normalisation and action scaling inside the graph."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import torch
from sb3_contrib.tqc.policies import TQCPolicy
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.policies import ActorCriticPolicy
from stable_baselines3.sac.policies import SACPolicy

from smac_rl.agents.tracking import git_sha
from smac_rl.core.artifacts import PolicyMetadata, action_names, layout_entries
from smac_rl.core.observation import CONNECTOR_FEATURES, ObservationLayout
from smac_rl.data.template_spec import load_template

OPSET = 18
MINUTES_PER_DAY = 1440


class _SetpointGraph(torch.nn.Module):
    """Raw observation -> normalise -> actor mean -> clip to [-1, 1] -> setpoints [kW] of the step's box.

    A layout that acts on the import cap gets one more output, the cap [kW] (the service holds the
    setpoints to it, :meth:`smac_rl.core.observation.ObservationLayout.completed`).
    """

    def __init__(self, model: BaseAlgorithm, layout: ObservationLayout) -> None:
        super().__init__()
        self.policy = model.policy
        self.scales = torch.nn.Buffer(torch.as_tensor(layout.scales(), dtype=torch.float32))
        n_site, n_block = layout.n_site_features, len(CONNECTOR_FEATURES)
        names = [f.name for f in CONNECTOR_FEATURES]
        site_names = [f.name for f in layout.site_features]
        blocks = n_site + n_block * np.arange(layout.n_connectors_max)
        self.upper_index = torch.nn.Buffer(torch.as_tensor(blocks + names.index("upper_kw")))
        self.lower_index = torch.nn.Buffer(torch.as_tensor(blocks + names.index("lower_kw")))
        self.storage_upper_index = site_names.index("storage_upper_kw")
        self.storage_lower_index = site_names.index("storage_lower_kw")
        self.import_limit_index = site_names.index("import_limit_kw")
        self.n_connectors_max = layout.n_connectors_max
        self.is_import_cap_acted = layout.is_import_cap_acted

    def _action(self, normalised: torch.Tensor) -> torch.Tensor:
        """The deterministic action in [-1, 1] (the action space's bounds, so no rescaling)."""
        if isinstance(self.policy, ActorCriticPolicy):  # PPO
            features = self.policy.extract_features(normalised, self.policy.pi_features_extractor)
            latent = self.policy.mlp_extractor.forward_actor(features)  # type: ignore[arg-type]
            action: torch.Tensor = self.policy.action_net(latent)
            return action
        if isinstance(self.policy, SACPolicy | TQCPolicy):  # squashed Gaussian: tanh of its mean
            mean, _, _ = self.policy.actor.get_action_dist_params(normalised)
            return torch.tanh(mean)
        return self.policy.actor(normalised)  # type: ignore[no-any-return,operator]  # TD3: deterministic

    def forward(self, observation: torch.Tensor) -> torch.Tensor:
        normalised = observation / self.scales
        action = torch.clamp(self._action(normalised), -1.0, 1.0)
        upper = torch.cat(
            [
                observation[:, self.upper_index],
                observation[:, self.storage_upper_index : self.storage_upper_index + 1],
            ],
            1,
        )
        lower = torch.cat(
            [
                observation[:, self.lower_index],
                observation[:, self.storage_lower_index : self.storage_lower_index + 1],
            ],
            1,
        )
        n_setpoints = self.n_connectors_max + 1
        setpoints = action[:, :n_setpoints]
        setpoints_kw = torch.where(setpoints >= 0, setpoints * upper, -setpoints * lower)
        if not self.is_import_cap_acted:
            return setpoints_kw
        # smac_rl.core.observation.import_cap_kw: (a + 1) / 2 of the step's import limit.
        import_limit = observation[:, self.import_limit_index : self.import_limit_index + 1]
        cap_kw = (action[:, n_setpoints:] + 1.0) * 0.5 * import_limit
        return torch.cat([setpoints_kw, cap_kw], 1)


def export_policy(
    model: BaseAlgorithm, layout: ObservationLayout, out_dir: Path, mlflow_run_id: str, template: str
) -> PolicyMetadata:
    """Write ``policy.onnx`` and ``metadata.json`` to ``out_dir``.

    Args:
        model: The trained SB3 model, PPO, SAC, TD3 or TQC (observations normalised by ``layout.scales()``).
        layout: Its observation and action layout.
        out_dir: Folder to write to (created).
        mlflow_run_id: The training run.
        template: Template trained on (its step and a one-day horizon go into the metadata).

    Returns:
        The metadata written.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    graph = _SetpointGraph(model, layout).eval()
    onnx_path = out_dir / "policy.onnx"
    example = torch.zeros((1, layout.size), dtype=torch.float32)
    torch.onnx.export(
        graph,
        (example,),
        str(onnx_path),
        input_names=["observation"],
        output_names=["setpoints_kw"],
        dynamic_axes={"observation": {0: "batch"}, "setpoints_kw": {0: "batch"}},
        opset_version=OPSET,
        dynamo=False,
    )
    metadata = PolicyMetadata(
        n_connectors_max=layout.n_connectors_max,
        observation=layout_entries(layout),
        action=action_names(layout),
        step_min=load_template(template).step_min,
        horizon_steps=MINUTES_PER_DAY // load_template(template).step_min,
        onnx_sha256=hashlib.sha256(onnx_path.read_bytes()).hexdigest(),
        onnx_opset_version=OPSET,
        mlflow_run_id=mlflow_run_id,
        git_sha=git_sha(),
        template=template,
        **layout.options(),
    )
    (out_dir / "metadata.json").write_text(metadata.model_dump_json(indent=2) + "\n", encoding="utf-8")
    return metadata
