"""Imitation variants on one set of demonstrations: each fit scored on the config's selection days.

Labelling is the slow part of imitation (the expert solves every day, or every step); fitting is
quick. This script labels a training config's ``imitation_days`` once (cached in an ``.npz`` file),
then fits a fresh network per variant (config keys such as ``pooling`` or ``hidden_size``, and the
fit's ``epochs`` and ``learning_rate``) and prints the selection days' median and pooled savings
capture of each, with the deadline floor and outlooks of the config. No DAgger, no PPO steps, no
tracking: a quick way to compare what a recipe's first stage can reach before training it in full.

Run: ``.venv/bin/python benchmarks/imitation_variants.py CONFIG CACHE.npz [VARIANT_JSON ...]``
where each variant is a JSON object, e.g. ``'{"epochs": 40}' '{"pooling": "mean", "epochs": 40}'``
(default: one variant, the config as it is).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from stable_baselines3.common.policies import ActorCriticPolicy

from smac_rl.agents.config import TrainConfig
from smac_rl.agents.envs import training_vec_env
from smac_rl.agents.evaluation import evaluate_model, policy_name, selection_score
from smac_rl.agents.imitation import Demonstrations, clone_behaviour, demonstrations
from smac_rl.agents.train import build_model
from smac_rl.optimal.protocol import DayReference

FIT_KEYS = {"epochs", "learning_rate"}
"""Variant keys of the fit itself; every other key is a :class:`TrainConfig` field."""


def cached_demonstrations(config: TrainConfig, cache: Path) -> Demonstrations:
    """The config's demonstrations, labelled once and kept in ``cache``."""
    if cache.is_file():
        with np.load(cache) as stored:
            return Demonstrations(stored["observations"], stored["actions"], int(stored["n_days"]))
    started = time.perf_counter()
    data = demonstrations(config)
    np.savez(cache, observations=data.observations, actions=data.actions, n_days=data.n_days)
    print(
        f"labelled {data.n_days} days, {data.observations.shape[0]} states, "
        f"{time.perf_counter() - started:.0f} s",
        flush=True,
    )
    return data


def main(argv: list[str]) -> None:
    """Print one line per variant: the fit's last loss, its time, the selection days' captures."""
    if len(argv) < 2:
        raise SystemExit(__doc__)
    base = TrainConfig.model_validate(yaml.safe_load(Path(argv[0]).read_text(encoding="utf-8")))
    variants: list[dict[str, Any]] = [json.loads(text) for text in argv[2:]] or [{}]
    torch.set_num_threads(1)
    data = cached_demonstrations(base, Path(argv[1]))
    references: dict[tuple[str, int], DayReference] = {}
    for variant in variants:
        config = TrainConfig.model_validate(
            {**base.model_dump(), **{k: v for k, v in variant.items() if k not in FIT_KEYS}}
        )
        envs = training_vec_env(config)
        model = build_model(config, envs)
        envs.close()
        started = time.perf_counter()
        epochs = int(variant.get("epochs", config.imitation_epochs))
        learning_rate = float(variant.get("learning_rate", config.imitation_learning_rate))
        policy = model.policy
        if not isinstance(policy, ActorCriticPolicy):
            raise SystemExit(f"{argv[0]}: imitation needs PPO's actor-critic; got {type(policy).__name__}")
        loss = clone_behaviour(policy, data, epochs, learning_rate, config.batch_size, config.seed)
        fit_s = time.perf_counter() - started
        result = evaluate_model(model, config, "selection", references)
        references.update(result.references)
        row = result.summary[policy_name(config)]
        print(
            f"{json.dumps(variant)}: loss {loss:.5f}, fit {fit_s:.0f} s, selection median "
            f"{selection_score(row):.1%}, pooled {row['savings_capture_pooled_frac']:.1%}",
            flush=True,
        )


if __name__ == "__main__":
    main(sys.argv[1:])
