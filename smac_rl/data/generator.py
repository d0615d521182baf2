"""Realistic site-days from a template: sessions, prices, PV and base load on one time grid.

Everything is drawn from one seed (independent streams per component), so the same template,
dates and seed give the same scenario. Days are local calendar days of the site, so a
daylight-saving day has 92 or 100 steps of 15 minutes.

Rules (stated once, in DATA_SOURCES.md terms):

* **ElaadNL sessions**: per local day and session group, a Poisson number of arrivals; arrival
  slot from the ElaadNL 15-minute arrival shares (weekday or weekend; weekend ``workplace`` uses
  ``public``), uniform within the slot (on clock-change days see :func:`local_clock_to_utc`);
  connection time and energy by inverse-transform sampling of the ElaadNL exceedance tables
  (independently), the stay capped at the group's ``max_dwell_h``.
* **Caltech sessions**: per local day and group, a Caltech day of the requested period with the
  same weekday/weekend type is drawn, and a Poisson number of its sessions (all when fewer) is
  replayed at the same local time of day on the target date; energy wanted = delivered energy.
* **EV and SoC**: an EV model from the group's spec mix, weighted by registrations (its discharge
  limit for the connector's kind bounds V2G; a model that cannot discharge there gets no V2G); energy capped
  at 90 % of the battery and at 90 % of what the connector could deliver at full power during the
  whole grid steps of the stay (no driver asks for the impossible; unmet energy then comes from
  controls, limits and the DC taper);
  the driver's final SoC is uniform in [0.8, 1.0] and the arrival SoC is what that implies
  (at least 0.05).
* **Overnight**: the day before the first day is sampled as well; its sessions still plugged in at
  the grid's start are kept, with their arrival SoC as the SoC at the start (no charging is
  simulated before the grid).
* **Connectors**: each session takes a uniformly drawn connector of its group's chargers whose
  EVSE is free for the whole stay; when none is free the EV is turned away (counted).
* **Prices**: bundled Dutch day-ahead prices on the grid plus the template's retail adder; exports
  at the day-ahead price or zero.
* **PV**: pvlib clear-sky (Ineichen, Linke turbidity 3) plane-of-array irradiance at the site,
  times kWp and a 0.85 system derate, times ``1 - cloud attenuation``: a daily level drawn from a
  Beta distribution with mean ``cloudiness_frac`` plus an AR(1) wiggle within the day.
* **Base load**: an hourly shape per profile (office, residential, commercial) scaled to the
  template's mean, weekend factor, multiplicative Gaussian noise.
"""

from __future__ import annotations

import datetime as dt
import warnings
from dataclasses import dataclass, field
from typing import Any, Literal
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd

from smac_rl.core.arrays import compile_site, connector_keys
from smac_rl.core.arraytypes import FloatArray
from smac_rl.core.errors import SmacError
from smac_rl.core.scenario_io import parse_scenario
from smac_rl.core.specs import ScenarioSpec, SiteSpec, TimeGridSpec
from smac_rl.core.timegrid import end_step, first_full_step, step_starts_utc
from smac_rl.data.loaders import (
    CALTECH_PERIODS,
    EvModel,
    caltech_sessions,
    day_ahead_prices_on_grid,
    elaad_table,
    ev_models,
)
from smac_rl.data.template_spec import SessionGroup, SiteTemplate

SessionSource = Literal["elaad", "caltech"]
CALTECH_TIMEZONE = "America/Los_Angeles"
PV_SYSTEM_DERATE_FRAC = 0.85
LINKE_TURBIDITY = 3.0
MAX_ENERGY_OF_BATTERY_FRAC = 0.9
MAX_ENERGY_OF_STAY_FRAC = 0.9
MIN_DWELL_H = 0.25

BASE_LOAD_SHAPES: dict[str, tuple[list[float], float]] = {
    # 24 hourly weights (local time), weekend factor
    "office": (
        [0.35, 0.35, 0.35, 0.35, 0.35, 0.4, 0.6, 1.0, 1.5, 1.7, 1.75, 1.75,
         1.65, 1.7, 1.7, 1.65, 1.5, 1.2, 0.8, 0.6, 0.5, 0.45, 0.4, 0.35],
        0.35,
    ),
    "residential": (
        [0.6, 0.5, 0.45, 0.45, 0.45, 0.55, 0.9, 1.3, 1.1, 0.9, 0.85, 0.85,
         0.9, 0.85, 0.8, 0.85, 1.0, 1.4, 1.8, 1.85, 1.7, 1.4, 1.0, 0.75],
        1.1,
    ),
    "commercial": (
        [0.4, 0.4, 0.4, 0.4, 0.4, 0.45, 0.6, 0.9, 1.2, 1.35, 1.4, 1.45,
         1.45, 1.45, 1.4, 1.4, 1.4, 1.35, 1.25, 1.1, 0.8, 0.6, 0.5, 0.45],
        0.9,
    ),
}  # fmt: skip
"""Hourly base-load weights per profile (normalised to a weekday mean of 1) and weekend factor."""


class GeneratorError(SmacError):
    """A generation request that cannot be met (dates outside the data, unknown period...)."""


@dataclass
class GenerationReport:
    """What the generator did, for the CLI and the tests.

    Attributes:
        n_sessions: Sessions in the scenario.
        n_turned_away: Arrivals with no free connector for their whole stay.
        n_energy_capped: Sessions whose sampled energy was capped (battery or stay).
        sessions_per_group: Sessions per group.
    """

    n_sessions: int = 0
    n_turned_away: int = 0
    n_energy_capped: int = 0
    sessions_per_group: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class _RawSession:
    group: SessionGroup
    arrival_utc: dt.datetime
    dwell_h: float
    energy_kwh: float


def local_days_grid(timezone: str, first_day: dt.date, n_days: int, step_min: int) -> TimeGridSpec:
    """A grid from local midnight of ``first_day`` to local midnight ``n_days`` later.

    Args:
        timezone: IANA time zone of the site.
        first_day: First local calendar day.
        n_days: Number of days.
        step_min: Step [min], dividing an hour.

    Returns:
        The grid; a daylight-saving day has 23 or 25 hours of steps.

    Raises:
        GeneratorError: For dates outside what ``datetime`` can represent.
    """
    tz = ZoneInfo(timezone)
    try:
        start = dt.datetime.combine(first_day, dt.time(), tzinfo=tz).astimezone(dt.UTC)
        last = first_day + dt.timedelta(days=n_days)
        end = dt.datetime.combine(last, dt.time(), tzinfo=tz).astimezone(dt.UTC)
    except (OverflowError, ValueError):
        raise GeneratorError(
            f"date: got {first_day.isoformat()} and {n_days} day(s); expected dates within years 1 to 9998"
        ) from None
    n_steps = int((end - start).total_seconds() // (step_min * 60))
    return TimeGridSpec(start_utc=start, step_min=step_min, n_steps=n_steps)


def day_streams(seed: int, first_day: dt.date) -> list[np.random.Generator]:
    """The four random streams of a generated scenario: EV draws, session details, base load, clouds.

    The first local day is mixed into the seed, so two dates drawn with one seed are independent
    draws (a week of test days with seed 0 holds seven different sets of sessions), while the same
    date and seed give the same scenario on every machine.

    Args:
        seed: The user's seed (>= 0).
        first_day: The scenario's first local day.

    Returns:
        Four independent generators.
    """
    sequence = np.random.SeedSequence([seed, first_day.toordinal()])
    return [np.random.default_rng(s) for s in sequence.spawn(4)]


def generate_scenario(
    template: SiteTemplate,
    first_day: dt.date,
    n_days: int = 1,
    seed: int = 0,
    session_source: SessionSource = "elaad",
    caltech_period: str = CALTECH_PERIODS[0],
) -> tuple[ScenarioSpec, GenerationReport]:
    """Generate ``n_days`` local days of a template.

    Args:
        template: The site template.
        first_day: First local day.
        n_days: Number of days (1 to 366).
        seed: Seed of every random draw, mixed with the first day (:func:`day_streams`).
        session_source: ``elaad`` (sampled distributions) or ``caltech`` (resampled sessions).
        caltech_period: Period of the Caltech sessions, one of ``CALTECH_PERIODS``.

    Returns:
        The validated scenario and the generation report.

    Raises:
        GeneratorError: For a day count or seed out of range, an unknown period or dates outside the prices.
    """
    if not 1 <= n_days <= 366:
        raise GeneratorError(f"days: got {n_days}; expected 1 to 366")
    if seed < 0:
        raise GeneratorError(f"seed: got {seed}; expected a whole number >= 0")
    if session_source == "caltech" and caltech_period not in CALTECH_PERIODS:
        raise GeneratorError(f"period: got {caltech_period!r}; expected one of {', '.join(CALTECH_PERIODS)}")
    site = template.site
    grid = local_days_grid(site.timezone, first_day, n_days, template.step_min)
    streams = day_streams(seed, first_day)
    try:
        day_ahead = day_ahead_prices_on_grid(grid)
    except SmacError as exc:
        raise GeneratorError(str(exc)) from None
    # The day before is sampled too, so that EVs plugged in overnight are there at the start.
    days = [first_day + dt.timedelta(days=k) for k in range(-1, n_days)]
    if session_source == "elaad":
        raw = _elaad_sessions(template, days, streams[0])
    else:
        raw = _caltech_sessions(template, days, caltech_period, streams[0])
    report = GenerationReport()
    sessions = _finish_sessions(site, grid, raw, streams[1], report)
    name = f"{template.template_id}_{first_day.isoformat()}_{n_days}d_{session_source}_s{seed}"
    description = (
        f"Generated from the illustrative template {template.template_id!r}: {n_days} day(s) from "
        f"{first_day.isoformat()}, sessions from {session_source}"
        + (f" ({caltech_period})" if session_source == "caltech" else "")
        + f", seed {seed}."
    )
    spec = scenario_from_sessions(template, grid, sessions, streams, name, description, day_ahead)
    return spec, report


def scenario_from_sessions(
    template: SiteTemplate,
    grid: TimeGridSpec,
    sessions: list[dict[str, Any]],
    streams: list[np.random.Generator],
    name: str,
    description: str,
    day_ahead_eur_per_kwh: FloatArray | None = None,
    import_price_eur_per_kwh: FloatArray | None = None,
) -> ScenarioSpec:
    """Assemble and validate a scenario: the template's site, given sessions, generated series.

    Args:
        template: The site template.
        grid: The time grid.
        sessions: Session mappings (SessionSpec fields).
        streams: Random streams; ``streams[2]`` draws the base load, ``streams[3]`` the clouds.
        name: Scenario name.
        description: Scenario description.
        day_ahead_eur_per_kwh: Day-ahead price on the grid [EUR/kWh]; read from the bundle when None.
        import_price_eur_per_kwh: A user's import price on the grid [EUR/kWh]; replaces day-ahead plus
            adder (exports then follow the template's rule on this price).

    Returns:
        The validated scenario.

    Raises:
        GeneratorError: When the grid reaches outside the bundled prices and no prices are given.
    """
    site = template.site
    if import_price_eur_per_kwh is not None:
        wholesale = import_price_eur_per_kwh
        import_price = import_price_eur_per_kwh
    else:
        if day_ahead_eur_per_kwh is None:
            try:
                day_ahead_eur_per_kwh = day_ahead_prices_on_grid(grid)
            except SmacError as exc:
                raise GeneratorError(str(exc)) from None
        wholesale = day_ahead_eur_per_kwh
        import_price = day_ahead_eur_per_kwh + template.prices.retail_adder_eur_per_kwh
    series: dict[str, Any] = {
        "import_price_eur_per_kwh": _rounded(import_price, 5),
        "export_price_eur_per_kwh": _rounded(wholesale, 5)
        if template.prices.export_price == "day_ahead"
        else 0.0,
        "base_load_kw": _rounded(base_load_kw(template, grid, streams[2]), 3),
    }
    if site.pv is not None:
        series["pv_available_kw"] = _rounded(
            pv_available_kw(site, grid, template.cloudiness_frac, streams[3]), 3
        )
    data = {
        "name": name,
        "description": description,
        "site": site.model_dump(mode="json"),
        "time_grid": grid.model_dump(mode="json"),
        "sessions": sessions,
        "series": series,
        "unmet_energy_penalty_eur_per_kwh": template.unmet_energy_penalty_eur_per_kwh,
    }
    return parse_scenario(data, source=f"generator({template.template_id})")


def _rounded(values: FloatArray, digits: int) -> list[float]:
    return [float(v) for v in np.round(values, digits)]


def _inverse_exceedance(table: pd.DataFrame, column: str, draws: FloatArray) -> FloatArray:
    """Values exceeded by a share ``draw`` of events, interpolated in the exceedance table."""
    values = np.interp(draws, table["exceedance_frac"].to_numpy(), table[column].to_numpy())
    return np.asarray(values, dtype=np.float64)


def _elaad_sessions(
    template: SiteTemplate, days: list[dt.date], rng: np.random.Generator
) -> list[_RawSession]:
    tz = ZoneInfo(template.site.timezone)
    weekday_arrivals, weekend_arrivals = elaad_table("arrivals_weekday"), elaad_table("arrivals_weekend")
    connection, energy = elaad_table("connection_time"), elaad_table("energy_demand")
    raw: list[_RawSession] = []
    for day in days:
        is_weekend = day.weekday() >= 5
        arrivals = weekend_arrivals if is_weekend else weekday_arrivals
        for group in template.session_groups:
            mean = group.mean_sessions_per_weekend_day if is_weekend else group.mean_sessions_per_weekday
            count = int(rng.poisson(mean))
            profile = "public" if is_weekend and group.elaad_profile == "workplace" else group.elaad_profile
            shares = arrivals[f"{profile}_frac"].to_numpy()
            slots = rng.choice(len(shares), size=count, p=shares / shares.sum())
            offsets_min = 15 * slots + rng.uniform(0, 15, size=count)
            dwell_h = _inverse_exceedance(
                connection, f"{group.elaad_profile}_h", rng.uniform(0, 1, size=count)
            )
            energy_kwh = _inverse_exceedance(
                energy, f"{group.elaad_profile}_kwh", rng.uniform(0, 1, size=count)
            )
            for k in range(count):
                arrival = local_clock_to_utc(day, dt.timedelta(minutes=float(offsets_min[k])), tz, rng)
                if arrival is not None:
                    raw.append(_RawSession(group, arrival, float(dwell_h[k]), float(energy_kwh[k])))
    return raw


def local_clock_to_utc(
    day: dt.date, time_of_day: dt.timedelta, tz: ZoneInfo, rng: np.random.Generator
) -> dt.datetime | None:
    """The UTC instant of a local wall-clock time on a day, across clock changes.

    A time the clock skips (spring forward) does not exist: None (the arrival is dropped). A time
    the clock repeats (fall back) is put in the first or the second occurrence with equal odds, so
    the repeated hour gets the slot's share once, over its two real hours.
    """
    wall = dt.datetime.combine(day, dt.time()) + time_of_day
    first = wall.replace(tzinfo=tz, fold=0)
    second = wall.replace(tzinfo=tz, fold=1)
    if first.astimezone(dt.UTC).astimezone(tz).replace(tzinfo=None) != wall:
        return None
    if first.utcoffset() != second.utcoffset() and rng.uniform() < 0.5:
        return second.astimezone(dt.UTC)
    return first.astimezone(dt.UTC)


def _caltech_sessions(
    template: SiteTemplate, days: list[dt.date], period: str, rng: np.random.Generator
) -> list[_RawSession]:
    tz = ZoneInfo(template.site.timezone)
    table = caltech_sessions(period)
    local_arrival = table["arrival_utc"].dt.tz_convert(CALTECH_TIMEZONE)
    by_day = {day: frame for day, frame in table.groupby(local_arrival.dt.date)}
    weekday_days = sorted(d for d in by_day if d.weekday() < 5)
    weekend_days = sorted(d for d in by_day if d.weekday() >= 5)
    raw: list[_RawSession] = []
    for day in days:
        is_weekend = day.weekday() >= 5
        pool = weekend_days if is_weekend and weekend_days else weekday_days
        for group in template.session_groups:
            source_day = pool[int(rng.integers(len(pool)))]
            frame = by_day[source_day]
            mean = group.mean_sessions_per_weekend_day if is_weekend else group.mean_sessions_per_weekday
            count = min(int(rng.poisson(mean)), len(frame))
            picked = frame.iloc[np.sort(rng.choice(len(frame), size=count, replace=False))]
            for _, row in picked.iterrows():
                source_local = row["arrival_utc"].tz_convert(CALTECH_TIMEZONE)
                time_of_day = dt.timedelta(
                    hours=source_local.hour, minutes=source_local.minute, seconds=source_local.second
                )
                arrival = local_clock_to_utc(day, time_of_day, tz, rng)
                if arrival is None:
                    continue
                dwell_h = (row["departure_utc"] - row["arrival_utc"]).total_seconds() / 3600.0
                raw.append(_RawSession(group, arrival, dwell_h, float(row["delivered_energy_kwh"])))
    return raw


def assign_sessions(
    site: SiteSpec,
    grid: TimeGridSpec,
    arrivals: list[tuple[dt.datetime, float, float]],
    rng: np.random.Generator,
    report: GenerationReport,
    ev_mix: Literal["fleet", "v2g_2024"] = "fleet",
) -> list[dict[str, Any]]:
    """Turn observed stays into sessions on the site (EV, SoC and connector as for generated ones).

    Args:
        site: The site; every charger is eligible.
        grid: The time grid (the energy cap uses its whole steps).
        arrivals: ``(arrival_utc, dwell_h, energy_kwh)`` per stay.
        rng: Random stream.
        report: Filled with counts.
        ev_mix: EV spec mix.

    Returns:
        Session mappings (SessionSpec fields).
    """
    group = SessionGroup(
        name="imported",
        station_ids=[c.station_id for c in site.chargers],
        elaad_profile="public",
        mean_sessions_per_weekday=0.0,
        mean_sessions_per_weekend_day=0.0,
        ev_mix=ev_mix,
    )
    raw = [_RawSession(group, arrival, dwell, energy) for arrival, dwell, energy in arrivals]
    return _finish_sessions(site, grid, raw, rng, report)


def _connectors_of(site: SiteSpec) -> dict[str, list[tuple[int, int, float, bool]]]:
    """Per station: (evse_id, connector_id, connector power limit [kW], is_dc), from the core's arrays."""
    arrays = compile_site(site)
    out: dict[str, list[tuple[int, int, float, bool]]] = {}
    for c, (station, evse_id, connector_id) in enumerate(connector_keys(site)):
        limit_kw = float(arrays.connector_max_kw[c])
        out.setdefault(station, []).append((evse_id, connector_id, limit_kw, bool(arrays.is_connector_dc[c])))
    return out


def _finish_sessions(
    site: SiteSpec,
    grid: TimeGridSpec,
    raw: list[_RawSession],
    rng: np.random.Generator,
    report: GenerationReport,
) -> list[dict[str, Any]]:
    connectors = _connectors_of(site)
    mixes: dict[str, list[EvModel]] = {}
    busy: dict[tuple[str, int], list[tuple[dt.datetime, dt.datetime]]] = {}
    sessions: list[dict[str, Any]] = []
    counters: dict[str, int] = {}
    for item in sorted(raw, key=lambda r: (r.arrival_utc, r.group.name)):
        group = item.group
        if group.ev_mix not in mixes:  # parse the bundle's EV specs once per mix, not once per session
            mixes[group.ev_mix] = ev_models(group.ev_mix)
        models = mixes[group.ev_mix]
        weights = np.asarray([m.n_registrations for m in models], dtype=float)
        model = models[int(rng.choice(len(models), p=weights / weights.sum()))]
        dwell_h = max(MIN_DWELL_H, min(item.dwell_h, group.max_dwell_h or item.dwell_h))
        arrival = item.arrival_utc.replace(microsecond=0)
        departure = arrival + dt.timedelta(seconds=round(dwell_h * 3600))
        if departure <= grid.start_utc:
            continue
        candidates = [
            (station, *outlet)
            for station in group.station_ids
            for outlet in connectors[station]
            if all(departure <= a or arrival >= d for a, d in busy.get((station, outlet[0]), []))
        ]
        final_soc = float(rng.uniform(0.8, 1.0))
        allow_v2g = bool(rng.uniform() < group.allow_v2g_frac)
        if not candidates:
            report.n_turned_away += 1
            continue
        station, evse_id, connector_id, power_kw, is_dc = candidates[int(rng.integers(len(candidates)))]
        busy.setdefault((station, evse_id), []).append((arrival, departure))
        ev_limit_kw = model.max_dc_charge_kw if is_dc else model.max_ac_charge_kw
        capacity = model.battery_capacity_kwh
        charging_h = max(0, end_step(grid, departure) - first_full_step(grid, arrival)) * grid.step_h
        deliverable = MAX_ENERGY_OF_STAY_FRAC * min(power_kw, ev_limit_kw) * charging_h
        energy = min(item.energy_kwh, MAX_ENERGY_OF_BATTERY_FRAC * capacity, deliverable)
        arrival_soc = max(0.05, final_soc - energy / capacity)
        energy_wanted = max(0.0, min(energy, (final_soc - arrival_soc) * capacity))
        report.n_energy_capped += int(energy_wanted < item.energy_kwh - 1e-9)
        discharge_kw = model.max_dc_discharge_kw if is_dc else model.max_ac_discharge_kw
        day_key = arrival.astimezone(ZoneInfo(site.timezone)).strftime("%Y%m%d")
        counters[group.name] = counters.get(group.name, 0) + 1
        session_id = f"{group.name}-{day_key}-{counters[group.name]:04d}"
        taper = model.dc_taper_start_soc_frac if is_dc and group.dc_taper == "ev_model" else None
        sessions.append(
            {
                "session_id": session_id,
                "transaction_id": f"tx-{session_id}",
                "station_id": station,
                "evse_id": evse_id,
                "connector_id": connector_id,
                "arrival_utc": arrival.isoformat(),
                "departure_utc": departure.isoformat(),
                "battery_capacity_kwh": capacity,
                "arrival_soc_frac": round(arrival_soc, 4),
                "energy_wanted_kwh": round(energy_wanted, 3),
                "ev_max_ac_kw": model.max_ac_charge_kw,
                "ev_max_dc_kw": model.max_dc_charge_kw,
                "ev_max_discharge_kw": discharge_kw,
                "allow_v2g": allow_v2g and discharge_kw > 0.0,
                "v2g_min_soc_frac": group.v2g_min_soc_frac,
                **({} if taper is None else {"taper_start_soc_frac": taper}),
            }
        )
        report.sessions_per_group[group.name] = report.sessions_per_group.get(group.name, 0) + 1
    report.n_sessions = len(sessions)
    return sessions


def base_load_kw(template: SiteTemplate, grid: TimeGridSpec, rng: np.random.Generator) -> FloatArray:
    """Base load on the grid [kW] (rule in the module docstring)."""
    weights, weekend_factor = BASE_LOAD_SHAPES[template.base_load.profile]
    shape = np.asarray(weights) / np.mean(weights)
    tz = ZoneInfo(template.site.timezone)
    values = np.empty(grid.n_steps)
    for k, start in enumerate(step_starts_utc(grid)):
        local = (start + dt.timedelta(minutes=grid.step_min / 2)).astimezone(tz)
        hour = local.hour + local.minute / 60.0
        level = np.interp(hour, np.arange(24) + 0.5, shape, period=24)
        values[k] = level * (weekend_factor if local.weekday() >= 5 else 1.0)
    noise = rng.normal(1.0, template.base_load.noise_frac, size=grid.n_steps)
    return np.asarray(np.maximum(values * noise, 0.0) * template.base_load.mean_kw, dtype=np.float64)


def pv_available_kw(
    site: SiteSpec, grid: TimeGridSpec, cloudiness_frac: float, rng: np.random.Generator
) -> FloatArray:
    """PV power available on the grid [kW] (rule in the module docstring)."""
    import pvlib

    if site.pv is None:
        return np.zeros(grid.n_steps)
    starts = pd.DatetimeIndex(step_starts_utc(grid))
    mids = starts + pd.Timedelta(minutes=grid.step_min / 2)
    location = pvlib.location.Location(site.latitude_deg, site.longitude_deg, tz="UTC")
    with warnings.catch_warnings():
        # pvlib 0.16 still calls DatetimeIndex.dayofyear, which pandas 3 deprecates.
        warnings.filterwarnings("ignore", message="DatetimeIndex.dayofyear is deprecated")
        solar = location.get_solarposition(mids)
        clear = location.get_clearsky(
            mids, model="ineichen", solar_position=solar, linke_turbidity=LINKE_TURBIDITY
        )
    poa = pvlib.irradiance.get_total_irradiance(
        site.pv.tilt_deg,
        site.pv.azimuth_deg,
        solar["apparent_zenith"],
        solar["azimuth"],
        clear["dni"],
        clear["ghi"],
        clear["dhi"],
    )["poa_global"].fillna(0.0)
    clear_kw = site.pv.peak_power_kwp * PV_SYSTEM_DERATE_FRAC * poa.to_numpy() / 1000.0
    attenuation = _cloud_attenuation(grid, site.timezone, cloudiness_frac, rng)
    return np.asarray(np.clip(clear_kw * (1.0 - attenuation), 0.0, site.pv.peak_power_kwp), dtype=np.float64)


def _cloud_attenuation(
    grid: TimeGridSpec, timezone: str, mean_frac: float, rng: np.random.Generator
) -> FloatArray:
    tz = ZoneInfo(timezone)
    local_days = [s.astimezone(tz).date() for s in step_starts_utc(grid)]
    concentration = 4.0
    levels: dict[dt.date, float] = {}
    for day in sorted(set(local_days)):
        a, b = max(mean_frac, 1e-3) * concentration, max(1.0 - mean_frac, 1e-3) * concentration
        levels[day] = float(rng.beta(a, b))
    wiggle = np.empty(grid.n_steps)
    state = 0.0
    for k in range(grid.n_steps):
        state = 0.9 * state + rng.normal(0.0, 0.05)
        wiggle[k] = state
    base = np.asarray([levels[d] for d in local_days])
    return np.asarray(np.clip(base + wiggle, 0.0, 0.95), dtype=np.float64)


def caltech_days(period: str) -> list[dt.date]:
    """Local (Caltech) days of a bundled period that have at least one session, in order.

    Raises:
        GeneratorError: For an unknown period.
    """
    if period not in CALTECH_PERIODS:
        raise GeneratorError(f"period: got {period!r}; expected one of {', '.join(CALTECH_PERIODS)}")
    local = caltech_sessions(period)["arrival_utc"].dt.tz_convert(CALTECH_TIMEZONE)
    return sorted(set(local.dt.date))


def replay_caltech_day(
    template: SiteTemplate, day: dt.date, seed: int = 0
) -> tuple[ScenarioSpec, GenerationReport]:
    """Replay one real day of Caltech sessions on a template's site.

    Every session that arrived on that local Caltech day keeps its local arrival time of day,
    dwell time and delivered energy (energy wanted = delivered, as DESIGN.md section 4 imputes); it
    is put on the template's site on the same calendar day in the site's time zone, with an EV
    drawn from the spec mix (battery, arrival SoC, power limits) and the first free connector for
    its stay (arrivals with none are turned away and counted). Prices are that day's bundled
    day-ahead prices; base load and PV come from the template. EVs left from the day before are
    not carried over.

    Args:
        template: The site template.
        day: A local Caltech day inside one of :data:`CALTECH_PERIODS`.
        seed: Seed of the EV draws, the base load and the clouds.

    Returns:
        The validated scenario and the generation report.

    Raises:
        GeneratorError: For a day outside every bundled period.
    """
    period = next(
        (
            p
            for p in CALTECH_PERIODS
            if dt.date.fromisoformat(p.split()[0]) <= day <= dt.date.fromisoformat(p.split()[1])
        ),
        None,
    )
    if period is None:
        raise GeneratorError(
            f"day: got {day.isoformat()}; expected a day inside {', '.join(CALTECH_PERIODS)}"
        )
    if seed < 0:
        raise GeneratorError(f"seed: got {seed}; expected a whole number >= 0")
    table = caltech_sessions(period)
    local_arrival = table["arrival_utc"].dt.tz_convert(CALTECH_TIMEZONE)
    frame = table[local_arrival.dt.date == day]
    site = template.site
    tz = ZoneInfo(site.timezone)
    grid = local_days_grid(site.timezone, day, 1, template.step_min)
    streams = day_streams(seed, day)
    arrivals: list[tuple[dt.datetime, float, float]] = []
    for _, row in frame.iterrows():
        source_local = row["arrival_utc"].tz_convert(CALTECH_TIMEZONE)
        time_of_day = dt.timedelta(
            hours=source_local.hour, minutes=source_local.minute, seconds=source_local.second
        )
        arrival = local_clock_to_utc(day, time_of_day, tz, streams[0])
        if arrival is None:
            continue
        dwell_h = (row["departure_utc"] - row["arrival_utc"]).total_seconds() / 3600.0
        arrivals.append((arrival, dwell_h, float(row["delivered_energy_kwh"])))
    report = GenerationReport()
    sessions = assign_sessions(site, grid, arrivals, streams[1], report)
    name = f"{template.template_id}_{day.isoformat()}_caltech_replay_s{seed}"
    description = (
        f"Real Caltech sessions of {day.isoformat()} replayed on the illustrative template "
        f"{template.template_id!r}, seed {seed}."
    )
    return scenario_from_sessions(template, grid, sessions, streams, name, description), report
