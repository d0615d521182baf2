"""The ONNX policy's calendar tables: the core's table, kept per grid and series, least recently used out."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from smac_rl.core.arrays import ScenarioArrays, compile_scenario
from smac_rl.core.observation import calendar_table
from smac_rl.core.scenario_io import load_builtin_scenario
from smac_rl.core.simulate import simulate
from smac_rl_serve.model import CalendarCache, OnnxPolicy
from smac_rl_serve.settings import DEFAULT_MODEL_DIR
from tests.core.tiny import tiny_scenario


def _with_price(arrays: ScenarioArrays, step_index: int, price_eur_per_kwh: float) -> ScenarioArrays:
    prices = arrays.series.import_price_eur_per_kwh.copy()
    prices[step_index] = price_eur_per_kwh
    series = dataclasses.replace(arrays.series, import_price_eur_per_kwh=prices)
    return dataclasses.replace(arrays, series=series)


def test_a_table_is_the_cores_and_is_kept_per_grid_and_series() -> None:
    cache = CalendarCache()
    arrays = compile_scenario(tiny_scenario())
    table = cache.table(arrays)
    np.testing.assert_array_equal(table, calendar_table(arrays))
    assert not table.flags.writeable
    # The same grid and series compiled again: the kept table, not a new one.
    assert cache.table(compile_scenario(tiny_scenario())) is table
    # tiny's prices 0.30, 0.10, 0.20, 0.40 EUR/kWh: the 4-hour outlook of step 0 is their mean, 0.25;
    # a price of 0.70 at step 3 makes it 0.325, a new key and a new table.
    assert table[0, 3] == pytest.approx(0.25)
    changed = cache.table(_with_price(arrays, 3, 0.70))
    assert changed[0, 3] == pytest.approx(0.325)
    np.testing.assert_array_equal(changed, calendar_table(_with_price(arrays, 3, 0.70)))
    assert len(cache) == 2


def test_the_least_recently_used_table_goes_first() -> None:
    cache = CalendarCache(n_tables_max=2)
    arrays = compile_scenario(tiny_scenario())
    first, second, third = (_with_price(arrays, 0, price) for price in (0.5, 0.6, 0.7))
    kept_first = cache.table(first)
    cache.table(second)
    assert cache.table(first) is kept_first  # used again: now the most recent
    cache.table(third)  # the cache is full: out goes second
    assert len(cache) == 2
    assert cache.table(first) is kept_first
    assert CalendarCache.key(second) != CalendarCache.key(first)


def test_rollouts_with_a_kept_table_equal_a_fresh_one() -> None:
    policy = OnnxPolicy(DEFAULT_MODEL_DIR)
    arrays = compile_scenario(load_builtin_scenario("demo_workplace"))
    cold = simulate(arrays, policy.bound(arrays))
    warm = simulate(arrays, policy.bound(compile_scenario(load_builtin_scenario("demo_workplace"))))
    np.testing.assert_array_equal(cold.ev_power_kw, warm.ev_power_kw)
    np.testing.assert_array_equal(cold.storage_power_kw, warm.storage_power_kw)
