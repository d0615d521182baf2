"""Units and the sign convention, written once.

Every numeric name in the domain model ends in one suffix from :data:`UNIT_SUFFIXES`, or is
exempt by :func:`is_exempt_name` (ids, counts ``n_``, flags ``is_``/``allow_``, indices, time zone
names). A test walks the specs, the arrays and the KPIs and checks every name against this list.
"""

from __future__ import annotations

UNIT_SUFFIXES: tuple[str, ...] = (
    "_kw",
    "_w",
    "_kwh",
    "_kwp",
    "_a",
    "_v",
    "_frac",
    "_eur",
    "_eur_per_kwh",
    "_eur_per_kw",
    "_kg_co2_per_kwh",
    "_deg",
    "_min",
    "_h",
    "_s",
    "_utc",
)
"""The closed list of unit suffixes (DESIGN.md section 3)."""

EXEMPT_PREFIXES: tuple[str, ...] = ("n_", "is_", "allow_")
"""Counts (``n_``) and flags (``is_``, ``allow_``) carry no unit."""

EXEMPT_SUFFIXES: tuple[str, ...] = (
    "_id",
    "_ids",
    "_index",
    "_step",
    "_steps",
    "timezone",
    "_name",
    "_version",
)
"""Identifiers, array indices, step numbers on the time grid, time zone names and versions carry no unit."""

SIGN_CONVENTION = (
    "power_kw > 0 charges the asset from the site bus, power_kw < 0 discharges it into the bus "
    "(V2G, storage). Grid exchange is two non-negative quantities, grid_import_kw and grid_export_kw."
)
"""The sign convention, stated once and copied into every exported artifact's metadata."""


def has_unit_suffix(name: str) -> bool:
    """Tell whether a name ends in one of :data:`UNIT_SUFFIXES`.

    Args:
        name: A field, attribute or KPI name.

    Returns:
        True when the name carries a unit suffix.
    """
    return any(name.endswith(suffix) for suffix in UNIT_SUFFIXES)


def is_exempt_name(name: str) -> bool:
    """Tell whether a numeric name is exempt from carrying a unit.

    Args:
        name: A field, attribute or KPI name.

    Returns:
        True for ids, counts, flags, indices, step numbers and time zone names.
    """
    return name == "id" or name.startswith(EXEMPT_PREFIXES) or name.endswith(EXEMPT_SUFFIXES)
