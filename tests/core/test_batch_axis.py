"""The physics step and the projection treat every batch element on its own."""

from __future__ import annotations

import numpy as np

from smac_rl.core.arrays import compile_scenario
from smac_rl.core.physics import physics_step
from smac_rl.core.projection import project
from smac_rl.core.scenario_io import load_builtin_scenario
from smac_rl.core.state import Setpoints, context_at


def test_batched_step_equals_one_element_at_a_time() -> None:
    arrays = compile_scenario(load_builtin_scenario("demo_workplace"))
    rng = np.random.default_rng(7)
    n_batch, n_sessions, n_connectors = 5, arrays.sessions.n_sessions, arrays.site.n_connectors
    t = 40  # 08:00 local: most connectors occupied
    energy = arrays.sessions.arrival_energy_kwh + rng.uniform(0, 1, (n_batch, n_sessions)) * (
        arrays.sessions.capacity_kwh - arrays.sessions.arrival_energy_kwh
    )
    storage = rng.uniform(arrays.site.storage_min_energy_kwh, arrays.site.storage_max_energy_kwh, n_batch)
    raw = Setpoints(rng.uniform(-60, 60, (n_batch, n_connectors)), rng.uniform(-80, 80, n_batch))
    batched = context_at(arrays, t, energy, storage)
    projected = project(batched, raw)
    outcome = physics_step(batched, projected)
    assert np.any(projected.ev_power_kw != raw.ev_power_kw)
    for b in range(n_batch):
        single = context_at(arrays, t, energy[b : b + 1], storage[b : b + 1])
        one = project(single, Setpoints(raw.ev_power_kw[b : b + 1], raw.storage_power_kw[b : b + 1]))
        np.testing.assert_array_equal(one.ev_power_kw[0], projected.ev_power_kw[b])
        np.testing.assert_array_equal(one.storage_power_kw[0], projected.storage_power_kw[b])
        single_outcome = physics_step(single, one)
        np.testing.assert_array_equal(single_outcome.ev_energy_kwh[0], outcome.ev_energy_kwh[b])
        np.testing.assert_array_equal(single_outcome.grid_import_kw[0], outcome.grid_import_kw[b])
        np.testing.assert_array_equal(single_outcome.storage_energy_kwh[0], outcome.storage_energy_kwh[b])
