"""One path from a site state to rendered profiles, shared by ``/v1/profiles`` and the registry.

A :class:`Planner` checks a scenario for what its format and unit cannot express, rolls the
policy forward through the core's projection and physics, and renders each session's profile.
Least laxity first answers instead of the model when the site has more connectors than the model
has room for, or when the graph fails or gives non-finite setpoints on some step (the whole
rollout is then redone with it); the answer says so in ``fallback_reason`` and the metrics count
it by reason.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

from smac_rl.core.arrays import compile_scenario
from smac_rl.core.profiles import (
    ProfileFormat,
    RateUnit,
    SessionProfile,
    format_problems,
    json_profile,
    ocpi22_charging_profile,
    ocpp16_set_charging_profile,
    ocpp21_set_charging_profile,
    ocpp201_set_charging_profile,
    rounding_margin_kw,
    session_profiles,
    stable_profile_id,
    with_import_margin,
)
from smac_rl.core.scoring import score
from smac_rl.core.simulate import simulate
from smac_rl.core.specs import ScenarioSpec
from smac_rl.core.validation import check_scenario
from smac_rl.policies import LeastLaxityFirst
from smac_rl_serve.errors import problem
from smac_rl_serve.model import InferenceError, OnnxPolicy
from smac_rl_serve.observability import ServiceMetrics

Renderer = Callable[[SessionProfile, RateUnit], dict[str, Any]]

RENDERERS: dict[ProfileFormat, Renderer] = {
    "ocpp16": lambda p, unit: {
        "set_charging_profile": ocpp16_set_charging_profile(p, stable_profile_id(p), unit)
    },
    "ocpp201": lambda p, unit: {
        "set_charging_profile_request": ocpp201_set_charging_profile(p, stable_profile_id(p), unit)
    },
    "ocpp21": lambda p, unit: {
        "set_charging_profile_request": ocpp21_set_charging_profile(p, stable_profile_id(p), unit)
    },
    "ocpi22": lambda p, unit: {"charging_profile": ocpi22_charging_profile(p, unit)},
    "json": lambda p, _unit: json_profile(p),
}
"""The per-session fields of each format (the renderers of :mod:`smac_rl.core.profiles`)."""

CHARGE_ONLY_FORMATS = ("ocpp16", "ocpp201")
"""Formats whose limits cannot be negative: their rollout runs with V2G off."""

ROUNDED_FORMATS = ("ocpp16", "ocpp201", "ocpp21", "ocpi22")
"""Formats whose limits are rounded toward zero (``json`` gives the setpoints in kW as planned)."""


def v2g_withheld_session_ids(spec: ScenarioSpec, profile_format: ProfileFormat) -> list[str]:
    """Sessions that may discharge but are planned charge-only, because the format cannot express discharge.

    OCPP 1.6 and 2.0.1 limits cannot be negative, so their rollout runs with V2G off; a session with
    ``allow_v2g`` at a bidirectional charger is then planned without discharge, and the answer lists
    it (``v2g_withheld_session_ids``) so that the caller knows; ``ocpp21`` and ``json`` carry V2G.
    (OCPI 2.2 refuses such a session with a 422 instead: :func:`smac_rl.core.profiles.format_problems`.)

    Args:
        spec: The request's scenario.
        profile_format: The requested format.

    Returns:
        The session ids, in the scenario's order; empty for the formats that carry or refuse V2G.
    """
    if profile_format not in CHARGE_ONLY_FORMATS:
        return []
    bidirectional = {c.station_id for c in spec.site.chargers if c.is_bidirectional}
    return [s.session_id for s in spec.sessions if s.allow_v2g and s.station_id in bidirectional]


class Planner:
    """Checks, rolls out and renders site states with one loaded policy (safe across threads).

    Attributes:
        policy: The ONNX policy.
        metrics: Where fallbacks and rendered profiles are counted.
    """

    def __init__(self, policy: OnnxPolicy, metrics: ServiceMetrics | None = None) -> None:
        self.policy = policy
        self.metrics = metrics or ServiceMetrics()

    def problems(
        self,
        spec: ScenarioSpec,
        profile_format: ProfileFormat,
        rate_unit: RateUnit,
        scenario_prefix: str = "",
        rate_unit_path: str = "rate_unit",
    ) -> list[dict[str, str]]:
        """What keeps a scenario from being answered in a format and unit.

        Args:
            spec: The scenario.
            profile_format: The requested format.
            rate_unit: The requested unit.
            scenario_prefix: Prefix of the scenario checks' paths (``scenario.``).
            rate_unit_path: Where the request gave the unit (``rate_unit``, ``query.rate_unit``).

        Returns:
            The problems, each ``{field, value, expected}``; empty when the scenario can be answered.
        """
        found = [problem(scenario_prefix + p.path, p.value, p.expectation) for p in check_scenario(spec)]
        found += [
            problem(rate_unit_path if p.path == "rate_unit" else p.path, p.value, p.expectation)
            for p in format_problems(spec, profile_format, rate_unit)
        ]
        return found

    def answer(
        self, spec: ScenarioSpec, profile_format: ProfileFormat, rate_unit: RateUnit
    ) -> dict[str, Any]:
        """Roll the policy out over a checked scenario and render its sessions' profiles.

        Args:
            spec: A scenario without :meth:`problems`.
            profile_format: The format of each profile.
            rate_unit: The unit of the OCPP and OCPI limits.

        Returns:
            ``policy``, ``fallback_reason``, ``v2g_withheld_session_ids``, ``model_onnx_sha256``,
            ``valid_until_utc``, ``kpis`` and ``profiles`` (one entry per session plugged in during
            the horizon).
        """
        withheld = v2g_withheld_session_ids(spec, profile_format)
        if profile_format in CHARGE_ONLY_FORMATS and any(s.allow_v2g for s in spec.sessions):
            self.metrics.v2g_withheld.labels(profile_format).inc(len(withheld))
            spec = spec.model_copy(
                update={"sessions": [s.model_copy(update={"allow_v2g": False}) for s in spec.sessions]}
            )
        arrays = compile_scenario(spec)
        # Planned with room for the discharges that rounding toward zero shrinks, scored as given.
        margin_kw = rounding_margin_kw(arrays, rate_unit) if profile_format in ROUNDED_FORMATS else 0.0
        planned = with_import_margin(arrays, margin_kw)
        fallback = None
        heuristic = LeastLaxityFirst()
        answered_by = self.policy.name
        if arrays.site.n_connectors > self.policy.layout.n_connectors_max:
            self.metrics.fallbacks.labels("too_many_connectors").inc()
            answered_by = heuristic.name
            fallback = (
                f"the site has {arrays.site.n_connectors} connectors, the model room for "
                f"{self.policy.layout.n_connectors_max}: least laxity first answered"
            )
            trace = simulate(planned, heuristic.act)
        else:
            try:
                trace = simulate(planned, self.policy.bound(planned))
            except InferenceError as exc:
                self.metrics.fallbacks.labels(exc.reason).inc()
                answered_by = heuristic.name
                fallback = (
                    f"the model failed on this site state ({exc.reason}: {exc}): least laxity first answered"
                )
                trace = simulate(planned, heuristic.act)
        outlets = [(s.station_id, s.evse_id, s.connector_id, s.transaction_id) for s in spec.sessions]
        render = RENDERERS[profile_format]
        rendered = [
            {
                "session_id": profile.session_id,
                "station_id": profile.station_id,
                "evse_id": profile.evse_id,
                "connector_id": profile.connector_id,
                **render(profile, rate_unit),
            }
            for profile in session_profiles(arrays, trace, outlets)
        ]
        self.metrics.sessions_rendered.labels(profile_format).inc(len(rendered))
        start = spec.time_grid.start_utc.astimezone(dt.UTC)
        events = [t for s in spec.sessions for t in (s.arrival_utc, s.departure_utc) if t > start]
        valid_until = min([start + dt.timedelta(minutes=spec.time_grid.step_min), *events]).astimezone(dt.UTC)
        return {
            "policy": answered_by,
            "fallback_reason": fallback,
            "v2g_withheld_session_ids": withheld,
            "model_onnx_sha256": self.policy.metadata.onnx_sha256,
            "valid_until_utc": valid_until.isoformat(),
            "kpis": score(arrays, trace).as_dict(),
            "profiles": rendered,
        }

    def model_version(self) -> dict[str, Any]:
        """What identifies the loaded model in the decision log (hash, run, commit, template)."""
        meta = self.policy.metadata
        return {
            "onnx_sha256": meta.onnx_sha256,
            "mlflow_run_id": meta.mlflow_run_id,
            "git_sha": meta.git_sha,
            "template": meta.template,
            "n_connectors_max": meta.n_connectors_max,
            "schema_version": meta.schema_version,
        }
