"""Operations: Prometheus metrics, request ids, JSON request logs, start checks and model aliases."""

from __future__ import annotations

import io
import json
import logging
import re
import shutil
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families
from typer.testing import CliRunner

from smac_rl.cli.main import app as cli
from smac_rl.core.scenario_io import load_builtin_scenario
from smac_rl_serve.app import create_app
from smac_rl_serve.catalog import resolve_model_dir
from smac_rl_serve.model import ModelError, OnnxPolicy
from smac_rl_serve.observability import ServiceMetrics, configure_logging
from smac_rl_serve.planning import Planner
from smac_rl_serve.settings import DEFAULT_MODEL_DIR, Settings
from tests.core.tiny import tiny_data
from tests.serve.support import call, serving, session_start, site_config, with_idle_chargers

runner = CliRunner()


def sample(base_url: str, name: str, **labels: str) -> float:
    """The value of one sample of ``/metrics`` (0 when absent)."""
    status, text, headers = call("GET", f"{base_url}/metrics")
    assert status == 200
    assert headers["content-type"].startswith("text/plain")
    for family in text_string_to_metric_families(text):
        for entry in family.samples:
            if entry.name == name and all(entry.labels.get(k) == v for k, v in labels.items()):
                return float(entry.value)
    return 0.0


def eventually(check: Callable[[], bool], timeout_s: float = 5.0) -> bool:
    """Poll ``check`` until true (the server counts and logs a request after answering it)."""
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


@pytest.fixture
def model_copy(tmp_path: Path) -> Path:
    copy = tmp_path / "model"
    shutil.copytree(DEFAULT_MODEL_DIR, copy)
    return copy


def _database(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'registry.db'}"


# Metrics -------------------------------------------------------------------------------------------


def test_request_counts_and_latency_by_route_template(base_url: str) -> None:
    count = "smac_http_requests_total"
    health = {"method": "GET", "route": "/healthz", "status": "200"}
    before = sample(base_url, count, **health)
    latency = "smac_http_request_duration_seconds_count"
    before_latency = sample(base_url, latency, method="GET", route="/healthz")
    for _ in range(3):
        assert call("GET", f"{base_url}/healthz")[0] == 200
    assert eventually(lambda: sample(base_url, count, **health) == before + 3)
    assert sample(base_url, latency, method="GET", route="/healthz") == before_latency + 3
    assert sample(base_url, "smac_http_request_duration_seconds_bucket", route="/healthz", le="0.001") >= 0
    # A path parameter is counted under its template; unknown paths share one label.
    site = {"method": "GET", "route": "/v1/sites/{site_id}", "status": "404"}
    before_site = sample(base_url, count, **site)
    assert call("GET", f"{base_url}/v1/sites/no-such-site-{uuid.uuid4().hex[:8]}")[0] == 404
    assert eventually(lambda: sample(base_url, count, **site) == before_site + 1)
    unmatched = {"method": "GET", "route": "unmatched", "status": "404"}
    before_unmatched = sample(base_url, count, **unmatched)
    assert call("GET", f"{base_url}/no/such/{uuid.uuid4().hex}")[0] == 404
    assert eventually(lambda: sample(base_url, count, **unmatched) == before_unmatched + 1)
    assert sample(base_url, "smac_model_info", n_connectors_max="16") == 1.0


def test_a_fallback_is_counted_with_its_reason(base_url: str) -> None:
    reason = {"reason": "too_many_connectors"}
    before = sample(base_url, "smac_llf_fallbacks_total", **reason)
    before_rendered = sample(base_url, "smac_profile_sessions_rendered_total", format="json")
    assert sample(base_url, "smac_llf_fallbacks_total", reason="inference_error") >= 0
    data = with_idle_chargers(tiny_data())
    status, body, _ = call("POST", f"{base_url}/v1/profiles", {"scenario": data, "format": "json"})
    assert status == 200, body
    assert body["policy"] == "least_laxity_first"
    assert "19 connectors" in body["fallback_reason"]
    assert sample(base_url, "smac_llf_fallbacks_total", **reason) == before + 1
    assert sample(base_url, "smac_profile_sessions_rendered_total", format="json") == before_rendered + len(
        body["profiles"]
    )


def test_events_and_idempotent_replays_are_counted(base_url: str) -> None:
    site_id = f"ops-{uuid.uuid4().hex[:8]}"
    before_events = sample(base_url, "smac_registry_events_total", kind="session_start")
    before_replays = sample(base_url, "smac_idempotent_replays_total", kind="session_start")
    assert call("PUT", f"{base_url}/v1/sites/{site_id}", site_config(site_id, "json"))[0] == 200
    session = session_start(f"S-{uuid.uuid4().hex[:8]}")
    key = {"Idempotency-Key": uuid.uuid4().hex}
    first = call("POST", f"{base_url}/v1/sites/{site_id}/sessions", session, headers=key)
    second = call("POST", f"{base_url}/v1/sites/{site_id}/sessions", session, headers=key)
    assert (first[0], second[0]) == (200, 200)
    assert second[2]["idempotent-replayed"] == "true"
    assert sample(base_url, "smac_registry_events_total", kind="session_start") == before_events + 2
    assert sample(base_url, "smac_idempotent_replays_total", kind="session_start") == before_replays + 1
    assert sample(base_url, "smac_registry_events_total", kind="site") >= 1


class _Broken:
    """A stand-in for the ONNX session: raises, or answers NaN."""

    def __init__(self, answer_nan: bool) -> None:
        self.answer_nan = answer_nan

    def run(self, _names: list[str], feed: dict[str, Any]) -> list[Any]:
        if not self.answer_nan:
            raise RuntimeError("graph failed")
        (observation,) = feed.values()
        return [np.full((observation.shape[0], 17), np.nan, dtype=np.float32)]


@pytest.mark.parametrize(("answer_nan", "reason"), [(False, "inference_error"), (True, "non_finite_output")])
def test_a_failing_model_falls_back_to_least_laxity_first(
    monkeypatch: pytest.MonkeyPatch, answer_nan: bool, reason: str
) -> None:
    metrics = ServiceMetrics()
    policy = OnnxPolicy(DEFAULT_MODEL_DIR)
    planner = Planner(policy, metrics)
    spec = load_builtin_scenario("demo_workplace")
    assert planner.answer(spec, "json", "W")["policy"] == "onnx"
    monkeypatch.setattr(policy, "_session", _Broken(answer_nan))
    answer = planner.answer(spec, "json", "W")
    assert answer["policy"] == "least_laxity_first"
    assert f"({reason}:" in answer["fallback_reason"]
    assert metrics.registry.get_sample_value("smac_llf_fallbacks_total", {"reason": reason}) == 1.0
    with pytest.raises(ModelError, match="fails on a zero observation"):
        policy.probe()


# Request ids and logs ------------------------------------------------------------------------------


def test_request_id_is_echoed_generated_or_replaced(base_url: str) -> None:
    _, _, headers = call("GET", f"{base_url}/healthz", headers={"X-Request-ID": "incar-42/abc"})
    assert headers["x-request-id"] == "incar-42/abc"
    _, _, headers = call("GET", f"{base_url}/healthz")
    assert re.fullmatch(r"[0-9a-f]{32}", headers["x-request-id"])
    for bad in ("x" * 129, "two words"):
        _, _, headers = call("GET", f"{base_url}/healthz", headers={"X-Request-ID": bad})
        assert re.fullmatch(r"[0-9a-f]{32}", headers["x-request-id"])
    bad_body = {"X-Request-ID": "bad-body"}
    status, _, headers = call("POST", f"{base_url}/v1/profiles", raw=b"{", headers=bad_body)
    assert (status, headers["x-request-id"]) == (422, "bad-body")


@pytest.fixture
def log_stream() -> Iterator[io.StringIO]:
    """The service's JSON log handler, pointed at a buffer for the test."""
    handler = configure_logging()
    assert isinstance(handler, logging.StreamHandler)
    stream = io.StringIO()
    previous = handler.setStream(stream)
    try:
        yield stream
    finally:
        handler.setStream(previous)


def _log_line(stream: io.StringIO, request_id: str) -> dict[str, Any]:
    found: list[dict[str, Any]] = []

    def seen() -> bool:
        found[:] = [
            entry
            for entry in map(json.loads, stream.getvalue().splitlines())
            if entry.get("request_id") == request_id
        ]
        return bool(found)

    assert eventually(seen), stream.getvalue()
    assert len(found) == 1
    return found[0]


def test_one_json_log_line_per_request(base_url: str, log_stream: io.StringIO) -> None:
    request_id = f"log-{uuid.uuid4().hex}"
    site_id = f"missing-{uuid.uuid4().hex[:8]}"
    assert call("GET", f"{base_url}/v1/sites/{site_id}", headers={"X-Request-ID": request_id})[0] == 404
    entry = _log_line(log_stream, request_id)
    assert entry["message"] == "request"
    assert entry["logger"] == "smac_rl_serve.requests"
    assert entry["method"] == "GET"
    assert entry["route"] == "/v1/sites/{site_id}"
    assert entry["path"] == f"/v1/sites/{site_id}"
    assert entry["status"] == 404
    assert entry["tenant"] == "public"
    assert isinstance(entry["duration_ms"], float)
    assert entry["duration_ms"] > 0
    request_id = f"log-{uuid.uuid4().hex}"
    assert call("GET", f"{base_url}/healthz", headers={"X-Request-ID": request_id})[0] == 200
    entry = _log_line(log_stream, request_id)
    assert (entry["route"], entry["status"]) == ("/healthz", 200)
    assert "tenant" not in entry


# Start checks --------------------------------------------------------------------------------------


def test_a_flipped_byte_in_the_onnx_refuses_to_start(model_copy: Path, tmp_path: Path) -> None:
    onnx = model_copy / "policy.onnx"
    data = bytearray(onnx.read_bytes())
    data[len(data) // 2] ^= 0xFF
    onnx.write_bytes(bytes(data))
    expected = re.escape(f"model: {onnx.resolve()} has sha256 ") + r"[0-9a-f]{64}; metadata\.json expects"
    with pytest.raises(ModelError, match=expected + r".*\(field onnx_sha256\)"):
        create_app(Settings(model_dir=model_copy, database_url=_database(tmp_path)))
    result = runner.invoke(
        cli, ["serve", "--model", str(model_copy), "--database-url", _database(tmp_path)], terminal_width=80
    )
    assert result.exit_code == 1
    assert len(result.output.strip().splitlines()) == 1
    assert "field onnx_sha256" in result.output


def _edit_metadata(model_dir: Path, edit: Callable[[dict[str, Any]], None]) -> Path:
    path = model_dir / "metadata.json"
    metadata = json.loads(path.read_text(encoding="utf-8"))
    edit(metadata)
    path.write_text(json.dumps(metadata), encoding="utf-8")
    return path


def _swap_two_features(metadata: dict[str, Any]) -> None:
    entries = metadata["observation"]
    entries[3], entries[4] = entries[4], entries[3]


def _rename_connector_feature(metadata: dict[str, Any]) -> None:
    metadata["observation"][17]["name"] = "c00.soc_pct"


def _drop_last_entry(metadata: dict[str, Any]) -> None:
    metadata["observation"].pop()


def _drop_storage_action(metadata: dict[str, Any]) -> None:
    metadata["action"].pop()


def _future_schema(metadata: dict[str, Any]) -> None:
    metadata["schema_version"] = 2


def _bad_connector_count(metadata: dict[str, Any]) -> None:
    metadata["n_connectors_max"] = 0


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (
            _swap_two_features,
            "field observation[3].name is 'export_price_eur_per_kwh'; expected 'import_price_eur_per_kwh' "
            "(the layout of smac_rl.core.observation for n_connectors_max=16)",
        ),
        (_rename_connector_feature, "field observation[17].name is 'c00.soc_pct'; expected 'c00.soc_frac'"),
        (_drop_last_entry, "field observation has 143 entries; expected 144"),
        (_drop_storage_action, "field action[16] is '(missing)'; expected 'storage.power_kw'"),
        (_future_schema, "field schema_version is 2; expected 1"),
        (_bad_connector_count, "field n_connectors_max is 0; expected greater than or equal to 1"),
    ],
)
def test_metadata_that_disagrees_refuses_to_start(
    model_copy: Path, tmp_path: Path, edit: Callable[[dict[str, Any]], None], message: str
) -> None:
    path = _edit_metadata(model_copy, edit)
    with pytest.raises(ModelError) as caught:
        create_app(Settings(model_dir=model_copy, database_url=_database(tmp_path)))
    assert str(caught.value).startswith(f"model: {path.resolve()} ")
    assert message in str(caught.value)


def test_readyz_and_model_report_the_loaded_artifacts(base_url: str) -> None:
    assert call("GET", f"{base_url}/readyz")[:2] == (200, {"status": "ready"})
    status, body, _ = call("GET", f"{base_url}/v1/model")
    assert status == 200
    metadata = json.loads((DEFAULT_MODEL_DIR / "metadata.json").read_text(encoding="utf-8"))
    assert body["onnx_sha256"] == metadata["onnx_sha256"]
    assert body["model_dir"] == str(DEFAULT_MODEL_DIR.resolve())
    assert body["onnx_path"] == str(DEFAULT_MODEL_DIR.resolve() / "policy.onnx")


# Aliases -------------------------------------------------------------------------------------------


def test_aliases_choose_a_version_folder(tmp_path: Path) -> None:
    root = tmp_path / "policies"
    for version in ("v1", "v2"):
        shutil.copytree(DEFAULT_MODEL_DIR, root / "fleet" / version)
    (root / "fleet" / "ALIASES.json").write_text(json.dumps({"champion": "v2", "previous": "v1"}))
    assert resolve_model_dir("fleet@champion", root) == root / "fleet" / "v2"
    assert resolve_model_dir("fleet@previous", root) == root / "fleet" / "v1"
    assert resolve_model_dir("fleet@v1", root) == root / "fleet" / "v1"
    assert resolve_model_dir(root / "fleet" / "v2", root) == root / "fleet" / "v2"
    known = r"expected one of \['champion', 'previous', 'v1', 'v2'\]"
    with pytest.raises(ModelError, match=r"'fleet@nope' names no alias .*" + known):
        resolve_model_dir("fleet@nope", root)
    (root / "fleet" / "ALIASES.json").write_text(json.dumps({"champion": "../elsewhere"}))
    with pytest.raises(ModelError, match=r"field champion is '\.\./elsewhere'; expected a version folder"):
        resolve_model_dir("fleet@champion", root)


def test_the_service_serves_an_alias(tmp_path: Path) -> None:
    assert resolve_model_dir("default@champion") == DEFAULT_MODEL_DIR
    with serving(Settings(model_dir=Path("default@champion"), database_url=_database(tmp_path))) as url:
        status, body, _ = call("GET", f"{url}/v1/model")
    assert status == 200
    assert body["model_dir"] == str(DEFAULT_MODEL_DIR.resolve())
    with pytest.raises(ModelError, match="names no alias"):
        create_app(Settings(model_dir=Path("default@nope"), database_url=_database(tmp_path)))
