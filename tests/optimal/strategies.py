"""Hypothesis strategies of the optimum's tests: the random scenarios of tests/core, floored."""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

from tests.core.test_invariants import scenario_dicts

TINY_VALUE_FLOOR = 1e-6
"""Magnitude below which a drawn float is set to 0 (module docstring of :func:`without_tiny_values`)."""


def without_tiny_values(value: Any) -> Any:
    """The data with every float of magnitude under :data:`TINY_VALUE_FLOOR` set to 0.

    HiGHS mis-solves models with subnormal coefficients, whichever builder made them: a price of
    2.2e-309 EUR/kWh drawn by hypothesis gave -0.048 and -0.055 EUR for an optimum of -0.0625
    EUR; an import price of 1.1e-308 EUR/kWh in one step of a storage-only day gave 1.0 EUR for
    the all-binaries MILP against 0.111 EUR for the optimum (the same day with that price at 0
    gives 0.111 EUR both ways). Such values say nothing about the model, so the random scenarios
    of the optimum's tests never hold them.
    """
    if isinstance(value, dict):
        return {k: without_tiny_values(v) for k, v in value.items()}
    if isinstance(value, list):
        return [without_tiny_values(v) for v in value]
    if isinstance(value, float) and abs(value) < TINY_VALUE_FLOOR:
        return 0.0
    return value


def floored_scenario_dicts() -> st.SearchStrategy[dict[str, Any]]:
    """:func:`tests.core.test_invariants.scenario_dicts` through :func:`without_tiny_values`."""
    return scenario_dicts().map(without_tiny_values)
