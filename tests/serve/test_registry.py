"""The site and session registry over real HTTP: events, idempotency, locking, signals, decision log.

Every test runs on SQLite (a temporary file); with ``SMAC_TEST_PG_URL`` set (for example
``postgresql+psycopg://smac:smac@127.0.0.1:5432/smac``) every test runs on PostgreSQL as well.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from smac_rl.core.specs import TimeGridSpec
from smac_rl_serve.capacity import CapacityBlock, limit_series
from smac_rl_serve.db import Base, create_registry_engine, upgrade_schema
from smac_rl_serve.schemas import (
    CapacityBlockState,
    DecisionEntry,
    EventAnswer,
    MeterValues,
    SessionEnd,
    SessionState,
    SiteConfig,
    SiteSeries,
    SiteState,
)
from smac_rl_serve.settings import Settings
from tests.core.test_units import name_problems
from tests.core.tiny import tiny_data
from tests.serve.support import call, serving, session_start, site_config, utc_in, validate_ocpp

PG_URL = os.environ.get("SMAC_TEST_PG_URL")
N_ACTIVE_MAX = 14
N_BODY_BYTES_MAX = 200_000


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> str:
    if request.param == "postgresql":
        if not PG_URL:
            if os.environ.get("SMAC_REQUIRE_PG") == "1":  # CI: a skipped PostgreSQL run is a failure
                pytest.fail("SMAC_REQUIRE_PG=1 but SMAC_TEST_PG_URL is not set")
            pytest.skip("SMAC_TEST_PG_URL is not set: the PostgreSQL runs are skipped")
        return PG_URL
    return f"sqlite:///{tmp_path_factory.mktemp('registry') / 'registry.db'}"


@pytest.fixture(scope="module")
def url(database_url: str) -> Iterator[str]:
    settings = Settings(
        database_url=database_url,
        n_active_sessions_max=N_ACTIVE_MAX,
        n_body_bytes_max=N_BODY_BYTES_MAX,
    )
    with serving(settings) as base:
        yield base


def new_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def key() -> dict[str, str]:
    return {"Idempotency-Key": str(uuid.uuid4())}


def put_site(url: str, site_id: str, **extra: Any) -> dict[str, Any]:
    status, body, _ = call("PUT", f"{url}/v1/sites/{site_id}", site_config(site_id, **extra))
    assert status == 200, body
    return dict(body)


def start(url: str, site_id: str, session: dict[str, Any]) -> tuple[int, Any]:
    status, body, _ = call("POST", f"{url}/v1/sites/{site_id}/sessions", session, key())
    return status, body


def test_the_event_flow_answers_every_event_with_the_sites_profiles(url: str) -> None:
    site_id, a, b = new_id("site"), new_id("A"), new_id("B")
    created = put_site(url, site_id)
    assert (created["event"], created["site_version"], created["profiles"]) == ("site", 1, [])
    status, first = start(url, site_id, session_start(a, "AC1", 1))
    assert status == 200, first
    assert [p["session_id"] for p in first["profiles"]] == [a]
    status, second = start(
        url, site_id, session_start(b, "DC1", 1, energy_wanted_kwh=None, target_soc_frac=0.8)
    )
    assert status == 200, second
    assert {p["session_id"] for p in second["profiles"]} == {a, b}  # a shared grid: both re-planned
    for entry in second["profiles"]:
        payload = entry["set_charging_profile_request"]
        validate_ocpp(payload, "2.0.1")
        assert payload["chargingProfile"]["transactionId"] == f"tx-{entry['session_id']}"
    assert second["kpis"]["limit_violation_kwh"] == 0
    assert second["site_version"] == 3

    values = {"measured_at_utc": utc_in(0), "soc_frac": 0.5}
    status, metered, _ = call("POST", f"{url}/v1/sites/{site_id}/sessions/{a}/meter_values", values, key())
    assert status == 200, metered
    status, state, _ = call("GET", f"{url}/v1/sites/{site_id}/sessions/{a}")
    assert (status, state["soc_frac"], state["is_active"]) == (200, 0.5, True)
    # SoC 0.5 from 0.3 of 60 kWh: 12 of the 20 kWh are in; the rollout plans the other 8.
    decision = call("GET", f"{url}/v1/sites/{site_id}/decisions?limit=1")[1]["items"][0]
    planned = {s["session_id"]: s for s in decision["scenario"]["sessions"]}[a]
    assert planned["arrival_soc_frac"] == 0.5
    assert planned["energy_wanted_kwh"] == pytest.approx(8.0)
    energy = {"measured_at_utc": utc_in(0), "energy_delivered_kwh": 18.0}
    status, _, _ = call("POST", f"{url}/v1/sites/{site_id}/sessions/{a}/meter_values", energy, key())
    assert status == 200
    assert call("GET", f"{url}/v1/sites/{site_id}/sessions/{a}")[1]["soc_frac"] == pytest.approx(0.6)

    status, ended, _ = call("POST", f"{url}/v1/sites/{site_id}/sessions/{a}/end", None, key())
    assert status == 200, ended
    assert [p["session_id"] for p in ended["profiles"]] == [b]
    status, site, _ = call("GET", f"{url}/v1/sites/{site_id}")
    assert status == 200
    assert [s["session_id"] for s in site["sessions"]] == [b]
    assert site["site_version"] == 6
    status, current, _ = call("GET", f"{url}/v1/sites/{site_id}/profiles?format=json")
    assert status == 200
    assert (current["event"], current["format"]) == ("query", "json")
    assert [p["session_id"] for p in current["profiles"]] == [b]
    assert all("power_kw" in period for period in current["profiles"][0]["periods"])
    assert current["site_version"] == 6  # a query changes nothing


def test_a_repeated_key_replays_the_answer_and_a_changed_body_is_a_conflict(url: str) -> None:
    site_id, a = new_id("site"), new_id("A")
    put_site(url, site_id)
    session, headers = session_start(a), key()
    first = call("POST", f"{url}/v1/sites/{site_id}/sessions", session, headers)
    again = call("POST", f"{url}/v1/sites/{site_id}/sessions", session, headers)
    assert first[0] == again[0] == 200
    assert again[1] == first[1]
    assert again[2].get("idempotent-replayed") == "true"
    assert "idempotent-replayed" not in first[2]
    changed = call(
        "POST", f"{url}/v1/sites/{site_id}/sessions", {**session, "arrival_soc_frac": 0.4}, headers
    )
    assert changed[0] == 409
    assert changed[1]["detail"][0]["field"] == "header.Idempotency-Key"
    # The same key on another event of the site is another request too.
    values = {"measured_at_utc": utc_in(0), "soc_frac": 0.5}
    reused = call("POST", f"{url}/v1/sites/{site_id}/sessions/{a}/meter_values", values, headers)
    assert reused[0] == 409
    # A new key for a session already started: 409 naming the session id.
    restarted = start(url, site_id, session)
    assert (restarted[0], restarted[1]["detail"][0]["field"]) == (409, "session_id")
    state = call("GET", f"{url}/v1/sites/{site_id}")[1]
    assert state["site_version"] == 2
    assert state["sessions"][0]["soc_frac"] == 0.3
    log = call("GET", f"{url}/v1/sites/{site_id}/decisions")[1]["items"]
    assert [entry["event"] for entry in log] == ["session_start", "site"]
    # A PUT with a key is idempotent the same way.
    body, put_key = site_config(site_id), key()
    assert call("PUT", f"{url}/v1/sites/{site_id}", body, put_key)[0] == 200
    assert call("PUT", f"{url}/v1/sites/{site_id}", body, put_key)[2].get("idempotent-replayed") == "true"
    assert call("GET", f"{url}/v1/sites/{site_id}")[1]["site_version"] == 3


def test_concurrent_events_on_one_site_are_serialised(url: str) -> None:
    site_id = new_id("site")
    put_site(url, site_id, n_ac_evses=12)
    sessions = [session_start(new_id(f"C{k}"), "AC1", k + 1) for k in range(12)]
    shared_key = key()  # sent twice at once: applied once
    requests = [(s, key()) for s in sessions] + [(sessions[0], shared_key), (sessions[0], shared_key)]
    requests[0] = (sessions[0], shared_key)
    with ThreadPoolExecutor(max_workers=8) as pool:
        answers = list(
            pool.map(lambda r: call("POST", f"{url}/v1/sites/{site_id}/sessions", r[0], r[1]), requests)
        )
    statuses = [a[0] for a in answers]
    assert statuses.count(200) == 14, [a[1] for a in answers if a[0] != 200]
    replays = [a for a in answers if a[2].get("idempotent-replayed") == "true"]
    assert len(replays) == 2
    versions = sorted({a[1]["site_version"] for a in answers})
    assert versions == list(range(2, 14))  # one version per applied event, none lost or doubled
    for answer in answers:  # each answer plans the sessions started up to it, no more, no less
        assert len(answer[1]["profiles"]) == answer[1]["site_version"] - 1
    readings = [
        (s["session_id"], {"measured_at_utc": utc_in(0), "soc_frac": 0.3 + 0.01 * k}, key())
        for k, s in enumerate(sessions)
    ]
    with ThreadPoolExecutor(max_workers=8) as pool:
        metered = list(
            pool.map(
                lambda r: call("POST", f"{url}/v1/sites/{site_id}/sessions/{r[0]}/meter_values", r[1], r[2]),
                readings,
            )
        )
    assert [m[0] for m in metered] == [200] * 12
    state = call("GET", f"{url}/v1/sites/{site_id}")[1]
    assert state["site_version"] == 25
    assert {s["session_id"]: s["soc_frac"] for s in state["sessions"]} == pytest.approx(
        {s["session_id"]: 0.3 + 0.01 * k for k, s in enumerate(sessions)}
    )
    log = call("GET", f"{url}/v1/sites/{site_id}/decisions?limit=100")[1]["items"]
    assert len(log) == 25
    assert sorted(e["site_version"] for e in log) == list(range(1, 26))


def test_capacity_signals_in_both_shapes_become_the_import_limit(url: str) -> None:
    site_id, a, b = new_id("site"), new_id("A"), new_id("B")
    put_site(url, site_id, **{"time_grid": {"step_min": 15, "n_steps": 8}})
    assert start(url, site_id, session_start(a, "DC1", 1, energy_wanted_kwh=40.0))[0] == 200
    assert start(url, site_id, session_start(b, "AC1", 1))[0] == 200
    oscp = {
        "group_id": "feeder-7",
        "type": "CONSUMPTION",
        "forecasted_blocks": [
            {
                "capacity": 12000,
                "phase": "ALL",
                "unit": "W",
                "start_time": utc_in(-60),
                "end_time": utc_in(240),
            }
        ],
    }
    status, answer, _ = call("POST", f"{url}/v1/sites/{site_id}/capacity", oscp, key())
    assert status == 200, answer
    assert answer["kpis"]["peak_import_kw"] <= 12.0 + 1e-6
    decision = call("GET", f"{url}/v1/sites/{site_id}/decisions?limit=1")[1]["items"][0]
    assert decision["scenario"]["series"]["import_limit_kw"] == [12.0] * 8
    openadr = {
        "programID": "dso-flex",
        "eventName": "evening peak",
        "intervalPeriod": {"start": decision["scenario"]["time_grid"]["start_utc"], "duration": "PT30M"},
        "payloadDescriptors": [{"payloadType": "IMPORT_CAPACITY_LIMIT", "units": "KW"}],
        "intervals": [
            {"id": 0, "payloads": [{"type": "IMPORT_CAPACITY_LIMIT", "values": [20.0]}]},
            {"id": 1, "payloads": [{"type": "IMPORT_CAPACITY_LIMIT", "values": [6.0]}]},
        ],
    }
    status, answer, _ = call("POST", f"{url}/v1/sites/{site_id}/capacity", openadr, key())
    assert status == 200, answer
    later = call("GET", f"{url}/v1/sites/{site_id}/decisions?limit=1")[1]["items"][0]
    # The later OpenADR event wins over its hour; the OSCP block holds after it (a period that
    # began between the two requests shifts the grid by one step).
    shift = int(
        (
            dt.datetime.fromisoformat(later["scenario"]["time_grid"]["start_utc"])
            - dt.datetime.fromisoformat(decision["scenario"]["time_grid"]["start_utc"])
        ).total_seconds()
        // 900
    )
    expected = ([20.0, 20.0, 6.0, 6.0] + [12.0] * 8)[shift : shift + 8]
    assert later["scenario"]["series"]["import_limit_kw"] == expected
    blocks = call("GET", f"{url}/v1/sites/{site_id}")[1]["capacity_blocks"]
    assert [(b["source"], b["limit_kw"]) for b in blocks] == [
        ("oscp", 12.0),
        ("openadr", 20.0),
        ("openadr", 6.0),
    ]


def test_limit_series_takes_the_latest_signal_and_the_lowest_of_its_blocks() -> None:
    start = dt.datetime(2024, 5, 1, tzinfo=dt.UTC)
    grid = TimeGridSpec(start_utc=start, step_min=60, n_steps=4)
    hours = [start + dt.timedelta(hours=h) for h in range(5)]
    blocks = [
        (CapacityBlock("import", hours[0], hours[4], 30.0), 1),
        (CapacityBlock("import", hours[1], hours[3], 20.0), 2),
        (CapacityBlock("import", hours[2], hours[3], 25.0), 2),
        (CapacityBlock("export", hours[0], hours[1], 5.0), 3),
    ]
    assert limit_series(blocks, "import", grid, 40.0) == [30.0, 20.0, 20.0, 30.0]
    assert limit_series(blocks, "export", grid, 40.0) == [5.0, 40.0, 40.0, 40.0]
    assert limit_series(blocks[:1], "export", grid, 40.0) is None


def test_decisions_are_paged_and_replay_through_v1_profiles(url: str) -> None:
    site_id, a = new_id("site"), new_id("A")
    put_site(url, site_id, profile_format="ocpp21")
    start(url, site_id, session_start(a))
    for soc in (0.35, 0.4, 0.45):
        values = {"measured_at_utc": utc_in(0), "soc_frac": soc}
        assert call("POST", f"{url}/v1/sites/{site_id}/sessions/{a}/meter_values", values, key())[0] == 200
    first = call("GET", f"{url}/v1/sites/{site_id}/decisions?limit=2")[1]
    second = call("GET", f"{url}/v1/sites/{site_id}/decisions?limit=2&before_id={first['next_before_id']}")[1]
    third = call("GET", f"{url}/v1/sites/{site_id}/decisions?limit=2&before_id={second['next_before_id']}")[1]
    events = [e["event"] for page in (first, second, third) for e in page["items"]]
    assert events == ["meter_values", "meter_values", "meter_values", "session_start", "site"]
    assert third["next_before_id"] is None
    entry = first["items"][0]
    assert entry["model"]["onnx_sha256"] == entry["answer"]["model_onnx_sha256"]
    assert entry["request"] == {"measured_at_utc": entry["request"]["measured_at_utc"], "soc_frac": 0.45,
                                "energy_delivered_kwh": None}  # fmt: skip
    replay = {"scenario": entry["scenario"], "format": entry["format"], "rate_unit": entry["rate_unit"]}
    status, replayed, _ = call("POST", f"{url}/v1/profiles", replay)
    assert status == 200, replayed
    assert replayed["profiles"] == entry["answer"]["profiles"]
    assert replayed["kpis"] == entry["answer"]["kpis"]


def test_a_site_change_is_checked_against_its_active_sessions(url: str) -> None:
    site_id, a = new_id("site"), new_id("A")
    put_site(url, site_id)
    start(url, site_id, session_start(a, "AC1", 2))
    smaller = site_config(site_id)
    smaller["site"]["chargers"][1]["connectors"] = [{"evse_id": 1}]
    status, body, _ = call("PUT", f"{url}/v1/sites/{site_id}", smaller)
    assert status == 422
    assert body["detail"][0]["field"] == f"sessions[{a}].evse_id"
    json_site = site_config(site_id, profile_format="json")
    status, body, _ = call("PUT", f"{url}/v1/sites/{site_id}", json_site)
    assert (status, body["format"]) == (200, "json")
    occupied = session_start(new_id("B"), "AC1", 2)
    status, body, _ = call("POST", f"{url}/v1/sites/{site_id}/sessions", occupied, key())
    assert (status, body["detail"][0]["field"]) == (409, "evse_id")
    assert a in body["detail"][0]["expected"]


def _error(
    url: str, method: str, path: str, body: Any = None, raw: bytes | None = None, with_key: bool = True
) -> tuple[int, list[dict[str, Any]]]:
    status, answer, _ = call(method, f"{url}{path}", body, key() if with_key else None, raw=raw)
    assert 400 <= status < 500, (status, answer)
    assert isinstance(answer, dict), answer
    detail = answer["detail"]
    assert all({"field", "value", "expected"} <= set(d) for d in detail), detail
    return status, detail


def test_no_bad_input_gets_a_5xx(url: str) -> None:
    site_id, a = new_id("site"), new_id("A")
    put_site(url, site_id)
    assert start(url, site_id, session_start(a))[0] == 200
    sessions = f"/v1/sites/{site_id}/sessions"
    capacity, far = f"/v1/sites/{site_id}/capacity", "9999-12-31T23:00:00Z"
    limit_event = {
        "programID": "p",
        "intervals": [{"id": 0, "payloads": [{"type": "IMPORT_CAPACITY_LIMIT", "values": [5]}]}],
    }
    cases: list[tuple[str, str, Any, int, str]] = [
        ("PUT", "/v1/sites/bad%20id!", site_config("x"), 422, "path.site_id"),
        ("GET", "/v1/sites/nowhere-1", None, 404, "path.site_id"),
        ("POST", "/v1/sites/nowhere-1/sessions", session_start("Z"), 404, "path.site_id"),
        ("POST", f"{sessions}/nobody/meter_values", {"measured_at_utc": utc_in(0), "soc_frac": 0.5}, 404,
         "path.session_id"),
        ("POST", sessions, session_start("bad id"), 422, "session_id"),
        ("POST", sessions, {**session_start(new_id("N")), "departure_utc": "2030-01-01T10:00:00"}, 422,
         "departure_utc"),
        ("POST", sessions, session_start(new_id("S"), arrival_soc_frac=1.2), 422, "arrival_soc_frac"),
        ("POST", sessions, session_start(new_id("S"), arrival_soc_frac=-0.1), 422, "arrival_soc_frac"),
        ("POST", sessions, session_start(new_id("D"), "DC1", departure_utc=utc_in(-30)), 422,
         "departure_utc"),
        ("POST", sessions, session_start(new_id("E"), "DC1", target_soc_frac=0.9), 422, "energy_wanted_kwh"),
        ("POST", sessions, session_start(new_id("T"), "NOPE"), 422, "station_id"),
        ("POST", sessions, session_start(new_id("U"), "DC1", unknown=1), 422, "unknown"),
        ("POST", f"{sessions}/{a}/meter_values", {"measured_at_utc": utc_in(0)}, 422, "soc_frac"),
        ("POST", f"{sessions}/{a}/meter_values", {"measured_at_utc": utc_in(60), "soc_frac": 0.5}, 422,
         "measured_at_utc"),
        ("POST", f"{sessions}/{a}/meter_values", {"measured_at_utc": utc_in(-600), "soc_frac": 0.5}, 422,
         "measured_at_utc"),
        ("POST", capacity, {"group_id": "g"}, 422, "body"),
        ("POST", capacity, {"group_id": "g", "type": "CONSUMPTION", "forecasted_blocks": [
            {"capacity": 5, "phase": "ONE", "unit": "A", "start_time": utc_in(0), "end_time": utc_in(-5)}]},
         422, "oscp.forecasted_blocks[0].phase"),
        ("POST", capacity, {"programID": "p", "intervals": [
            {"id": 0, "intervalPeriod": {"start": utc_in(0), "duration": "PT1H"},
             "payloads": [{"type": "PRICE", "values": [0.3]}]}]}, 422,
         "openadr.intervals[0].payloads[0].type"),
        ("POST", capacity, {"programID": "p", "intervals": [
            {"id": 0, "payloads": [{"type": "IMPORT_CAPACITY_LIMIT", "values": [3]}]}]}, 422,
         "openadr.intervals[0].intervalPeriod"),
        ("GET", f"/v1/sites/{site_id}/profiles?format=ocpp99", None, 422, "query.format"),
        ("GET", f"/v1/sites/{site_id}/decisions?limit=1000", None, 422, "query.limit"),
        ("GET", f"/v1/sites/{site_id}/decisions?before_id={10**20}", None, 422, "query.before_id"),
        ("POST", sessions, session_start(new_id("Y"), "DC1", arrival_utc="0001-01-01T00:00:00Z"), 422,
         "arrival_utc"),
        ("POST", sessions, session_start(new_id("Y"), "DC1", departure_utc="9999-12-31T23:59:59Z"), 422,
         "departure_utc"),
        ("POST", capacity, {**limit_event, "intervalPeriod": {"start": far, "duration": "P9D"}},
         422, "openadr.intervals[0].intervalPeriod.start"),
        ("POST", capacity, {**limit_event, "intervalPeriod": {"start": utc_in(0), "duration": "P99999999D"}},
         422, "openadr.intervals[0].intervalPeriod.duration"),
    ]  # fmt: skip
    for method, path, body, expected_status, field in cases:
        status, detail = _error(url, method, path, body)
        assert (status, detail[0]["field"]) == (expected_status, field), (path, body, detail)
    nan = json.dumps(session_start(new_id("N"))).replace('"arrival_soc_frac": 0.3', '"arrival_soc_frac": NaN')
    status, detail = _error(url, "POST", sessions, raw=nan.encode())
    assert (status, detail[0]["field"]) == (422, "arrival_soc_frac")
    assert detail[0]["input"] == "nan"
    late = tiny_data()
    late["time_grid"]["start_utc"] = far
    status, detail = _error(url, "POST", "/v1/profiles", {"scenario": late, "format": "json"}, with_key=False)
    assert status == 422
    status, detail = _error(url, "POST", sessions, raw=b"{not json")
    assert status == 422
    status, detail = _error(url, "POST", sessions, session_start(new_id("K")), with_key=False)
    assert (status, detail[0]["field"]) == (422, "header.Idempotency-Key")
    status, detail = _error(url, "POST", sessions, raw=b"[" * 50_000 + b"]" * 50_000)
    assert status in (400, 422)
    big = session_start(new_id("B"), transaction_id="1", station_id="X" * N_BODY_BYTES_MAX)
    status, detail = _error(url, "POST", sessions, big)
    assert (status, detail[0]["field"]) == (413, "body")
    ended = call("POST", f"{url}{sessions}/{a}/end", {"ended_at_utc": utc_in(0)}, key())
    assert ended[0] == 200
    status, detail = _error(
        url, "POST", f"{sessions}/{a}/meter_values", {"measured_at_utc": utc_in(0), "soc_frac": 1}
    )
    assert (status, detail[0]["field"]) == (409, "path.session_id")
    status, detail = _error(url, "POST", f"{sessions}/{a}/end", {})
    assert status == 409


def test_sessions_per_site_are_bounded(url: str) -> None:
    site_id = new_id("site")
    put_site(url, site_id, n_ac_evses=N_ACTIVE_MAX + 1, format="json")
    for k in range(N_ACTIVE_MAX):
        assert start(url, site_id, session_start(new_id("P"), "AC1", k + 1))[0] == 200
    status, body = start(url, site_id, session_start(new_id("P"), "AC1", N_ACTIVE_MAX + 1))
    assert status == 409
    assert body["detail"][0]["field"] == "path.site_id"


def test_site_configuration_problems_name_their_fields(url: str) -> None:
    site_id = new_id("site")
    body = site_config("other")
    status, answer, _ = call("PUT", f"{url}/v1/sites/{site_id}", body)
    assert (status, answer["detail"][0]["field"]) == (422, "site.site_id")
    body = site_config(site_id, time_grid={"step_min": 7, "n_steps": 4})
    status, answer, _ = call("PUT", f"{url}/v1/sites/{site_id}", body)
    assert (status, answer["detail"][0]["field"]) == (422, "time_grid.step_min")
    body = site_config(site_id)
    del body["site"]["chargers"][1]["max_current_a"]
    body["series"] = {}
    status, answer, _ = call("PUT", f"{url}/v1/sites/{site_id}", body)
    assert status == 422
    assert {d["field"] for d in answer["detail"]} == {
        "site.chargers[1].max_current_a",
        "series.import_price_eur_per_kwh",
    }
    body = site_config(site_id, time_grid={"step_min": 15, "n_steps": 10_000})
    status, answer, _ = call("PUT", f"{url}/v1/sites/{site_id}", body)
    assert (status, answer["detail"][0]["field"]) == (422, "time_grid.n_steps")
    assert call("GET", f"{url}/v1/sites/{site_id}")[0] == 404  # nothing was stored


def test_openapi_documents_the_registry(url: str) -> None:
    assert call("GET", f"{url}/readyz")[:2] == (200, {"status": "ready"})
    status, spec, _ = call("GET", f"{url}/openapi.json")
    assert status == 200
    paths = spec["paths"]
    for path, method in [
        ("/v1/sites/{site_id}", "put"),
        ("/v1/sites/{site_id}", "get"),
        ("/v1/sites/{site_id}/sessions", "post"),
        ("/v1/sites/{site_id}/sessions/{session_id}/meter_values", "post"),
        ("/v1/sites/{site_id}/sessions/{session_id}/end", "post"),
        ("/v1/sites/{site_id}/capacity", "post"),
        ("/v1/sites/{site_id}/profiles", "get"),
        ("/v1/sites/{site_id}/decisions", "get"),
    ]:
        operation = paths[path][method]
        assert operation["description"], path
        assert {"401", "403", "404", "422"} <= set(operation["responses"]), path
    headers = [p["name"] for p in paths["/v1/sites/{site_id}/sessions"]["post"]["parameters"]]
    assert "Idempotency-Key" in headers
    assert "HTTPBearer" in spec["components"]["securitySchemes"]


def test_migrations_build_the_models_schema(database_url: str) -> None:
    engine = create_registry_engine(database_url)
    try:
        upgrade_schema(engine)  # a second upgrade is a no-op
        with engine.connect() as connection:
            assert compare_metadata(MigrationContext.configure(connection), Base.metadata) == []
    finally:
        engine.dispose()


def test_memory_databases_and_unreachable_ones_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="a SQLite file"):
        create_registry_engine("sqlite://")
    engine = create_registry_engine(f"sqlite:///{tmp_path / 'no' / 'such' / 'folder.db'}")
    with pytest.raises(ValueError, match="database_url: cannot open"):
        upgrade_schema(engine)


@pytest.mark.parametrize(
    "cls",
    [
        SiteConfig,
        SiteSeries,
        MeterValues,
        SessionEnd,
        EventAnswer,
        SessionState,
        CapacityBlockState,
        SiteState,
        DecisionEntry,
        CapacityBlock,
        Settings,
    ],
)
def test_serve_names_carry_units(cls: type) -> None:
    problems = [p for p in name_problems(cls) if not p.startswith(f"{cls.__name__}.kpis:")]
    assert problems == []
