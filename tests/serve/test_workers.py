"""``smac serve --workers 2``: two worker processes on one registry stay consistent.

The command runs as a subprocess on loopback with a temporary SQLite file (and PostgreSQL when
``SMAC_TEST_PG_URL`` is set); concurrent events on one site, spread by the kernel over both
workers, must be applied once each, in one order, exactly as with one process
(``tests/serve/test_registry.py::test_concurrent_events_on_one_site_are_serialised``).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.error
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import pytest

from smac_rl_serve.settings import Settings
from tests.serve.support import call, free_port, session_start, site_config, utc_in

PG_URL = os.environ.get("SMAC_TEST_PG_URL")
N_SESSIONS = 12


def _worker_pids(parent_pid: int) -> set[int]:
    """The worker processes uvicorn spawned under ``parent_pid`` (Linux ``/proc``; its
    multiprocessing resource tracker, also a child, is not a worker)."""
    workers = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            command = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if int(fields[1]) == parent_pid and b"spawn_main" in command:
            workers.add(int(entry.name))
    return workers


@contextmanager
def smac_serve(database_url: str, n_workers: int, log_path: Path) -> Iterator[tuple[str, int]]:
    """``smac serve --workers N`` in its own process group, output to ``log_path``; yield its URL and pid."""
    port = free_port()
    command = [
        str(Path(sys.executable).parent / "smac"),
        "serve",
        "--port",
        str(port),
        "--database-url",
        database_url,
        "--price-forecaster",
        "none",
        "--workers",
        str(n_workers),
    ]
    with log_path.open("wb") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    try:
        while True:
            try:
                if call("GET", f"{base}/healthz")[0] == 200:
                    break
            except (urllib.error.URLError, ConnectionError):
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"smac serve did not answer /healthz: {log_path.read_text()[-500:]}")
            time.sleep(0.2)
        yield base, process.pid
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "postgresql":
        if not PG_URL:
            if os.environ.get("SMAC_REQUIRE_PG") == "1":  # CI: a skipped PostgreSQL run is a failure
                pytest.fail("SMAC_REQUIRE_PG=1 but SMAC_TEST_PG_URL is not set")
            pytest.skip("SMAC_TEST_PG_URL is not set: the PostgreSQL run is skipped")
        return PG_URL
    return f"sqlite:///{tmp_path / 'registry.db'}"


def key() -> dict[str, str]:
    return {"Idempotency-Key": str(uuid.uuid4())}


def test_two_workers_apply_concurrent_events_once_each_in_one_order(
    database_url: str, tmp_path: Path
) -> None:
    with smac_serve(database_url, 2, tmp_path / "serve.log") as (base, parent_pid):
        assert len(_worker_pids(parent_pid)) == 2
        site_id = f"site-{uuid.uuid4().hex[:10]}"
        status, body, _ = call(
            "PUT", f"{base}/v1/sites/{site_id}", site_config(site_id, n_ac_evses=N_SESSIONS)
        )
        assert status == 200, body
        sessions = [session_start(f"W{k}-{uuid.uuid4().hex[:6]}", "AC1", k + 1) for k in range(N_SESSIONS)]
        shared_key = key()  # sent three times at once, possibly to both workers: applied once
        requests = [(sessions[0], shared_key)] * 3 + [(s, key()) for s in sessions[1:]]
        with ThreadPoolExecutor(max_workers=8) as pool:
            answers = list(
                pool.map(lambda r: call("POST", f"{base}/v1/sites/{site_id}/sessions", r[0], r[1]), requests)
            )
        assert [a[0] for a in answers] == [200] * len(requests), [a[1] for a in answers if a[0] != 200]
        assert sum(a[2].get("idempotent-replayed") == "true" for a in answers) == 2
        assert len({a[1]["site_version"] for a in answers[:3]}) == 1  # the replays carry the same answer
        versions = sorted({a[1]["site_version"] for a in answers})
        assert versions == list(
            range(2, N_SESSIONS + 2)
        )  # one version per applied event, none lost or doubled
        for answer in answers:  # each answer plans the sessions started up to it, no more, no less
            assert len(answer[1]["profiles"]) == answer[1]["site_version"] - 1
        readings = [
            (s["session_id"], {"measured_at_utc": utc_in(0), "soc_frac": 0.3 + 0.01 * k})
            for k, s in enumerate(sessions)
        ]
        with ThreadPoolExecutor(max_workers=8) as pool:
            metered = list(
                pool.map(
                    lambda r: call(
                        "POST", f"{base}/v1/sites/{site_id}/sessions/{r[0]}/meter_values", r[1], key()
                    ),
                    readings,
                )
            )
        assert [m[0] for m in metered] == [200] * N_SESSIONS
        state = call("GET", f"{base}/v1/sites/{site_id}")[1]
        assert state["site_version"] == 1 + 2 * N_SESSIONS
        assert {s["session_id"]: s["soc_frac"] for s in state["sessions"]} == pytest.approx(
            {s["session_id"]: 0.3 + 0.01 * k for k, s in enumerate(sessions)}
        )
        log = call("GET", f"{base}/v1/sites/{site_id}/decisions?limit=100")[1]["items"]
        assert sorted(e["site_version"] for e in log) == list(range(1, 2 + 2 * N_SESSIONS))


def test_settings_travel_to_workers_as_environment_variables(tmp_path: Path) -> None:
    keys_file = tmp_path / "keys.json"
    keys_file.write_text("{}", encoding="utf-8")
    settings = Settings(
        database_url="sqlite:///x.db",
        api_keys_file=keys_file,
        allow_anonymous_profiles=True,
        price_forecaster_dir=None,
    )
    environment = settings.to_environment()
    assert environment["SMAC_API_KEYS_FILE"] == str(keys_file.resolve())
    assert environment["SMAC_PRICE_FORECASTER_DIR"] == "none"
    assert Settings.from_environment(environment) == Settings(
        model_dir=settings.model_dir.resolve(),
        database_url="sqlite:///x.db",
        api_keys_file=keys_file.resolve(),
        allow_anonymous_profiles=True,
        price_forecaster_dir=None,
    )
    alias = Settings(model_dir=Path("turku_ultrafast_hub_cost@champion")).to_environment()
    assert alias["SMAC_MODEL_DIR"] == "turku_ultrafast_hub_cost@champion"  # each worker resolves it


@pytest.mark.parametrize(
    ("settings", "field"),
    [
        (Settings(api_keys={"ab" * 32: ("cpo-1",)}), "api_keys"),
        (Settings(n_sessions_max=5), "n_sessions_max"),
    ],
)
def test_settings_without_a_variable_are_refused_for_workers(settings: Settings, field: str) -> None:
    with pytest.raises(ValueError, match=rf"^{field}: got"):
        settings.to_environment()
