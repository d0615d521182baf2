"""The state the physics, the projection and the policies see at one step, with a leading batch axis.

Shapes: ``B`` batch elements (independent sites or rollouts), ``C`` connectors. Site parameters of
shape ``(C,)`` broadcast against ``(B, C)`` state.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from smac_rl.core.arrays import ScenarioArrays, SiteParams
from smac_rl.core.arraytypes import BoolArray, FloatArray, IntArray


@dataclass(frozen=True)
class EvView:
    """The EV plugged in at each connector, ``(B, C)`` arrays; neutral values where none is.

    Attributes:
        session_index: Session at the connector, -1 when none.
        is_present: An EV is plugged in for the whole step.
        energy_kwh: Stored energy at the step's start [kWh].
        capacity_kwh: Battery capacity [kWh] (1.0 where none, to keep ratios finite).
        target_energy_kwh: Stored energy wanted at departure [kWh].
        floor_energy_kwh: V2G discharge floor [kWh].
        max_charge_kw: Charging limit of EV and connector [kW].
        min_charge_kw: Least non-zero charging power of the session at the connector (the minimum
            current on the phases the EV draws on; 0 on DC, without the option or without an EV) [kW].
        ev_max_power_kw: The EV's own limit, where the CC-CV taper applies [kW].
        max_discharge_kw: Discharging limit [kW].
        charge_efficiency_frac: Charge efficiency.
        discharge_efficiency_frac: Discharge efficiency.
        taper_start_soc_frac: SoC where the CC-CV taper starts (1.0: none).
        n_steps_to_departure: Steps left before the EV leaves, this one included (may run past the horizon).
    """

    session_index: IntArray
    is_present: BoolArray
    energy_kwh: FloatArray
    capacity_kwh: FloatArray
    target_energy_kwh: FloatArray
    floor_energy_kwh: FloatArray
    max_charge_kw: FloatArray
    min_charge_kw: FloatArray
    ev_max_power_kw: FloatArray
    max_discharge_kw: FloatArray
    charge_efficiency_frac: FloatArray
    discharge_efficiency_frac: FloatArray
    taper_start_soc_frac: FloatArray
    n_steps_to_departure: IntArray


@dataclass(frozen=True)
class ExogenousStep:
    """Exogenous values at one step, ``(B,)`` arrays.

    Attributes:
        base_load_kw: Non-EV consumption [kW].
        pv_available_kw: PV power before curtailment [kW].
        import_limit_kw: Import limit [kW].
        export_limit_kw: Export limit [kW].
        import_price_eur_per_kwh: Import price [EUR/kWh].
        export_price_eur_per_kwh: Export price [EUR/kWh].
    """

    base_load_kw: FloatArray
    pv_available_kw: FloatArray
    import_limit_kw: FloatArray
    export_limit_kw: FloatArray
    import_price_eur_per_kwh: FloatArray
    export_price_eur_per_kwh: FloatArray


@dataclass(frozen=True)
class StepContext:
    """Everything known at the start of one step: the site state a policy acts on.

    Attributes:
        site: Static site parameters, one site for every row or one per row.
        ev: The EVs at the connectors.
        exo: Exogenous values of the step.
        storage_energy_kwh: Stored energy of the site storage at the step's start [kWh], ``(B,)``.
        step_h: Step length [h].
        step_index: Index of the step on the time grid (in a batch of episodes, that of every row
            when they are in step, else -1).
        peak_import_kw: Highest import so far in the billing period (episode and billing peak
            carried in) [kW], ``(B,)``.
    """

    site: SiteParams
    ev: EvView
    exo: ExogenousStep
    storage_energy_kwh: FloatArray
    step_h: float
    step_index: int
    peak_import_kw: FloatArray

    @property
    def batch_size(self) -> int:
        """Number of batch elements ``B``."""
        return int(self.storage_energy_kwh.shape[0])

    def memo(self, key: str, compute: Callable[[], tuple[FloatArray, ...]]) -> tuple[FloatArray, ...]:
        """A value derived from this context, computed once (a context never changes).

        The arrays are made read-only, so a caller cannot change what the next one reads.

        Args:
            key: Name of the derived value.
            compute: Computes it.

        Returns:
            The (cached) arrays.
        """
        store: dict[str, tuple[FloatArray, ...]] = self.__dict__.setdefault("_memo", {})
        values = store.get(key)
        if values is None:
            values = compute()
            for value in values:
                value.flags.writeable = False
            store[key] = values
        return values


@dataclass(frozen=True)
class Setpoints:
    """Power setpoints for one step (sign convention of :mod:`smac_rl.core.units`).

    Attributes:
        ev_power_kw: Power at each connector, ``> 0`` charging the EV, ``< 0`` V2G [kW], ``(B, C)``.
        storage_power_kw: Site storage power, ``> 0`` charging [kW], ``(B,)``.
    """

    ev_power_kw: FloatArray
    storage_power_kw: FloatArray

    @staticmethod
    def zeros(batch_size: int, n_connectors: int) -> Setpoints:
        """Idle setpoints for ``batch_size`` sites of ``n_connectors`` connectors."""
        return Setpoints(np.zeros((batch_size, n_connectors)), np.zeros(batch_size))


_ZEROS: dict[tuple[int, ...], FloatArray] = {}
_ZEROS_CACHE_SIZE = 64


def zeros_of(shape: tuple[int, ...]) -> FloatArray:
    """A read-only array of zeros of ``shape``, shared (kept for the shapes last asked).

    ``np.maximum(x, zeros_of(x.shape))`` is ``max(x, 0)`` bit for bit, several times faster than
    against the scalar 0 on large arrays (NumPy's vector loops want two arrays).
    """
    zeros = _ZEROS.get(shape)
    if zeros is None:
        if len(_ZEROS) >= _ZEROS_CACHE_SIZE:
            _ZEROS.pop(next(iter(_ZEROS)))
        zeros = np.zeros(shape)
        zeros.flags.writeable = False
        _ZEROS[shape] = zeros
    return zeros


def is_any(values: npt.ArrayLike) -> bool:
    """``values.any()`` without NumPy's Python-level method wrapper (called several times a step)."""
    return bool(np.logical_or.reduce(values, axis=None))


def is_all(values: npt.ArrayLike) -> bool:
    """``values.all()`` without NumPy's Python-level method wrapper."""
    return bool(np.logical_and.reduce(values, axis=None))


def nonzero_flat(values: npt.NDArray[np.bool_]) -> IntArray:
    """``np.flatnonzero(values)``: flat indices of the true entries, without the Python wrapper."""
    index: IntArray = values.reshape(-1).nonzero()[0]
    return index


def context_at(
    arrays: ScenarioArrays,
    step_index: int,
    session_energy_kwh: FloatArray,
    storage_energy_kwh: FloatArray,
    peak_import_kw: FloatArray | None = None,
) -> StepContext:
    """Gather the step context of a scenario from per-session state.

    Args:
        arrays: The compiled scenario.
        step_index: Step on the grid.
        session_energy_kwh: Stored energy of every session [kWh], ``(B, S)``.
        storage_energy_kwh: Stored energy of the site storage [kWh], ``(B,)``.
        peak_import_kw: Highest import so far [kW], ``(B,)``; None: the billing peak carried in.

    Returns:
        The context of that step, batch size ``B``.
    """
    sessions = arrays.sessions
    index = arrays.connector_session_index[step_index]
    present = index >= 0
    safe = np.where(present, index, 0)
    batch = session_energy_kwh.shape[0]

    def gather(values: FloatArray, neutral: float) -> FloatArray:
        if sessions.n_sessions == 0:
            return np.full((batch, index.shape[0]), neutral)
        return np.broadcast_to(np.where(present, values[safe], neutral), (batch, index.shape[0])).copy()

    energy = (
        np.where(present, session_energy_kwh[:, safe], 0.0)
        if sessions.n_sessions
        else np.zeros((batch, index.shape[0]))
    )
    to_departure = (
        np.where(present, sessions.end_step[safe] - step_index, 0) if sessions.n_sessions else index * 0
    )
    ev = EvView(
        session_index=np.broadcast_to(index, (batch, index.shape[0])).copy(),
        is_present=np.broadcast_to(present, (batch, index.shape[0])).copy(),
        energy_kwh=energy,
        capacity_kwh=gather(sessions.capacity_kwh, 1.0),
        target_energy_kwh=gather(sessions.target_energy_kwh, 0.0),
        floor_energy_kwh=gather(sessions.floor_energy_kwh, 0.0),
        max_charge_kw=gather(sessions.max_charge_kw, 0.0),
        min_charge_kw=gather(sessions.min_charge_kw, 0.0),
        ev_max_power_kw=gather(sessions.ev_max_power_kw, 0.0),
        max_discharge_kw=gather(sessions.max_discharge_kw, 0.0),
        charge_efficiency_frac=gather(sessions.charge_efficiency_frac, 1.0),
        discharge_efficiency_frac=gather(sessions.discharge_efficiency_frac, 1.0),
        taper_start_soc_frac=gather(sessions.taper_start_soc_frac, 1.0),
        n_steps_to_departure=np.broadcast_to(to_departure, (batch, index.shape[0])).astype(np.int64),
    )
    series = arrays.series

    def at(values: FloatArray) -> FloatArray:
        return np.full(batch, values[step_index])

    exo = ExogenousStep(
        base_load_kw=at(series.base_load_kw),
        pv_available_kw=at(series.pv_available_kw),
        import_limit_kw=at(series.import_limit_kw),
        export_limit_kw=at(series.export_limit_kw),
        import_price_eur_per_kwh=at(series.import_price_eur_per_kwh),
        export_price_eur_per_kwh=at(series.export_price_eur_per_kwh),
    )
    peak = np.full(batch, arrays.site.billing_peak_start_kw) if peak_import_kw is None else peak_import_kw
    return StepContext(arrays.site, ev, exo, storage_energy_kwh, arrays.step_h, step_index, peak)
