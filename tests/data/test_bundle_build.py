"""Each cleaning rule of the bundle, on small inputs that carry the source files' quirks."""

from __future__ import annotations

import gzip
import json

import numpy as np
import pandas as pd
import pytest

from smac_rl.data import bundle_build as build

PRICE_HEADER = "Country,Datetime (UTC),Datetime (Local),Price (EUR/MWhe)\n"


def _prices_text(rows: list[str]) -> str:
    return PRICE_HEADER + "".join(f"{row}\n" for row in rows)


def _hours(table: pd.DataFrame, *stamps: str) -> pd.DataFrame:
    wanted = pd.to_datetime(list(stamps), utc=True)
    return table.set_index("hour_start_utc").loc[wanted]


def test_prices_two_date_formats_duplicates_empty_row_and_a_missing_hour() -> None:
    text = _prices_text(
        [
            "Netherlands,2022-12-31 21:00:00,2022-12-31 22:00:00,10.0",
            "Netherlands,2022-12-31 22:00:00,2022-12-31 23:00:00,20.0",
            "Netherlands,,,0.0",  # the empty row: dropped
            "Netherlands,31/12/2022 22:00,31/12/2022 23:00,20.0",  # repeated hour, other format: first kept
            "Netherlands,31/12/2022 23:00,01/01/2023 00:00,-3.61",  # dd/mm/YYYY format
            # 2023-01-01 00:00 missing: filled with (-3.61 + 50) / 2 and flagged
            "Netherlands,01/01/2023 01:00,01/01/2023 02:00,50.0",
        ]
    )
    table, report = build.clean_day_ahead_prices(text)
    rows = _hours(
        table,
        "2022-12-31 21:00",
        "2022-12-31 22:00",
        "2022-12-31 23:00",
        "2023-01-01 00:00",
        "2023-01-01 01:00",
    )
    np.testing.assert_allclose(
        rows["price_eur_per_kwh"], [0.010, 0.020, -0.00361, (-3.61 + 50.0) / 2000.0, 0.050]
    )
    assert rows["is_filled"].tolist() == [0, 0, 0, 1, 0]
    assert report.notes["rows_without_time_dropped"] == 1
    assert report.notes["repeated_hours_dropped"] == 1
    assert report.notes["repeated_hours_with_a_different_price"] == 0
    assert report.notes["rows_in_dd_mm_yyyy_format"] == 3
    assert "2023-01-01 00:00" in report.notes["missing_hours_filled"]


def test_prices_cover_2015_to_2024_hourly_and_drop_later_hours() -> None:
    text = _prices_text(
        [
            "Netherlands,2015-01-01 00:00:00,2015-01-01 01:00:00,34.94",
            "Netherlands,07/01/2025 23:00,08/01/2025 00:00,66.19",
        ]
    )
    table, report = build.clean_day_ahead_prices(text)
    assert len(table) == 87672  # 10 years of hours, 2016, 2020 and 2024 leap years: (3653 - 1 + 1) * 24
    assert table["hour_start_utc"].iloc[0] == pd.Timestamp("2015-01-01 00:00", tz="UTC")
    assert table["hour_start_utc"].iloc[-1] == pd.Timestamp("2024-12-31 23:00", tz="UTC")
    assert report.notes["hours_outside_2015_2024_dropped"] == 1


def test_prices_reject_an_unknown_date_format() -> None:
    with pytest.raises(ValueError, match="unparsed UTC times, first at row 2"):
        build.clean_day_ahead_prices(_prices_text(["Netherlands,2015/01/01 00h,x,1.0"]))


def test_elaad_arrivals_strip_the_bom_and_become_fractions() -> None:
    text = '\ufeff"Arrival time","private","public"\n"00:00",25,50\n"00:15",75,50.000001\n'
    table, report = build.clean_elaad_arrivals(text)
    assert list(table.columns) == ["slot_start_local", "private_frac", "public_frac"]
    assert table["slot_start_local"].tolist() == ["00:00", "00:15"]
    np.testing.assert_allclose(table["private_frac"], [0.25, 0.75])
    assert table["public_frac"].sum() == pytest.approx(1.0, abs=1e-9)
    assert report.notes["source_column_sums_pct"]["private"] == 100.0


def test_elaad_quantiles_name_units() -> None:
    text = '\ufeff"Percentage of charging events","private","public"\n0,72,72\n50,8.5,3.1\n'
    table, _ = build.clean_elaad_quantiles(text, "h")
    assert list(table.columns) == ["exceedance_frac", "private_h", "public_h"]
    np.testing.assert_allclose(table["exceedance_frac"], [0.0, 0.5])


def test_elaad_means_sort_and_keep_ragged_rows_as_empty() -> None:
    text = '\ufeff"Arrival Time","home","public","work"\n"05:00",22,20,10.8\n"00:00",30.8,20.9\n'
    table, report = build.clean_elaad_means_by_arrival(text, "kwh")
    assert table["arrival_local"].tolist() == ["00:00", "05:00"]
    assert table["work_kwh"].isna().tolist() == [True, False]
    assert table.loc[1, "work_kwh"] == pytest.approx(10.8)
    assert report.notes["ragged_rows"] == 1


def test_ev_specs_percent_to_fraction_and_zero_to_null() -> None:
    base = {
        "number_of_registrations": 10,
        "battery_capacity": 57.5,
        "max_ac_charge_power": 11,
        "max_dc_charge_power": 170,
        "avg_dc_charge_power": 100,
        "max_ac_discharge_power": 0,
        "max_dc_discharge_power": 0,
    }
    fleet = json.dumps({"Car": {**base, "ac_v2g": "no", "dc_v2g": "yes"}})
    v2g = json.dumps(
        {"Car": {**base, "ch_current": [6, 8], "1ph_ch_efficiency": [75, 0], "3ph_ch_efficiency": [87, 90]}}
    )
    specs, report = build.clean_ev_specs(fleet, v2g)
    assert specs["fleet"][0]["is_dc_v2g"] is True
    assert specs["fleet"][0]["is_ac_v2g"] is False
    assert specs["v2g_2024"][0]["one_phase_charge_efficiency_frac"] == [0.75, None]
    assert specs["v2g_2024"][0]["three_phase_charge_efficiency_frac"] == [0.87, 0.9]
    assert report.notes["unsupported_efficiency_points_set_to_null"] == 1


def test_caltech_times_to_utc_and_bad_sessions_dropped() -> None:
    header = (
        "arrival,departure,requested_energy (kWh),delivered_energy (kWh),station_id,session_id,"
        "estimated_departure,claimed\n"
    )
    rows = [
        "2019-05-01 01:18:45-07:00,2019-05-01 15:52:36-07:00,60,44.069,CA-305,a,"
        "2019-05-01 09:20:45-07:00,True",
        # departure not after arrival: dropped
        "2019-05-01 06:33:14-07:00,2019-05-01 06:33:14-07:00,21,17,CA-314,b,2019-05-01 11:27:14-07:00,False",
        # no energy delivered: dropped
        "2019-05-01 07:00:00-07:00,2019-05-01 08:00:00-07:00,10,0,CA-314,c,2019-05-01 08:00:00-07:00,False",
    ]
    text = header + "".join(f"{row}\n" for row in rows)
    table, report = build.clean_caltech_sessions({"p": text})
    assert table["session_id"].tolist() == ["a"]
    assert table.loc[0, "arrival_utc"] == pd.Timestamp("2019-05-01 08:18:45", tz="UTC")
    assert bool(table.loc[0, "is_claimed"]) is True
    assert report.notes["sessions_dropped_per_period"] == {"p": 2}


def test_acn_tariff_in_eur() -> None:
    text = json.dumps(
        {
            "name": "T",
            "effective": "2019-3-1",
            "schedule": [
                {
                    "id": "S",
                    "effective_start": "06-01",
                    "effective_end": "09-30",
                    "dow_mask": "WEEKDAYS",
                    "times": [0, 8],
                    "tariffs": [0.1, 0.2],
                    "demand_charge": 10.0,
                }
            ],
        }
    )
    cleaned, _ = build.clean_acn_tariff(text)
    block = cleaned["schedule"][0]
    assert block["block_start_h"] == [0.0, 8.0]
    assert block["import_price_eur_per_kwh"] == [pytest.approx(0.08933), pytest.approx(0.17866)]
    assert block["demand_charge_eur_per_kw"] == pytest.approx(8.933)


def test_csv_gz_is_byte_identical_across_writes() -> None:
    table = pd.DataFrame({"hour_start_utc": pd.to_datetime(["2020-01-01 00:00"], utc=True), "x_kw": [1.5]})
    first, second = build.csv_gz_bytes(table), build.csv_gz_bytes(table)
    assert first == second
    assert gzip.decompress(first).decode() == "hour_start_utc,x_kw\n2020-01-01T00:00:00Z,1.5\n"
