"""Every shipped experiment config validates; an unknown key is refused with the key named."""

from __future__ import annotations

from pathlib import Path

import pydantic
import pytest
import yaml

from smac_rl.agents.config import TrainConfig

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
