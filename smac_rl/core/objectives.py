"""The named use-case objectives: one weighted sum of the scorer's KPIs each.

Every objective is ``objective_eur = sum_k w_k * term_k`` over the terms below, with the weights of
the table (``p``, ``v`` and ``q`` from the scenario's ``objective`` block). The scorer reports it as
``objective_eur``, the env's rewards sum to minus it, and the optimum minimises it (plus its
penalised limit slack). Unmet energy is always priced in.

======================  ======  ======  ======  ======  ====  ====  ====
objective               energy  demand  degrad  unmet   peak  viol  dev
======================  ======  ======  ======  ======  ====  ====  ====
``cost``                1       1       1       1       0     0     0
``peak``                0       0       1       1       p     0     0
``load_balancing``      0       0       1       1       0     v     0
``setpoint_tracking``   0       0       1       1       0     0     q
``v2g_profit``          1       0       1       1       0     0     0
======================  ======  ======  ======  ======  ====  ====  ====

Terms (KPIs of :mod:`smac_rl.core.scoring`): ``energy_cost_eur``, ``demand_charge_eur``,
``degradation_cost_eur``, ``unmet_energy_cost_eur``, ``peak_import_kw`` [kW] priced at
``p = peak_penalty_eur_per_kw``, ``limit_violation_kwh`` priced at
``v = violation_penalty_eur_per_kwh``, ``setpoint_deviation_kwh`` (``sum_t dt * |import - export -
setpoint|``) priced at ``q = tracking_penalty_eur_per_kwh``.

* ``cost``: what the site pays (the default; ``objective_eur == total_cost_eur``).
* ``peak``: capacity reduction, the episode's highest import.
* ``load_balancing``: serve every session under a (dynamic) grid limit.
* ``setpoint_tracking``: follow a flexibility signal (``series.grid_setpoint_kw``).
* ``v2g_profit``: energy arbitrage with V2G and storage, demand charges aside.
"""

from __future__ import annotations

from dataclasses import dataclass

from smac_rl.core.specs import ObjectiveSpec

OBJECTIVE_TERMS = (
    "energy_cost_eur",
    "demand_charge_eur",
    "degradation_cost_eur",
    "unmet_energy_cost_eur",
    "peak_import_kw",
    "limit_violation_kwh",
    "setpoint_deviation_kwh",
)
"""The KPIs an objective weighs, in the order of :meth:`ObjectiveWeights.as_tuple`."""


@dataclass(frozen=True)
class ObjectiveWeights:
    """Weights of the objective's terms (module docstring).

    Attributes:
        name: The objective's name.
        energy_weight_frac: Weight of ``energy_cost_eur``.
        demand_charge_weight_frac: Weight of ``demand_charge_eur``.
        degradation_weight_frac: Weight of ``degradation_cost_eur``.
        unmet_weight_frac: Weight of ``unmet_energy_cost_eur`` (always 1).
        peak_eur_per_kw: Price of ``peak_import_kw`` [EUR/kW].
        violation_eur_per_kwh: Price of ``limit_violation_kwh`` [EUR/kWh].
        tracking_eur_per_kwh: Price of ``setpoint_deviation_kwh`` [EUR/kWh].
    """

    name: str
    energy_weight_frac: float
    demand_charge_weight_frac: float
    degradation_weight_frac: float
    unmet_weight_frac: float
    peak_eur_per_kw: float
    violation_eur_per_kwh: float
    tracking_eur_per_kwh: float

    def as_tuple(self) -> tuple[float, ...]:
        """The weights in :data:`OBJECTIVE_TERMS` order."""
        return (
            self.energy_weight_frac,
            self.demand_charge_weight_frac,
            self.degradation_weight_frac,
            self.unmet_weight_frac,
            self.peak_eur_per_kw,
            self.violation_eur_per_kwh,
            self.tracking_eur_per_kwh,
        )


def objective_weights(spec: ObjectiveSpec) -> ObjectiveWeights:
    """The weights of a scenario's objective (table in the module docstring)."""
    name = spec.name
    return ObjectiveWeights(
        name=name,
        energy_weight_frac=1.0 if name in {"cost", "v2g_profit"} else 0.0,
        demand_charge_weight_frac=1.0 if name == "cost" else 0.0,
        degradation_weight_frac=1.0,
        unmet_weight_frac=1.0,
        peak_eur_per_kw=spec.peak_penalty_eur_per_kw if name == "peak" else 0.0,
        violation_eur_per_kwh=spec.violation_penalty_eur_per_kwh if name == "load_balancing" else 0.0,
        tracking_eur_per_kwh=spec.tracking_penalty_eur_per_kwh if name == "setpoint_tracking" else 0.0,
    )
