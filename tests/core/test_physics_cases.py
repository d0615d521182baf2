"""Hand-checkable physics, projection and scoring cases.

Each test builds a tiny scenario (1-3 connectors, 1-4 steps, round numbers), runs it through
``replay`` (a given profile, projected) or ``run_policy``, and checks exact numbers. The hand
derivation is written above each assertion. Efficiencies are 1 and the taper is off (1.0) unless a
test says otherwise.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import numpy as np
import pytest

from smac_rl.core.arrays import ScenarioArrays, compile_scenario
from smac_rl.core.errors import ScenarioError
from smac_rl.core.scenario_io import parse_scenario
from smac_rl.core.scoring import Kpis, savings_capture_frac, score, summarize_savings_capture
from smac_rl.core.simulate import Trace, replay
from smac_rl.core.specs import ScenarioSpec
from smac_rl.core.timegrid import resolve_time_of_use, step_starts_utc
from smac_rl.policies import Uncontrolled, run_policy

START = dt.datetime(2024, 5, 1, tzinfo=dt.UTC)


def _approx(expected: Any) -> Any:
    if isinstance(expected, list):
        expected = np.asarray(expected, dtype=float)
    return pytest.approx(expected, rel=1e-9, abs=1e-9)


def _at(hours: float, start: dt.datetime = START) -> str:
    return (start + dt.timedelta(hours=hours)).isoformat()


def _dc(station_id: str, max_power_kw: float, n_connectors: int = 1, **extra: Any) -> dict[str, Any]:
    connectors = [{"evse_id": e} for e in range(1, n_connectors + 1)]
    return {
        "station_id": station_id,
        "kind": "dc",
        "max_power_kw": max_power_kw,
        "connectors": connectors,
        **extra,
    }


def _ac(
    station_id: str, max_current_a: float, n_phases: int = 3, phase: str = "L1", n_connectors: int = 1
) -> dict[str, Any]:
    connectors = [{"evse_id": e} for e in range(1, n_connectors + 1)]
    return {
        "station_id": station_id,
        "kind": "ac",
        "n_phases": n_phases,
        "phase": phase,
        "max_current_a": max_current_a,
        "connectors": connectors,
    }


def _session(
    session_id: str,
    station_id: str,
    *,
    evse_id: int = 1,
    arrive_h: float = 0.0,
    depart_h: float = 1.0,
    capacity_kwh: float = 100.0,
    soc: float = 0.5,
    **extra: Any,
) -> dict[str, Any]:
    data: dict[str, Any] = {
        "session_id": session_id,
        "station_id": station_id,
        "evse_id": evse_id,
        "arrival_utc": _at(arrive_h),
        "departure_utc": _at(depart_h),
        "battery_capacity_kwh": capacity_kwh,
        "arrival_soc_frac": soc,
        "taper_start_soc_frac": 1.0,
    }
    data.update(extra)
    if "energy_wanted_kwh" not in data and "target_soc_frac" not in data:
        data["energy_wanted_kwh"] = 50.0
    return data


def _scenario(
    chargers: list[dict[str, Any]],
    sessions: list[dict[str, Any]] | None = None,
    *,
    n_steps: int = 1,
    step_min: int = 60,
    grid: dict[str, Any] | None = None,
    series: dict[str, Any] | None = None,
    site: dict[str, Any] | None = None,
    start_utc: str = "2024-05-01T00:00:00Z",
    penalty: float = 2.0,
) -> ScenarioArrays:
    data = {
        "name": "case",
        "site": {
            "site_id": "case-site",
            "chargers": chargers,
            "grid": grid or {"import_limit_kw": 1000.0},
            **(site or {}),
        },
        "time_grid": {"start_utc": start_utc, "step_min": step_min, "n_steps": n_steps},
        "sessions": sessions or [],
        "series": {"import_price_eur_per_kwh": 0.20, **(series or {})},
        "unmet_energy_penalty_eur_per_kwh": penalty,
    }
    return compile_scenario(parse_scenario(data))


def _replay(
    arrays: ScenarioArrays, ev_power_kw: list[list[float]], storage_kw: list[float] | None = None
) -> Trace:
    storage = None if storage_kw is None else np.asarray(storage_kw, dtype=float)
    return replay(arrays, np.asarray(ev_power_kw, dtype=float), storage)


def _uncontrolled(arrays: ScenarioArrays) -> tuple[Trace, Kpis]:
    return run_policy(arrays, Uncontrolled())


# 1. Charge efficiency ---------------------------------------------------------------------------


def test_charge_efficiency_battery_side_and_connector_side() -> None:
    arrays = _scenario(
        [_dc("DC1", 50.0), _dc("DC2", 50.0)],
        [
            # 100 kWh at 50 % = 50 kWh, wants 30 -> target 80 kWh.
            _session("S1", "DC1", energy_wanted_kwh=30.0, ev_max_dc_kw=50.0, charge_efficiency_frac=0.9),
            # wants 9 kWh battery-side: at eta 0.9 that is 10 kWh at the connector.
            _session("S2", "DC2", energy_wanted_kwh=9.0, ev_max_dc_kw=50.0, charge_efficiency_frac=0.9),
        ],
    )
    trace = _replay(arrays, [[10.0, 20.0]])
    kpis = score(arrays, trace)
    # S1: 10 kW is within every bound. S2: headroom = 9 kWh / (0.9 * 1 h) = 10 kW, so 20 -> 10.
    assert trace.ev_power_kw == _approx([[10.0, 10.0]])
    # Battery gains eta * p * dt = 0.9 * 10 * 1 = 9 kWh each: S1 50 -> 59, S2 50 -> 59.
    assert trace.session_energy_kwh[1] == _approx([59.0, 59.0])
    # Delivered counts the connector side: 10 + 10 = 20 kWh (not 18).
    assert kpis.energy_delivered_kwh == _approx(20.0)
    # Unmet is battery-side: S1 80 - 59 = 21; S2 59 - 59 = 0.
    assert kpis.unmet_energy_kwh == _approx(21.0)
    # One of two sessions fully served.
    assert kpis.sessions_fully_served_frac == _approx(0.5)
    # The grid sees the connector power: 20 kW for 1 h at 0.20 EUR/kWh = 4 EUR.
    assert kpis.energy_cost_eur == _approx(4.0)


# 2. V2G ---------------------------------------------------------------------------------------------


def test_v2g_discharge_stops_at_min_soc_and_earns_export_revenue() -> None:
    arrays = _scenario(
        [_dc("V2G", 50.0, is_bidirectional=True)],
        [
            # 50 kWh at 50 % = 25 kWh; target 0.4 * 50 = 20 kWh; V2G floor 0.4 * 50 = 20 kWh.
            _session(
                "S1",
                "V2G",
                capacity_kwh=50.0,
                soc=0.5,
                target_soc_frac=0.4,
                ev_max_dc_kw=50.0,
                allow_v2g=True,
                v2g_min_soc_frac=0.4,
            )
        ],
        grid={"import_limit_kw": 100.0},
        series={"import_price_eur_per_kwh": 0.30, "export_price_eur_per_kwh": 0.10},
        site={"v2g_degradation_cost_eur_per_kwh": 0.02},
    )
    trace = _replay(arrays, [[-50.0]])
    kpis = score(arrays, trace)
    # Only 25 - 20 = 5 kWh lie above the floor; eta_d = 1, 1 h step -> at most 5 kW out.
    assert trace.ev_power_kw == _approx([[-5.0]])
    # Battery 25 - 5 / 1 = 20 kWh, exactly the floor.
    assert trace.session_energy_kwh[1] == _approx([20.0])
    # v2g_discharged_kwh = 5 kW * 1 h.
    assert kpis.v2g_discharged_kwh == _approx(5.0)
    # No base load: the 5 kW are exported.
    assert trace.grid_export_kw == _approx([5.0])
    assert trace.grid_import_kw == _approx([0.0])
    # energy cost = 1 h * (0 * 0.30 - 5 * 0.10) = -0.5 EUR (export revenue).
    assert kpis.energy_cost_eur == _approx(-0.5)
    # degradation = 0.02 EUR/kWh * 5 kWh = 0.1 EUR; total = -0.5 + 0.1 = -0.4 EUR.
    assert kpis.degradation_cost_eur == _approx(0.1)
    assert kpis.total_cost_eur == _approx(-0.4)
    # The target (20 kWh) is met.
    assert kpis.unmet_energy_kwh == _approx(0.0)


def test_v2g_discharge_bounded_by_the_evs_own_discharge_limit() -> None:
    # Bidirectional 50 kW DC; the EV charges at up to 50 kW but discharges at most 10 kW:
    # a -50 kW request becomes -10 kW (plenty of energy above the 20 % floor of 100 kWh at 50 %, and
    # two more hours at 50 kW after this step keep the departure target of 50 kWh reachable).
    arrays = _scenario(
        [_dc("DC1", 50.0, is_bidirectional=True)],
        [
            _session(
                "S1",
                "DC1",
                soc=0.5,
                depart_h=3.0,
                allow_v2g=True,
                ev_max_discharge_kw=10.0,
                energy_wanted_kwh=0.0,
            )
        ],
        n_steps=1,
    )
    assert arrays.sessions.max_discharge_kw == _approx([10.0])
    trace = _replay(arrays, [[-50.0]])
    assert trace.ev_power_kw == _approx([[-10.0]])


def test_v2g_reachability_floor_keeps_departure_target_reachable() -> None:
    arrays = _scenario(
        [_dc("V2G", 50.0, is_bidirectional=True)],
        [
            # 50 kWh at 50 % = 25 kWh; target 0.8 * 50 = 40 kWh; V2G floor 0.2 * 50 = 10 kWh;
            # max 10 kW, charge efficiency 0.8, departs after 3 one-hour steps.
            _session(
                "S1",
                "V2G",
                capacity_kwh=50.0,
                soc=0.5,
                depart_h=3.0,
                target_soc_frac=0.8,
                ev_max_dc_kw=10.0,
                allow_v2g=True,
                v2g_min_soc_frac=0.2,
                charge_efficiency_frac=0.8,
            )
        ],
        n_steps=3,
    )
    trace = _replay(arrays, [[-10.0], [10.0], [10.0]])
    # Step 0: two steps left after this one -> reachability floor = 40 - 10 * 0.8 * 1 * 2 = 24 kWh,
    # above the V2G floor of 10 kWh; spare = 25 - 24 = 1 kWh -> -10 is projected to -1 kW.
    # Steps 1, 2: charge 10 kW (upper bounds min(10, 16 / 0.8) and min(10, 8 / 0.8) = 10).
    assert trace.ev_power_kw[:, 0] == _approx([-1.0, 10.0, 10.0])
    # Energy: 25 - 1 = 24, 24 + 0.8 * 10 = 32, 32 + 8 = 40 = target.
    assert trace.session_energy_kwh[:, 0] == _approx([25.0, 24.0, 32.0, 40.0])
    assert score(arrays, trace).unmet_energy_kwh == _approx(0.0)

    trace = _replay(arrays, [[-10.0], [-10.0], [10.0]])
    # Step 1 from 24 kWh: floor = 40 - 8 * 1 = 32 > 24 -> no discharge at all (0 kW).
    assert trace.ev_power_kw[:, 0] == _approx([-1.0, 0.0, 10.0])


def test_v2g_discharge_efficiency_battery_loses_more_than_the_connector_delivers() -> None:
    v2g: dict[str, Any] = {
        "ev_max_dc_kw": 50.0,
        "allow_v2g": True,
        "v2g_min_soc_frac": 0.2,
        "discharge_efficiency_frac": 0.9,
    }
    arrays = _scenario(
        [_dc("V2G1", 50.0, is_bidirectional=True), _dc("V2G2", 50.0, is_bidirectional=True)],
        [
            # 50 kWh at 80 % = 40 kWh; target and V2G floor 0.2 * 50 = 10 kWh; eta_d = 0.9.
            _session("S1", "V2G1", capacity_kwh=50.0, soc=0.8, target_soc_frac=0.2, **v2g),
            # 50 kWh at 30 % = 15 kWh: only 15 - 10 = 5 kWh of battery energy above the floor.
            _session("S2", "V2G2", capacity_kwh=50.0, soc=0.3, target_soc_frac=0.2, **v2g),
        ],
        series={"export_price_eur_per_kwh": 0.10},
        site={"v2g_degradation_cost_eur_per_kwh": 0.02},
    )
    trace = _replay(arrays, [[-9.0, -20.0]])
    kpis = score(arrays, trace)
    # Departure after this step: reachability floor = target 10 kWh = the V2G floor.
    # S1: lower bound -min(50, (40 - 10) * 0.9 / 1 h) = -27 kW, so -9 stays.
    # S2: lower bound -min(50, (15 - 10) * 0.9 / 1 h) = -4.5 kW, so -20 becomes -4.5.
    assert trace.ev_power_kw == _approx([[-9.0, -4.5]])
    # The battery loses p * dt / eta_d: S1 40 - 9 / 0.9 = 30 kWh; S2 15 - 4.5 / 0.9 = 10 kWh, the floor.
    assert trace.session_energy_kwh[1] == _approx([30.0, 10.0])
    # v2g_discharged_kwh counts the connector side: 9 + 4.5 = 13.5 kWh (the batteries gave 10 + 5 = 15).
    assert kpis.v2g_discharged_kwh == _approx(13.5)
    # No load: the 13.5 kW are exported; energy cost -13.5 * 0.10 = -1.35 EUR.
    assert trace.grid_export_kw == _approx([13.5])
    assert kpis.energy_cost_eur == _approx(-1.35)
    # Degradation 0.02 EUR/kWh * 13.5 kWh = 0.27 EUR; both end at or above their 10 kWh target.
    assert kpis.degradation_cost_eur == _approx(0.27)
    assert kpis.unmet_energy_kwh == _approx(0.0)
    # Total -1.35 + 0.27 = -1.08 EUR.
    assert kpis.total_cost_eur == _approx(-1.08)


# 3. V2G refused ----------------------------------------------------------------------------------


def test_v2g_refused_without_bidirectional_charger_or_permission() -> None:
    arrays = _scenario(
        [_dc("UNI", 50.0, is_bidirectional=False), _dc("BI", 50.0, is_bidirectional=True)],
        [
            # Driver allows V2G, charger cannot.
            _session(
                "S1", "UNI", target_soc_frac=0.2, allow_v2g=True, v2g_min_soc_frac=0.2, ev_max_dc_kw=50.0
            ),
            # Charger can, driver does not allow.
            _session(
                "S2", "BI", target_soc_frac=0.2, allow_v2g=False, v2g_min_soc_frac=0.2, ev_max_dc_kw=50.0
            ),
        ],
    )
    # Discharge limits are 0 for both sessions.
    assert arrays.sessions.max_discharge_kw == _approx([0.0, 0.0])
    trace = _replay(arrays, [[-20.0, -20.0]])
    # Lower bound 0 -> both requests projected to 0; energy stays at 50 kWh.
    assert trace.ev_power_kw == _approx([[0.0, 0.0]])
    assert trace.session_energy_kwh[1] == _approx([50.0, 50.0])
    assert score(arrays, trace).v2g_discharged_kwh == _approx(0.0)


# 4. DC taper ----------------------------------------------------------------------------------


def test_dc_taper_halves_power_at_90_percent() -> None:
    # 6-minute steps (dt = 0.1 h) so that the energy still wanted does not bind.
    arrays = _scenario(
        [_dc("DC150", 150.0)],
        [
            # 100 kWh at 90 % = 90 kWh, wants 10 -> target 100; EV DC max 100 kW; taper from 80 %.
            _session(
                "S1",
                "DC150",
                soc=0.9,
                depart_h=0.1,
                energy_wanted_kwh=10.0,
                ev_max_dc_kw=100.0,
                taper_start_soc_frac=0.8,
            )
        ],
        step_min=6,
    )
    trace, _ = _uncontrolled(arrays)
    # Taper: 100 * (1 - 0.9) / (1 - 0.8) = 50 kW; headroom 10 kWh / 0.1 h = 100 kW does not bind.
    assert trace.ev_power_kw == _approx([[50.0]])
    # Energy 90 + 50 * 0.1 = 95 kWh.
    assert trace.session_energy_kwh[1] == _approx([95.0])


def test_dc_taper_defaults_per_charging_class() -> None:
    chargers = [_dc("FAST", 150.0), _dc("ULTRA", 300.0), _ac("AC", 32.0)]
    sessions = [
        _session(
            sid, station, soc=0.9, depart_h=0.1, energy_wanted_kwh=10.0, ev_max_dc_kw=100.0, ev_max_ac_kw=11.0
        )
        for sid, station in (("S1", "FAST"), ("S2", "ULTRA"), ("S3", "AC"))
    ]
    for session in sessions:
        del session["taper_start_soc_frac"]
    arrays = _scenario(chargers, sessions, step_min=6)
    # Defaults: 150 kW is fast DC (0.8), 300 kW is ultrafast (0.6), AC has no taper (1.0).
    assert arrays.sessions.taper_start_soc_frac == _approx([0.8, 0.6, 1.0])
    trace, _ = _uncontrolled(arrays)
    # FAST: 100 * 0.1 / 0.2 = 50 kW; ULTRA: 100 * 0.1 / 0.4 = 25 kW; AC: min(11, 22.08) = 11 kW.
    assert trace.ev_power_kw == _approx([[50.0, 25.0, 11.0]])


def test_dc_taper_starts_from_the_ev_maximum_not_the_charger_cap() -> None:
    # site.py DEFAULT_TAPER_START_SOC_FRAC: "accepted power falls linearly from the EV's maximum at
    # this SoC to zero at full". An EV rated 200 kW DC at 90 % with the taper from 80 % accepts
    # 200 * 0.1 / 0.2 = 100 kW, which a 150 kW charger can give in full.
    arrays = _scenario(
        [_dc("DC150", 150.0)],
        [
            _session(
                "S1",
                "DC150",
                soc=0.9,
                depart_h=0.1,
                energy_wanted_kwh=10.0,
                ev_max_dc_kw=200.0,
                taper_start_soc_frac=0.8,
            )
        ],
        step_min=6,
    )
    trace, _ = _uncontrolled(arrays)
    # Expected min(150, 200 * 0.5, 10 / 0.1) = 100 kW.
    assert trace.ev_power_kw == _approx([[100.0]])


# 5. Charger sharing --------------------------------------------------------------------------------


def test_charger_sharing_scales_connectors_by_one_factor() -> None:
    # AC 3-phase 32 A at 230 V = 3 * 230 * 32 / 1000 = 22.08 kW shared by two connectors.
    arrays = _scenario(
        [_ac("AC22", 32.0, n_connectors=2)],
        [
            _session("S1", "AC22", evse_id=1, soc=0.2, energy_wanted_kwh=50.0, ev_max_ac_kw=22.0),
            _session("S2", "AC22", evse_id=2, soc=0.2, energy_wanted_kwh=50.0, ev_max_ac_kw=22.0),
        ],
    )
    assert arrays.site.charger_max_kw == _approx([22.08])
    trace, kpis = _uncontrolled(arrays)
    # Uncontrolled asks min(EV 22, connector 22.08) = 22 kW each.
    assert trace.requested_ev_power_kw == _approx([[22.0, 22.0]])
    # 44 > 22.08 -> both scaled by 22.08 / 44 -> 11.04 kW each.
    assert trace.ev_power_kw == _approx([[11.04, 11.04]])
    # Delivered 2 * 11.04 = 22.08 kWh.
    assert kpis.energy_delivered_kwh == _approx(22.08)


def test_evse_with_two_connectors_one_session_at_a_time_sharing_the_charger() -> None:
    # DC 50 kW station: EVSE 1 has connector 1 and connector 2 (a 20 kW outlet), EVSE 2 has connector 1.
    # Connector order (evse, connector): (1, 1), (1, 2), (2, 1); all three share the 50 kW rating.
    charger = {
        **_dc("DC50", 50.0),
        "connectors": [
            {"evse_id": 1, "connector_id": 1},
            {"evse_id": 1, "connector_id": 2, "max_power_kw": 20.0},
            {"evse_id": 2, "connector_id": 1},
        ],
    }
    # 100 kWh at 20 % = 20 kWh each; EV DC limit 40 kW.
    s1 = _session("S1", "DC50", evse_id=1, connector_id=1, soc=0.2, ev_max_dc_kw=40.0)
    s3 = _session("S3", "DC50", evse_id=2, soc=0.2, depart_h=2.0, energy_wanted_kwh=80.0, ev_max_dc_kw=40.0)
    # The format allows one session at a time per EVSE: connector 2 of EVSE 1 while S1 is on connector 1
    # is refused.
    overlapping = _session("S2", "DC50", evse_id=1, connector_id=2, arrive_h=0.0, depart_h=2.0)
    with pytest.raises(ScenarioError, match="no overlap on station 'DC50' EVSE 1"):
        _scenario([charger], [s1, overlapping, s3], n_steps=2)
    # Allowed: S2 on connector 2 from 01:00, when S1 (connector 1, 00:00 to 01:00) has left.
    s2 = _session(
        "S2", "DC50", evse_id=1, connector_id=2, arrive_h=1.0, depart_h=2.0, soc=0.2, ev_max_dc_kw=40.0
    )
    arrays = _scenario([charger], [s1, s2, s3], n_steps=2)
    assert arrays.site.connector_max_kw == _approx([50.0, 20.0, 50.0])
    assert arrays.site.connector_charger_index.tolist() == [0, 0, 0]
    assert arrays.connector_session_index.tolist() == [[0, -1, 2], [-1, 1, 2]]
    trace, kpis = _uncontrolled(arrays)
    # Step 0: S1 asks min(EV 40, outlet 50, 50 kWh wanted / 1 h) = 40; S3 min(40, 80) = 40.
    # Step 1: S2 asks min(40, outlet 20) = 20; S3 min(40, (100 - 45) / 1 h = 55) = 40.
    assert trace.requested_ev_power_kw == _approx([[40.0, 0.0, 40.0], [0.0, 20.0, 40.0]])
    # Step 0: 80 > 50 -> factor 50 / 80 = 0.625 -> 25 each. Step 1: 60 > 50 -> factor 5 / 6 ->
    # S2 20 * 5 / 6 = 16.667, S3 40 * 5 / 6 = 33.333: the charger always delivers exactly 50 kW.
    assert trace.ev_power_kw == _approx([[25.0, 0.0, 25.0], [0.0, 50.0 / 3.0, 100.0 / 3.0]])
    # Energies: S1 20 -> 45; S2 20 -> 20 -> 36.667; S3 20 -> 45 -> 78.333.
    assert trace.session_energy_kwh == _approx(
        [[20.0, 20.0, 20.0], [45.0, 20.0, 45.0], [45.0, 20.0 + 50.0 / 3.0, 45.0 + 100.0 / 3.0]]
    )
    # Delivered 50 + 50 = 100 kWh of the 50 + 50 + 80 = 180 wanted: unmet 80 kWh, nobody fully served.
    assert kpis.energy_delivered_kwh == _approx(100.0)
    assert kpis.unmet_energy_kwh == _approx(80.0)
    assert kpis.sessions_fully_served_frac == _approx(0.0)


# 6. Feeder phase limit ---------------------------------------------------------------------------


def test_feeder_phase_limit_scales_single_phase_chargers_on_that_phase() -> None:
    # Single-phase 32 A at 230 V = 7.36 kW each; A and B on L1, C on L2; feeder 40 A per phase.
    arrays = _scenario(
        [
            _ac("A", 32.0, n_phases=1, phase="L1"),
            _ac("B", 32.0, n_phases=1, phase="L1"),
            _ac("C", 32.0, n_phases=1, phase="L2"),
        ],
        [
            _session(sid, station, soc=0.2, ev_max_ac_kw=11.0)
            for sid, station in (("S1", "A"), ("S2", "B"), ("S3", "C"))
        ],
        grid={"import_limit_kw": 100.0, "charging_phase_current_limit_a": 40.0},
    )
    trace, _ = _uncontrolled(arrays)
    # Each asks min(EV 11, charger 7.36) = 7.36 kW.
    assert trace.requested_ev_power_kw == _approx([[7.36, 7.36, 7.36]])
    # L1: 2 * 32 A = 64 A > 40 A -> A and B scaled by 40 / 64 = 0.625 -> 4.6 kW each.
    # L2: 32 A <= 40 A -> C unaffected, 7.36 kW.
    assert trace.ev_power_kw == _approx([[4.6, 4.6, 7.36]])


def test_feeder_phase_limit_scales_three_phase_charger_by_its_worst_phase() -> None:
    # T: 3-phase 16 A = 11.04 kW, 16 A on each phase. S: 1-phase 32 A on L1 = 7.36 kW. Feeder 40 A.
    arrays = _scenario(
        [_ac("T", 16.0, n_phases=3), _ac("S", 32.0, n_phases=1, phase="L1")],
        [_session("S1", "T", soc=0.2, ev_max_ac_kw=22.0), _session("S2", "S", soc=0.2, ev_max_ac_kw=22.0)],
        grid={"import_limit_kw": 100.0, "charging_phase_current_limit_a": 40.0},
    )
    trace, _ = _uncontrolled(arrays)
    # L1: 16 + 32 = 48 A -> factor 40 / 48 = 5/6; L2, L3: 16 A -> 1. T takes its smallest factor 5/6.
    # T: 11.04 * 5/6 = 9.2 kW; S: 7.36 * 5/6 = 6.1333... kW; L1 then carries 13.333 + 26.667 = 40 A.
    assert trace.ev_power_kw == _approx([[9.2, 7.36 * 5.0 / 6.0]])


# 7. Minimum current -----------------------------------------------------------------------------------


def test_minimum_current_rounds_small_ac_setpoints_to_zero() -> None:
    # min_current_a 6 on 3-phase AC: 3 * 230 * 6 / 1000 = 4.14 kW; DC connectors have no minimum.
    arrays = _scenario(
        [_ac("AC1", 16.0), _ac("AC2", 16.0), _dc("DC1", 50.0)],
        [
            _session("S1", "AC1", soc=0.2, depart_h=2.0),
            _session("S2", "AC2", soc=0.2, depart_h=2.0),
            _session("S3", "DC1", soc=0.2, depart_h=2.0),
        ],
        n_steps=2,
        site={"min_current_a": 6.0},
    )
    assert arrays.site.connector_min_charge_kw == _approx([4.14, 4.14, 0.0])
    trace = _replay(arrays, [[3.0, 5.0, 3.0], [4.14, 4.1, 1.0]])
    # Step 0: AC 3 < 4.14 -> 0; AC 5 stays; DC 3 stays.
    # Step 1: AC 4.14 (at the minimum) stays; AC 4.1 < 4.14 -> 0; DC 1 stays.
    assert trace.ev_power_kw == _approx([[0.0, 5.0, 3.0], [4.14, 0.0, 1.0]])


def test_minimum_current_of_an_ev_below_the_connectors_minimum_is_one_phase() -> None:
    # 3-phase 16 A connectors, min 3 * 230 * 6 / 1000 = 4.14 kW. S1's on-board charger (3.6 kW)
    # cannot draw 6 A on three phases: it charges on one, min 230 * 6 / 1000 = 1.38 kW. S2 (11 kW)
    # keeps the connector's 4.14 kW. On a 1-phase 16 A connector (min 1.38 kW) a 1.2 kW EV (S3)
    # has its own limit as minimum: it charges at 1.2 kW or not at all.
    arrays = _scenario(
        [_ac("AC1", 16.0), _ac("AC2", 16.0), _ac("AC3", 16.0, n_phases=1, phase="L1")],
        [
            _session("S1", "AC1", soc=0.2, depart_h=2.0, ev_max_ac_kw=3.6),
            _session("S2", "AC2", soc=0.2, depart_h=2.0, ev_max_ac_kw=11.0),
            _session("S3", "AC3", soc=0.2, depart_h=2.0, ev_max_ac_kw=1.2),
        ],
        n_steps=2,
        site={"min_current_a": 6.0},
    )
    assert arrays.site.connector_min_charge_kw == _approx([4.14, 4.14, 1.38])
    assert arrays.sessions.min_charge_kw == _approx([1.38, 4.14, 1.2])
    trace = _replay(arrays, [[2.0, 2.0, 1.0], [1.3, 4.2, 1.2]])
    # Step 0: S1 2 >= 1.38 stays; S2 2 < 4.14 -> 0; S3 1 < 1.2 -> 0.
    # Step 1: S1 1.3 < 1.38 -> 0; S2 4.2 stays; S3 1.2 stays.
    assert trace.ev_power_kw == _approx([[2.0, 0.0, 0.0], [0.0, 4.2, 1.2]])


def test_minimum_current_allows_the_final_top_up() -> None:
    # min 4.14 kW. S1 wants 12 kWh over two 1-h steps: 20 kW asked -> min(charger 11.04, EV default
    # 11, 12) = 11 kW, then the last 12 - 11 = 1 kWh needs 1 kW < 4.14 kW: a final top-up, kept (the
    # EV draws at least 6 A and stops by itself). S2 asks 2 kW while it wants 10 kWh: not a top-up -> 0.
    arrays = _scenario(
        [_ac("AC1", 16.0), _ac("AC2", 16.0)],
        [
            _session("S1", "AC1", soc=0.2, depart_h=2.0, energy_wanted_kwh=12.0),
            _session("S2", "AC2", soc=0.2, depart_h=2.0, energy_wanted_kwh=10.0),
        ],
        n_steps=2,
        site={"min_current_a": 6.0},
    )
    trace = _replay(arrays, [[20.0, 2.0], [20.0, 2.0]])
    assert trace.ev_power_kw == _approx([[11.0, 0.0], [1.0, 0.0]])
    _, kpis = _uncontrolled(arrays)
    # Uncontrolled: S1 as above, S2 10 kWh at min(11.04, 10) = 10 kW in step 0: both fully served.
    assert kpis.unmet_energy_kwh == _approx(0.0)


# 8. Storage -------------------------------------------------------------------------------------------

STORAGE = {
    "capacity_kwh": 100.0,
    "max_charge_kw": 20.0,
    "max_discharge_kw": 20.0,
    "initial_soc_frac": 0.5,
    "charge_efficiency_frac": 0.9,
    "discharge_efficiency_frac": 0.9,
    "self_discharge_per_h_frac": 0.01,
    "degradation_cost_eur_per_kwh": 0.05,
}


@pytest.mark.parametrize(
    ("setpoint_kw", "energy_after_kwh", "throughput_kwh", "degradation_eur"),
    [
        # Charge: 50 * (1 - 0.01 * 1) + 0.9 * 10 * 1 = 49.5 + 9 = 58.5; throughput 10; 0.05 * 10 = 0.5.
        (10.0, 58.5, 10.0, 0.5),
        # Discharge: 49.5 - 9 / 0.9 = 49.5 - 10 = 39.5; throughput 9; 0.05 * 9 = 0.45.
        (-9.0, 39.5, 9.0, 0.45),
    ],
)
def test_storage_one_step(
    setpoint_kw: float, energy_after_kwh: float, throughput_kwh: float, degradation_eur: float
) -> None:
    arrays = _scenario([_dc("DC1", 50.0)], site={"storage": STORAGE}, grid={"import_limit_kw": 100.0})
    trace = _replay(arrays, [[0.0]], [setpoint_kw])
    kpis = score(arrays, trace)
    # Bounds (+20 / -20 kW) do not bind.
    assert trace.storage_power_kw == _approx([setpoint_kw])
    assert trace.storage_energy_kwh == _approx([50.0, energy_after_kwh])
    assert kpis.storage_throughput_kwh == _approx(throughput_kwh)
    assert kpis.degradation_cost_eur == _approx(degradation_eur)


def test_storage_two_steps() -> None:
    arrays = _scenario(
        [_dc("DC1", 50.0)], n_steps=2, site={"storage": STORAGE}, grid={"import_limit_kw": 100.0}
    )
    trace = _replay(arrays, [[0.0], [0.0]], [10.0, -9.0])
    kpis = score(arrays, trace)
    # E1 = 50 * 0.99 + 9 = 58.5; E2 = 58.5 * 0.99 - 9 / 0.9 = 57.915 - 10 = 47.915.
    assert trace.storage_energy_kwh == _approx([50.0, 58.5, 47.915])
    # Throughput |10| + |-9| = 19 kWh; degradation 0.05 * 19 = 0.95 EUR.
    assert kpis.storage_throughput_kwh == _approx(19.0)
    assert kpis.degradation_cost_eur == _approx(0.95)
    # Grid: import 10 kW in step 0, export 9 kW in step 1 (no base load).
    assert trace.grid_import_kw == _approx([10.0, 0.0])
    assert trace.grid_export_kw == _approx([0.0, 9.0])
    # Cost: 10 * 0.20 - 9 * 0 = 2 EUR; total 2 + 0.95 = 2.95 EUR.
    assert kpis.total_cost_eur == _approx(2.95)


def test_storage_bounds_include_self_discharge_and_efficiency() -> None:
    # Nearly full: 100 kWh at 0.95 = 95; retained 95 * 0.99 = 94.05; room 5.95 kWh -> 5.95 / 0.9 kW.
    storage = {**STORAGE, "initial_soc_frac": 0.95, "max_charge_kw": 50.0}
    arrays = _scenario([_dc("DC1", 50.0)], site={"storage": storage}, grid={"import_limit_kw": 100.0})
    trace = _replay(arrays, [[0.0]], [50.0])
    assert trace.storage_power_kw == _approx([5.95 / 0.9])
    # Ends exactly full: 94.05 + 0.9 * 5.95 / 0.9 = 100.
    assert trace.storage_energy_kwh == _approx([95.0, 100.0])


def test_storage_power_limits_then_soc_window_stop_it() -> None:
    # Window 0.2 * 100 = 20 kWh to 0.8 * 100 = 80 kWh; starts at 50; eta 0.8 both ways; no self-discharge.
    storage = {
        "capacity_kwh": 100.0,
        "max_charge_kw": 20.0,
        "max_discharge_kw": 30.0,
        "initial_soc_frac": 0.5,
        "min_soc_frac": 0.2,
        "max_soc_frac": 0.8,
        "charge_efficiency_frac": 0.8,
        "discharge_efficiency_frac": 0.8,
        "self_discharge_per_h_frac": 0.0,
    }
    arrays = _scenario(
        [_dc("DC1", 50.0)], n_steps=6, site={"storage": storage}, grid={"import_limit_kw": 100.0}
    )
    trace = _replay(arrays, [[0.0]] * 6, [50.0, 50.0, 50.0, -100.0, -100.0, -100.0])
    kpis = score(arrays, trace)
    # Step 0: min(20, (80 - 50) / (0.8 * 1 h) = 37.5) = 20, the power limit; E 50 + 0.8 * 20 = 66.
    # Step 1: min(20, (80 - 66) / 0.8 = 17.5) = 17.5, max_soc_frac; E 66 + 0.8 * 17.5 = 80.
    # Step 2: min(20, (80 - 80) / 0.8) = 0: full, the storage stops; E 80.
    # Step 3: -min(30, (80 - 20) * 0.8 / 1 h = 48) = -30, the power limit; E 80 - 30 / 0.8 = 42.5.
    # Step 4: -min(30, (42.5 - 20) * 0.8 = 18) = -18, min_soc_frac; E 42.5 - 18 / 0.8 = 20.
    # Step 5: -min(30, (20 - 20) * 0.8) = 0: empty, the storage stops; E 20.
    assert trace.storage_power_kw == _approx([20.0, 17.5, 0.0, -30.0, -18.0, 0.0])
    assert trace.storage_energy_kwh == _approx([50.0, 66.0, 80.0, 80.0, 42.5, 20.0, 20.0])
    # No base load: the grid carries the storage power.
    assert trace.grid_import_kw == _approx([20.0, 17.5, 0.0, 0.0, 0.0, 0.0])
    assert trace.grid_export_kw == _approx([0.0, 0.0, 0.0, 30.0, 18.0, 0.0])
    # Throughput 20 + 17.5 + 30 + 18 = 85.5 kWh; the projection moved
    # 30 + 32.5 + 50 + 70 + 82 + 100 = 364.5 kWh.
    assert kpis.storage_throughput_kwh == _approx(85.5)
    assert kpis.projection_adjustment_kwh == _approx(364.5)
    # Import 37.5 kWh at 0.20 EUR/kWh = 7.5 EUR; export price 0.
    assert kpis.energy_cost_eur == _approx(7.5)


# 9. PV and curtailment --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("export_price", "pv_used_kw", "export_kw", "cost_eur", "self_consumption"),
    [
        # Positive price: 30 PV - 5 load = 25 surplus, export limit 10 -> curtail 15, use 15, export 10.
        # Cost = -10 * 0.05 = -0.5 EUR; self consumption = (15 - min(10, 15)) / 30 = 5 / 30.
        (0.05, 15.0, 10.0, -0.5, 5.0 / 30.0),
        # Negative price: no PV exported -> curtail 25, use 5, export 0, cost 0; self consumption 5 / 30.
        (-0.05, 5.0, 0.0, 0.0, 5.0 / 30.0),
    ],
)
def test_pv_curtailment(
    export_price: float, pv_used_kw: float, export_kw: float, cost_eur: float, self_consumption: float
) -> None:
    arrays = _scenario(
        [_dc("DC1", 50.0)],
        site={"pv": {"peak_power_kwp": 40.0}},
        grid={"import_limit_kw": 50.0, "export_limit_kw": 10.0},
        series={"pv_available_kw": 30.0, "base_load_kw": 5.0, "export_price_eur_per_kwh": export_price},
    )
    trace = _replay(arrays, [[0.0]])
    kpis = score(arrays, trace)
    assert trace.pv_used_kw == _approx([pv_used_kw])
    # Curtailed = 30 - pv_used.
    assert arrays.series.pv_available_kw - trace.pv_used_kw == _approx([30.0 - pv_used_kw])
    assert trace.grid_export_kw == _approx([export_kw])
    assert trace.grid_import_kw == _approx([0.0])
    assert kpis.energy_cost_eur == _approx(cost_eur)
    assert kpis.pv_self_consumption_frac == _approx(self_consumption)
    assert kpis.limit_violation_kwh == _approx(0.0)


# 10. Import-limit violation ----------------------------------------------------------------------


def test_base_load_above_import_limit_is_a_violation_and_ev_charging_stops() -> None:
    arrays = _scenario(
        [_dc("DC1", 50.0)],
        [_session("S1", "DC1", soc=0.2, depart_h=2.0, ev_max_dc_kw=11.0)],
        n_steps=2,
        grid={"import_limit_kw": 30.0},
        series={"base_load_kw": 40.0},
    )
    trace, kpis = _uncontrolled(arrays)
    # Excess = 40 + 11 - 30 = 21 kW > 11 kW of charging -> factor clip(1 - 21/11, 0, 1) = 0.
    assert trace.requested_ev_power_kw[:, 0] == _approx([11.0, 11.0])
    assert trace.ev_power_kw[:, 0] == _approx([0.0, 0.0])
    # Import 40 kW, 10 kW above the limit, in each of two 1 h steps -> 20 kWh.
    assert trace.import_violation_kw == _approx([10.0, 10.0])
    assert kpis.limit_violation_kwh == _approx(20.0)
    assert kpis.peak_import_kw == _approx(40.0)


def test_import_limit_scales_all_charging_by_one_factor() -> None:
    arrays = _scenario(
        [_dc("DC1", 50.0), _dc("DC2", 50.0)],
        [
            _session("S1", "DC1", soc=0.2, ev_max_dc_kw=11.0),
            _session("S2", "DC2", soc=0.2, ev_max_dc_kw=11.0),
        ],
        grid={"import_limit_kw": 45.0},
        series={"base_load_kw": 40.0},
    )
    trace, kpis = _uncontrolled(arrays)
    # Excess = 40 + 22 - 45 = 17 kW -> factor 1 - 17/22 = 5/22 -> 11 * 5/22 = 2.5 kW each.
    assert trace.ev_power_kw == _approx([[2.5, 2.5]])
    # Import 45 kW, exactly at the limit.
    assert trace.grid_import_kw == _approx([45.0])
    assert kpis.limit_violation_kwh == _approx(0.0)


# 11. Time-varying import limit ----------------------------------------------------------------------


def test_time_varying_import_limit_takes_the_lower_limit() -> None:
    arrays = _scenario(
        [_dc("DC1", 50.0)],
        [_session("S1", "DC1", soc=0.2, depart_h=2.0, energy_wanted_kwh=60.0, ev_max_dc_kw=22.0)],
        n_steps=2,
        grid={"import_limit_kw": 30.0},
        series={"base_load_kw": 5.0, "import_limit_kw": [50.0, 20.0]},
    )
    # Effective limit: min(30, 50) = 30, then min(30, 20) = 20.
    assert arrays.series.import_limit_kw == _approx([30.0, 20.0])
    trace, kpis = _uncontrolled(arrays)
    # Step 0: 5 + 22 = 27 <= 30 -> 22 kW. Step 1: 5 + 22 - 20 = 7 kW excess -> 22 - 7 = 15 kW.
    assert trace.ev_power_kw[:, 0] == _approx([22.0, 15.0])
    assert trace.grid_import_kw == _approx([27.0, 20.0])
    assert kpis.limit_violation_kwh == _approx(0.0)


def test_time_varying_export_limit_curtails_pv_step_by_step() -> None:
    arrays = _scenario(
        [_dc("DC1", 50.0)],
        n_steps=3,
        site={"pv": {"peak_power_kwp": 40.0}},
        grid={"import_limit_kw": 50.0, "export_limit_kw": 30.0},
        series={
            "pv_available_kw": 30.0,
            "base_load_kw": 5.0,
            "export_limit_kw": [20.0, 10.0, 40.0],
            "export_price_eur_per_kwh": [0.10, 0.20, 0.05],
        },
    )
    # Effective limit: min(30, 20) = 20, min(30, 10) = 10, min(30, 40) = 30.
    assert arrays.series.export_limit_kw == _approx([20.0, 10.0, 30.0])
    trace = _replay(arrays, [[0.0]] * 3)
    kpis = score(arrays, trace)
    # Surplus 30 - 5 = 25 kW in every step; exported min(25, limit) = 20, 10, 25 kW (1 h steps: kWh).
    assert trace.grid_export_kw == _approx([20.0, 10.0, 25.0])
    assert trace.grid_import_kw == _approx([0.0, 0.0, 0.0])
    # Curtailed 25 - exported = 5, 15, 0 kWh; PV used 30 - curtailed = 25, 15, 30 kW.
    assert arrays.series.pv_available_kw - trace.pv_used_kw == _approx([5.0, 15.0, 0.0])
    assert trace.pv_used_kw == _approx([25.0, 15.0, 30.0])
    # Revenue 20 * 0.10 = 2, 10 * 0.20 = 2, 25 * 0.05 = 1.25 EUR: energy cost -5.25 EUR.
    assert trace.energy_cost_eur == _approx([-2.0, -2.0, -1.25])
    assert kpis.energy_cost_eur == _approx(-5.25)
    # PV kept on site (25 - 20) + (15 - 10) + (30 - 25) = 15 of 90 kWh available = 1/6.
    assert kpis.pv_self_consumption_frac == _approx(15.0 / 90.0)
    assert kpis.limit_violation_kwh == _approx(0.0)


def test_time_varying_export_limit_scales_v2g_discharge() -> None:
    arrays = _scenario(
        [_dc("V2G", 50.0, is_bidirectional=True)],
        [
            # 100 kWh at 80 % = 80 kWh; target and V2G floor 0.2 * 100 = 20 kWh; 50 kW both ways.
            _session(
                "S1",
                "V2G",
                soc=0.8,
                depart_h=2.0,
                target_soc_frac=0.2,
                ev_max_dc_kw=50.0,
                allow_v2g=True,
                v2g_min_soc_frac=0.2,
            )
        ],
        n_steps=2,
        grid={"import_limit_kw": 100.0, "export_limit_kw": 50.0},
        series={"export_limit_kw": [10.0, 4.0], "export_price_eur_per_kwh": 0.10},
    )
    trace = _replay(arrays, [[-8.0], [-8.0]])
    kpis = score(arrays, trace)
    # Box: floor max(20, 20 - 50 * 1 h * 1 step left) = 20 kWh; 60 kWh spare -> down to -50 kW; -8 passes.
    # Step 0: export 8 <= 10 kW. Step 1: 8 - 4 = 4 kW over -> discharge scaled by 1 - 4 / 8 = 0.5 -> -4 kW.
    assert trace.ev_power_kw[:, 0] == _approx([-8.0, -4.0])
    assert trace.grid_export_kw == _approx([8.0, 4.0])
    # Battery 80 - 8 = 72, 72 - 4 = 68 kWh.
    assert trace.session_energy_kwh[:, 0] == _approx([80.0, 72.0, 68.0])
    # Discharged 12 kWh; revenue 12 * 0.10 = 1.2 EUR; no violation.
    assert kpis.v2g_discharged_kwh == _approx(12.0)
    assert kpis.energy_cost_eur == _approx(-1.2)
    assert kpis.limit_violation_kwh == _approx(0.0)


# 12. Demand charge --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("billing_peak_start_kw", "demand_charge_eur"),
    [
        # Peak 29 kW, prior peak 20 kW, 2 EUR/kW -> 2 * (29 - 20) = 18 EUR.
        (20.0, 18.0),
        # Prior peak 35 kW above this scenario's 29 kW -> nothing added.
        (35.0, 0.0),
    ],
)
def test_demand_charge_above_billing_peak(billing_peak_start_kw: float, demand_charge_eur: float) -> None:
    arrays = _scenario(
        [_dc("DC1", 50.0)],
        n_steps=2,
        grid={"import_limit_kw": 50.0},
        series={"base_load_kw": [10.0, 29.0], "import_price_eur_per_kwh": 0.10},
        site={"tariff": {"demand_charge_eur_per_kw": 2.0, "billing_peak_start_kw": billing_peak_start_kw}},
    )
    trace = _replay(arrays, [[0.0], [0.0]])
    kpis = score(arrays, trace)
    assert kpis.peak_import_kw == _approx(29.0)
    assert kpis.demand_charge_eur == _approx(demand_charge_eur)
    # Energy (10 + 29) * 0.10 = 3.9 EUR; total = 3.9 + demand charge.
    assert kpis.total_cost_eur == _approx(3.9 + demand_charge_eur)


# 13. Time of use on a daylight-saving day ----------------------------------------------------------

TOU_BLOCKS = [
    {"start_local": "07:00", "import_price_eur_per_kwh": 0.30},
    {"start_local": "23:00", "import_price_eur_per_kwh": 0.10},
]


def _dst_arrays() -> tuple[ScenarioSpec, ScenarioArrays]:
    data = {
        "name": "dst",
        "site": {
            "site_id": "dst-site",
            "timezone": "Europe/Amsterdam",
            "chargers": [_dc("DC1", 50.0)],
            "grid": {"import_limit_kw": 100.0},
            "tariff": {"time_of_use": TOU_BLOCKS},
        },
        "time_grid": {"start_utc": "2024-03-30T23:00:00Z", "step_min": 60, "n_steps": 24},
    }
    spec = parse_scenario(data)
    return spec, compile_scenario(spec)


def test_time_of_use_on_spring_forward_day() -> None:
    spec, arrays = _dst_arrays()
    blocks = spec.site.tariff.time_of_use
    assert blocks is not None
    direct = resolve_time_of_use(blocks, spec.time_grid, spec.site.timezone)
    # Step k starts at 23:00Z (Mar 30) + k h. Local (Amsterdam): step 0 = 00:00 CET, step 1 = 01:00 CET,
    # then 01:00Z is 03:00 CEST (02:00 is skipped), so step k >= 2 is local (k + 1):00.
    # Local 07:00 is step 6 = 05:00Z; local 23:00 is step 22 = 21:00Z; step 23 is 00:00 on Apr 1,
    # before the 07:00 block -> the previous day's last block (0.10) holds.
    expected = [0.10] * 6 + [0.30] * 16 + [0.10] * 2
    assert direct == _approx(expected)
    assert arrays.series.import_price_eur_per_kwh == _approx(expected)
    # The 0.30 steps start at 05:00Z .. 20:00Z on 2024-03-31 (not 06:00Z as in winter time).
    starts = step_starts_utc(spec.time_grid)
    peak_starts = [s for s, price in zip(starts, direct, strict=True) if price == pytest.approx(0.30)]
    assert peak_starts[0] == dt.datetime(2024, 3, 31, 5, tzinfo=dt.UTC)
    assert peak_starts[-1] == dt.datetime(2024, 3, 31, 20, tzinfo=dt.UTC)
    assert [s.hour for s in peak_starts] == list(range(5, 21))


# 14. Session still plugged in at the horizon end --------------------------------------------------


def test_unmet_energy_of_session_past_the_horizon() -> None:
    arrays = _scenario(
        [_dc("DC1", 50.0), _dc("DC2", 50.0)],
        [
            # 100 kWh at 20 % = 20 kWh, wants 30 -> target 50; max 10 kW; departs at 03:00, horizon 01:00.
            _session("S1", "DC1", soc=0.2, depart_h=3.0, energy_wanted_kwh=30.0, ev_max_dc_kw=10.0),
            # Same with charge efficiency 0.5.
            _session(
                "S2",
                "DC2",
                soc=0.2,
                depart_h=3.0,
                energy_wanted_kwh=30.0,
                ev_max_dc_kw=10.0,
                charge_efficiency_frac=0.5,
            ),
        ],
        n_steps=1,
    )
    # end_step = 3, horizon T = 1 -> 2 steps left after the horizon.
    assert arrays.sessions.end_step.tolist() == [3, 3]
    trace = _replay(arrays, [[5.0, 5.0]])
    kpis = score(arrays, trace)
    # S1: gains 5 kWh -> 25. unmet = 50 - 25 - 10 * 1 * 1 h * 2 = 5 kWh.
    # S2: gains 0.5 * 5 = 2.5 -> 22.5. unmet = 50 - 22.5 - 10 * 0.5 * 1 h * 2 = 17.5 kWh.
    assert trace.session_energy_kwh[1] == _approx([25.0, 22.5])
    assert kpis.unmet_energy_kwh == _approx(5.0 + 17.5)
    # Penalty 2 EUR/kWh * 22.5 kWh = 45 EUR; neither fully served.
    assert kpis.unmet_energy_cost_eur == _approx(45.0)
    assert kpis.sessions_fully_served_frac == _approx(0.0)


# 15. Sessions arriving and leaving mid-step ---------------------------------------------------------


def test_mid_step_arrival_and_departure() -> None:
    arrays = _scenario(
        [_dc("DC1", 50.0)],
        # Arrival 00:30 -> first full step ceil(0.5) = 1; departure 02:30 -> gone at floor(2.5) = 2.
        [
            _session(
                "S1", "DC1", arrive_h=0.5, depart_h=2.5, soc=0.2, energy_wanted_kwh=30.0, ev_max_dc_kw=10.0
            )
        ],
        n_steps=4,
    )
    assert arrays.sessions.first_step.tolist() == [1]
    assert arrays.sessions.end_step.tolist() == [2]
    assert arrays.connector_session_index[:, 0].tolist() == [-1, 0, -1, -1]
    trace, kpis = _uncontrolled(arrays)
    # Charges in step 1 only, at 10 kW.
    assert trace.ev_power_kw[:, 0] == _approx([0.0, 10.0, 0.0, 0.0])
    # Energy 20 -> 30 during step 1; unmet = target 50 - 30 = 20 kWh at departure.
    assert trace.session_energy_kwh[:, 0] == _approx([20.0, 20.0, 30.0, 30.0, 30.0])
    assert kpis.energy_delivered_kwh == _approx(10.0)
    assert kpis.unmet_energy_kwh == _approx(20.0)

    trace = _replay(arrays, [[10.0]] * 4)
    # A replayed 10 kW in every step is cut to the one step the EV is there; 30 kWh moved by the projection.
    assert trace.ev_power_kw[:, 0] == _approx([0.0, 10.0, 0.0, 0.0])
    assert score(arrays, trace).projection_adjustment_kwh == _approx(30.0)


# 16. Savings capture ----------------------------------------------------------------------------------


def test_savings_capture_frac() -> None:
    # (100 - 80) / (100 - 60) = 20 / 40 = 0.5.
    assert savings_capture_frac(100.0, 80.0, 60.0) == _approx(0.5)
    # Denominator 100 - 99.5 = 0.5 EUR < 1 EUR -> excluded.
    assert savings_capture_frac(100.0, 80.0, 99.5) is None
    # Denominator exactly 1 EUR is not "under 1 EUR": (100 - 99.5) / 1 = 0.5.
    assert savings_capture_frac(100.0, 99.5, 99.0) == _approx(0.5)


def test_summarize_savings_capture_over_three_days() -> None:
    days = [
        (100.0, 80.0, 60.0),  # 20 / 40 = 0.5
        (50.0, 48.0, 40.0),  # 2 / 10 = 0.2
        (10.0, 9.0, 9.5),  # denominator 0.5 EUR -> excluded
    ]
    summary = summarize_savings_capture(days)
    assert summary.n_days_included == 2
    assert summary.n_days_excluded == 1
    # Mean (0.5 + 0.2) / 2 = 0.35; pooled (20 + 2) / (40 + 10) = 0.44.
    assert summary.mean_frac == _approx(0.35)
    assert summary.pooled_frac == _approx(0.44)


def test_rounding_noise_over_a_limit_is_no_violation() -> None:
    # A limit met up to float rounding (1e-15 kW over) is met: the projection's tolerance, 1e-9 kW.
    from smac_rl.core.physics import _excess

    np.testing.assert_array_equal(
        _excess(np.asarray([40.0 + 1e-14, 41.0, 39.0]), np.full(3, 40.0)), [0.0, 1.0, 0.0]
    )
