"""Forecast providers: the perfect one is the truth, the noisy one is reproducible and grows with the lead."""

from __future__ import annotations

import numpy as np
import pytest

from smac_rl.core.arrays import compile_scenario
from smac_rl.core.forecasts import ForecastProvider, NoisyForecast, PerfectForecast
from smac_rl.core.scenario_io import load_builtin_scenario
from tests.core.tiny import tiny_scenario


def test_perfect_forecast_is_the_truth_cut_at_the_grid_end() -> None:
    arrays = compile_scenario(tiny_scenario())
    forecast = PerfectForecast().forecast(arrays, 2, 10)
    assert forecast.n_steps == 2  # steps 2 and 3 of 4
    np.testing.assert_array_equal(forecast.import_price_eur_per_kwh, [0.20, 0.40])
    assert isinstance(PerfectForecast(), ForecastProvider)


def test_noisy_forecast_is_reproducible_exact_now_and_non_negative() -> None:
    arrays = compile_scenario(load_builtin_scenario("demo_workplace"))
    provider = NoisyForecast(sigma_frac=0.3, seed=4)
    first = provider.forecast(arrays, 10, 48)
    again = NoisyForecast(sigma_frac=0.3, seed=4).forecast(arrays, 10, 48)
    np.testing.assert_array_equal(first.import_price_eur_per_kwh, again.import_price_eur_per_kwh)
    truth = PerfectForecast().forecast(arrays, 10, 48)
    assert first.import_price_eur_per_kwh[0] == truth.import_price_eur_per_kwh[0]
    assert (first.pv_available_kw >= 0).all()
    assert (first.base_load_kw >= 0).all()
    np.testing.assert_array_equal(first.import_limit_kw, truth.import_limit_kw)
    assert not np.array_equal(first.import_price_eur_per_kwh, truth.import_price_eur_per_kwh)


def test_noisy_error_grows_with_the_lead_time() -> None:
    arrays = compile_scenario(load_builtin_scenario("demo_workplace"))
    truth = PerfectForecast().forecast(arrays, 0, 96).import_price_eur_per_kwh
    errors = np.stack(
        [
            NoisyForecast(0.2, seed).forecast(arrays, 0, 96).import_price_eur_per_kwh / truth - 1.0
            for seed in range(300)
        ]
    )
    spread = errors.std(axis=0)
    # sigma * sqrt((k + 1) / 96): about 0.041 at k = 3 and 0.2 at k = 95.
    assert spread[3] == pytest.approx(0.2 * np.sqrt(4 / 96), rel=0.2)
    assert spread[95] == pytest.approx(0.2, rel=0.2)


def test_bad_arguments_are_named() -> None:
    arrays = compile_scenario(tiny_scenario())
    with pytest.raises(ValueError, match="step_index: got 4; expected 0 to 3"):
        PerfectForecast().forecast(arrays, 4, 1)
    with pytest.raises(ValueError, match="horizon_steps: got 0"):
        PerfectForecast().forecast(arrays, 0, 0)
    with pytest.raises(ValueError, match=r"sigma_frac: got -0\.1"):
        NoisyForecast(-0.1)


def test_env_outlook_channels_follow_the_provider() -> None:
    from smac_rl_envs.site_env import SiteChargingEnv

    spec = load_builtin_scenario("demo_workplace")
    perfect = SiteChargingEnv(scenario=spec, n_connectors_max=16)
    noisy = SiteChargingEnv(scenario=spec, n_connectors_max=16, forecast=NoisyForecast(0.5, 1))
    a, _ = perfect.reset(seed=0)
    b, _ = noisy.reset(seed=0)
    names = perfect.layout.names()
    differ = {names[i] for i in np.flatnonzero(a != b)}
    assert differ == {"import_price_next_4h_eur_per_kwh", "import_price_next_12h_eur_per_kwh"}
