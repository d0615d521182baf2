"""The policy protocol and the heuristics (light: numpy and the core only)."""

from smac_rl.policies.heuristics import ALIASES, HEURISTICS, LeastLaxityFirst, Uncontrolled, make_heuristic
from smac_rl.policies.protocol import EpisodePolicy, Policy, run_policy

__all__ = [
    "ALIASES",
    "HEURISTICS",
    "EpisodePolicy",
    "LeastLaxityFirst",
    "Policy",
    "Uncontrolled",
    "make_heuristic",
    "run_policy",
]
