"""What ``smac evaluate --policy`` accepts: a heuristic, an exported ONNX model or ``module:Class``.

``optimal`` is not a policy (it is solved, not stepped) and stays with the command.
"""

from __future__ import annotations

import importlib
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
    "one of {heuristics} or optimal (the perfect-foresight optimum, needs [milp]); an exported ONNX "
    "model: its folder (policy.onnx + metadata.json, as smac export writes them) or its policy.onnx "
    "file (needs [serve]); or module:Class: a class importable from the current folder or the "
    "environment, made without arguments, whose instances follow the Policy protocol"
)
"""What ``--policy`` accepts, for help texts and errors (format with ``heuristics``)."""


def policy_spec_help() -> str:
    """The accepted ``--policy`` values in words, heuristic names and aliases filled in."""
    return POLICY_SPEC_HELP.format(heuristics=", ".join(heuristic_choices()))


def policy_option_help() -> str:
    """The help text of ``--policy`` (the apps print help text as written, ``[...]`` included)."""
    return f"Policy to evaluate, repeatable: {policy_spec_help()}. Default: the heuristics."


def resolve_policy(spec: str, arrays: ScenarioArrays) -> Policy:
    """The policy a ``--policy`` value names, ready to run on ``arrays``.

    Tried in order: a heuristic name or alias; a path (one that exists, ends in ``.onnx`` or holds a
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
    path = Path(spec)
    if path.exists() or spec.endswith(".onnx") or os.sep in spec or "/" in spec:
        return _onnx_policy(spec, path, arrays)
    if ":" in spec:
        return _imported_policy(spec)
    raise SmacError(f"policy: got {spec!r}; expected {policy_spec_help()}")


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
