"""From the registry's state to the core's scenario: the site, its active sessions now, its signals.

The time grid starts at the current period (``now`` floored to the site's step) and spans the
site's horizon. A session already plugged in enters with its arrival moved to the grid's start,
its last reported state of charge as the arrival SoC, and what it still wants: the energy wanted
less the energy its battery gained, or its target SoC. Sessions arriving after the grid's end are
left out, and so are sessions past their departure that were not ended (the EV is expected gone;
it gets no profile). Capacity blocks become the import and export limit series.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from smac_rl.core.specs import ScenarioSpec, SeriesSet, SessionSpec, TimeGridSpec
from smac_rl_serve.capacity import CapacityBlock, limit_series
from smac_rl_serve.schemas import SiteConfig


@dataclass(frozen=True)
class LiveSession:
    """An active session as stored.

    Attributes:
        spec: The inputs it was started with.
        soc_frac: Its state of charge last reported or derived [0..1].
    """

    spec: SessionSpec
    soc_frac: float


def period_start(now_utc: dt.datetime, step_min: int) -> dt.datetime:
    """Start of the period holding an instant, periods of ``step_min`` from midnight UTC."""
    seconds = int(now_utc.timestamp())
    return dt.datetime.fromtimestamp(seconds - seconds % (step_min * 60), dt.UTC)


def current_session(live: LiveSession, start_utc: dt.datetime, now_utc: dt.datetime) -> SessionSpec:
    """A session as the scenario starting at ``start_utc`` sees it at ``now_utc``.

    Args:
        live: The stored session.
        start_utc: The grid's start (the current period's).
        now_utc: Now.

    Returns:
        The spec with its arrival moved to the grid's start if it has arrived, the SoC now, and the
        energy still wanted.
    """
    spec = live.spec
    update: dict[str, object] = {"arrival_soc_frac": live.soc_frac}
    if spec.arrival_utc <= now_utc:
        update["arrival_utc"] = min(spec.arrival_utc, start_utc)
    if spec.energy_wanted_kwh is not None:
        gained_kwh = max(0.0, live.soc_frac - spec.arrival_soc_frac) * spec.battery_capacity_kwh
        update["energy_wanted_kwh"] = max(0.0, spec.energy_wanted_kwh - gained_kwh)
    return spec.model_copy(update=update)


def site_series(
    config: SiteConfig, import_limit_kw: list[float] | None, export_limit_kw: list[float] | None
) -> SeriesSet:
    """The scenario's series from a site's constants and its limit series."""
    series = config.series
    return SeriesSet(
        import_price_eur_per_kwh=series.import_price_eur_per_kwh,
        export_price_eur_per_kwh=series.export_price_eur_per_kwh,
        base_load_kw=series.base_load_kw,
        pv_available_kw=series.pv_available_kw,
        grid_setpoint_kw=series.grid_setpoint_kw,
        import_limit_kw=import_limit_kw,
        export_limit_kw=export_limit_kw,
    )


def site_scenario(
    config: SiteConfig,
    sessions: list[LiveSession],
    blocks: list[tuple[CapacityBlock, int]],
    now_utc: dt.datetime,
) -> ScenarioSpec:
    """The scenario of a site now.

    Args:
        config: The site's configuration.
        sessions: Its active sessions, in a stable order.
        blocks: Its capacity blocks with the site version of the signal that brought each.
        now_utc: Now.

    Returns:
        The scenario (field-checked by pydantic; cross-field checks are the caller's).

    Raises:
        pydantic.ValidationError: When the configuration's time grid is invalid.
    """
    grid = TimeGridSpec(
        start_utc=period_start(now_utc, config.time_grid.step_min),
        step_min=config.time_grid.step_min,
        n_steps=config.time_grid.n_steps,
    )
    live = [
        current_session(s, grid.start_utc, now_utc)
        for s in sessions
        if s.spec.departure_utc > now_utc and s.spec.arrival_utc < grid.end_utc
    ]
    grid_spec = config.site.grid
    return ScenarioSpec(
        name=f"{config.site.site_id} at {grid.start_utc.isoformat()}",
        site=config.site,
        time_grid=grid,
        sessions=live,
        series=site_series(
            config,
            limit_series(blocks, "import", grid, grid_spec.import_limit_kw),
            limit_series(blocks, "export", grid, grid_spec.resolved_export_limit_kw()),
        ),
        unmet_energy_penalty_eur_per_kwh=config.unmet_energy_penalty_eur_per_kwh,
        objective=config.objective,
    )


def session_probe(config: SiteConfig, spec: SessionSpec) -> ScenarioSpec:
    """A one-day scenario around one session's arrival, to check the session against the site.

    The core's checks of it find the session's own problems (departure before arrival, energy
    wanted and target both or neither, unknown station or connector) whatever its dates.
    """
    arrival = spec.arrival_utc.astimezone(dt.UTC)
    grid = TimeGridSpec(start_utc=period_start(arrival, 1440), step_min=1440, n_steps=1)
    return ScenarioSpec(
        name=f"{config.site.site_id} probe",
        site=config.site,
        time_grid=grid,
        sessions=[spec],
        series=site_series(config, None, None),
        objective=config.objective,
    )
