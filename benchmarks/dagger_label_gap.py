"""DAgger's labelling expert at several MIP gaps: time per day and the objective its rollout reaches.

The expert of :func:`smac_rl.agents.imitation.learner_demonstration` re-plans the rest of the day
from every state (perfect foresight, one window per step). This script rolls that expert out on the
first days of DAgger round 1 of a training config, once per gap, and prints the seconds per day and
the scorer's objective next to the day's optimum, so the gap behind ``dagger_mip_gap_frac`` can be
chosen from numbers.

Run: ``.venv/bin/python benchmarks/dagger_label_gap.py [CONFIG] [N_DAYS] [GAP ...]``
(defaults: the Turku DAgger config, 3 days, gaps 1e-4 1e-3 1e-2).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import yaml

from smac_rl.agents.config import TrainConfig
from smac_rl.agents.imitation import expert_policy, training_days
from smac_rl.core.scoring import score
from smac_rl.core.simulate import simulate
from smac_rl.optimal.solve import solve_optimal

EXPERIMENTS = Path(__file__).resolve().parents[1] / "experiments"
DEFAULT_CONFIG = EXPERIMENTS / "turku_ultrafast_hub_cost_ppo_dagger.yaml"


def main(argv: list[str]) -> None:
    """Print one line per day: sessions, the optimum's objective, and per gap the time and objective."""
    config_path = Path(argv[0]) if argv else DEFAULT_CONFIG
    n_days = int(argv[1]) if len(argv) > 1 else 3
    gaps = [float(g) for g in argv[2:]] or [1e-4, 1e-3, 1e-2]
    config = TrainConfig.model_validate(yaml.safe_load(config_path.read_text(encoding="utf-8")))
    for arrays in training_days(config, n_days, stream=1):
        optimum = solve_optimal(arrays)
        n_sessions = arrays.sessions.n_sessions
        line = f"{arrays.name}: {n_sessions} sessions, optimum {optimum.objective_eur:.3f} EUR"
        for gap in gaps:
            expert = expert_policy("optimum", arrays, config.dagger_time_limit_s, gap)
            started = time.perf_counter()
            trace = simulate(arrays, expert.act)
            elapsed_s = time.perf_counter() - started
            objective_eur = score(arrays, trace).objective_eur
            line += f" | gap {gap:g}: {elapsed_s:.1f} s, objective {objective_eur:.3f} EUR"
        print(line, flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
