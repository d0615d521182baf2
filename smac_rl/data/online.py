"""Optional adapters for online sources, for users with tokens: ENTSO-E prices and ACN-Data sessions.

Both return what the CSV importers return, so their output feeds ``smac scenario import``. Both
take a ``base_url`` so that a proxy, a mirror or a test server on loopback can stand in for the
public endpoint.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import warnings
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urljoin

import pandas as pd
import requests

from smac_rl.core.errors import SmacError
from smac_rl.data.importers import CaltechSession

ENTSOE_URL = "https://web-api.tp.entsoe.eu/api"
ACN_DATA_URL = "https://ev.caltech.edu/api/v1/"
TIMEOUT_S = 60.0


class OnlineSourceError(SmacError):
    """An online source refused or failed a request; the message says which and why."""


class _RebasedSession(requests.Session):
    """A session that sends requests for ``public_url`` to ``base_url`` instead."""

    def __init__(self, public_url: str, base_url: str) -> None:
        super().__init__()
        self._public_url, self._base_url = public_url, base_url

    def request(self, method: str | bytes, url: str | bytes, *args: Any, **kwargs: Any) -> requests.Response:
        """Send the request, rebased when it targets the public URL."""
        target = url.decode() if isinstance(url, bytes) else url
        if target.startswith(self._public_url):
            target = self._base_url + target[len(self._public_url) :]
        verb = method.decode() if isinstance(method, bytes) else method
        return super().request(verb, target, *args, **kwargs)


def _check_range(start_utc: dt.datetime, end_utc: dt.datetime) -> None:
    if start_utc.tzinfo is None or end_utc.tzinfo is None:
        raise OnlineSourceError("start/end: got a naive datetime; expected timezone-aware instants")
    if end_utc <= start_utc:
        raise OnlineSourceError(
            f"end: got {end_utc.isoformat()}; expected a time after start {start_utc.isoformat()}"
        )


def fetch_entsoe_day_ahead_prices(
    token: str, area: str, start_utc: dt.datetime, end_utc: dt.datetime, base_url: str | None = None
) -> pd.Series:
    """Day-ahead prices of a bidding zone from the ENTSO-E Transparency Platform (entsoe-py).

    Args:
        token: ENTSO-E API security token.
        area: Bidding zone or country code known to entsoe-py (``NL``, ``DE_LU``, ``ES``...).
        start_utc: Start, timezone-aware.
        end_utc: End (exclusive), timezone-aware.
        base_url: Endpoint instead of the public one (proxy, mirror, test server).

    Returns:
        Prices [EUR/kWh] named ``price_eur_per_kwh``, indexed by UTC interval start (``time_utc``).

    Raises:
        OnlineSourceError: Without a token, for an unknown area, a refused request or no data.
    """
    from entsoe.entsoe import EntsoePandasClient
    from entsoe.exceptions import NoMatchingDataError
    from entsoe.mappings import lookup_area

    if not token:
        raise OnlineSourceError(
            "token: got nothing; expected an ENTSO-E API token (--token or SMAC_ENTSOE_TOKEN)"
        )
    _check_range(start_utc, end_utc)
    try:
        lookup_area(area)
    except (ValueError, KeyError):
        raise OnlineSourceError(
            f"area: got {area!r}; expected an ENTSO-E bidding zone such as NL or DE_LU"
        ) from None
    session = _RebasedSession(ENTSOE_URL, base_url) if base_url else None
    client = EntsoePandasClient(
        api_key=token, session=session, retry_count=1, retry_delay=0, timeout=int(TIMEOUT_S)
    )
    start, end = pd.Timestamp(start_utc).tz_convert("UTC"), pd.Timestamp(end_utc).tz_convert("UTC")
    try:
        with warnings.catch_warnings():
            # entsoe-py 0.8 still relies on behaviour pandas 3 deprecates; the values are unaffected.
            warnings.filterwarnings("ignore", message="Converting a Series or array of length 1")
            warnings.filterwarnings(
                "ignore", message="It looks like you're using an HTML parser to parse an XML"
            )
            raw = client.query_day_ahead_prices(area, start=start, end=end)
    except NoMatchingDataError:
        raise OnlineSourceError(f"ENTSO-E: no day-ahead prices for {area} from {start} to {end}") from None
    except requests.HTTPError as exc:
        status = exc.response.status_code if exc.response is not None else "?"
        raise OnlineSourceError(
            f"ENTSO-E refused the request (HTTP {status}); check the token and the area"
        ) from None
    except requests.RequestException as exc:
        raise OnlineSourceError(f"ENTSO-E could not be reached ({type(exc).__name__})") from None
    except (ValueError, KeyError, AttributeError) as exc:
        raise OnlineSourceError(f"ENTSO-E answered with a document that could not be read ({exc})") from None
    prices = raw.astype(float).tz_convert("UTC") / 1000.0
    prices = prices[(prices.index >= start) & (prices.index < end)]
    prices.index.name, prices.name = "time_utc", "price_eur_per_kwh"
    return prices


def fetch_acn_sessions(
    token: str, site: str, start_utc: dt.datetime, end_utc: dt.datetime, base_url: str | None = None
) -> tuple[list[CaltechSession], int]:
    """Charging sessions from ACN-Data (Caltech) whose connection time lies in ``[start, end)``.

    Args:
        token: ACN-Data API token.
        site: ACN site: ``caltech``, ``jpl`` or ``office001``.
        start_utc: Start, timezone-aware.
        end_utc: End (exclusive), timezone-aware.
        base_url: API root instead of the public one (proxy, mirror, test server), ending in ``/``.

    Returns:
        Sessions in the importer's Caltech form (``requested_energy_kwh`` from the user's input, if
        any), and the number of sessions left out because they delivered no energy or ended before
        they started (the importer refuses such rows).

    Raises:
        OnlineSourceError: Without a token, for an unknown site, a refused request or a malformed page.
    """
    if not token:
        raise OnlineSourceError(
            "token: got nothing; expected an ACN-Data API token (--token or SMAC_ACN_TOKEN)"
        )
    if site not in {"caltech", "jpl", "office001"}:
        raise OnlineSourceError(f"site: got {site!r}; expected caltech, jpl or office001")
    _check_range(start_utc, end_utc)
    root = base_url or ACN_DATA_URL
    rfc1123 = "%a, %d %b %Y %H:%M:%S GMT"
    where = (
        f'connectionTime>="{start_utc.astimezone(dt.UTC).strftime(rfc1123)}" and '
        f'connectionTime<"{end_utc.astimezone(dt.UTC).strftime(rfc1123)}"'
    )
    url: str | None = urljoin(root, f"sessions/{site}")
    params: dict[str, str] | None = {"where": where, "sort": "connectionTime"}
    sessions: list[CaltechSession] = []
    with requests.Session() as http:
        while url is not None:
            try:
                response = http.get(url, params=params, auth=(token, ""), timeout=TIMEOUT_S)
            except requests.RequestException as exc:
                raise OnlineSourceError(f"ACN-Data could not be reached ({type(exc).__name__})") from None
            if response.status_code != 200:
                raise OnlineSourceError(
                    f"ACN-Data refused the request (HTTP {response.status_code}); check the token"
                )
            try:
                page = response.json()
            except ValueError:
                raise OnlineSourceError("ACN-Data answered with a page that is not JSON") from None
            sessions.extend(_acn_session(item) for item in page.get("_items", []))
            following = page.get("_links", {}).get("next", {}).get("href")
            url, params = (urljoin(root, following), None) if following else (None, None)
    usable = [s for s in sessions if s.delivered_energy_kwh > 0 and s.departure_utc > s.arrival_utc]
    return usable, len(sessions) - len(usable)


def _acn_session(item: dict[str, Any]) -> CaltechSession:
    try:
        inputs = item.get("userInputs") or []
        requested = inputs[-1].get("kWhRequested") if inputs else None
        return CaltechSession(
            session_id=str(item["sessionID"]),
            station_id=str(item["stationID"]),
            arrival_utc=parsedate_to_datetime(item["connectionTime"]).astimezone(dt.UTC),
            departure_utc=parsedate_to_datetime(item["disconnectTime"]).astimezone(dt.UTC),
            delivered_energy_kwh=float(item["kWhDelivered"]),
            requested_energy_kwh=None if requested is None else float(requested),
            is_claimed=bool(inputs),
        )
    except KeyError as exc:
        raise OnlineSourceError(f"ACN-Data: a session without the field {exc}") from None
    except (TypeError, ValueError) as exc:
        raise OnlineSourceError(f"ACN-Data: a session that could not be read ({exc})") from None


def caltech_sessions_csv(sessions: list[CaltechSession]) -> str:
    """Sessions in the Caltech CSV layout that ``smac scenario import --layout caltech`` reads."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(
        [
            "arrival",
            "departure",
            "requested_energy (kWh)",
            "delivered_energy (kWh)",
            "station_id",
            "session_id",
            "estimated_departure",
            "claimed",
        ]
    )
    for s in sessions:
        writer.writerow(
            [
                s.arrival_utc.isoformat(sep=" "),
                s.departure_utc.isoformat(sep=" "),
                "" if s.requested_energy_kwh is None else f"{s.requested_energy_kwh:g}",
                f"{s.delivered_energy_kwh:g}",
                s.station_id,
                s.session_id,
                "",
                str(s.is_claimed),
            ]
        )
    return buffer.getvalue()
