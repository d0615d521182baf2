"""Request and response bodies of the registry (``/v1/sites/...``) and of ``/v1/profiles``.

A session is started with the core's :class:`~smac_rl.core.specs.SessionSpec` as it stands (the
driver's and the charge point's inputs); everything else is defined here. Numeric names carry
unit suffixes as in the core.
"""

from __future__ import annotations

from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator

from smac_rl.core.profiles import ProfileFormat, RateUnit
from smac_rl.core.specs import ObjectiveSpec, ScenarioSpec, SiteSpec

ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}$"
"""Site, session, tenant ids: 1 to 128 letters, digits and ``. _ : @ -``, starting alphanumeric."""

FORMAT_DESCRIPTION = """The answer's format, per session:

* `ocpp16`: `set_charging_profile`, an OCPP 1.6 `SetChargingProfile.req` (TxProfile, Absolute;
  `connectorId` = the session's `evse_id`; the sessions' `transaction_id` must be integers). Charge
  only: the rollout runs without V2G, and the sessions that could have discharged (`allow_v2g` at a
  bidirectional charger) are listed in the answer's `v2g_withheld_session_ids`.
* `ocpp201` (default): `set_charging_profile_request`, an OCPP 2.0.1 `SetChargingProfileRequest`
  (TxProfile, Absolute). Charge only, as `ocpp16` (`v2g_withheld_session_ids`).
* `ocpp21`: `set_charging_profile_request`, an OCPP 2.1 `SetChargingProfileRequest` with V2G: a
  discharging period has `operationMode` `CentralSetpoint`, a negative `setpoint` and
  `dischargeLimit`, and `limit` 0; other periods are plain limits.
* `ocpi22`: `charging_profile`, an OCPI 2.2 `ChargingProfile` (`start_date_time`,
  `charging_rate_unit`, `charging_profile_period`). OCPI has no discharge: a session that may
  discharge (`allow_v2g` at a bidirectional charger) gets a 422.
* `json`: `start_utc` and `periods` (`start_offset_s`, `power_kw`; negative discharges), V2G allowed.

Every OCPP format needs each session's `transaction_id` (a TxProfile names its transaction).
Limits are rounded toward zero (whole W, or 0.1 A) and consecutive equal periods merged."""

RATE_UNIT_DESCRIPTION = """Unit of the limits in the OCPP and OCPI formats: `W` (total power, whole
watts) or `A` (current per phase in steps of 0.1 A = W / (phases x the charger's `voltage_v`); AC
only: a session at a DC charger gets a 422, since its current depends on the battery voltage).
The `json` format answers in kW and accepts only `W`."""


class ServeModel(BaseModel):
    """Base of the service's own bodies: unknown keys rejected, no NaN or infinity, immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class ProfileRequest(ServeModel):
    """A request for charging profiles of every session on a site.

    Attributes:
        scenario: The site state: site, active sessions (``arrival_soc_frac`` = SoC now), a time
            grid starting now (the horizon), and price and limit signals.
        format: ``ocpp16``, ``ocpp201``, ``ocpp21``, ``ocpi22`` or ``json`` (see
            :data:`FORMAT_DESCRIPTION`).
        rate_unit: ``W`` or ``A`` for the OCPP and OCPI limits (see :data:`RATE_UNIT_DESCRIPTION`).
    """

    model_config = ConfigDict(extra="forbid")

    scenario: ScenarioSpec = Field(
        description="The site state: the scenario format with the active sessions (arrival_soc_frac = "
        "SoC now) and a time grid starting now (the horizon)."
    )
    format: ProfileFormat = Field(default="ocpp201", description=FORMAT_DESCRIPTION)
    rate_unit: RateUnit = Field(default="W", description=RATE_UNIT_DESCRIPTION)


class SiteSeries(ServeModel):
    """The site's exogenous inputs, held constant over every horizon.

    Time-varying import prices come from ``site.tariff.time_of_use`` blocks; time-varying grid
    limits from the capacity signals (``POST /v1/sites/{site_id}/capacity``).

    Attributes:
        import_price_eur_per_kwh: Energy import price [EUR/kWh]; give this or
            ``site.tariff.time_of_use``, exactly one of the two.
        export_price_eur_per_kwh: Price paid for exported energy [EUR/kWh].
        base_load_kw: Non-EV site consumption [kW].
        pv_available_kw: PV power available [kW]; required when ``site.pv`` is set.
        grid_setpoint_kw: Flexibility setpoint, import positive [kW]; required by the
            ``setpoint_tracking`` objective.
    """

    import_price_eur_per_kwh: float | None = None
    export_price_eur_per_kwh: float = 0.0
    base_load_kw: float = Field(default=0.0, ge=0)
    pv_available_kw: float | None = Field(default=None, ge=0)
    grid_setpoint_kw: float | None = None


class HorizonSpec(ServeModel):
    """The time grid of every rollout of a site; it starts at the current period.

    Attributes:
        step_min: Step length [min]; divides a day.
        n_steps: Number of steps (96 of 15 min: a day).
    """

    step_min: int = Field(default=15, gt=0, le=1440)
    n_steps: int = Field(default=96, ge=1)


class SiteConfig(ServeModel):
    """``PUT /v1/sites/{site_id}``: a CPO's site, checked with the core's checks.

    Attributes:
        tenant_id: The CPO that owns the site; needed only when the API key acts for several.
        site: The site (chargers, storage, PV, grid connection, tariff); ``site.site_id`` must be
            the path's site id.
        time_grid: Step and length of the rollout horizon.
        series: Prices, base load and PV, constant over the horizon.
        objective: The use case the policy serves.
        unmet_energy_penalty_eur_per_kwh: Price of each kWh wanted but not delivered [EUR/kWh].
        format: Format of the profiles in the events' answers (a query parameter may override it).
        rate_unit: Unit of their limits.
    """

    tenant_id: str | None = Field(default=None, pattern=ID_PATTERN)
    site: SiteSpec
    time_grid: HorizonSpec = HorizonSpec()
    series: SiteSeries = SiteSeries()
    objective: ObjectiveSpec = ObjectiveSpec()
    unmet_energy_penalty_eur_per_kwh: float = Field(default=2.0, ge=0)
    format: ProfileFormat = Field(default="ocpp201", description=FORMAT_DESCRIPTION)
    rate_unit: RateUnit = Field(default="W", description=RATE_UNIT_DESCRIPTION)


class MeterValues(ServeModel):
    """``POST .../meter_values``: a state of charge or an energy reading of a session.

    Attributes:
        measured_at_utc: When it was measured (timezone-aware).
        soc_frac: State of charge [0..1], if the EV reports it.
        energy_delivered_kwh: Energy delivered in the session so far, at the connector [kWh];
            used for the state of charge when ``soc_frac`` is absent.
    """

    measured_at_utc: AwareDatetime
    soc_frac: float | None = Field(default=None, ge=0, le=1)
    energy_delivered_kwh: float | None = Field(default=None, ge=0, le=100_000)


class SessionEnd(ServeModel):
    """``POST .../end``: the session is over (EV unplugged, transaction stopped).

    Attributes:
        ended_at_utc: When it ended; None: now.
        energy_delivered_kwh: Final meter reading of the session [kWh], if known.
    """

    ended_at_utc: AwareDatetime | None = None
    energy_delivered_kwh: float | None = Field(default=None, ge=0, le=100_000)


class PlanAnswer(BaseModel):
    """The profiles of a site state (also the body of ``POST /v1/profiles``).

    Attributes:
        policy: What answered: ``onnx``, or ``least_laxity_first`` beyond the model's connectors.
        fallback_reason: Why the heuristic answered, if it did.
        v2g_withheld_session_ids: Sessions that may discharge (``allow_v2g`` at a bidirectional
            charger) planned charge-only because the format cannot express discharge (``ocpp16``,
            ``ocpp201``); empty otherwise. Ask for ``ocpp21`` to use their V2G.
        model_onnx_sha256: The loaded model's ONNX hash.
        valid_until_utc: Re-request by then (next period, arrival or departure).
        kpis: The rollout's KPIs; null where a KPI is undefined (no sessions, no PV, no setpoint).
        profiles: One entry per session plugged in during the horizon, in the requested format.
    """

    policy: str
    fallback_reason: str | None
    v2g_withheld_session_ids: list[str] = Field(
        default_factory=list,
        description="Sessions that may discharge planned charge-only: the format (ocpp16, ocpp201) "
        "cannot express discharge. Ask for ocpp21 to use their V2G.",
    )
    model_onnx_sha256: str
    valid_until_utc: str
    kpis: dict[str, float | None]
    profiles: list[dict[str, Any]]


class EventAnswer(PlanAnswer):
    """An event's answer: the updated profiles of every active session of the site.

    The sessions of a site share its grid connection, so any event re-plans all of them.

    Attributes:
        site_id: The site.
        event: ``site``, ``session_start``, ``meter_values``, ``session_end``, ``capacity`` or ``query``.
        session_id: The session the event was about, if any.
        decision_id: Its entry in the site's decision log.
        site_version: Number of state changes of the site so far.
        format: Format of ``profiles``.
        rate_unit: Unit of their limits.
    """

    site_id: str
    event: str
    session_id: str | None
    decision_id: int
    site_version: int
    format: ProfileFormat
    rate_unit: RateUnit


class SessionState(BaseModel):
    """A session as the registry holds it.

    Attributes:
        session_id: Session.
        site_id: Its site.
        is_active: Not ended yet.
        spec: The inputs it was started with.
        soc_frac: State of charge last reported or derived [0..1].
        energy_delivered_kwh: Last energy reading [kWh], if any.
        measured_at_utc: When ``soc_frac`` was measured (the arrival when nothing was reported).
        ended_at_utc: When it ended, if it did.
    """

    session_id: str
    site_id: str
    is_active: bool
    spec: dict[str, Any]
    soc_frac: float
    energy_delivered_kwh: float | None
    measured_at_utc: str
    ended_at_utc: str | None


class CapacityBlockState(BaseModel):
    """A stored capacity limit.

    Attributes:
        direction: ``import`` or ``export``.
        start_utc: Start of the block.
        end_utc: End of the block.
        limit_kw: The limit [kW].
        source: ``oscp`` or ``openadr``.
        signal_version: The site version that stored it (a later signal wins where they overlap).
    """

    direction: str
    start_utc: str
    end_utc: str
    limit_kw: float
    source: str
    signal_version: int


class SiteState(BaseModel):
    """``GET /v1/sites/{site_id}``: configuration, active sessions and capacity limits to come.

    Attributes:
        site_id: The site.
        tenant_id: Its owner.
        site_version: Number of state changes so far.
        config: The configuration last put.
        sessions: Active sessions.
        capacity_blocks: Capacity limits not yet over.
    """

    site_id: str
    tenant_id: str
    site_version: int
    config: dict[str, Any]
    sessions: list[SessionState]
    capacity_blocks: list[CapacityBlockState]


class DecisionEntry(BaseModel):
    """One answer of the service about a site, with what it was computed from.

    Replay: ``POST /v1/profiles`` with ``{scenario, format, rate_unit}`` of an entry and the same
    model gives the same profiles.

    Attributes:
        decision_id: Increasing id.
        created_at_utc: When it was answered.
        event: The event kind (see :class:`EventAnswer`).
        session_id: The session the event was about, if any.
        idempotency_key: The event's key.
        site_version: The site's version after the event.
        request: The event's body.
        scenario: The scenario rolled out (the inputs).
        format: Format of the answer.
        rate_unit: Unit of its limits.
        model: The model: ONNX hash, MLflow run, git commit, template.
        answer: The answer sent (the outputs).
    """

    decision_id: int
    created_at_utc: str
    event: str
    session_id: str | None
    idempotency_key: str | None
    site_version: int
    request: Any
    scenario: dict[str, Any]
    format: ProfileFormat
    rate_unit: RateUnit
    model: dict[str, Any]
    answer: dict[str, Any]


class DecisionPage(BaseModel):
    """A page of the decision log, newest first.

    Attributes:
        items: The entries.
        next_before_id: Pass as ``before_id`` for the next page; None on the last page.
    """

    items: list[DecisionEntry]
    next_before_id: int | None


PRICE_ABS_MAX_EUR_PER_KWH = 10.0
"""Largest absolute price accepted [EUR/kWh] (day-ahead prices have stayed within about 1; a value
in EUR/MWh by mistake is refused)."""

N_PRICES_MAX = 24 * 366 * 2
"""Most price hours accepted in one forecast request (two years)."""


class HourlyPrice(ServeModel):
    """One hour's day-ahead price.

    Attributes:
        start_utc: Start of the hour (timezone-aware, on the hour).
        price_eur_per_kwh: The price [EUR/kWh] (EUR/MWh divided by 1000), finite.
    """

    start_utc: AwareDatetime
    price_eur_per_kwh: float = Field(ge=-PRICE_ABS_MAX_EUR_PER_KWH, le=PRICE_ABS_MAX_EUR_PER_KWH)


class PriceForecastRequest(ServeModel):
    """``POST /v1/forecasts/prices``: quantile forecasts of the hours from ``origin_utc`` on.

    Attributes:
        origin_utc: When the forecast is made: the first hour forecast (timezone-aware, on the hour).
        prices: Hourly prices, ascending without gaps, up to the hour before ``origin_utc`` and at
            least 28 days (672 hours) of them; hours from the origin on are ignored.
        horizon_h: Hours forecast [h], 1 to 48.
    """

    origin_utc: AwareDatetime
    prices: list[HourlyPrice] = Field(max_length=N_PRICES_MAX)
    horizon_h: int = Field(default=48, ge=1, le=48)


class PriceForecastHour(BaseModel):
    """The forecast of one hour.

    Attributes:
        start_utc: Start of the hour (UTC).
        lead_h: Hours after the origin [h].
        price_q10_eur_per_kwh: 10 % quantile [EUR/kWh].
        price_q50_eur_per_kwh: Median [EUR/kWh].
        price_q90_eur_per_kwh: 90 % quantile [EUR/kWh].
    """

    start_utc: str
    lead_h: float
    price_q10_eur_per_kwh: float
    price_q50_eur_per_kwh: float
    price_q90_eur_per_kwh: float


class PriceForecastAnswer(BaseModel):
    """Quantile price forecasts and the model that made them.

    Attributes:
        forecaster: ``name`` and ``version`` of the forecaster.
        onnx_sha256: Hash of each graph (``q10``, ``q50``, ``q90``).
        origin_utc: The origin (UTC).
        n_history_h: Hours of prices before the origin that the forecast read [h].
        forecasts: One entry per hour, ``horizon_h`` of them.
    """

    forecaster: dict[str, str]
    onnx_sha256: dict[str, str]
    origin_utc: str
    n_history_h: int
    forecasts: list[PriceForecastHour]


N_SESSION_ARRIVALS_MAX = 96
"""Most arrivals forecast in one ``POST /v1/forecasts/sessions`` request."""

N_SESSION_HISTORY_MAX = 10_000
"""Most past sessions accepted in one session-needs request (28 days of a site with 350 a day)."""

SESSION_ENERGY_MAX_KWH = 1000.0
"""Largest energy of one past session accepted [kWh] (an EV battery holds at most about 200)."""


class EndedSession(ServeModel):
    """One past session of the site, as the forecaster reads it.

    Attributes:
        arrival_utc: When the EV plugged in (timezone-aware).
        departure_utc: When it left (timezone-aware), after the arrival and at most 31 days later.
        energy_kwh: Energy the session took [kWh].
    """

    arrival_utc: AwareDatetime
    departure_utc: AwareDatetime
    energy_kwh: float = Field(ge=0.0, le=SESSION_ENERGY_MAX_KWH)


class SessionForecastRequest(ServeModel):
    """``POST /v1/forecasts/sessions``: the energy and dwell time expected of sessions arriving.

    Attributes:
        timezone: The site's IANA time zone (the calendar features' local time); default: the
            forecaster's (``America/Los_Angeles`` for ``caltech_session_needs``). The public
            holidays stay the forecaster's.
        arrivals_utc: Arrival instants to forecast (timezone-aware), 1 to 96.
        history: The site's past sessions; for each arrival only those that ended before it are
            read. Each arrival needs 28 days of them and at least 10 in its last 28 days.
    """

    timezone: str | None = Field(default=None, max_length=64)
    arrivals_utc: list[AwareDatetime] = Field(min_length=1, max_length=N_SESSION_ARRIVALS_MAX)
    history: list[EndedSession] = Field(max_length=N_SESSION_HISTORY_MAX)

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str | None) -> str | None:
        if value is None:
            return value
        try:
            ZoneInfo(value)
        # OSError: a folder of the zone database ("Europe") or a name too long for a file name.
        except (ZoneInfoNotFoundError, ValueError, OSError) as exc:
            raise ValueError(f"an IANA time zone name such as 'America/Los_Angeles', not {value!r}") from exc
        return value


class SessionNeedsEntry(BaseModel):
    """The forecast of one arrival.

    Attributes:
        arrival_utc: The arrival (UTC).
        n_sessions_28d: Ended sessions of the history in its last 28 days.
        energy_q10_kwh: 10 % quantile of the energy the session takes [kWh].
        energy_q50_kwh: Median [kWh].
        energy_q90_kwh: 90 % quantile [kWh].
        dwell_q10_min: 10 % quantile of its dwell time [min].
        dwell_q50_min: Median [min].
        dwell_q90_min: 90 % quantile [min].
    """

    arrival_utc: str
    n_sessions_28d: int
    energy_q10_kwh: float
    energy_q50_kwh: float
    energy_q90_kwh: float
    dwell_q10_min: float
    dwell_q50_min: float
    dwell_q90_min: float


class SessionForecastAnswer(BaseModel):
    """Session-needs forecasts and the model that made them.

    Attributes:
        forecaster: ``name`` and ``version`` of the forecaster.
        onnx_sha256: Hash of each graph (``q10_energy_kwh`` .. ``q90_dwell_min``).
        timezone: Time zone of the calendar features.
        n_history_sessions: Past sessions received.
        forecasts: One entry per arrival, in the request's order.
    """

    forecaster: dict[str, str]
    onnx_sha256: dict[str, str]
    timezone: str
    n_history_sessions: int
    forecasts: list[SessionNeedsEntry]


N_ARRIVAL_STEPS_MAX = 96 * 366
"""Most steps of arrival counts accepted in one forecast request (a year of 15-minute steps)."""

N_ARRIVALS_PER_STEP_MAX = 10_000
"""Largest count of arrivals in one step accepted (a site's sessions starting in one step)."""


class ArrivalCount(ServeModel):
    """The sessions that arrived in one step of the site's history.

    Attributes:
        start_utc: Start of the step (timezone-aware, on a step start: minutes 0, 15, 30 or 45
            in UTC for ``caltech_arrivals``).
        n_arrivals: Sessions that plugged in during the step (0 included).
    """

    start_utc: AwareDatetime
    n_arrivals: int = Field(ge=0, le=N_ARRIVALS_PER_STEP_MAX)


class ArrivalsForecastRequest(ServeModel):
    """``POST /v1/forecasts/arrivals``: expected arrivals per step from ``origin_utc`` on.

    Attributes:
        origin_utc: When the forecast is made: the start of the first step forecast
            (timezone-aware, on a step start).
        history: Arrival counts per step, ascending without gaps, up to the step before
            ``origin_utc`` and at least 28 days of them (2688 steps of 15 min); steps from the
            origin on are ignored.
        horizon_h: Hours forecast [h], 1 to 48 (and at most the forecaster's horizon).
    """

    origin_utc: AwareDatetime
    history: list[ArrivalCount] = Field(max_length=N_ARRIVAL_STEPS_MAX)
    horizon_h: int = Field(default=48, ge=1, le=48)


class ArrivalsForecastStep(BaseModel):
    """The forecast of one step.

    Attributes:
        start_utc: Start of the step (UTC).
        lead_h: Time from the origin to the step's start [h].
        n_arrivals_mean: Expected number of sessions arriving in the step: the mean of the
            forecaster's Poisson distribution (not a whole number, and not a quantile).
    """

    start_utc: str
    lead_h: float
    n_arrivals_mean: float


class ArrivalsForecastAnswer(BaseModel):
    """Expected arrivals per step and the model that made them.

    Attributes:
        forecaster: ``name`` and ``version`` of the forecaster.
        onnx_sha256: Hash of its graph (``mean``).
        origin_utc: The origin (UTC).
        step_min: Step length of the forecasts [min].
        n_history_steps: Steps of counts before the origin that the forecast read.
        forecasts: One entry per step, ``horizon_h * 60 / step_min`` of them.
    """

    forecaster: dict[str, str]
    onnx_sha256: dict[str, str]
    origin_utc: str
    step_min: int
    n_history_steps: int
    forecasts: list[ArrivalsForecastStep]
