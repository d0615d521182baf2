"""Reading scenarios from YAML, JSON or mappings; the one edge where scenarios are validated."""

from __future__ import annotations

import json
import re
from collections.abc import Hashable, Mapping
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError
from pydantic_core import ErrorDetails

from smac_rl.core.errors import FieldProblem, ScenarioError, render_path, render_value
from smac_rl.core.specs.scenario import ScenarioSpec
from smac_rl.core.validation import check_scenario

BUILTIN_PACKAGE = "smac_rl.core.builtin"
_UNION_TAGS = frozenset({"float", "list[float]", "HeldSeries"})
_SERIES_EXPECTATION = "a number, a list of one number per time-grid step, or {step_min, values}"


def parse_scenario(data: object, source: str | None = None) -> ScenarioSpec:
    """Validate a scenario given as plain data (the result of reading YAML or JSON).

    Args:
        data: A mapping with the scenario's keys.
        source: Where the data came from, for messages.

    Returns:
        The validated scenario.

    Raises:
        ScenarioError: With one problem per bad field; nothing is returned on any problem.
    """
    if not isinstance(data, Mapping):
        raise ScenarioError(
            [FieldProblem("(top level)", type(data).__name__, "a mapping of scenario keys")], source
        )
    try:
        spec = ScenarioSpec.model_validate(dict(data))
    except ValidationError as exc:
        raise ScenarioError(problems_from_pydantic(exc.errors()), source) from None
    problems = check_scenario(spec)
    if problems:
        raise ScenarioError(problems, source)
    return spec


def load_scenario(path: str | Path) -> ScenarioSpec:
    """Read and validate a scenario file (``.yaml``, ``.yml`` or ``.json``).

    Args:
        path: The file.

    Returns:
        The validated scenario.

    Raises:
        ScenarioError: When the file is missing, unreadable, malformed or invalid.
    """
    file = Path(path)
    return parse_scenario(read_data_file(file), str(file))


def read_data_file(file: Path) -> object:
    """Read a ``.yaml``, ``.yml`` or ``.json`` file into plain data.

    Raises:
        ScenarioError: When the file has another suffix, is missing, unreadable or malformed.
    """
    source = str(file)
    if file.suffix.lower() not in {".yaml", ".yml", ".json"}:
        raise ScenarioError(
            [FieldProblem("file", render_value(file.name), "a .yaml, .yml or .json file")], source
        )
    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise ScenarioError(
            [FieldProblem("file", render_path(source), f"a readable file ({reason})")]
        ) from None
    return parse_data_text(text, file.suffix.lower(), source)


def parse_data_text(text: str, suffix: str, source: str) -> object:
    """Parse YAML (safely, see :class:`ScenarioYamlLoader`) or JSON text (``suffix`` ``.json``).

    Raises:
        ScenarioError: When the text is malformed, naming the line.
    """
    try:
        if suffix == ".json":
            return json.loads(text, object_pairs_hook=_unique_json_keys)
        return yaml.load(text, Loader=ScenarioYamlLoader)
    except (json.JSONDecodeError, yaml.YAMLError, RecursionError) as exc:
        detail = " ".join(str(exc).split())
        raise ScenarioError(
            [FieldProblem("file", render_value(Path(source).name), f"well-formed data ({detail})")], source
        ) from None


def _unique_json_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """Build a JSON object, refusing repeated keys as the YAML loader does."""
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise json.JSONDecodeError(f"duplicate key {key!r}", "", 0)
        out[key] = value
    return out


def builtin_scenario_names() -> list[str]:
    """Names of the scenarios shipped with the package."""
    root = resources.files(BUILTIN_PACKAGE)
    return sorted(p.name.removesuffix(".yaml") for p in root.iterdir() if p.name.endswith(".yaml"))


def load_builtin_scenario(name: str) -> ScenarioSpec:
    """Load a scenario shipped with the package.

    Args:
        name: One of :func:`builtin_scenario_names`.

    Returns:
        The validated scenario.

    Raises:
        ScenarioError: For an unknown name.
    """
    names = builtin_scenario_names()
    if name not in names:
        raise ScenarioError([FieldProblem("scenario", render_value(name), f"one of {', '.join(names)}")])
    with resources.as_file(resources.files(BUILTIN_PACKAGE) / f"{name}.yaml") as file:
        return load_scenario(file)


def scenario_to_yaml(spec: ScenarioSpec) -> str:
    """Render a scenario as YAML that :func:`load_scenario` reads back to an equal scenario."""
    return yaml.safe_dump(spec.model_dump(mode="json", exclude_defaults=True), sort_keys=False)


def problems_from_pydantic(errors: list[ErrorDetails]) -> list[FieldProblem]:
    """Turn pydantic's errors into problems naming the field path, the value and the expectation.

    Errors inside a series union collapse into one problem per series.
    """
    problems: list[FieldProblem] = []
    seen_union_paths: set[str] = set()
    for error in errors:
        loc = list(error["loc"])
        union_at = next(
            (k for k, part in enumerate(loc) if isinstance(part, str) and part in _UNION_TAGS), None
        )
        if union_at is not None:
            path = _format_path(loc[:union_at])
            if path in seen_union_paths:
                continue
            seen_union_paths.add(path)
            problems.append(FieldProblem(path, render_value(error["input"]), _SERIES_EXPECTATION))
            continue
        value = "nothing" if error["type"] == "missing" else render_value(error["input"])
        problems.append(FieldProblem(_format_path(loc), value, describe_expectation(error)))
    return problems


def _format_path(loc: list[int | str]) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "(top level)"


def describe_expectation(error: ErrorDetails) -> str:
    """What a field should hold, phrased from one pydantic error (bounds, required, unknown key...)."""
    kind = error["type"]
    ctx: dict[str, Any] = dict(error.get("ctx") or {})
    bounds = {
        "less_than_equal": ("<=", "le"),
        "less_than": ("<", "lt"),
        "greater_than_equal": (">=", "ge"),
        "greater_than": (">", "gt"),
    }
    if kind in bounds:
        symbol, key = bounds[kind]
        bound = ctx.get(key)
        return (
            f"a number {symbol} {bound:g}" if isinstance(bound, int | float) else f"a number {symbol} {bound}"
        )
    phrases = {
        "missing": "a value (the field is required)",
        "extra_forbidden": "no such key (unknown keys are rejected; check the spelling)",
        "timezone_aware": "a timezone-aware datetime such as 2024-05-01T08:00:00+02:00",
        "finite_number": "a finite number",
    }
    if kind in phrases:
        return phrases[kind]
    message = error["msg"]
    message = re.sub(r"^(Input|Value) should be ", "", message)
    message = re.sub(r"^Value error, ", "", message)
    return message[:1].lower() + message[1:]


class DuplicateKeyError(yaml.YAMLError):
    """A YAML mapping repeats a key (plain YAML keeps the last one silently)."""


_INT_YAML12 = re.compile(r"^(?:[-+]?0b[0-1_]+|[-+]?0o?[0-7_]+|[-+]?(?:0|[1-9][0-9_]*)|[-+]?0x[0-9a-fA-F_]+)$")
_FLOAT_YAML12 = re.compile(
    r"^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?|[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)"
    r"|\.[0-9_]+(?:[eE][-+]?[0-9]+)?|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"
)


def _scenario_resolvers() -> dict[Any, list[tuple[str, re.Pattern[str]]]]:
    """SafeLoader's implicit resolvers without timestamps and with YAML 1.2 numbers (no base 60)."""
    dropped = {"tag:yaml.org,2002:timestamp", "tag:yaml.org,2002:int", "tag:yaml.org,2002:float"}
    resolvers: dict[Any, list[tuple[str, re.Pattern[str]]]] = {
        first: [(tag, regexp) for tag, regexp in entries if tag not in dropped]
        for first, entries in yaml.SafeLoader.yaml_implicit_resolvers.items()
    }
    for tag, regexp, firsts in (
        ("tag:yaml.org,2002:int", _INT_YAML12, "-+0123456789"),
        ("tag:yaml.org,2002:float", _FLOAT_YAML12, "-+0123456789."),
    ):
        for first in firsts:
            resolvers.setdefault(first, []).append((tag, regexp))
    return resolvers


class ScenarioYamlLoader(yaml.SafeLoader):
    """Safe YAML loader for scenarios.

    Differences from ``yaml.SafeLoader``: timestamps stay strings (pydantic parses ISO 8601 and
    rejects naive ones), ``7:30`` stays a string instead of the YAML 1.1 base-60 integer 450, and a
    repeated or unhashable key is an error.
    """

    yaml_implicit_resolvers = _scenario_resolvers()

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        """Build a mapping, refusing repeated and unhashable keys."""
        keys: set[object] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if not isinstance(key, Hashable):
                raise DuplicateKeyError(
                    f"a list or mapping used as a key at line {key_node.start_mark.line + 1}"
                )
            if key in keys:
                raise DuplicateKeyError(f"duplicate key {key!r} at line {key_node.start_mark.line + 1}")
            keys.add(key)
        return super().construct_mapping(node, deep=deep)
