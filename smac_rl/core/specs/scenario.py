"""Scenario spec: site + time grid + sessions + exogenous series + unmet-energy penalty."""

from __future__ import annotations

import datetime as dt
from typing import Literal

from pydantic import AwareDatetime, Field, field_validator

from smac_rl.core.specs.base import StrictModel
from smac_rl.core.specs.session import SessionSpec
from smac_rl.core.specs.site import SiteSpec

SCENARIO_SCHEMA_VERSION = 1


class HeldSeries(StrictModel):
    """A series on a coarser step, each value held over its step (e.g. hourly prices on a 15-min grid).

    Attributes:
        step_min: Step of the values [min]; a multiple of the time grid's step.
        values: The values, covering the time grid exactly.
    """

    step_min: int = Field(gt=0)
    values: list[float] = Field(min_length=1)


SeriesValue = float | list[float] | HeldSeries
"""A constant, one value per time-grid step, or a held coarser series."""


class SeriesSet(StrictModel):
    """Exogenous series on the scenario's time grid.

    Attributes:
        import_price_eur_per_kwh: Energy import price [EUR/kWh]; give this or
            ``site.tariff.time_of_use``, exactly one of the two.
        export_price_eur_per_kwh: Price paid for exported energy [EUR/kWh].
        base_load_kw: Non-EV site consumption [kW], non-negative.
        pv_available_kw: PV power available before curtailment [kW]; required when ``site.pv`` is set.
        import_limit_kw: Time-varying import limit (DSO capacity signal) [kW]; the effective limit
            is the lower of this and the static one.
        export_limit_kw: Time-varying export limit [kW], combined the same way.
        grid_setpoint_kw: Flexibility setpoint: the net grid exchange asked of the site, import
            positive [kW]; required by the ``setpoint_tracking`` objective.
    """

    import_price_eur_per_kwh: SeriesValue | None = None
    export_price_eur_per_kwh: SeriesValue = 0.0
    base_load_kw: SeriesValue = 0.0
    pv_available_kw: SeriesValue | None = None
    import_limit_kw: SeriesValue | None = None
    export_limit_kw: SeriesValue | None = None
    grid_setpoint_kw: SeriesValue | None = None


ObjectiveName = Literal["cost", "peak", "load_balancing", "setpoint_tracking", "v2g_profit"]
"""The named use-case objectives (formulas in :mod:`smac_rl.core.objectives`)."""


class ObjectiveSpec(StrictModel):
    """Which objective policies and the optimum minimise, and its weights.

    Attributes:
        name: The use case (formulas in :mod:`smac_rl.core.objectives`).
        peak_penalty_eur_per_kw: Price of the episode's peak import under ``peak`` [EUR/kW].
        violation_penalty_eur_per_kwh: Price of energy beyond a grid limit under ``load_balancing`` [EUR/kWh].
        tracking_penalty_eur_per_kwh: Price of energy away from the flexibility setpoint under
            ``setpoint_tracking`` [EUR/kWh].
    """

    name: ObjectiveName = "cost"
    peak_penalty_eur_per_kw: float = Field(default=1.0, ge=0, le=1e4)
    violation_penalty_eur_per_kwh: float = Field(default=10.0, ge=0, le=1e4)
    tracking_penalty_eur_per_kwh: float = Field(default=0.5, ge=0, le=1e4)


class TimeGridSpec(StrictModel):
    """The scenario's uniform time grid.

    Attributes:
        start_utc: Start of the first step, timezone-aware.
        step_min: Step length [min]; divides a day.
        n_steps: Number of steps.
    """

    start_utc: AwareDatetime
    step_min: int = Field(default=15, gt=0, le=1440)
    n_steps: int = Field(default=96, ge=1, le=100_000)

    @field_validator("step_min")
    @classmethod
    def _divides_a_day(cls, value: int) -> int:
        if 1440 % value != 0:
            raise ValueError(f"a step that divides a day (1440 min) evenly, such as 5, 15 or 60, not {value}")
        return value

    @property
    def step_h(self) -> float:
        """Step length [h]."""
        return self.step_min / 60.0

    @property
    def end_utc(self) -> dt.datetime:
        """End of the last step, in UTC (elapsed time: a clock change in the start's zone moves nothing)."""
        return self.start_utc.astimezone(dt.UTC) + dt.timedelta(minutes=self.step_min * self.n_steps)


class ScenarioSpec(StrictModel):
    """A complete, validated scenario. Build it with :func:`smac_rl.core.scenario_io.parse_scenario`.

    Attributes:
        schema_version: Version of this format.
        name: Scenario name.
        description: Free text (provenance, labels such as "illustrative").
        site: The site.
        time_grid: The time grid every series and result lives on.
        sessions: Charging sessions.
        series: Exogenous series.
        unmet_energy_penalty_eur_per_kwh: Price of each kWh wanted but not delivered by departure [EUR/kWh].
        objective: The use case policies and the optimum are judged on (``cost`` by default).
    """

    schema_version: Literal[1] = 1
    name: str = Field(min_length=1)
    description: str = ""
    site: SiteSpec
    time_grid: TimeGridSpec
    sessions: list[SessionSpec] = Field(default_factory=list)
    series: SeriesSet = SeriesSet()
    unmet_energy_penalty_eur_per_kwh: float = Field(default=2.0, ge=0)
    objective: ObjectiveSpec = ObjectiveSpec()
