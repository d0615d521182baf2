"""How the layout decodes actions before the projection, by hand on the tiny scenario.

The import-cap action (:func:`smac_rl.core.observation.apply_import_cap`) and the minimum-current
rounding (:func:`smac_rl.core.observation.round_to_minimum_current`). Step 0 of the tiny scenario
(tests/core/tiny.py): base load 5 kW, import limit 29 kW, S1 on DC1 may take 20 kW (its box), S2 on
AC1 10 kW (its EV limit and the 10 kWh it wants in its one hour). Asking both at full power asks an
import of 5 + 20 + 10 = 35 kW. The cap action ``a`` names ``(a + 1) / 2 * 29`` kW.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from smac_rl.agents.imitation import oracle_actions, remaining_peak_import_kw
from smac_rl.core.arrays import ScenarioArrays, compile_scenario
from smac_rl.core.forecasts import PerfectForecast
from smac_rl.core.observation import (
    ObservationLayout,
    fill_to_paid_peak,
    laxity_h,
    round_to_minimum_current,
)
from smac_rl.core.physics import grid_import_kw
from smac_rl.core.projection import project
from smac_rl.core.scenario_io import parse_scenario
from smac_rl.core.simulate import simulate
from smac_rl.core.state import Setpoints, StepContext
from smac_rl.optimal.mpc import MpcPolicy
from tests.core.tiny import tiny_data, tiny_scenario

C_MAX = 4


def _tiny() -> ScenarioArrays:
    return compile_scenario(tiny_scenario())


def _first_context(arrays: ScenarioArrays | None = None) -> StepContext:
    contexts: list[StepContext] = []

    def record(context: StepContext) -> Setpoints:
        contexts.append(context)
        return Setpoints(np.zeros((1, context.site.n_connectors)), np.zeros(1))

    simulate(arrays or _tiny(), record)
    return contexts[0]


def _tiny_with_minimum_current() -> ScenarioArrays:
    """The tiny scenario with the 6 A minimum: AC1 (three phases at 230 V) charges 0 or at least 4.14 kW."""
    data = tiny_data()
    data["site"]["min_current_a"] = 6.0
    return compile_scenario(parse_scenario(data))


def _action(ev_a: float, cap_a: float) -> np.ndarray:
    action = np.zeros((1, C_MAX + 2))
    action[0, :2] = ev_a
    action[0, C_MAX + 1] = cap_a
    return action


def _import_kw(context: StepContext, setpoints: Setpoints) -> float:
    exo = context.exo
    ev_total = setpoints.ev_power_kw.sum(axis=1)
    return float(
        grid_import_kw(exo.base_load_kw, exo.pv_available_kw, ev_total, setpoints.storage_power_kw)[0]
    )


def test_the_cap_grants_its_budget_to_the_least_laxity_first() -> None:
    # Cap action 0: 14.5 kW, a budget of 9.5 kW above the 5 kW base load. Laxities: S2 leaves in 1 h
    # wanting 10 kWh at 10 kW (0 h), S1 in 3 h wanting 30 kWh at 20 kW (1.5 h). S2 gets 9.5 kW, S1 0.
    context = _first_context()
    layout = ObservationLayout(C_MAX, is_import_cap_acted=True)
    assert layout.action_size == C_MAX + 2
    np.testing.assert_allclose(laxity_h(context)[0], [1.5, 0.0])
    setpoints = layout.setpoints(context, _action(1.0, 0.0))
    np.testing.assert_allclose(setpoints.ev_power_kw[0], [0.0, 9.5])
    assert _import_kw(context, setpoints) == pytest.approx(14.5)
    # Cap 17.4 kW (a = 0.2): S2 its whole 10 kW, S1 the 2.4 kW left.
    setpoints = layout.setpoints(context, _action(1.0, 0.2))
    np.testing.assert_allclose(setpoints.ev_power_kw[0], [2.4, 10.0])


def test_a_cap_at_the_limit_takes_what_the_projection_would_and_serves_the_urgent_whole() -> None:
    # Cap action 1: the 29 kW limit, 24 kW for 30 kW asked. The projection alone would scale both
    # by 0.8 (16 and 8 kW, S2 ending 2 kWh short); the cap gives S2 its 10 kW and S1 the 14 kW left,
    # which the projection then leaves as they are.
    context = _first_context()
    capped = ObservationLayout(C_MAX, is_import_cap_acted=True).setpoints(context, _action(1.0, 1.0))
    plain = ObservationLayout(C_MAX).setpoints(context, _action(1.0, 0.0)[:, : C_MAX + 1])
    np.testing.assert_allclose(capped.ev_power_kw, [[14.0, 10.0]])
    np.testing.assert_allclose(project(context, plain).ev_power_kw, [[16.0, 8.0]])
    np.testing.assert_allclose(project(context, capped).ev_power_kw, capped.ev_power_kw)
    assert _import_kw(context, capped) == pytest.approx(29.0)


def test_the_deadline_floor_wins_over_the_cap() -> None:
    # Margin 0: S2 leaves at 01:00 wanting 10 kWh, its floor is 10 kW; S1 has 1.5 h to spare, floor 0.
    # Cap 17.4 kW (a = 0.2): 5 + 10 kW are the floor's, 2.4 kW are left for S1.
    # Cap 14.5 kW: nothing is left; S1 gets 0 and S2 keeps its floor (15 kW, above the cap).
    context = _first_context()
    layout = ObservationLayout(C_MAX, deadline_floor_margin_steps=0.0, is_import_cap_acted=True)
    setpoints = layout.setpoints(context, _action(1.0, 0.2))
    np.testing.assert_allclose(setpoints.ev_power_kw[0], [2.4, 10.0])
    assert _import_kw(context, setpoints) == pytest.approx(17.4)
    floor_only = layout.setpoints(context, _action(1.0, 0.0))
    np.testing.assert_allclose(floor_only.ev_power_kw[0], [0.0, 10.0], atol=1e-12)
    assert _import_kw(context, floor_only) == pytest.approx(15.0)


def test_the_service_path_needs_the_cap() -> None:
    context = _first_context()
    layout = ObservationLayout(C_MAX, is_import_cap_acted=True)
    with pytest.raises(ValueError, match="cap_kw: got None"):
        layout.completed(context, Setpoints(np.asarray([[20.0, 10.0]]), np.zeros(1)))


@given(
    ev_a=st.lists(st.floats(-1.0, 1.0), min_size=2, max_size=2),
    cap_a=st.floats(-1.0, 1.0),
    margin=st.sampled_from([None, 0.0, 1.0]),
)
def test_capped_setpoints_never_ask_more_and_hold_the_cap_or_the_floors(
    ev_a: list[float], cap_a: float, margin: float | None
) -> None:
    context = _first_context()
    action = _action(0.0, cap_a)
    action[0, :2] = ev_a
    capped = ObservationLayout(C_MAX, margin, is_import_cap_acted=True).setpoints(context, action)
    free = ObservationLayout(C_MAX, margin).setpoints(context, action[:, : C_MAX + 1])
    assert np.all(capped.ev_power_kw <= free.ev_power_kw + 1e-12)
    floors = ObservationLayout(C_MAX, margin).setpoints(context, np.zeros((1, C_MAX + 1)))
    cap_kw = (cap_a + 1.0) / 2.0 * 29.0
    held_kw = max(cap_kw, _import_kw(context, floors))
    assert _import_kw(context, capped) <= max(held_kw, _import_kw(context, free)) + 1e-9
    if _import_kw(context, free) > cap_kw:
        assert _import_kw(context, capped) <= held_kw + 1e-9


def test_the_label_is_the_plans_remaining_peak() -> None:
    # A plan importing 5 + [30, 20, 0, 0] kW: the highest import from each step on.
    arrays = _tiny()
    plan_kw = np.asarray([[20.0, 10.0], [20.0, 0.0], [0.0, 0.0], [0.0, 0.0]])
    peaks = remaining_peak_import_kw(arrays, plan_kw, np.zeros(4))
    np.testing.assert_allclose(peaks, [35.0, 25.0, 5.0, 5.0])
    context = _first_context()
    layout = ObservationLayout(C_MAX, is_import_cap_acted=True)
    action = oracle_actions(layout, context, Setpoints(plan_kw[:1], np.zeros(1)), np.asarray([14.5]))
    assert action[0, C_MAX + 1] == pytest.approx(0.0)
    with pytest.raises(ValueError, match="planned_peak_import_kw: got None"):
        oracle_actions(layout, context, Setpoints(plan_kw[:1], np.zeros(1)))


def test_the_mpc_labels_ask_exactly_its_setpoints_through_the_cap() -> None:
    # The MPC's first step, asked through the capped layout with its planned peak as the cap, comes
    # back unchanged: the cap the label names never cuts what the expert does.
    arrays = _tiny()
    mpc = MpcPolicy(PerfectForecast(), horizon_steps=4)
    mpc.begin_episode(arrays)
    layout = ObservationLayout(C_MAX, is_import_cap_acted=True)

    def check(context: StepContext) -> Setpoints:
        wanted = mpc.act(context)
        assert mpc.planned_peak_import_kw is not None
        assert mpc.planned_peak_import_kw >= _import_kw(context, wanted) - 1e-6
        label = oracle_actions(layout, context, wanted, np.asarray([mpc.planned_peak_import_kw]))
        asked = layout.setpoints(context, label)
        np.testing.assert_allclose(asked.ev_power_kw, wanted.ev_power_kw, atol=1e-6)
        return wanted

    simulate(arrays, check)


def test_asks_below_the_minimum_current_are_rounded_to_zero_or_the_minimum() -> None:
    # S2 on AC1 (minimum 4.14 kW, box 10 kW): 3 kW is at least half the minimum -> 4.14 kW; 1.5 kW -> 0.
    # S1 on DC1 has no minimum: its 1.5 kW stays. Without the rounding the projection drops S2's 3 kW.
    context = _first_context(_tiny_with_minimum_current())
    np.testing.assert_allclose(context.site.connector_min_charge_kw, [0.0, 4.14])
    rounded = round_to_minimum_current(context, np.asarray([[1.5, 3.0]]))
    np.testing.assert_allclose(rounded, [[1.5, 4.14]])
    np.testing.assert_allclose(round_to_minimum_current(context, np.asarray([[1.5, 1.5]])), [[1.5, 0.0]])
    action = np.zeros((1, C_MAX + 1))
    action[0, :2] = [0.075, 0.3]  # 1.5 kW of 20, 3 kW of 10
    plain = ObservationLayout(C_MAX).setpoints(context, action)
    np.testing.assert_allclose(project(context, plain).ev_power_kw, [[1.5, 0.0]])
    layout = ObservationLayout(C_MAX, is_min_current_rounded=True)
    np.testing.assert_allclose(project(context, layout.setpoints(context, action)).ev_power_kw, [[1.5, 4.14]])


def _floor_context(departure_utc: str, energy_wanted_kwh: float) -> StepContext:
    """Step 0 of the tiny scenario with the 6 A minimum and S2 leaving later, wanting other energy."""
    data = tiny_data()
    data["site"]["min_current_a"] = 6.0
    data["sessions"][1]["departure_utc"] = departure_utc
    data["sessions"][1]["energy_wanted_kwh"] = energy_wanted_kwh
    return _first_context(compile_scenario(parse_scenario(data)))


def test_an_urgent_floor_below_the_minimum_current_is_raised_to_it() -> None:
    # S2 on AC1 (minimum 4.14 kW) stays 2 h wanting 11 kWh at 10 kW: laxity 2 - 1.1 = 0.9 h, under one
    # step, so it must charge now (1 kW with no margin). With 0.2 steps to spare its floor is
    # 10 * (1.2 - 0.9) = 3 kW, not a final top-up: the projection drops it and S2 ends short, unless
    # the rounding raises it to the minimum.
    context = _floor_context("2024-05-01T02:00:00Z", 11.0)
    np.testing.assert_allclose(laxity_h(context)[0, 1], 0.9)
    zero = np.zeros((1, C_MAX + 1))
    floored = ObservationLayout(C_MAX, deadline_floor_margin_steps=0.2).setpoints(context, zero)
    assert floored.ev_power_kw[0, 1] == pytest.approx(3.0)
    assert project(context, floored).ev_power_kw[0, 1] == 0.0
    layout = ObservationLayout(C_MAX, deadline_floor_margin_steps=0.2, is_min_current_rounded=True)
    assert project(context, layout.setpoints(context, zero)).ev_power_kw[0, 1] == pytest.approx(4.14)


def test_a_floor_that_can_wait_a_step_is_not_raised() -> None:
    # S2 stays 3 h wanting 10 kWh: laxity 2 h. With 1.2 steps to spare its floor is 10 * (2.2 - 2) =
    # 2 kW, but it can still wait a step (no floor without margin): the rounding leaves it, and the
    # projection drops it as it would without the rounding.
    context = _floor_context("2024-05-01T03:00:00Z", 10.0)
    np.testing.assert_allclose(laxity_h(context)[0, 1], 2.0)
    layout = ObservationLayout(C_MAX, deadline_floor_margin_steps=1.2, is_min_current_rounded=True)
    setpoints = layout.setpoints(context, np.zeros((1, C_MAX + 1)))
    assert setpoints.ev_power_kw[0, 1] == pytest.approx(2.0)
    assert project(context, setpoints).ev_power_kw[0, 1] == 0.0


def _with_peak(context: StepContext, peak_kw: float) -> StepContext:
    return dataclasses.replace(context, peak_import_kw=np.asarray([peak_kw]))


def test_the_paid_peak_is_filled_least_laxity_first() -> None:
    # Nothing asked, 20 kW already paid for: 20 - 5 kW of base load = 15 kW to fill. S2 (laxity 0)
    # takes what it may this step, 10 kW; S1 (1.5 h) the 5 kW left. Paid 40 kW: no more than the
    # 29 kW limit, 24 kW: S2 10, S1 14. Paid 5 kW (the base load): nothing is raised.
    layout = ObservationLayout(C_MAX, is_paid_peak_filled=True)
    zero = np.zeros((1, C_MAX + 1))
    filled = layout.setpoints(_with_peak(_first_context(), 20.0), zero)
    np.testing.assert_allclose(filled.ev_power_kw, [[5.0, 10.0]])
    np.testing.assert_allclose(
        layout.setpoints(_with_peak(_first_context(), 40.0), zero).ev_power_kw, [[14.0, 10.0]]
    )
    np.testing.assert_allclose(
        layout.setpoints(_with_peak(_first_context(), 5.0), zero).ev_power_kw, [[0.0, 0.0]]
    )


def test_the_cap_never_withholds_under_the_paid_peak() -> None:
    # Both asked at full power with the cap action at -1 (0 kW): the cap is raised to the 20 kW paid,
    # so S2 keeps 10 kW and S1 gets 5 kW, as the fill alone would give.
    layout = ObservationLayout(C_MAX, is_import_cap_acted=True, is_paid_peak_filled=True)
    setpoints = layout.setpoints(_with_peak(_first_context(), 20.0), _action(1.0, -1.0))
    np.testing.assert_allclose(setpoints.ev_power_kw, [[5.0, 10.0]])
    unfilled = ObservationLayout(C_MAX, is_import_cap_acted=True).setpoints(
        _with_peak(_first_context(), 20.0), _action(1.0, -1.0)
    )
    np.testing.assert_allclose(unfilled.ev_power_kw, [[0.0, 0.0]])


@given(
    ev_a=st.lists(st.floats(-1.0, 1.0), min_size=2, max_size=2),
    peak_kw=st.floats(0.0, 60.0),
    margin=st.sampled_from([None, 0.0, 1.0]),
)
def test_the_fill_only_raises_and_never_past_the_paid_peak(
    ev_a: list[float], peak_kw: float, margin: float | None
) -> None:
    context = _with_peak(_first_context(), peak_kw)
    action = np.zeros((1, C_MAX + 1))
    action[0, :2] = ev_a
    free = ObservationLayout(C_MAX, margin).setpoints(context, action)
    filled = ObservationLayout(C_MAX, margin, is_paid_peak_filled=True).setpoints(context, action)
    raised = filled.ev_power_kw - free.ev_power_kw
    assert np.all(raised >= 0.0)
    assert np.all(filled.ev_power_kw[raised > 0.0] <= np.asarray([[20.0, 10.0]])[raised > 0.0] + 1e-9)
    assert _import_kw(context, filled) <= max(_import_kw(context, free), min(peak_kw, 29.0)) + 1e-9


def test_a_raise_that_would_overload_a_shared_charger_is_withdrawn() -> None:
    # AC1 (11.04 kW) gets a second connector with S3 (laxity 2 h); S1 is gone. With no margin S2's floor
    # is its 10 kW. 29 kW are paid: 14 kW of room, which would raise S3 by 10 kW; AC1 would then carry
    # 20 kW and the projection would scale S2 to 5.52 kW, 4.48 kWh short. The raise is withdrawn.
    data = tiny_data()
    data["site"]["chargers"][1]["connectors"] = [{"evse_id": 1}, {"evse_id": 2}]
    s3 = dict(data["sessions"][1], session_id="S3", evse_id=2, departure_utc="2024-05-01T03:00:00Z")
    data["sessions"] = [data["sessions"][1], s3]
    context = _with_peak(_first_context(compile_scenario(parse_scenario(data))), 29.0)
    np.testing.assert_allclose(laxity_h(context)[0, 1:], [0.0, 2.0])
    layout = ObservationLayout(C_MAX, deadline_floor_margin_steps=0.0, is_paid_peak_filled=True)
    projected = project(context, layout.setpoints(context, np.zeros((1, C_MAX + 1))))
    np.testing.assert_allclose(projected.ev_power_kw, [[0.0, 10.0, 0.0]], atol=1e-12)


def test_the_raised_cap_stays_within_the_import_limit() -> None:
    # 40 kW were paid, above the 29 kW limit: the cap is raised to 29 kW, not 40, so it still grants by
    # laxity (S2 its 10 kW, S1 the 14 kW left) instead of leaving the projection to scale both by 0.8.
    layout = ObservationLayout(C_MAX, is_import_cap_acted=True, is_paid_peak_filled=True)
    setpoints = layout.setpoints(_with_peak(_first_context(), 40.0), _action(1.0, 1.0))
    np.testing.assert_allclose(setpoints.ev_power_kw, [[14.0, 10.0]])


def test_the_fill_leaves_discharging_alone_and_counts_export_as_room() -> None:
    # S1 discharging 5 kW: the net import is 5 - 5 = 0 kW, so 20 kW of the 20 paid are room. S2 takes
    # its 10 kW; S1 stays at -5 kW (neither raised towards charging nor past it).
    context = _with_peak(_first_context(), 20.0)
    filled = fill_to_paid_peak(context, Setpoints(np.asarray([[-5.0, 0.0]]), np.zeros(1)))
    np.testing.assert_allclose(filled.ev_power_kw, [[-5.0, 10.0]])


def test_a_raise_below_the_minimum_current_goes_to_the_next_session() -> None:
    # With the 6 A minimum and 8 kW paid, 3 kW are room. S2 on AC1 (laxity 0) comes first, but 3 kW is
    # under its 4.14 kW minimum and not a final top-up (it wants 10 kWh): the projection would drop it,
    # so S2 is skipped and S1 on DC1 (no minimum) takes the 3 kW.
    context = _with_peak(_first_context(_tiny_with_minimum_current()), 8.0)
    layout = ObservationLayout(C_MAX, is_paid_peak_filled=True)
    filled = layout.setpoints(context, np.zeros((1, C_MAX + 1)))
    np.testing.assert_allclose(filled.ev_power_kw, [[3.0, 0.0]])
    np.testing.assert_allclose(project(context, filled).ev_power_kw, [[3.0, 0.0]])
