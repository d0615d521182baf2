"""A policy for any site size: per-connector features through one shared network with pooled site context.

The observation is the layout of :mod:`smac_rl.core.observation` (normalised): site features ``s``
then ``C_max`` connector blocks ``x_c`` whose first entry is the mask ``is_present``. With ``m_c``
the mask:

* ``phi_c = m_c * f([x_c, s])`` (one MLP shared by every connector);
* ``g = sum_c phi_c / max(sum_c m_c, 1)`` (masked mean: padding and empty connectors add nothing);
  with ``pooling="mean_sum"`` also ``sum_c phi_c / C_max`` beside it, ``g = [mean, sum / C_max]``:
  the mean alone cannot tell two cars from ten alike, and how much the plugged fleet still
  wants in all is what a peak or a grid limit depends on;
* actor, per connector: ``a_c = w . h([phi_c, g, s]) + b`` (``h`` and ``w`` shared), storage:
  ``a_s = w_s . k([g, s]) + b_s``, and where the layout acts on the site's import cap
  ``a_cap = w_cap . k([g, s]) + b_cap``; critic: ``v = u . q([g, s])``.

Permuting the connector blocks permutes the connector actions the same way and leaves the storage
(and cap) action and the value unchanged (equivariance, tested), so the same weights serve a site of 2 or
of ``C_max`` connectors. It plugs into Stable-Baselines3 as an ``ActorCriticPolicy`` (PPO) and
exports to ONNX like any SB3 policy (:mod:`smac_rl.agents.export`).
"""

from __future__ import annotations

from typing import Any, Literal

import torch
from gymnasium import spaces
from stable_baselines3.common.policies import ActorCriticPolicy
from stable_baselines3.common.type_aliases import Schedule
from torch import nn

from smac_rl.core.observation import CONNECTOR_FEATURES, SITE_FEATURES, ObservationLayout

Pooling = Literal["mean", "mean_sum"]
"""How the connector latents are pooled into the site context (module docstring)."""


def _mlp(n_in: int, n_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(n_in, n_out), nn.Tanh(), nn.Linear(n_out, n_out), nn.Tanh())


class ConnectorSetEncoder(nn.Module):
    """The shared connector network and the pooled context (module docstring); SB3's ``mlp_extractor``."""

    def __init__(
        self,
        n_connectors_max: int,
        hidden_size: int,
        n_site_features: int = len(SITE_FEATURES),
        pooling: Pooling = "mean",
    ) -> None:
        """Create the networks.

        Args:
            n_connectors_max: Connector blocks in the observation.
            hidden_size: Width of every hidden layer.
            n_site_features: Site features before the blocks (:attr:`ObservationLayout.n_site_features`).
            pooling: ``mean`` or ``mean_sum`` (module docstring).
        """
        super().__init__()
        if pooling not in ("mean", "mean_sum"):
            raise ValueError(f"pooling: got {pooling!r}; expected 'mean' or 'mean_sum'")
        self.n_site, self.n_block = n_site_features, len(CONNECTOR_FEATURES)
        self.n_connectors_max, self.hidden_size, self.pooling = n_connectors_max, hidden_size, pooling
        n_pooled = hidden_size if pooling == "mean" else 2 * hidden_size
        self.embed = _mlp(self.n_block + self.n_site, hidden_size)
        self.actor_connector = _mlp(hidden_size + n_pooled + self.n_site, hidden_size)
        self.actor_site = _mlp(n_pooled + self.n_site, hidden_size)
        self.critic = _mlp(n_pooled + self.n_site, hidden_size)
        self.latent_dim_pi = (n_connectors_max + 1) * hidden_size
        self.latent_dim_vf = hidden_size

    def _encode(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        site = features[:, : self.n_site]
        blocks = features[:, self.n_site :].reshape(-1, self.n_connectors_max, self.n_block)
        mask = blocks[:, :, :1]
        site_each = site.unsqueeze(1).expand(-1, self.n_connectors_max, -1)
        phi = self.embed(torch.cat([blocks, site_each], dim=2)) * mask
        total = phi.sum(dim=1)
        pooled = total / torch.clamp(mask.sum(dim=1), min=1.0)
        if self.pooling == "mean_sum":
            pooled = torch.cat([pooled, total / self.n_connectors_max], dim=1)
        return site, phi, pooled

    def forward_actor(self, features: torch.Tensor) -> torch.Tensor:
        """Actor latent: per-connector latents then the storage latent, ``(B, (C_max + 1) * H)``."""
        site, phi, pooled = self._encode(features)
        context = torch.cat([pooled, site], dim=1)
        context_each = context.unsqueeze(1).expand(-1, self.n_connectors_max, -1)
        per_connector = self.actor_connector(torch.cat([phi, context_each], dim=2))
        return torch.cat([per_connector.flatten(1), self.actor_site(context)], dim=1)

    def forward_critic(self, features: torch.Tensor) -> torch.Tensor:
        """Critic latent from the pooled context, ``(B, H)``."""
        site, _, pooled = self._encode(features)
        critic: torch.Tensor = self.critic(torch.cat([pooled, site], dim=1))
        return critic

    def forward(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Actor and critic latents."""
        return self.forward_actor(features), self.forward_critic(features)


class SharedActionHead(nn.Module):
    """Per-connector action means from one shared linear map, the storage's (and the cap's) from its own."""

    def __init__(self, n_connectors_max: int, hidden_size: int, is_import_cap_acted: bool = False) -> None:
        """Create the head (small initial weights, as SB3 does for its action layer).

        Args:
            n_connectors_max: Connector actions.
            hidden_size: Width of the latents.
            is_import_cap_acted: Add the import cap's action after the storage's.
        """
        super().__init__()
        self.n_connectors_max, self.hidden_size = n_connectors_max, hidden_size
        self.connector = nn.Linear(hidden_size, 1)
        self.storage = nn.Linear(hidden_size, 1)
        self.cap = nn.Linear(hidden_size, 1) if is_import_cap_acted else None
        for layer in (self.connector, self.storage, self.cap):
            if layer is not None:
                nn.init.orthogonal_(layer.weight, gain=0.01)
                nn.init.zeros_(layer.bias)

    def forward(self, latent: torch.Tensor) -> torch.Tensor:
        """Action means ``(B, C_max + 1)``, or ``(B, C_max + 2)`` with the cap."""
        split = self.n_connectors_max * self.hidden_size
        per_connector = latent[:, :split].reshape(-1, self.n_connectors_max, self.hidden_size)
        site = latent[:, split:]
        means = [self.connector(per_connector).squeeze(2), self.storage(site)]
        if self.cap is not None:
            means.append(self.cap(site))
        return torch.cat(means, dim=1)


class EquivariantActorCriticPolicy(ActorCriticPolicy):
    """SB3 actor-critic policy with the permutation-equivariant networks of this module."""

    def __init__(
        self,
        observation_space: spaces.Space[Any],
        action_space: spaces.Space[Any],
        lr_schedule: Schedule,
        n_connectors_max: int = 16,
        hidden_size: int = 64,
        pooling: Pooling = "mean",
        **kwargs: Any,
    ) -> None:
        """Create the policy (``n_connectors_max`` must match the observation layout).

        ``pooling`` is :class:`ConnectorSetEncoder`'s. An action of ``C_max + 2`` values is a layout
        that acts on the import cap (the head adds its output).

        Raises:
            ValueError: When the spaces do not have the layout's sizes.
        """
        layouts = [
            ObservationLayout(n_connectors_max, None, ranks, loads)
            for ranks in (False, True)
            for loads in (False, True)
        ]
        sizes = {layout.size: layout.n_site_features for layout in layouts}
        shape = observation_space.shape
        if (
            shape is None
            or len(shape) != 1
            or shape[0] not in sizes
            or action_space.shape not in ((n_connectors_max + 1,), (n_connectors_max + 2,))
        ):
            raise ValueError(
                f"spaces: got observation {observation_space.shape} and action {action_space.shape}; "
                f"expected ({' or '.join(str(n) for n in sizes)},) and ({n_connectors_max + 1},) "
                f"or ({n_connectors_max + 2},) (with the import cap) "
                f"for n_connectors_max = {n_connectors_max}"
            )
        self.is_import_cap_acted = action_space.shape == (n_connectors_max + 2,)
        self.n_site_features = sizes[shape[0]]
        self.n_connectors_max, self.hidden_size, self.pooling = n_connectors_max, hidden_size, pooling
        super().__init__(observation_space, action_space, lr_schedule, **kwargs)

    def _build_mlp_extractor(self) -> None:
        self.mlp_extractor = ConnectorSetEncoder(  # type: ignore[assignment]
            self.n_connectors_max, self.hidden_size, self.n_site_features, self.pooling
        )

    def _build(self, lr_schedule: Schedule) -> None:
        super()._build(lr_schedule)
        self.action_net = SharedActionHead(self.n_connectors_max, self.hidden_size, self.is_import_cap_acted)
        self.optimizer = self.optimizer_class(self.parameters(), lr=lr_schedule(1), **self.optimizer_kwargs)  # type: ignore[call-arg]
