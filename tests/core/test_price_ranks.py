"""The price-rank site features (``is_price_rank_observed``), by hand and by invariant."""

from __future__ import annotations

import dataclasses

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from smac_rl.core.arrays import compile_scenario
from smac_rl.core.observation import (
    LOAD_OUTLOOK_FEATURES,
    N_CALENDAR_FEATURES,
    PRICE_OUTLOOK_FEATURES,
    SITE_FEATURES,
    ObservationLayout,
    calendar_table,
)
from smac_rl.core.scenario_io import parse_scenario
from smac_rl.core.state import context_at
from tests.core.tiny import tiny_data, tiny_scenario


def test_ranks_of_the_tiny_day_by_hand() -> None:
    # Hourly prices 0.30, 0.10, 0.20, 0.40 EUR/kWh; every window is cut at the 4-step day's end.
    arrays = compile_scenario(tiny_scenario())
    np.testing.assert_allclose(arrays.series.import_price_eur_per_kwh, [0.30, 0.10, 0.20, 0.40])
    assert calendar_table(arrays).shape == (4, N_CALENDAR_FEATURES)  # computed only when observed
    ranks = calendar_table(arrays, is_price_rank_observed=True)[:, N_CALENDAR_FEATURES:]
    assert [f.name for f in PRICE_OUTLOOK_FEATURES] == [
        "import_price_rank_next_2h_frac",
        "import_price_rank_next_4h_frac",
        "import_price_rank_next_8h_frac",
        "import_price_rank_next_12h_frac",
        "import_price_rank_next_24h_frac",
        "import_price_min_next_24h_eur_per_kwh",
        "import_price_max_next_24h_eur_per_kwh",
    ]
    expected = [
        # 2 h: 0.10 of (0.30, 0.10) is below 0.30; 4 h and more: 0.10 and 0.20 of the four.
        [0.5, 0.5, 0.5, 0.5, 0.5, 0.10, 0.40],
        # 0.10 is the cheapest of what is left.
        [0.0, 0.0, 0.0, 0.0, 0.0, 0.10, 0.40],
        [0.0, 0.0, 0.0, 0.0, 0.0, 0.20, 0.40],
        # The last step is alone in its windows.
        [0.0, 0.0, 0.0, 0.0, 0.0, 0.40, 0.40],
    ]
    np.testing.assert_allclose(ranks, expected)


def test_the_ranked_layout_appends_site_features_and_keeps_everything_else() -> None:
    arrays = compile_scenario(tiny_scenario())
    base = ObservationLayout(4)
    ranked = dataclasses.replace(base, is_price_rank_observed=True)
    n_site, n_extra = len(SITE_FEATURES), len(PRICE_OUTLOOK_FEATURES)
    assert ranked.size == base.size + n_extra
    assert (
        ranked.names()
        == base.names()[:n_site] + [f.name for f in PRICE_OUTLOOK_FEATURES] + base.names()[n_site:]
    )
    assert len(ranked.units()) == len(ranked.scales()) == ranked.size
    energy = arrays.sessions.arrival_energy_kwh[None, :]
    for t in range(arrays.n_steps):
        context = context_at(arrays, t, energy, np.asarray([0.0]))
        plain, with_ranks = base.observe(arrays, context)[0], ranked.observe(arrays, context)[0]
        np.testing.assert_array_equal(with_ranks[:n_site], plain[:n_site])
        np.testing.assert_array_equal(
            with_ranks[n_site : n_site + n_extra], calendar_table(arrays, is_price_rank_observed=True)[t, 5:]
        )
        np.testing.assert_array_equal(with_ranks[n_site + n_extra :], plain[n_site:])


@given(st.lists(st.integers(-50, 300), min_size=2, max_size=40))
def test_the_day_rank_is_the_share_of_cheaper_steps_left(cents: list[int]) -> None:
    # Hourly steps: the 24 h window covers the rest of a day of up to 24 steps; with more steps the
    # window is the next 24.
    data = tiny_data()
    data["time_grid"]["n_steps"] = len(cents)
    data["sessions"] = []
    data["series"] = {"import_price_eur_per_kwh": [c / 100 for c in cents]}
    arrays = compile_scenario(parse_scenario(data, source="ranks"))
    prices = arrays.series.import_price_eur_per_kwh
    table = calendar_table(arrays, is_price_rank_observed=True)
    day_rank = table[:, N_CALENDAR_FEATURES + 4]
    for t in range(len(cents)):
        window = prices[t : t + 24]
        assert day_rank[t] == np.mean(window < prices[t])
        assert table[t, -2] == window.min()
        assert table[t, -1] == window.max()
        assert 0.0 <= day_rank[t] < 1.0  # the step itself is never below itself


@given(st.lists(st.integers(0, 200), min_size=2, max_size=40))
def test_the_load_outlook_is_the_highest_net_load_ahead(base_kw: list[int]) -> None:
    # Hourly steps, no PV on the tiny site: the outlook over h hours is the highest base load of the
    # step and the h - 1 after it, cut at the end.
    data = tiny_data()
    data["time_grid"]["n_steps"] = len(base_kw)
    data["sessions"] = []
    data["series"] = {"import_price_eur_per_kwh": 0.2, "base_load_kw": [float(b) for b in base_kw]}
    arrays = compile_scenario(parse_scenario(data, source="loads"))
    table = calendar_table(arrays, None, False, True)
    assert table.shape == (len(base_kw), N_CALENDAR_FEATURES + len(LOAD_OUTLOOK_FEATURES))
    for t in range(len(base_kw)):
        expected = [max(base_kw[t : t + h]) for h in (4, 12, 24)]
        np.testing.assert_array_equal(table[t, N_CALENDAR_FEATURES:], expected)


def test_both_outlooks_come_in_one_order_everywhere() -> None:
    arrays = compile_scenario(tiny_scenario())
    both = ObservationLayout(4, None, True, True)
    names = both.names()
    n_site = len(SITE_FEATURES)
    extra = [f.name for f in PRICE_OUTLOOK_FEATURES] + [f.name for f in LOAD_OUTLOOK_FEATURES]
    assert names[n_site : n_site + len(extra)] == extra
    assert [f.name for f in LOAD_OUTLOOK_FEATURES] == [
        "net_load_max_next_4h_kw",
        "net_load_max_next_12h_kw",
        "net_load_max_next_24h_kw",
    ]
    context = context_at(arrays, 1, arrays.sessions.arrival_energy_kwh[None, :], np.asarray([0.0]))
    row = both.observe(arrays, context)[0]
    calendar = calendar_table(arrays, None, True, True)[1]
    np.testing.assert_array_equal(row[n_site : n_site + len(extra)], calendar[N_CALENDAR_FEATURES:])
    # The tiny site's base load is 5 kW at every step and it has no PV.
    np.testing.assert_array_equal(row[n_site + len(PRICE_OUTLOOK_FEATURES) : n_site + len(extra)], [5.0] * 3)
