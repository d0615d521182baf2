"""Online adapters against a real HTTP server on loopback that replays recorded-format responses.

The fixtures in tests/data/recorded/ follow the public formats: an ENTSO-E A44
Publication_MarketDocument (rebuilt from the bundled Dutch prices of 2024-05-01 and -02) and two
ACN-Data pages (the API's ``_items``/``_links``/``_meta`` envelope, values from the Caltech
sessions of 2019-05-01).
"""

from __future__ import annotations

import datetime as dt
import http.server
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar
from urllib.parse import parse_qs, urlparse

import pandas as pd
import pytest

from smac_rl.data.importers import read_caltech_sessions_csv
from smac_rl.data.loaders import day_ahead_prices_hourly
from smac_rl.data.online import (
    OnlineSourceError,
    caltech_sessions_csv,
    fetch_acn_sessions,
    fetch_entsoe_day_ahead_prices,
)

RECORDED = Path(__file__).parent / "recorded"
TOKEN = "test-token"
UTC = dt.UTC


class _Handler(http.server.BaseHTTPRequestHandler):
    requests_seen: ClassVar[list[str]] = []

    def log_message(self, format: str, *args: object) -> None:
        return

    def _send(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        self.requests_seen.append(self.path)
        url = urlparse(self.path)
        query = parse_qs(url.query)
        if url.path == "/api":
            if query.get("securityToken") != [TOKEN]:
                self._send(401, b"<html><body>Unauthorized</body></html>", "text/html")
                return
            assert query["documentType"] == ["A44"]
            assert query["in_Domain"] == ["10YNL----------L"]
            self._send(200, (RECORDED / "entsoe_a44_nl_2024-05-01.xml").read_bytes(), "text/xml")
        elif url.path == "/acn/sessions/caltech":
            expected = "Basic dGVzdC10b2tlbjo="  # base64("test-token:")
            if self.headers.get("Authorization") != expected:
                self._send(401, b'{"_error": "unauthorized"}', "application/json")
                return
            page = query.get("page", ["1"])[0]
            self._send(200, (RECORDED / f"acn_caltech_page{page}.json").read_bytes(), "application/json")
        elif url.path.startswith("/garbled"):
            self._send(200, b"<html><body>maintenance</body></html>", "text/html")
        else:
            self._send(404, b"", "text/plain")


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_entsoe_prices_in_eur_per_kwh_on_utc_hours(server: str) -> None:
    start, end = dt.datetime(2024, 4, 30, 22, tzinfo=UTC), dt.datetime(2024, 5, 1, 22, tzinfo=UTC)
    prices = fetch_entsoe_day_ahead_prices(TOKEN, "NL", start, end, base_url=f"{server}/api")
    assert len(prices) == 24
    assert prices.index[0] == start
    assert str(pd.DatetimeIndex(prices.index).tz) == "UTC"
    bundled = day_ahead_prices_hourly(start, end)["price_eur_per_kwh"].to_numpy()
    assert prices.to_numpy() == pytest.approx(bundled, abs=5e-6)


def test_entsoe_refusal_and_bad_input_are_clear(server: str) -> None:
    start, end = dt.datetime(2024, 4, 30, 22, tzinfo=UTC), dt.datetime(2024, 5, 1, 22, tzinfo=UTC)
    with pytest.raises(OnlineSourceError, match=r"refused the request \(HTTP 401\)"):
        fetch_entsoe_day_ahead_prices("wrong", "NL", start, end, base_url=f"{server}/api")
    with pytest.raises(OnlineSourceError, match="token: got nothing"):
        fetch_entsoe_day_ahead_prices("", "NL", start, end)
    with pytest.raises(OnlineSourceError, match="area: got 'Atlantis'"):
        fetch_entsoe_day_ahead_prices(TOKEN, "Atlantis", start, end)
    with pytest.raises(OnlineSourceError, match="naive"):
        fetch_entsoe_day_ahead_prices(TOKEN, "NL", dt.datetime(2024, 5, 1), end)


def test_acn_sessions_follow_pages_and_round_trip_through_the_importer(server: str, tmp_path: Path) -> None:
    start, end = dt.datetime(2019, 5, 1, tzinfo=UTC), dt.datetime(2019, 5, 2, tzinfo=UTC)
    sessions, n_dropped = fetch_acn_sessions(TOKEN, "caltech", start, end, base_url=f"{server}/acn/")
    assert n_dropped == 0
    assert [s.station_id for s in sessions] == ["2-39-131-30", "2-39-88-24"]
    first, second = sessions
    assert first.arrival_utc == dt.datetime(2019, 5, 1, 8, 18, 45, tzinfo=UTC)
    assert first.delivered_energy_kwh == 44.069
    assert first.requested_energy_kwh == 60.0
    assert first.is_claimed
    assert second.requested_energy_kwh is None
    assert not second.is_claimed
    file = tmp_path / "acn.csv"
    file.write_text(caltech_sessions_csv(sessions))
    assert read_caltech_sessions_csv(file) == sessions


def test_acn_refusal_is_clear(server: str) -> None:
    start, end = dt.datetime(2019, 5, 1, tzinfo=UTC), dt.datetime(2019, 5, 2, tzinfo=UTC)
    with pytest.raises(OnlineSourceError, match=r"ACN-Data refused the request \(HTTP 401\)"):
        fetch_acn_sessions("wrong", "caltech", start, end, base_url=f"{server}/acn/")
    with pytest.raises(OnlineSourceError, match="site: got 'mars'"):
        fetch_acn_sessions(TOKEN, "mars", start, end)
    with pytest.raises(OnlineSourceError, match="end: got"):
        fetch_acn_sessions(TOKEN, "caltech", end, start)


def test_cli_fetches_prices_into_the_import_format(server: str, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from smac_rl.cli.main import app
    from smac_rl.data.importers import read_prices_csv

    out = tmp_path / "prices.csv"
    args = ["data", "fetch-prices", "--area", "NL", "--start", "2024-05-01T00:00:00+02:00"]
    args += ["--end", "2024-05-02T00:00:00+02:00", "--out", str(out), "--base-url", f"{server}/api"]
    result = CliRunner().invoke(app, args, env={"SMAC_ENTSOE_TOKEN": TOKEN})
    assert result.exit_code == 0, (result.output, result.stderr, result.exception)
    prices = read_prices_csv(out)
    assert len(prices) == 24
    assert prices.index[0] == dt.datetime(2024, 4, 30, 22, tzinfo=UTC)
    refused = CliRunner().invoke(app, args, env={"SMAC_ENTSOE_TOKEN": ""})
    assert refused.exit_code == 1
    assert "token: got nothing" in refused.output


def test_cli_verifies_the_bundle() -> None:
    from typer.testing import CliRunner

    from smac_rl.cli.main import app

    result = CliRunner().invoke(app, ["data", "verify"])
    assert result.exit_code == 0, result.output
    assert "bundle intact: 10 files match PROVENANCE.json" in result.output


def test_a_garbled_answer_is_a_clear_error(server: str) -> None:
    start, end = dt.datetime(2024, 4, 30, 22, tzinfo=UTC), dt.datetime(2024, 5, 1, 22, tzinfo=UTC)
    with pytest.raises(OnlineSourceError, match="ENTSO-E"):
        fetch_entsoe_day_ahead_prices(TOKEN, "NL", start, end, base_url=f"{server}/garbled")
    with pytest.raises(OnlineSourceError, match="ACN-Data answered with a page that is not JSON"):
        fetch_acn_sessions(TOKEN, "caltech", start, end, base_url=f"{server}/garbled/")
