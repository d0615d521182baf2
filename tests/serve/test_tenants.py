"""Tenants and API keys over real HTTP: a key sees and changes only its tenants' sites and sessions."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from smac_rl.core.scenario_io import load_builtin_scenario
from smac_rl_serve.auth import KeyRing, configured_keys, hash_api_key, load_api_keys, mint_api_key
from smac_rl_serve.settings import PUBLIC_TENANT_ID, Settings
from tests.serve.support import call, serving, session_start, site_config, utc_in

KEY_A, HASH_A = mint_api_key()
KEY_B, HASH_B = mint_api_key()
KEY_INCAR, HASH_INCAR = mint_api_key()
OSCP = {
    "group_id": "g",
    "type": "CONSUMPTION",
    "forecasted_blocks": [
        {
            "capacity": 9,
            "unit": "KW",
            "start_time": utc_in(0),
            "end_time": utc_in(60),
        }
    ],
}


@pytest.fixture(scope="module")
def key_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("keys") / "keys.yaml"
    path.write_text(f"{HASH_A}: [cpo-a]\n{HASH_B}: [cpo-b]\n{HASH_INCAR}: [cpo-a, cpo-b]\n", encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def url(tmp_path_factory: pytest.TempPathFactory, key_file: Path) -> Iterator[str]:
    database = tmp_path_factory.mktemp("tenants") / "registry.db"
    with serving(Settings(database_url=f"sqlite:///{database}", api_keys_file=key_file)) as base:
        yield base


def auth(key: str, idempotency: bool = True) -> dict[str, str]:
    headers = {"Authorization": f"Bearer {key}"}
    if idempotency:
        headers["Idempotency-Key"] = str(uuid.uuid4())
    return headers


def new_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def put(url: str, site_id: str, key: str, **extra: Any) -> tuple[int, Any]:
    status, body, _ = call("PUT", f"{url}/v1/sites/{site_id}", site_config(site_id, **extra), auth(key))
    return status, body


def test_minted_keys_are_long_random_and_stored_as_sha256() -> None:
    key, digest = mint_api_key()
    assert key.startswith("smac_")
    assert len(key) >= 40
    assert digest == hash_api_key(key)
    assert len(digest) == 64
    assert mint_api_key()[0] != key


def test_key_files_in_json_and_yaml(tmp_path: Path, key_file: Path) -> None:
    assert load_api_keys(key_file)[HASH_INCAR] == ("cpo-a", "cpo-b")
    as_json = tmp_path / "keys.json"
    as_json.write_text(json.dumps({HASH_A: ["cpo-a"]}), encoding="utf-8")
    settings = Settings(api_keys={HASH_A: ("cpo-c",)}, api_keys_file=as_json)
    assert configured_keys(settings) == {HASH_A: ("cpo-c", "cpo-a")}
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"not-a-hash": ["cpo-a"]}), encoding="utf-8")
    with pytest.raises(ValueError, match="not a SHA-256 hex digest"):
        load_api_keys(bad)
    bad.write_text(json.dumps({HASH_A: []}), encoding="utf-8")
    with pytest.raises(ValueError, match="non-empty list of tenant ids"):
        load_api_keys(bad)
    with pytest.raises(ValueError, match="cannot read"):
        load_api_keys(tmp_path / "missing.yaml")
    assert KeyRing({}).caller(None) is not None
    assert KeyRing({}).require("anything").tenant_ids == {PUBLIC_TENANT_ID}


def test_no_key_or_an_unknown_key_is_a_401(url: str) -> None:
    site_id = new_id("site")
    for headers in ({}, {"Authorization": "Bearer smac_unknown"}, {"Authorization": f"Basic {KEY_A}"}):
        status, body, answer_headers = call("PUT", f"{url}/v1/sites/{site_id}", site_config(site_id), headers)
        assert status == 401, body
        assert body["detail"][0]["field"] == "header.Authorization"
        assert answer_headers["www-authenticate"] == "Bearer"
    status, _, _ = call("GET", f"{url}/v1/sites/{site_id}/decisions")
    assert status == 401
    scenario = load_builtin_scenario("demo_workplace").model_dump(mode="json")
    status, _, _ = call("POST", f"{url}/v1/profiles", {"scenario": scenario, "format": "json"})
    assert status == 401  # keys configured: /v1/profiles needs one too
    status, body, _ = call(
        "POST", f"{url}/v1/profiles", {"scenario": scenario, "format": "json"}, auth(KEY_B, idempotency=False)
    )
    assert status == 200, body
    assert call("GET", f"{url}/healthz")[0] == 200


def test_a_key_sees_and_changes_only_its_tenants_sites(url: str) -> None:
    site_a, site_b = new_id("site-a"), new_id("site-b")
    status, body = put(url, site_a, KEY_A)
    assert status == 200, body
    assert put(url, site_b, KEY_B)[0] == 200
    state = call("GET", f"{url}/v1/sites/{site_a}", None, auth(KEY_A))[1]
    assert state["tenant_id"] == "cpo-a"
    # B cannot read, change, take over or add sessions to A's site.
    for method, path, body in [
        ("GET", f"/v1/sites/{site_a}", None),
        ("GET", f"/v1/sites/{site_a}/profiles", None),
        ("GET", f"/v1/sites/{site_a}/decisions", None),
        ("PUT", f"/v1/sites/{site_a}", site_config(site_a)),
        ("POST", f"/v1/sites/{site_a}/sessions", session_start(new_id("S"))),
        ("POST", f"/v1/sites/{site_a}/capacity", OSCP),
    ]:
        status, answer, _ = call(method, f"{url}{path}", body, auth(KEY_B))
        assert (status, answer["detail"][0]["field"]) == (403, "path.site_id"), path
    assert call("GET", f"{url}/v1/sites/{site_a}", None, auth(KEY_A))[1]["site_version"] == 1
    # A tenant id the key does not act for.
    status, answer = put(url, new_id("site"), KEY_A, tenant_id="cpo-b")
    assert (status, answer["detail"][0]["field"]) == (403, "tenant_id")


def test_another_tenants_session_id_is_a_403_even_under_ones_own_site(url: str) -> None:
    site_a, site_b, session_b = new_id("site-a"), new_id("site-b"), new_id("SB")
    put(url, site_a, KEY_A)
    put(url, site_b, KEY_B)
    status, _, _ = call("POST", f"{url}/v1/sites/{site_b}/sessions", session_start(session_b), auth(KEY_B))
    assert status == 200
    values = {"measured_at_utc": session_start("x")["arrival_utc"], "soc_frac": 0.4}
    for method, path, body in [
        ("GET", f"/v1/sites/{site_a}/sessions/{session_b}", None),
        ("POST", f"/v1/sites/{site_a}/sessions/{session_b}/meter_values", values),
        ("POST", f"/v1/sites/{site_a}/sessions/{session_b}/end", None),
        ("POST", f"/v1/sites/{site_a}/sessions", session_start(session_b, evse_id=2)),
    ]:
        status, answer, _ = call(method, f"{url}{path}", body, auth(KEY_A))
        assert status == 403, (path, answer)
        assert answer["detail"][0]["field"] in ("path.session_id", "session_id")
    # B's session is untouched.
    state = call("GET", f"{url}/v1/sites/{site_b}/sessions/{session_b}", None, auth(KEY_B))[1]
    assert (state["is_active"], state["soc_frac"]) == (True, 0.3)
    # A session of one's own other site is a 404 here, not a 403.
    site_a2, session_a = new_id("site-a2"), new_id("SA")
    put(url, site_a2, KEY_A)
    call("POST", f"{url}/v1/sites/{site_a2}/sessions", session_start(session_a), auth(KEY_A))
    status, answer, _ = call("GET", f"{url}/v1/sites/{site_a}/sessions/{session_a}", None, auth(KEY_A))
    assert status == 404
    assert site_a2 in answer["detail"][0]["expected"]


def test_a_key_for_several_tenants_names_the_owner_of_a_new_site(url: str) -> None:
    site_id = new_id("site")
    status, answer = put(url, site_id, KEY_INCAR)
    assert (status, answer["detail"][0]["field"]) == (422, "tenant_id")
    assert "cpo-a" in answer["detail"][0]["expected"]
    assert put(url, site_id, KEY_INCAR, tenant_id="cpo-b")[0] == 200
    assert call("GET", f"{url}/v1/sites/{site_id}", None, auth(KEY_B))[1]["tenant_id"] == "cpo-b"
    assert call("GET", f"{url}/v1/sites/{site_id}", None, auth(KEY_A))[0] == 403
    # INCAR acts for both: it updates the site without naming the owner, and cannot move it.
    assert put(url, site_id, KEY_INCAR)[0] == 200
    status, answer = put(url, site_id, KEY_INCAR, tenant_id="cpo-a")
    assert (status, answer["detail"][0]["field"]) == (422, "tenant_id")
    status, _, _ = call(
        "POST", f"{url}/v1/sites/{site_id}/sessions", session_start(new_id("S")), auth(KEY_INCAR)
    )
    assert status == 200


def test_anonymous_profiles_when_the_settings_allow_them(tmp_path: Path, key_file: Path) -> None:
    settings = Settings(
        database_url=f"sqlite:///{tmp_path / 'registry.db'}",
        api_keys_file=key_file,
        allow_anonymous_profiles=True,
    )
    scenario = load_builtin_scenario("demo_workplace").model_dump(mode="json")
    with serving(settings) as base:
        assert call("POST", f"{base}/v1/profiles", {"scenario": scenario, "format": "json"})[0] == 200
        site_id = new_id("site")
        assert (
            call("PUT", f"{base}/v1/sites/{site_id}", site_config(site_id))[0] == 401
        )  # the registry never is
