"""``smac data``: the bundle and the online sources."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Annotated

import typer

from smac_rl.cli.common import console, data_extra_missing, error_console, fail, write_output
from smac_rl.core.errors import SmacError

data_app = typer.Typer(
    rich_markup_mode=None, help="The data bundle and the online sources.", no_args_is_help=True
)


@data_app.command("verify")
def data_verify() -> None:
    """Check every bundled data file against the sha256 in its provenance file."""
    try:
        from smac_rl.data.loaders import provenance, verify_bundle
    except ImportError as exc:
        raise data_extra_missing(exc) from None
    problems = verify_bundle()
    for problem in problems:
        error_console.print(f"[bold red]error:[/] {problem}", highlight=False, soft_wrap=True)
    if problems:
        raise typer.Exit(code=1)
    console.print(f"bundle intact: {len(provenance()['files'])} files match PROVENANCE.json", highlight=False)


def _instant(name: str, text: str) -> dt.datetime:
    try:
        value = dt.datetime.fromisoformat(text)
    except ValueError:
        raise fail(
            f"{name}: got {text!r}; expected an ISO 8601 time with offset, e.g. 2024-05-01T00:00:00Z"
        ) from None
    if value.tzinfo is None:
        raise fail(f"{name}: got {text!r}; expected a time with a UTC offset (Z or +02:00)")
    return value


@data_app.command("fetch-prices")
def data_fetch_prices(
    area: Annotated[str, typer.Option(help="ENTSO-E bidding zone (NL, DE_LU, ES, IT_NORD, FI...).")],
    start: Annotated[str, typer.Option(help="Start, ISO 8601 with offset.")],
    end: Annotated[str, typer.Option(help="End (exclusive), ISO 8601 with offset.")],
    out: Annotated[Path, typer.Option(help="Prices CSV to write (the --prices format of scenario import).")],
    token: Annotated[
        str, typer.Option(envvar="SMAC_ENTSOE_TOKEN", help="ENTSO-E API token.", show_default=False)
    ] = "",
    base_url: Annotated[
        str | None, typer.Option(help="Endpoint instead of the public one (proxy, mirror).")
    ] = None,
) -> None:
    """Download day-ahead prices from the ENTSO-E Transparency Platform (needs a token)."""
    try:
        from smac_rl.data.online import fetch_entsoe_day_ahead_prices
    except ImportError as exc:
        raise data_extra_missing(exc) from None
    first, last = _instant("start", start), _instant("end", end)
    try:
        prices = fetch_entsoe_day_ahead_prices(token, area, first, last, base_url)
    except SmacError as exc:
        raise fail(str(exc)) from None
    write_output(out, prices.to_csv(date_format="%Y-%m-%dT%H:%M:%SZ", float_format="%.6f"))
    console.print(f"wrote {out}: {len(prices)} prices of {area}", highlight=False, soft_wrap=True)


@data_app.command("fetch-acn")
def data_fetch_acn(
    site: Annotated[str, typer.Option(help="ACN site: caltech, jpl or office001.")],
    start: Annotated[str, typer.Option(help="Start of the connection times, ISO 8601 with offset.")],
    end: Annotated[str, typer.Option(help="End (exclusive), ISO 8601 with offset.")],
    out: Annotated[Path, typer.Option(help="Sessions CSV to write (the caltech layout of scenario import).")],
    token: Annotated[
        str, typer.Option(envvar="SMAC_ACN_TOKEN", help="ACN-Data API token.", show_default=False)
    ] = "",
    base_url: Annotated[
        str | None, typer.Option(help="API root instead of the public one (proxy, mirror).")
    ] = None,
) -> None:
    """Download charging sessions from ACN-Data (Caltech) (needs a token)."""
    try:
        from smac_rl.data.online import caltech_sessions_csv, fetch_acn_sessions
    except ImportError as exc:
        raise data_extra_missing(exc) from None
    first, last = _instant("start", start), _instant("end", end)
    try:
        sessions, n_dropped = fetch_acn_sessions(token, site, first, last, base_url)
    except SmacError as exc:
        raise fail(str(exc)) from None
    write_output(out, caltech_sessions_csv(sessions))
    console.print(
        f"wrote {out}: {len(sessions)} sessions of {site} ({n_dropped} left out: no energy delivered)",
        highlight=False,
        soft_wrap=True,
    )
