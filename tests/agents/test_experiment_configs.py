"""Every shipped experiment config validates; an unknown key is refused with the key named."""

from __future__ import annotations

from pathlib import Path

import pydantic
import pytest
import yaml

from smac_rl.agents.config import TrainConfig
from smac_rl.agents.reports import recipe_lines
from smac_rl.agents.sweep import load_sweep_config

EXPERIMENTS = Path(__file__).resolve().parents[2] / "experiments"


@pytest.mark.parametrize("path", sorted(EXPERIMENTS.glob("*.yaml")), ids=lambda p: p.stem)
def test_shipped_config_validates(path: Path) -> None:
    config = TrainConfig.model_validate(yaml.safe_load(path.read_text(encoding="utf-8")))
    assert config.template in path.stem
    assert config.objective.name in path.stem
    assert config.last_day.year <= 2022  # never train on the selection or test years


def test_there_is_a_config_per_template() -> None:
    stems = " ".join(p.stem for p in EXPERIMENTS.glob("*.yaml"))
    for template in ("turku", "rome", "berlin", "budapest", "barcelona"):
        assert template in stems


def test_unknown_key_is_named() -> None:
    with pytest.raises(pydantic.ValidationError, match=r"learning_rat\n.*Extra inputs are not permitted"):
        TrainConfig.model_validate({"learning_rat": 0.1})


@pytest.mark.parametrize("split", ["selection_days", "test_days"])
def test_evaluation_days_overlapping_the_training_days_are_refused(split: str) -> None:
    days = {"first_day": "2022-12-30", "n_days": 3}
    with pytest.raises(
        pydantic.ValidationError, match=rf"{split} 2022-12-30\.\.2023-01-01: overlaps the training"
    ):
        TrainConfig.model_validate({split: days})


def test_days_end_on_their_last_day() -> None:
    config = TrainConfig()
    assert (config.selection_days.first_day.isoformat(), config.selection_days.last_day.isoformat()) == (
        "2023-01-09",
        "2023-01-15",
    )
    assert config.last_day.isoformat() == "2022-12-31"


@pytest.mark.parametrize("path", sorted((EXPERIMENTS / "sweeps").glob("*.yaml")), ids=lambda p: p.stem)
def test_shipped_sweep_validates(path: Path) -> None:
    sweep = load_sweep_config(path)
    assert sweep.train.template in path.stem
    assert sweep.train.last_day < sweep.train.selection_days.first_day < sweep.train.test_days.first_day


def test_monthly_billing_needs_consecutive_days_without_a_pool() -> None:
    with pytest.raises(pydantic.ValidationError, match="expected episode_order 'consecutive', got 'random'"):
        TrainConfig(billing_period="month")
    with pytest.raises(pydantic.ValidationError, match="pool_size 512 with episode_order 'consecutive'"):
        TrainConfig(episode_order="consecutive", billing_period="month")
    config = TrainConfig(episode_order="consecutive", billing_period="month", pool_size=None)
    assert (config.episode_order, config.billing_period) == ("consecutive", "month")


def test_the_price_ranks_reach_the_layout_and_a_non_flag_is_refused() -> None:
    assert not TrainConfig().layout().is_price_rank_observed
    assert TrainConfig(is_price_rank_observed=True).layout().is_price_rank_observed
    assert TrainConfig(is_load_outlook_observed=True).layout().calendar_flags == (False, True)
    with pytest.raises(pydantic.ValidationError, match=r"is_price_rank_observed\n.*valid boolean"):
        TrainConfig.model_validate({"is_price_rank_observed": "sometimes"})


def test_the_deadline_floor_reaches_the_layout_and_a_negative_margin_is_refused() -> None:
    assert TrainConfig().layout().deadline_floor_margin_steps is None
    assert TrainConfig(deadline_floor_margin_steps=1.0).layout().deadline_floor_margin_steps == 1.0
    with pytest.raises(
        pydantic.ValidationError, match=r"deadline_floor_margin_steps\n.*greater than or equal to 0"
    ):
        TrainConfig.model_validate({"deadline_floor_margin_steps": -1})


def test_the_card_states_the_recipe_besides_environment_steps() -> None:
    assert recipe_lines(TrainConfig()) == []
    config = TrainConfig(
        imitation_days=300,
        imitation_epochs=40,
        dagger_rounds=1,
        dagger_days=30,
        deadline_floor_margin_steps=1.0,
        is_price_rank_observed=True,
        is_load_outlook_observed=True,
        total_timesteps=0,
    )
    assert recipe_lines(config) == [
        "- Cloned from the actions of the perfect-foresight optimum on 300 generated days (40 epochs), then "
        "1 DAgger round(s) of 30 days (its own states labelled by the optimum of the rest of the day).",
        "- Deadline floor with 1 step(s) to spare (`smac_rl.core.observation.deadline_floor_kw`, applied by "
        "the service after the graph).",
        "- Observes the price ranks (`is_price_rank_observed`: where each step's import price ranks "
        "among the next 2 to 24 hours', and their range).",
        "- Observes the net-load outlook (`is_load_outlook_observed`: the highest base load minus PV of the "
        "next 4, 12 and 24 hours).",
    ]
    tuned = TrainConfig(
        imitation_days=150,
        expert="mpc",
        expert_early_charging_eur_per_kwh=1e-4,
        policy_network="equivariant",
        pooling="mean_sum",
        imitation_action_std=0.1,
        value_warmup_timesteps=100_000,
        total_timesteps=400_000,
        learning_rate=3e-5,
        eval_every_steps=50_000,
    )
    assert recipe_lines(tuned) == [
        "- Cloned from the actions of the forecast-driven MPC (`expert: mpc`: perfect price, PV and load "
        "forecasts, no arrivals ahead) with the early-charging tie-breaker "
        "(`expert_early_charging_eur_per_kwh` 0.0001) on 150 generated days (30 epochs).",
        "- Then PPO on the batched env: 100000 steps training the critic alone, then 400000 steps (learning "
        "rate 3e-05, action noise 0.1 at the start), the best model on the selection days (scored every "
        "50000 steps) kept.",
        "- Sum pooling (`pooling: mean_sum`): the network sees the sum of its connector latents beside their "
        "mean, so the fleet's size.",
    ]


def test_the_paid_peak_fill_reaches_the_layout_only_under_the_peak_objective() -> None:
    config = TrainConfig.model_validate({"objective": {"name": "peak"}, "is_paid_peak_filled": True})
    assert config.layout().is_paid_peak_filled
    assert config.layout().options()["is_paid_peak_filled"] is True
    with pytest.raises(
        pydantic.ValidationError, match=r"is_paid_peak_filled true with objective\.name 'cost'"
    ):
        TrainConfig(is_paid_peak_filled=True)
