"""Site specs: chargers and connectors, storage, PV, grid connection, tariff.

Signs follow :data:`smac_rl.core.units.SIGN_CONVENTION`.
"""

from __future__ import annotations

import datetime as dt
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, field_validator

from smac_rl.core.specs.base import StrictModel

ChargerKind = Literal["ac", "dc"]
SitePhase = Literal["L1", "L2", "L3"]

DEFAULT_AC_VOLTAGE_V = 230.0
"""Phase-to-neutral voltage of European low-voltage AC [V]."""

ULTRAFAST_THRESHOLD_KW = 150.0
"""DC chargers rated above this are ultrafast, at or below it fast [kW]."""

DEFAULT_TAPER_START_SOC_FRAC: dict[str, float] = {"ac": 1.0, "dc_fast": 0.8, "dc_ultrafast": 0.6}
"""CC-CV taper defaults per charging class: accepted power falls linearly from the EV's maximum at
this SoC to zero at full. AC charging is limited by the on-board charger (no taper, 1.0); fast DC
tapers from 80 %; ultrafast DC, at higher C-rates, from 60 %. A session may override it."""


class ConnectorSpec(StrictModel):
    """One outlet of a charger, addressed as OCPP does (EVSE id, connector id).

    Attributes:
        evse_id: OCPP EVSE id within the station (1-based).
        connector_id: OCPP connector id within the EVSE (1-based).
        max_power_kw: Limit of this outlet (cable, socket) below the charger's [kW]; None: the charger's.
    """

    evse_id: int = Field(ge=1)
    connector_id: int = Field(default=1, ge=1)
    max_power_kw: float | None = Field(default=None, gt=0)


class ChargerSpec(StrictModel):
    """A charging station whose connectors share its power.

    Attributes:
        station_id: OCPP charging station id, unique on the site.
        kind: ``"ac"`` (slow/medium, 1 or 3 phases) or ``"dc"`` (fast up to 150 kW, ultrafast above).
        n_phases: AC phases used (1 or 3); ignored for DC.
        phase: The site phase a single-phase AC charger is wired to.
        max_current_a: AC: per-phase current limit shared by the connectors [A]; required for AC,
            not allowed for DC.
        voltage_v: AC phase-to-neutral voltage [V].
        max_power_kw: DC: rated power shared by the connectors [kW], required; AC: optional cap below
            ``n_phases * voltage_v * max_current_a``.
        is_bidirectional: The charger can discharge vehicles (V2G).
        connectors: The outlets, at least one.
    """

    station_id: str = Field(min_length=1)
    kind: ChargerKind
    n_phases: Literal[1, 3] = 3
    phase: SitePhase = "L1"
    max_current_a: float | None = Field(default=None, gt=0)
    voltage_v: float = Field(default=DEFAULT_AC_VOLTAGE_V, gt=0)
    max_power_kw: float | None = Field(default=None, gt=0)
    is_bidirectional: bool = False
    connectors: list[ConnectorSpec] = Field(min_length=1)

    def rated_power_kw(self) -> float:
        """Power the charger can deliver in total [kW] (validated specs only)."""
        if self.kind == "dc":
            return float(self.max_power_kw or 0.0)
        ac_kw = self.n_phases * self.voltage_v * float(self.max_current_a or 0.0) / 1000.0
        return min(ac_kw, self.max_power_kw) if self.max_power_kw is not None else ac_kw

    def charging_class(self) -> str:
        """``"ac"``, ``"dc_fast"`` or ``"dc_ultrafast"``, the key of the taper defaults."""
        if self.kind == "ac":
            return "ac"
        return "dc_ultrafast" if self.rated_power_kw() > ULTRAFAST_THRESHOLD_KW else "dc_fast"


class StorageSpec(StrictModel):
    """Stationary battery storage on the site bus.

    Attributes:
        capacity_kwh: Usable energy capacity [kWh].
        max_charge_kw: Charging power limit at the bus [kW].
        max_discharge_kw: Discharging power limit at the bus [kW].
        initial_soc_frac: State of charge at the start of the time grid [0..1].
        min_soc_frac: Lowest state of charge allowed [0..1].
        max_soc_frac: Highest state of charge allowed [0..1].
        charge_efficiency_frac: Energy stored per energy drawn from the bus [0..1].
        discharge_efficiency_frac: Energy delivered to the bus per energy taken from the cells [0..1].
        self_discharge_per_h_frac: Share of the stored energy lost per hour [0..1].
        degradation_cost_eur_per_kwh: Cost per kWh of throughput at the bus, charge plus discharge [EUR/kWh].
    """

    capacity_kwh: float = Field(gt=0)
    max_charge_kw: float = Field(gt=0)
    max_discharge_kw: float = Field(gt=0)
    initial_soc_frac: float = Field(default=0.5, ge=0, le=1)
    min_soc_frac: float = Field(default=0.0, ge=0, le=1)
    max_soc_frac: float = Field(default=1.0, ge=0, le=1)
    charge_efficiency_frac: float = Field(default=0.95, gt=0, le=1)
    discharge_efficiency_frac: float = Field(default=0.95, gt=0, le=1)
    self_discharge_per_h_frac: float = Field(default=0.0, ge=0, lt=1)
    degradation_cost_eur_per_kwh: float = Field(default=0.0, ge=0)


class PvSpec(StrictModel):
    """A PV array at the site's location; its available power is the ``pv_available_kw`` series.

    Attributes:
        peak_power_kwp: Installed peak power [kWp].
        tilt_deg: Panel tilt from horizontal [deg].
        azimuth_deg: Panel azimuth, clockwise from north (180 = south) [deg].
    """

    peak_power_kwp: float = Field(gt=0)
    tilt_deg: float = Field(default=30.0, ge=0, le=90)
    azimuth_deg: float = Field(default=180.0, ge=0, lt=360)


class GridSpec(StrictModel):
    """The site's grid connection.

    Attributes:
        import_limit_kw: Static import limit at the connection point [kW]; a ``import_limit_kw``
            series (DSO capacity signal) lowers it step by step.
        export_limit_kw: Static export limit [kW]; None: equal to the import limit.
        charging_phase_current_limit_a: Per-phase current limit of the feeder supplying the AC
            chargers [A]; None: no phase limit beyond the chargers' own.
    """

    import_limit_kw: float = Field(gt=0)
    export_limit_kw: float | None = Field(default=None, ge=0)
    charging_phase_current_limit_a: float | None = Field(default=None, gt=0)

    def resolved_export_limit_kw(self) -> float:
        """The static export limit [kW], defaulting to the import limit."""
        return self.import_limit_kw if self.export_limit_kw is None else self.export_limit_kw


class TimeOfUsePeriod(StrictModel):
    """A time-of-use block: the price holds from ``start_local`` until the next block's start.

    Attributes:
        start_local: Local wall-clock time the block starts (site time zone).
        import_price_eur_per_kwh: Energy import price in the block [EUR/kWh].
    """

    start_local: dt.time
    import_price_eur_per_kwh: float

    @field_validator("start_local", mode="before")
    @classmethod
    def _pad_hour(cls, value: object) -> object:
        """Accept ``7:30`` for ``07:30``."""
        if isinstance(value, str) and len(value) >= 4 and value[1] == ":" and value[0].isdigit():
            return "0" + value
        return value


class TariffSpec(StrictModel):
    """Tariff terms beyond the per-step price series.

    Attributes:
        time_of_use: Time-of-use import price blocks (local time); give these or an
            ``import_price_eur_per_kwh`` series, exactly one of the two.
        demand_charge_eur_per_kw: Demand charge per kW of peak import over the billing period
            [EUR/kW]; for a one-day scenario state a rate pro-rated to the day.
        billing_peak_start_kw: Peak import already reached in the billing period before the
            scenario starts [kW]; only import above it adds demand charge.
    """

    time_of_use: list[TimeOfUsePeriod] | None = Field(default=None, min_length=1)
    demand_charge_eur_per_kw: float = Field(default=0.0, ge=0)
    billing_peak_start_kw: float = Field(default=0.0, ge=0)


class SiteSpec(StrictModel):
    """A charging site.

    Attributes:
        site_id: Operator's site id.
        name: Human-readable name.
        timezone: IANA time zone of the site (e.g. ``Europe/Berlin``), used for time-of-use blocks.
        latitude_deg: Latitude of the site [deg].
        longitude_deg: Longitude of the site [deg].
        chargers: Charging stations, at least one.
        storage: Stationary storage, if any.
        pv: PV array, if any.
        grid: Grid connection.
        tariff: Tariff terms.
        min_current_a: IEC 61851 minimum AC charging current [A] (6 A in the standard); None: off.
            When on, AC setpoints below it (on every phase of the connector; on one phase for an
            EV whose own limit is below that) are rounded to zero, except a final top-up.
        v2g_degradation_cost_eur_per_kwh: Cost per kWh discharged from vehicles [EUR/kWh].
    """

    site_id: str = Field(min_length=1)
    name: str = ""
    timezone: str = "UTC"
    latitude_deg: float = Field(default=52.0, ge=-90, le=90)
    longitude_deg: float = Field(default=5.0, ge=-180, le=180)
    chargers: list[ChargerSpec] = Field(min_length=1)
    storage: StorageSpec | None = None
    pv: PvSpec | None = None
    grid: GridSpec
    tariff: TariffSpec = TariffSpec()
    min_current_a: float | None = Field(default=None, gt=0)
    v2g_degradation_cost_eur_per_kwh: float = Field(default=0.0, ge=0)

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        # OSError: a folder of the zone database ("Europe") or a name too long for a file name.
        except (ZoneInfoNotFoundError, ValueError, OSError) as exc:
            raise ValueError(f"an IANA time zone name such as 'Europe/Berlin', not {value!r}") from exc
        return value
