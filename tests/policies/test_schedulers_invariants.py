"""Property-based invariants of equal share, earliest deadline first and cheapest hours.

* On the random scenarios of tests/core/test_invariants.py (AC phases, shared chargers, minimum
  current, storage, PV, V2G permissions...), each one's raw output is already feasible: the
  projection moves it by at most 1e-6 kW; it never discharges and leaves the storage idle.
* On random unconstrained DC sites (no site, charger or phase limit binding, no taper), cheapest
  hours meets every departure target that full power can reach within the horizon.
* Equal share on DC sites where only the site limit binds: it draws ``min(headroom, sum of
  bounds)`` and every EV below its own bound gets the largest share (max-min fair).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from smac_rl.core.arrays import compile_scenario
from smac_rl.core.projection import ev_power_bounds
from smac_rl.core.scenario_io import parse_scenario
from smac_rl.core.state import context_at
from smac_rl.policies import EqualShare, make_heuristic, run_policy
from tests.core.test_invariants import PROPERTY_SETTINGS, compile_data, scenario_dicts

TOL_KW = 1e-6
"""Tolerance on powers [kW]."""

START = dt.datetime(2024, 5, 1, tzinfo=dt.UTC)


@pytest.mark.parametrize("name", ["equal_share", "earliest_deadline_first", "price_threshold"])
@PROPERTY_SETTINGS
@given(data=scenario_dicts())
def test_raw_output_is_already_feasible(name: str, data: dict[str, Any]) -> None:
    arrays = compile_data(data)
    trace, kpis = run_policy(arrays, make_heuristic(name))
    moved_kw = np.abs(trace.requested_ev_power_kw - trace.ev_power_kw)
    assert moved_kw.max(initial=0.0) <= TOL_KW, f"projection moved {name} by {moved_kw}"
    assert np.all(trace.requested_ev_power_kw >= 0.0)
    assert np.all(trace.requested_storage_power_kw == 0.0)
    assert np.all(trace.storage_power_kw == 0.0)
    achievable = bool(
        np.all(arrays.series.base_load_kw - arrays.series.pv_available_kw <= arrays.series.import_limit_kw)
    )
    if achievable:
        assert kpis.limit_violation_kwh <= 1e-6


@st.composite
def dc_sites(draw: st.DrawFn, is_unconstrained: bool) -> dict[str, Any]:
    """DC chargers of one connector each, sessions within the horizon on whole 1-h steps.

    Each target is reachable at full power within the session. ``is_unconstrained``: an import
    limit no EV can reach (1e5 kW); else a random one.
    """
    n_steps = draw(st.integers(1, 8))
    chargers: list[dict[str, Any]] = []
    sessions: list[dict[str, Any]] = []
    for k in range(draw(st.integers(1, 4))):
        charger_kw = draw(st.floats(5.0, 150.0))
        chargers.append(
            {"station_id": f"DC{k}", "kind": "dc", "max_power_kw": charger_kw, "connectors": [{"evse_id": 1}]}
        )
        if not draw(st.booleans()):
            continue
        arrival = draw(st.integers(0, n_steps - 1))
        departure = draw(st.integers(arrival + 1, n_steps))
        ev_kw = draw(st.floats(5.0, 150.0))
        efficiency = draw(st.floats(0.8, 1.0))
        capacity = draw(st.floats(10.0, 120.0))
        soc = draw(st.floats(0.0, 1.0))
        reachable = min(min(ev_kw, charger_kw) * efficiency * (departure - arrival), capacity * (1.0 - soc))
        sessions.append(
            {
                "session_id": f"S{k}",
                "station_id": f"DC{k}",
                "evse_id": 1,
                "arrival_utc": (START + dt.timedelta(hours=arrival)).isoformat(),
                "departure_utc": (START + dt.timedelta(hours=departure)).isoformat(),
                "battery_capacity_kwh": capacity,
                "arrival_soc_frac": soc,
                "energy_wanted_kwh": draw(st.floats(0.0, 1.0)) * reachable,
                "ev_max_dc_kw": ev_kw,
                "charge_efficiency_frac": efficiency,
                "taper_start_soc_frac": 1.0,
            }
        )
    limit = 1e5 if is_unconstrained else draw(st.floats(1.0, 300.0))
    return {
        "name": "dc",
        "site": {"site_id": "dc", "chargers": chargers, "grid": {"import_limit_kw": limit}},
        "time_grid": {"start_utc": START.isoformat(), "step_min": 60, "n_steps": n_steps},
        "sessions": sessions,
        "series": {
            "import_price_eur_per_kwh": draw(
                st.lists(st.sampled_from([0.05, 0.10, 0.20, 0.30]), min_size=n_steps, max_size=n_steps)
            ),
            "base_load_kw": draw(st.floats(0.0, 50.0)),
        },
    }


@PROPERTY_SETTINGS
@given(data=dc_sites(is_unconstrained=True))
def test_price_threshold_meets_departures_when_unconstrained(data: dict[str, Any]) -> None:
    arrays = compile_scenario(parse_scenario(data))
    _, kpis = run_policy(arrays, make_heuristic("price_threshold"))
    assert kpis.unmet_energy_kwh <= 1e-6


@PROPERTY_SETTINGS
@given(data=dc_sites(is_unconstrained=False), energy_frac=st.floats(0.0, 1.0))
def test_equal_share_is_work_conserving_and_max_min_fair(data: dict[str, Any], energy_frac: float) -> None:
    arrays = compile_scenario(parse_scenario(data))
    sessions = arrays.sessions
    energy = sessions.arrival_energy_kwh + energy_frac * (
        sessions.target_energy_kwh - sessions.arrival_energy_kwh
    )
    for t in range(arrays.n_steps):
        context = context_at(arrays, t, energy[None, :], np.zeros(1))
        power = EqualShare().act(context).ev_power_kw[0]
        _, upper = ev_power_bounds(context)
        headroom_kw = max(arrays.series.import_limit_kw[t] - arrays.series.base_load_kw[t], 0.0)
        assert power.sum() == pytest.approx(min(headroom_kw, upper[0].sum()), abs=TOL_KW)
        below_bound = power < upper[0] - TOL_KW
        if below_bound.any():
            assert power[below_bound].min() >= power.max() - TOL_KW
