"""Pydantic specs of the domain model: site, sessions, scenario."""

from smac_rl.core.specs.scenario import (
    HeldSeries,
    ObjectiveName,
    ObjectiveSpec,
    ScenarioSpec,
    SeriesSet,
    SeriesValue,
    TimeGridSpec,
)
from smac_rl.core.specs.session import SessionSpec
from smac_rl.core.specs.site import (
    ChargerSpec,
    ConnectorSpec,
    GridSpec,
    PvSpec,
    SiteSpec,
    StorageSpec,
    TariffSpec,
    TimeOfUsePeriod,
)

__all__ = [
    "ChargerSpec",
    "ConnectorSpec",
    "GridSpec",
    "HeldSeries",
    "ObjectiveName",
    "ObjectiveSpec",
    "PvSpec",
    "ScenarioSpec",
    "SeriesSet",
    "SeriesValue",
    "SessionSpec",
    "SiteSpec",
    "StorageSpec",
    "TariffSpec",
    "TimeGridSpec",
    "TimeOfUsePeriod",
]
