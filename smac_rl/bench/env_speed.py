"""``smac bench env``: how fast the single and the batched env step, against EV2Gym in the same run.

The scenario: the bundled benchmark site (``bench_site.yaml``: 25 connectors, AC and DC, V2G,
storage and PV), 96 steps of 15 minutes, a generated day. Every action asks full charging (all
ones), as the peer's run does. Figures, all on one core:

* single env, step only: steps per second counting only the time inside ``env.step``;
* single env, whole episodes including ``reset``: with a fixed scenario (a reset copies arrays), and
  drawing a freshly generated day at every reset (the peer's reset also draws a new day);
* batched env at ``B`` rows: connector-steps per second over whole episodes (same-step autoresets
  included), real connectors only (padding is not counted);
* peak memory per batched site: traced peak of building, resetting and stepping the batched env,
  divided by ``B``.

The peer (EV2Gym 2.0.0's V2GProfitMax example, 25 chargers, 112 steps) runs in its own virtual
environment (``benchmarks/ev2gym_peer/setup.sh``) and reports its figures as one JSON line; ratios
are taken per connector-step.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import time
import tracemalloc
from dataclasses import asdict, dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from smac_rl.core.errors import SmacError

BENCH_TEMPLATE = "bench_site.yaml"
BENCH_DAY = dt.date(2024, 3, 12)
PEER_SCRIPT = Path("benchmarks/ev2gym_peer/run_peer.py")
PEER_PYTHON = Path(".bench/ev2gym-venv/bin/python")


@dataclass(frozen=True)
class EnvSpeed:
    """Our env's figures (module docstring).

    Attributes:
        n_connectors: Connectors of the benchmark site.
        n_steps: Steps per episode.
        single_step_only_steps_per_s: Single env, time inside ``step`` only [1/s].
        single_episode_fixed_steps_per_s: Single env, whole episodes, fixed scenario [1/s].
        single_episode_generated_steps_per_s: Single env, whole episodes, a new day per reset [1/s].
        batch_size: Rows of the batched env.
        batched_connector_steps_per_s: Batched env, whole episodes [1/s].
        batched_bytes_per_site: Traced peak memory per batched site [bytes].
    """

    n_connectors: int
    n_steps: int
    single_step_only_steps_per_s: float
    single_episode_fixed_steps_per_s: float
    single_episode_generated_steps_per_s: float
    batch_size: int
    batched_connector_steps_per_s: float
    batched_bytes_per_site: float


def pin_one_core() -> None:
    """Run this process on one core (where the platform allows), so figures are per core."""
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})


def bench_template_path() -> Path:
    """Path of the bundled benchmark site template."""
    return Path(str(resources.files("smac_rl.bench") / BENCH_TEMPLATE))


def measure_env(episodes: int = 20, batch_size: int = 1024, batched_episodes: int = 2) -> EnvSpeed:
    """Measure our env (module docstring).

    Args:
        episodes: Single-env episodes per figure.
        batch_size: Rows of the batched env.
        batched_episodes: Episodes per row of the batched run.

    Returns:
        The figures.
    """
    from smac_rl.core.arrays import compile_scenario
    from smac_rl.data.generator import generate_scenario
    from smac_rl.data.template_spec import load_template
    from smac_rl_envs.site_env import SiteChargingEnv
    from smac_rl_envs.vector_env import SiteChargingVectorEnv

    template_path = str(bench_template_path())
    spec, _ = generate_scenario(load_template(template_path), BENCH_DAY, 1, seed=0)
    arrays = compile_scenario(spec)
    n_connectors, n_steps = arrays.site.n_connectors, arrays.n_steps
    env = SiteChargingEnv(scenario=spec, n_connectors_max=n_connectors)
    action = np.ones(env.layout.action_size)
    _episodes(env, action, 1)
    step_s, total_s, steps = _episodes(env, action, episodes)
    generated = SiteChargingEnv(template=template_path, n_connectors_max=n_connectors)
    generated.reset(seed=0)
    _, generated_s, generated_steps = _episodes(generated, action, max(2, episodes // 4))

    def batched_env() -> SiteChargingVectorEnv:
        return SiteChargingVectorEnv(batch_size, scenario=spec, n_connectors_max=n_connectors)

    vector = batched_env()
    actions = np.ones((batch_size, vector.layout.action_size))
    vector.reset(seed=0)
    vector.step(actions)
    start = time.perf_counter()
    for _ in range(batched_episodes * n_steps):
        vector.step(actions)
    batched_s = time.perf_counter() - start
    del vector
    tracemalloc.start()
    traced = batched_env()
    traced.reset(seed=0)
    for _ in range(3):
        traced.step(actions)
    _, peak_bytes = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return EnvSpeed(
        n_connectors=n_connectors,
        n_steps=n_steps,
        single_step_only_steps_per_s=steps / step_s,
        single_episode_fixed_steps_per_s=steps / total_s,
        single_episode_generated_steps_per_s=generated_steps / generated_s,
        batch_size=batch_size,
        batched_connector_steps_per_s=batch_size * n_connectors * batched_episodes * n_steps / batched_s,
        batched_bytes_per_site=peak_bytes / batch_size,
    )


def _episodes(env: Any, action: np.ndarray, episodes: int) -> tuple[float, float, int]:
    """Run whole episodes; returns (seconds inside step, seconds in all, steps)."""
    step_s, steps = 0.0, 0
    start = time.perf_counter()
    for _ in range(episodes):
        env.reset()
        done = False
        while not done:
            before = time.perf_counter()
            _, _, done, _, _ = env.step(action)
            step_s += time.perf_counter() - before
            steps += 1
    return step_s, time.perf_counter() - start, steps


def run_peer(python: Path, script: Path, episodes: int) -> dict[str, Any]:
    """Run the EV2Gym peer in its own environment and read its JSON line.

    Raises:
        SmacError: When the peer's environment is missing or its run fails.
    """
    if not python.exists():
        raise SmacError(
            f"peer: got no Python at {str(python)!r}; expected the EV2Gym environment "
            "(run: bash benchmarks/ev2gym_peer/setup.sh), or pass --no-peer"
        )
    done = subprocess.run(
        [str(python), str(script), "--episodes", str(episodes)],
        capture_output=True,
        text=True,
        check=False,
    )
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        tail = done.stderr.strip().splitlines()[-1:] or ["no output"]
        raise SmacError(f"peer: got exit code {done.returncode} ({tail[0]}); expected one JSON line")
    figures: dict[str, Any] = json.loads(lines[-1])
    return figures


def ratios(ours: EnvSpeed, peer: dict[str, Any]) -> dict[str, float]:
    """Our figures over the peer's, per connector-step.

    Returns:
        ``single_step_only`` (against the peer's step-only figure), ``single_episode_fixed`` and
        ``single_episode_generated`` (against its whole episodes), ``batched`` (against its step-only
        figure, the issue's reference).
    """
    peer_step = float(peer["step_only_connector_steps_per_s"])
    peer_episode = float(peer["episode_connector_steps_per_s"])
    c = ours.n_connectors
    return {
        "single_step_only": ours.single_step_only_steps_per_s * c / peer_step,
        "single_episode_fixed": ours.single_episode_fixed_steps_per_s * c / peer_episode,
        "single_episode_generated": ours.single_episode_generated_steps_per_s * c / peer_episode,
        "batched": ours.batched_connector_steps_per_s / peer_step,
    }


def report(ours: EnvSpeed, peer: dict[str, Any] | None) -> dict[str, Any]:
    """Everything measured, as one JSON-ready mapping."""
    result: dict[str, Any] = {"smac_rl": asdict(ours)}
    if peer is not None:
        result["peer"] = peer
        result["ratios_per_connector_step"] = ratios(ours, peer)
    return result
