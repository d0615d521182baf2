"""The one way forecasts enter: the :class:`ForecastProvider` protocol, with perfect and noisy providers.

A provider answers, at a step of a scenario, what the exogenous series will be over the next
``horizon_steps`` steps (the step itself first). The env's price-outlook channels, the MPC and the
service all read forecasts through it; the forecasting package adds LightGBM providers.

Providers only see the scenario through :meth:`ForecastProvider.forecast`'s arguments; a real
forecaster must use only what is known at ``step_index`` (the truth of earlier steps), which the
perfect provider, by design, does not respect.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Protocol, runtime_checkable

import numpy as np

from smac_rl.core.arrays import ScenarioArrays
from smac_rl.core.arraytypes import FloatArray

FORECAST_SERIES = (
    "import_price_eur_per_kwh",
    "export_price_eur_per_kwh",
    "base_load_kw",
    "pv_available_kw",
    "import_limit_kw",
    "export_limit_kw",
)
"""Exogenous series a provider forecasts (names of :class:`smac_rl.core.arrays.SeriesArrays`)."""


@dataclass(frozen=True)
class ExogenousForecast:
    """Forecast exogenous series from a step on, ``(H,)`` each (``H`` may be cut by the grid's end).

    Attributes:
        step_index: First step forecast (the step the forecast is made at).
        import_price_eur_per_kwh: Import price [EUR/kWh].
        export_price_eur_per_kwh: Export price [EUR/kWh].
        base_load_kw: Base load [kW].
        pv_available_kw: PV power available [kW].
        import_limit_kw: Import limit [kW].
        export_limit_kw: Export limit [kW].
    """

    step_index: int
    import_price_eur_per_kwh: FloatArray
    export_price_eur_per_kwh: FloatArray
    base_load_kw: FloatArray
    pv_available_kw: FloatArray
    import_limit_kw: FloatArray
    export_limit_kw: FloatArray

    @property
    def n_steps(self) -> int:
        """Steps covered ``H``."""
        return int(self.import_price_eur_per_kwh.shape[0])


@runtime_checkable
class ForecastProvider(Protocol):
    """Anything that forecasts a scenario's exogenous series from a step on."""

    @property
    def name(self) -> str:
        """Name shown in reports."""
        ...

    def forecast(self, arrays: ScenarioArrays, step_index: int, horizon_steps: int) -> ExogenousForecast:
        """Forecast from ``step_index`` over ``horizon_steps`` steps (cut at the grid's end).

        Args:
            arrays: The scenario (a real forecaster reads only steps before ``step_index``).
            step_index: The step the forecast is made at.
            horizon_steps: Steps wanted, at least 1.

        Returns:
            The forecast.
        """
        ...


def _window(arrays: ScenarioArrays, step_index: int, horizon_steps: int) -> slice:
    if not 0 <= step_index < arrays.n_steps:
        raise ValueError(f"step_index: got {step_index}; expected 0 to {arrays.n_steps - 1}")
    if horizon_steps < 1:
        raise ValueError(f"horizon_steps: got {horizon_steps}; expected at least 1")
    return slice(step_index, min(step_index + horizon_steps, arrays.n_steps))


class PerfectForecast:
    """The true series: the oracle's view, and the reference every forecaster is compared with."""

    name = "perfect"

    def forecast(self, arrays: ScenarioArrays, step_index: int, horizon_steps: int) -> ExogenousForecast:
        """The truth over the window (see :class:`ForecastProvider`)."""
        window = _window(arrays, step_index, horizon_steps)
        values = {name: getattr(arrays.series, name)[window].copy() for name in FORECAST_SERIES}
        return ExogenousForecast(step_index=step_index, **values)


class NoisyForecast:
    """The truth with multiplicative noise that grows with the lead time, as in EV2Gym's "forecasts".

    ``value_hat[t + k] = value[t + k] * (1 + sigma * sqrt((k + 1) / steps_per_day) * z)`` with
    ``z ~ N(0, 1)`` drawn from a generator seeded by ``(seed, step_index)``, so a forecast made at a
    step is the same whenever it is asked. The step itself (``k = 0``) is known exactly (its prices
    and limits are published; its PV and base load are measured), and power series stay non-negative.
    Limits are not perturbed (a DSO signal is known when sent).
    """

    def __init__(self, sigma_frac: float = 0.1, seed: int = 0) -> None:
        """Create the provider.

        Args:
            sigma_frac: Relative error one day ahead.
            seed: Seed of the noise.

        Raises:
            ValueError: For a negative ``sigma_frac`` or seed.
        """
        if sigma_frac < 0.0:
            raise ValueError(f"sigma_frac: got {sigma_frac}; expected >= 0")
        if seed < 0:
            raise ValueError(f"seed: got {seed}; expected >= 0")
        self.sigma_frac, self.seed = sigma_frac, seed
        self.name = f"noisy_{sigma_frac:g}"

    def forecast(self, arrays: ScenarioArrays, step_index: int, horizon_steps: int) -> ExogenousForecast:
        """The perturbed truth over the window (see the class docstring)."""
        truth = PerfectForecast().forecast(arrays, step_index, horizon_steps)
        rng = np.random.default_rng([self.seed, step_index])
        lead = np.arange(truth.n_steps)
        steps_per_day = 24.0 / arrays.step_h
        spread = self.sigma_frac * np.sqrt((lead + 1) / steps_per_day)
        spread[0] = 0.0
        values: dict[str, FloatArray] = {}
        for field in fields(ExogenousForecast):
            if field.name == "step_index":
                continue
            value = getattr(truth, field.name)
            if field.name.endswith("_limit_kw"):
                values[field.name] = value
                continue
            noisy = value * (1.0 + spread * rng.standard_normal(truth.n_steps))
            values[field.name] = np.maximum(noisy, 0.0) if field.name.endswith("_kw") else noisy
        return ExogenousForecast(step_index=step_index, **values)
