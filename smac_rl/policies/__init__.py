"""The policy protocol and the heuristics (light: numpy and the core only)."""

from smac_rl.policies.heuristics import (
    ALIASES,
    HEURISTICS,
    LeastLaxityFirst,
    Uncontrolled,
    heuristic_choices,
    make_heuristic,
)
from smac_rl.policies.protocol import EpisodePolicy, Policy, run_policy
from smac_rl.policies.schedulers import EarliestDeadlineFirst, EqualShare, PriceThreshold

__all__ = [
    "ALIASES",
    "HEURISTICS",
    "EarliestDeadlineFirst",
    "EpisodePolicy",
    "EqualShare",
    "LeastLaxityFirst",
    "Policy",
    "PriceThreshold",
    "Uncontrolled",
    "heuristic_choices",
    "make_heuristic",
    "run_policy",
]
