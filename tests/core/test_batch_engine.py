"""The batched engine: rows of different random sites, padded, step exactly like one-row runs."""

from __future__ import annotations

from typing import Any

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from smac_rl.core.arrays import ScenarioArrays, compile_scenario
from smac_rl.core.batch import EpisodeBatch
from smac_rl.core.scenario_io import parse_scenario
from smac_rl.core.state import Setpoints
from tests.core.test_invariants import scenario_dicts


def _one_step_kind(data: dict[str, Any]) -> ScenarioArrays:
    return compile_scenario(parse_scenario(data))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(scenario_dicts(), min_size=2, max_size=3),
    st.integers(0, 2**31 - 1),
)
def test_padded_rows_of_mixed_sites_match_single_rows(datas: list[dict[str, Any]], seed: int) -> None:
    step_min = datas[0]["time_grid"]["step_min"]
    datas = [d for d in datas if d["time_grid"]["step_min"] == step_min]
    scenarios = [_one_step_kind(d) for d in datas]
    n_rows = len(scenarios)
    c_max = max(a.site.n_connectors for a in scenarios) + 1
    n_steps = min(a.n_steps for a in scenarios)
    rng = np.random.default_rng(seed)
    asks = [rng.uniform(-60.0, 60.0, (n_steps, c_max)) for _ in range(n_rows)]
    storage_asks = rng.uniform(-80.0, 80.0, (n_steps, n_rows))
    batch = EpisodeBatch(n_rows, c_max, scenarios[0].step_h)
    singles = [EpisodeBatch(1, a.site.n_connectors, a.step_h) for a in scenarios]
    for i, arrays in enumerate(scenarios):
        batch.load(i, arrays)
        singles[i].load(0, arrays)
    for t in range(n_steps):
        ev = np.stack([asks[i][t] for i in range(n_rows)])
        together = batch.step(Setpoints(ev, storage_asks[t].copy()))
        for i, single in enumerate(singles):
            c = scenarios[i].site.n_connectors
            alone = single.step(Setpoints(asks[i][t][None, :c].copy(), storage_asks[t, i : i + 1].copy()))
            np.testing.assert_allclose(
                together.applied.ev_power_kw[i, :c], alone.applied.ev_power_kw[0], atol=1e-9
            )
            assert np.all(together.applied.ev_power_kw[i, c:] == 0.0)  # padding never draws power
            np.testing.assert_allclose(
                together.objective_eur[i], alone.objective_eur[0], rtol=1e-12, atol=1e-9
            )
            np.testing.assert_allclose(
                together.outcome.grid_import_kw[i], alone.outcome.grid_import_kw[0], rtol=1e-12, atol=1e-9
            )
            n_sessions = scenarios[i].sessions.n_sessions
            np.testing.assert_allclose(
                batch.session_energy_kwh[i, :n_sessions], single.session_energy_kwh[0, :n_sessions], atol=1e-9
            )
