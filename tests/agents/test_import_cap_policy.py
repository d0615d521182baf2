"""A policy that acts on the site's import cap: its network, its ONNX export and the service's rollout.

The cap is one more action after the storage's (``ObservationLayout(is_import_cap_acted=True)``). The
exported graph answers it in kW, and the service holds the setpoints to it (and rounds them to the
minimum current, ``is_min_current_rounded``) as training did. So a rollout of the served graph must
equal the rollout of the SB3 model it came from.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from gymnasium import spaces
from stable_baselines3.common.base_class import BaseAlgorithm

from smac_rl.agents.config import TrainConfig
from smac_rl.agents.export import export_policy
from smac_rl.agents.imitation import training_days
from smac_rl.agents.networks import EquivariantActorCriticPolicy, SharedActionHead
from smac_rl.agents.policy import Sb3Policy
from smac_rl.core.observation import SITE_FEATURES, ObservationLayout
from smac_rl.core.specs import ObjectiveSpec
from smac_rl.core.state import Setpoints, StepContext
from smac_rl.policies import run_policy
from smac_rl_serve.model import OnnxPolicy
from tests.agents.test_equivariant import saved_untrained_model

C_MAX = 6


def test_the_cap_action_is_pooled_and_survives_permutations() -> None:
    torch.manual_seed(0)
    layout = ObservationLayout(C_MAX, is_import_cap_acted=True)
    policy = EquivariantActorCriticPolicy(
        spaces.Box(-1, 1, (layout.size,)),
        spaces.Box(-1, 1, (layout.action_size,)),
        lambda _: 1e-3,
        n_connectors_max=C_MAX,
        hidden_size=16,
        pooling="mean_sum",
    )
    assert policy.is_import_cap_acted
    rng = np.random.default_rng(3)
    observation = rng.normal(size=layout.size).astype(np.float32)
    blocks = observation[len(SITE_FEATURES) :].reshape(C_MAX, -1)
    blocks[:, 0] = [1, 1, 1, 0, 0, 0]
    blocks[3:] = 0.0
    permuted = observation.copy()
    permuted[len(SITE_FEATURES) :] = blocks[[2, 0, 1, 3, 4, 5]].ravel()
    with torch.no_grad():
        actions = [
            policy.action_net(policy.mlp_extractor.forward_actor(torch.as_tensor(o[None])))
            for o in (observation, permuted)
        ]
    assert actions[0].shape == (1, C_MAX + 2)
    np.testing.assert_allclose(actions[1][0, C_MAX:], actions[0][0, C_MAX:], atol=1e-6)
    np.testing.assert_allclose(actions[1][0, :3], actions[0][0, [2, 0, 1]], atol=1e-6)


def _budapest_config(is_paid_peak_filled: bool = False) -> TrainConfig:
    """A tiny equivariant policy with the cap and the rounding, on a Budapest day (seed 3)."""
    return TrainConfig(
        template="budapest_workplace",
        objective=ObjectiveSpec(name="peak" if is_paid_peak_filled else "cost"),
        n_connectors_max=C_MAX + 4,
        seed=3,  # a November weekday: 16 sessions on 10 connectors, little PV
        policy_network="equivariant",
        hidden_size=16,
        pooling="mean_sum",
        deadline_floor_margin_steps=1.0,
        is_import_cap_acted=True,
        is_min_current_rounded=True,
        is_paid_peak_filled=is_paid_peak_filled,
        n_envs=1,
        pool_size=1,
    )


def test_the_served_graph_rolls_out_as_the_trained_model(tmp_path: Path) -> None:
    config = _budapest_config()
    loaded = saved_untrained_model(config, tmp_path / "model.zip", _ask_much_under_a_low_cap)
    layout = config.layout()
    metadata = export_policy(loaded, layout, tmp_path / "export", "run", config.template)
    assert metadata.is_import_cap_acted
    assert metadata.is_min_current_rounded
    assert metadata.action[-1] == "site.import_cap_kw"
    served = OnnxPolicy(tmp_path / "export")
    trained = Sb3Policy(loaded, layout)
    arrays = next(training_days(config, 1, stream=0))
    served_trace, served_kpis = run_policy(arrays, served)
    trained_trace, trained_kpis = run_policy(arrays, trained)
    assert trained_trace.requested_ev_power_kw.max() > 1.0
    np.testing.assert_allclose(served_trace.ev_power_kw, trained_trace.ev_power_kw, atol=1e-3)
    np.testing.assert_allclose(served_trace.grid_import_kw, trained_trace.grid_import_kw, atol=1e-2)
    assert served_kpis.unmet_energy_kwh == pytest.approx(trained_kpis.unmet_energy_kwh, abs=1e-3)
    # The cap binds: read without it, the same actions import more at some step. With it, the import
    # stays at 12 kW or at what the deadline floors alone ask.
    uncapped = replace(layout, is_import_cap_acted=False)
    uncapped_trace, _ = run_policy(arrays, Sb3Policy(loaded, uncapped))
    assert (uncapped_trace.grid_import_kw - trained_trace.grid_import_kw).max() > 1.0
    floors_trace, _ = run_policy(arrays, _FloorsOnly(layout))
    held_kw = np.maximum(12.0, floors_trace.grid_import_kw)
    assert np.all(trained_trace.grid_import_kw <= held_kw + 1e-6)


class _FloorsOnly:
    """Asks nothing but the deadline floors (and no storage), with no cap."""

    name = "floors_only"

    def __init__(self, layout: ObservationLayout) -> None:
        self.layout = replace(layout, is_import_cap_acted=False)

    def act(self, context: StepContext) -> Setpoints:
        return self.layout.setpoints(context, np.zeros((context.batch_size, self.layout.action_size)))


def _ask_much_under_a_low_cap(model: BaseAlgorithm) -> None:
    head = model.policy.action_net
    assert isinstance(head, SharedActionHead)
    assert head.cap is not None
    head.connector.bias.fill_(0.8)  # every session asks about 80 % of its box
    head.cap.weight.zero_()  # a cap of 0.1 * 120 kW = 12 kW everywhere, which that charging passes
    head.cap.bias.fill_(-0.8)


def test_the_served_graph_fills_the_paid_peak_as_the_trained_model(tmp_path: Path) -> None:
    # The same low-cap model with the paid peak filled: the service reads the flag from the metadata
    # and rolls out as the trained model, and the fill changes the rollout (it imports more than the
    # cap alone lets through at some step).
    config = _budapest_config(is_paid_peak_filled=True)
    loaded = saved_untrained_model(config, tmp_path / "model.zip", _ask_much_under_a_low_cap)
    layout = config.layout()
    metadata = export_policy(loaded, layout, tmp_path / "export", "run", config.template)
    assert metadata.is_paid_peak_filled
    served = OnnxPolicy(tmp_path / "export")
    assert served.layout == layout
    arrays = next(training_days(config, 1, stream=0))
    served_trace, _ = run_policy(arrays, served)
    trained_trace, _ = run_policy(arrays, Sb3Policy(loaded, layout))
    np.testing.assert_allclose(served_trace.ev_power_kw, trained_trace.ev_power_kw, atol=1e-3)
    capped_trace, _ = run_policy(arrays, Sb3Policy(loaded, replace(layout, is_paid_peak_filled=False)))
    assert (trained_trace.grid_import_kw - capped_trace.grid_import_kw).max() > 1.0
