"""Times EV2Gym 2.0.0 on its shipped V2GProfitMax example config (the peer of our env benchmark).

Run it with the side environment that `setup.sh` builds, from anywhere:

    .bench/ev2gym-venv/bin/python benchmarks/ev2gym_peer/run_peer.py [--episodes N] [--seed S]

What it measures, on one thread and (where the OS allows) one core:

- step-only throughput: environment steps per second counting only the time inside `env.step`;
- whole-episode throughput: steps per second over `reset` plus every step of each episode;
- mean `reset` time.

The action policy is constant: all ones (the action space's upper bound: every port asks for its
full charging current), handed to `env.step` as a fresh copy each step because EV2Gym writes zeros
into the caller's action array for empty ports. The point is to time the environment, not a policy.

EV2Gym's own chatter goes to stderr; the last line of stdout is one JSON object with the results.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.metadata
import importlib.util
import json
import os
import platform
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# Every thread pool a numeric library may start, pinned to one thread. These must be set before
# numpy, numba or scipy are imported, so this module imports them only inside functions.
_THREAD_ENV_VARS = (
    "OMP_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
    "BLIS_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS",
    "NUMEXPR_NUM_THREADS",
    "NUMBA_NUM_THREADS",
)

PEER_NAME = "ev2gym 2.0.0 V2GProfitMax"
EXPECTED_EV2GYM_VERSION = "2.0.0"
CONFIG_RELATIVE = Path("ev2gym") / "example_config_files" / "V2GProfitMax.yaml"


@dataclass(frozen=True)
class Timings:
    """Raw timings of the measured episodes (seconds, summed over episodes)."""

    episodes: int
    n_steps: int
    step_s: float
    episode_s: float
    reset_s: list[float]
    evs_spawned: list[int]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Parses the command line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=20, help="measured episodes (default 20)")
    parser.add_argument(
        "--seed",
        type=int,
        default=0,
        help="seed S: the env is built with S and episode i is reset with S + 1 + i (default 0)",
    )
    parser.add_argument(
        "--warmup",
        type=int,
        default=1,
        help="unmeasured episodes run first, after building the env (default 1)",
    )
    parser.add_argument(
        "--cpu",
        type=int,
        default=None,
        help="core to pin the process to (default: the first core it may run on)",
    )
    args = parser.parse_args(argv)
    if args.episodes < 1:
        parser.error("--episodes must be at least 1")
    if args.warmup < 0:
        parser.error("--warmup must be at least 0")
    return args


def pin_to_one_thread(cpu: int | None) -> list[int] | None:
    """Pins thread pools to one thread and the process to one core; returns the affinity set."""
    for name in _THREAD_ENV_VARS:
        os.environ[name] = "1"
    if not hasattr(os, "sched_setaffinity"):
        return None
    allowed = sorted(os.sched_getaffinity(0))
    core = allowed[0] if cpu is None else cpu
    os.sched_setaffinity(0, {core})
    return sorted(os.sched_getaffinity(0))


def ev2gym_install_root() -> Path:
    """The folder that holds the installed `ev2gym` package (site-packages), without importing it."""
    spec = importlib.util.find_spec("ev2gym")
    if spec is None or spec.origin is None:
        raise SystemExit("ev2gym is not installed in this interpreter; run benchmarks/ev2gym_peer/setup.sh")
    return Path(spec.origin).resolve().parent.parent


def run_episodes(env: Any, episodes: int, first_seed: int) -> Timings:
    """Runs `episodes` episodes with the constant all-ones action and times them."""
    import numpy as np

    template = np.ones(env.action_space.shape, dtype=env.action_space.dtype)
    clock = time.perf_counter
    step_s = 0.0
    episode_s = 0.0
    resets: list[float] = []
    evs_spawned: list[int] = []
    n_steps = -1
    for episode in range(episodes):
        steps = 0
        t_episode = clock()
        env.reset(seed=first_seed + episode)
        resets.append(clock() - t_episode)
        while True:
            action = template.copy()  # EV2Gym zeroes the entries of empty ports in place
            t_step = clock()
            _, _, terminated, truncated, _ = env.step(action)
            step_s += clock() - t_step
            steps += 1
            if terminated or truncated:
                break
        episode_s += clock() - t_episode
        evs_spawned.append(int(env.total_evs_spawned))
        if n_steps not in (-1, steps):
            raise RuntimeError(f"episode {episode} ran {steps} steps, an earlier one {n_steps}")
        n_steps = steps
    return Timings(episodes, n_steps, step_s, episode_s, resets, evs_spawned)


def main(argv: list[str] | None = None) -> int:
    """Builds the env, runs the measurement and prints the JSON result line."""
    args = parse_args(argv)
    affinity = pin_to_one_thread(args.cpu)
    root = ev2gym_install_root()
    config_path = root / CONFIG_RELATIVE
    if not config_path.is_file():
        raise SystemExit(f"shipped config not found at {config_path}")

    real_stdout = sys.stdout
    with contextlib.redirect_stdout(sys.stderr):
        # The config names its data as ./ev2gym/data/..., relative to the folder above the package.
        os.chdir(root)
        warnings.filterwarnings("ignore", message="pkg_resources is deprecated", category=UserWarning)
        t_import = time.perf_counter()
        from ev2gym.models.ev2gym_env import EV2Gym
        from ev2gym.rl_agent.reward import profit_maximization
        from ev2gym.rl_agent.state import V2G_profit_max

        import_s = time.perf_counter() - t_import

        t_init = time.perf_counter()
        env = EV2Gym(
            config_file=str(CONFIG_RELATIVE),
            seed=args.seed,
            state_function=V2G_profit_max,
            reward_function=profit_maximization,
            save_replay=False,
            save_plots=False,
            verbose=False,
        )
        init_s = time.perf_counter() - t_init

        n_chargers = len(env.charging_stations)
        ports_per_charger = sorted({int(cs.n_ports) for cs in env.charging_stations})
        charger_types = sorted({str(cs.charger_type) for cs in env.charging_stations})
        n_connectors = int(sum(int(cs.n_ports) for cs in env.charging_stations))
        if n_connectors != int(env.number_of_ports) or env.action_space.shape != (n_connectors,):
            raise RuntimeError("port count disagrees between chargers, env and action space")

        if args.warmup:
            run_episodes(env, args.warmup, first_seed=args.seed + 1_000_000)
        timings = run_episodes(env, args.episodes, first_seed=args.seed + 1)
        if timings.n_steps != int(env.simulation_length):
            print(
                f"note: episodes ran {timings.n_steps} steps, config says {env.simulation_length}",
                file=sys.stderr,
            )

    total_steps = timings.episodes * timings.n_steps
    step_only = total_steps / timings.step_s
    episode = total_steps / timings.episode_s
    result: dict[str, Any] = {
        "peer": PEER_NAME,
        "config_path": str(config_path),
        "n_connectors": n_connectors,
        "n_steps": timings.n_steps,
        "episodes": timings.episodes,
        "step_only_steps_per_s": step_only,
        "episode_steps_per_s": episode,
        "reset_s": sum(timings.reset_s) / len(timings.reset_s),
        "step_only_connector_steps_per_s": step_only * n_connectors,
        "episode_connector_steps_per_s": episode * n_connectors,
        "python": platform.python_version(),
        "ev2gym_version": importlib.metadata.version("ev2gym"),
        # Context (not required by the comparison, useful to read it):
        "n_chargers": n_chargers,
        "ports_per_charger": ports_per_charger,
        "connector_count_rule": "sum of n_ports over env.charging_stations (= env.number_of_ports)",
        "charger_types": charger_types,
        "timescale_min": int(env.timescale),
        "action_policy": "constant all-ones (full charge current on every port), fresh copy per step",
        "state_function": "V2G_profit_max",
        "reward_function": "profit_maximization",
        "seed": args.seed,
        "warmup_episodes": args.warmup,
        "evs_spawned_mean": sum(timings.evs_spawned) / len(timings.evs_spawned),
        "import_s": import_s,
        "env_init_s": init_s,
        "cpu_affinity": affinity,
        "threads_env": {name: os.environ[name] for name in _THREAD_ENV_VARS},
    }
    if importlib.metadata.version("ev2gym") != EXPECTED_EV2GYM_VERSION:
        print(f"warning: ev2gym {importlib.metadata.version('ev2gym')} is not 2.0.0", file=sys.stderr)
    print(json.dumps(result), file=real_stdout, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
