"""``smac bench serve``: the open-loop schedule, the event stream, a short run (no speed assertions)."""

from __future__ import annotations

import http.server
import itertools
import json
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from smac_rl.bench.serve_speed import (
    EventStream,
    MpcBaseline,
    PhaseSpeed,
    Request,
    ServeSpeed,
    dispatch,
    due_offsets_s,
    run_open_loop,
)
from smac_rl.cli.main import app
from tests.core.test_units import name_problems

runner = CliRunner()


@pytest.fixture
def keep_affinity() -> Iterator[None]:
    """The command pins the process to a core; give the test process its cores back."""
    cores = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else None
    yield
    if cores is not None:
        os.sched_setaffinity(0, cores)


class FakeClock:
    """A clock that moves only when slept on or told to."""

    def __init__(self) -> None:
        self.now_s = 100.0
        self.sleeps_s: list[float] = []

    def __call__(self) -> float:
        return self.now_s

    def sleep(self, duration_s: float) -> None:
        self.sleeps_s.append(duration_s)
        self.now_s += duration_s


def test_the_schedule_is_fixed_by_rate_and_duration() -> None:
    offsets_s = due_offsets_s(50.0, 60.0)
    assert len(offsets_s) == 3000
    assert offsets_s[0] == 0.0
    assert offsets_s[1] == pytest.approx(0.02)
    assert offsets_s[-1] == pytest.approx(59.98)
    with pytest.raises(ValueError, match="rate_per_s"):
        due_offsets_s(0.0, 1.0)


def test_dispatch_keeps_the_schedule_when_requests_fall_behind() -> None:
    """Open loop: a slow hand-over delays neither the later due times nor shifts the schedule."""
    clock = FakeClock()
    handed: list[tuple[int, float, float]] = []  # index, due time, clock at hand-over

    def submit(index: int, due_s: float) -> None:
        handed.append((index, due_s, clock()))
        if index == 2:
            clock.now_s += 0.35  # a stall of 3.5 intervals

    start_s = dispatch(due_offsets_s(10.0, 1.0), submit, clock, clock.sleep)
    assert start_s == 100.0
    assert [i for i, _, _ in handed] == list(range(10))
    assert [due for _, due, _ in handed] == pytest.approx([100.0 + 0.1 * i for i in range(10)])
    # Requests 3 to 5 were due during the stall: handed over at once, late, with their own due times.
    for index, due_s, at_s in handed:
        assert at_s >= due_s
        if index in (3, 4, 5):
            assert at_s == pytest.approx(100.55)
        else:
            assert at_s == pytest.approx(due_s)
    assert all(s > 0 for s in clock.sleeps_s)


class _SlowHandler(http.server.BaseHTTPRequestHandler):
    """Answers every POST after 0.2 s."""

    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        time.sleep(0.2)
        body = b'{"policy": "slow"}'
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_args: object) -> None:
        pass


def test_latency_counts_the_wait_behind_a_slow_answer() -> None:
    """10 requests/s on one connection to a 0.2 s server: later requests queue, and that counts."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _SlowHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        request = Request("POST", "/", b"{}", {"Content-Type": "application/json"}, "profiles")
        outcomes = run_open_loop(
            "127.0.0.1", server.server_address[1], lambda _i: request, 10.0, 1.0, n_connections=1
        )
    finally:
        server.shutdown()
        server.server_close()
    assert len(outcomes) == 10
    assert all(o.is_ok for o in outcomes)
    due_s = [o.due_s for o in outcomes]
    assert [d - due_s[0] for d in due_s] == pytest.approx([0.1 * i for i in range(10)], abs=1e-9)
    # One at a time at >= 0.2 s each: the i-th answer comes >= 0.2 (i + 1) s after the start,
    # so its latency from its due time is >= 0.2 (i + 1) - 0.1 i = 0.1 i + 0.2 s.
    for i, outcome in enumerate(outcomes):
        assert outcome.latency_s >= 0.1 * i + 0.2 - 1e-3
        assert outcome.sent_s >= outcome.due_s
    assert outcomes[-1].latency_s - (outcomes[-1].done_s - outcomes[-1].sent_s) >= 0.8  # the wait


def test_the_event_stream_keeps_each_session_in_order() -> None:
    """Each session: a start, meter values, at most one end, on one EVSE, a round of 4 events apart."""
    stream = EventStream("site-1", 4, 60, {"Authorization": "Bearer k"})
    assert len(stream.plan) == 60
    by_session: dict[int, list[tuple[int, str, int]]] = {}
    for index, (kind, evse_index, number) in enumerate(stream.plan):
        by_session.setdefault(number, []).append((index, kind, evse_index))
    for events in by_session.values():
        kinds = [kind for _, kind, _ in events]
        assert kinds[0] == "session_start"
        assert set(kinds[1:-1]) <= {"meter_values"}
        assert kinds.count("session_end") <= 1
        assert len({evse for _, _, evse in events}) == 1
        positions = [index for index, _, _ in events]
        assert all(b - a == 4 for a, b in itertools.pairwise(positions))  # a whole round apart
    holder: dict[int, int] = {}  # EVSE -> session plugged in
    for kind, evse_index, number in stream.plan:
        if kind == "session_start":
            assert evse_index not in holder  # a free EVSE
            holder[evse_index] = number
        else:
            assert holder[evse_index] == number
            if kind == "session_end":
                del holder[evse_index]
    first = stream(0)
    body = json.loads(first.body)
    assert (first.method, first.path, first.kind_name) == (
        "POST",
        "/v1/sites/site-1/sessions",
        "session_start",
    )
    assert body["transaction_id"] == body["session_id"]
    assert first.headers["Idempotency-Key"] != stream(0).headers["Idempotency-Key"]
    meter_index = next(i for i, (kind, _, _) in enumerate(stream.plan) if kind == "meter_values")
    assert stream(meter_index).path.endswith("/meter_values")


def test_the_record_names_carry_units() -> None:
    assert [p for cls in (PhaseSpeed, MpcBaseline, ServeSpeed) for p in name_problems(cls)] == []


@pytest.mark.usefixtures("keep_affinity")
def test_a_short_run_answers_every_request(tmp_path: Path) -> None:
    """Rate 10/s for 2 s per phase, small sites: zero errors, positive latencies, both policies."""
    output = tmp_path / "serve.json"
    args = ["bench", "serve", "--rate", "10", "--duration-s", "2", "--sessions", "20"]
    args += ["--onnx-sessions", "4", "--connections", "4", "--mpc-repetitions", "1", "--output", str(output)]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "MPC / service p50" in result.output
    record = json.loads(output.read_text())
    phases = {p["phase_name"]: p for p in record["phases"]}
    assert list(phases) == ["profiles_fallback", "profiles_onnx", "session_events"]
    for phase in phases.values():
        assert phase["n_requests"] == 20
        assert phase["n_errors"] == 0, phase["n_errors_by_name"]
        assert phase["n_ok"] == 20
        assert 0 < phase["p50_s"] <= phase["p99_s"] <= phase["max_s"]
        assert phase["throughput_per_s"] > 0
    assert phases["profiles_fallback"]["n_sessions"] == 20
    assert phases["profiles_fallback"]["policy_name"] == "least_laxity_first"
    assert "least laxity first" in phases["profiles_fallback"]["fallback_reason"]
    assert phases["profiles_onnx"]["fallback_reason"] == ""
    assert phases["profiles_onnx"]["policy_name"] != "least_laxity_first"
    assert set(phases["session_events"]["p50_by_kind_s"]) >= {"session_start", "meter_values"}
    assert record["mpc"]["n_sessions"] == 20
    assert record["mpc"]["step_s"] > 0
    assert record["mpc_over_service_p50_frac"] > 0
    assert record["mpc_over_unloaded_p50_frac"] > 0
    for phase in phases.values():
        assert phase["unloaded_p50_s"] > 0
    assert record["targets"]["profiles_p50_s"] == 0.008
    assert set(record["targets_met"]) == set(phases)
