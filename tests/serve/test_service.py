"""The profile service over real HTTP: uvicorn on loopback, OCPP output checked with the ocpp schemas."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
import urllib.error
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from pathlib import Path

import pytest

from smac_rl.core.scenario_io import load_builtin_scenario
from smac_rl_serve.app import create_app
from smac_rl_serve.model import ModelError
from smac_rl_serve.settings import DEFAULT_MODEL_DIR, Settings
from tests.core.tiny import tiny_data
from tests.serve.support import free_port, get, post, serving, validate_ocpp, with_idle_chargers


def test_healthz_and_model(base_url: str) -> None:
    assert get(f"{base_url}/healthz") == (200, '{"status":"ok"}')
    status, text = get(f"{base_url}/v1/model")
    assert status == 200
    assert json.loads(text)["n_connectors_max"] == 16


def test_profiles_are_valid_ocpp_201_and_respect_the_grid(base_url: str) -> None:
    scenario = load_builtin_scenario("demo_workplace").model_dump(mode="json")
    status, text = post(f"{base_url}/v1/profiles", {"scenario": scenario, "format": "ocpp201"})
    assert status == 200, text
    body = json.loads(text, parse_float=Decimal)
    assert body["policy"] == "onnx"
    assert body["kpis"]["limit_violation_kwh"] == 0
    assert len(body["profiles"]) == 14
    for entry in body["profiles"]:
        payload = entry["set_charging_profile_request"]
        validate_ocpp(payload, "2.0.1")
        profile = payload["chargingProfile"]
        assert profile["chargingProfilePurpose"] == "TxProfile"
        assert profile["transactionId"] == f"tx-{entry['session_id']}"
        assert all(p["limit"] >= 0 for p in profile["chargingSchedule"][0]["chargingSchedulePeriod"])


def test_json_format_and_fallback_beyond_c_max(base_url: str) -> None:
    data = with_idle_chargers(tiny_data())
    status, text = post(f"{base_url}/v1/profiles", {"scenario": data, "format": "json"})
    assert status == 200, text
    body = json.loads(text)
    assert body["policy"] == "least_laxity_first"
    assert "19 connectors" in body["fallback_reason"]
    # LLF on the tiny scenario: S1 14 kW then 16 kW, S2 10 kW (tests/policies).
    periods = {p["session_id"]: p["periods"] for p in body["profiles"]}
    assert periods["S1"] == [
        {"start_offset_s": 0, "power_kw": 14.0},
        {"start_offset_s": 3600, "power_kw": 16.0},
        {"start_offset_s": 7200, "power_kw": 0.0},
    ]
    assert periods["S2"] == [{"start_offset_s": 0, "power_kw": 10.0}]


def test_bad_bodies_get_422_naming_the_field(base_url: str) -> None:
    data = tiny_data()
    data["sessions"][0]["arrival_soc_frac"] = 1.4
    status, text = post(f"{base_url}/v1/profiles", {"scenario": data})
    assert status == 422
    detail = json.loads(text)["detail"]
    assert detail[0]["loc"] == ["body", "scenario", "sessions", 0, "arrival_soc_frac"]
    data = tiny_data()
    data["sessions"][0]["station_id"] = "NOPE"
    status, text = post(f"{base_url}/v1/profiles", {"scenario": data, "format": "json"})
    assert status == 422
    assert json.loads(text)["detail"][0]["field"] == "scenario.sessions[0].station_id"
    status, text = post(f"{base_url}/v1/profiles", {"scenario": tiny_data(), "format": "ocpp201"})
    assert status == 422  # the tiny sessions have no transaction ids
    assert json.loads(text)["detail"][0]["field"] == "scenario.sessions[0].transaction_id"


def test_profile_requests_are_bounded_in_sessions_horizon_and_size(tmp_path: Path) -> None:
    # The tiny scenario has 2 sessions over 4 steps and is about 1.4 kB as JSON.
    settings = Settings(
        database_url=f"sqlite:///{tmp_path / 'registry.db'}",
        n_sessions_max=1,
        max_horizon_steps=3,
        n_body_bytes_max=5_000,
    )
    with serving(settings) as url:
        status, text = post(f"{url}/v1/profiles", {"scenario": tiny_data(), "format": "json"})
        assert status == 422
        problems = {(p["field"], p["value"], p["expected"]) for p in json.loads(text)["detail"]}
        assert problems == {
            ("scenario.sessions", "2", "at most 1"),
            ("scenario.time_grid.n_steps", "4", "at most 3"),
        }
        data = tiny_data()
        data["description"] = "x" * 6_000
        status, text = post(f"{url}/v1/profiles", {"scenario": data, "format": "json"})
        assert status == 413
        assert json.loads(text)["detail"][0]["field"] == "body"
        data = tiny_data()
        data["sessions"] = data["sessions"][:1]
        data["time_grid"]["n_steps"] = 3
        data["series"]["import_price_eur_per_kwh"] = data["series"]["import_price_eur_per_kwh"][:3]
        status, text = post(f"{url}/v1/profiles", {"scenario": data, "format": "json"})
        assert status == 200, text  # within every bound


def test_an_altered_model_is_refused(tmp_path: Path) -> None:
    copy = tmp_path / "model"
    shutil.copytree(DEFAULT_MODEL_DIR, copy)
    with (copy / "policy.onnx").open("ab") as handle:
        handle.write(b"\0")
    database = f"sqlite:///{tmp_path / 'registry.db'}"
    with pytest.raises(ModelError, match=r"has sha256 .*; metadata\.json expects"):
        create_app(Settings(model_dir=copy, database_url=database))
    with pytest.raises(ModelError, match="is missing"):
        create_app(Settings(model_dir=tmp_path / "nowhere", database_url=database))


def test_smac_serve_command_answers_on_loopback(tmp_path: Path) -> None:
    port = free_port()
    smac = Path(sys.executable).with_name("smac")
    database = f"sqlite:///{tmp_path / 'registry.db'}"
    process = subprocess.Popen(
        [str(smac), "serve", "--host", "127.0.0.1", "--port", str(port), "--database-url", database],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                assert get(f"http://127.0.0.1:{port}/healthz") == (200, '{"status":"ok"}')
                break
            except (urllib.error.URLError, ConnectionError):
                if time.monotonic() > deadline or process.poll() is not None:
                    raise
                time.sleep(0.2)
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_concurrent_requests_do_not_mix_scenarios(base_url: str) -> None:
    day = load_builtin_scenario("demo_workplace").model_dump(mode="json")
    short = load_builtin_scenario("demo_workplace").model_dump(mode="json")
    short["time_grid"]["n_steps"] = 48
    for series in ("import_price_eur_per_kwh", "export_price_eur_per_kwh", "base_load_kw", "pv_available_kw"):
        short["series"][series]["values"] = short["series"][series]["values"][:12]
    short["sessions"] = [s for s in short["sessions"] if s["arrival_utc"] < "2024-04-17T10:00:00Z"]
    bodies = [{"scenario": day if k % 2 == 0 else short, "format": "json"} for k in range(8)]
    expected = [post(f"{base_url}/v1/profiles", body) for body in bodies[:2]]
    with ThreadPoolExecutor(max_workers=8) as pool:
        answers = list(pool.map(lambda body: post(f"{base_url}/v1/profiles", body), bodies))
    for k, answer in enumerate(answers):
        assert answer == expected[k % 2]


def test_phases_and_stable_profile_ids(base_url: str) -> None:
    scenario = load_builtin_scenario("demo_workplace").model_dump(mode="json")
    status, text = post(f"{base_url}/v1/profiles", {"scenario": scenario})
    assert status == 200, text
    first = {p["session_id"]: p["set_charging_profile_request"] for p in json.loads(text)["profiles"]}
    periods = first["W08"]["chargingProfile"]["chargingSchedule"][0]["chargingSchedulePeriod"]
    assert {p["numberPhases"] for p in periods} == {1}  # AC-04 is single-phase
    dc_periods = first["W11"]["chargingProfile"]["chargingSchedule"][0]["chargingSchedulePeriod"]
    assert all("numberPhases" not in p for p in dc_periods)
    assert all("duration" not in r["chargingProfile"]["chargingSchedule"][0] for r in first.values())
    scenario["sessions"] = scenario["sessions"][3:]
    status, text = post(f"{base_url}/v1/profiles", {"scenario": scenario})
    second = {p["session_id"]: p["set_charging_profile_request"] for p in json.loads(text)["profiles"]}
    for session_id, request in second.items():
        assert request["chargingProfile"]["id"] == first[session_id]["chargingProfile"]["id"]
    assert len({r["chargingProfile"]["id"] for r in first.values()}) == len(first)
