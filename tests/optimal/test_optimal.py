"""The perfect-foresight optimum: a hand-derived case, replay through the physics, beats heuristics."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest

from smac_rl.core.arrays import ScenarioArrays, compile_scenario
from smac_rl.core.scenario_io import parse_scenario
from smac_rl.data.generator import generate_scenario
from smac_rl.data.template_spec import load_template
from smac_rl.optimal.model import OptimalError
from smac_rl.optimal.solve import SolverStatus, solve_optimal
from smac_rl.policies import HEURISTICS, make_heuristic, run_policy
from tests.core.tiny import tiny_data, tiny_scenario


def test_tiny_optimum_flattens_the_peak() -> None:
    result = solve_optimal(compile_scenario(tiny_scenario()))
    # S2 must take its 10 kWh in step 0 (10 kW, its only step). S1 needs 30 kWh over steps 0..2.
    # With x0 + x1 + x2 = 30 and imports 15 + x0, 5 + x1, 5 + x2, a 1 EUR/kW demand charge beats
    # the price spread (<= 0.2 EUR/kWh), so all three imports equal the peak P:
    # 3 P - 25 = 30 -> P = 55/3; x0 = 10/3, x1 = x2 = 40/3.
    np.testing.assert_allclose(result.ev_power_kw[:3, 0], [10 / 3, 40 / 3, 40 / 3], atol=1e-6)
    np.testing.assert_allclose(result.ev_power_kw[:, 1], [10, 0, 0, 0], atol=1e-6)
    # Energy: base 5*(0.3+0.1+0.2+0.4) = 5.0; S2 10*0.3 = 3.0; S1 0.3*10/3 + 0.1*40/3 + 0.2*40/3 = 5.0.
    # Total = 13.0 + 55/3 = 94/3.
    assert result.kpis.energy_cost_eur == pytest.approx(13.0)
    assert result.kpis.peak_import_kw == pytest.approx(55 / 3)
    assert result.kpis.total_cost_eur == pytest.approx(94 / 3)
    assert result.status is SolverStatus.OPTIMAL


def _generated(template: str, seed: int, import_limit_kw: float | None = None) -> ScenarioArrays:
    spec, _ = generate_scenario(
        load_template(template), dt.date(2024, 5, 6) + dt.timedelta(days=seed), 1, seed
    )
    if import_limit_kw is not None:
        data = spec.model_dump(mode="json")
        data["site"]["grid"]["import_limit_kw"] = import_limit_kw
        spec = parse_scenario(data)
    return compile_scenario(spec)


CASES = [
    ("turku_ultrafast_hub", 1, None),  # storage with self-discharge (binaries), PV, demand charge
    ("turku_ultrafast_hub", 2, 150.0),  # a tight connection
    ("rome_v2g_fleet", 3, None),  # V2G with discharge floors (binaries)
    ("rome_v2g_fleet", 4, 40.0),
]


@pytest.mark.parametrize(("template", "seed", "limit_kw"), CASES)
def test_replayed_optimum_reproduces_its_objective_and_beats_every_heuristic(
    template: str, seed: int, limit_kw: float | None
) -> None:
    arrays = _generated(template, seed, limit_kw)
    result = solve_optimal(arrays)
    kpis = result.kpis
    assert result.status is SolverStatus.OPTIMAL
    # The profile is feasible as solved: the projection removes nothing, no limit is broken ...
    assert kpis.projection_adjustment_kwh == pytest.approx(0.0, abs=1e-6)
    assert kpis.limit_violation_kwh == pytest.approx(0.0, abs=1e-6)
    # ... and the physics gives back the solver's objective.
    assert kpis.total_cost_eur == pytest.approx(result.objective_eur, rel=1e-6, abs=1e-6)
    for name in HEURISTICS:
        _, heuristic = run_policy(arrays, make_heuristic(name))
        assert kpis.total_cost_eur <= heuristic.total_cost_eur + 1e-6


def test_minimum_current_is_refused_until_modelled() -> None:
    data = tiny_data()
    data["site"]["min_current_a"] = 6.0
    with pytest.raises(OptimalError, match=r"site\.min_current_a: the optimum does not model"):
        solve_optimal(compile_scenario(parse_scenario(data)))
