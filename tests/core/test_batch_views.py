"""The batch engine's kept EV view: patched per step, yet always what a fresh gather gives.

:meth:`EpisodeBatch.context` keeps the last step's EV view and gathers again only the connectors
whose session changed (copy-on-write when a caller still holds the last context). These tests
check every step's view against :func:`smac_rl.core.state.context_at`, an independent gather from
the per-session state, over random scenarios, rows replaced mid-episode and held contexts.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from smac_rl.core.arrays import ScenarioArrays, compile_scenario
from smac_rl.core.batch import EpisodeBatch
from smac_rl.core.scenario_io import parse_scenario
from smac_rl.core.state import EvView, Setpoints, StepContext, context_at
from tests.core.test_invariants import scenario_dicts
from tests.core.tiny import tiny_scenario

_EV_FIELDS = tuple(EvView.__dataclass_fields__)


def _assert_row_matches_gather(batch: EpisodeBatch, row: int, arrays: ScenarioArrays) -> None:
    """Row ``row`` of the batch's context equals ``context_at`` of its scenario, field by field."""
    context = batch.context()
    t = int(batch.step_index[row])
    n_sessions, n_connectors = arrays.sessions.n_sessions, arrays.site.n_connectors
    energy = batch.session_energy_kwh[row : row + 1, :n_sessions].copy()
    gathered = context_at(arrays, t, energy, batch.storage_energy_kwh[row : row + 1].copy())
    for name in _EV_FIELDS:
        ours = getattr(context.ev, name)[row, :n_connectors]
        theirs = getattr(gathered.ev, name)[0]
        np.testing.assert_array_equal(ours, theirs, err_msg=f"{name} at step {t} of row {row}")
    padding = context.ev.is_present[row, n_connectors:]
    assert not padding.any()  # padded connectors never hold a session


def _snapshot(context: StepContext) -> dict[str, np.ndarray]:
    return {name: np.array(getattr(context.ev, name), copy=True) for name in _EV_FIELDS}


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(scenario_dicts(), min_size=2, max_size=3), st.integers(0, 2**31 - 1))
def test_kept_view_equals_a_fresh_gather_at_every_step(datas: list[dict[str, Any]], seed: int) -> None:
    step_min = datas[0]["time_grid"]["step_min"]
    scenarios = [compile_scenario(parse_scenario(d)) for d in datas if d["time_grid"]["step_min"] == step_min]
    c_max = max(a.site.n_connectors for a in scenarios)
    rng = np.random.default_rng(seed)
    batch = EpisodeBatch(2, c_max, scenarios[0].step_h)
    rows = [scenarios[0], scenarios[-1]]
    batch.load(0, rows[0])
    batch.load(1, rows[1])
    held: list[tuple[StepContext, dict[str, np.ndarray]]] = []
    next_scenario = 0
    for _ in range(2 * max(a.n_steps for a in scenarios)):
        for row in (0, 1):
            _assert_row_matches_gather(batch, row, rows[row])
        if rng.random() < 0.3:  # a caller keeps this context: later steps must not change it
            held.append((batch.context(), _snapshot(batch.context())))
        asks = Setpoints(rng.uniform(-60.0, 60.0, (2, c_max)), rng.uniform(-80.0, 80.0, 2))
        result = batch.step(asks)
        for finished in np.flatnonzero(result.is_last_step).tolist():  # as an autoreset does
            next_scenario = (next_scenario + 1) % len(scenarios)
            rows[finished] = scenarios[next_scenario]
            batch.load(finished, rows[finished])
    for context, snapshot in held:
        for name, values in snapshot.items():
            np.testing.assert_array_equal(getattr(context.ev, name), values, err_msg=name)


def test_a_held_context_is_copied_not_patched_and_its_fields_are_read_only() -> None:
    # The tiny scenario: session S2 leaves connector 1 after step 0, so step 1's view differs.
    arrays = compile_scenario(tiny_scenario())
    batch = EpisodeBatch(1, arrays.site.n_connectors, arrays.step_h)
    batch.load(0, arrays)
    first = batch.context()
    assert first.ev.is_present[0].tolist() == [True, True]
    assert first.ev.capacity_kwh[0].tolist() == [60.0, 40.0]
    assert not first.ev.capacity_kwh.flags.writeable
    batch.step(Setpoints.zeros(1, 2))
    second = batch.context()
    assert second.ev.is_present[0].tolist() == [True, False]
    assert second.ev.capacity_kwh[0].tolist() == [60.0, 1.0]  # 1.0: the neutral EV's capacity
    assert first.ev.capacity_kwh[0].tolist() == [60.0, 40.0]  # the held context is unchanged


def test_loading_many_rows_at_once_equals_loading_them_one_by_one() -> None:
    arrays = compile_scenario(tiny_scenario())
    together = EpisodeBatch(3, 3, arrays.step_h)
    together.load_rows([0, 1, 2], arrays)
    apart = EpisodeBatch(3, 3, arrays.step_h)
    for row in (2, 0, 1):
        apart.load(row, arrays)
    rng = np.random.default_rng(3)
    for _ in range(arrays.n_steps):
        asks = Setpoints(rng.uniform(-30.0, 30.0, (3, 3)), rng.uniform(-30.0, 30.0, 3))
        one, other = together.step(asks), apart.step(asks)
        np.testing.assert_array_equal(one.applied.ev_power_kw, other.applied.ev_power_kw)
        np.testing.assert_array_equal(one.objective_eur, other.objective_eur)
    np.testing.assert_array_equal(together.session_energy_kwh, apart.session_energy_kwh)
