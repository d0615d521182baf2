"""Rich renderings of scenarios and KPI tables for the terminal."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from rich.console import Group
from rich.markup import escape
from rich.table import Table

from smac_rl.core.arrays import compile_scenario
from smac_rl.core.scoring import Kpis
from smac_rl.core.specs import ScenarioSpec

KPI_COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("total_cost_eur", "total cost [EUR]", "{:.2f}"),
    ("energy_cost_eur", "energy [EUR]", "{:.2f}"),
    ("demand_charge_eur", "demand [EUR]", "{:.2f}"),
    ("degradation_cost_eur", "degradation [EUR]", "{:.2f}"),
    ("unmet_energy_cost_eur", "unmet [EUR]", "{:.2f}"),
    ("peak_import_kw", "peak import [kW]", "{:.1f}"),
    ("energy_delivered_kwh", "delivered [kWh]", "{:.1f}"),
    ("unmet_energy_kwh", "unmet [kWh]", "{:.2f}"),
    ("sessions_fully_served_frac", "fully served", "{:.0%}"),
    ("limit_violation_kwh", "limit violation [kWh]", "{:.2f}"),
    ("v2g_discharged_kwh", "V2G [kWh]", "{:.1f}"),
    ("storage_throughput_kwh", "storage [kWh]", "{:.1f}"),
    ("pv_self_consumption_frac", "PV self-use", "{:.0%}"),
    ("projection_adjustment_kwh", "projected away [kWh]", "{:.1f}"),
    ("setpoint_deviation_kwh", "setpoint deviation [kWh]", "{:.1f}"),
    ("objective_eur", "objective [EUR]", "{:.2f}"),
)


def kpi_table(
    rows: Sequence[tuple[str, Kpis]], title: str, savings_capture: dict[str, float | None] | None = None
) -> Table:
    """A table with one row per KPI and one column per policy (savings capture last, when given)."""
    table = Table(title=title)
    table.add_column("KPI", style="bold")
    for name, _ in rows:
        table.add_column(name, justify="right")
    values = [kpis.as_dict() for _, kpis in rows]
    for key, header, fmt in KPI_COLUMNS:
        table.add_row(escape(header), *[("n/a" if v[key] is None else fmt.format(v[key])) for v in values])
    if savings_capture is not None:
        cells = [savings_capture.get(name) for name, _ in rows]
        table.add_row(
            "savings capture", *["n/a (< 1 EUR to save)" if c is None else f"{c:.0%}" for c in cells]
        )
    return table


def scenario_summary(spec: ScenarioSpec) -> Group:
    """A readable summary of a scenario: horizon, assets, tariff, sessions."""
    arrays = compile_scenario(spec)
    site, grid = spec.site, spec.time_grid
    overview = Table(title=f"Scenario {spec.name}", show_header=False)
    overview.add_column("item", style="bold")
    overview.add_column("value")
    overview.add_row("site", f"{site.site_id} {site.name}".strip() + f" ({site.timezone})")
    overview.add_row(
        "horizon",
        f"{grid.start_utc.isoformat()} to {grid.end_utc.isoformat()}: "
        f"{grid.n_steps} steps of {grid.step_min} min",
    )
    overview.add_row(
        "grid",
        f"import limit {site.grid.import_limit_kw:g} kW (lowest {arrays.series.import_limit_kw.min():g}), "
        f"export limit {site.grid.resolved_export_limit_kw():g} kW"
        + (
            f", feeder {site.grid.charging_phase_current_limit_a:g} A per phase"
            if site.grid.charging_phase_current_limit_a
            else ""
        ),
    )
    storage = site.storage
    overview.add_row(
        "storage",
        "none"
        if storage is None
        else f"{storage.capacity_kwh:g} kWh, +{storage.max_charge_kw:g}/-{storage.max_discharge_kw:g} kW, "
        f"SoC {storage.initial_soc_frac:.0%} in [{storage.min_soc_frac:.0%}, {storage.max_soc_frac:.0%}]",
    )
    pv = arrays.series.pv_available_kw
    overview.add_row(
        "PV",
        "none"
        if site.pv is None
        else f"{site.pv.peak_power_kwp:g} kWp, peak {pv.max():g} kW, "
        f"{pv.sum() * grid.step_h:.1f} kWh available",
    )
    price = arrays.series.import_price_eur_per_kwh
    overview.add_row(
        "import price",
        f"{price.min():.3f} to {price.max():.3f} EUR/kWh (mean {price.mean():.3f})"
        + (" from time-of-use blocks" if site.tariff.time_of_use else ""),
    )
    overview.add_row("demand charge", f"{site.tariff.demand_charge_eur_per_kw:g} EUR/kW")
    overview.add_row(
        "base load",
        f"{arrays.series.base_load_kw.mean():.1f} kW mean, {arrays.series.base_load_kw.max():g} kW peak",
    )
    overview.add_row(
        "minimum current", "off" if site.min_current_a is None else f"{site.min_current_a:g} A on AC"
    )
    overview.add_row("unmet energy penalty", f"{spec.unmet_energy_penalty_eur_per_kwh:g} EUR/kWh")

    chargers = Table(title="Chargers")
    for header in ("station", "kind", "class", "phases", "rated [kW]", "connectors", "V2G"):
        chargers.add_column(escape(header))
    for charger in site.chargers:
        phases = (
            "-"
            if charger.kind == "dc"
            else (str(charger.n_phases) if charger.n_phases == 3 else f"1 ({charger.phase})")
        )
        chargers.add_row(
            charger.station_id,
            charger.kind.upper(),
            charger.charging_class(),
            phases,
            f"{charger.rated_power_kw():.2f}",
            str(len(charger.connectors)),
            "yes" if charger.is_bidirectional else "no",
        )

    sessions = Table(title=f"Sessions ({len(spec.sessions)})")
    for header in (
        "session",
        "outlet",
        "arrival UTC",
        "departure UTC",
        "battery [kWh]",
        "SoC",
        "wanted [kWh]",
        "V2G",
    ):
        sessions.add_column(escape(header), no_wrap=header in {"outlet", "arrival UTC", "departure UTC"})
    needs = np.maximum(arrays.sessions.target_energy_kwh - arrays.sessions.arrival_energy_kwh, 0.0)
    for session, need in zip(spec.sessions, needs, strict=True):
        sessions.add_row(
            session.session_id,
            f"{session.station_id}/{session.evse_id}/{session.connector_id}",
            session.arrival_utc.astimezone(grid.start_utc.tzinfo).strftime("%d %H:%M"),
            session.departure_utc.astimezone(grid.start_utc.tzinfo).strftime("%d %H:%M"),
            f"{session.battery_capacity_kwh:g}",
            f"{session.arrival_soc_frac:.0%}",
            f"{need:.1f}",
            f"min {session.v2g_min_soc_frac:.0%}" if session.allow_v2g else "no",
        )
    return Group(overview, chargers, sessions)
