"""The session-needs forecaster in the service: ONNX graphs and numpy features, no lightgbm or pandas.

The forecasting package exports its session-needs forecaster
(:mod:`smac_rl_forecasting.sessions`) as six graphs, ``q10_energy_kwh.onnx`` .. ``q90_dwell_min.onnx``,
and ``metadata.json`` (``models/forecasters/caltech_session_needs/v1``). For a session arriving at
``a``, the forecaster gives the 10, 50 and 90 % quantiles of the energy it will take [kWh] and of
its dwell time [min], from the local calendar of ``a`` and from the site's sessions that **ended**
before ``a`` (a session still plugged in at ``a`` is never read). INCAR uses them as the driver's
inputs when the driver gives no departure time or energy wanted.

The input rows come from :mod:`smac_rl.features.session_windows` (numpy and the standard library only),
the one implementation the forecasting package fits on too: window statistics, value grids and the
feature assembly. This module adds what only the service has: the checks of a history given as
JSON instants, the public holidays from the metadata's ``holidays.dates`` (the exporter writes them
from the ``holidays`` package), the folder checks (:mod:`smac_rl_serve.metadata_checks`) and the
graphs. ``tests/serve/test_session_forecaster.py`` checks the features and forecasts against the
forecasting package's on the Caltech sessions, daylight-saving days and holidays included.

The forecast follows the metadata's ``postprocess``: per target, the three outputs sorted per row,
scaled by the level (1 when not normalised), the interval widened about the median by
``interval_widening`` and all three floored at 0.

History rule: an arrival needs 28 days of ended sessions before it (from the first arrival among
them) and at least ``min_window_sessions`` (10) of them in its ``28d`` window.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np

from smac_rl.core.arraytypes import FloatArray, IntArray
from smac_rl.core.errors import FieldProblem, ProblemsError, render_value
from smac_rl.features.session_windows import (
    RECENT_DAYS,
    SESSION_TARGETS,
    WINDOW_DAYS,
    SessionArrays,
    WindowStatistics,
    day_of_date,
    instant_ns,
    local_calendar,
    postprocess_rule,
    session_feature_names,
    utc_of_ns,
    widen_quantiles,
    window_statistics,
)
from smac_rl.features.session_windows import session_features as core_session_features
from smac_rl_serve.metadata_checks import (
    ForecasterFolder,
    check_feature_names,
    check_outputs,
    check_timezone,
    expect,
    json_object,
    read_holidays,
    whole_number,
)

QUANTILE_NAMES = ("q10", "q50", "q90")

OUTPUT_NAMES: tuple[str, ...] = tuple(f"{q}_{t}" for t in SESSION_TARGETS for q in QUANTILE_NAMES)
"""The six graphs, in the order of the forecasts' columns: ``q10_energy_kwh`` .. ``q90_dwell_min``."""

MAX_DWELL_MIN = 31 * 24 * 60.0
"""Longest dwell accepted in a history [min] (31 days; Caltech's longest is about 6 days)."""

FIRST_HISTORY_YEAR = 1970
LAST_HISTORY_YEAR = 2199
"""Years (UTC) a history instant may lie in."""

_MINUTE_NS = 60 * 10**9


class SessionForecastInputError(ProblemsError[FieldProblem]):
    """Arrivals or a history the forecaster cannot use; every problem names its field."""


@dataclass(frozen=True)
class SessionFeatureConfig:
    """How the session features are built (the metadata's ``features`` and ``holidays``).

    Attributes:
        timezone: IANA time zone of the site the forecaster was trained for (the default calendar).
        holiday_dates: Public holidays (local dates) of ``first_holiday_year .. last_holiday_year``.
        first_holiday_year: First year the holidays are known for.
        last_holiday_year: Last year the holidays are known for.
        is_normalized: Value features and outputs scaled by each target's 28-day median.
    """

    timezone: str
    holiday_dates: frozenset[dt.date]
    first_holiday_year: int
    last_holiday_year: int
    is_normalized: bool


def session_features(
    arrival_ns: IntArray, stats: WindowStatistics, config: SessionFeatureConfig, timezone: str | None = None
) -> tuple[FloatArray, FloatArray]:
    """Feature rows of arrivals from their window statistics (the core's ``session_features``).

    Args:
        arrival_ns: Arrival instants [ns since the epoch, UTC], ``(N,)``.
        stats: Their :func:`window_statistics`; every arrival must have a non-empty 28-day window.
        config: Holidays and normalisation.
        timezone: Local time zone of the calendar; None: ``config.timezone``.

    Returns:
        ``(X, level)``: features ``(N, F)`` in :func:`session_feature_names` order (float32 values
        held as float64) and the level each target is scaled by, ``(N, 2)`` (ones when not
        normalised).
    """
    calendar = local_calendar(arrival_ns, timezone or config.timezone)
    is_holiday = calendar.is_holiday(sorted(day_of_date(d) for d in config.holiday_dates))
    return core_session_features(calendar, is_holiday, stats, config.is_normalized)


def _utc_text(instant: dt.datetime) -> str:
    try:
        return instant.astimezone(dt.UTC).isoformat()
    except (OverflowError, ValueError):
        return instant.isoformat()


_FIRST_HISTORY = dt.datetime(FIRST_HISTORY_YEAR, 1, 1, tzinfo=dt.UTC)
_END_HISTORY = dt.datetime(LAST_HISTORY_YEAR + 1, 1, 1, tzinfo=dt.UTC)
_HISTORY_RANGE = f"an instant in the years {FIRST_HISTORY_YEAR} to {LAST_HISTORY_YEAR} (UTC)"


@dataclass(frozen=True)
class CheckedHistory:
    """Sessions of a history, checked, in the given order.

    Attributes:
        arrival_ns: Arrivals [ns since the epoch, UTC], ``(M,)``.
        departure_ns: Departures [ns], each after its arrival, ``(M,)``.
        energy_kwh: Delivered energy [kWh], ``(M,)``.
    """

    arrival_ns: IntArray
    departure_ns: IntArray
    energy_kwh: FloatArray

    @property
    def n_sessions(self) -> int:
        """Sessions held."""
        return int(self.arrival_ns.shape[0])


def check_session_history(
    arrival_utc: Sequence[dt.datetime],
    departure_utc: Sequence[dt.datetime],
    energy_kwh: Sequence[float],
    prefix: str = "history",
) -> CheckedHistory:
    """A site's past sessions, checked: aware instants in range, departure after arrival, energy sane.

    Args:
        arrival_utc: Arrival of each session (timezone-aware).
        departure_utc: Departure of each session (timezone-aware), after its arrival and at most
            :data:`MAX_DWELL_MIN` later.
        energy_kwh: Energy each session took [kWh], finite and not negative.
        prefix: Path of the list in error messages (``history``).

    Returns:
        The sessions as arrays.

    Raises:
        SessionForecastInputError: Naming each entry at fault (``history[3].departure_utc``...).
    """
    problems: list[FieldProblem] = []
    if not len(arrival_utc) == len(departure_utc) == len(energy_kwh):
        raise SessionForecastInputError(
            [
                FieldProblem(
                    prefix,
                    f"{len(arrival_utc)} arrivals, {len(departure_utc)} departures, "
                    f"{len(energy_kwh)} energies",
                    "one of each per session",
                )
            ]
        )
    arrivals, departures = [], []
    for i, (arrival, departure, energy) in enumerate(
        zip(arrival_utc, departure_utc, energy_kwh, strict=True)
    ):
        path = f"{prefix}[{i}]"
        instants: list[int | None] = []
        for name, instant in (("arrival_utc", arrival), ("departure_utc", departure)):
            if instant.tzinfo is None or instant.utcoffset() is None:
                problems.append(
                    FieldProblem(f"{path}.{name}", instant.isoformat(), "a timezone-aware instant")
                )
            elif not _FIRST_HISTORY <= instant < _END_HISTORY:
                problems.append(FieldProblem(f"{path}.{name}", instant.isoformat(), _HISTORY_RANGE))
            else:
                instants.append(instant_ns(instant))
                continue
            instants.append(None)
        a_ns, d_ns = instants
        if a_ns is not None and d_ns is not None:
            if d_ns <= a_ns:
                problems.append(
                    FieldProblem(
                        f"{path}.departure_utc",
                        departure.isoformat(),
                        f"after its arrival_utc {_utc_text(arrival)}",
                    )
                )
            elif (d_ns - a_ns) / _MINUTE_NS > MAX_DWELL_MIN:
                problems.append(
                    FieldProblem(
                        f"{path}.departure_utc",
                        departure.isoformat(),
                        f"at most {MAX_DWELL_MIN / 1440:g} days after its arrival_utc {_utc_text(arrival)}",
                    )
                )
        if not np.isfinite(energy) or energy < 0.0:
            problems.append(FieldProblem(f"{path}.energy_kwh", render_value(energy), "a finite number >= 0"))
        arrivals.append(a_ns or 0)
        departures.append(d_ns or 0)
    if problems:
        raise SessionForecastInputError(problems)
    return CheckedHistory(
        arrival_ns=np.asarray(arrivals, dtype=np.int64).reshape(-1),
        departure_ns=np.asarray(departures, dtype=np.int64).reshape(-1),
        energy_kwh=np.asarray(energy_kwh, dtype=np.float64).reshape(-1),
    )


@dataclass(frozen=True)
class SessionNeedsForecast:
    """Quantile forecasts of the sessions arriving at given instants.

    Attributes:
        arrival_utc: Each arrival (UTC), in the given order.
        timezone: Time zone of the calendar features.
        quantiles: Per arrival, the forecasts in :data:`OUTPUT_NAMES` order, ``(N, 6)``: 10/50/90 %
            of the energy [kWh], then of the dwell time [min]; ordered within each target, not
            negative.
        n_sessions_28d: Ended sessions in each arrival's 28-day window, ``(N,)``.
    """

    arrival_utc: list[dt.datetime]
    timezone: str
    quantiles: FloatArray
    n_sessions_28d: IntArray


class OnnxSessionNeedsForecaster(ForecasterFolder):
    """The exported session-needs forecaster: numpy features -> six ONNX graphs -> quantiles [kWh, min].

    Attributes:
        model_dir: The folder (resolved).
        metadata_path: Its ``metadata.json``.
        metadata: The metadata as read.
        config: The feature configuration.
        min_window_sessions: Fewest ended sessions an arrival's 28-day window must hold.
        interval_widening: Per target, the factor the interval is widened by about the median.
        onnx_sha256: Hash of each graph, by output name.
    """

    kind = "session forecaster"

    def __init__(self, model_dir: Path) -> None:
        """Load and check a forecaster folder.

        Checks, in order: ``metadata.json`` exists and is JSON with this service's ``schema_version``;
        ``field`` is ``sessions``, ``targets``, ``window_days``, ``recent_days`` and ``output_names``
        are this module's and ``min_window_sessions`` is a whole number of at least 1; the time zone
        is known, ``is_normalized`` a boolean and the holidays listed for the features' country; the
        feature names are this module's, in order, and ``inputs.features.shape`` has their number;
        ``interval_widening`` holds two finite factors above 0 and ``postprocess`` states the rule
        this module applies; each graph exists, has the metadata's sha256, loads, takes
        ``features`` of that width and maps a zero row to one finite number.

        Raises:
            ModelError: On the first failed check, naming the file, the field, the value found and
                the expectation.
        """
        graphs = ", ".join(f"{n}.onnx" for n in OUTPUT_NAMES)
        super().__init__(model_dir, f"metadata.json and the six graphs {graphs}")
        raw, where = self.metadata, self.where
        expect(where, "field", raw.get("field"), raw.get("field") == "sessions", "'sessions'")
        targets = list(SESSION_TARGETS)
        expect(where, "targets", raw.get("targets"), raw.get("targets") == targets, repr(targets))
        for key, wanted in (("window_days", WINDOW_DAYS), ("recent_days", RECENT_DAYS)):
            value = whole_number(where, key, raw.get(key))
            expect(where, key, value, value == wanted, f"{wanted} (the windows this service builds)")
        self.min_window_sessions = whole_number(where, "min_window_sessions", raw.get("min_window_sessions"))
        expect(
            where,
            "min_window_sessions",
            self.min_window_sessions,
            self.min_window_sessions >= 1,
            "at least 1",
        )
        names = list(OUTPUT_NAMES)
        expect(where, "output_names", raw.get("output_names"), raw.get("output_names") == names, repr(names))
        outputs = check_outputs(where, raw, OUTPUT_NAMES)
        self.config = _feature_config(where, raw)
        width = len(session_feature_names())
        check_feature_names(where, raw, session_feature_names(), "smac_rl_serve.session_forecaster")
        widening = raw.get("interval_widening")
        factors: list[Any] = widening if isinstance(widening, list) else []
        expect(
            where,
            "interval_widening",
            widening,
            len(factors) == len(SESSION_TARGETS)
            and all(
                isinstance(k, int | float) and not isinstance(k, bool) and np.isfinite(k) and k > 0
                for k in factors
            ),
            f"{len(SESSION_TARGETS)} finite factors > 0 (one per target)",
        )
        self.interval_widening = tuple(float(k) for k in factors)
        rule = postprocess_rule(self.config.is_normalized, self.interval_widening)
        expect(
            where,
            "postprocess",
            raw.get("postprocess"),
            raw.get("postprocess") == rule,
            f"{rule!r} (the rule this service applies)",
        )
        self._load_graphs(outputs, OUTPUT_NAMES, width)

    def history_rule(self) -> str:
        """The history an arrival needs, in words (error messages and docs)."""
        return (
            f"at least {WINDOW_DAYS} days of sessions ended before each arrival (from the first arrival "
            f"among them) and at least {self.min_window_sessions} of them arrived in the {WINDOW_DAYS} "
            "days before it"
        )

    def check_arrivals(
        self, arrivals_utc: Sequence[dt.datetime], timezone: str | None = None, prefix: str = "arrivals_utc"
    ) -> list[FieldProblem]:
        """What keeps the arrivals from being forecast, before any history is read.

        Returns:
            A problem per arrival that is naive or whose local date lies outside the years whose
            public holidays the forecaster knows.
        """
        zone = ZoneInfo(timezone or self.config.timezone)
        first, last = self.config.first_holiday_year, self.config.last_holiday_year
        problems = []
        for i, arrival in enumerate(arrivals_utc):
            path = f"{prefix}[{i}]"
            if arrival.tzinfo is None or arrival.utcoffset() is None:
                problems.append(FieldProblem(path, arrival.isoformat(), "a timezone-aware instant"))
                continue
            try:
                year = arrival.astimezone(zone).year
            except (OverflowError, ValueError):
                year = dt.MINYEAR if arrival.year < 5000 else dt.MAXYEAR
            if not first <= year <= last:
                problems.append(
                    FieldProblem(
                        path,
                        arrival.isoformat(),
                        f"an arrival in {first} to {last} (local time; the years whose public holidays "
                        "the forecaster knows)",
                    )
                )
        return problems

    def forecast(
        self, arrivals_utc: Sequence[dt.datetime], history: CheckedHistory, timezone: str | None = None
    ) -> SessionNeedsForecast:
        """Quantiles of the energy and dwell time of sessions arriving at the given instants.

        Args:
            arrivals_utc: Arrival instants, timezone-aware, in the holidays' years, at least one.
            history: The site's past sessions (:func:`check_session_history`); for each arrival only
                those that ended before it are read, so it may hold later sessions too.
            timezone: The site's IANA time zone; None: the forecaster's (``features.timezone``).

        Returns:
            The forecasts, one row per arrival in the given order.

        Raises:
            SessionForecastInputError: For no arrival, a naive one or one outside the holidays'
                years, or an arrival without the history :meth:`history_rule` states (field
                ``history``, naming the arrival).
        """
        zone_name = timezone or self.config.timezone
        problems = self.check_arrivals(arrivals_utc, zone_name)
        if not arrivals_utc:
            problems.append(FieldProblem("arrivals_utc", "[]", "at least one arrival"))
        if problems:
            raise SessionForecastInputError(problems)
        arrival_ns = np.asarray([instant_ns(a) for a in arrivals_utc], dtype=np.int64)
        log = SessionArrays.of(history.arrival_ns, history.departure_ns, history.energy_kwh, zone_name)
        stats = window_statistics(arrival_ns, log, zone_name)
        short = ~stats.has_enough_history(self.min_window_sessions)
        for i in np.flatnonzero(short).tolist():
            when = _utc_text(arrivals_utc[i])
            days = max(float(stats.history_days[i]), 0.0)
            problems.append(
                FieldProblem(
                    "history",
                    f"{days:.1f} days of ended sessions and {int(stats.n_sessions_28d[i])} in the last "
                    f"{WINDOW_DAYS} days before arrivals_utc[{i}] ({when})",
                    self.history_rule(),
                )
            )
        if problems:
            raise SessionForecastInputError(problems)
        features, levels = session_features(arrival_ns, stats, self.config, zone_name)
        rows = features.astype(np.float32)
        raw = {
            name: np.asarray(self._sessions[name].run(None, {"features": rows})[0], dtype=np.float64).reshape(
                -1
            )
            for name in OUTPUT_NAMES
        }
        blocks = []
        for t, target in enumerate(SESSION_TARGETS):
            outputs = np.sort(np.column_stack([raw[f"{q}_{target}"] for q in QUANTILE_NAMES]), axis=1)
            blocks.append(widen_quantiles(outputs, levels[:, t], self.interval_widening[t]))
        return SessionNeedsForecast(
            arrival_utc=[utc_of_ns(int(a)) for a in arrival_ns.tolist()],
            timezone=zone_name,
            quantiles=np.asarray(np.concatenate(blocks, axis=1), dtype=np.float64),
            n_sessions_28d=stats.n_sessions_28d,
        )


def _feature_config(where: str, raw: dict[str, Any]) -> SessionFeatureConfig:
    """The feature configuration of the metadata's ``features`` and ``holidays``.

    Raises:
        ModelError: For an unknown time zone, a non-boolean ``is_normalized``, or holidays
            missing, of another country or malformed.
    """
    features = json_object(where, "features", raw.get("features"), "an object")
    timezone = check_timezone(where, features)
    is_normalized = features.get("is_normalized")
    expect(where, "features.is_normalized", is_normalized, isinstance(is_normalized, bool), "true or false")
    holidays = read_holidays(where, raw, features)
    return SessionFeatureConfig(
        timezone=timezone,
        holiday_dates=holidays.dates,
        first_holiday_year=holidays.first_year,
        last_holiday_year=holidays.last_year,
        is_normalized=bool(is_normalized),
    )
