"""Pictures of one evaluated episode: grid exchange, sessions, storage, PV and prices on one time axis.

The figures are built on :class:`matplotlib.figure.Figure` with an Agg canvas, never through
``pyplot``: importing or calling this module changes no global matplotlib state (backend, rcParams,
open figures). Needs the [data] extra (matplotlib).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo

import matplotlib.dates as mdates
import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from smac_rl.core.arrays import ScenarioArrays
from smac_rl.core.arraytypes import FloatArray
from smac_rl.core.scoring import Kpis
from smac_rl.core.simulate import Trace

Panel = Literal["grid", "sessions", "soc", "storage", "pv", "prices"]
"""One panel of an episode figure, top to bottom in :data:`PANEL_ORDER`."""

PANEL_ORDER: tuple[Panel, ...] = ("grid", "sessions", "soc", "storage", "pv", "prices")
"""Every panel, in drawing order; ``storage`` and ``pv`` only where the site has them."""

MAX_SESSION_LINES = 6
"""Up to this many sessions, session power is drawn as one line each; above it, stacked."""

MAX_SESSION_LEGEND = 16
"""Up to this many sessions, the session panel names each session in its legend."""

_PANEL_HEIGHT_INCH = 2.3
_FIGURE_WIDTH_INCH = 13.0
_DPI = 100
_COLORMAP = "tab20"


def episode_panels(arrays: ScenarioArrays) -> tuple[Panel, ...]:
    """The panels an episode figure of this scenario has, top to bottom.

    Args:
        arrays: The compiled scenario.

    Returns:
        ``grid``, ``sessions``, ``soc``, then ``storage`` where the site has storage, ``pv`` where
        any PV is available, and ``prices``.
    """
    has_storage = arrays.site.storage_capacity_kwh > 0.0
    has_pv = bool(np.any(arrays.series.pv_available_kw > 0.0))
    return tuple(
        panel for panel in PANEL_ORDER if (panel != "storage" or has_storage) and (panel != "pv" or has_pv)
    )


def session_power_kw(arrays: ScenarioArrays, trace: Trace) -> FloatArray:
    """Applied power of each session at each step, from its connector [kW], ``(T, S)``.

    Args:
        arrays: The compiled scenario.
        trace: The episode.

    Returns:
        Power per step and session; zero while the session is not plugged in, negative for V2G.
    """
    occupancy = arrays.connector_session_index
    power_kw = np.zeros((arrays.n_steps, arrays.sessions.n_sessions))
    steps, connectors = np.nonzero(occupancy >= 0)
    power_kw[steps, occupancy[steps, connectors]] = trace.ev_power_kw[steps, connectors]
    return power_kw


def episode_plot_path(directory: Path, scenario_name: str, policy_name: str) -> Path:
    """The file of one episode's figure: ``<directory>/<scenario>__<policy>.png``, names sanitised.

    Args:
        directory: Folder of the figures.
        scenario_name: The scenario's name.
        policy_name: The policy's name (any text; characters outside ``A-Z a-z 0-9 . _ -`` become ``_``).

    Returns:
        The PNG path.
    """
    return directory / f"{_sanitise(scenario_name)}__{_sanitise(policy_name)}.png"


def episode_figure(arrays: ScenarioArrays, trace: Trace, kpis: Kpis, policy_name: str) -> Figure:
    """Build the figure of one episode (panels from :func:`episode_panels`, one shared local time axis).

    Args:
        arrays: The compiled scenario.
        trace: The episode, from :func:`smac_rl.core.simulate.simulate` or ``replay``.
        kpis: The scorer's KPIs of that episode (named in the title).
        policy_name: The policy that produced it.

    Returns:
        The figure, on an Agg canvas, one axes per panel.
    """
    panels = episode_panels(arrays)
    figure = Figure(
        figsize=(_FIGURE_WIDTH_INCH, _PANEL_HEIGHT_INCH * len(panels) + 0.9), layout="constrained"
    )
    FigureCanvasAgg(figure)
    axes = figure.subplots(len(panels), 1, sharex=True, squeeze=False)[:, 0]
    edges = _step_edges(arrays)
    draw = {
        "grid": _draw_grid,
        "sessions": _draw_sessions,
        "soc": _draw_soc,
        "storage": _draw_storage,
        "pv": _draw_pv,
        "prices": _draw_prices,
    }
    for ax, panel in zip(axes, panels, strict=True):
        draw[panel](ax, arrays, trace, edges)
        ax.grid(True, alpha=0.3)
        ax.margins(x=0.0)
    tz = ZoneInfo(arrays.timezone)
    locator = mdates.AutoDateLocator(tz=tz)  # type: ignore[no-untyped-call]  # dates has no stubs
    bottom = axes[-1]
    bottom.xaxis.set_major_locator(locator)
    formatter = mdates.ConciseDateFormatter(locator, tz=tz)  # type: ignore[no-untyped-call]
    bottom.xaxis.set_major_formatter(formatter)
    bottom.set_xlabel(f"local time ({arrays.timezone})")
    bottom.set_xlim(float(edges[0]), float(edges[-1]))
    figure.suptitle(_title(arrays, kpis, policy_name))
    return figure


def plot_episode(arrays: ScenarioArrays, trace: Trace, kpis: Kpis, policy_name: str, path: Path) -> Path:
    """Write the PNG of one episode (see :func:`episode_figure`).

    Args:
        arrays: The compiled scenario.
        trace: The episode.
        kpis: Its KPIs.
        policy_name: The policy that produced it.
        path: PNG file to write; its folder is created.

    Returns:
        The path written.

    Raises:
        OSError: When the file cannot be written.
    """
    figure = episode_figure(arrays, trace, kpis, policy_name)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=_DPI, format="png")
    return path


def plot_episodes(
    arrays: ScenarioArrays, runs: Iterable[tuple[str, Trace, Kpis]], directory: Path
) -> list[Path]:
    """Write one PNG per policy's episode into a folder (see :func:`episode_plot_path`).

    Args:
        arrays: The compiled scenario.
        runs: ``(policy name, trace, KPIs)`` of each evaluated policy.
        directory: Folder of the figures; created when missing.

    Returns:
        The paths written, in the order of ``runs``; names that sanitise alike get ``__2``, ``__3``...

    Raises:
        OSError: When a file cannot be written.
    """
    written: list[Path] = []
    for policy_name, trace, kpis in runs:
        first_choice = path = episode_plot_path(directory, arrays.name, policy_name)
        n_same = 1
        while path in written:
            n_same += 1
            path = first_choice.with_name(f"{first_choice.stem}__{n_same}.png")
        written.append(plot_episode(arrays, trace, kpis, policy_name, path))
    return written


def _sanitise(name: str) -> str:
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._")
    return cleaned or "unnamed"


def _step_edges(arrays: ScenarioArrays) -> FloatArray:
    """Step boundaries as matplotlib date numbers (days since the epoch, UTC), ``(T + 1,)``."""
    boundaries_utc = [
        arrays.start_utc + dt.timedelta(hours=arrays.step_h * k) for k in range(arrays.n_steps + 1)
    ]
    return np.asarray(mdates.date2num(boundaries_utc), dtype=np.float64)  # type: ignore[no-untyped-call]


def _held(values: FloatArray) -> FloatArray:
    """Per-step values extended by their last one, for step lines drawn over ``T + 1`` edges."""
    finite = np.where(np.isfinite(values), values, np.nan)
    return np.append(finite, finite[-1])


def _session_colors(n_sessions: int) -> list[tuple[float, float, float, float]]:
    """One colour per session: tab20's ten dark hues first, then their light partners, then again."""
    from matplotlib import colormaps

    cmap = colormaps[_COLORMAP]
    order = [*range(0, cmap.N, 2), *range(1, cmap.N, 2)]
    return [cmap(order[s % len(order)]) for s in range(n_sessions)]


def _can_export(arrays: ScenarioArrays) -> bool:
    return bool(
        arrays.site.storage_capacity_kwh > 0.0
        or np.any(arrays.series.pv_available_kw > 0.0)
        or np.any(arrays.sessions.max_discharge_kw > 0.0)
    )


def _legend(ax: Axes, n_columns: int = 1) -> None:
    ax.legend(loc="upper left", bbox_to_anchor=(1.005, 1.0), fontsize="small", ncols=n_columns)


def _draw_grid(ax: Axes, arrays: ScenarioArrays, trace: Trace, edges: FloatArray) -> None:
    series = arrays.series
    ax.step(edges, _held(trace.grid_import_kw), where="post", color="C0", label="grid import")
    ax.step(
        edges, _held(series.import_limit_kw), where="post", color="C3", linestyle="--", label="import limit"
    )
    if _can_export(arrays):
        ax.step(edges, -_held(trace.grid_export_kw), where="post", color="C2", label="grid export (negative)")
        ax.step(
            edges,
            -_held(series.export_limit_kw),
            where="post",
            color="C1",
            linestyle="--",
            label="export limit (negative)",
        )
    ax.step(edges, _held(series.base_load_kw), where="post", color="0.5", linewidth=0.8, label="base load")
    violation_kw = trace.import_violation_kw + trace.export_violation_kw
    if np.any(violation_kw > 0.0):
        ax.fill_between(
            edges, 0.0, _held(violation_kw), step="post", color="C3", alpha=0.3, label="limit violation"
        )
    ax.axhline(0.0, color="k", linewidth=0.6)
    ax.set_ylabel("power [kW]")
    ax.set_title("Site grid exchange", loc="left", fontsize="medium")
    _legend(ax)


def _draw_sessions(ax: Axes, arrays: ScenarioArrays, trace: Trace, edges: FloatArray) -> None:
    sessions = arrays.sessions
    power_kw = session_power_kw(arrays, trace)
    colors = _session_colors(sessions.n_sessions)
    is_stacked = sessions.n_sessions > MAX_SESSION_LINES
    charge_base_kw = np.zeros(arrays.n_steps + 1)
    discharge_base_kw = np.zeros(arrays.n_steps + 1)
    for s, session_id in enumerate(sessions.session_ids):
        held_kw = _held(power_kw[:, s])
        label = session_id if sessions.n_sessions <= MAX_SESSION_LEGEND else None
        if not is_stacked:
            ax.step(edges, held_kw, where="post", color=colors[s], label=label)
            continue
        charge_kw, discharge_kw = np.maximum(held_kw, 0.0), np.minimum(held_kw, 0.0)
        ax.fill_between(
            edges,
            charge_base_kw,
            charge_base_kw + charge_kw,
            step="post",
            color=colors[s],
            linewidth=0.0,
            label=label,
        )
        if np.any(discharge_kw < 0.0):
            ax.fill_between(
                edges,
                discharge_base_kw,
                discharge_base_kw + discharge_kw,
                step="post",
                color=colors[s],
                linewidth=0.0,
                hatch="//",
            )
        charge_base_kw = charge_base_kw + charge_kw
        discharge_base_kw = discharge_base_kw + discharge_kw
    if arrays.site.storage_capacity_kwh > 0.0:
        ax.step(edges, _held(trace.storage_power_kw), where="post", color="k", linewidth=1.0, label="storage")
    ax.axhline(0.0, color="k", linewidth=0.6)
    ax.set_ylabel("power [kW]")
    how = "stacked" if is_stacked else "one line each"
    storage_note = ", storage in black" if arrays.site.storage_capacity_kwh > 0.0 else ""
    ax.set_title(
        f"Power per session ({sessions.n_sessions} sessions, {how}; V2G negative{storage_note})",
        loc="left",
        fontsize="medium",
    )
    if sessions.n_sessions or arrays.site.storage_capacity_kwh > 0.0:
        _legend(ax, n_columns=2 if sessions.n_sessions > 8 else 1)


def _draw_soc(ax: Axes, arrays: ScenarioArrays, trace: Trace, edges: FloatArray) -> None:
    sessions, n_steps = arrays.sessions, arrays.n_steps
    colors = _session_colors(sessions.n_sessions)
    for s in range(sessions.n_sessions):
        first = int(np.clip(sessions.first_step[s], 0, n_steps))
        last = int(np.clip(sessions.end_step[s], 0, n_steps))
        capacity_kwh = float(sessions.capacity_kwh[s])
        if capacity_kwh <= 0.0:
            continue
        soc_frac = trace.session_energy_kwh[first : last + 1, s] / capacity_kwh
        ax.plot(edges[first : last + 1], soc_frac, color=colors[s], linewidth=1.2)
        target_frac = float(sessions.target_energy_kwh[s]) / capacity_kwh
        leaves_within = int(sessions.end_step[s]) <= n_steps
        ax.plot(
            [edges[last]],
            [target_frac],
            marker="x" if leaves_within else ">",
            markersize=8,
            markeredgewidth=2,
            color=colors[s],
            linestyle="none",
        )
    ax.set_ylim(0.0, 1.05)
    ax.set_ylabel("SoC [frac]")
    ax.set_title("Session state of charge against the target at departure", loc="left", fontsize="medium")
    handles = [
        Line2D([], [], color="0.3", label="SoC while plugged in"),
        Line2D(
            [], [], color="0.3", marker="x", markeredgewidth=2, linestyle="none", label="target at departure"
        ),
        Line2D([], [], color="0.3", marker=">", linestyle="none", label="target (departs after the horizon)"),
    ]
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.005, 1.0), fontsize="small")


def _draw_storage(ax: Axes, arrays: ScenarioArrays, trace: Trace, edges: FloatArray) -> None:
    site = arrays.site
    capacity_kwh = site.storage_capacity_kwh
    ax.plot(edges, trace.storage_energy_kwh / capacity_kwh, color="C4", label="storage SoC")
    ax.axhline(site.storage_min_energy_kwh / capacity_kwh, color="C4", linestyle=":", label="SoC bounds")
    ax.axhline(site.storage_max_energy_kwh / capacity_kwh, color="C4", linestyle=":")
    ax.set_ylim(0.0, 1.05)
    ax.set_ylabel("SoC [frac]")
    ax.set_title(f"Storage state of charge ({capacity_kwh:g} kWh)", loc="left", fontsize="medium")
    _legend(ax)


def _draw_pv(ax: Axes, arrays: ScenarioArrays, trace: Trace, edges: FloatArray) -> None:
    ax.step(edges, _held(arrays.series.pv_available_kw), where="post", color="C1", label="PV available")
    ax.fill_between(edges, 0.0, _held(trace.pv_used_kw), step="post", color="C1", alpha=0.35, label="PV used")
    ax.set_ylabel("power [kW]")
    ax.set_title("PV available and used", loc="left", fontsize="medium")
    _legend(ax)


def _draw_prices(ax: Axes, arrays: ScenarioArrays, trace: Trace, edges: FloatArray) -> None:
    del trace  # prices are exogenous
    series = arrays.series
    ax.step(edges, _held(series.import_price_eur_per_kwh), where="post", color="C0", label="import price")
    ax.step(edges, _held(series.export_price_eur_per_kwh), where="post", color="C2", label="export price")
    ax.set_ylabel("price [EUR/kWh]")
    ax.set_title("Energy prices", loc="left", fontsize="medium")
    _legend(ax)


def _title(arrays: ScenarioArrays, kpis: Kpis, policy_name: str) -> str:
    details = [
        f"total cost {kpis.total_cost_eur:.2f} EUR",
        f"unmet energy {kpis.unmet_energy_kwh:.2f} kWh",
        f"peak import {kpis.peak_import_kw:.1f} kW",
    ]
    if kpis.limit_violation_kwh > 0.0:
        details.append(f"limit violation {kpis.limit_violation_kwh:.2f} kWh")
    return f"{arrays.name}, policy {policy_name}\n{', '.join(details)}"
