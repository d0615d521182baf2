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
from smac_rl.optimal import assemble as assemble_module
from smac_rl.optimal.assemble import assemble, solve_assembled, supports, unsupported_features
from smac_rl.optimal.matrix_solve import MatrixSolver
from smac_rl.optimal.model import BinaryNeeds, build_model
from smac_rl.optimal.mpc import MpcPolicy
from smac_rl.optimal.solve import ModelSolution, SolverStatus, solve_optimal
from smac_rl.policies import run_policy
from tests.core.tiny import tiny_data, tiny_scenario
from tests.optimal.strategies import floored_scenario_dicts, without_tiny_values
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


def _n_pyomo_binaries(model: pyo.ConcreteModel) -> int:
    return sum(1 for v in model.component_data_objects(pyo.Var) if v.is_binary())


@st.composite
def _scenarios(draw: st.DrawFn) -> dict[str, Any]:
    """A random scenario (tests/core/test_invariants.py, floored: tests/optimal/strategies.py), any
    objective, with the minimum-current option on three draws in four (AC connectors only)."""
    data: dict[str, Any] = draw(floored_scenario_dicts())
    if draw(st.integers(0, 3)) > 0:
        data["site"]["min_current_a"] = draw(st.just(6.0) | st.floats(1.0, 16.0))
    else:
        data["site"].pop("min_current_a", None)
    objective = draw(st.sampled_from(OBJECTIVES))
    data["objective"] = objective
    if objective["name"] == "setpoint_tracking":
        n_steps = data["time_grid"]["n_steps"]
        data["series"]["grid_setpoint_kw"] = draw(
            st.lists(st.floats(-50.0, 150.0).map(without_tiny_values), min_size=n_steps, max_size=n_steps)
        )
    return data


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=_scenarios(), peak_floor_kw=st.none() | st.floats(0.0, 100.0).map(without_tiny_values))
def test_assembled_optimum_is_the_pyomo_optimum(data: dict[str, Any], peak_floor_kw: float | None) -> None:
    """Storage, PV, V2G, demand charge, phase limits, negative prices, minimum current, every
    objective: drawn at random. The same binaries, the same status and optimum."""
    arrays = compile_scenario(parse_scenario(data))
    assert supports(arrays)
    problem = assemble(arrays, peak_floor_kw=peak_floor_kw)
    assert problem.n_binaries == _n_pyomo_binaries(build_model(arrays))
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


def _minimum_current_day(energy_wanted_kwh: float = 6.0, ev_max_ac_kw: float = 10.0) -> ScenarioArrays:
    """tests/optimal/test_optimal.py's hand case: one AC EV over two 1-h steps with 3 kW of headroom
    in step 0 (0.10 EUR/kWh), plenty in step 1 (0.30 EUR/kWh); 6 A on three phases is a 4.14 kW
    minimum; base load costs 17 * 0.10 + 5 * 0.30 = 3.2 EUR."""
    data = tiny_data()
    data["site"]["chargers"] = [data["site"]["chargers"][1]]
    data["site"]["grid"]["import_limit_kw"] = 20.0
    data["site"]["min_current_a"] = 6.0
    data["site"]["tariff"]["demand_charge_eur_per_kw"] = 0.0
    data["time_grid"]["n_steps"] = 2
    data["series"] = {"import_price_eur_per_kwh": [0.10, 0.30], "base_load_kw": [17.0, 5.0]}
    session = dict(data["sessions"][1], departure_utc="2024-05-01T02:00:00Z")
    data["sessions"] = [dict(session, energy_wanted_kwh=energy_wanted_kwh, ev_max_ac_kw=ev_max_ac_kw)]
    return compile_scenario(parse_scenario(data))


def test_minimum_current_is_assembled_with_its_binaries() -> None:
    """Wanting 6 kWh: 3 kW in step 0 is below the minimum and not the final top-up, so 0 then
    6 kW: 1.8 EUR of EV energy, by either builder, through the rounding path or not."""
    arrays = _minimum_current_day()
    assert unsupported_features(arrays) == ()
    problem = assemble(arrays)
    assert problem.nearest_binary.shape == (4,)  # y_min and w_top of each of the 2 rows
    assert problem.n_binaries == _n_pyomo_binaries(build_model(arrays)) == 4
    for is_rounding_first in (False, True):
        by_pyomo, by_arrays = _both(arrays, is_rounding_first=is_rounding_first)
        np.testing.assert_allclose(by_arrays.ev_power_kw[:, 0], [0.0, 6.0], atol=1e-6)
        assert by_arrays.objective_eur == pytest.approx(by_pyomo.objective_eur, rel=1e-9)
        assert by_arrays.path is by_pyomo.path
    for builder in ("assemble", "pyomo"):
        result = solve_optimal(arrays, builder=builder)
        assert result.builder == builder
        assert result.kpis.energy_cost_eur == pytest.approx(3.2 + 1.8)
        assert result.kpis.total_cost_eur == pytest.approx(result.objective_eur, rel=1e-9)


def test_a_final_top_up_below_the_minimum_is_allowed() -> None:
    """Wanting 2 kWh: 2 kW in step 0 is below the 4.14 kW minimum but completes the energy wanted
    (the top-up rule, binary ``w_top``): all of it at 0.10 EUR/kWh, 0.2 EUR; the physics agrees."""
    arrays = _minimum_current_day(energy_wanted_kwh=2.0)
    result = solve_optimal(arrays, mip_gap_frac=0.0)
    assert result.builder == "assemble"
    np.testing.assert_allclose(result.ev_power_kw[:, 0], [2.0, 0.0], atol=1e-6)
    assert result.objective_eur == pytest.approx(3.2 + 0.2)
    assert result.kpis.total_cost_eur == pytest.approx(3.2 + 0.2)
    assert result.kpis.projection_adjustment_kwh == pytest.approx(0.0, abs=1e-6)


def test_an_ev_below_the_connectors_minimum_charges_on_one_phase_in_the_optimum() -> None:
    """A 3.6 kW EV cannot draw 6 A on three phases (4.14 kW): it charges on one, minimum 1.38 kW.
    Wanting 6 kWh: 3 kW in step 0 (the headroom, 0.10 EUR/kWh), 3 kW in step 1 (0.30): 1.2 EUR,
    all served, by either builder; the physics keeps every setpoint. (With the connector's 4.14 kW
    as its minimum, nothing but a final top-up could charge it: 3.6 kWh of the 6 unmet.)"""
    arrays = _minimum_current_day(ev_max_ac_kw=3.6)
    np.testing.assert_allclose(arrays.sessions.min_charge_kw, [1.38])
    by_pyomo, by_arrays = _both(arrays)
    for solution in (by_pyomo, by_arrays):
        np.testing.assert_allclose(solution.ev_power_kw[:, 0], [3.0, 3.0], atol=1e-6)
        assert solution.objective_eur == pytest.approx(3.2 + 1.2, rel=1e-9)
    result = solve_optimal(arrays, mip_gap_frac=0.0)
    assert result.kpis.unmet_energy_kwh == pytest.approx(0.0, abs=1e-6)
    assert result.kpis.projection_adjustment_kwh == pytest.approx(0.0, abs=1e-6)


def test_mpc_with_minimum_current_assembles_every_window() -> None:
    data = tiny_data()
    data["site"]["min_current_a"] = 6.0
    arrays = compile_scenario(parse_scenario(data))
    assert supports(arrays)
    policy = MpcPolicy(PerfectForecast(), horizon_steps=2)
    trace, kpis = run_policy(arrays, policy)
    assert [t.builder for t in policy.timings] == ["assemble"] * arrays.n_steps
    reference = MpcPolicy(PerfectForecast(), horizon_steps=2, builder="pyomo")
    trace_p, kpis_p = run_policy(arrays, reference)
    np.testing.assert_allclose(trace.ev_power_kw, trace_p.ev_power_kw, atol=1e-6)
    assert kpis.objective_eur == pytest.approx(kpis_p.objective_eur, rel=1e-9)


def test_a_feature_the_assembler_did_not_cover_falls_back_to_pyomo(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every family is covered today; were one not (named by ``unsupported_features``), assemble()
    refuses the scenario and the MPC and the oracle build it in pyomo, with the same optimum."""
    arrays = compile_scenario(tiny_scenario())
    expected = solve_optimal(arrays)
    assert expected.builder == "assemble"
    monkeypatch.setattr(assemble_module, "unsupported_features", lambda _arrays: ("a new family",))
    assert not supports(arrays)
    with pytest.raises(NotImplementedError, match="uses a new family; build it with"):
        assemble(arrays)
    result = solve_optimal(arrays)
    assert result.builder == "pyomo"
    assert result.objective_eur == pytest.approx(expected.objective_eur, rel=1e-9)
    policy = MpcPolicy(PerfectForecast(), horizon_steps=2)
    run_policy(arrays, policy)
    assert {t.builder for t in policy.timings} == {"pyomo"}


@pytest.mark.parametrize("builder", ["assemble", "pyomo"])
def test_the_oracle_is_the_same_with_either_builder(builder: str) -> None:
    """The hourly demo day (storage, PV, V2G, negative export prices, demand charge): the status,
    binaries, path and objective of both builds; the replay reproduces the objective."""
    arrays = _demo_hourly()
    result = solve_optimal(arrays, builder=builder)  # type: ignore[arg-type]
    other = solve_optimal(arrays, builder="pyomo" if builder == "assemble" else "assemble")
    assert result.builder == builder
    assert result.status is other.status is SolverStatus.OPTIMAL
    assert result.n_binaries == other.n_binaries > 0
    assert result.path is other.path
    assert result.objective_eur == pytest.approx(other.objective_eur, rel=1e-6)
    assert result.kpis.total_cost_eur == pytest.approx(result.objective_eur, rel=1e-6, abs=1e-6)
    assert result.kpis.projection_adjustment_kwh == pytest.approx(0.0, abs=1e-6)
    assert 0.0 <= result.compile_s <= result.solve_s


def test_unknown_builder_is_named() -> None:
    message = r"builder: got 'gurobi'; expected one of \('assemble', 'pyomo'\)"
    with pytest.raises(ValueError, match=message):
        MpcPolicy(PerfectForecast(), builder="gurobi")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=message):
        solve_optimal(compile_scenario(tiny_scenario()), builder="gurobi")  # type: ignore[arg-type]
