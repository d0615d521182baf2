"""The assembled standard form (:mod:`smac_rl.optimal.assemble`) against the pyomo model it mirrors."""

from __future__ import annotations

from typing import Any

import numpy as np
import pyomo.environ as pyo
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from smac_rl.core.arrays import ScenarioArrays, compile_scenario
from smac_rl.core.forecasts import PerfectForecast
from smac_rl.core.scenario_io import parse_scenario
from smac_rl.core.simulate import replay
from smac_rl.optimal.assemble import assemble, solve_assembled, supports, unsupported_features
from smac_rl.optimal.matrix_solve import MatrixSolver
from smac_rl.optimal.model import BinaryNeeds, build_model
from smac_rl.optimal.mpc import MpcPolicy
from smac_rl.optimal.solve import ModelSolution, SolverStatus, solve_optimal
from smac_rl.policies import run_policy
from tests.core.test_invariants import scenario_dicts
from tests.core.tiny import tiny_data, tiny_scenario
from tests.optimal.test_mpc import _demo_hourly

OBJECTIVES: list[dict[str, Any]] = [
    {"name": "cost"},
    {"name": "peak", "peak_penalty_eur_per_kw": 2.0},
    {"name": "load_balancing"},
    {"name": "setpoint_tracking", "tracking_penalty_eur_per_kwh": 0.7},
    {"name": "v2g_profit"},
]


def _both(
    arrays: ScenarioArrays,
    needs: BinaryNeeds | None = None,
    peak_floor_kw: float | None = None,
    is_rounding_first: bool = False,
) -> tuple[ModelSolution, ModelSolution]:
    """The optimum through the pyomo model and through the assembled standard form."""
    solver = MatrixSolver(time_limit_s=30.0, mip_gap_frac=0.0, is_rounding_first=is_rounding_first)
    model = build_model(arrays, needs)
    if peak_floor_kw is not None:
        model.peak_floor = pyo.Constraint(expr=model.peak >= peak_floor_kw)
    by_pyomo = solver.solve(model, arrays)
    by_arrays = solve_assembled(solver, assemble(arrays, needs, peak_floor_kw))
    return by_pyomo, by_arrays


def _without_tiny_values(value: Any) -> Any:
    """The data with every float of magnitude under 1e-6 set to 0.

    HiGHS mis-solves models with subnormal coefficients (both builds alike: a price of 2.2e-309
    EUR/kWh drawn by hypothesis gave -0.048 and -0.055 EUR for an optimum of -0.0625 EUR).
    """
    if isinstance(value, dict):
        return {k: _without_tiny_values(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_without_tiny_values(v) for v in value]
    if isinstance(value, float) and abs(value) < 1e-6:
        return 0.0
    return value


@st.composite
def _covered_scenarios(draw: st.DrawFn) -> dict[str, Any]:
    """A random scenario (tests/core/test_invariants.py) without minimum current, any objective."""
    data: dict[str, Any] = _without_tiny_values(draw(scenario_dicts()))
    data["site"].pop("min_current_a", None)
    objective = draw(st.sampled_from(OBJECTIVES))
    data["objective"] = objective
    if objective["name"] == "setpoint_tracking":
        n_steps = data["time_grid"]["n_steps"]
        data["series"]["grid_setpoint_kw"] = draw(
            st.lists(st.floats(-50.0, 150.0), min_size=n_steps, max_size=n_steps)
        )
    return data


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=_covered_scenarios(), peak_floor_kw=st.none() | st.floats(0.0, 100.0))
def test_assembled_optimum_is_the_pyomo_optimum(data: dict[str, Any], peak_floor_kw: float | None) -> None:
    """Storage, PV, V2G, demand charge, phase limits, negative prices, every objective: drawn at random."""
    arrays = compile_scenario(parse_scenario(data))
    assert supports(arrays)
    by_pyomo, by_arrays = _both(arrays, peak_floor_kw=peak_floor_kw)
    assert by_arrays.status is by_pyomo.status is SolverStatus.OPTIMAL
    assert by_arrays.objective_eur == pytest.approx(by_pyomo.objective_eur, rel=1e-6, abs=1e-6)


def test_demo_day_with_every_binary_family() -> None:
    """demo_workplace on hourly steps without minimum current: storage, PV, V2G with its binaries,
    negative export prices at noon (the physics-rule binaries), a demand charge. Binaries by the
    relaxation rule, everywhere (the plain MILP), and the rounding path."""
    arrays = _demo_hourly()
    problem = assemble(arrays)
    assert problem.n_binaries > 0
    assert arrays.site.storage_capacity_kwh > 0
    assert arrays.series.pv_available_kw.max() > 0
    assert (arrays.sessions.max_discharge_kw > 0).any()
    assert arrays.site.demand_charge_eur_per_kw > 0
    by_pyomo, by_arrays = _both(arrays)
    assert by_arrays.objective_eur == pytest.approx(by_pyomo.objective_eur, rel=1e-6)
    by_pyomo, by_arrays = _both(arrays, needs=BinaryNeeds.everywhere(arrays))
    assert by_arrays.objective_eur == pytest.approx(by_pyomo.objective_eur, rel=1e-6)
    by_pyomo, by_arrays = _both(arrays, is_rounding_first=True)
    assert by_arrays.path is by_pyomo.path
    assert by_arrays.objective_eur == pytest.approx(by_pyomo.objective_eur, rel=1e-6)


def test_tiny_profile_is_the_hand_derived_one() -> None:
    # tests/optimal/test_optimal.py: S1 levels the imports at 55/3 kW, S2 takes its 10 kWh in step 0.
    arrays = compile_scenario(tiny_scenario())
    solution = solve_assembled(MatrixSolver(), assemble(arrays))
    np.testing.assert_allclose(
        solution.ev_power_kw[:3], [[10 / 3, 10.0], [40 / 3, 0.0], [40 / 3, 0.0]], atol=1e-6
    )
    trace = replay(arrays, solution.ev_power_kw, solution.storage_power_kw)
    assert float(trace.grid_import_kw.max()) == pytest.approx(55 / 3, abs=1e-6)


@pytest.mark.parametrize("horizon_steps", [1, 2, 4])
@pytest.mark.parametrize("objective", OBJECTIVES, ids=[o["name"] for o in OBJECTIVES])
def test_mpc_episode_is_the_same_with_either_builder(horizon_steps: int, objective: dict[str, Any]) -> None:
    """Tiny (tests/core/tiny.py) with every objective: the same episode cost; the same setpoints
    where the windows' optima are unique (``cost`` and ``peak``: tests/optimal/test_mpc.py works
    them by hand). Tracking a 20 kW setpoint and load balancing leave S1's energy free to move
    between steps at equal cost, so the two builds may pick different optima there."""
    data = tiny_data()
    data["objective"] = objective
    data["series"]["grid_setpoint_kw"] = 20.0
    arrays = compile_scenario(parse_scenario(data))
    by_arrays = MpcPolicy(PerfectForecast(), horizon_steps=horizon_steps)
    by_pyomo = MpcPolicy(PerfectForecast(), horizon_steps=horizon_steps, builder="pyomo")
    trace_a, kpis_a = run_policy(arrays, by_arrays)
    trace_p, kpis_p = run_policy(arrays, by_pyomo)
    assert [t.builder for t in by_arrays.timings] == ["assemble"] * arrays.n_steps
    assert [t.builder for t in by_pyomo.timings] == ["pyomo"] * arrays.n_steps
    assert kpis_a.objective_eur == pytest.approx(kpis_p.objective_eur, rel=1e-6, abs=1e-9)
    if objective["name"] in ("cost", "peak"):
        np.testing.assert_allclose(trace_a.ev_power_kw, trace_p.ev_power_kw, atol=1e-6)
        np.testing.assert_allclose(trace_a.storage_power_kw, trace_p.storage_power_kw, atol=1e-6)


def test_foresight_mpc_with_the_assembler_is_the_oracle_on_the_hourly_demo_day() -> None:
    """Storage, PV, V2G and their binaries in every window (tests/optimal/test_mpc.py's check, assembled)."""
    arrays = _demo_hourly()
    oracle = solve_optimal(arrays, mip_gap_frac=0.0)
    policy = MpcPolicy(
        PerfectForecast(), horizon_steps=arrays.n_steps, session_foresight=True, mip_gap_frac=0.0
    )
    _, kpis = run_policy(arrays, policy)
    assert {t.builder for t in policy.timings} == {"assemble"}
    assert kpis.objective_eur == pytest.approx(oracle.kpis.objective_eur, rel=1e-6)
    assert kpis.v2g_discharged_kwh + kpis.storage_throughput_kwh > 0


def test_minimum_current_falls_back_to_pyomo_window_by_window() -> None:
    data = tiny_data()
    data["site"]["min_current_a"] = 6.0
    arrays = compile_scenario(parse_scenario(data))
    assert not supports(arrays)
    assert unsupported_features(arrays) == (
        "minimum charging current (define_minimum_current: y_min, w_top binaries)",
    )
    with pytest.raises(NotImplementedError, match="minimum charging current"):
        assemble(arrays)
    policy = MpcPolicy(PerfectForecast(), horizon_steps=2)
    trace, _ = run_policy(arrays, policy)
    # 6 A on AC: S2 (AC1) is in step 0's window only; later windows hold S1 (DC) alone.
    assert [t.builder for t in policy.timings] == ["pyomo", "assemble", "assemble", "assemble"]
    reference = MpcPolicy(PerfectForecast(), horizon_steps=2, builder="pyomo")
    trace_p, _ = run_policy(arrays, reference)
    np.testing.assert_allclose(trace.ev_power_kw, trace_p.ev_power_kw, atol=1e-6)


def test_unknown_builder_is_named() -> None:
    with pytest.raises(ValueError, match=r"builder: got 'gurobi'; expected one of \('assemble', 'pyomo'\)"):
        MpcPolicy(PerfectForecast(), builder="gurobi")  # type: ignore[arg-type]
