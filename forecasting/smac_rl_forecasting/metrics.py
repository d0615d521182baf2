"""Forecast scores: MAE, RMSE, pinball loss, interval coverage and Poisson deviance.

Every function takes aligned 1-D arrays (truth first) and returns the mean over them; NaN rows are
not allowed (the backtests align truth and forecasts before scoring).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from smac_rl.core.arraytypes import FloatArray

POISSON_FLOOR = 0.01
"""Smallest mean a Poisson deviance is computed with [count per step]: a zero forecast of a step
with an arrival would make the deviance infinite, so every method's forecast is floored at it."""


def score(scores: pd.DataFrame, method: str, metric: str) -> float:
    """One cell of a score table (rows: methods, columns: metrics) as a float."""
    value: Any = scores.loc[method, metric]
    return float(value)


def _pair(truth: FloatArray, forecast: FloatArray) -> tuple[FloatArray, FloatArray]:
    y = np.asarray(truth, dtype=np.float64)
    f = np.asarray(forecast, dtype=np.float64)
    if y.shape != f.shape or y.ndim != 1 or y.size == 0:
        raise ValueError(f"forecast: got shapes {y.shape} and {f.shape}; expected equal non-empty 1-D arrays")
    return y, f


def mae(truth: FloatArray, forecast: FloatArray) -> float:
    """Mean absolute error [unit of the series]."""
    y, f = _pair(truth, forecast)
    return float(np.mean(np.abs(y - f)))


def rmse(truth: FloatArray, forecast: FloatArray) -> float:
    """Root mean squared error [unit of the series]."""
    y, f = _pair(truth, forecast)
    return float(np.sqrt(np.mean((y - f) ** 2)))


def pinball_loss(truth: FloatArray, quantile_forecast: FloatArray, quantile_frac: float) -> float:
    """Mean pinball (quantile) loss of a quantile forecast [unit of the series].

    ``loss = mean(max(q * (y - f), (q - 1) * (y - f)))``; for ``q = 0.5`` it is half the MAE.
    """
    y, f = _pair(truth, quantile_forecast)
    diff = y - f
    return float(np.mean(np.maximum(quantile_frac * diff, (quantile_frac - 1.0) * diff)))


def interval_coverage_frac(truth: FloatArray, lower: FloatArray, upper: FloatArray) -> float:
    """Share of truths inside ``[lower, upper]``."""
    y, lo = _pair(truth, lower)
    _, hi = _pair(truth, upper)
    return float(np.mean((y >= lo) & (y <= hi)))


def poisson_deviance(truth: FloatArray, mean_forecast: FloatArray, floor: float = POISSON_FLOOR) -> float:
    """Mean Poisson deviance of count forecasts, each floored at ``floor`` [per step].

    ``D = 2 * mean(y * log(y / mu) - (y - mu))`` with ``y * log(y / mu) = 0`` for ``y = 0``.
    """
    y, f = _pair(truth, mean_forecast)
    mu = np.maximum(f, floor)
    ratio_term = np.where(y > 0, y * np.log(np.where(y > 0, y, 1.0) / mu), 0.0)
    return float(2.0 * np.mean(ratio_term - (y - mu)))
