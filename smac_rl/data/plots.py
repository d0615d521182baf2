"""Pictures of generated days next to the source distributions they were drawn from."""

from __future__ import annotations

from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np

from smac_rl.core.arrays import compile_scenario
from smac_rl.core.specs import ScenarioSpec
from smac_rl.core.timegrid import step_starts_utc
from smac_rl.data.generator import CALTECH_TIMEZONE
from smac_rl.data.loaders import CALTECH_PERIODS, caltech_sessions, elaad_table
from smac_rl.data.template_spec import SiteTemplate


def plot_generated(
    spec: ScenarioSpec,
    template: SiteTemplate,
    path: Path,
    session_source: str = "elaad",
    caltech_period: str = CALTECH_PERIODS[0],
) -> Path:
    """Write a four-panel PNG: arrivals by local hour, energy wanted, prices, PV and base load.

    The arrival and energy panels overlay the source the sessions were drawn from (ElaadNL
    distributions of the template's first session group, weekday arrivals; or the Caltech
    period's sessions in Pasadena local time), so a person can check the sample against it.
    Energy is compared as cumulative distributions (the generated one after the stated caps).

    Args:
        spec: A generated scenario.
        template: The template it came from.
        path: PNG file to write.
        session_source: ``elaad`` or ``caltech``, as generated.
        caltech_period: The Caltech period, for ``caltech``.

    Returns:
        The path written.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    arrays = compile_scenario(spec)
    tz = ZoneInfo(spec.site.timezone)
    profile = template.session_groups[0].elaad_profile
    fig, axes = plt.subplots(2, 2, figsize=(13, 8))

    local = [s.arrival_utc.astimezone(tz) for s in spec.sessions]
    hours = np.asarray([t.hour + t.minute / 60 for t in local])
    ax = axes[0, 0]
    ax.hist(hours, bins=np.arange(25), density=True, alpha=0.6, label=f"generated ({len(hours)} sessions)")
    wanted = np.sort(np.asarray([s.energy_wanted_kwh or 0.0 for s in spec.sessions]))
    if session_source == "caltech":
        source = caltech_sessions(caltech_period)
        pasadena = source["arrival_utc"].dt.tz_convert(CALTECH_TIMEZONE)
        ax.hist(
            pasadena.dt.hour + pasadena.dt.minute / 60, bins=np.arange(25), density=True, histtype="step",
            color="k", label=f"Caltech {caltech_period}",
        )  # fmt: skip
        source_values = np.sort(source["delivered_energy_kwh"].to_numpy())
        source_cdf = np.arange(1, len(source_values) + 1) / len(source_values)
        source_label = f"Caltech delivered energy, {caltech_period}"
    else:
        shares = elaad_table("arrivals_weekday")[f"{profile}_frac"].to_numpy()
        ax.step(np.arange(96) / 4, shares * 4, where="post", color="k", label=f"ElaadNL {profile}, weekday")
        table = elaad_table("energy_demand")
        source_values = table[f"{profile}_kwh"].to_numpy()[::-1]
        source_cdf = 1.0 - table["exceedance_frac"].to_numpy()[::-1]
        source_label = f"ElaadNL {profile} energy demand"
    ax.set(title="Arrivals by local hour", xlabel="local hour [h]", ylabel="density [1/h]", xlim=(0, 24))
    ax.legend()

    ax = axes[0, 1]
    ax.step(
        wanted,
        np.arange(1, len(wanted) + 1) / max(len(wanted), 1),
        where="post",
        label="generated energy wanted",
    )
    ax.plot(source_values, source_cdf, color="k", label=source_label)
    ax.set(title="Energy per session (cumulative)", xlabel="energy [kWh]", ylabel="share of sessions")
    ax.set_xlim(0, max(float(np.percentile(source_values, 99)), float(wanted.max(initial=1.0))))
    ax.legend(loc="lower right")

    times = [s.astimezone(tz).replace(tzinfo=None) for s in step_starts_utc(spec.time_grid)]
    ax = axes[1, 0]
    ax.step(times, arrays.series.import_price_eur_per_kwh, where="post", label="import")
    ax.step(times, arrays.series.export_price_eur_per_kwh, where="post", label="export")
    ax.set(title="Prices (Dutch day-ahead + adder)", ylabel="price [EUR/kWh]")
    ax.legend()

    ax = axes[1, 1]
    ax.plot(times, arrays.series.pv_available_kw, label="PV available")
    ax.plot(times, arrays.series.base_load_kw, label="base load")
    ax.set(title="PV and base load", ylabel="power [kW]")
    ax.legend()
    for axis in axes[1]:
        axis.tick_params(axis="x", rotation=30)
    fig.suptitle(f"{spec.name} (illustrative template {template.template_id})")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path
