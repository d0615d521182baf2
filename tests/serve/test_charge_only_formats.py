"""OCPP 1.6 and 2.0.1 cannot express discharge: V2G sessions are planned charge-only, and the answer says so.

The demo workplace has one V2G session, W11 (``allow_v2g`` at the bidirectional DC-01). In
``ocpp16`` and ``ocpp201`` the rollout runs with V2G off (the existing tests of
``test_service.py`` ask the demo in ``ocpp201`` and expect a 200 with every limit >= 0), so W11
gets a charging-only plan: the same plan as with its ``allow_v2g`` false. Before, nothing in the
answer told the caller; now ``v2g_withheld_session_ids`` lists it and
``smac_v2g_withheld_sessions_total{format}`` counts it. OCPI 2.2 keeps its 422 (``test_formats.py``).
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from smac_rl.core.profiles import ProfileFormat
from smac_rl.core.scenario_io import load_builtin_scenario
from smac_rl_serve.planning import v2g_withheld_session_ids
from tests.serve.support import call, post, session_start, site_config


def _withheld_count(base_url: str, profile_format: str) -> float:
    status, text, _ = call("GET", f"{base_url}/metrics")
    assert status == 200
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "smac_v2g_withheld_sessions_total" and sample.labels == {
                "format": profile_format
            }:
                return float(sample.value)
    return 0.0


def test_the_v2g_sessions_a_charge_only_format_withholds() -> None:
    demo = load_builtin_scenario("demo_workplace")
    assert v2g_withheld_session_ids(demo, "ocpp16") == ["W11"]
    assert v2g_withheld_session_ids(demo, "ocpp201") == ["W11"]
    others: tuple[ProfileFormat, ...] = ("ocpp21", "json", "ocpi22")  # V2G carried, or a 422 (OCPI)
    for profile_format in others:
        assert v2g_withheld_session_ids(demo, profile_format) == []
    # W01 at the unidirectional AC-01 with allow_v2g cannot discharge there: nothing is withheld.
    sessions = list(demo.sessions)
    sessions[0] = sessions[0].model_copy(update={"allow_v2g": True})
    sessions[10] = sessions[10].model_copy(update={"allow_v2g": False})
    assert v2g_withheld_session_ids(demo.model_copy(update={"sessions": sessions}), "ocpp201") == []


def test_http_ocpp201_plans_w11_as_if_it_had_no_v2g_and_says_so(base_url: str) -> None:
    demo = load_builtin_scenario("demo_workplace").model_dump(mode="json")
    before = _withheld_count(base_url, "ocpp201")
    status, text = post(f"{base_url}/v1/profiles", {"scenario": demo, "format": "ocpp201"})
    assert status == 200, text
    charge_only = json.loads(text)
    assert charge_only["v2g_withheld_session_ids"] == ["W11"]
    assert charge_only["kpis"]["v2g_discharged_kwh"] == 0.0
    assert _withheld_count(base_url, "ocpp201") == before + 1
    # The same rollout as the demo with W11's V2G off, asked in ocpp21 (which withholds nothing).
    demo["sessions"][10]["allow_v2g"] = False
    status, text = post(f"{base_url}/v1/profiles", {"scenario": demo, "format": "ocpp21"})
    assert status == 200, text
    without_v2g = json.loads(text)
    assert without_v2g["v2g_withheld_session_ids"] == []
    assert without_v2g["kpis"] == charge_only["kpis"]
    # In ocpp21 W11 keeps its V2G: nothing withheld.
    demo["sessions"][10]["allow_v2g"] = True
    status, text = post(f"{base_url}/v1/profiles", {"scenario": demo, "format": "ocpp21"})
    assert status == 200, text
    assert json.loads(text)["v2g_withheld_session_ids"] == []


def _bidirectional_site(site_id: str, profile_format: str) -> dict[str, Any]:
    config = site_config(site_id, profile_format)
    config["site"]["chargers"][0]["is_bidirectional"] = True  # DC1
    return config


def test_registry_answers_list_the_withheld_v2g_sessions(base_url: str) -> None:
    site_id = f"v2g-{uuid.uuid4().hex[:10]}"
    status, body, _ = call("PUT", f"{base_url}/v1/sites/{site_id}", _bidirectional_site(site_id, "ocpp201"))
    assert status == 200, body
    assert body["v2g_withheld_session_ids"] == []
    session_id = f"ev-{uuid.uuid4().hex[:10]}"
    start = session_start(session_id, "DC1", allow_v2g=True, v2g_min_soc_frac=0.2)
    status, body, _ = call(
        "POST", f"{base_url}/v1/sites/{site_id}/sessions", start, {"Idempotency-Key": str(uuid.uuid4())}
    )
    assert status == 200, body
    assert body["v2g_withheld_session_ids"] == [session_id]
    status, body, _ = call("GET", f"{base_url}/v1/sites/{site_id}/profiles?format=ocpp21")
    assert status == 200, body
    assert body["v2g_withheld_session_ids"] == []
