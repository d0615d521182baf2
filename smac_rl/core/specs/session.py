"""Charging session spec: what INCAR forwards from the driver and the charge point."""

from __future__ import annotations

from pydantic import AwareDatetime, Field

from smac_rl.core.specs.base import StrictModel


class SessionSpec(StrictModel):
    """One EV charging session at one connector.

    Energies are battery-side: ``energy_wanted_kwh`` is what the battery should gain (capped at a
    full battery). With the default efficiencies of 1.0, battery-side equals the connector meter.

    Attributes:
        session_id: Unique id of the session in the scenario.
        station_id: OCPP charging station the EV is plugged into (a charger's ``station_id``).
        evse_id: OCPP EVSE id at that station.
        connector_id: OCPP connector id at that EVSE.
        transaction_id: OCPP transaction id (TxProfile needs it); None when not known yet.
        arrival_utc: Plug-in time, timezone-aware.
        departure_utc: Expected departure, timezone-aware, after arrival.
        battery_capacity_kwh: Usable battery capacity [kWh].
        arrival_soc_frac: State of charge at arrival, or at the time grid's start if later [0..1].
        energy_wanted_kwh: Energy the driver wants added [kWh]; give this or ``target_soc_frac``.
        target_soc_frac: State of charge wanted at departure [0..1]; give this or ``energy_wanted_kwh``.
        ev_max_ac_kw: The EV's on-board charger limit [kW].
        ev_max_dc_kw: The EV's DC charging limit [kW].
        ev_max_discharge_kw: The EV's discharging limit on this connector's kind [kW]; None: equal to
            its charging limit there.
        allow_v2g: The driver allows discharging (effective only on a bidirectional charger).
        v2g_min_soc_frac: V2G never discharges the battery below this state of charge [0..1].
        charge_efficiency_frac: Battery energy gained per energy at the connector [0..1].
        discharge_efficiency_frac: Connector energy delivered per battery energy taken [0..1].
        taper_start_soc_frac: SoC where accepted power starts falling linearly to zero at full
            (CC-CV) [0..1]; 1.0 disables the taper; None: the charging class default.
    """

    session_id: str = Field(min_length=1)
    station_id: str = Field(min_length=1)
    evse_id: int = Field(ge=1)
    connector_id: int = Field(default=1, ge=1)
    transaction_id: str | None = Field(default=None, min_length=1)
    arrival_utc: AwareDatetime
    departure_utc: AwareDatetime
    battery_capacity_kwh: float = Field(gt=0, le=1000)
    arrival_soc_frac: float = Field(ge=0, le=1)
    energy_wanted_kwh: float | None = Field(default=None, ge=0)
    target_soc_frac: float | None = Field(default=None, ge=0, le=1)
    ev_max_ac_kw: float = Field(default=11.0, gt=0)
    ev_max_dc_kw: float = Field(default=50.0, gt=0)
    ev_max_discharge_kw: float | None = Field(default=None, ge=0)
    allow_v2g: bool = False
    v2g_min_soc_frac: float = Field(default=0.2, ge=0, le=1)
    charge_efficiency_frac: float = Field(default=1.0, gt=0, le=1)
    discharge_efficiency_frac: float = Field(default=1.0, gt=0, le=1)
    taper_start_soc_frac: float | None = Field(default=None, gt=0, le=1)
