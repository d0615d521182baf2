"""The one observation and action layout: site features plus a per-connector block padded to C_max.

The env, the exporter and the service all build observations and read actions through this
module, so a policy trained on one site serves any site with up to ``n_connectors_max`` connectors.

Observation: ``[site features..., connector 0 block..., connector C_max-1 block...]``, raw values
in the units their names carry; padded connectors are all zeros (``is_present`` 0 is the mask).
``scale`` gives each feature's normalisation divisor (the exported graph divides by it).

Action: ``C_max + 1`` values in ``[-1, 1]``, one per connector, then the storage. ``a >= 0`` asks
``a * upper_kw`` (charging), ``a < 0`` asks ``-a * lower_kw`` (discharging) of the step's box
(:func:`smac_rl.core.projection.ev_power_bounds`); the projection then applies every other limit.
A layout with ``is_import_cap_acted`` adds one value, the site's import cap (:func:`import_cap_kw`):
the policy names the import level it means to hold, and the charging it asks above that level is
withheld, the least urgent sessions' first (:func:`apply_import_cap`), so that holding a site-wide level
is one output, not a coordination of every connector's.
"""

from __future__ import annotations

import datetime as dt_module
import math
from dataclasses import dataclass, fields
from functools import cached_property
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np

from smac_rl.core.arrays import ScenarioArrays
from smac_rl.core.arraytypes import FloatArray
from smac_rl.core.forecasts import ForecastProvider, PerfectForecast
from smac_rl.core.physics import FEASIBILITY_TOL_KW, grid_import_kw
from smac_rl.core.projection import (
    below_minimum_current,
    energy_headroom_kw,
    ev_power_bounds,
    is_shared_limit_exceeded,
    storage_power_bounds,
)
from smac_rl.core.state import Setpoints, StepContext, is_all, is_any, zeros_of

MAX_FILL_ROUNDS = 4
"""Rounds in which :func:`fill_to_paid_peak` passes on a raise the minimum current would drop."""

OBSERVATION_BOUND = 1e6
"""Observations are clipped to +-this, so that absurd inputs cannot overflow a float32 policy."""


@dataclass(frozen=True)
class Feature:
    """One observation feature.

    Attributes:
        name: Feature name (unit suffix as in DESIGN.md section 3; ``_sin``/``_cos`` are unitless).
        unit: Unit in words, for tables and metadata.
        scale: Divisor that brings typical values to order 1.
        description: What the value is.
    """

    name: str
    unit: str
    scale: float
    description: str


SITE_FEATURES: tuple[Feature, ...] = (
    Feature("time_of_day_sin", "1", 1.0, "sin(2 pi * local hour of the step start / 24)"),
    Feature("time_of_day_cos", "1", 1.0, "cos(2 pi * local hour of the step start / 24)"),
    Feature("episode_elapsed_frac", "0..1", 1.0, "share of the episode's steps already done"),
    Feature("import_price_eur_per_kwh", "EUR/kWh", 0.3, "import price of the step"),
    Feature("export_price_eur_per_kwh", "EUR/kWh", 0.3, "export price of the step"),
    Feature("import_price_next_4h_eur_per_kwh", "EUR/kWh", 0.3, "mean import price over the next 4 h"),
    Feature("import_price_next_12h_eur_per_kwh", "EUR/kWh", 0.3, "mean import price over the next 12 h"),
    Feature("base_load_kw", "kW", 100.0, "base load of the step"),
    Feature("pv_available_kw", "kW", 100.0, "PV power available in the step"),
    Feature("import_limit_kw", "kW", 100.0, "import limit of the step"),
    Feature("headroom_kw", "kW", 100.0, "import limit - base load + PV available"),
    Feature("peak_so_far_kw", "kW", 100.0, "highest import of the episode so far (billing peak included)"),
    Feature("demand_charge_eur_per_kw", "EUR/kW", 1.0, "demand charge rate"),
    Feature("storage_soc_frac", "0..1", 1.0, "storage state of charge (0 without storage)"),
    Feature("storage_upper_kw", "kW", 100.0, "storage charging bound of the step"),
    Feature("storage_lower_kw", "kW", 100.0, "storage discharging bound of the step (<= 0)"),
)
"""Site-level features, in order."""

CONNECTOR_FEATURES: tuple[Feature, ...] = (
    Feature("is_present", "0/1", 1.0, "an EV is plugged in (the mask)"),
    Feature("soc_frac", "0..1", 1.0, "EV state of charge"),
    Feature("energy_needed_kwh", "kWh", 50.0, "battery energy still wanted"),
    Feature("hours_to_departure_h", "h", 12.0, "time left before departure"),
    Feature("laxity_h", "h", 12.0, "hours to departure - energy needed / (max charge * efficiency)"),
    Feature("upper_kw", "kW", 50.0, "charging bound of the step's box"),
    Feature("lower_kw", "kW", 50.0, "discharging bound of the step's box (<= 0)"),
    Feature("max_charge_kw", "kW", 50.0, "EV and connector charging limit"),
)
"""Per-connector features, in order; repeated ``n_connectors_max`` times."""


PRICE_RANK_HORIZONS_H: tuple[int, ...] = (2, 4, 8, 12, 24)
"""Windows of the price-rank features [h], each from the step on (cut at the scenario's end)."""

PRICE_OUTLOOK_FEATURES: tuple[Feature, ...] = (
    *(
        Feature(
            f"import_price_rank_next_{h}h_frac",
            "0..1",
            1.0,
            f"share of the next {h} h's steps (this one included) whose import price is below this step's",
        )
        for h in PRICE_RANK_HORIZONS_H
    ),
    Feature("import_price_min_next_24h_eur_per_kwh", "EUR/kWh", 0.3, "lowest import price of the next 24 h"),
    Feature("import_price_max_next_24h_eur_per_kwh", "EUR/kWh", 0.3, "highest import price of the next 24 h"),
)
"""Optional site features, after :data:`SITE_FEATURES` (``ObservationLayout(is_price_rank_observed=True)``):
where this step's price ranks among the coming ones, so that a policy can tell a step worth charging
(or discharging) in from the steps a session or the storage could wait for. They come from the same
price outlook as ``import_price_next_4h_eur_per_kwh`` (the true day-ahead prices, or a forecaster's)."""

LOAD_OUTLOOK_HORIZONS_H: tuple[int, ...] = (4, 12, 24)
"""Windows of the net-load outlook features [h], each from the step on (cut at the scenario's end)."""

LOAD_OUTLOOK_FEATURES: tuple[Feature, ...] = tuple(
    Feature(
        f"net_load_max_next_{h}h_kw",
        "kW",
        100.0,
        f"highest base load minus PV available over the next {h} h (this step included)",
    )
    for h in LOAD_OUTLOOK_HORIZONS_H
)
"""Optional site features, after the price ranks if both are observed
(``ObservationLayout(is_load_outlook_observed=True)``): the highest import the site will need for its
other loads, so that a policy can keep the day's peak at what the base load forces anyway. From the
same outlook as the price features (the true base load and PV, or a forecaster's)."""

N_CALENDAR_FEATURES = 5
"""Site features that depend on the scenario's clock and price outlook only (:func:`calendar_row`):
``time_of_day_sin``, ``time_of_day_cos``, ``episode_elapsed_frac`` and the two price outlooks; a layout
that observes them reads :data:`PRICE_OUTLOOK_FEATURES` and :data:`LOAD_OUTLOOK_FEATURES` after them
(:func:`calendar_width`)."""


def calendar_width(is_price_rank_observed: bool, is_load_outlook_observed: bool = False) -> int:
    """Columns of a calendar row: the base ones, then the price ranks and the load outlook observed."""
    return (
        N_CALENDAR_FEATURES
        + (len(PRICE_OUTLOOK_FEATURES) if is_price_rank_observed else 0)
        + (len(LOAD_OUTLOOK_FEATURES) if is_load_outlook_observed else 0)
    )


def calendar_row(
    arrays: ScenarioArrays,
    step_index: int,
    forecast: ForecastProvider | None = None,
    is_price_rank_observed: bool = False,
    is_load_outlook_observed: bool = False,
) -> FloatArray:
    """The calendar features of one step: local time of day, episode progress, price and load outlook.

    Args:
        arrays: The compiled scenario.
        step_index: Step on its grid.
        forecast: Where the price outlook comes from; None: the true prices (:class:`PerfectForecast`).
        is_price_rank_observed: Add the :data:`PRICE_OUTLOOK_FEATURES`.
        is_load_outlook_observed: Add the :data:`LOAD_OUTLOOK_FEATURES` (after the price ranks).

    Returns:
        ``[time_of_day_sin, time_of_day_cos, episode_elapsed_frac, import_price_next_4h_eur_per_kwh,
        import_price_next_12h_eur_per_kwh]``, then the :data:`PRICE_OUTLOOK_FEATURES` and the
        :data:`LOAD_OUTLOOK_FEATURES` when asked, ``(calendar_width(...),)``. Every window starts at the
        step and is cut at the scenario's end.
    """
    dt, t = arrays.step_h, step_index
    local = (arrays.start_utc + dt_module.timedelta(hours=t * dt)).astimezone(ZoneInfo(arrays.timezone))
    angle = 2.0 * math.pi * (local.hour + local.minute / 60.0) / 24.0
    n_4h, n_12h = max(1, round(4.0 / dt)), max(1, round(12.0 / dt))
    n_ranks = [max(1, round(h / dt)) for h in PRICE_RANK_HORIZONS_H] if is_price_rank_observed else []
    n_loads = [max(1, round(h / dt)) for h in LOAD_OUTLOOK_HORIZONS_H] if is_load_outlook_observed else []
    provider = PerfectForecast() if forecast is None else forecast
    outlook = provider.forecast(arrays, t, max(n_4h, n_12h, *n_ranks, *n_loads))
    prices = outlook.import_price_eur_per_kwh
    row = [math.sin(angle), math.cos(angle), t / arrays.n_steps]
    row += [float(prices[:n_4h].mean()), float(prices[:n_12h].mean())]
    if is_price_rank_observed:
        # Counts of the steps below this one's price, over the first k steps of the window, k = 1..n.
        below = np.cumsum(prices < prices[0])
        n_window = len(prices)
        row += [float(below[min(n, n_window) - 1] / min(n, n_window)) for n in n_ranks]
        day = prices[: max(n_ranks)]
        row += [float(day.min()), float(day.max())]
    if is_load_outlook_observed:
        net_load_kw = outlook.base_load_kw - outlook.pv_available_kw
        row += [float(net_load_kw[:n].max()) for n in n_loads]
    return np.asarray(row)


def calendar_table(
    arrays: ScenarioArrays,
    forecast: ForecastProvider | None = None,
    is_price_rank_observed: bool = False,
    is_load_outlook_observed: bool = False,
) -> FloatArray:
    """:func:`calendar_row` of every step, ``(T, calendar_width(...))``."""
    flags = (is_price_rank_observed, is_load_outlook_observed)
    rows = [calendar_row(arrays, t, forecast, *flags) for t in range(arrays.n_steps)]
    return np.stack(rows).reshape(-1, calendar_width(*flags))


def laxity_h(context: StepContext) -> FloatArray:
    """Each session's laxity, the observation's ``laxity_h`` [h], ``(B, C)``.

    ``hours to departure - energy still wanted / (max_charge_kw * charge_efficiency_frac)``: how long
    the session can still wait and be served at full power (negative: it cannot be served whole).
    Computed once per context (the floor, the cap and the fill all read it); read-only.
    """
    (laxity,) = context.memo("laxity_h", lambda: (_laxity_h(context),))
    return laxity


def _laxity_h(context: StepContext) -> FloatArray:
    ev = context.ev
    need_kwh = np.maximum(ev.target_energy_kwh - ev.energy_kwh, 0.0)
    rate_kw = ev.max_charge_kw * ev.charge_efficiency_frac
    laxity: FloatArray = ev.n_steps_to_departure * context.step_h - need_kwh / np.where(
        rate_kw > 0.0, rate_kw, 1.0
    )
    return laxity


def deadline_floor_kw(
    context: StepContext, lower_kw: FloatArray, upper_kw: FloatArray, margin_steps: float
) -> FloatArray:
    """The least power per connector that keeps each session's wanted energy deliverable [kW].

    A session that still wants ``need`` kWh (battery side) with ``hours`` left, charging at most
    ``max_charge_kw`` at ``charge_efficiency_frac``, has the laxity of the observation,
    ``L = hours - need / (max_charge_kw * eff)`` [h]. Charging ``p`` kW in this step of ``dt`` hours
    leaves ``need - p * eff * dt`` for the ``hours - dt`` after it, deliverable at full power only if
    ``p >= max_charge_kw * (dt - L) / dt``. The floor asks that with ``margin_steps`` steps to spare
    (the DC taper and the site's limits can slow the later steps, and a departure inside a step
    counts that step whole, as in the observation's laxity):
    ``f = max_charge_kw * ((1 + margin_steps) * dt - L) / dt``.

    - ``f >= 0``: the session must charge at least ``f``, at most ``need / (eff * dt)`` (never past
      the energy wanted).
    - ``f < 0``: the session has time to spare and may discharge (V2G), by as much as it can win
      back: discharging ``p < 0`` takes ``-p * dt / eff_discharge`` kWh out, which charging must put
      back, so the floor is ``f * eff * eff_discharge``.

    The floor is clipped to the step's box ``[lower_kw, upper_kw]`` (so never more than the EV and
    connector accept now, and never a discharge a session may not give: its ``lower_kw`` is 0); 0
    where no EV is.

    Args:
        context: State at the step's start.
        lower_kw: Discharging bound of each connector's box, ``(B, C)`` [kW], ``<= 0``
            (:func:`smac_rl.core.projection.ev_power_bounds`).
        upper_kw: Charging bound of each connector's box, ``(B, C)`` [kW].
        margin_steps: Steps to spare [steps], ``>= 0``.

    Returns:
        The floor, ``(B, C)`` [kW].
    """
    ev, dt = context.ev, context.step_h
    need_kwh = np.maximum(ev.target_energy_kwh - ev.energy_kwh, 0.0)
    floor_kw = ev.max_charge_kw * (((1.0 + margin_steps) * dt - laxity_h(context)) / dt)
    eff = np.where(ev.charge_efficiency_frac > 0.0, ev.charge_efficiency_frac, 1.0)
    charging_kw = np.minimum(floor_kw, need_kwh / (eff * dt))
    discharging_kw = floor_kw * ev.charge_efficiency_frac * ev.discharge_efficiency_frac
    floor_kw = np.where(floor_kw >= 0.0, charging_kw, discharging_kw)
    floor_kw = np.minimum(np.maximum(floor_kw, np.minimum(lower_kw, 0.0)), np.maximum(upper_kw, 0.0))
    return np.where(ev.is_present, floor_kw, 0.0)


def import_cap_kw(context: StepContext, cap_action: FloatArray) -> FloatArray:
    """The import cap a cap action names: ``(a + 1) / 2 * import_limit_kw`` [kW], ``(B,)``.

    ``a = -1`` caps the import at 0, ``a = 1`` at the step's import limit (where the asks exceed the
    limit, :func:`apply_import_cap` then grants them by laxity instead of the projection's scaling of
    all of them by one factor). The export graph computes the same from the observation's
    ``import_limit_kw``.

    Args:
        context: State at the step's start.
        cap_action: The cap action of each row, in ``[-1, 1]``, ``(B,)``.
    """
    cap: FloatArray = (np.clip(cap_action, -1.0, 1.0) + 1.0) * 0.5 * context.exo.import_limit_kw
    return cap


def round_to_minimum_current(
    context: StepContext, ev_power_kw: FloatArray, round_up_from_frac: float = 0.5
) -> FloatArray:
    """Charging asks below the minimum current rounded to the nearest setpoint the projection keeps [kW].

    The projection sets a charging setpoint below the connector's minimum (IEC 61851: 6 A on AC) to
    0, unless it is a final top-up (:func:`smac_rl.core.projection.below_minimum_current`). A policy
    fitted by regression to an expert that charges 0 or at least the minimum answers in between,
    and every such answer would be lost. Here an ask of at least ``round_up_from_frac`` of the
    minimum becomes the minimum (at most the step's charging bound), a smaller one 0; other
    setpoints are unchanged. An urgent deadline floor (laxity under one step) is rounded with
    ``round_up_from_frac`` 0: it becomes the minimum, since the projection would drop it and the
    session fall behind its deadline for good.

    Args:
        context: State at the step's start.
        ev_power_kw: Requested connector setpoints [kW], ``(B, C)``.
        round_up_from_frac: Share of the minimum from which an ask is rounded up [0..1].

    Returns:
        The rounded setpoints, ``(B, C)``.
    """
    below = below_minimum_current(context, ev_power_kw)
    if not is_any(below):
        return ev_power_kw
    min_kw = context.ev.min_charge_kw
    _, upper_kw = ev_power_bounds(context)
    rounded_kw = np.where(ev_power_kw >= round_up_from_frac * min_kw, np.minimum(min_kw, upper_kw), 0.0)
    result: FloatArray = np.where(below, rounded_kw, ev_power_kw)
    return result


def apply_import_cap(
    context: StepContext, setpoints: Setpoints, cap_kw: FloatArray, floor_kw: FloatArray | None
) -> Setpoints:
    """Requested setpoints with the charging above each row's import cap withheld, most urgent first.

    What each connector asks above its floor (``max(floor_kw, 0)``; 0 without a floor) and what the
    storage asks to charge are granted from the cap's budget, ``cap_kw`` minus the import of
    everything else (base load, the floors, discharging, less PV), in order of laxity
    (:func:`laxity_h`, least first; ties by connector; the storage last): each gets its whole ask
    while the budget lasts, one gets the rest, the others nothing above their floor. Discharging and
    the floors are never touched: a deadline wins over the cap, and a cap below what the floors need
    is exceeded by exactly what they need. Granting whole asks by urgency, rather than scaling every
    ask by one factor, keeps setpoints above the chargers' minimum current (which the projection
    would set to zero) and serves first the sessions that could not wait.

    Requests can be above what the projection will grant (a charger's rating, a phase), so the cap
    can withhold more than the granted setpoints would need.

    Args:
        context: State at the step's start.
        setpoints: Requested setpoints [kW].
        cap_kw: The import cap of each row [kW], ``(B,)``.
        floor_kw: The deadline floor of each connector [kW], ``(B, C)``, or None.

    Returns:
        The capped setpoints.
    """
    exo = context.exo
    ev_kw, storage_kw = setpoints.ev_power_kw, setpoints.storage_power_kw
    requested_kw = grid_import_kw(exo.base_load_kw, exo.pv_available_kw, ev_kw.sum(axis=1), storage_kw)
    if not is_any(requested_kw - cap_kw > FEASIBILITY_TOL_KW):
        return setpoints
    kept_kw = zeros_of(ev_kw.shape) if floor_kw is None else np.maximum(floor_kw, 0.0)
    above_kw = np.maximum(ev_kw - kept_kw, 0.0)
    storage_above_kw = np.maximum(storage_kw, 0.0)
    fixed_net_kw = (
        exo.base_load_kw
        + (ev_kw - above_kw).sum(axis=1)
        + (storage_kw - storage_above_kw)
        - exo.pv_available_kw
    )
    budget_kw = cap_kw - fixed_net_kw
    granted_kw = _grant_by_laxity(context, above_kw, budget_kw)
    storage_granted_kw = np.clip(budget_kw - above_kw.sum(axis=1), 0.0, storage_above_kw)
    return Setpoints(
        ev_power_kw=ev_kw - above_kw + granted_kw,
        storage_power_kw=storage_kw - storage_above_kw + storage_granted_kw,
    )


def _grant_by_laxity(context: StepContext, asked_kw: FloatArray, budget_kw: FloatArray) -> FloatArray:
    """Each row's budget granted to its connectors' asks, least laxity first (ties by connector) [kW].

    Every ask is granted whole while the budget lasts, one gets the rest, the others nothing.

    Args:
        context: State at the step's start (for :func:`laxity_h`).
        asked_kw: What each connector asks, ``(B, C)``, ``>= 0``.
        budget_kw: What each row may grant, ``(B,)``.

    Returns:
        The grants, ``(B, C)``.
    """
    order = np.argsort(laxity_h(context), axis=1, kind="stable")
    asked_sorted = np.take_along_axis(asked_kw, order, axis=1)
    before_kw = np.cumsum(asked_sorted, axis=1) - asked_sorted  # granted to the more urgent ones
    granted_sorted = np.clip(budget_kw[:, None] - before_kw, 0.0, asked_sorted)
    granted_kw = np.empty_like(granted_sorted)
    np.put_along_axis(granted_kw, order, granted_sorted, axis=1)
    return granted_kw


def fill_to_paid_peak(context: StepContext, setpoints: Setpoints) -> Setpoints:
    """Requested setpoints with charging raised up to the import already paid for, most urgent first.

    Under a demand charge the billing period's highest import so far (``context.peak_import_kw``) is
    paid whatever happens: importing up to it again costs no demand charge, and every kWh charged
    now is one that cannot raise the peak later. The room up to that level (:func:`paid_peak_kw`, at
    most the step's import limit), ``min(peak, limit) - net import of the requested setpoints`` (PV
    exported counts as room), goes to the charging or idle sessions in order of laxity
    (:func:`laxity_h`, least first; ties by connector), each raised up to what it may take this step:
    its charging bound, and no more than the energy it still wants. The storage and discharging
    sessions are untouched. Raises that would overload a charger or a feeder phase (the projection
    would then scale every connector there, the urgent ones too) are withdrawn, and that room is
    left unused. A partial raise that would leave a setpoint below the minimum current (which the
    projection drops) is skipped and its room offered to the next session, for up to
    :data:`MAX_FILL_ROUNDS` rounds; one still stranded after them is dropped.

    Args:
        context: State at the step's start.
        setpoints: Requested setpoints [kW].

    Returns:
        The filled setpoints.
    """
    exo = context.exo
    ev_kw = setpoints.ev_power_kw
    # The net import before clipping at 0: with PV exported, the room is from the export up.
    net_kw = exo.base_load_kw + ev_kw.sum(axis=1) + setpoints.storage_power_kw - exo.pv_available_kw
    budget_kw = paid_peak_kw(context) - net_kw
    if not is_any(budget_kw > FEASIBILITY_TOL_KW):
        return setpoints
    _, upper_kw = ev_power_bounds(context)
    room_kw = np.maximum(np.minimum(upper_kw, energy_headroom_kw(context)) - ev_kw, 0.0)
    room_kw = np.where(context.ev.is_present & (ev_kw >= 0.0), room_kw, 0.0)  # discharging is left alone
    raised_kw = _grant_by_laxity(context, room_kw, np.maximum(budget_kw, 0.0))
    # A partial raise that leaves a setpoint below the minimum current would be dropped by the
    # projection with its share of the room: that session is skipped and the room goes on to the
    # next (a few rounds; each can strand at most one session per row).
    for _ in range(MAX_FILL_ROUNDS):
        stranded = below_minimum_current(context, ev_kw + raised_kw) & (raised_kw > 0.0)
        if not is_any(stranded):
            break
        room_kw = np.where(stranded, 0.0, room_kw)
        raised_kw = _grant_by_laxity(context, room_kw, np.maximum(budget_kw, 0.0))
    raised_kw = np.where(below_minimum_current(context, ev_kw + raised_kw), 0.0, raised_kw)
    filled_kw = ev_kw + raised_kw
    # A raise that overloads a charger or a feeder phase would have the projection scale every
    # connector there, the urgent ones too: such raises are withdrawn.
    overloaded = is_shared_limit_exceeded(context.site, np.abs(filled_kw)) & (raised_kw > 0.0)
    if is_any(overloaded):
        filled_kw = np.where(overloaded, ev_kw, filled_kw)
    return Setpoints(ev_power_kw=filled_kw, storage_power_kw=setpoints.storage_power_kw)


def paid_peak_kw(context: StepContext) -> FloatArray:
    """The import already paid for that may be drawn again this step: ``min(peak so far, import limit)`` [kW].

    Args:
        context: State at the step's start.

    Returns:
        The level of each row, ``(B,)``.
    """
    level: FloatArray = np.minimum(context.peak_import_kw, context.exo.import_limit_kw)
    return level


DECODING_OPTIONS: tuple[str, ...] = (
    "deadline_floor_margin_steps",
    "is_min_current_rounded",
    "is_paid_peak_filled",
)
"""The layout options that act only after the graph, on its setpoints (:meth:`ObservationLayout.completed`):
an exported graph can be served with other values of these (``smac export --decoding``); the others
change the graph's input or output."""


def _raise_urgent_floors(context: StepContext, floor_kw: FloatArray) -> FloatArray:
    """Deadline floors below the minimum current raised to it where the session cannot wait a step [kW].

    The projection drops a floor below the minimum (:func:`round_to_minimum_current`). Where the
    floor without margin is positive too (laxity under one step), the session would fall behind its
    deadline for good, so the floor becomes the minimum; elsewhere it stays and the session may wait
    for the next step. (Where nothing is wanted or nothing can be charged the floor is 0 and stays 0.)
    """
    urgent = laxity_h(context) < context.step_h  # the floor without margin is positive
    if not is_any(urgent):
        return floor_kw
    raised: FloatArray = np.where(urgent, round_to_minimum_current(context, floor_kw, 0.0), floor_kw)
    return raised


def layout_option_names() -> tuple[str, ...]:
    """The option fields of :class:`ObservationLayout` (all but ``n_connectors_max``), in order."""
    return tuple(field.name for field in fields(ObservationLayout) if field.name != "n_connectors_max")


@dataclass(frozen=True)
class ObservationLayout:
    """The ordered observation and action layout for sites of up to ``n_connectors_max`` connectors.

    Attributes:
        n_connectors_max: Connectors the layout has room for.
        deadline_floor_margin_steps: With a value, every connector's setpoint is raised to
            :func:`deadline_floor_kw` with that margin [steps] (the policy may delay a session, or
            discharge it, only while its energy stays deliverable); None: actions map to setpoints
            unchanged.
        is_price_rank_observed: The site features go on with :data:`PRICE_OUTLOOK_FEATURES` (the
            price ranks).
        is_load_outlook_observed: The site features go on with :data:`LOAD_OUTLOOK_FEATURES` (after the
            price ranks when both are observed). With neither: :data:`SITE_FEATURES` only, the layout
            of policies exported before these existed.
        is_import_cap_acted: The action ends with the site's import cap (:func:`import_cap_kw`,
            :func:`apply_import_cap`, after the deadline floor).
        is_min_current_rounded: Charging asks below a connector's minimum current are rounded to
            the nearest setpoint the projection keeps, 0 or the minimum (:func:`round_to_minimum_current`,
            before the deadline floor), and deadline floors below it are raised to it where the
            session cannot wait a step; otherwise the projection sets every one of them to 0.
        is_paid_peak_filled: The import cap is never below the billing period's highest import so
            far (at most the import limit), and charging is raised up to it, least laxity first
            (:func:`fill_to_paid_peak`, last): no demand charge is saved by holding the import under
            a peak already paid for. For the ``peak`` objective only (training configs refuse it
            with the others): the raise buys energy whatever its price.
    """

    n_connectors_max: int
    deadline_floor_margin_steps: float | None = None
    is_price_rank_observed: bool = False
    is_load_outlook_observed: bool = False
    is_import_cap_acted: bool = False
    is_min_current_rounded: bool = False
    is_paid_peak_filled: bool = False

    @classmethod
    def of(cls, n_connectors_max: int, source: object) -> ObservationLayout:
        """The layout whose options (every field but ``n_connectors_max``) are ``source``'s attributes.

        A training config, a policy's metadata and the env arguments carry the same option names,
        so each builds its layout here and no option can be left out on the way.
        """
        return cls(n_connectors_max, **{name: getattr(source, name) for name in layout_option_names()})

    def options(self) -> dict[str, Any]:
        """Every option (field but ``n_connectors_max``) by name, as metadata and env arguments take them."""
        return {name: getattr(self, name) for name in layout_option_names()}

    @cached_property  # read at every step (observe_rows, size); a frozen layout's features never change
    def site_features(self) -> tuple[Feature, ...]:
        """The site features, in order."""
        return (
            SITE_FEATURES
            + (PRICE_OUTLOOK_FEATURES if self.is_price_rank_observed else ())
            + (LOAD_OUTLOOK_FEATURES if self.is_load_outlook_observed else ())
        )

    @property
    def calendar_flags(self) -> tuple[bool, bool]:
        """``(is_price_rank_observed, is_load_outlook_observed)``: what :func:`calendar_row` must add."""
        return self.is_price_rank_observed, self.is_load_outlook_observed

    @property
    def n_site_features(self) -> int:
        """Number of site features."""
        return len(self.site_features)

    @property
    def size(self) -> int:
        """Length of the observation vector."""
        return self.n_site_features + self.n_connectors_max * len(CONNECTOR_FEATURES)

    @property
    def action_size(self) -> int:
        """Length of the action vector (connectors, the storage, then the import cap if acted)."""
        return self.n_connectors_max + 1 + int(self.is_import_cap_acted)

    def names(self) -> list[str]:
        """Every observation entry's name, in order (``c03.upper_kw`` for connector blocks)."""
        return [f.name for f in self.site_features] + [
            f"c{c:02d}.{f.name}" for c in range(self.n_connectors_max) for f in CONNECTOR_FEATURES
        ]

    def units(self) -> list[str]:
        """Every observation entry's unit, in order."""
        return [f.unit for f in self.site_features] + [
            f.unit for f in CONNECTOR_FEATURES
        ] * self.n_connectors_max

    def scales(self) -> FloatArray:
        """Every observation entry's normalisation divisor, in order."""
        site = [f.scale for f in self.site_features]
        block = [f.scale for f in CONNECTOR_FEATURES]
        return np.asarray(site + block * self.n_connectors_max, dtype=np.float64)

    def observe(self, arrays: ScenarioArrays, context: StepContext) -> FloatArray:
        """Raw observations of a step of one scenario, ``(B, size)``.

        Args:
            arrays: The compiled scenario (for the price outlook and the local time).
            context: State at the step's start.

        Returns:
            The observation rows.

        Raises:
            ValueError: When the site has more connectors than ``n_connectors_max``.
        """
        calendar = calendar_row(arrays, context.step_index, None, *self.calendar_flags)
        return self.observe_rows(context, np.broadcast_to(calendar, (context.batch_size, calendar.shape[0])))

    def observe_rows(self, context: StepContext, calendar: FloatArray) -> FloatArray:
        """Raw observations of a step, each row with its own calendar features.

        Args:
            context: State at the step's start (one site, or one per row).
            calendar: The calendar features of each row (:func:`calendar_row`),
                ``(B, calendar_width(*self.calendar_flags))``.

        Returns:
            The observation rows, ``(B, size)``.

        Raises:
            ValueError: When the site has more connectors than ``n_connectors_max``.
        """
        site, ev, exo = context.site, context.ev, context.exo
        dt = context.step_h
        n_connectors = site.n_connectors
        if n_connectors > self.n_connectors_max:
            raise ValueError(
                f"connectors: got {n_connectors}; expected at most n_connectors_max = {self.n_connectors_max}"
            )
        batch = context.batch_size
        observation = np.empty((batch, self.size))
        s_lower, s_upper = storage_power_bounds(context)
        capacity = site.storage_capacity_kwh
        n_site = self.n_site_features
        values = observation[:, :n_site]
        values[:, :3] = calendar[:, :3]
        values[:, 3] = exo.import_price_eur_per_kwh
        values[:, 4] = exo.export_price_eur_per_kwh
        values[:, 5:7] = calendar[:, 3:N_CALENDAR_FEATURES]
        if n_site > len(SITE_FEATURES):  # the price ranks and the load outlook, in the calendar's order
            values[:, len(SITE_FEATURES) :] = calendar[:, N_CALENDAR_FEATURES:]
        values[:, 7] = exo.base_load_kw
        values[:, 8] = exo.pv_available_kw
        values[:, 9] = exo.import_limit_kw
        values[:, 10] = exo.import_limit_kw - exo.base_load_kw + exo.pv_available_kw
        values[:, 11] = context.peak_import_kw
        values[:, 12] = site.demand_charge_eur_per_kw
        values[:, 13] = 0.0
        np.divide(context.storage_energy_kwh, capacity, out=values[:, 13], where=np.greater(capacity, 0.0))
        values[:, 14] = s_upper
        values[:, 15] = s_lower

        # Each feature is written straight into its strided place in the blocks. Where no EV is,
        # the EvView's neutral values make every feature 0 (is_present 0, no energy, steps or
        # power), so no mask is applied.
        lower, upper = ev_power_bounds(context)
        # A view (splitting the contiguous last axis), so the features land in place.
        blocks = observation[:, n_site:].reshape(batch, self.n_connectors_max, len(CONNECTOR_FEATURES))
        blocks[:, n_connectors:] = 0.0
        connectors = blocks[:, :n_connectors]
        np.copyto(connectors[:, :, 0], ev.is_present)
        np.divide(ev.energy_kwh, ev.capacity_kwh, out=connectors[:, :, 1])
        need = np.subtract(ev.target_energy_kwh, ev.energy_kwh)
        np.maximum(need, zeros_of(need.shape), out=need)
        connectors[:, :, 2] = need
        hours = np.multiply(ev.n_steps_to_departure, dt, out=connectors[:, :, 3])
        rate = ev.max_charge_kw * ev.charge_efficiency_frac
        np.divide(need, np.where(rate > 0, rate, 1.0), out=need)
        np.subtract(hours, need, out=connectors[:, :, 4])
        connectors[:, :, 5] = upper
        connectors[:, :, 6] = lower
        connectors[:, :, 7] = ev.max_charge_kw
        np.clip(observation, -OBSERVATION_BOUND, OBSERVATION_BOUND, out=observation)
        return observation

    def setpoints(self, context: StepContext, action: FloatArray) -> Setpoints:
        """Setpoints asked by normalised actions (before the projection).

        Args:
            context: State at the step's start.
            action: Actions in ``[-1, 1]``, ``(B, action_size)``; values outside are clipped.

        Returns:
            The requested setpoints.
        """
        a = np.asarray(action, dtype=np.float64)
        if not is_all(np.isfinite(a)):  # NaN counts as 0; infinities are clipped below
            a = np.nan_to_num(a, nan=0.0)
        a = np.clip(a, -1.0, 1.0)
        n_connectors = context.site.n_connectors
        lower, upper = ev_power_bounds(context)
        ev_a = np.ascontiguousarray(a[:, :n_connectors])
        # a * upper where a >= 0, -a * lower where a < 0 (bit for bit; the other term is a zero).
        zeros = zeros_of(ev_a.shape)
        ev_kw = np.maximum(ev_a, zeros)
        ev_kw *= upper
        ev_kw -= np.minimum(ev_a, zeros, out=ev_a) * lower
        s_lower, s_upper = storage_power_bounds(context)
        s_a = a[:, self.n_connectors_max]
        storage_kw = np.where(s_a >= 0.0, s_a * s_upper, -s_a * s_lower)
        cap_kw = import_cap_kw(context, a[:, self.n_connectors_max + 1]) if self.is_import_cap_acted else None
        return self.completed(context, Setpoints(ev_power_kw=ev_kw, storage_power_kw=storage_kw), cap_kw)

    def completed(
        self, context: StepContext, setpoints: Setpoints, cap_kw: FloatArray | None = None
    ) -> Setpoints:
        """``setpoints`` rounded to the minimum current, floored, capped, filled to the paid peak.

        Each stage only where the layout's flag asks for it, in that order.

        :meth:`setpoints` ends with this; the service applies it to an exported graph's setpoints
        and cap [kW], with the request's own step length.

        Args:
            context: State at the step's start.
            setpoints: Requested setpoints [kW].
            cap_kw: The import cap of each row [kW], ``(B,)``; read only when ``is_import_cap_acted``.

        Raises:
            ValueError: When the layout acts on the import cap and ``cap_kw`` is None.
        """
        floor_kw = None
        if self.is_min_current_rounded:
            setpoints = Setpoints(
                round_to_minimum_current(context, setpoints.ev_power_kw), setpoints.storage_power_kw
            )
        if self.deadline_floor_margin_steps is not None:
            lower, upper = ev_power_bounds(context)
            floor_kw = deadline_floor_kw(context, lower, upper, self.deadline_floor_margin_steps)
            if self.is_min_current_rounded:
                floor_kw = _raise_urgent_floors(context, floor_kw)
            setpoints = Setpoints(np.maximum(setpoints.ev_power_kw, floor_kw), setpoints.storage_power_kw)
        if self.is_import_cap_acted:
            if cap_kw is None:
                raise ValueError(
                    "cap_kw: got None; expected the import cap of each row for a layout that acts on it"
                )
            if self.is_paid_peak_filled:
                cap_kw = np.maximum(cap_kw, paid_peak_kw(context))
            setpoints = apply_import_cap(context, setpoints, cap_kw, floor_kw)
        if self.is_paid_peak_filled:
            setpoints = fill_to_paid_peak(context, setpoints)
        return setpoints
