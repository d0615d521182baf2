"""Backtest figures: forecast against truth with the 10-90 % band, and error by local hour.

Built on :class:`matplotlib.figure.Figure` with an Agg canvas, never ``pyplot``: no global
matplotlib state changes. Needs matplotlib (the [data] extra).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from smac_rl_forecasting.backtest import BASELINES


def forecast_figure_png(
    forecasts: pd.DataFrame,
    path: Path,
    title: str,
    median: str,
    band: tuple[str, str] | None,
    unit: str,
    timezone: str,
) -> Path:
    """Write truth, the forecaster's median (and band) and the seasonal-naive baseline over time.

    Args:
        forecasts: Rows of a backtest's evaluation (``target_utc``, ``actual``, outputs, baselines).
        path: PNG to write.
        title: Figure title.
        median: Column of the point forecast.
        band: Lower and upper columns of the interval, or None.
        unit: Unit shown on the y axis.
        timezone: Time zone of the x axis.

    Returns:
        The path written.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    frame = forecasts.sort_values("target_utc")
    times = frame["target_utc"].dt.tz_convert(timezone).dt.tz_localize(None)
    figure = Figure(figsize=(11, 4), layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    if band is not None:
        axes.fill_between(times, frame[band[0]], frame[band[1]], alpha=0.3, step="post", label="10-90 %")
    axes.step(times, frame["actual"], where="post", color="black", linewidth=1.2, label="actual")
    axes.step(times, frame[median], where="post", color="tab:blue", label="LightGBM")
    axes.step(
        times, frame["seasonal_naive"], where="post", color="tab:gray", linestyle="--", label="seasonal naive"
    )
    axes.set_title(title)
    axes.set_ylabel(unit)
    axes.set_xlabel(f"local time ({timezone})")
    axes.legend(loc="upper left", ncols=4, fontsize="small")
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100)
    return path


def error_by_hour_png(
    forecasts: pd.DataFrame, path: Path, title: str, median: str, unit: str, timezone: str
) -> Path:
    """Write the mean absolute error by local hour of the target, forecaster and baselines.

    Args:
        forecasts: Rows of a backtest's evaluation.
        path: PNG to write.
        title: Figure title.
        median: Column of the forecaster's point forecast.
        unit: Unit of the error.
        timezone: Time zone of the hours.

    Returns:
        The path written.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    hours = forecasts["target_utc"].dt.tz_convert(timezone).dt.hour
    figure = Figure(figsize=(8, 4), layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    for column, label in ((median, "LightGBM"), *((b, b.replace("_", " ")) for b in BASELINES)):
        error = (forecasts[column] - forecasts["actual"]).abs().groupby(hours).mean()
        axes.plot(error.index.to_numpy(), error.to_numpy(), marker="o", label=label)
    axes.set_xticks(np.arange(0, 24, 2))
    axes.set_xlabel(f"hour of the target ({timezone})")
    axes.set_ylabel(f"MAE [{unit}]")
    axes.set_title(title)
    axes.legend(fontsize="small")
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100)
    return path
