"""The one-row path of ``allocate_in_order`` gives exactly the batched loop's setpoints.

Least laxity first rolls out with the one-row path (Python floats) and again with it switched off
(the batched NumPy loop on the same batch of one); every series of the two traces must be equal to
the bit, on the random scenarios of tests/core/test_invariants.py (AC phases, shared chargers,
minimum current, storage, PV, V2G permissions...).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import given

from smac_rl.core.arrays import ScenarioArrays, compile_scenario
from smac_rl.core.simulate import Trace, simulate
from smac_rl.policies import LeastLaxityFirst, allocation
from tests.core.test_invariants import PROPERTY_SETTINGS, compile_data, scenario_dicts
from tests.core.tiny import tiny_data, tiny_scenario


def _rollouts(arrays: ScenarioArrays, monkeypatch: pytest.MonkeyPatch) -> tuple[Trace, Trace, int, int]:
    """LLF with the one-row path, then without; how often the path answered and declined."""
    one_row = allocation._allocate_one_row
    counts = {"answered": 0, "declined": 0}

    def counted(*args: Any) -> npt.NDArray[np.float64] | None:
        power_kw = one_row(*args)
        counts["answered" if power_kw is not None else "declined"] += 1
        return power_kw

    with monkeypatch.context() as patch:
        patch.setattr(allocation, "_allocate_one_row", counted)
        fast = simulate(arrays, LeastLaxityFirst().act)
    with monkeypatch.context() as patch:
        patch.setattr(allocation, "_allocate_one_row", lambda *_args: None)
        batched = simulate(arrays, LeastLaxityFirst().act)
    return fast, batched, counts["answered"], counts["declined"]


def _assert_identical(fast: Trace, batched: Trace) -> None:
    for field in dataclasses.fields(Trace):
        assert np.array_equal(getattr(fast, field.name), getattr(batched, field.name)), field.name


@PROPERTY_SETTINGS
@given(data=scenario_dicts())
def test_one_row_path_equals_the_batched_loop(data: dict[str, Any]) -> None:
    arrays = compile_data(data)
    with pytest.MonkeyPatch.context() as monkeypatch:
        fast, batched, n_answered, n_declined = _rollouts(arrays, monkeypatch)
    _assert_identical(fast, batched)
    assert (n_answered, n_declined) == (arrays.n_steps, 0)


def test_one_row_path_on_tiny_is_the_hand_checked_plan(monkeypatch: pytest.MonkeyPatch) -> None:
    # As derived in tests/policies/test_heuristics_tiny.py: step 0, S2 (laxity 0 h) first at 10 kW,
    # then S1 min(20, 30, 24 - 10) = 14 kW; step 1, S1 min(20, 16, 24) = 16 kW, S2 gone.
    fast, batched, n_answered, _ = _rollouts(compile_scenario(tiny_scenario()), monkeypatch)
    _assert_identical(fast, batched)
    assert n_answered == 4
    np.testing.assert_allclose(fast.ev_power_kw, [[14.0, 10.0], [16.0, 0.0], [0.0, 0.0], [0.0, 0.0]])


def test_a_prediction_the_projection_contradicts_falls_back(monkeypatch: pytest.MonkeyPatch) -> None:
    # A rule that drops every positive allocation: the one-row path's predictions disagree with it
    # while an EV wants power (steps 0 to 2: S1 leaves after 3 h), so it declines and the batched
    # loop answers with every allocation dropped; at step 3 nobody is plugged in and both agree.
    arrays = compile_scenario(tiny_scenario())
    monkeypatch.setattr(
        allocation, "below_minimum_current", lambda _context, power_kw: np.asarray(power_kw) > 0.0
    )
    declined: list[bool] = []
    one_row = allocation._allocate_one_row

    def watched(*args: Any) -> npt.NDArray[np.float64] | None:
        power_kw = one_row(*args)
        declined.append(power_kw is None)
        return power_kw

    monkeypatch.setattr(allocation, "_allocate_one_row", watched)
    trace = simulate(arrays, LeastLaxityFirst().act)
    assert declined == [True, True, True, False]
    assert np.all(trace.requested_ev_power_kw == 0.0)


def test_one_row_path_drops_an_allocation_below_the_minimum_current(monkeypatch: pytest.MonkeyPatch) -> None:
    # tiny with a 6 A minimum (AC1: 3 x 230 V x 6 A = 4.14 kW), headroom 27 - 5 = 22 kW and S2 staying
    # until 03:00. Step 0 laxities: S1 3 - 30/20 = 1.5 h, S2 3 - 10/10 = 2 h: S1 takes its 20 kW box,
    # S2 would get the 2 kW left, below 4.14 kW and no final top-up (10 kWh wanted): dropped to 0.
    # Step 1: S2 2 - 10/10 = 1 h before S1 2 - 10/20 = 1.5 h: S2 10 kW, S1 min(20, 10, 12) = 10 kW.
    data = tiny_data()
    data["site"]["min_current_a"] = 6.0
    data["site"]["grid"]["import_limit_kw"] = 27.0
    data["sessions"][1]["departure_utc"] = "2024-05-01T03:00:00Z"
    fast, batched, n_answered, _ = _rollouts(compile_data(data), monkeypatch)
    _assert_identical(fast, batched)
    assert n_answered == 4
    np.testing.assert_allclose(
        fast.requested_ev_power_kw, [[20.0, 0.0], [10.0, 10.0], [0.0, 0.0], [0.0, 0.0]]
    )
