"""Equal share, earliest deadline first and cheapest hours on tiny sites, every number derived by hand.

Unless a test says otherwise: steps of 1 h, efficiencies 1, no taper, base load 5 kW, every EV
arrives at 00:00 with a 100 kWh battery at 20 % (room for 80 kWh).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from smac_rl.core.arrays import ScenarioArrays, compile_scenario
from smac_rl.core.arraytypes import FloatArray
from smac_rl.core.errors import SmacError
from smac_rl.core.projection import project
from smac_rl.core.scenario_io import load_builtin_scenario, parse_scenario
from smac_rl.core.state import context_at
from smac_rl.policies import (
    ALIASES,
    HEURISTICS,
    EarliestDeadlineFirst,
    EpisodePolicy,
    EqualShare,
    Policy,
    PriceThreshold,
    make_heuristic,
    run_policy,
)
from tests.core.tiny import tiny_data

NEW = ("equal_share", "earliest_deadline_first", "price_threshold")


def _dc(station_id: str, max_power_kw: float, n_connectors: int = 1) -> dict[str, Any]:
    connectors = [{"evse_id": e} for e in range(1, n_connectors + 1)]
    return {"station_id": station_id, "kind": "dc", "max_power_kw": max_power_kw, "connectors": connectors}


def _ac_1ph(station_id: str, phase: str) -> dict[str, Any]:
    """Single-phase AC, 32 A at 250 V = 8 kW; 1000 / 250 = 4 A per kW on its phase."""
    return {
        "station_id": station_id,
        "kind": "ac",
        "n_phases": 1,
        "phase": phase,
        "voltage_v": 250.0,
        "max_current_a": 32.0,
        "connectors": [{"evse_id": 1}],
    }


def _ev(
    session_id: str, station_id: str, wanted_kwh: float, n_steps: int, evse_id: int = 1, max_kw: float = 50.0
) -> dict[str, Any]:
    return {
        "session_id": session_id,
        "station_id": station_id,
        "evse_id": evse_id,
        "arrival_utc": "2024-05-01T00:00:00Z",
        "departure_utc": f"2024-05-01T{n_steps:02d}:00:00Z",
        "battery_capacity_kwh": 100.0,
        "arrival_soc_frac": 0.2,
        "energy_wanted_kwh": wanted_kwh,
        "ev_max_dc_kw": max_kw,
        "ev_max_ac_kw": min(max_kw, 22.0),
        "taper_start_soc_frac": 1.0,
    }


def _site(
    chargers: list[dict[str, Any]],
    sessions: list[dict[str, Any]],
    import_limit_kw: float,
    prices: list[float] | None = None,
    min_current_a: float | None = None,
    **grid: float,
) -> ScenarioArrays:
    """The tiny scenario of tests/core/tiny.py with other chargers, sessions, limits and prices."""
    data = tiny_data()
    prices = prices or [0.20]
    data["site"]["chargers"] = chargers
    if min_current_a is not None:
        data["site"]["min_current_a"] = min_current_a
    data["site"]["grid"] = {"import_limit_kw": import_limit_kw, **grid}
    data["time_grid"]["n_steps"] = len(prices)
    data["sessions"] = sessions
    data["series"] = {"import_price_eur_per_kwh": prices, "base_load_kw": 5.0}
    return compile_scenario(parse_scenario(data))


def _first_step(arrays: ScenarioArrays, policy: Policy) -> FloatArray:
    """A policy's raw EV setpoints at step 0 [kW], checked to pass the projection unchanged."""
    if isinstance(policy, EpisodePolicy):
        policy.begin_episode(arrays)
    context = context_at(
        arrays,
        0,
        arrays.sessions.arrival_energy_kwh[None, :],
        np.array([arrays.site.storage_initial_energy_kwh]),
    )
    raw = policy.act(context)
    np.testing.assert_allclose(project(context, raw).ev_power_kw, raw.ev_power_kw, atol=1e-9)
    assert np.all(raw.storage_power_kw == 0.0)
    return np.asarray(raw.ev_power_kw[0], dtype=np.float64)


# --------------------------------------------------------------------------------------------------
# Equal share
# --------------------------------------------------------------------------------------------------


def test_equal_share_splits_the_site_headroom_equally() -> None:
    # Headroom 15 - 5 = 10 kW, two EVs that could each take 20 kW: 10 / 2 = 5 kW each.
    arrays = _site(
        [_dc("DC1", 20.0), _dc("DC2", 20.0)], [_ev("A", "DC1", 30, 1), _ev("B", "DC2", 30, 1)], 15.0
    )
    np.testing.assert_allclose(_first_step(arrays, EqualShare()), [5.0, 5.0])


def test_equal_share_passes_a_capped_evs_surplus_to_the_others() -> None:
    # B takes at most 3 kW (its own limit): it stops at 3, A rises on to 10 - 3 = 7 kW.
    sessions = [_ev("A", "DC1", 30, 1), _ev("B", "DC2", 30, 1, max_kw=3.0)]
    arrays = _site([_dc("DC1", 20.0), _dc("DC2", 20.0)], sessions, 15.0)
    np.testing.assert_allclose(_first_step(arrays, make_heuristic("round_robin")), [7.0, 3.0])
    # Same with the energy still wanted as the cap: B wants 2 kWh -> 2 kW, A gets 8 kW.
    sessions = [_ev("A", "DC1", 30, 1), _ev("B", "DC2", 2, 1)]
    arrays = _site([_dc("DC1", 20.0), _dc("DC2", 20.0)], sessions, 15.0)
    np.testing.assert_allclose(_first_step(arrays, EqualShare()), [8.0, 2.0])


def test_equal_share_respects_a_shared_charger_rating() -> None:
    # DC1 (8 kW) feeds A and B, DC2 (20 kW) feeds C; headroom 20 - 5 = 15 kW.
    # All rise together to 4 kW: DC1 is used up (4 + 4 = 8), the site has 15 - 12 = 3 kW left,
    # which goes to C alone: A 4, B 4, C 7 kW.
    sessions = [_ev("A", "DC1", 30, 1), _ev("B", "DC1", 30, 1, evse_id=2), _ev("C", "DC2", 30, 1)]
    arrays = _site([_dc("DC1", 8.0, n_connectors=2), _dc("DC2", 20.0)], sessions, 20.0)
    np.testing.assert_allclose(_first_step(arrays, EqualShare()), [4.0, 4.0, 7.0])


def test_equal_share_respects_a_feeder_phase_limit() -> None:
    # Feeder limit 20 A on each phase, plenty of site headroom (100 - 5 kW). A and B are on L1 at
    # 4 A per kW: 20 A / 2 = 10 A each = 2.5 kW. C is on L2 alone, capped by its own 4 kW (16 A).
    sessions = [
        _ev("A", "AC1", 30, 1, max_kw=7.0),
        _ev("B", "AC2", 30, 1, max_kw=7.0),
        _ev("C", "AC3", 30, 1, max_kw=4.0),
    ]
    chargers = [_ac_1ph("AC1", "L1"), _ac_1ph("AC2", "L1"), _ac_1ph("AC3", "L2")]
    arrays = _site(chargers, sessions, 100.0, charging_phase_current_limit_a=20.0)
    np.testing.assert_allclose(_first_step(arrays, EqualShare()), [2.5, 2.5, 4.0])


def test_equal_share_leaves_out_a_share_below_the_minimum_current() -> None:
    # Minimum 6 A = 1.5 kW at 250 V. Three EVs on L1 under a 15 A feeder limit: 5 A = 1.25 kW
    # each, below the minimum. The one with the most laxity leaves: laxities 1 h - wanted / 7 kW
    # are -3.29 (A, 30 kWh), -1.86 (B, 20 kWh), -0.43 h (C, 10 kWh): C gets nothing and A, B share
    # 15 A: 7.5 A = 1.875 kW each, above the minimum.
    sessions = [
        _ev("A", "AC1", 30, 1, max_kw=7.0),
        _ev("B", "AC2", 20, 1, max_kw=7.0),
        _ev("C", "AC3", 10, 1, max_kw=7.0),
    ]
    chargers = [_ac_1ph("AC1", "L1"), _ac_1ph("AC2", "L1"), _ac_1ph("AC3", "L1")]
    without = _site(chargers, sessions, 100.0, charging_phase_current_limit_a=15.0)
    np.testing.assert_allclose(_first_step(without, EqualShare()), [1.25, 1.25, 1.25])
    arrays = _site(chargers, sessions, 100.0, min_current_a=6.0, charging_phase_current_limit_a=15.0)
    np.testing.assert_allclose(arrays.site.connector_min_charge_kw, [1.5, 1.5, 1.5])
    np.testing.assert_allclose(_first_step(arrays, EqualShare()), [1.875, 1.875, 0.0])


# --------------------------------------------------------------------------------------------------
# Earliest deadline first
# --------------------------------------------------------------------------------------------------


def test_edf_serves_the_earlier_departure_first() -> None:
    # Headroom 25 - 5 = 20 kW in each of 3 steps, two 20 kW DC chargers.
    # A leaves after 3 steps wanting 50 kWh (laxity 3 - 50/20 = 0.5 h); B after 2 wanting 10 kWh
    # (laxity 2 - 10/20 = 1.5 h). EDF serves B first: B 10, A 20 - 10 = 10 kW. Step 1: B is full,
    # A gets 20 (40 left -> 20). Step 2: A gets its last 20. Both served.
    sessions = [_ev("A", "DC1", 50, 3), _ev("B", "DC2", 10, 2)]
    arrays = _site([_dc("DC1", 20.0), _dc("DC2", 20.0)], sessions, 25.0, prices=[0.2, 0.2, 0.2])
    trace, kpis = run_policy(arrays, make_heuristic("edf"))
    np.testing.assert_allclose(trace.ev_power_kw, [[10, 10], [20, 0], [20, 0]])
    assert kpis.unmet_energy_kwh == pytest.approx(0.0)
    assert kpis.projection_adjustment_kwh == pytest.approx(0.0)
    # LLF serves A (less laxity) first instead: A 20, B 0 in step 0.
    np.testing.assert_allclose(_first_step(arrays, make_heuristic("llf")), [20.0, 0.0])


def test_edf_breaks_ties_by_connector_index() -> None:
    # Same departure, headroom 10 kW: the first connector takes it all.
    arrays = _site(
        [_dc("DC1", 20.0), _dc("DC2", 20.0)], [_ev("A", "DC1", 30, 1), _ev("B", "DC2", 5, 1)], 15.0
    )
    np.testing.assert_allclose(_first_step(arrays, EarliestDeadlineFirst()), [10.0, 0.0])


# --------------------------------------------------------------------------------------------------
# Cheapest hours
# --------------------------------------------------------------------------------------------------


def test_price_threshold_charges_in_the_cheap_steps_on_tiny() -> None:
    arrays = compile_scenario(parse_scenario(tiny_data()))
    trace, kpis = run_policy(arrays, make_heuristic("cheapest_hours"))
    # Prices 0.30, 0.10, 0.20, 0.40. S2 (10 kWh at 10 kW, leaves after step 0): k = 1, its window
    # is step 0 alone -> 10 kW. S1 (30 kWh at 20 kW, leaves after step 2): k = ceil(30/20) = 2.
    # Step 0: window 0.30, 0.10, 0.20 has 2 cheaper steps, not < 2 -> nothing.
    # Step 1: 0 cheaper in 0.10, 0.20 -> 20 kW (headroom 24). Step 2: 10 kWh left, k = 1, window
    # 0.20 alone -> 10 kW. Step 3: S1 has left.
    np.testing.assert_allclose(trace.ev_power_kw, [[0, 10], [20, 0], [10, 0], [0, 0]])
    np.testing.assert_allclose(trace.grid_import_kw, [15, 25, 15, 5])
    # Energy cost = 15*0.30 + 25*0.10 + 15*0.20 + 5*0.40 = 4.5 + 2.5 + 3.0 + 2.0 = 12.0 EUR.
    assert kpis.energy_cost_eur == pytest.approx(12.0)
    # Demand charge = 1 EUR/kW * peak 25 kW; both targets met; total 37.0 EUR (LLF: 42.8).
    assert kpis.demand_charge_eur == pytest.approx(25.0)
    assert kpis.unmet_energy_kwh == pytest.approx(0.0)
    assert kpis.sessions_fully_served_frac == pytest.approx(1.0)
    assert kpis.energy_delivered_kwh == pytest.approx(40.0)
    assert kpis.total_cost_eur == pytest.approx(37.0)
    assert kpis.projection_adjustment_kwh == pytest.approx(0.0)


def test_price_threshold_breaks_ties_toward_the_earlier_step() -> None:
    # One EV, 20 kWh at 20 kW: k = 1 of three equally priced steps -> the first.
    arrays = _site([_dc("DC1", 20.0)], [_ev("A", "DC1", 20, 3)], 100.0, prices=[0.2, 0.2, 0.2])
    trace, kpis = run_policy(arrays, PriceThreshold())
    np.testing.assert_allclose(trace.ev_power_kw, [[20], [0], [0]])
    assert kpis.unmet_energy_kwh == pytest.approx(0.0)


def test_price_threshold_cuts_the_window_at_the_horizon() -> None:
    # A leaves after step 5 but the horizon has 2 steps: window of 2, k = ceil(30/20) = 2 -> both.
    arrays = _site([_dc("DC1", 20.0)], [_ev("A", "DC1", 30, 5)], 100.0, prices=[0.4, 0.1])
    trace, _ = run_policy(arrays, PriceThreshold())
    np.testing.assert_allclose(trace.ev_power_kw, [[20], [10]])


def test_price_threshold_shares_a_binding_site_in_laxity_order() -> None:
    # Both EVs pick step 0 (0.10 before 0.30); headroom 25 - 5 = 20 kW, each asks 20 kW.
    # A (30 kWh, k = 2: charges in both steps) has laxity 2 - 1.5 = 0.5 h, B (10 kWh, k = 1)
    # 2 - 0.5 = 1.5 h: A first gets 20, B nothing. Step 1: A 10 kWh left, k = 1, window 0.30
    # alone -> 10; B 10 kWh, k = 1 -> 20 asked, 10 left of the headroom -> 10. Both served.
    sessions = [_ev("A", "DC1", 30, 2), _ev("B", "DC2", 10, 2)]
    arrays = _site([_dc("DC1", 20.0), _dc("DC2", 20.0)], sessions, 25.0, prices=[0.1, 0.3])
    trace, kpis = run_policy(arrays, PriceThreshold())
    np.testing.assert_allclose(trace.ev_power_kw, [[20, 0], [10, 10]])
    assert kpis.unmet_energy_kwh == pytest.approx(0.0)


def test_price_threshold_needs_the_episode_first() -> None:
    arrays = compile_scenario(parse_scenario(tiny_data()))
    context = context_at(arrays, 0, arrays.sessions.arrival_energy_kwh[None, :], np.zeros(1))
    with pytest.raises(SmacError, match=r"price_threshold: got a step before begin_episode"):
        PriceThreshold().act(context)


# --------------------------------------------------------------------------------------------------
# Registry and batch axis
# --------------------------------------------------------------------------------------------------


def test_new_heuristics_are_registered_with_aliases() -> None:
    assert set(NEW) <= set(HEURISTICS)
    assert ALIASES["round_robin"] == "equal_share"
    assert ALIASES["edf"] == "earliest_deadline_first"
    assert ALIASES["cheapest_hours"] == "price_threshold"
    assert isinstance(make_heuristic("cheapest_hours"), EpisodePolicy)
    with pytest.raises(SmacError, match=r"llf, equal_share, round_robin, earliest_deadline_first, edf"):
        make_heuristic("greedy")


@pytest.mark.parametrize("name", NEW)
def test_batched_act_equals_one_element_at_a_time(name: str) -> None:
    arrays = compile_scenario(load_builtin_scenario("demo_workplace"))
    rng = np.random.default_rng(11)
    n_batch, sessions = 5, arrays.sessions
    t = 52  # 11:00 local: every connector occupied, prices near their low
    energy = sessions.arrival_energy_kwh + rng.uniform(0, 1, (n_batch, sessions.n_sessions)) * (
        sessions.capacity_kwh - sessions.arrival_energy_kwh
    )
    storage = np.full(n_batch, arrays.site.storage_initial_energy_kwh)
    policy = make_heuristic(name)
    if isinstance(policy, EpisodePolicy):
        policy.begin_episode(arrays)
    batched = policy.act(context_at(arrays, t, energy, storage)).ev_power_kw
    assert batched.shape == (n_batch, arrays.site.n_connectors)
    assert np.any(batched > 0.0)
    for b in range(n_batch):
        one = policy.act(context_at(arrays, t, energy[b : b + 1], storage[b : b + 1])).ev_power_kw
        np.testing.assert_allclose(one[0], batched[b], rtol=0.0, atol=1e-12)
