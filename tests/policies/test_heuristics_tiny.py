"""Both heuristics on the tiny scenario of tests/core/tiny.py, every KPI derived by hand.

Headroom for EVs = import limit 29 - base load 5 = 24 kW in every step; dt = 1 h.
"""

from __future__ import annotations

import numpy as np
import pytest

from smac_rl.core.arrays import compile_scenario
from smac_rl.core.errors import SmacError
from smac_rl.policies import make_heuristic, run_policy
from tests.core.tiny import tiny_scenario


def test_uncontrolled_on_tiny() -> None:
    arrays = compile_scenario(tiny_scenario())
    trace, kpis = run_policy(arrays, make_heuristic("uncontrolled"))
    # Step 0: S1 asks min(DC 20, EV 50, (60-30)/1) = 20 kW, S2 asks min(AC 11.04, EV 10, 10) = 10 kW.
    # 30 kW > 24 kW headroom: every charging setpoint scaled by 24/30 = 0.8 -> S1 16, S2 8.
    # Step 1: S1 asks min(20, 60-46=14) = 14 kW; S2 has left. Steps 2, 3: S1 full, nothing.
    np.testing.assert_allclose(trace.ev_power_kw, [[16, 8], [14, 0], [0, 0], [0, 0]])
    # Import = base 5 + EVs: 29, 19, 5, 5 kW.
    np.testing.assert_allclose(trace.grid_import_kw, [29, 19, 5, 5])
    # Energy cost = 29*0.30 + 19*0.10 + 5*0.20 + 5*0.40 = 8.7 + 1.9 + 1.0 + 2.0 = 13.6 EUR.
    assert kpis.energy_cost_eur == pytest.approx(13.6)
    # Demand charge = 1 EUR/kW * peak 29 kW = 29 EUR.
    assert kpis.peak_import_kw == pytest.approx(29.0)
    assert kpis.demand_charge_eur == pytest.approx(29.0)
    # S2 leaves with 20 + 8 = 28 of its 30 kWh target: unmet 2 kWh, * 2 EUR/kWh = 4 EUR. S1 reaches 60.
    assert kpis.unmet_energy_kwh == pytest.approx(2.0)
    assert kpis.unmet_energy_cost_eur == pytest.approx(4.0)
    assert kpis.sessions_fully_served_frac == pytest.approx(0.5)
    # Total = 13.6 + 29 + 0 + 4 = 46.6 EUR.
    assert kpis.total_cost_eur == pytest.approx(46.6)
    # Delivered = 16 + 8 + 14 = 38 kWh; projection removed 4 (S1) + 2 (S2) = 6 kWh from the request.
    assert kpis.energy_delivered_kwh == pytest.approx(38.0)
    assert kpis.projection_adjustment_kwh == pytest.approx(6.0)
    assert kpis.limit_violation_kwh == 0.0
    assert kpis.degradation_cost_eur == 0.0
    assert kpis.v2g_discharged_kwh == 0.0
    assert kpis.storage_throughput_kwh == 0.0
    assert kpis.pv_self_consumption_frac is None


def test_least_laxity_first_on_tiny() -> None:
    arrays = compile_scenario(tiny_scenario())
    trace, kpis = run_policy(arrays, make_heuristic("llf"))
    # Step 0 laxities: S2 = 1 h left - 10 kWh / 10 kW = 0 h; S1 = 3 h - 30 kWh / 20 kW = 1.5 h.
    # S2 first: min(10, headroom 24) = 10 kW; then S1: min(20, 30, 24 - 10 = 14) = 14 kW.
    # Step 1: S1 needs 60 - 44 = 16 kWh: min(20, 16, 24) = 16 kW. Steps 2, 3: nothing.
    np.testing.assert_allclose(trace.ev_power_kw, [[14, 10], [16, 0], [0, 0], [0, 0]])
    np.testing.assert_allclose(trace.grid_import_kw, [29, 21, 5, 5])
    # Energy cost = 29*0.30 + 21*0.10 + 5*0.20 + 5*0.40 = 8.7 + 2.1 + 1.0 + 2.0 = 13.8 EUR.
    assert kpis.energy_cost_eur == pytest.approx(13.8)
    assert kpis.demand_charge_eur == pytest.approx(29.0)
    # Both sessions reach their targets (S1 60, S2 30): nothing unmet.
    assert kpis.unmet_energy_kwh == pytest.approx(0.0)
    assert kpis.sessions_fully_served_frac == pytest.approx(1.0)
    # Total = 13.8 + 29 = 42.8 EUR, 3.8 EUR below uncontrolled.
    assert kpis.total_cost_eur == pytest.approx(42.8)
    assert kpis.energy_delivered_kwh == pytest.approx(40.0)
    # LLF's allocation is already feasible: the projection changes nothing.
    assert kpis.projection_adjustment_kwh == pytest.approx(0.0)
    assert kpis.limit_violation_kwh == 0.0


def test_unknown_heuristic_names_the_choices() -> None:
    with pytest.raises(
        SmacError, match=r"policy: got 'greedy'; expected one of uncontrolled, least_laxity_first"
    ):
        make_heuristic("greedy")
