"""The deadline floor of policies (:func:`smac_rl.core.observation.deadline_floor_kw`), by hand.

A policy that asks nothing (action 0) through a layout with the floor charges each session as late as
its energy stays deliverable: the floor is the whole profile, so every number follows from the
formula ``max_charge_kw * ((1 + margin) * dt - laxity) / dt``, capped by the energy still wanted and
the step's box.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from smac_rl.core.arrays import ScenarioArrays, compile_scenario
from smac_rl.core.observation import ObservationLayout
from smac_rl.core.scenario_io import parse_scenario
from smac_rl.core.scoring import Kpis
from smac_rl.core.simulate import Trace
from smac_rl.core.state import Setpoints, StepContext
from smac_rl.policies import run_policy

START = dt.datetime(2024, 5, 1, tzinfo=dt.UTC)


class _AskNothing:
    """Action 0 on every connector and the storage, through a layout (with or without a floor)."""

    name = "ask_nothing"

    def __init__(self, layout: ObservationLayout) -> None:
        self.layout = layout

    def act(self, context: StepContext) -> Setpoints:
        return self.layout.setpoints(context, np.zeros((context.batch_size, self.layout.action_size)))


def _one_session(
    *,
    n_steps: int,
    depart_h: float,
    wanted_kwh: float,
    charger_kw: float = 20.0,
    efficiency: float = 1.0,
    import_limit_kw: float = 1000.0,
    arrival_soc_frac: float = 0.2,
    v2g_discharge_efficiency: float | None = None,
) -> ScenarioArrays:
    """One DC charger of ``charger_kw``, one session from 00:00 (100 kWh battery, no taper).

    With ``v2g_discharge_efficiency`` the charger is bidirectional and the session may be discharged
    down to 0 % at that efficiency.
    """
    data: dict[str, Any] = {
        "name": "floor",
        "site": {
            "site_id": "floor-site",
            "chargers": [
                {
                    "station_id": "DC1",
                    "kind": "dc",
                    "max_power_kw": charger_kw,
                    "connectors": [{"evse_id": 1}],
                }
            ],
            "grid": {"import_limit_kw": import_limit_kw},
        },
        "time_grid": {"start_utc": "2024-05-01T00:00:00Z", "step_min": 60, "n_steps": n_steps},
        "sessions": [
            {
                "session_id": "S1",
                "station_id": "DC1",
                "evse_id": 1,
                "arrival_utc": START.isoformat(),
                "departure_utc": (START + dt.timedelta(hours=depart_h)).isoformat(),
                "battery_capacity_kwh": 100.0,
                "arrival_soc_frac": arrival_soc_frac,
                "energy_wanted_kwh": wanted_kwh,
                "ev_max_dc_kw": 50.0,
                "taper_start_soc_frac": 1.0,
                "charge_efficiency_frac": efficiency,
            }
        ],
        "series": {"import_price_eur_per_kwh": 0.20},
        "unmet_energy_penalty_eur_per_kwh": 2.0,
    }
    if v2g_discharge_efficiency is not None:
        data["site"]["chargers"][0]["is_bidirectional"] = True
        data["site"]["grid"]["export_limit_kw"] = import_limit_kw
        data["sessions"][0].update(
            allow_v2g=True, v2g_min_soc_frac=0.0, discharge_efficiency_frac=v2g_discharge_efficiency
        )
    return compile_scenario(parse_scenario(data))


def _run(arrays: ScenarioArrays, margin_steps: float | None) -> tuple[Trace, Kpis]:
    return run_policy(arrays, _AskNothing(ObservationLayout(4, margin_steps)))


def test_without_a_floor_asking_nothing_charges_nothing() -> None:
    trace, kpis = _run(_one_session(n_steps=4, depart_h=4.0, wanted_kwh=30.0), None)
    assert np.all(trace.ev_power_kw == 0.0)
    assert kpis.unmet_energy_kwh == pytest.approx(30.0)


def test_the_floor_charges_as_late_as_the_energy_stays_deliverable() -> None:
    # 20 kW charger (EV 50 kW), 30 kWh wanted, 4 one-hour steps, efficiency 1, margin 0.
    # t=0: 4 h left, laxity 4 - 30/20 = 2.5 h, floor 20 * (1 - 2.5) / 1 < 0 -> 0.
    # t=1: 3 h left, laxity 1.5 h -> 0.
    # t=2: 2 h left, laxity 0.5 h -> 20 * (1 - 0.5) = 10 kW; 20 kWh left.
    # t=3: 1 h left, laxity 1 - 20/20 = 0 -> 20 kW (= the 20 kWh wanted per hour); 0 left.
    trace, kpis = _run(_one_session(n_steps=4, depart_h=4.0, wanted_kwh=30.0), 0.0)
    np.testing.assert_allclose(trace.ev_power_kw[:, 0], [0.0, 0.0, 10.0, 20.0], atol=1e-9)
    assert kpis.unmet_energy_kwh == pytest.approx(0.0, abs=1e-9)
    assert kpis.sessions_fully_served_frac == 1.0


def test_a_margin_of_one_step_starts_a_step_earlier_and_stops_at_the_energy_wanted() -> None:
    # Margin 1: the floor is 20 * (2 - laxity), at most the energy wanted per hour.
    # t=0: laxity 2.5 -> 20 * (2 - 2.5) < 0 -> 0.
    # t=1: laxity 1.5 -> 10 kW; 20 kWh left.
    # t=2: 2 h left, laxity 2 - 20/20 = 1 -> 20 * (2 - 1) = 20 kW; 0 left.
    # t=3: nothing wanted: laxity 1 would ask 20 kW, the energy-wanted cap makes it 0.
    trace, kpis = _run(_one_session(n_steps=4, depart_h=4.0, wanted_kwh=30.0), 1.0)
    np.testing.assert_allclose(trace.ev_power_kw[:, 0], [0.0, 10.0, 20.0, 0.0], atol=1e-9)
    assert kpis.unmet_energy_kwh == pytest.approx(0.0, abs=1e-9)


def test_the_floor_counts_the_charge_efficiency() -> None:
    # 10 kW charger, efficiency 0.8 (8 kWh stored per hour at full power), 16 kWh wanted in 4 hours.
    # t=0: laxity 4 - 16/8 = 2 -> 0.  t=1: laxity 1 -> 10 * (1 - 1) = 0.
    # t=2: laxity 2 - 16/8 = 0 -> 10 kW (8 kWh stored, 8 left).  t=3: laxity 1 - 8/8 = 0 -> 10 kW.
    arrays = _one_session(n_steps=4, depart_h=4.0, wanted_kwh=16.0, charger_kw=10.0, efficiency=0.8)
    trace, kpis = _run(arrays, 0.0)
    np.testing.assert_allclose(trace.ev_power_kw[:, 0], [0.0, 0.0, 10.0, 10.0], atol=1e-9)
    assert kpis.unmet_energy_kwh == pytest.approx(0.0, abs=1e-9)


def test_a_request_that_cannot_be_met_is_charged_at_full_power_from_the_start() -> None:
    # 50 kWh wanted in 2 hours at 20 kW: laxity 2 - 2.5 = -0.5 -> 20 * 1.5 = 30, capped by the box
    # (20 kW) both steps; 10 kWh stay unmet, as for the optimum.
    trace, kpis = _run(_one_session(n_steps=2, depart_h=2.0, wanted_kwh=50.0), 0.0)
    np.testing.assert_allclose(trace.ev_power_kw[:, 0], [20.0, 20.0], atol=1e-9)
    assert kpis.unmet_energy_kwh == pytest.approx(10.0)


def test_the_projection_still_applies_after_the_floor() -> None:
    # Import limit 12 kW: the t=3 floor of 20 kW is projected to 12 kW; the session ends 8 kWh short.
    arrays = _one_session(n_steps=4, depart_h=4.0, wanted_kwh=30.0, import_limit_kw=12.0)
    trace, kpis = _run(arrays, 0.0)
    assert trace.ev_power_kw[:, 0].max() <= 12.0 + 1e-9
    assert kpis.limit_violation_kwh == pytest.approx(0.0, abs=1e-9)


@given(
    n_steps=st.integers(1, 8),
    depart_steps=st.integers(1, 8),
    feasible_frac=st.floats(0.0, 1.0),
    charger_kw=st.floats(1.0, 50.0),  # the EV accepts 50 kW
    efficiency=st.floats(0.7, 1.0),
    margin_steps=st.sampled_from([0.0, 0.5, 1.0, 3.0]),
)
def test_a_feasible_session_is_always_served_and_never_overcharged(
    n_steps: int,
    depart_steps: int,
    feasible_frac: float,
    charger_kw: float,
    efficiency: float,
    margin_steps: float,
) -> None:
    # No site limit and no taper: whatever the margin, asking nothing above the floor delivers
    # exactly what was wanted when it could be delivered at full power, and not a kWh more.
    depart_steps = min(depart_steps, n_steps)
    wanted_kwh = feasible_frac * min(charger_kw * efficiency * depart_steps, 80.0)
    arrays = _one_session(
        n_steps=n_steps,
        depart_h=float(depart_steps),
        wanted_kwh=wanted_kwh,
        charger_kw=charger_kw,
        efficiency=efficiency,
    )
    trace, kpis = _run(arrays, margin_steps)
    assert kpis.unmet_energy_kwh == pytest.approx(0.0, abs=1e-6)
    stored_kwh = float(trace.ev_power_kw[:, 0].sum()) * efficiency
    assert stored_kwh == pytest.approx(wanted_kwh, abs=1e-6)


class _AskFullDischarge:
    """Action -1 (discharge as much as the box allows) on every connector, through a layout."""

    name = "ask_full_discharge"

    def __init__(self, layout: ObservationLayout) -> None:
        self.layout = layout

    def act(self, context: StepContext) -> Setpoints:
        return self.layout.setpoints(context, -np.ones((context.batch_size, self.layout.action_size)))


def _v2g_session(*, wanted_kwh: float, discharge_efficiency: float, n_steps: int = 4) -> ScenarioArrays:
    """A bidirectional 20 kW DC charger; 100 kWh at 50 %, V2G allowed down to 0 %, leaves at the end."""
    return _one_session(
        n_steps=n_steps,
        depart_h=float(n_steps),
        wanted_kwh=wanted_kwh,
        arrival_soc_frac=0.5,
        v2g_discharge_efficiency=discharge_efficiency,
    )


def test_a_session_with_time_to_spare_may_discharge_as_much_as_it_can_win_back() -> None:
    # 10 kWh wanted in 4 h at 20 kW, margin 0; the policy asks full discharge every step.
    # t=0: laxity 4 - 10/20 = 3.5 -> f = 20 * (1 - 3.5) = -50 kW: the box (-20 kW) binds; 30 kWh wanted.
    # t=1: laxity 3 - 30/20 = 1.5 -> f = -10 kW: the floor binds (the box allows -20); 40 kWh wanted.
    # t=2: laxity 2 - 40/20 = 0 -> 20 kW.  t=3: laxity 1 - 20/20 = 0 -> 20 kW; the 10 kWh are there.
    arrays = _v2g_session(wanted_kwh=10.0, discharge_efficiency=1.0)
    trace, kpis = run_policy(arrays, _AskFullDischarge(ObservationLayout(4, 0.0)))
    np.testing.assert_allclose(trace.ev_power_kw[:, 0], [-20.0, -10.0, 20.0, 20.0], atol=1e-9)
    assert kpis.unmet_energy_kwh == pytest.approx(0.0, abs=1e-9)
    assert kpis.sessions_fully_served_frac == 1.0
    # Without the floor the same actions discharge every step and leave the session short.
    _, plain = run_policy(arrays, _AskFullDischarge(ObservationLayout(4, None)))
    assert plain.unmet_energy_kwh > 10.0


def test_the_discharge_floor_counts_the_discharge_efficiency() -> None:
    # Discharge efficiency 0.5: -20 kW at the connector takes 40 kWh from the battery.
    # t=0: f = -50 -> floor -50 * 0.5 = -25 kW, the box (-20) binds; 10 + 40 = 50 kWh wanted.
    # t=1: laxity 3 - 50/20 = 0.5 -> f = +10 kW: it must charge.  t=2, t=3: laxity 0 -> 20 kW.
    arrays = _v2g_session(wanted_kwh=10.0, discharge_efficiency=0.5)
    trace, kpis = run_policy(arrays, _AskFullDischarge(ObservationLayout(4, 0.0)))
    np.testing.assert_allclose(trace.ev_power_kw[:, 0], [-20.0, 10.0, 20.0, 20.0], atol=1e-9)
    assert kpis.unmet_energy_kwh == pytest.approx(0.0, abs=1e-9)


def test_a_session_that_may_not_discharge_is_never_discharged() -> None:
    # The same session on a charge-only charger: its box's lower bound is 0, so is the floor's.
    arrays = _one_session(n_steps=4, depart_h=4.0, wanted_kwh=10.0)
    trace, _ = run_policy(arrays, _AskFullDischarge(ObservationLayout(4, 0.0)))
    assert trace.ev_power_kw[:, 0].min() >= 0.0


@given(
    wanted_frac=st.floats(0.0, 1.0),
    n_steps=st.integers(1, 8),
    discharge_efficiency=st.floats(0.5, 1.0),
    margin_steps=st.sampled_from([0.0, 0.5, 1.0, 3.0]),
)
def test_full_discharge_above_the_floor_still_serves_a_feasible_session(
    wanted_frac: float, n_steps: int, discharge_efficiency: float, margin_steps: float
) -> None:
    # The worst a V2G policy can ask (discharge at every step) still ends with the energy wanted.
    wanted_kwh = wanted_frac * min(20.0 * n_steps, 50.0)
    arrays = _v2g_session(wanted_kwh=wanted_kwh, discharge_efficiency=discharge_efficiency, n_steps=n_steps)
    _, kpis = run_policy(arrays, _AskFullDischarge(ObservationLayout(4, margin_steps)))
    assert kpis.unmet_energy_kwh == pytest.approx(0.0, abs=1e-6)
