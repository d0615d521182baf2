"""Markdown for people: a protocol summary as a table, and the model card of an exported policy.

Pure text from the protocol's results (:mod:`smac_rl.optimal.protocol`); no training stack imported.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from smac_rl.agents.config import DaysConfig, TrainConfig
from smac_rl.core.artifacts import PolicyMetadata
from smac_rl.optimal.protocol import SUMMARY_HEADERS, ProtocolResult, summary_cells


def summary_table(summary: dict[str, dict[str, Any]]) -> list[str]:
    """Markdown rows of a protocol summary: capture, objective, unmet energy, service, violations."""
    rows = ["| " + " | ".join(SUMMARY_HEADERS) + " |", "|---" + "|---:" * (len(SUMMARY_HEADERS) - 1) + "|"]
    rows += ["| " + " | ".join(summary_cells(name, row, 1)) + " |" for name, row in summary.items()]
    return rows


@dataclass(frozen=True)
class CardInputs:
    """What a model card states.

    Attributes:
        name: Policy name (``models/policies/<name>``).
        version: Version folder (``v3``).
        config: The training config.
        metadata: The exported artifact's metadata.
        policy_label: The policy's name in the evaluation tables.
        selection: The exported policy on the selection days, with heuristics, uncontrolled and the optimum.
        test: The same on the test days.
        commands: Commands that reproduce the artifact, in order.
        registry: Where it came from in the MLflow registry (``name vN, champion``), if it did.
        trained_decoding: The decoding options the export changed (``smac export --decoding``), with
            the values training used; ``config`` holds the served ones.
    """

    name: str
    version: str
    config: TrainConfig
    metadata: PolicyMetadata
    policy_label: str
    selection: ProtocolResult
    test: ProtocolResult
    commands: Sequence[str]
    registry: str | None = None
    trained_decoding: Mapping[str, object] = field(default_factory=dict)


def _days(days: DaysConfig) -> str:
    return f"{days.first_day}..{days.last_day} ({days.n_days} day(s) x {days.n_seeds} seed(s))"


def _headline(result: ProtocolResult, label: str) -> str:
    row = result.summary[label]
    heuristics = {
        name: value["savings_capture_median_frac"]
        for name, value in result.summary.items()
        if name not in {label, "uncontrolled", "optimal"}
    }
    best = max(heuristics.items(), key=lambda item: -1e9 if item[1] is None else item[1], default=None)

    def pct(value: float | None) -> str:
        return "n/a" if value is None else f"{value:.1%}"

    text = f"median savings capture {pct(row['savings_capture_median_frac'])}"
    if best is not None:
        text += f" (best heuristic: {best[0]}, {pct(best[1])})"
    violation = row["limit_violation_total_kwh"]
    served = row["sessions_fully_served_min_frac"]
    text += f"; grid-limit violations {violation:.2f} kWh"
    return text + f"; sessions fully served on the worst day {pct(served)}"


def recipe_lines(config: TrainConfig) -> list[str]:
    """What besides environment steps shaped the policy: imitation, DAgger, the floor, the outlooks."""
    lines = []
    if config.imitation_days:
        expert, plan = {
            "optimum": ("the perfect-foresight optimum", "the optimum of the rest of the day"),
            "mpc": (
                "the forecast-driven MPC (`expert: mpc`: perfect price, PV and load forecasts, "
                "no arrivals ahead)",
                "the MPC's plan from there",
            ),
        }[config.expert]
        if config.expert_early_charging_eur_per_kwh:
            expert += (
                f" with the early-charging tie-breaker (`expert_early_charging_eur_per_kwh` "
                f"{config.expert_early_charging_eur_per_kwh:g})"
            )
        lines.append(
            f"- Cloned from the actions of {expert} on {config.imitation_days} generated days "
            f"({config.imitation_epochs} epochs)"
            + (
                f", then {config.dagger_rounds} DAgger round(s) of {config.dagger_days} days (its own states "
                f"labelled by {plan})"
                if config.dagger_rounds
                else ""
            )
            + "."
        )
    if config.init_model is not None:
        lines.append(
            f"- Started from the weights of `{config.init_model}` (`init_model`: a trained run's model)."
        )
    if config.starts_trained and config.total_timesteps:
        warm = (
            f"{config.value_warmup_timesteps} steps training the critic alone, then "
            if config.value_warmup_timesteps
            else ""
        )
        lines.append(
            f"- Then PPO on the batched env: {warm}{config.total_timesteps} steps (learning rate "
            f"{config.learning_rate:g}, action noise {config.imitation_action_std:g} at the start)"
            + (
                f", the best model on the selection days (scored every {config.eval_every_steps} steps) kept."
                if config.eval_every_steps
                else "."
            )
        )
    if config.pooling == "mean_sum":
        lines.append(
            "- Sum pooling (`pooling: mean_sum`): the network sees the sum of its connector latents beside "
            "their mean, so the fleet's size."
        )
    if config.deadline_floor_margin_steps is not None:
        lines.append(
            f"- Deadline floor with {config.deadline_floor_margin_steps:g} step(s) to spare "
            "(`smac_rl.core.observation.deadline_floor_kw`, applied by the service after the graph)."
        )
    if config.is_price_rank_observed:
        lines.append(
            "- Observes the price ranks (`is_price_rank_observed`: where each step's import price ranks "
            "among the next 2 to 24 hours', and their range)."
        )
    if config.is_load_outlook_observed:
        lines.append(
            "- Observes the net-load outlook (`is_load_outlook_observed`: the highest base load minus PV of "
            "the next 4, 12 and 24 hours)."
        )
    if config.is_min_current_rounded:
        lines.append(
            "- Rounds charging asks below the minimum current to 0 or the minimum, and urgent deadline "
            "floors below it up to it (`is_min_current_rounded`, applied by the service after the graph)."
        )
    if config.is_import_cap_acted:
        lines.append(
            "- Acts on the site's import cap (`is_import_cap_acted`: one more output names the import level "
            "to hold; charging asked above it is withheld, least urgent sessions first, the deadline floor "
            "kept)."
        )
    if config.is_paid_peak_filled:
        lines.append(
            "- Fills to the paid peak (`is_paid_peak_filled`: the import cap never below the billing "
            "period's highest import so far, and charging raised up to it, most urgent sessions first)."
        )
    return lines


def _decoding_lines(config: TrainConfig, trained: Mapping[str, object]) -> list[str]:
    """The card's line for a decoding changed at export, if any."""
    if not trained:
        return []
    changes = ", ".join(
        f"`{name}` {getattr(config, name)} (trained with {value})" for name, value in trained.items()
    )
    return [
        f"- Served with another decoding than training's (`smac export --decoding`): {changes}. The graph is "
        "the trained one; the service applies these after it, and the results below are scored so."
    ]


def model_card(inputs: CardInputs) -> str:
    """The MODEL_CARD.md of an exported policy: what, data and splits, KPIs, limits, how to reproduce."""
    config, metadata = inputs.config, inputs.metadata
    network = "equivariant (shared per-connector network, pooled site context)"
    if not (config.algorithm == "ppo" and config.policy_network == "equivariant"):
        network = f"MLP {'x'.join(str(n) for n in config.net_arch)}"
    library = "stable-baselines3, sb3-contrib" if config.algorithm == "tqc" else "stable-baselines3"
    sha = metadata.onnx_sha256[:16]
    lines = [
        f"# Policy `{inputs.name}/{inputs.version}`",
        "",
        "## What",
        f"- {config.algorithm.upper()} ({library}), "
        f"{network}, trained {config.total_timesteps} environment steps on `{config.template}` "
        f"with objective `{config.objective.name}`.",
        *recipe_lines(config),
        *_decoding_lines(config, inputs.trained_decoding),
        f"- ONNX graph (opset {metadata.onnx_opset_version}, sha256 `{sha}...`) from the raw "
        "observation (layout of `smac_rl.core.observation`, "
        f"{metadata.n_connectors_max} connectors at most) to setpoints in kW; the service passes them "
        "through the safety projection.",
        f"- Provenance: MLflow run `{metadata.mlflow_run_id}`, git `{metadata.git_sha[:12]}`"
        + (f", registry {inputs.registry}" if inputs.registry else "")
        + ".",
        "",
        "## Data and splits (DESIGN.md section 4)",
        f"- Training days: generated days of `{config.template}` from {config.first_day} to {config.last_day}"
        + (f" (a pool of {config.pool_size} distinct days)" if config.pool_size else "")
        + ".",
        f"- Selection days (runs compared, champion chosen): {_days(config.selection_days)}.",
        f"- Test days (reported once, here): {_days(config.test_days)}.",
        "",
        "## Results",
        "Savings capture is `(uncontrolled - policy) / (uncontrolled - optimum)` of the objective per day "
        "(days with under 1 EUR to save excluded and counted); the optimum is the perfect-foresight MILP.",
        "",
        f"Test days: {_headline(inputs.test, inputs.policy_label)}.",
        "",
        *summary_table(inputs.test.summary),
        "",
        f"Selection days: {_headline(inputs.selection, inputs.policy_label)}.",
        "",
        *summary_table(inputs.selection.summary),
        "",
        "## Known limits",
        f"- Trained on one template (`{config.template}`); other sites are out of its training distribution.",
        f"- Sites with more than {metadata.n_connectors_max} connectors are answered by least laxity first "
        "in the service.",
        "- Generated (ElaadNL-like) sessions and Dutch day-ahead prices; the price outlook in the "
        "observation is the day-ahead price, known a day ahead.",
        "- The issue's target is a median savings capture of at least 0.90 on the test days; compare the "
        "table above with it before relying on this policy.",
        "",
        "## Reproduce",
        "```bash",
        *inputs.commands,
        "```",
    ]
    return "\n".join(lines) + "\n"
