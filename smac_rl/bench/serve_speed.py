"""``smac bench serve``: the profile service's latency under an open-loop load, against the MPC.

The service (``uvicorn --factory smac_rl_serve.app:create_app_from_environment``, one worker, a
temporary SQLite registry, one API key) runs as a subprocess pinned to core 0; the load generator
runs in this process on the other core (where there are two). Three phases, one after the other on
the same server, each at a fixed rate for a fixed time:

* ``profiles_fallback``: ``POST /v1/profiles`` in OCPP 2.0.1 for a site of ``n_sessions`` sessions
  (one per connector, 50 by default) over a ``horizon_steps`` grid (96 by default) starting at the
  current period. The default model has room for 16 connectors, so least laxity first answers
  (the answer's ``policy`` and ``fallback_reason`` are recorded);
* ``profiles_onnx``: the same request for a site of ``n_onnx_sessions`` (at most the model's 16
  connectors), which the ONNX policy answers;
* ``session_events``: ``PUT /v1/sites/{site_id}`` once (not measured), then a stream of session
  starts, meter values and session ends (each with its ``Idempotency-Key``) through the registry,
  round-robin over the site's ``n_event_connectors`` EVSEs so that events of one session lie a
  whole round apart. Every event answers with the re-planned profiles of the site.

The load is open-loop: request ``i`` is due at ``t0 + i / rate`` whatever happened to the
requests before it (:func:`dispatch`), and its latency runs from that due time to the last byte of
its answer, so time spent waiting for a free connection or behind a slow answer counts (no
coordinated omission). A bounded pool of ``n_connections`` keep-alive connections
(``http.client``, one thread each) sends them. An error is an answer that is not 2xx, a timeout or
a broken connection.

The baseline, in the same run and this process: the ``profiles_fallback`` site answered by the MPC
(:class:`smac_rl.optimal.mpc.MpcPolicy` with perfect forecasts over the same ``horizon_steps``),
one step's window solve per repetition (what the service would do per request), and the ratio of
its median step time to the service's p50.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import http.client
import json
import os
import queue
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

TARGET_PROFILES_P50_S = 0.008
"""Target median latency of ``POST /v1/profiles`` at 50 requests/s for 60 s [s]."""
TARGET_PROFILES_P99_S = 0.025
"""Target 99th percentile latency of ``POST /v1/profiles`` at 50 requests/s for 60 s [s]."""
TARGET_EVENT_P50_S = 0.005
"""Target median latency of a session event [s]."""
SERVER_CORE_INDEX = 0
"""Core the service is pinned to."""
STEP_MIN = 15
"""Step of every time grid [min]."""
TENANT_ID = "bench"
"""The tenant the benchmark's API key acts for."""


@dataclass(frozen=True)
class Request:
    """One HTTP request of the load.

    Attributes:
        method: ``GET``, ``POST``, ``PUT``.
        path: Path and query.
        body: The body, JSON.
        headers: Extra headers (``Authorization``, ``Idempotency-Key``).
        kind_name: What it is (``profiles``, ``session_start``, ``meter_values``, ``session_end``).
    """

    method: str
    path: str
    body: bytes
    headers: dict[str, str]
    kind_name: str


@dataclass(frozen=True)
class Outcome:
    """What one request of the load got.

    Attributes:
        request_index: Its place in the schedule.
        kind_name: The request's kind.
        due_s: When it was due, on the load's clock (``time.perf_counter``) [s].
        sent_s: When a connection started sending it [s].
        done_s: When its answer was read, or it failed [s].
        status: HTTP status; 0 for a timeout or a broken connection.
        error_name: Why it failed (``http 422``, ``timeout``, ...); empty for a 2xx answer.
        n_body_bytes: Size of the answer's body.
        body: The answer's body: the first 2xx answer's and every error's (its first 300 bytes);
            empty for the others.
    """

    request_index: int
    kind_name: str
    due_s: float
    sent_s: float
    done_s: float
    status: int
    error_name: str
    n_body_bytes: int
    body: bytes = b""

    @property
    def latency_s(self) -> float:
        """From the due time to the answer [s] (queueing included)."""
        return self.done_s - self.due_s

    @property
    def is_ok(self) -> bool:
        """A 2xx answer."""
        return not self.error_name


@dataclass(frozen=True)
class PhaseSpeed:
    """One phase's figures (module docstring); latencies from each request's due time.

    Attributes:
        phase_name: ``profiles_fallback``, ``profiles_onnx`` or ``session_events``.
        n_sessions: Sessions in the request (profiles) or EVSEs of the site (events).
        horizon_steps: Steps of the time grid.
        offered_rate_per_s: Requests scheduled per second [1/s].
        duration_s: Length of the schedule [s].
        n_requests: Requests scheduled.
        n_ok: 2xx answers.
        n_errors: Other answers, timeouts and broken connections.
        p50_s: Median latency of the 2xx answers [s].
        p99_s: 99th percentile latency of the 2xx answers [s].
        max_s: Largest latency, errors included [s].
        service_p50_s: Median time from sending to the answer: without the wait for a free
            connection, with the wait in the server's own queue [s].
        unloaded_p50_s: Median latency of the same requests sent one at a time before the load
            (closed loop, each after the previous answer): the service's own time per request [s].
        throughput_per_s: 2xx answers per second from the first due time to the last answer [1/s].
        policy_name: The ``policy`` of the first 2xx answer (``""`` when none).
        fallback_reason: Its ``fallback_reason`` (``""`` when the model answered).
        n_body_bytes: Size of that answer's body.
        n_load_average: Load average over the last minute at the phase's end (runnable processes).
        n_errors_by_name: Count of each error (``http 409``, ``timeout``, ...).
        error_examples: The first error of each name and request kind: its answer's first 300 bytes.
        p50_by_kind_s: Median latency of each request kind [s].
    """

    phase_name: str
    n_sessions: int
    horizon_steps: int
    offered_rate_per_s: float
    duration_s: float
    n_requests: int
    n_ok: int
    n_errors: int
    p50_s: float
    p99_s: float
    max_s: float
    service_p50_s: float
    unloaded_p50_s: float
    throughput_per_s: float
    policy_name: str
    fallback_reason: str
    n_body_bytes: int
    n_load_average: float
    n_errors_by_name: dict[str, int]
    error_examples: dict[str, str]
    p50_by_kind_s: dict[str, float]


@dataclass(frozen=True)
class MpcBaseline:
    """The MPC's step on the ``profiles_fallback`` site (module docstring).

    Attributes:
        n_sessions: Sessions in the window.
        horizon_steps: Window length [steps].
        n_repetitions: Steps timed (each a fresh episode's first step).
        step_s: Median whole step: forecast, window, model, hand-over, solve [s].
        step_min_s: Fastest step [s].
        step_max_s: Slowest step [s].
        solve_s: Median HiGHS time [s].
    """

    n_sessions: int
    horizon_steps: int
    n_repetitions: int
    step_s: float
    step_min_s: float
    step_max_s: float
    solve_s: float


@dataclass(frozen=True)
class ServeSpeed:
    """Everything one ``smac bench serve`` run measured.

    Attributes:
        phases: The service's phases.
        mpc: The MPC baseline; None when skipped.
        mpc_over_service_p50_frac: MPC median step time / ``profiles_fallback`` p50 (how many
            times longer the MPC takes); None without the baseline or a p50.
        mpc_over_unloaded_p50_frac: MPC median step time / ``profiles_fallback``'s unloaded p50
            (one request at a time: the service's own time, no queueing); None likewise.
        n_connections: Connections of the load generator's pool.
        server_core_ids: Cores the service was pinned to.
        client_core_ids: Cores the load generator was pinned to.
        n_cpus: Cores of the machine.
        started_utc: When the run started (ISO 8601).
    """

    phases: list[PhaseSpeed]
    mpc: MpcBaseline | None
    mpc_over_service_p50_frac: float | None
    mpc_over_unloaded_p50_frac: float | None
    n_connections: int
    server_core_ids: list[int]
    client_core_ids: list[int]
    n_cpus: int
    started_utc: str


# --- the load generator -----------------------------------------------------------------


def due_offsets_s(rate_per_s: float, duration_s: float) -> list[float]:
    """The open-loop schedule: request ``i`` is due ``i / rate`` after the start [s].

    Raises:
        ValueError: For a rate or duration that is not positive.
    """
    if rate_per_s <= 0 or duration_s <= 0:
        raise ValueError(f"rate_per_s, duration_s: got {rate_per_s}, {duration_s}; expected both > 0")
    n_requests = max(1, round(rate_per_s * duration_s))
    return [i / rate_per_s for i in range(n_requests)]


def dispatch(
    offsets_s: Sequence[float],
    submit: Callable[[int, float], None],
    clock: Callable[[], float] = time.perf_counter,
    sleep: Callable[[float], None] = time.sleep,
) -> float:
    """Hand each request to the pool at its due time, never waiting for an answer (open loop).

    A request that falls behind (a slow ``submit``, a late wake-up) is handed over at once with its
    original due time; the schedule never shifts.

    Args:
        offsets_s: Due times after the start [s], ascending.
        submit: Called with the request's index and its due time on ``clock`` [s]; must not block.
        clock: The clock [s].
        sleep: Sleeps for a duration [s].

    Returns:
        The start on ``clock`` [s].
    """
    start_s = clock()
    for index, offset_s in enumerate(offsets_s):
        due_s = start_s + offset_s
        wait_s = due_s - clock()
        if wait_s > 0:
            sleep(wait_s)
        submit(index, due_s)
    return start_s


def _send(connection: http.client.HTTPConnection, request: Request) -> tuple[int, bytes]:
    connection.request(request.method, request.path, body=request.body, headers=request.headers)
    response = connection.getresponse()
    return response.status, response.read()


def run_open_loop(
    host: str,
    port: int,
    make_request: Callable[[int], Request],
    rate_per_s: float,
    duration_s: float,
    n_connections: int = 8,
    timeout_s: float = 10.0,
) -> list[Outcome]:
    """Send requests on an open-loop schedule through a bounded pool of connections.

    Args:
        host: The service's host.
        port: Its port.
        make_request: The ``i``-th request (called by the connection that sends it, when it does).
        rate_per_s: Requests per second [1/s].
        duration_s: Length of the schedule [s].
        n_connections: Connections (one thread each); a due request waits for a free one, and the
            wait counts in its latency.
        timeout_s: Socket timeout of each request [s]; a request still waiting for a connection
            this long after its due time fails as a timeout without being sent (so an overloaded
            service's backlog does not outlive the schedule by more than this).

    Returns:
        One outcome per scheduled request, in schedule order.
    """
    offsets_s = due_offsets_s(rate_per_s, duration_s)
    due: queue.SimpleQueue[tuple[int, float] | None] = queue.SimpleQueue()
    outcomes: list[Outcome | None] = [None] * len(offsets_s)
    is_body_kept = threading.Event()

    def work() -> None:
        connection = http.client.HTTPConnection(host, port, timeout=timeout_s)
        while (item := due.get()) is not None:
            index, due_s = item
            request = make_request(index)
            sent_s = time.perf_counter()
            if sent_s - due_s > timeout_s:  # overdue before it could be sent: a timeout, not sent
                outcomes[index] = Outcome(index, request.kind_name, due_s, sent_s, sent_s, 0, "timeout", 0)
                continue
            status, body, error_name = 0, b"", ""
            try:
                status, body = _send(connection, request)
                if not 200 <= status < 300:
                    error_name = f"http {status}"
            except TimeoutError:
                error_name = "timeout"
            except (OSError, http.client.HTTPException) as exc:
                error_name = type(exc).__name__
            done_s = time.perf_counter()
            if error_name and status == 0:
                connection.close()
                connection = http.client.HTTPConnection(host, port, timeout=timeout_s)
            keep = not error_name and not is_body_kept.is_set()
            if keep:
                is_body_kept.set()
            kept = body if keep else body[:300] if error_name else b""
            outcomes[index] = Outcome(
                index, request.kind_name, due_s, sent_s, done_s, status, error_name, len(body), kept
            )
        connection.close()

    threads = [threading.Thread(target=work, daemon=True) for _ in range(n_connections)]
    for thread in threads:
        thread.start()
    dispatch(offsets_s, lambda index, due_s: due.put((index, due_s)))
    for _ in threads:
        due.put(None)
    for thread in threads:
        thread.join()
    return [o for o in outcomes if o is not None]


def summarize(
    phase_name: str,
    outcomes: Sequence[Outcome],
    n_sessions: int,
    horizon_steps: int,
    rate_per_s: float,
    duration_s: float,
    unloaded_s: Sequence[float] = (),
) -> PhaseSpeed:
    """One phase's figures from its outcomes and unloaded latencies [s] (see :class:`PhaseSpeed`)."""
    ok = [o for o in outcomes if o.is_ok]
    latencies_s = np.array([o.latency_s for o in ok])
    errors: dict[str, int] = {}
    examples: dict[str, str] = {}
    for o in outcomes:
        if not o.is_ok:
            errors[o.error_name] = errors.get(o.error_name, 0) + 1
            examples.setdefault(f"{o.error_name} {o.kind_name}", o.body.decode(errors="replace"))
    first = next((o for o in ok if o.body), None)
    answer: dict[str, Any] = json.loads(first.body) if first is not None else {}
    kinds = sorted({o.kind_name for o in ok})
    start_s = min((o.due_s for o in outcomes), default=0.0)
    end_s = max((o.done_s for o in outcomes), default=start_s)
    return PhaseSpeed(
        phase_name=phase_name,
        n_sessions=n_sessions,
        horizon_steps=horizon_steps,
        offered_rate_per_s=rate_per_s,
        duration_s=duration_s,
        n_requests=len(outcomes),
        n_ok=len(ok),
        n_errors=len(outcomes) - len(ok),
        p50_s=float(np.percentile(latencies_s, 50)) if ok else float("nan"),
        p99_s=float(np.percentile(latencies_s, 99)) if ok else float("nan"),
        max_s=max((o.latency_s for o in outcomes), default=float("nan")),
        service_p50_s=statistics.median(o.done_s - o.sent_s for o in ok) if ok else float("nan"),
        unloaded_p50_s=statistics.median(unloaded_s) if unloaded_s else float("nan"),
        throughput_per_s=len(ok) / (end_s - start_s) if end_s > start_s else 0.0,
        policy_name=str(answer.get("policy") or ""),
        fallback_reason=str(answer.get("fallback_reason") or ""),
        n_body_bytes=first.n_body_bytes if first is not None else 0,
        n_load_average=os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan"),
        n_errors_by_name=errors,
        error_examples=examples,
        p50_by_kind_s={
            kind: statistics.median(o.latency_s for o in ok if o.kind_name == kind) for kind in kinds
        },
    )


# --- the requests ---------------------------------------------------------------------------


def period_start_utc(now_utc: dt.datetime) -> dt.datetime:
    """Start of the :data:`STEP_MIN` period holding ``now_utc`` (periods from midnight UTC)."""
    seconds = int(now_utc.timestamp())
    return dt.datetime.fromtimestamp(seconds - seconds % (STEP_MIN * 60), dt.UTC)


def _chargers(n_connectors: int) -> list[dict[str, Any]]:
    """11 kW three-phase AC chargers, two EVSEs each (the last may have one)."""
    return [
        {
            "station_id": f"AC{k:03d}",
            "kind": "ac",
            "n_phases": 3,
            "max_current_a": 16.0,
            "connectors": [{"evse_id": e + 1} for e in range(min(2, n_connectors - 2 * k))],
        }
        for k in range((n_connectors + 1) // 2)
    ]


def _grid_limit_kw(n_connectors: int) -> float:
    """A grid connection that binds: 60 % of the chargers' total [kW]."""
    return round(0.6 * 11.04 * n_connectors, 1)


def site_scenario(n_sessions: int, horizon_steps: int, start_utc: dt.datetime) -> dict[str, Any]:
    """A site state for ``POST /v1/profiles``: one session per connector, plugged in, a grid from now.

    ``n_sessions`` AC connectors (two per charger), each with a session that arrived before the
    grid's start and leaves between 2 h and 22 h after it (spread evenly), wanting 10 to 30 kWh of a
    60 kWh battery; a binding grid limit; a day-ahead-like import price over the grid.

    Args:
        n_sessions: Sessions (= connectors).
        horizon_steps: Steps of the grid.
        start_utc: The grid's start (the current period's).

    Returns:
        The scenario, JSON-ready.
    """
    rng = np.random.default_rng(0)
    sessions = [
        {
            "session_id": f"S{s:03d}",
            "station_id": f"AC{s // 2:03d}",
            "evse_id": s % 2 + 1,
            "transaction_id": f"tx-{s:03d}",
            "arrival_utc": (start_utc - dt.timedelta(minutes=30)).isoformat(),
            "departure_utc": (
                start_utc + dt.timedelta(hours=2.0 + 20.0 * s / max(1, n_sessions))
            ).isoformat(),
            "battery_capacity_kwh": 60.0,
            "arrival_soc_frac": round(float(rng.uniform(0.1, 0.5)), 3),
            "energy_wanted_kwh": round(float(rng.uniform(10.0, 30.0)), 2),
        }
        for s in range(n_sessions)
    ]
    hours = (start_utc.hour + start_utc.minute / 60.0 + np.arange(horizon_steps) * STEP_MIN / 60.0) % 24.0
    price = np.round(0.2 + 0.1 * np.sin(2.0 * np.pi * (hours - 8.0) / 24.0), 4)
    return {
        "name": f"bench_serve_{n_sessions}",
        "site": {
            "site_id": f"bench-{n_sessions}",
            "timezone": "UTC",
            "chargers": _chargers(n_sessions),
            "grid": {"import_limit_kw": _grid_limit_kw(n_sessions)},
        },
        "time_grid": {"start_utc": start_utc.isoformat(), "step_min": STEP_MIN, "n_steps": horizon_steps},
        "sessions": sessions,
        "series": {"import_price_eur_per_kwh": price.tolist(), "base_load_kw": 5.0},
    }


def registry_site(site_id: str, n_connectors: int, horizon_steps: int) -> dict[str, Any]:
    """``PUT /v1/sites/{site_id}``'s body: ``n_connectors`` 11 kW EVSEs, OCPP 2.0.1 answers."""
    return {
        "site": {
            "site_id": site_id,
            "chargers": _chargers(n_connectors),
            "grid": {"import_limit_kw": _grid_limit_kw(n_connectors)},
        },
        "time_grid": {"step_min": STEP_MIN, "n_steps": horizon_steps},
        "series": {"import_price_eur_per_kwh": 0.25, "base_load_kw": 5.0},
        "format": "ocpp201",
    }


class EventStream:
    """The session events of the ``session_events`` phase, made when sent (times are of then).

    Rounds over the site's EVSEs; EVSE ``j`` in round ``r`` gets event ``(r + j) % 4``: 0 a session
    start, 1 and 2 meter values, 3 the session's end. An EVSE without a session gets a start
    instead (so the first round starts a session at every EVSE), and one with a session due a
    start gets its end first. Every EVSE has one event per round, so events of one session are a
    whole round (``n_connectors`` events) apart, and an EVSE's next start a round after its end.
    """

    def __init__(self, site_id: str, n_connectors: int, n_events: int, headers: dict[str, str]) -> None:
        """Plan ``n_events`` events over ``n_connectors`` EVSEs of ``site_id``, sent with ``headers``."""
        self.site_id = site_id
        self.headers = headers
        self.plan: list[tuple[str, int, int]] = []  # kind, EVSE index, session number
        session_number = [-1] * n_connectors
        round_index = 0
        while len(self.plan) < n_events:
            for j in range(n_connectors):
                step_index = (round_index + j) % 4
                if session_number[j] < 0:
                    session_number[j] = round_index * n_connectors + j
                    self.plan.append(("session_start", j, session_number[j]))
                else:
                    is_end = step_index in (0, 3)
                    self.plan.append(("session_end" if is_end else "meter_values", j, session_number[j]))
                    if is_end:
                        session_number[j] = -1
            round_index += 1
        del self.plan[n_events:]
        self.run_id = uuid.uuid4().hex[:8]

    def __call__(self, index: int) -> Request:
        """The ``index``-th event as a request."""
        kind, j, number = self.plan[index]
        session_id = f"{self.run_id}-{number}"
        now_utc = dt.datetime.now(dt.UTC)
        path = f"/v1/sites/{self.site_id}/sessions"
        body: dict[str, Any]
        if kind == "session_start":
            body = {
                "session_id": session_id,
                "station_id": f"AC{j // 2:03d}",
                "evse_id": j % 2 + 1,
                "transaction_id": session_id,
                "arrival_utc": (now_utc - dt.timedelta(minutes=5)).isoformat(),
                "departure_utc": (now_utc + dt.timedelta(hours=4)).isoformat(),
                "battery_capacity_kwh": 60.0,
                "arrival_soc_frac": 0.3,
                "energy_wanted_kwh": 20.0,
            }
        elif kind == "meter_values":
            path += f"/{session_id}/meter_values"
            body = {"measured_at_utc": (now_utc - dt.timedelta(seconds=1)).isoformat(), "soc_frac": 0.35}
        else:
            path += f"/{session_id}/end"
            body = {}
        headers = {**self.headers, "Idempotency-Key": uuid.uuid4().hex}
        return Request("POST", path, json.dumps(body).encode(), headers, kind)


# --- the server -----------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _pin(cores: set[int]) -> None:
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, cores)


@contextlib.contextmanager
def serving(
    workdir: Path, server_core_ids: set[int], start_timeout_s: float = 120.0
) -> Iterator[tuple[int, str]]:
    """Run the service (one uvicorn worker) as a subprocess on loopback; yield its port and API key.

    Args:
        workdir: Folder for the SQLite registry, the key file and the server's log.
        server_core_ids: Cores the subprocess is pinned to.
        start_timeout_s: How long to wait for ``/healthz`` [s].

    Raises:
        RuntimeError: When the service does not answer in time (the log's tail is in the message).
    """
    import secrets

    key = "smac_" + secrets.token_urlsafe(32)
    keys_file = workdir / "api_keys.json"
    digest = hashlib.sha256(key.encode("utf-8")).hexdigest()  # what smac_rl_serve.auth stores
    keys_file.write_text(json.dumps({digest: [TENANT_ID]}), encoding="utf-8")
    port = _free_port()
    env = {
        **os.environ,
        "SMAC_DATABASE_URL": f"sqlite:///{workdir / 'registry.db'}",
        "SMAC_API_KEYS_FILE": str(keys_file),
    }
    command = [
        sys.executable,
        "-m",
        "uvicorn",
        "--factory",
        "smac_rl_serve.app:create_app_from_environment",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        "1",
        "--log-level",
        "warning",
        "--no-access-log",
    ]
    log_path = workdir / "server.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            command,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            preexec_fn=(lambda: _pin(server_core_ids)) if hasattr(os, "sched_setaffinity") else None,
        )
    try:
        deadline_s = time.monotonic() + start_timeout_s
        while True:
            try:
                connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
                connection.request("GET", "/healthz")
                if connection.getresponse().status == 200:
                    connection.close()
                    break
            except OSError:
                pass
            if process.poll() is not None or time.monotonic() > deadline_s:
                tail = log_path.read_text(errors="replace").strip().splitlines()[-3:]
                raise RuntimeError(f"service: did not answer /healthz on port {port} ({' | '.join(tail)})")
            time.sleep(0.1)
        yield port, key
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _constant(request: Request) -> Callable[[int], Request]:
    """The same request for every index."""
    return lambda _index: request


def closed_loop_s(port: int, make_request: Callable[[int], Request], n_requests: int) -> list[float]:
    """Latencies of requests sent one at a time on one connection, each after the previous answer [s].

    Raises:
        RuntimeError: On an answer that is not 2xx.
    """
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    latencies_s = []
    try:
        for index in range(n_requests):
            request = make_request(index)
            start_s = time.perf_counter()
            status, body = _send(connection, request)
            latencies_s.append(time.perf_counter() - start_s)
            if not 200 <= status < 300:
                raise RuntimeError(
                    f"{request.kind_name}: got HTTP {status} ({body[:300]!r}) one at a time; expected 2xx"
                )
    finally:
        connection.close()
    return latencies_s


def _call(port: int, request: Request) -> tuple[int, bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        return _send(connection, request)
    finally:
        connection.close()


# --- the MPC baseline -----------------------------------------------------------------------


class _FirstStepDoneError(Exception):
    """Ends an MPC episode after its first step."""


def measure_mpc_step(scenario: dict[str, Any], horizon_steps: int, n_repetitions: int) -> MpcBaseline:
    """Time the MPC's first step on a site state, ``n_repetitions`` times (module docstring).

    Args:
        scenario: The site state (:func:`site_scenario`).
        horizon_steps: The MPC's window [steps].
        n_repetitions: Steps timed, plus one untimed warm-up.

    Returns:
        The step times.
    """
    from smac_rl.core.arrays import compile_scenario
    from smac_rl.core.forecasts import PerfectForecast
    from smac_rl.core.scenario_io import parse_scenario
    from smac_rl.optimal.mpc import MpcPolicy, MpcStepTiming
    from smac_rl.policies import run_policy

    arrays = compile_scenario(parse_scenario(scenario))
    timings: list[MpcStepTiming] = []

    def stop(_step_index: int) -> None:
        raise _FirstStepDoneError

    for repetition in range(n_repetitions + 1):
        policy = MpcPolicy(PerfectForecast(), horizon_steps=horizon_steps)
        with contextlib.suppress(_FirstStepDoneError):
            run_policy(arrays, policy, stop)
        if repetition > 0:
            timings.extend(policy.timings)
    totals_s = [t.total_s for t in timings]
    return MpcBaseline(
        n_sessions=arrays.sessions.n_sessions,
        horizon_steps=horizon_steps,
        n_repetitions=len(timings),
        step_s=statistics.median(totals_s),
        step_min_s=min(totals_s),
        step_max_s=max(totals_s),
        solve_s=statistics.median(t.solve_s for t in timings),
    )


# --- the whole run --------------------------------------------------------------------------


def measure_serve(
    rate_per_s: float = 50.0,
    duration_s: float = 60.0,
    n_sessions: int = 50,
    n_onnx_sessions: int = 16,
    n_event_connectors: int = 16,
    horizon_steps: int = 96,
    n_connections: int = 8,
    n_mpc_repetitions: int = 3,
    n_unloaded: int = 20,
    progress: Callable[[str], None] | None = None,
) -> ServeSpeed:
    """Run the three phases and the MPC baseline (module docstring).

    Args:
        rate_per_s: Requests per second of each phase [1/s].
        duration_s: Length of each phase [s].
        n_sessions: Sessions of the ``profiles_fallback`` site (and the MPC's).
        n_onnx_sessions: Sessions of the ``profiles_onnx`` site (at most the model's connectors).
        n_event_connectors: EVSEs of the ``session_events`` site.
        horizon_steps: Steps of every grid and the MPC's window.
        n_connections: Connections of the load generator's pool.
        n_mpc_repetitions: MPC steps timed; 0 skips the baseline.
        n_unloaded: Requests of each phase first sent one at a time (unloaded latency).
        progress: Called with a line before each phase.

    Returns:
        The figures. The process's core affinity is restored at the end.

    Raises:
        RuntimeError: When the service does not start or rejects the site configuration.
    """
    say = progress or (lambda _line: None)
    started_utc = dt.datetime.now(dt.UTC)
    original_cores = (
        os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else set(range(os.cpu_count() or 1))
    )
    ordered = sorted(original_cores)
    server_core_ids = {SERVER_CORE_INDEX} if SERVER_CORE_INDEX in original_cores else {ordered[0]}
    client_core_ids = set(ordered) - server_core_ids or server_core_ids
    client_core_ids = {min(client_core_ids)}
    start_utc = period_start_utc(started_utc)
    phases: list[PhaseSpeed] = []
    fallback_scenario = site_scenario(n_sessions, horizon_steps, start_utc)
    try:
        with (
            tempfile.TemporaryDirectory(prefix="smac-bench-serve-") as folder,
            serving(Path(folder), server_core_ids) as (port, key),
        ):
            _pin(client_core_ids)
            auth = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
            for phase_name, scenario in (
                ("profiles_fallback", fallback_scenario),
                ("profiles_onnx", site_scenario(n_onnx_sessions, horizon_steps, start_utc)),
            ):
                body = json.dumps({"scenario": scenario, "format": "ocpp201"}).encode()
                request = Request("POST", "/v1/profiles", body, auth, "profiles")
                status, answer = _call(port, request)  # warm-up, not measured
                if status != 200:
                    raise RuntimeError(f"{phase_name}: got HTTP {status} ({answer[:300]!r}); expected 200")
                n_scenario_sessions = len(scenario["sessions"])
                unloaded_s = closed_loop_s(port, _constant(request), n_unloaded)
                say(
                    f"{phase_name}: {n_scenario_sessions} sessions, {rate_per_s:g}/s for {duration_s:g} s ..."
                )
                outcomes = run_open_loop(
                    "127.0.0.1", port, _constant(request), rate_per_s, duration_s, n_connections
                )
                phases.append(
                    summarize(
                        phase_name,
                        outcomes,
                        n_scenario_sessions,
                        horizon_steps,
                        rate_per_s,
                        duration_s,
                        unloaded_s,
                    )
                )
            event_site_ids = [f"bench-events-{uuid.uuid4().hex[:8]}" for _ in range(2)]
            for site_id in event_site_ids:  # one for the unloaded events, one for the load
                config = registry_site(site_id, n_event_connectors, horizon_steps)
                put = Request("PUT", f"/v1/sites/{site_id}", json.dumps(config).encode(), auth, "site")
                status, answer = _call(port, put)
                if status != 200:
                    raise RuntimeError(
                        f"session_events: PUT got HTTP {status} ({answer[:300]!r}); expected 200"
                    )
            unloaded_s = closed_loop_s(
                port, EventStream(event_site_ids[0], n_event_connectors, n_unloaded, auth), n_unloaded
            )
            site_id = event_site_ids[1]
            stream = EventStream(
                site_id, n_event_connectors, len(due_offsets_s(rate_per_s, duration_s)), auth
            )
            say(f"session_events: {n_event_connectors} EVSEs, {rate_per_s:g}/s for {duration_s:g} s ...")
            outcomes = run_open_loop("127.0.0.1", port, stream, rate_per_s, duration_s, n_connections)
            phases.append(
                summarize(
                    "session_events",
                    outcomes,
                    n_event_connectors,
                    horizon_steps,
                    rate_per_s,
                    duration_s,
                    unloaded_s,
                )
            )
        mpc = None
        if n_mpc_repetitions > 0:
            say(
                f"MPC baseline: {n_sessions} sessions, {horizon_steps}-step window, "
                f"{n_mpc_repetitions} steps ..."
            )
            mpc = measure_mpc_step(fallback_scenario, horizon_steps, n_mpc_repetitions)
    finally:
        _pin(original_cores)

    def over(service_s: float) -> float | None:
        return mpc.step_s / service_s if mpc is not None and service_s > 0 else None

    return ServeSpeed(
        phases=phases,
        mpc=mpc,
        mpc_over_service_p50_frac=over(phases[0].p50_s),
        mpc_over_unloaded_p50_frac=over(phases[0].unloaded_p50_s),
        n_connections=n_connections,
        server_core_ids=sorted(server_core_ids),
        client_core_ids=sorted(client_core_ids),
        n_cpus=os.cpu_count() or 1,
        started_utc=started_utc.isoformat(),
    )


def targets_met(record: ServeSpeed) -> dict[str, bool]:
    """Each target (module constants) against its phase: ``profiles_<phase>`` and ``session_events``.

    The profile targets hold at 50 requests/s for 60 s with zero errors; a run at another rate or
    length is still compared, and the report carries its rate and length.
    """
    met: dict[str, bool] = {}
    for phase in record.phases:
        if phase.phase_name.startswith("profiles"):
            met[phase.phase_name] = (
                phase.n_errors == 0
                and phase.p50_s <= TARGET_PROFILES_P50_S
                and phase.p99_s <= TARGET_PROFILES_P99_S
            )
        else:
            met[phase.phase_name] = phase.n_errors == 0 and phase.p50_s <= TARGET_EVENT_P50_S
    return met


def report(record: ServeSpeed) -> dict[str, Any]:
    """Everything measured, with the targets, as one JSON-ready mapping."""
    result = asdict(record)
    result["targets"] = {
        "profiles_p50_s": TARGET_PROFILES_P50_S,
        "profiles_p99_s": TARGET_PROFILES_P99_S,
        "profiles_rate_per_s": 50.0,
        "profiles_duration_s": 60.0,
        "profiles_n_errors": 0,
        "session_event_p50_s": TARGET_EVENT_P50_S,
    }
    result["targets_met"] = targets_met(record)
    return result


__all__ = [
    "EventStream",
    "MpcBaseline",
    "Outcome",
    "PhaseSpeed",
    "Request",
    "ServeSpeed",
    "closed_loop_s",
    "dispatch",
    "due_offsets_s",
    "measure_mpc_step",
    "measure_serve",
    "registry_site",
    "report",
    "run_open_loop",
    "site_scenario",
    "summarize",
    "targets_met",
]
