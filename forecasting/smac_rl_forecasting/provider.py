"""Price forecasts behind :class:`smac_rl.core.forecasts.ForecastProvider`: LightGBM and seasonal naive.

At step ``i`` of a scenario, the forecast origin is the start of the hour holding the step's
start (UTC). A provider reads the day-ahead prices of the hours before that origin (the bundle by
default, or the prices given), forecasts the hours from the origin on and puts them on the
scenario's grid, each step taking the minute-weighted mean of the hours it covers.

* :class:`LightGbmPriceForecast`: a fitted :class:`PriceForecaster` (its median, or another of
  its quantiles); steps further than the forecaster's horizon (48 h) from the origin hold its last
  hour. :func:`load_onnx_price_forecaster` reads an exported model folder
  (``models/forecasters/nl_day_ahead_prices/v1``) into such a forecaster, run by onnxruntime.
* :class:`SeasonalNaivePriceForecast`: the price of the same hour one week earlier, and for hours
  a week or more ahead the same hour of the latest week before the origin (``k`` weeks earlier,
  ``k = floor(lead_h / 168) + 1``), so every value is known at the origin.

The scenario's prices are rebuilt from the day-ahead forecast by a stated rule (the generator's):
``import = day_ahead + import_adder_eur_per_kwh``; ``export = day_ahead`` (``export_rule="day_ahead"``)
or ``0`` (``"zero"``). The providers never read the scenario's own price arrays, so they do not see
the truth of the step itself either (``NoisyForecast`` treats that step as known; these providers
do not). Every other series (base load, PV, limits) is passed through from the scenario as the
:class:`~smac_rl.core.forecasts.PerfectForecast` gives it.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from smac_rl.core.arrays import ScenarioArrays
from smac_rl.core.arraytypes import FloatArray
from smac_rl.core.forecasts import ExogenousForecast, PerfectForecast
from smac_rl_forecasting.features import HISTORY_DAYS, FeatureConfig
from smac_rl_forecasting.model import BoosterConfig, SlotForecaster, TrainingSummary
from smac_rl_forecasting.prices import PRICE_COLUMNS, PriceForecaster
from smac_rl_forecasting.series import ForecastInputError, bundled_prices, check_regular_series

QUANTILE_COLUMNS = {"q10": PRICE_COLUMNS[0], "q50": PRICE_COLUMNS[1], "q90": PRICE_COLUMNS[2]}

HOURS_PER_WEEK = 168
"""Lag of the seasonal-naive forecast [h]."""

DEFAULT_PRICE_MODEL_DIR = Path("models/forecasters/nl_day_ahead_prices/v1")
"""The promoted price forecaster, relative to the repository root."""


class _HourlyPriceForecast:
    """What the price providers share: the prices read, the price rule and the grid mapping."""

    name: str

    def __init__(
        self,
        prices: pd.Series | None,
        import_adder_eur_per_kwh: float,
        export_rule: Literal["day_ahead", "zero"],
    ) -> None:
        if export_rule not in ("day_ahead", "zero"):
            raise ForecastInputError(f"export_rule: got {export_rule!r}; expected day_ahead or zero")
        if not math.isfinite(import_adder_eur_per_kwh):
            raise ForecastInputError(
                f"import_adder_eur_per_kwh: got {import_adder_eur_per_kwh}; expected a finite number"
            )
        if prices is None:
            prices = bundled_prices(
                dt.datetime(2015, 1, 1, tzinfo=dt.UTC), dt.datetime(2025, 1, 1, tzinfo=dt.UTC)
            )
        self.prices = check_regular_series(prices, "prices", 60)
        self.import_adder_eur_per_kwh = import_adder_eur_per_kwh
        self.export_rule = export_rule

    def hourly(self, origin: pd.Timestamp, n_hours: int) -> FloatArray:
        """The day-ahead forecast made at ``origin`` of the hours from it on [EUR/kWh].

        Args:
            origin: The forecast origin, an hour start (UTC).
            n_hours: Hours wanted, at least 1; a provider may return fewer (at least one), and
                steps beyond them hold the last hour returned.

        Returns:
            One value per hour, ``(n,)``.
        """
        raise NotImplementedError

    def forecast(self, arrays: ScenarioArrays, step_index: int, horizon_steps: int) -> ExogenousForecast:
        """Forecast prices from ``step_index`` (see the module docstring); other series are the truth."""
        truth = PerfectForecast().forecast(arrays, step_index, horizon_steps)
        step = pd.Timedelta(hours=arrays.step_h)
        step_start = pd.Timestamp(arrays.start_utc).tz_convert("UTC") + step * step_index
        origin = step_start.floor("h")
        step_min = round(arrays.step_h * 60)
        minutes = (step_start - origin) // pd.Timedelta(minutes=1) + np.arange(truth.n_steps * step_min)
        hourly = self.hourly(origin, int(minutes[-1]) // 60 + 1)
        hours = np.minimum(minutes // 60, hourly.shape[0] - 1)
        day_ahead = hourly[hours].reshape(truth.n_steps, step_min).mean(axis=1)
        export = day_ahead.copy() if self.export_rule == "day_ahead" else np.zeros_like(day_ahead)
        return ExogenousForecast(
            step_index=step_index,
            import_price_eur_per_kwh=day_ahead + self.import_adder_eur_per_kwh,
            export_price_eur_per_kwh=export,
            base_load_kw=truth.base_load_kw,
            pv_available_kw=truth.pv_available_kw,
            import_limit_kw=truth.import_limit_kw,
            export_limit_kw=truth.export_limit_kw,
        )


class LightGbmPriceForecast(_HourlyPriceForecast):
    """A :class:`~smac_rl.core.forecasts.ForecastProvider` whose prices come from a LightGBM forecaster."""

    def __init__(
        self,
        forecaster: PriceForecaster,
        prices: pd.Series | None = None,
        import_adder_eur_per_kwh: float = 0.0,
        export_rule: Literal["day_ahead", "zero"] = "day_ahead",
        quantile: Literal["q10", "q50", "q90"] = "q50",
    ) -> None:
        """Create the provider.

        Args:
            forecaster: A fitted price forecaster (fitted with LightGBM, or read from ONNX by
                :func:`load_onnx_price_forecaster`).
            prices: Hourly day-ahead prices [EUR/kWh] on a UTC index (the bundle's 2015-2024 when
                None); only hours before each origin are read.
            import_adder_eur_per_kwh: Retail adder on the day-ahead price for imports [EUR/kWh].
            export_rule: Exports paid at the day-ahead price, or nothing.
            quantile: Which quantile of the forecast is served.

        Raises:
            ForecastInputError: For an unfitted forecaster, bad prices, an unknown rule or quantile.
        """
        if not forecaster.core.is_fitted:
            raise ForecastInputError("forecaster: not fitted; call fit() first")
        if quantile not in QUANTILE_COLUMNS:
            raise ForecastInputError(f"quantile: got {quantile!r}; expected q10, q50 or q90")
        super().__init__(prices, import_adder_eur_per_kwh, export_rule)
        self.forecaster = forecaster
        self.quantile = quantile
        self.name = f"lightgbm_prices_{quantile}"
        self._cache: tuple[pd.Timestamp, FloatArray] | None = None

    def hourly(self, origin: pd.Timestamp, n_hours: int) -> FloatArray:
        """The served quantile for the forecaster's hours from ``origin`` on, ``(horizon_h,)`` [EUR/kWh].

        ``n_hours`` is not used: the forecaster's whole horizon (48 h) is returned (and cached).
        """
        if self._cache is not None and self._cache[0] == origin:
            return self._cache[1]
        history = self.prices[
            (self.prices.index >= origin - pd.Timedelta(days=HISTORY_DAYS + 1)) & (self.prices.index < origin)
        ]
        if history.shape[0] < 2:
            raise ForecastInputError(
                f"prices: got no hours before origin {origin.isoformat()}; expected "
                f"{HISTORY_DAYS} days of history (the bundle covers 2015 to 2024)"
            )
        frame = self.forecaster.predict(history, origin)
        hourly = frame[QUANTILE_COLUMNS[self.quantile]].to_numpy(dtype=np.float64)
        self._cache = (origin, hourly)
        return hourly


class SeasonalNaivePriceForecast(_HourlyPriceForecast):
    """A :class:`~smac_rl.core.forecasts.ForecastProvider` whose prices are those of one week earlier.

    The forecast of hour ``h`` made at origin ``o`` is the price of hour ``h - 168 k`` with
    ``k = floor((h - o) / 168 h) + 1``: the same hour one week earlier while that is before the
    origin, the same hour of the latest week before it beyond (module docstring).
    """

    name = "seasonal_naive_prices"

    def __init__(
        self,
        prices: pd.Series | None = None,
        import_adder_eur_per_kwh: float = 0.0,
        export_rule: Literal["day_ahead", "zero"] = "day_ahead",
    ) -> None:
        """Create the provider.

        Args:
            prices: Hourly day-ahead prices [EUR/kWh] on a UTC index (the bundle's 2015-2024 when
                None); only hours before each origin are read.
            import_adder_eur_per_kwh: Retail adder on the day-ahead price for imports [EUR/kWh].
            export_rule: Exports paid at the day-ahead price, or nothing.

        Raises:
            ForecastInputError: For bad prices or an unknown rule.
        """
        super().__init__(prices, import_adder_eur_per_kwh, export_rule)

    def hourly(self, origin: pd.Timestamp, n_hours: int) -> FloatArray:
        """The prices of the hours ``k`` weeks before each of ``n_hours`` hours from ``origin`` [EUR/kWh].

        Raises:
            ForecastInputError: For fewer than one hour, or a price missing from the prices read.
        """
        if n_hours < 1:
            raise ForecastInputError(f"n_hours: got {n_hours}; expected at least 1")
        lead_h = np.arange(n_hours, dtype=np.int64)
        lag_h = (lead_h // HOURS_PER_WEEK + 1) * HOURS_PER_WEEK
        sources = pd.DatetimeIndex(origin + pd.to_timedelta(lead_h - lag_h, unit="h"))
        values = self.prices.reindex(sources).to_numpy(dtype=np.float64)
        missing = np.flatnonzero(np.isnan(values))
        if missing.size:
            raise ForecastInputError(
                f"prices: got no price for {sources[int(missing[0])].isoformat()}; expected hourly "
                f"prices of the week before origin {origin.isoformat()} (the bundle covers 2015 to 2024)"
            )
        return values


class _OnnxBooster:
    """One exported graph in a booster's place: ``predict(features)`` runs it with onnxruntime."""

    def __init__(self, graph: bytes) -> None:
        import onnxruntime

        self._session: Any = onnxruntime.InferenceSession(graph, providers=["CPUExecutionProvider"])

    def predict(self, features: FloatArray) -> FloatArray:
        """The graph's raw output on feature rows, ``(N,)`` (float32 inside, float64 out)."""
        (output,) = self._session.run(None, {"features": np.asarray(features, dtype=np.float32)})
        return np.asarray(output, dtype=np.float64).reshape(-1)


def load_onnx_price_forecaster(directory: Path = DEFAULT_PRICE_MODEL_DIR) -> PriceForecaster:
    """The price forecaster an export wrote (``metadata.json`` and ``q10/q50/q90.onnx``), without LightGBM.

    The graphs replace the boosters; features, normalisation and the sorting of quantiles stay
    :class:`PriceForecaster`'s, so predictions equal the LightGBM model's up to the export's
    parity tolerance (float32 graphs).

    Args:
        directory: The model folder.

    Returns:
        A fitted forecaster that predicts with onnxruntime (it cannot be refitted or written back).

    Raises:
        ForecastInputError: For a missing or unreadable folder, metadata that is not a price
            forecaster's, a graph whose sha256 differs from the metadata's or feature names that
            differ from the configuration's.
    """
    metadata_path = directory / "metadata.json"
    try:
        metadata = json.loads(metadata_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ForecastInputError(
            f"price model: got {str(directory)!r}; expected a folder with a readable metadata.json ({exc})"
        ) from None
    if metadata.get("field") != "prices" or sorted(metadata.get("outputs", {})) != sorted(QUANTILE_COLUMNS):
        raise ForecastInputError(
            f"price model: got field {metadata.get('field')!r} with outputs "
            f"{sorted(metadata.get('outputs', {}))} in {metadata_path}; expected field 'prices' with "
            "outputs q10, q50, q90"
        )
    booster = dict(metadata["booster"])
    booster["quantiles"] = tuple(booster["quantiles"])
    core = SlotForecaster(
        field="prices",
        features=FeatureConfig(**metadata["features"]),
        booster=BoosterConfig(**booster),
        horizon_steps=int(metadata["horizon_steps"]),
    )
    if core.feature_names != list(metadata["feature_names"]):
        raise ForecastInputError(
            f"price model: got feature_names {metadata['feature_names']} in {metadata_path}; "
            f"expected {core.feature_names}"
        )
    graphs: dict[str, Any] = {}
    for output in core.booster.output_names:
        entry = metadata["outputs"][output]
        path = directory / entry["file"]
        try:
            graph = path.read_bytes()
        except OSError as exc:
            raise ForecastInputError(f"price model: got no readable {path} ({exc.strerror})") from None
        digest = hashlib.sha256(graph).hexdigest()
        if digest != entry["sha256"]:
            raise ForecastInputError(
                f"price model: got sha256 {digest} for {path}; expected {entry['sha256']} (metadata.json)"
            )
        graphs[output] = _OnnxBooster(graph)
    core.boosters = graphs
    if metadata.get("training") is not None:
        core.training = TrainingSummary(**metadata["training"])
    return PriceForecaster.from_core(core)
