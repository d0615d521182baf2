"""Train, export and evaluate the default policy committed under models/policies/default/v1.

Usage: ``.venv/bin/python scripts/train_default_policy.py [--out DIR]`` (default: a folder under
runs/; copy policy.onnx and metadata.json to models/policies/default/v1 to promote it). Prints the
evaluation on five 2024 days (the test year) that MODEL_CARD.md quotes. With ``--evaluate DIR`` it
trains nothing and evaluates an exported policy folder (the shipped one: models/policies/default/v1).
"""

from __future__ import annotations

import argparse
import datetime as dt
from pathlib import Path

from smac_rl.agents.config import TrainConfig
from smac_rl.agents.export import export_policy
from smac_rl.agents.train import train
from smac_rl.core.arrays import compile_scenario
from smac_rl.core.scoring import summarize_savings_capture
from smac_rl.data.generator import generate_scenario
from smac_rl.data.template_spec import load_template
from smac_rl.optimal.solve import solve_optimal
from smac_rl.policies import make_heuristic, run_policy
from smac_rl_serve.model import OnnxPolicy

CONFIG = TrainConfig(
    template="turku_ultrafast_hub",
    first_day=dt.date(2022, 1, 1),
    last_day=dt.date(2022, 12, 31),
    total_timesteps=40_000,
    n_envs=4,
    n_steps=256,
    batch_size=256,
    n_epochs=5,
    n_connectors_max=16,
    seed=0,
)
TEST_DAYS = (
    dt.date(2024, 3, 4),
    dt.date(2024, 5, 14),
    dt.date(2024, 7, 9),
    dt.date(2024, 9, 17),
    dt.date(2024, 11, 26),
)


def main() -> None:
    """Train, export, evaluate."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("runs/default_policy"))
    parser.add_argument("--evaluate", type=Path, default=None, help="exported policy folder; no training")
    args = parser.parse_args()
    if args.evaluate is not None:
        export_dir = args.evaluate
    else:
        result = train(CONFIG, args.out, tracking_uri=f"sqlite:///{args.out / 'mlflow.db'}")
        export_dir = args.out / "export"
        export_policy(result.model, result.layout, export_dir, result.run_id, CONFIG.template)
    policy = OnnxPolicy(export_dir)
    template = load_template(CONFIG.template)
    print("day         uncontrolled   llf      onnx     optimal  onnx unmet [kWh]  (total cost [EUR])")
    ppo_days, llf_days = [], []
    for k, day in enumerate(TEST_DAYS):
        spec, _ = generate_scenario(template, day, 1, seed=100 + k)
        arrays = compile_scenario(spec)
        uncontrolled = run_policy(arrays, make_heuristic("uncontrolled"))[1].total_cost_eur
        llf = run_policy(arrays, make_heuristic("llf"))[1].total_cost_eur
        onnx = run_policy(arrays, policy)[1]
        oracle = solve_optimal(arrays).kpis.total_cost_eur
        ppo_days.append((uncontrolled, onnx.total_cost_eur, oracle))
        llf_days.append((uncontrolled, llf, oracle))
        costs = f"{uncontrolled:10.2f} {llf:8.2f} {onnx.total_cost_eur:8.2f} {oracle:9.2f}"
        print(f"{day}  {costs} {onnx.unmet_energy_kwh:12.2f}")
    print("savings capture, onnx:", summarize_savings_capture(ppo_days))
    print("savings capture, llf: ", summarize_savings_capture(llf_days))


if __name__ == "__main__":
    main()
