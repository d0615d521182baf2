"""Every numeric name in the core ends in a unit suffix from DESIGN.md section 3, or is exempt."""

from __future__ import annotations

import dataclasses
import importlib
import pkgutil
import re
import typing
from collections.abc import Iterator

import pydantic
import pytest

import smac_rl.core
from smac_rl.core.scoring import Kpis
from smac_rl.core.units import SIGN_CONVENTION, UNIT_SUFFIXES, has_unit_suffix, is_exempt_name

# Generic containers whose unit is the one of the field that holds them, and a feature's
# normalisation divisor, which carries the unit of that feature.
CONTAINER_FIELDS = {
    "HeldSeries.values",
    "Feature.scale",
    "FeatureEntry.scale",
    # the batch engine's per-scenario row layout: stacks of fields, each named in its docstring
    "_Prepared.session_values",
    "_Prepared.series_values",
    "_Prepared.calendar_values",
}
NUMERIC_MARKERS = ("float", "int", "FloatArray", "IntArray", "SeriesValue", "ndarray")


def _core_classes() -> Iterator[type]:
    for info in pkgutil.walk_packages(smac_rl.core.__path__, prefix="smac_rl.core."):
        module = importlib.import_module(info.name)
        for value in vars(module).values():
            if isinstance(value, type) and value.__module__ == module.__name__:
                yield value


def _fields(cls: type) -> list[tuple[str, str]]:
    if issubclass(cls, pydantic.BaseModel):
        return [(name, str(field.annotation)) for name, field in cls.model_fields.items()]
    if dataclasses.is_dataclass(cls):
        hints = typing.get_type_hints(cls)
        return [(f.name, str(hints[f.name])) for f in dataclasses.fields(cls)]
    return []


def name_problems(cls: type) -> list[str]:
    """Names of a model or dataclass that break the unit rule."""
    problems = []
    for name, annotation in _fields(cls):
        if f"{cls.__name__}.{name}" in CONTAINER_FIELDS:
            continue
        is_flag = "bool" in annotation and not any(m in annotation for m in ("float", "FloatArray"))
        if is_flag:
            if not name.startswith(("is_", "allow_")):
                problems.append(f"{cls.__name__}.{name}: a flag must start with is_ or allow_")
        elif any(re.search(rf"\b{marker}\b", annotation) for marker in NUMERIC_MARKERS) and not (
            has_unit_suffix(name) or is_exempt_name(name)
        ):
            problems.append(f"{cls.__name__}.{name}: no unit suffix ({annotation})")
    return problems


def test_core_names_carry_units() -> None:
    classes = [c for c in _core_classes() if _fields(c)]
    assert len(classes) >= 20, [c.__name__ for c in classes]
    problems = [p for cls in classes for p in name_problems(cls)]
    assert problems == []


def test_kpi_names_carry_units() -> None:
    for name in Kpis.__dataclass_fields__:
        assert has_unit_suffix(name), name


@dataclasses.dataclass
class _Offender:
    current_energy: float
    soc_pct: float
    is_on: bool
    enabled: bool
    n_sessions: int
    power_kw: float


def test_the_check_catches_offenders() -> None:
    assert name_problems(_Offender) == [
        "_Offender.current_energy: no unit suffix (<class 'float'>)",
        "_Offender.soc_pct: no unit suffix (<class 'float'>)",
        "_Offender.enabled: a flag must start with is_ or allow_",
    ]


@pytest.mark.parametrize("name", ["power_kw", "price_eur_per_kwh", "soc_frac", "start_utc", "step_min"])
def test_suffixes_recognised(name: str) -> None:
    assert has_unit_suffix(name)


def test_suffix_list_is_the_closed_list_of_the_design() -> None:
    assert set(UNIT_SUFFIXES) == {
        "_kw", "_w", "_kwh", "_kwp", "_a", "_v", "_frac", "_eur", "_eur_per_kwh", "_eur_per_kw",
        "_kg_co2_per_kwh", "_deg", "_min", "_h", "_s", "_utc",
    }  # fmt: skip
    assert "power_kw > 0 charges" in SIGN_CONVENTION
