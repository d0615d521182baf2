"""Errors of the domain core: every problem names the field path, the value and the expectation."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar


@dataclass(frozen=True)
class FieldProblem:
    """One problem found in an input.

    Attributes:
        path: Dotted field path with list indices, e.g. ``sessions[2].arrival_soc_frac``.
        value: A short rendering of the offending value.
        expectation: What the field should hold.
    """

    path: str
    value: str
    expectation: str

    def __str__(self) -> str:
        return f"{self.path}: got {self.value}; expected {self.expectation}"


class SmacError(Exception):
    """Base class of the errors SMAC-RL raises on bad input."""


ProblemT = TypeVar("ProblemT")


class ProblemsError(SmacError, Generic[ProblemT]):
    """Bad input with every problem found, each rendered on its own line.

    Attributes:
        problems: Every problem found (anything whose ``str`` is one line).
        source: Where the input came from (a file path), if known.
    """

    def __init__(self, problems: Sequence[ProblemT], source: str | None = None) -> None:
        self.problems: list[ProblemT] = list(problems)
        self.source = source
        where = f" in {source}" if source else ""
        lines = [f"{len(self.problems)} problem(s){where}:"] + [f"  {p}" for p in self.problems]
        super().__init__("\n".join(lines))


class ScenarioError(ProblemsError[FieldProblem]):
    """A scenario that failed validation; nothing may run on it.

    Attributes:
        problems: Every problem found, one per field.
        source: Where the scenario came from (a file path), if known.
    """


def render_value(value: object, max_chars: int = 60) -> str:
    """Render a value for an error message, shortened to ``max_chars``.

    Args:
        value: Any input value.
        max_chars: Longest rendering kept [characters].

    Returns:
        ``repr`` of the value, cut with an ellipsis when too long.
    """
    text = repr(value)
    return text if len(text) <= max_chars else text[: max_chars - 3] + "..."


def render_path(path: object) -> str:
    """Render a file path for an error message in full (a cut path names no file).

    Args:
        path: A path or path-like string.

    Returns:
        ``repr`` of the path as a string, never shortened.
    """
    return repr(str(path))
