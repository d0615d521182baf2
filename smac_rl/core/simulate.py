"""Rolling a scenario forward through the projection and the physics, step by step."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from smac_rl.core.arrays import ScenarioArrays
from smac_rl.core.arraytypes import FloatArray
from smac_rl.core.state import Setpoints, StepContext

Decide = Callable[[StepContext], Setpoints]
"""Anything that maps a step's context to setpoints: a policy's ``act``, or a replayed profile."""


@dataclass(frozen=True)
class Trace:
    """One episode of one scenario (``T`` steps, ``C`` connectors, ``S`` sessions).

    Attributes:
        requested_ev_power_kw: Setpoints asked for, before the projection [kW], ``(T, C)``.
        ev_power_kw: Setpoints applied [kW], ``(T, C)``.
        requested_storage_power_kw: Storage setpoint asked for [kW], ``(T,)``.
        storage_power_kw: Storage setpoint applied [kW], ``(T,)``.
        session_energy_kwh: Stored energy of each session at each step boundary [kWh], ``(T + 1, S)``.
        storage_energy_kwh: Stored storage energy at each step boundary [kWh], ``(T + 1,)``.
        grid_import_kw: Grid import [kW], ``(T,)``.
        grid_export_kw: Grid export [kW], ``(T,)``.
        pv_used_kw: PV used after curtailment [kW], ``(T,)``.
        import_violation_kw: Import above the limit [kW], ``(T,)``.
        export_violation_kw: Export above the limit [kW], ``(T,)``.
        energy_cost_eur: Energy cost per step [EUR], ``(T,)``.
    """

    requested_ev_power_kw: FloatArray
    ev_power_kw: FloatArray
    requested_storage_power_kw: FloatArray
    storage_power_kw: FloatArray
    session_energy_kwh: FloatArray
    storage_energy_kwh: FloatArray
    grid_import_kw: FloatArray
    grid_export_kw: FloatArray
    pv_used_kw: FloatArray
    import_violation_kw: FloatArray
    export_violation_kw: FloatArray
    energy_cost_eur: FloatArray


def simulate(arrays: ScenarioArrays, decide: Decide, on_step: Callable[[int], None] | None = None) -> Trace:
    """Run one episode: at every step, decide, project, apply the physics.

    The steps run on :class:`smac_rl.core.batch.EpisodeBatch` with one row, the engine of both envs,
    so a policy sees the same contexts here as in the env.

    Args:
        arrays: The compiled scenario.
        decide: Maps each step's context (batch size 1) to setpoints.
        on_step: Called with each finished step's index (progress reporting).

    Returns:
        The episode's trace.
    """
    from smac_rl.core.batch import EpisodeBatch

    n_steps, n_connectors, n_sessions = arrays.n_steps, arrays.site.n_connectors, arrays.sessions.n_sessions
    batch = EpisodeBatch(1, n_connectors, arrays.step_h)
    batch.load(0, arrays)
    session_energy = np.empty((n_steps + 1, n_sessions))
    session_energy[0] = arrays.sessions.arrival_energy_kwh
    storage_energy = np.empty(n_steps + 1)
    storage_energy[0] = arrays.site.storage_initial_energy_kwh
    columns = {name: np.zeros(n_steps) for name in _STEP_SERIES}
    requested_ev, applied_ev = np.zeros((n_steps, n_connectors)), np.zeros((n_steps, n_connectors))
    for t in range(n_steps):
        result = batch.step(decide(batch.context()))
        requested_ev[t], applied_ev[t] = result.requested.ev_power_kw[0], result.applied.ev_power_kw[0]
        columns["requested_storage_power_kw"][t] = result.requested.storage_power_kw[0]
        columns["storage_power_kw"][t] = result.applied.storage_power_kw[0]
        for name in _OUTCOME_SERIES:
            columns[name][t] = getattr(result.outcome, name)[0]
        session_energy[t + 1] = batch.session_energy_kwh[0, :n_sessions]
        storage_energy[t + 1] = batch.storage_energy_kwh[0]
        if on_step is not None:
            on_step(t)
    return Trace(
        requested_ev_power_kw=requested_ev,
        ev_power_kw=applied_ev,
        session_energy_kwh=session_energy,
        storage_energy_kwh=storage_energy,
        **columns,
    )


def replay(
    arrays: ScenarioArrays, ev_power_kw: FloatArray, storage_power_kw: FloatArray | None = None
) -> Trace:
    """Replay a given profile (e.g. an optimum's) through the projection and the physics.

    Args:
        arrays: The compiled scenario.
        ev_power_kw: Connector setpoints [kW], ``(T, C)``.
        storage_power_kw: Storage setpoints [kW], ``(T,)``; zeros when None.

    Returns:
        The trace; ``requested_*`` hold the profile as given, so the scorer reports how much the
        projection had to change it.
    """
    storage = (
        np.zeros(arrays.n_steps) if storage_power_kw is None else np.asarray(storage_power_kw, dtype=float)
    )
    profile = np.asarray(ev_power_kw, dtype=float)

    def decide(context: StepContext) -> Setpoints:
        t = context.step_index
        return Setpoints(profile[t][None, :].copy(), storage[t : t + 1].copy())

    return simulate(arrays, decide)


_OUTCOME_SERIES = (
    "grid_import_kw",
    "grid_export_kw",
    "pv_used_kw",
    "import_violation_kw",
    "export_violation_kw",
    "energy_cost_eur",
)
_STEP_SERIES = ("requested_storage_power_kw", "storage_power_kw", *_OUTCOME_SERIES)
