"""Every profile format INCAR needs: hand-checked renderings, OCPP schema validity, 422s, DST.

Pure renderers are tested on hand-built profiles; one HTTP test per format runs the service on the
tiny scenario padded beyond the model's 16 connectors, so least laxity first answers with the
profiles derived in ``tests/policies``: S1 (DC1, DC 20 kW) 14 kW, 16 kW, 0 kW on three one-hour
steps; S2 (AC1, three-phase 16 A at 230 V) 10 kW on the first step.
"""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import jsonschema
import numpy as np
import ocpp.messages
import pytest
from hypothesis import given
from hypothesis import strategies as st

from smac_rl.core.arrays import ScenarioArrays, compile_scenario
from smac_rl.core.profiles import (
    ProfilePeriod,
    SessionProfile,
    amps_toward_zero,
    format_problems,
    json_profile,
    ocpi22_charging_profile,
    ocpp16_set_charging_profile,
    ocpp21_set_charging_profile,
    ocpp201_set_charging_profile,
    rated_periods,
    rounding_margin_kw,
    session_profiles,
    watts_toward_zero,
    with_import_margin,
)
from smac_rl.core.scenario_io import load_builtin_scenario, parse_scenario
from smac_rl.core.simulate import simulate
from smac_rl.core.state import Setpoints, StepContext
from tests.core.tiny import tiny_data, tiny_scenario
from tests.serve.support import get, post, validate_answer_profiles, validate_ocpp, with_idle_chargers

START = dt.datetime(2024, 5, 1, tzinfo=dt.UTC)
VOLTAGE_V = 230.0
CALL = 2


def _profile(
    powers_kw: list[float],
    n_phases: int | None = 3,
    transaction_id: str | None = "42",
    start_utc: dt.datetime = START,
    step_s: int = 900,
) -> SessionProfile:
    """A profile with one period per step (unmerged, as a test input), on AC or DC (n_phases None)."""
    return SessionProfile(
        session_id="S1",
        transaction_id=transaction_id,
        station_id="CP1",
        evse_id=2,
        connector_id=1,
        start_utc=start_utc,
        duration_s=step_s * len(powers_kw),
        periods=tuple(ProfilePeriod(k * step_s, p) for k, p in enumerate(powers_kw)),
        n_phases=n_phases,
        phase_a_per_kw=None if n_phases is None else 1000.0 / (n_phases * VOLTAGE_V),
    )


# --- pure renderers, hand-checked ------------------------------------------------------------


def test_ocpp16_in_w_merges_periods_equal_after_rounding() -> None:
    # 7.4 kW -> 7400 W; 11.0404 kW -> 11040.4 -> 11040 W; 11.0407 kW -> 11040.7 -> 11040 W (toward
    # zero, not 11041), equal to the previous period: merged; 0 kW -> 0 W.
    payload = ocpp16_set_charging_profile(_profile([7.4, 11.0404, 11.0407, 0.0]), profile_id=7)
    assert payload == {
        "connectorId": 2,  # the EVSE id: a 1.6 connector is an OCPP 2.x EVSE
        "csChargingProfiles": {
            "chargingProfileId": 7,
            "transactionId": 42,
            "stackLevel": 0,
            "chargingProfilePurpose": "TxProfile",
            "chargingProfileKind": "Absolute",
            "chargingSchedule": {
                "startSchedule": "2024-05-01T00:00:00Z",
                "chargingRateUnit": "W",
                "chargingSchedulePeriod": [
                    {"startPeriod": 0, "limit": 7400, "numberPhases": 3},
                    {"startPeriod": 900, "limit": 11040, "numberPhases": 3},
                    {"startPeriod": 2700, "limit": 0, "numberPhases": 3},
                ],
            },
        },
    }
    validate_ocpp(payload, "1.6")


def test_ocpp16_in_a_is_per_phase_in_tenths() -> None:
    # Three phases at 230 V: 690 W per A. 7.4 kW -> 10.72 A -> 10.7; 11.0404 kW -> 16.0006 A -> 16.0;
    # 11.0407 kW -> 16.001 A -> 16.0 (merged); 0 kW -> 0.0 A.
    payload = ocpp16_set_charging_profile(_profile([7.4, 11.0404, 11.0407, 0.0]), 7, "A")
    schedule = payload["csChargingProfiles"]["chargingSchedule"]
    assert schedule["chargingRateUnit"] == "A"
    assert [(p["startPeriod"], p["limit"]) for p in schedule["chargingSchedulePeriod"]] == [
        (0, 10.7),
        (900, 16.0),
        (2700, 0.0),
    ]
    validate_ocpp(payload, "1.6")


def test_ocpp_validator_cache_ignores_parse_float_so_the_helper_reads_its_own(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(ocpp.messages, "_validators", {})  # a clean cache, restored afterwards
    payload = ocpp16_set_charging_profile(_profile([7.4]), 7, "A")  # 10.7 A
    with_floats = ocpp.messages.get_validator(CALL, "SetChargingProfile", "1.6")
    # The cache key is action and version only: asking for Decimal returns the float validator...
    assert ocpp.messages.get_validator(CALL, "SetChargingProfile", "1.6", parse_float=Decimal) is with_floats
    # ...which rejects 10.7 (10.7 / 0.1 = 106.99999999999999 is not a whole number in floats).
    assert not with_floats.is_valid(json.loads(json.dumps(payload)))
    validate_ocpp(payload, "1.6")


def test_the_schema_helper_rejects_what_the_schemas_forbid() -> None:
    payload = ocpp16_set_charging_profile(_profile([7.4]), 7, "A")
    schedule = payload["csChargingProfiles"]["chargingSchedule"]
    schedule["chargingSchedulePeriod"][0]["limit"] = 10.75  # 1.6: multiples of 0.1 only
    with pytest.raises(jsonschema.ValidationError, match="multiple of"):
        validate_ocpp(payload, "1.6")
    schedule["chargingSchedulePeriod"][0]["limit"] = 10.7
    schedule["startSchedule"] = "2024-05-01T00:00:00"  # no zone
    with pytest.raises(jsonschema.ValidationError, match="date-time"):
        validate_ocpp(payload, "1.6")
    request = ocpp21_set_charging_profile(_profile([-5.0]), 7)
    request["chargingProfile"]["chargingSchedule"][0]["chargingSchedulePeriod"][0]["dischargeLimit"] = 5
    with pytest.raises(jsonschema.ValidationError, match="greater than the maximum"):
        validate_ocpp(request, "2.1")


def test_ocpp16_needs_an_integer_transaction_id() -> None:
    with pytest.raises(ValueError, match=r"OCPP 1\.6 needs an integer"):
        ocpp16_set_charging_profile(_profile([7.4], transaction_id="tx-1"), 7)


def test_ocpp201_in_a_on_a_single_phase_charger() -> None:
    # One phase at 230 V: 3.68 kW -> 16.0 A; 3.6799 kW -> 15.9996 A -> 15.9 (toward zero);
    # 7.36 kW -> 32.0 A.
    payload = ocpp201_set_charging_profile(_profile([3.68, 3.6799, 7.36], n_phases=1), 9, "A")
    assert payload == {
        "evseId": 2,
        "chargingProfile": {
            "id": 9,
            "stackLevel": 0,
            "chargingProfilePurpose": "TxProfile",
            "chargingProfileKind": "Absolute",
            "transactionId": "42",
            "chargingSchedule": [
                {
                    "id": 9,
                    "startSchedule": "2024-05-01T00:00:00Z",
                    "chargingRateUnit": "A",
                    "chargingSchedulePeriod": [
                        {"startPeriod": 0, "limit": 16.0, "numberPhases": 1},
                        {"startPeriod": 900, "limit": 15.9, "numberPhases": 1},
                        {"startPeriod": 1800, "limit": 32.0, "numberPhases": 1},
                    ],
                }
            ],
        },
    }
    validate_ocpp(payload, "2.0.1")


def test_ocpp21_discharging_periods_use_a_central_setpoint() -> None:
    # W: 11 kW -> 11000; -6.9 kW -> -6900; -6.9004 kW -> -6900.4 -> -6900 (toward zero, merged);
    # 0 -> 0; 3.45 kW -> 3450. Discharge: setpoint = dischargeLimit = -6900 W, limit 0 (no charging).
    profile = _profile([11.0, -6.9, -6.9004, 0.0, 3.45])
    payload = ocpp21_set_charging_profile(profile, 5)
    periods = payload["chargingProfile"]["chargingSchedule"][0]["chargingSchedulePeriod"]
    assert periods == [
        {"startPeriod": 0, "limit": 11000, "numberPhases": 3},
        {
            "startPeriod": 900,
            "limit": 0,
            "numberPhases": 3,
            "operationMode": "CentralSetpoint",
            "setpoint": -6900,
            "dischargeLimit": -6900,
        },
        {"startPeriod": 2700, "limit": 0, "numberPhases": 3},
        {"startPeriod": 3600, "limit": 3450, "numberPhases": 3},
    ]
    validate_ocpp(payload, "2.1")
    # A, three phases at 230 V (690 W per A): 11 kW -> 15.94 -> 15.9; -6.9 kW -> -10.0;
    # -6.9004 kW -> -10.0006 -> -10.0 (merged); 0 -> 0.0; 3.45 kW -> 5.0.
    in_a = ocpp21_set_charging_profile(profile, 5, "A")
    periods_a = in_a["chargingProfile"]["chargingSchedule"][0]["chargingSchedulePeriod"]
    assert [(p["startPeriod"], p["limit"], p.get("setpoint")) for p in periods_a] == [
        (0, 15.9, None),
        (900, 0, -10.0),
        (2700, 0.0, None),
        (3600, 5.0, None),
    ]
    assert periods_a[1]["dischargeLimit"] == -10.0
    validate_ocpp(in_a, "2.1")


def test_ocpi22_charging_profile_on_dc_in_w() -> None:
    # DC, 30-minute steps: 50 kW -> 50000 W; 50.0004 kW -> 50000.4 -> 50000 W (merged);
    # 20.5 kW -> 20500 W. No numberPhases in OCPI; no duration (the last period holds).
    profile = _profile([50.0, 50.0004, 20.5], n_phases=None, step_s=1800)
    assert ocpi22_charging_profile(profile) == {
        "start_date_time": "2024-05-01T00:00:00Z",
        "charging_rate_unit": "W",
        "charging_profile_period": [
            {"start_period": 0, "limit": 50000},
            {"start_period": 3600, "limit": 20500},
        ],
    }


def test_charge_only_formats_refuse_discharge_and_dc_refuses_amps() -> None:
    discharging = _profile([5.0, -3.0])
    with pytest.raises(ValueError, match=r"OCPI 2\.2 has no discharge"):
        ocpi22_charging_profile(discharging)
    with pytest.raises(ValueError, match=r"OCPP 1\.6 has no discharge"):
        ocpp16_set_charging_profile(discharging, 1)
    with pytest.raises(ValueError, match=r"OCPP 2\.0\.1 has no discharge"):
        ocpp201_set_charging_profile(discharging, 1)
    with pytest.raises(ValueError, match="DC station 'CP1'; a DC current cannot be given in A"):
        rated_periods(_profile([50.0], n_phases=None), "A")
    with pytest.raises(ValueError, match="has no transaction_id"):
        ocpp21_set_charging_profile(_profile([5.0], transaction_id=None), 1)


def test_json_profile_keeps_kw_and_discharge() -> None:
    assert json_profile(_profile([5.0, -3.0])) == {
        "start_utc": "2024-05-01T00:00:00+00:00",
        "periods": [{"start_offset_s": 0, "power_kw": 5.0}, {"start_offset_s": 900, "power_kw": -3.0}],
    }


def test_rounding_toward_zero_keeps_the_sum_within_the_site_limit() -> None:
    # Three sessions share 5 kW: 5/3 = 1.6667 kW each. Nearest whole watts would give 3 x 1667 =
    # 5001 W, above the limit; toward zero gives 3 x 1666 = 4998 W. In A on one phase at 230 V:
    # 1666.67 W / 230 V = 7.246 A -> 7.2 A, i.e. 1656 W each, 4968 W in all.
    share_kw = 5.0 / 3.0
    profiles = [_profile([share_kw], n_phases=1) for _ in range(3)]
    watts = [rated_periods(p, "W")[0][1] for p in profiles]
    amps = [rated_periods(p, "A")[0][1] for p in profiles]
    assert watts == [1666, 1666, 1666]
    assert sum(watts) <= 5000 < 3 * round(share_kw * 1000)
    assert amps == [7.2, 7.2, 7.2]
    assert sum(a * VOLTAGE_V for a in amps) <= 5000.0


def _v2g_at_the_import_limit() -> ScenarioArrays:
    """The tiny scenario, V2G at DC1 (discharge at most 2.0009 kW), base load 5.0004 kW, limit 10 kW."""
    data = tiny_data()
    data["site"]["chargers"][0]["is_bidirectional"] = True
    data["site"]["grid"]["import_limit_kw"] = 10.0
    data["sessions"][0].update(allow_v2g=True, ev_max_discharge_kw=2.0009)
    data["series"]["base_load_kw"] = 5.0004
    return compile_scenario(parse_scenario(data))


def _site_import_w_at_step_0(arrays: ScenarioArrays, margin_kw: float) -> float:
    """Site import at step 0 [W] from the rendered limits, S1 discharging and S2 charging all out."""

    def discharge_s1_charge_s2(context: StepContext) -> Setpoints:
        return Setpoints(np.array([[-100.0, 100.0]]), np.zeros(1))

    trace = simulate(with_import_margin(arrays, margin_kw), discharge_s1_charge_s2)
    outlets: list[tuple[str, int, int, str | None]] = [("DC1", 1, 1, "1"), ("AC1", 1, 1, "2")]
    rendered_w = [rated_periods(p, "W")[0][1] for p in session_profiles(arrays, trace, outlets)]
    return float(sum(rendered_w) + 1000.0 * arrays.series.base_load_kw[0])


def test_discharges_rounded_toward_zero_stay_within_the_import_limit_thanks_to_the_margin() -> None:
    # S1 may discharge 2.0009 kW (its spare energy allows 10 kW: 30 kWh stored, 20 kWh must stay for
    # the 40 kWh the last two hours can still add). S2 asks 10 kW; the projection's import stage
    # scales it to 10 - 5.0004 + 2.0009 = 7.0005 kW. Rounded toward zero: 7000 W and -2000 W, so the
    # site draws 7000 - 2000 + 5000.4 = 10000.4 W, 0.4 W above its 10 kW limit. One V2G session:
    # a margin of 1 W, so S2 gets 6.9995 kW -> 6999 W and the site 9999.4 W.
    arrays = _v2g_at_the_import_limit()
    assert rounding_margin_kw(arrays, "W") == pytest.approx(0.001)
    assert _site_import_w_at_step_0(arrays, 0.0) == pytest.approx(10000.4)
    assert _site_import_w_at_step_0(arrays, rounding_margin_kw(arrays, "W")) == pytest.approx(9999.4)


def test_rounding_margin_counts_one_quantum_per_session_that_may_discharge() -> None:
    arrays = _v2g_at_the_import_limit()
    assert rounding_margin_kw(compile_scenario(tiny_scenario()), "W") == 0.0  # nobody discharges
    # In A: 0.1 A on each of three phases at 230 V is 0.069 kW, for an AC V2G session; S1 is at DC
    # (no current in A), so the tiny scenario with S2 allowed V2G at a bidirectional AC1 is needed.
    data = tiny_data()
    data["site"]["chargers"][1]["is_bidirectional"] = True
    data["sessions"][1]["allow_v2g"] = True
    ac_v2g = compile_scenario(parse_scenario(data))
    assert rounding_margin_kw(ac_v2g, "A") == pytest.approx(0.069)
    assert rounding_margin_kw(ac_v2g, "W") == pytest.approx(0.001)
    planned = with_import_margin(arrays, 0.001)
    assert planned.series.import_limit_kw.tolist() == pytest.approx([9.999] * 4)
    assert arrays.series.import_limit_kw.tolist() == [10.0] * 4  # the original is untouched
    assert with_import_margin(arrays, 0.0) is arrays


@given(
    power_kw=st.floats(min_value=-350.0, max_value=350.0, allow_nan=False),
    n_phases=st.sampled_from([1, 3]),
)
def test_rounded_limits_never_exceed_the_setpoint(power_kw: float, n_phases: int) -> None:
    watts = watts_toward_zero(power_kw)
    assert abs(watts) <= abs(power_kw) * 1000.0 + 1e-6
    assert abs(watts) > abs(power_kw) * 1000.0 - 1.0
    assert watts == 0 or (watts > 0) == (power_kw > 0)
    amps = amps_toward_zero(power_kw, 1000.0 / (n_phases * VOLTAGE_V))
    assert abs(amps) * n_phases * VOLTAGE_V <= abs(power_kw) * 1000.0 + 1e-3
    assert Decimal(repr(amps)) % Decimal("0.1") == 0


def test_dst_day_renders_utc() -> None:
    # Europe/Amsterdam, 2024-10-27: 03:00 CEST falls back to 02:00 CET, so 02:30 happens twice:
    # first at 00:30 UTC (fold 0, +02:00), then at 01:30 UTC (fold 1, +01:00).
    amsterdam = ZoneInfo("Europe/Amsterdam")
    first = _profile([7.4], start_utc=dt.datetime(2024, 10, 27, 2, 30, tzinfo=amsterdam))
    second = _profile([7.4], start_utc=dt.datetime(2024, 10, 27, 2, 30, fold=1, tzinfo=amsterdam))
    for profile, expected in ((first, "2024-10-27T00:30:00Z"), (second, "2024-10-27T01:30:00Z")):
        schedule_16 = ocpp16_set_charging_profile(profile, 1)["csChargingProfiles"]["chargingSchedule"]
        assert schedule_16["startSchedule"] == expected
        for render in (ocpp201_set_charging_profile, ocpp21_set_charging_profile):
            assert render(profile, 1)["chargingProfile"]["chargingSchedule"][0]["startSchedule"] == expected
        assert ocpi22_charging_profile(profile)["start_date_time"] == expected
        assert json_profile(profile)["start_utc"] == expected.replace("Z", "+00:00")


def test_format_problems_name_the_field() -> None:
    data = tiny_data()
    data["sessions"][0]["transaction_id"] = "x" * 37
    data["sessions"][1]["transaction_id"] = "tx-2"
    spec = parse_scenario(data)
    assert [p.path for p in format_problems(spec, "ocpp201", "W")] == ["scenario.sessions[0].transaction_id"]
    assert [p.path for p in format_problems(spec, "ocpp16", "W")] == [
        "scenario.sessions[0].transaction_id",
        "scenario.sessions[1].transaction_id",
    ]
    in_a = format_problems(spec, "ocpi22", "A")  # S1 is at the DC charger DC1
    assert [p.path for p in in_a] == ["rate_unit"]
    assert "session 'S1' is at DC station 'DC1'" in in_a[0].expectation
    assert format_problems(spec, "json", "W") == []


# --- over HTTP, one test per format ----------------------------------------------------------


def _answer(base_url: str, data: dict[str, Any], profile_format: str, rate_unit: str = "W") -> dict[str, Any]:
    status, text = post(
        f"{base_url}/v1/profiles", {"scenario": data, "format": profile_format, "rate_unit": rate_unit}
    )
    assert status == 200, text
    body: dict[str, Any] = json.loads(text)
    assert body["policy"] == "least_laxity_first"
    return {p["session_id"]: p for p in body["profiles"]}


def _tiny_with_transactions() -> dict[str, Any]:
    data = with_idle_chargers(tiny_data())
    data["sessions"][0]["transaction_id"] = "101"
    data["sessions"][1]["transaction_id"] = "102"
    return data


def _limits(periods: list[dict[str, Any]], start: str = "startPeriod") -> list[tuple[int, float]]:
    return [(p[start], p["limit"]) for p in periods]


def test_http_ocpp16(base_url: str) -> None:
    answer = _answer(base_url, _tiny_with_transactions(), "ocpp16")
    s1, s2 = (answer[s]["set_charging_profile"] for s in ("S1", "S2"))
    for payload in (s1, s2):
        validate_ocpp(payload, "1.6")
    assert s1["connectorId"] == 1
    assert s1["csChargingProfiles"]["transactionId"] == 101
    # S1 on DC: 14 kW, 16 kW, 0 kW -> 14000, 16000, 0 W, no numberPhases.
    assert s1["csChargingProfiles"]["chargingSchedule"]["chargingSchedulePeriod"] == [
        {"startPeriod": 0, "limit": 14000},
        {"startPeriod": 3600, "limit": 16000},
        {"startPeriod": 7200, "limit": 0},
    ]
    assert s2["csChargingProfiles"]["chargingSchedule"]["chargingSchedulePeriod"] == [
        {"startPeriod": 0, "limit": 10000, "numberPhases": 3}
    ]


def test_http_ocpp201_in_amps(base_url: str) -> None:
    data = _tiny_with_transactions()
    data["sessions"] = data["sessions"][1:]  # S2 alone (AC): 10 kW, its EV's limit
    answer = _answer(base_url, data, "ocpp201", "A")
    payload = answer["S2"]["set_charging_profile_request"]
    validate_ocpp(payload, "2.0.1")
    schedule = payload["chargingProfile"]["chargingSchedule"][0]
    # 10000 W / (3 x 230 V) = 14.49 A -> 14.4 A per phase.
    assert schedule["chargingRateUnit"] == "A"
    assert schedule["chargingSchedulePeriod"] == [{"startPeriod": 0, "limit": 14.4, "numberPhases": 3}]


def test_http_ocpp21(base_url: str) -> None:
    answer = _answer(base_url, _tiny_with_transactions(), "ocpp21")
    for entry in answer.values():
        validate_ocpp(entry["set_charging_profile_request"], "2.1")
    periods = answer["S1"]["set_charging_profile_request"]["chargingProfile"]["chargingSchedule"][0]
    assert _limits(periods["chargingSchedulePeriod"]) == [(0, 14000), (3600, 16000), (7200, 0)]
    # The demo through the ONNX policy, V2G allowed at DC-01: every discharge is a central setpoint.
    scenario = load_builtin_scenario("demo_workplace").model_dump(mode="json")
    status, text = post(f"{base_url}/v1/profiles", {"scenario": scenario, "format": "ocpp21"})
    assert status == 200, text
    body = json.loads(text)
    n_setpoints = 0
    for entry in body["profiles"]:
        payload = entry["set_charging_profile_request"]
        validate_ocpp(payload, "2.1")
        for period in payload["chargingProfile"]["chargingSchedule"][0]["chargingSchedulePeriod"]:
            if "setpoint" in period:
                n_setpoints += 1
                assert period["operationMode"] == "CentralSetpoint"
                assert period["dischargeLimit"] == period["setpoint"] < 0 == period["limit"]
            else:
                assert period["limit"] >= 0
    discharged_kwh = body["kpis"]["v2g_discharged_kwh"]
    assert n_setpoints == 0 or discharged_kwh > 0
    assert n_setpoints > 0 or discharged_kwh < 0.001  # sub-watt discharges round to 0 W


def test_http_ocpi22(base_url: str) -> None:
    answer = _answer(base_url, with_idle_chargers(tiny_data()), "ocpi22")
    assert answer["S1"]["charging_profile"] == {
        "start_date_time": "2024-05-01T00:00:00Z",
        "charging_rate_unit": "W",
        "charging_profile_period": [
            {"start_period": 0, "limit": 14000},
            {"start_period": 3600, "limit": 16000},
            {"start_period": 7200, "limit": 0},
        ],
    }
    s2_periods = answer["S2"]["charging_profile"]["charging_profile_period"]
    assert _limits(s2_periods, "start_period") == [(0, 10000)]


def test_http_json_in_kw(base_url: str) -> None:
    answer = _answer(base_url, with_idle_chargers(tiny_data()), "json")
    assert answer["S2"]["start_utc"] == "2024-05-01T00:00:00+00:00"
    assert answer["S2"]["periods"] == [{"start_offset_s": 0, "power_kw": 10.0}]


def test_http_bad_combinations_get_422_naming_the_field(base_url: str) -> None:
    demo = load_builtin_scenario("demo_workplace").model_dump(mode="json")
    cases: list[tuple[dict[str, Any], str, str, str]] = [
        # W11 may discharge at the bidirectional DC-01: OCPI has no discharge.
        (demo, "ocpi22", "W", "scenario.sessions[10].allow_v2g"),
        (demo, "ocpp16", "W", "scenario.sessions[0].transaction_id"),  # 'tx-W01' is no integer
        (tiny_data(), "ocpp21", "W", "scenario.sessions[0].transaction_id"),  # none given
        (tiny_data(), "json", "A", "rate_unit"),
        (_tiny_with_transactions(), "ocpp201", "A", "rate_unit"),  # S1 is at a DC charger
    ]
    for data, profile_format, rate_unit, field in cases:
        status, text = post(
            f"{base_url}/v1/profiles", {"scenario": data, "format": profile_format, "rate_unit": rate_unit}
        )
        assert status == 422, (profile_format, rate_unit, text)
        fields = [d["field"] for d in json.loads(text)["detail"]]
        assert fields[0] == field, (profile_format, rate_unit, text)
    status, text = post(f"{base_url}/v1/profiles", {"scenario": demo, "format": "ocpi22"})
    detail = json.loads(text)["detail"]
    assert [d["field"] for d in detail] == ["scenario.sessions[10].allow_v2g"]
    assert "'W11'" in detail[0]["expected"]
    assert "OCPI 2.2 has no discharge" in detail[0]["expected"]
    status, text = post(f"{base_url}/v1/profiles", {"scenario": demo, "format": "ocpp99"})
    assert status == 422
    assert json.loads(text)["detail"][0]["loc"] == ["body", "format"]


def test_http_dst_day_renders_utc(base_url: str) -> None:
    # Europe/Amsterdam, 2024-10-27: the grid starts at 02:00 CEST (00:00 UTC); S1 arrives then,
    # S2 at 02:00 CET (01:00 UTC), the same wall-clock time an hour later, after the clock change.
    data = with_idle_chargers(tiny_data())
    data["time_grid"]["start_utc"] = "2024-10-27T02:00:00+02:00"
    s1, s2 = data["sessions"]
    s1.update(arrival_utc="2024-10-27T02:00:00+02:00", departure_utc="2024-10-27T04:00:00+01:00")
    s2.update(arrival_utc="2024-10-27T02:00:00+01:00", departure_utc="2024-10-27T03:00:00+01:00")
    for session, transaction in ((s1, "1"), (s2, "2")):
        session["transaction_id"] = transaction
    status, text = post(f"{base_url}/v1/profiles", {"scenario": data, "format": "ocpi22"})
    assert status == 200, text
    body = json.loads(text)
    starts = {p["session_id"]: p["charging_profile"]["start_date_time"] for p in body["profiles"]}
    assert starts == {"S1": "2024-10-27T00:00:00Z", "S2": "2024-10-27T01:00:00Z"}
    assert body["valid_until_utc"] == "2024-10-27T01:00:00+00:00"  # one step, and S2's arrival
    answer = _answer(base_url, data, "ocpp21")
    for session_id, expected in (("S1", "2024-10-27T00:00:00Z"), ("S2", "2024-10-27T01:00:00Z")):
        payload = answer[session_id]["set_charging_profile_request"]
        validate_ocpp(payload, "2.1")
        schedule = payload["chargingProfile"]["chargingSchedule"][0]
        assert schedule["startSchedule"] == expected
        assert all(p["startPeriod"] % 3600 == 0 for p in schedule["chargingSchedulePeriod"])


def test_openapi_documents_every_format(base_url: str) -> None:
    status, text = get(f"{base_url}/openapi.json")
    assert status == 200
    request = json.loads(text)["components"]["schemas"]["ProfileRequest"]["properties"]
    assert request["format"]["enum"] == ["ocpp16", "ocpp201", "ocpp21", "ocpi22", "json"]
    assert request["rate_unit"]["enum"] == ["W", "A"]
    for name in ("ocpp16", "ocpp201", "ocpp21", "ocpi22", "json"):
        assert f"`{name}`" in request["format"]["description"]


def test_every_answer_with_ocpp_payloads_is_validated_by_the_test_client() -> None:
    # support.call and support.post run validate_answer_profiles on every 200 answer: it must find
    # each payload, in registry answers (their own format) and stateless ones (the request's).
    payload = ocpp201_set_charging_profile(_profile([7.2, 11.0]), 7)
    registry_answer = {"format": "ocpp201", "profiles": [{"set_charging_profile_request": payload}] * 2}
    assert validate_answer_profiles(registry_answer) == 2
    stateless = {"profiles": [{"set_charging_profile_request": payload}]}
    assert validate_answer_profiles(stateless, {"format": "ocpp201"}) == 1
    assert validate_answer_profiles({"format": "json", "profiles": [{"periods": []}]}) == 0
    broken = json.loads(json.dumps(payload))
    broken["chargingProfile"]["chargingProfileKind"] = "Sometimes"
    with pytest.raises(jsonschema.ValidationError):
        validate_answer_profiles(
            {"format": "ocpp201", "profiles": [{"set_charging_profile_request": broken}]}
        )
