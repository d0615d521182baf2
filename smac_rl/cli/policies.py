"""What ``smac evaluate --policy`` accepts: a heuristic, the MPC, an exported ONNX model or ``module:Class``.

``optimal`` is not a policy (it is solved, not stepped) and stays with the command. ``mpc`` is the
rolling-horizon MPC of :mod:`smac_rl.optimal.mpc` (imported only when asked for: pyomo is slow to
import).
"""

from __future__ import annotations

import importlib
import math
import os
import sys
from pathlib import Path

from smac_rl.core.arrays import ScenarioArrays
from smac_rl.core.errors import SmacError
from smac_rl.core.state import Setpoints, StepContext
from smac_rl.policies import ALIASES, HEURISTICS, EpisodePolicy, Policy, heuristic_choices, make_heuristic

ONNX_FILE_NAME = "policy.onnx"
"""The graph's file name in a model folder written by ``smac export``."""

POLICY_SPEC_HELP = (
    "one of {heuristics} or optimal (the perfect-foresight optimum, needs [milp]); mpc (rolling-horizon "
    "MPC over 24 h with perfect forecasts of prices, PV, base load and limits, sessions known from "
    "their arrival on; needs [milp]), mpc:noisy (the same with forecasts whose error grows to 10 percent "
    "one day ahead) or mpc:noisy:SIGMA (that error as a fraction, e.g. mpc:noisy:0.2); an exported ONNX "
    "model: its folder (policy.onnx + metadata.json, as smac export writes them) or its policy.onnx "
    "file (needs [serve]); or module:Class: a class importable from the current folder or the "
    "environment, made without arguments, whose instances follow the Policy protocol"
)
"""What ``--policy`` accepts, for help texts and errors (format with ``heuristics``)."""

MPC_SPEC = "mpc"
"""The ``--policy`` value of the rolling-horizon MPC (``mpc:noisy[:SIGMA]`` for noisy forecasts)."""

MPC_NOISE_FRAC = 0.1
"""Forecast error one day ahead of ``mpc:noisy`` (:class:`smac_rl.core.forecasts.NoisyForecast`)."""


def policy_spec_help() -> str:
    """The accepted ``--policy`` values in words, heuristic names and aliases filled in."""
    return POLICY_SPEC_HELP.format(heuristics=", ".join(heuristic_choices()))


def policy_option_help() -> str:
    """The help text of ``--policy`` (the apps print help text as written, ``[...]`` included)."""
    return f"Policy to evaluate, repeatable: {policy_spec_help()}. Default: the heuristics."


def resolve_policy(spec: str, arrays: ScenarioArrays) -> Policy:
    """The policy a ``--policy`` value names, ready to run on ``arrays``.

    Tried in order: a heuristic name or alias; ``mpc``, ``mpc:noisy`` or ``mpc:noisy:SIGMA``; a
    path (one that exists, ends in ``.onnx`` or holds a
    path separator) to an exported ONNX model; ``module:Class``.

    Args:
        spec: The value given.
        arrays: The scenario it will run on (an ONNX model must have room for its connectors).

    Returns:
        The policy (an :class:`~smac_rl.policies.EpisodePolicy` where it needs the scenario first).

    Raises:
        SmacError: With one line naming the value and what was expected.
    """
    if ALIASES.get(spec, spec) in HEURISTICS:
        return make_heuristic(spec)
    if spec == MPC_SPEC or spec.startswith(f"{MPC_SPEC}:"):
        return _mpc_policy(spec, arrays)
    path = Path(spec)
    if path.exists() or spec.endswith(".onnx") or os.sep in spec or "/" in spec:
        return _onnx_policy(spec, path, arrays)
    if ":" in spec:
        return _imported_policy(spec)
    raise SmacError(f"policy: got {spec!r}; expected {policy_spec_help()}")


def _mpc_policy(spec: str, arrays: ScenarioArrays) -> Policy:
    """The MPC a value names: ``mpc``, ``mpc:noisy`` or ``mpc:noisy:SIGMA`` (24 h window)."""
    expected = "mpc, mpc:noisy or mpc:noisy:SIGMA with SIGMA a fraction >= 0 (e.g. mpc:noisy:0.2)"
    parts = spec.split(":")
    sigma_frac: float | None = None
    if len(parts) > 1:
        if parts[1] != "noisy" or len(parts) > 3:
            raise SmacError(f"policy: got {spec!r}; expected {expected}")
        try:
            sigma_frac = float(parts[2]) if len(parts) == 3 else MPC_NOISE_FRAC
        except ValueError:
            raise SmacError(f"policy: got {spec!r}; expected {expected}") from None
        if not (math.isfinite(sigma_frac) and sigma_frac >= 0.0):
            raise SmacError(f"policy: got {spec!r}; expected {expected}")
    try:
        from smac_rl.optimal.mpc import MpcPolicy, horizon_steps_of
    except ImportError as exc:
        raise SmacError(
            f"policy {spec!r} needs the [milp] extra ({exc.name} is missing): "
            "pip install -c constraints.txt -e '.[milp]'"
        ) from None
    from smac_rl.core.forecasts import NoisyForecast, PerfectForecast

    forecast = PerfectForecast() if sigma_frac is None else NoisyForecast(sigma_frac)
    return MpcPolicy(forecast, horizon_steps=horizon_steps_of(arrays.step_h))


class _OnnxNamed:
    """An exported ONNX policy shown under its path (two models side by side keep apart)."""

    def __init__(self, policy: EpisodePolicy, name: str) -> None:
        self._policy, self._name = policy, name

    @property
    def name(self) -> str:
        """``onnx:<the value given>``."""
        return self._name

    def begin_episode(self, arrays: ScenarioArrays) -> None:
        """Bind the model to the scenario."""
        self._policy.begin_episode(arrays)

    def act(self, context: StepContext) -> Setpoints:
        """The model's setpoints [kW]."""
        return self._policy.act(context)


def _onnx_policy(spec: str, path: Path, arrays: ScenarioArrays) -> Policy:
    """An exported model from its folder or its ``policy.onnx`` file, checked against the scenario."""
    if path.is_dir():
        model_dir = path
    elif path.name == ONNX_FILE_NAME:
        model_dir = path.parent
    else:
        raise SmacError(
            f"policy: got {spec!r}; expected an exported model: a folder with {ONNX_FILE_NAME} and "
            f"metadata.json, or its {ONNX_FILE_NAME} file"
        )
    try:
        from smac_rl_serve.model import OnnxPolicy
    except ImportError as exc:
        raise SmacError(
            f"policy {spec!r}: an ONNX model needs the [serve] extra ({exc.name} is missing): "
            "pip install -c constraints.txt -e '.[serve]'"
        ) from None
    policy = OnnxPolicy(model_dir)  # ModelError is a SmacError with one line
    room = policy.layout.n_connectors_max
    if arrays.site.n_connectors > room:
        raise SmacError(
            f"policy: got {spec!r}, a model with room for {room} connectors; expected room for the "
            f"{arrays.site.n_connectors} connectors of scenario {arrays.name!r}"
        )
    return _OnnxNamed(policy, f"onnx:{spec}")


def _imported_policy(spec: str) -> Policy:
    """An instance of ``module:Class`` (made without arguments), checked to follow the Policy protocol."""
    module_name, _, attribute = spec.partition(":")
    if not module_name or not attribute:
        raise SmacError(f"policy: got {spec!r}; expected module:Class with both parts")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        raise SmacError(
            f"policy: got {spec!r}; expected module:Class with an importable module "
            f"(no module named {exc.name!r})"
        ) from None
    except Exception as exc:  # the user's module failed while importing: say how, on one line
        raise SmacError(
            f"policy: got {spec!r}; expected module:Class with an importable module "
            f"(importing {module_name} raised {type(exc).__name__}: {exc})"
        ) from None
    target: object = module
    for part in attribute.split("."):
        if not hasattr(target, part):
            raise SmacError(
                f"policy: got {spec!r}; expected module:Class naming a class of {module_name} "
                f"(it has no attribute {attribute!r})"
            )
        target = getattr(target, part)
    if not callable(target):
        raise SmacError(
            f"policy: got {spec!r}; expected module:Class naming a class, not an object of type "
            f"{type(target).__name__}"
        )
    try:
        instance = target()
    except Exception as exc:  # the user's constructor failed: say how, on one line
        raise SmacError(
            f"policy: got {spec!r}; expected a class made without arguments ({type(exc).__name__}: {exc})"
        ) from None
    if not isinstance(instance, Policy) or not isinstance(instance.name, str) or not callable(instance.act):
        raise SmacError(
            f"policy: got {spec!r}; expected a class whose instances follow the Policy protocol "
            "(a name string and act(context) -> Setpoints)"
        )
    return instance
