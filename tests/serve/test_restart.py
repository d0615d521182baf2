"""Restart survival: SIGKILL the service mid-stream, restart it on the same database, converge.

The service runs as ``uvicorn --factory smac_rl_serve.app:create_app_from_environment`` on
loopback with a temporary SQLite file. A thread sends a stream of events; the test kills the
process after some answers, restarts it, checks that every acknowledged event is stored (its
key is in the decision log and a resend replays the very answer), resends the rest with their
keys, and compares the site with one that received the same stream without a crash.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.serve.support import call, free_port, session_start, site_config, utc_in

N_SESSIONS = 10
KILL_AFTER_ACKS = 14


@dataclass(frozen=True)
class Event:
    method: str
    path: str
    body: Any
    key: str


def stream(site_id: str, prefix: str) -> list[Event]:
    """PUT, then sessions started, metered, some ended, and two capacity signals in between."""

    def event(method: str, path: str, body: Any) -> Event:
        return Event(method, f"/v1/sites/{site_id}{path}", body, str(uuid.uuid4()))

    events = [event("PUT", "", site_config(site_id, profile_format="json", n_ac_evses=N_SESSIONS))]
    ids = [f"{prefix}-S{k}" for k in range(N_SESSIONS)]
    for k, session_id in enumerate(ids):
        events.append(event("POST", "/sessions", session_start(session_id, "AC1", k + 1)))
        if k == 4:
            block = {
                "capacity": 25,
                "phase": "ALL",
                "unit": "KW",
                "start_time": utc_in(-30),
                "end_time": utc_in(90),
            }
            oscp = {"group_id": "g", "type": "CONSUMPTION", "forecasted_blocks": [block]}
            events.append(event("POST", "/capacity", oscp))
    for k, session_id in enumerate(ids):
        reading = {"measured_at_utc": utc_in(-1), "soc_frac": 0.35 + 0.02 * k}
        events.append(event("POST", f"/sessions/{session_id}/meter_values", reading))
    period = {"start": utc_in(0), "duration": "PT1H"}
    payload = [{"type": "IMPORT_CAPACITY_LIMIT", "values": [18.0]}]
    openadr = {"programID": "dso", "intervalPeriod": period, "intervals": [{"id": 0, "payloads": payload}]}
    events.append(event("POST", "/capacity", openadr))
    for session_id in ids[::3]:
        events.append(event("POST", f"/sessions/{session_id}/end", {"ended_at_utc": utc_in(-1)}))
    return events


def send(base: str, event: Event) -> tuple[int, Any, dict[str, str]]:
    return call(event.method, f"{base}{event.path}", event.body, {"Idempotency-Key": event.key})


@contextmanager
def service(database: Path) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """The service in its own process, ready to answer."""
    port = free_port()
    environment = {**os.environ, "SMAC_DATABASE_URL": f"sqlite:///{database}"}
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "--factory",
            "smac_rl_serve.app:create_app_from_environment",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--log-level",
            "warning",
        ],
        env=environment,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            if call("GET", f"{base}/healthz")[0] == 200:
                break
        except (urllib.error.URLError, ConnectionError):
            if time.monotonic() > deadline or process.poll() is not None:
                process.kill()
                raise
            time.sleep(0.1)
    try:
        yield base, process
    finally:
        if process.poll() is None:
            process.terminate()
            process.wait(timeout=30)


def site_view(base: str, site_id: str, prefix: str) -> dict[str, Any]:
    """What must be equal between two sites fed the same stream (ids and times aside)."""
    state = call("GET", f"{base}/v1/sites/{site_id}")[1]
    log = call("GET", f"{base}/v1/sites/{site_id}/decisions?limit=100")[1]["items"]
    sessions = {}
    for k in range(N_SESSIONS):
        session = call("GET", f"{base}/v1/sites/{site_id}/sessions/{prefix}-S{k}")[1]
        sessions[k] = (session["is_active"], session["soc_frac"])
    return {
        "site_version": state["site_version"],
        "sessions": sessions,
        "blocks": [(b["source"], b["limit_kw"], b["signal_version"]) for b in state["capacity_blocks"]],
        "events": [(e["event"], e["site_version"]) for e in log],
    }


def test_acknowledged_events_survive_a_sigkill_and_a_replay_converges(tmp_path: Path) -> None:
    database = tmp_path / "registry.db"
    crash_site, crash_prefix = f"crash-{uuid.uuid4().hex[:8]}", f"c{uuid.uuid4().hex[:6]}"
    events = stream(crash_site, crash_prefix)
    acknowledged: dict[int, Any] = {}
    stopped = threading.Event()

    with service(database) as (base, process):

        def sender() -> None:
            for index, event in enumerate(events):
                try:
                    status, body, _ = send(base, event)
                except (urllib.error.URLError, ConnectionError, OSError):
                    break
                if status != 200:
                    break
                acknowledged[index] = body
            stopped.set()

        thread = threading.Thread(target=sender, daemon=True)
        thread.start()
        deadline = time.monotonic() + 60
        while len(acknowledged) < KILL_AFTER_ACKS and not stopped.is_set() and time.monotonic() < deadline:
            time.sleep(0.001)
        os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout=30)
        thread.join(timeout=60)

    n_acked = len(acknowledged)
    assert KILL_AFTER_ACKS <= n_acked < len(events), "the kill should land mid-stream"
    assert sorted(acknowledged) == list(range(n_acked))

    with service(database) as (base, _process):
        log = call("GET", f"{base}/v1/sites/{crash_site}/decisions?limit=100")[1]["items"]
        logged = {entry["idempotency_key"] for entry in log}
        for index, body in acknowledged.items():
            assert events[index].key in logged, index
            status, again, headers = send(base, events[index])
            assert (status, headers.get("idempotent-replayed")) == (200, "true")
            assert again == body  # the very answer that was acknowledged
        for event in events[n_acked:]:  # the unacknowledged, the one in flight included
            status, body, _ = send(base, event)
            assert status == 200, body

        reference_site, reference_prefix = f"ref-{uuid.uuid4().hex[:8]}", f"r{uuid.uuid4().hex[:6]}"
        for event in stream(reference_site, reference_prefix):
            assert send(base, event)[0] == 200
        crashed = site_view(base, crash_site, crash_prefix)
        reference = site_view(base, reference_site, reference_prefix)
    assert crashed == reference
    assert crashed["site_version"] == len(events)
