"""The tiny hand-checkable scenario shared by the core and policy tests.

Two chargers, four steps of one hour, base load 5 kW, import limit 29 kW (headroom 24 kW).

* Charger "DC1": DC 20 kW. Session S1: 60 kWh battery at 50 % (30 kWh), wants 30 kWh, stays the
  whole day (steps 0..2, departs at 03:00), EV DC limit 50 kW, no taper.
* Charger "AC1": AC three-phase 16 A at 230 V = 11.04 kW. Session S2: 40 kWh at 50 % (20 kWh),
  wants 10 kWh, EV AC limit 10 kW, leaves at 01:00 (step 0 only).

Prices 0.30, 0.10, 0.20, 0.40 EUR/kWh; demand charge 1 EUR/kW; penalty 2 EUR/kWh; efficiencies 1.
"""

from __future__ import annotations

from typing import Any

from smac_rl.core.scenario_io import parse_scenario
from smac_rl.core.specs import ScenarioSpec


def tiny_data() -> dict[str, Any]:
    return {
        "name": "tiny",
        "site": {
            "site_id": "tiny-site",
            "timezone": "Europe/Amsterdam",
            "chargers": [
                {"station_id": "DC1", "kind": "dc", "max_power_kw": 20.0, "connectors": [{"evse_id": 1}]},
                {
                    "station_id": "AC1",
                    "kind": "ac",
                    "n_phases": 3,
                    "max_current_a": 16.0,
                    "connectors": [{"evse_id": 1}],
                },
            ],
            "grid": {"import_limit_kw": 29.0},
            "tariff": {"demand_charge_eur_per_kw": 1.0},
        },
        "time_grid": {"start_utc": "2024-05-01T00:00:00Z", "step_min": 60, "n_steps": 4},
        "sessions": [
            {
                "session_id": "S1",
                "station_id": "DC1",
                "evse_id": 1,
                "arrival_utc": "2024-05-01T00:00:00Z",
                "departure_utc": "2024-05-01T03:00:00Z",
                "battery_capacity_kwh": 60.0,
                "arrival_soc_frac": 0.5,
                "energy_wanted_kwh": 30.0,
                "ev_max_dc_kw": 50.0,
                "taper_start_soc_frac": 1.0,
            },
            {
                "session_id": "S2",
                "station_id": "AC1",
                "evse_id": 1,
                "arrival_utc": "2024-05-01T00:00:00Z",
                "departure_utc": "2024-05-01T01:00:00Z",
                "battery_capacity_kwh": 40.0,
                "arrival_soc_frac": 0.5,
                "energy_wanted_kwh": 10.0,
                "ev_max_ac_kw": 10.0,
            },
        ],
        "series": {"import_price_eur_per_kwh": [0.30, 0.10, 0.20, 0.40], "base_load_kw": 5.0},
        "unmet_energy_penalty_eur_per_kwh": 2.0,
    }


def tiny_scenario() -> ScenarioSpec:
    return parse_scenario(tiny_data())
