"""Property-based invariants of the core: projection, physics, simulate, scorer and the heuristics.

A hypothesis strategy builds random *valid* scenario dicts (chargers, connectors, storage, PV,
series, grid limits, sessions); each goes through ``parse_scenario`` and ``compile_scenario`` and
is rolled out with random setpoints (arbitrary floats, NaN and infinities included, and values at
or near the bounds). Every step of the rollout is checked against the limits the projection
promises, the physics' state bounds and energy balance, and the scorer's definitions.
"""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, note, settings
from hypothesis import strategies as st

from smac_rl.core.arrays import ScenarioArrays, compile_scenario
from smac_rl.core.physics import grid_import_kw, physics_step
from smac_rl.core.projection import ev_power_bounds, project, storage_power_bounds
from smac_rl.core.scenario_io import parse_scenario
from smac_rl.core.scoring import score
from smac_rl.core.simulate import Trace, replay, simulate
from smac_rl.core.state import Setpoints, StepContext, context_at
from smac_rl.policies import make_heuristic, run_policy
from tests.core.tiny import tiny_data

TOL_KW = 1e-6
"""Tolerance on powers [kW] and currents [A] for the limit checks."""

TOL_KWH = 1e-6
"""Tolerance on stored energies [kWh]."""

START = dt.datetime(2024, 5, 1, tzinfo=dt.UTC)

PROPERTY_SETTINGS = settings(
    max_examples=int(os.environ.get("SMAC_INVARIANT_EXAMPLES", "150")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


# --------------------------------------------------------------------------------------------------
# Strategies
# --------------------------------------------------------------------------------------------------


def _floats(lo: float, hi: float) -> st.SearchStrategy[float]:
    return st.floats(lo, hi, allow_nan=False, allow_infinity=False)


def _series(draw: st.DrawFn, n_steps: int, lo: float, hi: float) -> list[float]:
    return draw(st.lists(_floats(lo, hi), min_size=n_steps, max_size=n_steps))


def _iso(offset_min: int) -> str:
    return (START + dt.timedelta(minutes=offset_min)).isoformat()


@st.composite
def _charger(draw: st.DrawFn, k: int) -> dict[str, Any]:
    n_connectors = draw(st.integers(1, 3))
    evse_ids = draw(st.lists(st.integers(1, 9), min_size=n_connectors, max_size=n_connectors, unique=True))
    connectors: list[dict[str, Any]] = []
    for evse_id in evse_ids:
        connector: dict[str, Any] = {"evse_id": evse_id}
        if draw(st.booleans()):
            connector["max_power_kw"] = draw(_floats(1.0, 350.0))
        connectors.append(connector)
    charger: dict[str, Any] = {"station_id": f"CP{k}", "connectors": connectors}
    if draw(st.booleans()):
        charger |= {
            "kind": "ac",
            "n_phases": draw(st.sampled_from([1, 3])),
            "phase": draw(st.sampled_from(["L1", "L2", "L3"])),
            "max_current_a": draw(_floats(6.0, 63.0)),
            "is_bidirectional": draw(st.booleans()),
        }
        if draw(st.booleans()):
            charger["max_power_kw"] = draw(_floats(1.0, 50.0))
    else:
        charger |= {
            "kind": "dc",
            "max_power_kw": draw(_floats(20.0, 350.0)),
            "is_bidirectional": draw(st.booleans()),
        }
    return charger


@st.composite
def _storage(draw: st.DrawFn) -> dict[str, Any]:
    min_soc = draw(_floats(0.0, 0.45))
    max_soc = draw(_floats(0.55, 1.0))
    return {
        "capacity_kwh": draw(_floats(1.0, 500.0)),
        "max_charge_kw": draw(_floats(0.5, 200.0)),
        "max_discharge_kw": draw(_floats(0.5, 200.0)),
        "min_soc_frac": min_soc,
        "max_soc_frac": max_soc,
        "initial_soc_frac": draw(_floats(min_soc, max_soc)),
        "charge_efficiency_frac": draw(_floats(0.8, 1.0)),
        "discharge_efficiency_frac": draw(_floats(0.8, 1.0)),
        "self_discharge_per_h_frac": draw(_floats(0.0, 0.01)),
        "degradation_cost_eur_per_kwh": draw(_floats(0.0, 0.1)),
    }


@st.composite
def _session(
    draw: st.DrawFn, index: int, charger: dict[str, Any], evse_id: int, step_min: int, n_steps: int
) -> dict[str, Any]:
    total_min = step_min * n_steps
    if draw(st.booleans()):  # on step boundaries: whole steps plugged in
        arrival = step_min * draw(st.integers(-2, n_steps - 1))
        departure = step_min * draw(st.integers(max(arrival // step_min, 0) + 1, n_steps + 2))
    else:  # anywhere, across the grid's edges too
        arrival = draw(st.integers(-2 * step_min, total_min - 1))
        departure = draw(st.integers(max(arrival, 0) + 1, total_min + 2 * step_min))
    capacity = draw(_floats(10.0, 120.0))
    session: dict[str, Any] = {
        "session_id": f"S{index}",
        "station_id": charger["station_id"],
        "evse_id": evse_id,
        "arrival_utc": _iso(arrival),
        "departure_utc": _iso(departure),
        "battery_capacity_kwh": capacity,
        "arrival_soc_frac": draw(_floats(0.0, 1.0)),
        "ev_max_ac_kw": draw(_floats(1.0, 22.0)),
        "ev_max_dc_kw": draw(_floats(20.0, 350.0)),
        "allow_v2g": draw(st.booleans()),
        "v2g_min_soc_frac": draw(_floats(0.0, 0.6)),
        "charge_efficiency_frac": draw(_floats(0.8, 1.0)),
        "discharge_efficiency_frac": draw(_floats(0.8, 1.0)),
        "taper_start_soc_frac": draw(st.none() | _floats(0.5, 1.0)),
    }
    if draw(st.booleans()):
        session["energy_wanted_kwh"] = draw(_floats(0.0, 1.2 * capacity))
    else:
        session["target_soc_frac"] = draw(_floats(0.0, 1.0))
    return session


@st.composite
def scenario_dicts(draw: st.DrawFn) -> dict[str, Any]:
    """A random valid scenario as plain data (what a YAML file would hold)."""
    step_min = draw(st.sampled_from([15, 60]))
    n_steps = draw(st.integers(1, 12))
    chargers = [draw(_charger(k)) for k in range(draw(st.integers(1, 4)))]
    import_limit = draw(_floats(5.0, 300.0))
    grid: dict[str, Any] = {"import_limit_kw": import_limit}
    export_limit = draw(st.none() | _floats(0.0, 30.0) | _floats(0.0, 300.0))
    if export_limit is not None:
        grid["export_limit_kw"] = export_limit
    if draw(st.booleans()):
        grid["charging_phase_current_limit_a"] = draw(_floats(6.0, 50.0))
    site: dict[str, Any] = {
        "site_id": "site",
        "chargers": chargers,
        "grid": grid,
        "tariff": {
            "demand_charge_eur_per_kw": draw(_floats(0.0, 5.0)),
            "billing_peak_start_kw": draw(_floats(0.0, 100.0)),
        },
        "v2g_degradation_cost_eur_per_kwh": draw(_floats(0.0, 0.1)),
    }
    if draw(st.booleans()):
        site["min_current_a"] = draw(st.just(6.0) | _floats(1.0, 16.0))
    if draw(st.booleans()):
        site["storage"] = draw(_storage())
    series: dict[str, Any] = {
        "import_price_eur_per_kwh": _series(draw, n_steps, -0.3, 0.8),
        "export_price_eur_per_kwh": draw(_floats(-0.2, 0.4))
        if draw(st.booleans())
        else _series(draw, n_steps, -0.2, 0.4),
        "base_load_kw": _series(draw, n_steps, 0.0, 1.1 * import_limit),
    }
    if draw(st.booleans()):
        site["pv"] = {"peak_power_kwp": draw(_floats(1.0, 300.0))}
        series["pv_available_kw"] = _series(draw, n_steps, 0.0, 200.0)
    if draw(st.booleans()):
        series["import_limit_kw"] = _series(draw, n_steps, 0.0, 1.5 * import_limit)
    sessions: list[dict[str, Any]] = []
    for charger in chargers:
        for connector in charger["connectors"]:
            if draw(st.booleans()):
                sessions.append(
                    draw(_session(len(sessions), charger, connector["evse_id"], step_min, n_steps))
                )
    return {
        "name": "random",
        "site": site,
        "time_grid": {"start_utc": START.isoformat(), "step_min": step_min, "n_steps": n_steps},
        "sessions": sessions,
        "series": series,
        "unmet_energy_penalty_eur_per_kwh": draw(_floats(0.0, 5.0)),
    }


def compile_data(data: dict[str, Any]) -> ScenarioArrays:
    """Parse (the one validation edge) and compile a scenario dict."""
    return compile_scenario(parse_scenario(data))


SEEDS = st.integers(0, 2**32 - 1)


# --------------------------------------------------------------------------------------------------
# Random setpoints and rollouts
# --------------------------------------------------------------------------------------------------


def random_setpoints(rng: np.random.Generator, context: StepContext) -> Setpoints:
    """Arbitrary setpoints: uniform in [-400, 400] kW, NaN/inf, 0, exactly at or just past a bound, small."""
    ev_lower, ev_upper = ev_power_bounds(context)
    s_lower, s_upper = storage_power_bounds(context)
    lower = np.concatenate([ev_lower[0], s_lower])
    upper = np.concatenate([ev_upper[0], s_upper])
    n = lower.shape[0]
    kind = rng.integers(0, 8, size=n)
    choices = [
        rng.uniform(-400.0, 400.0, size=n),
        rng.choice(np.array([np.nan, np.inf, -np.inf]), size=n),
        np.zeros(n),
        upper,
        lower,
        upper * (1.0 + rng.uniform(0.0, 0.1, size=n)) + rng.uniform(0.0, 1.0, size=n),
        rng.uniform(0.0, 5.0, size=n),
        rng.uniform(-5.0, 0.0, size=n),
    ]
    values = np.choose(kind, choices)
    return Setpoints(ev_power_kw=values[None, :-1].copy(), storage_power_kw=values[-1:].copy())


@dataclass(frozen=True)
class Rollout:
    """A simulated episode with every step's context and raw setpoints."""

    arrays: ScenarioArrays
    trace: Trace
    contexts: list[StepContext]
    requested: list[Setpoints]

    def applied(self, t: int) -> Setpoints:
        """Setpoints applied at step ``t`` (batch size 1)."""
        return Setpoints(
            self.trace.ev_power_kw[t][None, :].copy(), self.trace.storage_power_kw[t : t + 1].copy()
        )


def random_rollout(arrays: ScenarioArrays, seed: int) -> Rollout:
    """Simulate one episode with random setpoints drawn from a generator seeded by ``seed``."""
    rng = np.random.default_rng(seed)
    contexts: list[StepContext] = []
    requested: list[Setpoints] = []

    def decide(context: StepContext) -> Setpoints:
        setpoints = random_setpoints(rng, context)
        contexts.append(context)
        requested.append(setpoints)
        return Setpoints(setpoints.ev_power_kw.copy(), setpoints.storage_power_kw.copy())

    trace = simulate(arrays, decide)
    return Rollout(arrays, trace, contexts, requested)


# --------------------------------------------------------------------------------------------------
# Limit checks of one step's setpoints (batch size 1)
# --------------------------------------------------------------------------------------------------


def limit_problems(context: StepContext, setpoints: Setpoints) -> list[str]:
    """Every limit of the feasible set that ``setpoints`` break (empty when feasible)."""
    site, exo = context.site, context.exo
    p = setpoints.ev_power_kw[0]
    s = float(setpoints.storage_power_kw[0])
    problems: list[str] = []
    if not (np.all(np.isfinite(p)) and np.isfinite(s)):
        return [f"non-finite setpoints {p}, {s}"]

    ev_lower, ev_upper = ev_power_bounds(context)
    if np.any(p < ev_lower[0] - TOL_KW) or np.any(p > ev_upper[0] + TOL_KW):
        problems.append(f"EV box: {p} outside [{ev_lower[0]}, {ev_upper[0]}]")
    if np.any(np.abs(p) > site.connector_max_kw + TOL_KW):
        problems.append(f"connector rating: |{p}| > {site.connector_max_kw}")

    charger_kw = np.bincount(site.connector_charger_index, weights=np.abs(p), minlength=site.n_chargers)
    if np.any(charger_kw > site.charger_max_kw + TOL_KW):
        problems.append(f"charger rating: {charger_kw} > {site.charger_max_kw}")

    phase_a = np.abs(p) @ site.connector_phase_a_per_kw
    if np.any(phase_a > site.charging_phase_current_limit_a + TOL_KW):
        problems.append(f"feeder phase current: {phase_a} A > {site.charging_phase_current_limit_a} A")

    s_lower, s_upper = storage_power_bounds(context)
    if not s_lower[0] - TOL_KW <= s <= s_upper[0] + TOL_KW:
        problems.append(f"storage box: {s} outside [{s_lower[0]}, {s_upper[0]}]")
    if not -site.storage_max_discharge_kw - TOL_KW <= s <= site.storage_max_charge_kw + TOL_KW:
        problems.append(f"storage rating: {s}")

    net_kw = exo.base_load_kw[0] + p.sum() + s - exo.pv_available_kw[0]
    charging_kw = np.maximum(p, 0.0).sum() + max(s, 0.0)
    if net_kw > exo.import_limit_kw[0] + TOL_KW and charging_kw > 0.0:
        problems.append(f"import limit: net {net_kw} > {exo.import_limit_kw[0]} while charging {charging_kw}")

    export_kw = -(exo.base_load_kw[0] + p.sum() + s)  # PV can always be curtailed
    discharging_kw = np.maximum(-p, 0.0).sum() + max(-s, 0.0)
    if export_kw > exo.export_limit_kw[0] + TOL_KW and discharging_kw > 0.0:
        problems.append(f"export limit: {export_kw} > {exo.export_limit_kw[0]} while discharging")

    # A setpoint below the minimum current is allowed only as the final top-up of the energy wanted.
    ev = context.ev
    top_up = (
        p
        >= (ev.target_energy_kwh[0] - ev.energy_kwh[0]) / (ev.charge_efficiency_frac[0] * context.step_h)
        - TOL_KW
    )
    # The minimum is the connector's (6 A on each of its phases), or one phase's for an EV whose
    # limit is below that (it charges on one phase), never above the EV's limit.
    n_phases = np.maximum(np.count_nonzero(site.connector_phase_a_per_kw, axis=-1), 1)
    minimum_kw = np.where(
        ev.max_charge_kw[0] >= site.connector_min_charge_kw,
        site.connector_min_charge_kw,
        np.minimum(site.connector_min_charge_kw / n_phases, ev.max_charge_kw[0]),
    )
    ac_charging = ~site.is_connector_dc & (p > 0.0) & ~top_up
    if np.any(p[ac_charging] < minimum_kw[ac_charging] - TOL_KW):
        problems.append(f"minimum current: {p} below {minimum_kw}")
    return problems


# --------------------------------------------------------------------------------------------------
# 1. The strategy builds valid scenarios
# --------------------------------------------------------------------------------------------------


@PROPERTY_SETTINGS
@given(data=scenario_dicts())
def test_generated_scenarios_parse_and_compile(data: dict[str, Any]) -> None:
    """Every generated dict is a valid scenario, and its arrays have consistent shapes and finite values."""
    arrays = compile_data(data)
    n_connectors = sum(len(c["connectors"]) for c in data["site"]["chargers"])
    assert arrays.site.n_connectors == n_connectors
    assert arrays.site.n_chargers == len(data["site"]["chargers"])
    assert arrays.sessions.n_sessions == len(data["sessions"])
    assert arrays.connector_session_index.shape == (arrays.n_steps, n_connectors)
    for name in ("base_load_kw", "pv_available_kw", "import_limit_kw", "export_limit_kw"):
        values = getattr(arrays.series, name)
        assert values.shape == (arrays.n_steps,)
        assert np.all(np.isfinite(values)), name
        assert np.all(values >= 0.0), name
    assert np.all(arrays.site.connector_max_kw > 0.0)
    assert np.all(arrays.site.connector_min_charge_kw <= arrays.site.connector_max_kw)
    sessions = arrays.sessions
    assert np.all(sessions.min_charge_kw <= sessions.max_charge_kw)
    assert np.all(sessions.min_charge_kw <= arrays.site.connector_min_charge_kw[sessions.connector_index])
    assert np.all(sessions.arrival_energy_kwh <= sessions.capacity_kwh + TOL_KWH)
    assert np.all(sessions.target_energy_kwh <= sessions.capacity_kwh + TOL_KWH)
    assert np.all((sessions.max_discharge_kw == 0.0) | (sessions.max_discharge_kw == sessions.max_charge_kw))


# --------------------------------------------------------------------------------------------------
# 2-3. The projection
# --------------------------------------------------------------------------------------------------


@PROPERTY_SETTINGS
@given(data=scenario_dicts(), seed=SEEDS)
def test_projected_setpoints_respect_every_limit(data: dict[str, Any], seed: int) -> None:
    """At every step, the applied (projected) setpoints lie within every limit of the feasible set.

    EV box (EV/connector power, taper, energy wanted, V2G floor), connector and charger ratings,
    feeder phase currents, storage power and energy bounds, the import limit whenever it is
    achievable with all charging at zero, the export limit whenever achievable with all discharging
    at zero, and the minimum AC charging current (a positive AC setpoint is 0, at least the minimum,
    or the final top-up of the energy wanted).
    """
    rollout = random_rollout(compile_data(data), seed)
    for t, context in enumerate(rollout.contexts):
        problems = limit_problems(context, rollout.applied(t))
        assert not problems, f"step {t}, requested {rollout.requested[t]}: {problems}"


@PROPERTY_SETTINGS
@given(data=scenario_dicts(), seed=SEEDS)
def test_simulate_applies_the_projection(data: dict[str, Any], seed: int) -> None:
    """The trace records the raw setpoints as requested and the projection of them as applied."""
    rollout = random_rollout(compile_data(data), seed)
    for t, context in enumerate(rollout.contexts):
        raw = rollout.requested[t]
        np.testing.assert_array_equal(rollout.trace.requested_ev_power_kw[t], raw.ev_power_kw[0])
        np.testing.assert_array_equal(rollout.trace.requested_storage_power_kw[t], raw.storage_power_kw[0])
        projected = project(context, raw)
        np.testing.assert_array_equal(rollout.trace.ev_power_kw[t], projected.ev_power_kw[0])
        np.testing.assert_array_equal(rollout.trace.storage_power_kw[t], projected.storage_power_kw[0])


@PROPERTY_SETTINGS
@given(data=scenario_dicts(), seed=SEEDS)
def test_projection_is_idempotent(data: dict[str, Any], seed: int) -> None:
    """``project(project(x)) == project(x)``: feasible setpoints pass the projection unchanged."""
    rollout = random_rollout(compile_data(data), seed)
    for t, context in enumerate(rollout.contexts):
        once = rollout.applied(t)
        twice = project(context, once)
        np.testing.assert_allclose(
            twice.ev_power_kw, once.ev_power_kw, rtol=0.0, atol=1e-9, err_msg=f"step {t}"
        )
        np.testing.assert_allclose(
            twice.storage_power_kw, once.storage_power_kw, rtol=0.0, atol=1e-9, err_msg=f"step {t}"
        )


@PROPERTY_SETTINGS
@given(data=scenario_dicts(), seed=SEEDS)
def test_projection_only_moves_toward_zero(data: dict[str, Any], seed: int) -> None:
    """Each stage only shrinks setpoints: the sign is kept and ``|applied| <= |requested|``.

    Non-finite requests count as 0, so they are applied as 0; idle (zero) setpoints are always feasible.
    """
    rollout = random_rollout(compile_data(data), seed)
    for t, context in enumerate(rollout.contexts):
        raw = rollout.requested[t]
        applied = rollout.applied(t)
        for requested, got in (
            (raw.ev_power_kw, applied.ev_power_kw),
            (raw.storage_power_kw, applied.storage_power_kw),
        ):
            finite = np.nan_to_num(requested, nan=0.0, posinf=0.0, neginf=0.0)
            assert np.all(got * finite >= 0.0), f"step {t}: sign flipped {finite} -> {got}"
            assert np.all(np.abs(got) <= np.abs(finite) + 1e-12), f"step {t}: grew {finite} -> {got}"
            assert np.all(got[~np.isfinite(requested)] == 0.0), f"step {t}: non-finite not zeroed"
        idle = project(context, Setpoints.zeros(1, context.site.n_connectors))
        assert np.all(idle.ev_power_kw == 0.0)
        assert np.all(idle.storage_power_kw == 0.0)


# --------------------------------------------------------------------------------------------------
# 3. The physics: state bounds and energy balance
# --------------------------------------------------------------------------------------------------


@PROPERTY_SETTINGS
@given(data=scenario_dicts(), seed=SEEDS)
def test_ev_energy_stays_within_bounds(data: dict[str, Any], seed: int) -> None:
    """After every step each EV holds between 0 and its capacity, never more than ``max(target, before)``.

    It never drops below the V2G floor unless it started below it, and then it does not drop at all.
    EVs not plugged in keep their energy.
    """
    rollout = random_rollout(compile_data(data), seed)
    sessions = rollout.arrays.sessions
    energy = rollout.trace.session_energy_kwh
    for t in range(rollout.arrays.n_steps):
        before, after = energy[t], energy[t + 1]
        assert np.all(after >= -TOL_KWH), f"step {t}: negative EV energy {after}"
        assert np.all(after <= sessions.capacity_kwh + TOL_KWH), f"step {t}: above capacity {after}"
        assert np.all(after <= np.maximum(sessions.target_energy_kwh, before) + TOL_KWH), (
            f"step {t}: overshoot"
        )
        above_floor = before >= sessions.floor_energy_kwh
        assert np.all(after[above_floor] >= sessions.floor_energy_kwh[above_floor] - TOL_KWH), (
            f"step {t}: floor"
        )
        assert np.all(after[~above_floor] >= before[~above_floor] - TOL_KWH), (
            f"step {t}: below floor, dropped"
        )
        present = np.zeros(sessions.n_sessions, dtype=bool)
        index = rollout.arrays.connector_session_index[t]
        present[index[index >= 0]] = True
        np.testing.assert_array_equal(
            after[~present], before[~present], err_msg=f"step {t}: absent EV changed"
        )


@PROPERTY_SETTINGS
@given(data=scenario_dicts(), seed=SEEDS)
def test_storage_energy_stays_within_bounds(data: dict[str, Any], seed: int) -> None:
    """Storage energy stays within ``[min, max]``; it may end below min only by self-discharge.

    Precisely: ``after <= max`` and ``after >= min(min_energy, retained)`` (a storage that
    self-discharged below its minimum is never discharged further), and ``after >= 0``. ``retained``
    is what self-discharge alone leaves, bounded below by the smaller of the linear
    ``E * (1 - sd * dt)`` and compounded ``E * (1 - sd) ** dt`` models, so the check holds for either.
    """
    rollout = random_rollout(compile_data(data), seed)
    site, dt_h = rollout.arrays.site, rollout.arrays.step_h
    sd = site.storage_self_discharge_per_h_frac
    keep_frac = max(0.0, min(1.0 - sd * dt_h, (1.0 - sd) ** dt_h))
    energy = rollout.trace.storage_energy_kwh
    for t in range(rollout.arrays.n_steps):
        before, after = energy[t], energy[t + 1]
        retained = before * keep_frac
        assert after <= site.storage_max_energy_kwh + TOL_KWH, f"step {t}: {after} above max"
        assert after >= min(site.storage_min_energy_kwh, retained) - TOL_KWH, f"step {t}: {after} below min"
        if rollout.trace.storage_power_kw[t] < 0.0:
            assert after >= site.storage_min_energy_kwh - TOL_KWH, f"step {t}: discharged below min"
        assert after >= -TOL_KWH


@PROPERTY_SETTINGS
@given(data=scenario_dicts(), seed=SEEDS)
def test_energy_balance_each_step(data: dict[str, Any], seed: int) -> None:
    """The site bus balances each step, PV use is within what is available, import and export exclusive.

    ``grid_import - grid_export == base_load + sum(p) + storage - pv_used``; ``0 <= pv_used <= pv_available``;
    import and export are non-negative and never both positive; export never exceeds the export limit
    (PV is curtailed first, discharge is scaled by the projection).
    """
    rollout = random_rollout(compile_data(data), seed)
    trace, series = rollout.trace, rollout.arrays.series
    net = series.base_load_kw + trace.ev_power_kw.sum(axis=1) + trace.storage_power_kw - trace.pv_used_kw
    np.testing.assert_allclose(trace.grid_import_kw - trace.grid_export_kw, net, rtol=0.0, atol=1e-9)
    assert np.all(trace.pv_used_kw >= 0.0)
    assert np.all(trace.pv_used_kw <= series.pv_available_kw)
    assert np.all(trace.grid_import_kw >= 0.0)
    assert np.all(trace.grid_export_kw >= 0.0)
    assert not np.any((trace.grid_import_kw > 0.0) & (trace.grid_export_kw > 0.0))
    # The violation is the excess over the limit; rounding noise up to 1e-9 kW counts as none.
    np.testing.assert_allclose(
        trace.import_violation_kw, np.maximum(trace.grid_import_kw - series.import_limit_kw, 0), atol=1e-9
    )
    assert np.all(trace.export_violation_kw <= TOL_KW), "export above the limit although PV can be curtailed"
    negative_price = series.export_price_eur_per_kwh < 0.0
    no_discharge = (
        np.maximum(-trace.ev_power_kw, 0.0).sum(axis=1) + np.maximum(-trace.storage_power_kw, 0.0)
    ) == 0
    assert np.all(trace.grid_export_kw[negative_price & no_discharge] <= TOL_KW), (
        "PV exported at a negative price"
    )


@PROPERTY_SETTINGS
@given(data=scenario_dicts(), seed=SEEDS)
def test_the_import_of_setpoints_is_the_physics_import(data: dict[str, Any], seed: int) -> None:
    """``grid_import_kw`` (plans, the import cap, the paid-peak fill) equals the physics' import.

    The physics computes its import after curtailing PV, which only trims export; the decoding
    computes it without a step. Both must agree on every applied setpoint.
    """
    rollout = random_rollout(compile_data(data), seed)
    trace, series = rollout.trace, rollout.arrays.series
    planned_kw = grid_import_kw(
        series.base_load_kw, series.pv_available_kw, trace.ev_power_kw.sum(axis=1), trace.storage_power_kw
    )
    np.testing.assert_allclose(planned_kw, trace.grid_import_kw, rtol=0.0, atol=1e-9)


@PROPERTY_SETTINGS
@given(data=scenario_dicts(), seed=SEEDS)
def test_import_within_limit_whenever_achievable(data: dict[str, Any], seed: int) -> None:
    """The physics' grid import stays within the import limit unless every charging setpoint is 0."""
    rollout = random_rollout(compile_data(data), seed)
    trace = rollout.trace
    charging = np.maximum(trace.ev_power_kw, 0.0).sum(axis=1) + np.maximum(trace.storage_power_kw, 0.0)
    over = trace.grid_import_kw > rollout.arrays.series.import_limit_kw + TOL_KW
    assert not np.any(over & (charging > 0.0)), f"import {trace.grid_import_kw} while charging {charging}"


def test_physics_step_matches_manual_stepping() -> None:
    """Stepping by hand with ``context_at``, ``project`` and ``physics_step`` reproduces ``simulate``."""
    arrays = compile_data(tiny_data())
    rollout = random_rollout(arrays, 7)
    session_energy = arrays.sessions.arrival_energy_kwh[None, :].copy()
    storage_energy = np.array([arrays.site.storage_initial_energy_kwh])
    for t in range(arrays.n_steps):
        context = context_at(arrays, t, session_energy, storage_energy)
        outcome = physics_step(context, project(context, rollout.requested[t]))
        assert outcome.grid_import_kw[0] == pytest.approx(rollout.trace.grid_import_kw[t], abs=1e-12)
        present = context.ev.is_present[0]
        session_energy = session_energy.copy()
        session_energy[0, context.ev.session_index[0][present]] = outcome.ev_energy_kwh[0][present]
        storage_energy = outcome.storage_energy_kwh
        np.testing.assert_allclose(session_energy[0], rollout.trace.session_energy_kwh[t + 1], atol=1e-12)


# --------------------------------------------------------------------------------------------------
# Storage self-discharge over long steps (outside the main strategy's 15/60-min steps)
# --------------------------------------------------------------------------------------------------


def _idle_storage_data(self_discharge_per_h_frac: float, step_min: int) -> dict[str, Any]:
    return {
        "name": "idle-storage",
        "site": {
            "site_id": "s",
            "chargers": [
                {"station_id": "DC1", "kind": "dc", "max_power_kw": 50.0, "connectors": [{"evse_id": 1}]}
            ],
            "grid": {"import_limit_kw": 100.0},
            "storage": {
                "capacity_kwh": 100.0,
                "max_charge_kw": 50.0,
                "max_discharge_kw": 50.0,
                "initial_soc_frac": 0.5,
                "self_discharge_per_h_frac": self_discharge_per_h_frac,
            },
        },
        "time_grid": {"start_utc": START.isoformat(), "step_min": step_min, "n_steps": 2},
        "series": {"import_price_eur_per_kwh": 0.2},
    }


@settings(max_examples=60, deadline=None)
@given(
    self_discharge=_floats(0.0, 0.99),
    step_min=st.sampled_from([15, 60, 240, 720, 1440]),
)
@example(self_discharge=0.1, step_min=720)  # 10 %/h over a 12 h step: linear loss of 120 %
def test_idle_storage_never_goes_negative(self_discharge: float, step_min: int) -> None:
    """An idle storage only self-discharges: its energy decreases but never below zero.

    Every valid ``self_discharge_per_h_frac`` (``< 1``) and step length (up to a day) must keep the
    stored energy non-negative.
    """
    arrays = compile_data(_idle_storage_data(self_discharge, step_min))
    trace = simulate(arrays, lambda context: Setpoints.zeros(1, context.site.n_connectors))
    note(f"storage energy {trace.storage_energy_kwh}")
    assert np.all(trace.storage_energy_kwh >= 0.0), f"negative stored energy {trace.storage_energy_kwh}"
    assert np.all(np.diff(trace.storage_energy_kwh) <= 0.0), (
        f"idle storage gained energy {trace.storage_energy_kwh}"
    )


# --------------------------------------------------------------------------------------------------
# 4. The scorer
# --------------------------------------------------------------------------------------------------


@PROPERTY_SETTINGS
@given(data=scenario_dicts(), seed=SEEDS)
def test_scorer_is_consistent_with_the_trace(data: dict[str, Any], seed: int) -> None:
    """KPIs follow their one definition on any trace.

    ``total = energy + demand + degradation + unmet`` costs; ``energy_cost_eur`` is
    ``sum dt * (import * price - export * export_price)`` recomputed from the trace; unmet energy is
    non-negative; the served share is in [0, 1] (None without sessions); the peak is the largest import.
    """
    arrays = compile_data(data)
    trace = random_rollout(arrays, seed).trace
    kpis = score(arrays, trace)
    parts = (
        kpis.energy_cost_eur + kpis.demand_charge_eur + kpis.degradation_cost_eur + kpis.unmet_energy_cost_eur
    )
    assert kpis.total_cost_eur == pytest.approx(parts, rel=1e-12, abs=1e-9)
    series = arrays.series
    energy_cost = arrays.step_h * np.sum(
        trace.grid_import_kw * series.import_price_eur_per_kwh
        - trace.grid_export_kw * series.export_price_eur_per_kwh
    )
    assert kpis.energy_cost_eur == pytest.approx(energy_cost, rel=1e-9, abs=1e-9)
    assert kpis.unmet_energy_kwh >= 0.0
    assert kpis.unmet_energy_cost_eur == pytest.approx(
        arrays.unmet_energy_penalty_eur_per_kwh * kpis.unmet_energy_kwh
    )
    if arrays.sessions.n_sessions:
        assert kpis.sessions_fully_served_frac is not None
        assert 0.0 <= kpis.sessions_fully_served_frac <= 1.0
    else:
        assert kpis.sessions_fully_served_frac is None
    assert kpis.peak_import_kw == pytest.approx(float(trace.grid_import_kw.max()))
    assert kpis.demand_charge_eur >= 0.0
    assert kpis.degradation_cost_eur >= 0.0
    assert kpis.energy_delivered_kwh >= 0.0
    assert kpis.v2g_discharged_kwh >= 0.0
    assert kpis.limit_violation_kwh >= 0.0
    assert kpis.storage_throughput_kwh >= 0.0
    if kpis.pv_self_consumption_frac is not None:
        assert -1e-9 <= kpis.pv_self_consumption_frac <= 1.0 + 1e-9


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_projection_adjustment_is_finite_for_nonfinite_requests(bad: float) -> None:
    """``projection_adjustment_kwh`` stays a finite, non-negative number when a policy outputs NaN or inf.

    The projection treats non-finite setpoints as 0 (they are applied as 0), so the KPI measuring how far
    it moved the policy must not turn NaN or infinite and poison every mean it enters.
    """
    arrays = compile_data(tiny_data())
    profile = np.zeros((arrays.n_steps, arrays.site.n_connectors))
    profile[0, 0] = bad
    trace = replay(arrays, profile)
    assert np.all(trace.ev_power_kw[0] == 0.0)  # applied as 0
    kpis = score(arrays, trace)
    assert np.isfinite(kpis.projection_adjustment_kwh), (
        f"projection_adjustment_kwh = {kpis.projection_adjustment_kwh}"
    )
    assert kpis.projection_adjustment_kwh >= 0.0


# --------------------------------------------------------------------------------------------------
# 5. The heuristics
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["uncontrolled", "llf"])
@PROPERTY_SETTINGS
@given(data=scenario_dicts())
def test_heuristics_stay_within_grid_limits_when_achievable(name: str, data: dict[str, Any]) -> None:
    """A heuristic (storage idle, no V2G) breaks no grid limit when base load minus PV fits the import limit.

    With no discharge needed, the import limit is achievable at each step exactly when
    ``base_load - pv_available <= import_limit``; the export limit is always achievable (PV curtails).
    """
    arrays = compile_data(data)
    series = arrays.series
    achievable = bool(np.all(series.base_load_kw - series.pv_available_kw <= series.import_limit_kw))
    trace, kpis = run_policy(arrays, make_heuristic(name))
    assert np.all(trace.ev_power_kw >= 0.0)
    assert np.all(trace.storage_power_kw == 0.0)
    assert np.all(trace.export_violation_kw <= TOL_KW)
    if achievable:
        assert kpis.limit_violation_kwh <= TOL_KWH, f"{name}: violation {trace.import_violation_kw}"


@PROPERTY_SETTINGS
@given(data=scenario_dicts())
def test_llf_raw_output_is_already_feasible(data: dict[str, Any]) -> None:
    """Least laxity first allocates within every limit itself: the projection moves it by at most 1e-6 kW."""
    arrays = compile_data(data)
    trace, kpis = run_policy(arrays, make_heuristic("llf"))
    moved_kw = np.abs(trace.requested_ev_power_kw - trace.ev_power_kw)
    assert moved_kw.max(initial=0.0) <= TOL_KW, f"projection moved LLF by {moved_kw}"
    assert np.all(trace.requested_storage_power_kw == trace.storage_power_kw)
    assert kpis.projection_adjustment_kwh <= TOL_KW * arrays.step_h * moved_kw.size + 1e-12
