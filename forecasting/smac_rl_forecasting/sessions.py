"""Session needs at arrival: quantiles 10/50/90 of delivered energy and dwell time (LightGBM).

For each session, at its arrival instant ``a``, :class:`SessionNeedsForecaster` predicts the 10, 50
and 90 % quantiles of ``energy_kwh`` (the energy delivered over the session) and ``dwell_min``
(departure minus arrival). What it may read at ``a``:

- the calendar of ``a`` in the site's local time: hour, minute of day, weekday and public holiday
  (``holidays`` package; US/California for Caltech);
- the sessions that **ended** before ``a`` (``departure_utc < a``): their arrival, energy and dwell.
  A session still plugged in at ``a``, or a later one, is never read, since its energy and dwell
  are not known yet (the no-leakage test alters exactly those sessions).

**Windows and features** (``28d``, ``7d``, ``same_hour``, ``profile_4w``, ``seasonal_naive``; the
23 columns of :func:`session_feature_names`): :mod:`smac_rl.features.session_windows` defines and builds
them, the one implementation the service runs too. This module adds the pandas input checks, the
public holidays of the ``holidays`` package and the LightGBM boosters. When normalised
(:attr:`SessionFeatureConfig.is_normalized`), every value feature of ``T`` but ``level_T`` and the
target are divided by ``level_T`` (the 28-day median, floored at the core's ``LEVEL_FLOORS``): one
model stays valid when the site's regime moves (2021's dwell times are a third of 2019's).

**Outputs.** Six quantile boosters (``q10_energy_kwh`` .. ``q90_dwell_min``); per target the three
outputs are sorted (never crossing), scaled back by the level, widened about the median by
:attr:`SessionNeedsForecaster.interval_widening` and floored at 0.

**Baselines** (:meth:`SessionNeedsForecaster.predict` with ``include_baselines``): the empirical
10/50/90 % quantiles (numpy's linear rule) of the ``seasonal_naive`` and ``profile_4w`` windows.

**History.** An arrival needs 28 days of ended sessions before it (from the first arrival among the
sessions that ended before it) and at least :data:`MIN_WINDOW_SESSIONS` of them in its ``28d``
window; :meth:`SessionNeedsForecaster.predict` refuses one without them and
:meth:`SessionNeedsForecaster.fit` skips it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from dataclasses import field as dataclass_field
from typing import Any

import numpy as np
import pandas as pd

from smac_rl.core.arraytypes import FloatArray, IntArray
from smac_rl.features.session_windows import (
    MIN_WINDOW_SESSIONS,
    QUANTILES_FRAC,
    RECENT_DAYS,
    WINDOW_DAYS,
    LocalCalendar,
    SessionArrays,
    local_calendar,
    postprocess_rule,
    session_feature_names,
    widen_quantiles,
)
from smac_rl.features.session_windows import SESSION_TARGETS as SESSION_TARGETS
from smac_rl.features.session_windows import WindowStatistics as WindowStatistics
from smac_rl.features.session_windows import session_features as core_session_features
from smac_rl.features.session_windows import window_statistics as window_statistics
from smac_rl_forecasting.features import FeatureConfig
from smac_rl_forecasting.model import BoosterConfig, predict_boosters, train_boosters
from smac_rl_forecasting.onnx_export import holiday_dates
from smac_rl_forecasting.series import CALTECH_TIMEZONE, ForecastInputError

MIN_TRAINING_SESSIONS = 100
"""Fewest sessions with enough history a fit needs."""

SESSION_PARITY_TOLERANCE = 1e-3
"""Largest ONNX-LightGBM difference of a session graph's output [kWh, min, or a ratio when
normalised]: raw dwell outputs run to hundreds of minutes, where float32 sums of leaf values drift
by about 1e-4."""

SESSION_COLUMNS = ("arrival_utc", "departure_utc", "delivered_energy_kwh")
"""Columns a sessions table must have (those of ``smac_rl.data.caltech_sessions``)."""

BASELINE_WINDOWS = ("seasonal_naive", "profile_4w")
"""Windows whose quantiles are the baselines."""

_UTC_NAMES = ("UTC", "utc", "Etc/UTC")


@dataclass(frozen=True)
class SessionFeatureConfig:
    """Calendar and normalisation of the session features.

    Attributes:
        timezone: IANA time zone of the site (local hour, weekday, day).
        holiday_country: ISO country code of the public holidays (``holidays`` package).
        holiday_subdiv: Subdivision of the holidays (a state), or None.
        is_normalized: Divide each target and its value features by its 28-day median.
    """

    timezone: str = CALTECH_TIMEZONE
    holiday_country: str = "US"
    holiday_subdiv: str | None = "CA"
    is_normalized: bool = True

    @property
    def calendar(self) -> FeatureConfig:
        """The slot features' configuration (``smac_rl_forecasting.features.calendar_features``)."""
        return FeatureConfig(
            step_min=1,
            timezone=self.timezone,
            holiday_country=self.holiday_country,
            holiday_subdiv=self.holiday_subdiv,
        )


def _utc_nanoseconds(values: pd.Series, name: str) -> IntArray:
    """A column of timezone-aware UTC datetimes as nanoseconds since the epoch."""
    if not isinstance(values.dtype, pd.DatetimeTZDtype):
        if pd.api.types.is_datetime64_dtype(values.dtype):
            raise ForecastInputError(f"{name}: got naive timestamps; expected timezone-aware UTC timestamps")
        raise ForecastInputError(
            f"{name}: got dtype {values.dtype}; expected timezone-aware UTC datetimes "
            "(pandas.to_datetime(..., utc=True))"
        )
    if str(values.dtype.tz) not in _UTC_NAMES:
        raise ForecastInputError(f"{name}: got time zone {values.dtype.tz}; expected UTC (convert it first)")
    if values.isna().any():
        raise ForecastInputError(
            f"{name}: got a missing timestamp at row {int(np.flatnonzero(values.isna())[0])}"
        )
    return np.asarray(pd.DatetimeIndex(values).as_unit("ns").asi8, dtype=np.int64)


class SessionHistory(SessionArrays):
    """Checked sessions, sorted by arrival, as arrays (the core's :class:`SessionArrays`)."""

    @classmethod
    def from_frame(cls, sessions: pd.DataFrame, timezone: str, field: str = "sessions") -> SessionHistory:
        """Check a sessions table and hold it as arrays.

        Args:
            sessions: One row per session with :data:`SESSION_COLUMNS` (UTC datetimes and the
                delivered energy [kWh]); other columns are ignored.
            timezone: Local time zone of the site.
            field: Name used in error messages.

        Raises:
            ForecastInputError: For a non-table, a missing column, naive or non-UTC or missing
                timestamps, a departure not after its arrival, or an energy that is negative or not
                finite.
        """
        if not isinstance(sessions, pd.DataFrame):
            raise ForecastInputError(f"{field}: got {type(sessions).__name__}; expected a pandas DataFrame")
        missing = [c for c in SESSION_COLUMNS if c not in sessions.columns]
        if missing:
            raise ForecastInputError(
                f"{field}: got no column {', '.join(missing)}; expected columns {', '.join(SESSION_COLUMNS)}"
            )
        arrival = _utc_nanoseconds(sessions["arrival_utc"], f"{field}.arrival_utc")
        departure = _utc_nanoseconds(sessions["departure_utc"], f"{field}.departure_utc")
        energy = pd.to_numeric(sessions["delivered_energy_kwh"], errors="coerce").to_numpy(dtype=np.float64)
        bad = np.flatnonzero(~np.isfinite(energy) | (energy < 0.0))
        if bad.size:
            raise ForecastInputError(
                f"{field}.delivered_energy_kwh: got {sessions['delivered_energy_kwh'].iloc[int(bad[0])]!r} "
                f"at row {int(bad[0])}; expected a finite value >= 0"
            )
        bad = np.flatnonzero(departure <= arrival)
        if bad.size:
            row = int(bad[0])
            left = pd.Timestamp(int(departure[row]), tz="UTC").isoformat()
            came = pd.Timestamp(int(arrival[row]), tz="UTC").isoformat()
            raise ForecastInputError(
                f"{field}.departure_utc: got {left} at row {row}; expected after its arrival_utc {came}"
            )
        return cls.of(arrival, departure, energy, timezone)


def check_arrivals(arrivals_utc: Sequence[dt.datetime | pd.Timestamp] | pd.DatetimeIndex) -> IntArray:
    """Arrival instants as UTC nanoseconds since the epoch.

    Raises:
        ForecastInputError: For a naive instant or an empty sequence.
    """
    if isinstance(arrivals_utc, pd.DatetimeIndex):
        if arrivals_utc.tz is None:
            raise ForecastInputError("arrivals_utc: got naive timestamps; expected timezone-aware instants")
        stamps = arrivals_utc.tz_convert("UTC").as_unit("ns")
        result = np.asarray(stamps.asi8, dtype=np.int64)
    else:
        values = []
        for value in arrivals_utc:
            stamp = pd.Timestamp(value)
            if stamp.tzinfo is None:
                raise ForecastInputError(
                    f"arrivals_utc: got naive {stamp.isoformat()}; expected a timezone-aware instant"
                )
            values.append(stamp.tz_convert("UTC").as_unit("ns").value)
        result = np.asarray(values, dtype=np.int64)
    if result.size == 0:
        raise ForecastInputError("arrivals_utc: got no arrival; expected at least one")
    return result


def _holiday_days(config: SessionFeatureConfig, calendar: LocalCalendar) -> IntArray:
    """Public holidays (``holidays`` package) of the calendar's local years [days since 1970-01-01]."""
    first_year, last_year = calendar.years()
    dates = holiday_dates(config.holiday_country, config.holiday_subdiv, first_year, last_year)
    return np.asarray(np.asarray(dates, dtype="datetime64[D]").astype(np.int64), dtype=np.int64)


def session_features(
    arrival_ns: IntArray, stats: WindowStatistics, config: SessionFeatureConfig
) -> tuple[FloatArray, FloatArray]:
    """Feature rows of arrivals from their window statistics (the core's ``session_features``).

    Args:
        arrival_ns: Arrival instants [ns since the epoch, UTC], ``(N,)``.
        stats: Their :func:`window_statistics`; every arrival must have a non-empty 28-day window.
        config: Calendar and normalisation.

    Returns:
        ``(X, level)``: features ``(N, F)`` in :func:`session_feature_names` order and the level each
        target is normalised by, ``(N, 2)`` (ones when not normalised).
    """
    calendar = local_calendar(arrival_ns, config.timezone)
    is_holiday = calendar.is_holiday(_holiday_days(config, calendar))
    return core_session_features(calendar, is_holiday, stats, config.is_normalized)


@dataclass(frozen=True)
class SessionTrainingSummary:
    """What a fit saw.

    Attributes:
        first_arrival_utc: First training arrival (ISO 8601).
        last_arrival_utc: Last training arrival.
        n_sessions: Training sessions (those with enough history).
        n_skipped: Sessions skipped for too little history before them.
    """

    first_arrival_utc: str
    last_arrival_utc: str
    n_sessions: int
    n_skipped: int


SESSION_BOOSTER = BoosterConfig(
    objective="quantile", quantiles=QUANTILES_FRAC, n_trees=150, num_leaves=7, min_data_in_leaf=40
)
"""Default LightGBM settings of the session forecaster (small: about 2,500 training sessions)."""


@dataclass
class SessionNeedsForecaster:
    """Quantiles 10/50/90 of a session's delivered energy [kWh] and dwell time [min] at its arrival.

    Six LightGBM quantile boosters (``q10_energy_kwh`` .. ``q90_dwell_min``) on the features of
    the module docstring; each target's quantiles are sorted (they never cross), scaled back by its
    level and floored at 0.

    Example:
        >>> forecaster = SessionNeedsForecaster().fit(caltech_sessions(period))  # doctest: +SKIP
        >>> forecaster.predict(arrivals_utc, sessions_so_far)  # doctest: +SKIP

    Attributes:
        features: Calendar and normalisation.
        booster: LightGBM settings (objective ``quantile``).
        field: Name in error messages and graph names.
        boosters: Fitted boosters by output name (empty before :meth:`fit`).
        training: Summary of the fit, or None.
        interval_widening: Per target, the factor ``k`` that stretches the interval about the
            median: ``q10 = q50 - k (q50 - q10)``, ``q90 = q50 + k (q90 - q50)`` (1: the boosters'
            own; :func:`widening_for_coverage` calibrates it on data the fit did not see).
    """

    features: SessionFeatureConfig = dataclass_field(default_factory=SessionFeatureConfig)
    booster: BoosterConfig = SESSION_BOOSTER
    field: str = "sessions"
    boosters: dict[str, Any] = dataclass_field(default_factory=dict)
    training: SessionTrainingSummary | None = None
    interval_widening: tuple[float, ...] = (1.0, 1.0)

    def __post_init__(self) -> None:
        """Check the objective, the quantile levels and the widening."""
        if self.booster.objective != "quantile":
            raise ForecastInputError(
                f"booster.objective: got {self.booster.objective!r}; expected 'quantile'"
            )
        if tuple(self.booster.quantiles) != QUANTILES_FRAC:
            raise ForecastInputError(
                f"booster.quantiles: got {self.booster.quantiles}; expected {QUANTILES_FRAC}"
            )
        widening = self.interval_widening
        if len(widening) != len(SESSION_TARGETS) or not all(np.isfinite(k) and k > 0 for k in widening):
            raise ForecastInputError(
                f"interval_widening: got {widening}; expected {len(SESSION_TARGETS)} finite factors > 0"
            )

    @property
    def is_fitted(self) -> bool:
        """True once :meth:`fit` has run."""
        return bool(self.boosters)

    @property
    def feature_names(self) -> list[str]:
        """Ordered feature names."""
        return session_feature_names()

    @property
    def output_names(self) -> list[str]:
        """Output columns: ``q10_energy_kwh``, ``q50_energy_kwh``, ... ``q90_dwell_min``."""
        return [f"{q}_{t}" for t in SESSION_TARGETS for q in self.booster.output_names]

    @property
    def postprocess(self) -> str:
        """How the exported graphs' outputs become forecasts, in words (``metadata.json``)."""
        return postprocess_rule(self.features.is_normalized, self.interval_widening)

    def history(self, sessions: pd.DataFrame, field: str = "sessions") -> SessionHistory:
        """Check a sessions table (errors as :meth:`SessionHistory.from_frame`)."""
        return SessionHistory.from_frame(sessions, self.features.timezone, field)

    def fit(self, sessions: pd.DataFrame) -> SessionNeedsForecaster:
        """Fit on every session of the table that has enough history before its arrival.

        Each session's features read only the table's sessions that ended before it arrived.

        Args:
            sessions: One row per session (:data:`SESSION_COLUMNS`).

        Returns:
            Itself, fitted.

        Raises:
            ForecastInputError: For a bad table or fewer than :data:`MIN_TRAINING_SESSIONS`
                sessions with 28 days of history.
        """
        history = self.history(sessions)
        stats = window_statistics(history.arrival_ns, history, self.features.timezone)
        keep = stats.has_history
        n_kept = int(keep.sum())
        if n_kept < MIN_TRAINING_SESSIONS:
            raise ForecastInputError(
                f"sessions: got {n_kept} sessions with {WINDOW_DAYS} days of history and at least "
                f"{MIN_WINDOW_SESSIONS} ended sessions in their window; expected at least "
                f"{MIN_TRAINING_SESSIONS}"
            )
        arrivals = history.arrival_ns[keep]
        features, levels = session_features(arrivals, stats.subset(keep), self.features)
        self.boosters = {}
        for t, target in enumerate(SESSION_TARGETS):
            label = history.values[keep, t] / levels[:, t]
            self.boosters |= train_boosters(features, label, self.feature_names, self.booster, f"_{target}")
        self.training = SessionTrainingSummary(
            first_arrival_utc=pd.Timestamp(int(arrivals.min()), tz="UTC").isoformat(),
            last_arrival_utc=pd.Timestamp(int(arrivals.max()), tz="UTC").isoformat(),
            n_sessions=n_kept,
            n_skipped=history.n_sessions - n_kept,
        )
        return self

    def feature_rows(
        self,
        arrivals_utc: Sequence[dt.datetime | pd.Timestamp] | pd.DatetimeIndex,
        sessions: pd.DataFrame,
    ) -> tuple[FloatArray, FloatArray, WindowStatistics]:
        """Feature rows of arrivals; arguments and errors as :meth:`predict`.

        Returns:
            ``(X, level, stats)``: features ``(N, F)``, levels ``(N, 2)`` and window statistics.
        """
        arrival_ns = check_arrivals(arrivals_utc)
        history = self.history(sessions)
        stats = window_statistics(arrival_ns, history, self.features.timezone)
        short = np.flatnonzero(~stats.has_history)
        if short.size:
            i = int(short[0])
            when = pd.Timestamp(int(arrival_ns[i]), tz="UTC").isoformat()
            if stats.history_days[i] < WINDOW_DAYS:
                got = max(float(stats.history_days[i]), 0.0)
                raise ForecastInputError(
                    f"sessions: got {got:.1f} days of ended sessions before arrival {when}; "
                    f"expected at least {WINDOW_DAYS}"
                )
            raise ForecastInputError(
                f"sessions: got {int(stats.n_sessions_28d[i])} sessions ended in the {WINDOW_DAYS} days "
                f"before arrival {when}; expected at least {MIN_WINDOW_SESSIONS}"
            )
        features, levels = session_features(arrival_ns, stats, self.features)
        return features, levels, stats

    def predict_raw(self, features: FloatArray, levels: FloatArray) -> FloatArray:
        """Outputs for feature rows in :attr:`output_names` order, ``(N, 6)`` [kWh, min].

        Raises:
            ForecastInputError: Before :meth:`fit`.
        """
        if not self.is_fitted:
            raise ForecastInputError(f"{self.field} forecaster: not fitted; call fit() first")
        blocks = []
        for t, target in enumerate(SESSION_TARGETS):
            boosters = [self.boosters[f"{q}_{target}"] for q in self.booster.output_names]
            outputs = predict_boosters(boosters, features, "quantile")
            blocks.append(widen_quantiles(outputs, levels[:, t], self.interval_widening[t]))
        return np.asarray(np.concatenate(blocks, axis=1), dtype=np.float64)

    def predict(
        self,
        arrivals_utc: Sequence[dt.datetime | pd.Timestamp] | pd.DatetimeIndex,
        sessions: pd.DataFrame,
        include_baselines: bool = False,
    ) -> pd.DataFrame:
        """Quantiles of the energy and dwell time of sessions arriving at the given instants.

        Args:
            arrivals_utc: Arrival instants, timezone-aware.
            sessions: Sessions known so far (:data:`SESSION_COLUMNS`); for each arrival only those
                that ended before it are read, so the table may hold later sessions too.
            include_baselines: Also return the baselines' quantiles (``seasonal_naive_q10_energy_kwh``,
                ``profile_4w_q50_dwell_min``...).

        Returns:
            One row per arrival, in the given order: ``arrival_utc`` and :attr:`output_names`
            [kWh, min] (and the baselines' columns).

        Raises:
            ForecastInputError: For a naive arrival, a bad sessions table, an arrival with less than
                28 days of ended sessions before it or fewer than :data:`MIN_WINDOW_SESSIONS` in its
                window, or an unfitted forecaster.
        """
        features, levels, stats = self.feature_rows(arrivals_utc, sessions)
        outputs = self.predict_raw(features, levels)
        arrival_ns = check_arrivals(arrivals_utc)
        frame = pd.DataFrame({"arrival_utc": pd.to_datetime(arrival_ns, unit="ns", utc=True)})
        for i, name in enumerate(self.output_names):
            frame[name] = outputs[:, i]
        if include_baselines:
            for window in BASELINE_WINDOWS:
                for t, target in enumerate(SESSION_TARGETS):
                    for i, q in enumerate(self.booster.output_names):
                        frame[f"{window}_{q}_{target}"] = stats.quantiles[window][:, t, i]
        return frame

    def describe(self) -> dict[str, Any]:
        """Configuration and training summary as plain JSON-able values."""
        return {
            "field": self.field,
            "targets": list(SESSION_TARGETS),
            "window_days": WINDOW_DAYS,
            "recent_days": RECENT_DAYS,
            "min_window_sessions": MIN_WINDOW_SESSIONS,
            "features": asdict(self.features),
            "booster": asdict(self.booster),
            "feature_names": self.feature_names,
            "output_names": self.output_names,
            "interval_widening": list(self.interval_widening),
            "training": None if self.training is None else asdict(self.training),
        }


def widening_for_coverage(
    actual: FloatArray, q10: FloatArray, q50: FloatArray, q90: FloatArray, coverage_frac: float = 0.8
) -> float:
    """The smallest widening ``k`` whose interval covers at least ``coverage_frac`` of the truths.

    A truth ``y`` below the median is covered when ``q50 - k (q50 - q10) <= y``, i.e. when
    ``k >= (q50 - y) / (q50 - q10)``; above it, when ``k >= (y - q50) / (q90 - q50)``. ``k`` is the
    ``ceil(coverage_frac * n)``-th smallest of these needs (a zero-width side covers only its median).

    Args:
        actual: Truths, ``(n,)``.
        q10: Forecast 10 % quantiles (unwidened), ``(n,)``.
        q50: Forecast medians, ``(n,)``.
        q90: Forecast 90 % quantiles (unwidened), ``(n,)``.
        coverage_frac: Share of truths to cover, in (0, 1).

    Raises:
        ForecastInputError: For an empty or mis-shaped input, a share out of range, or too few
            truths coverable at any finite widening.
    """
    y, lo, mid, hi = (np.asarray(x, dtype=np.float64) for x in (actual, q10, q50, q90))
    if y.ndim != 1 or y.size == 0 or not (y.shape == lo.shape == mid.shape == hi.shape):
        raise ForecastInputError(f"actual: got shape {y.shape}; expected equal non-empty 1-D arrays")
    if not 0.0 < coverage_frac < 1.0:
        raise ForecastInputError(f"coverage_frac: got {coverage_frac}; expected a share in (0, 1)")
    with np.errstate(divide="ignore", invalid="ignore"):
        need = np.where(y < mid, (mid - y) / (mid - lo), np.where(y > mid, (y - mid) / (hi - mid), 0.0))
    need = np.where(np.isnan(need), np.inf, need)
    k = float(np.sort(need)[int(np.ceil(coverage_frac * y.size)) - 1])
    if not np.isfinite(k) or k <= 0.0:
        raise ForecastInputError(
            f"actual: got a widening of {k} for {coverage_frac:.0%} coverage; expected a finite one > 0"
        )
    return k


def session_targets(sessions: pd.DataFrame, timezone: str = CALTECH_TIMEZONE) -> pd.DataFrame:
    """The truth of each session, sorted by arrival: ``arrival_utc``, ``energy_kwh``, ``dwell_min``."""
    history = SessionHistory.from_frame(sessions, timezone)
    return pd.DataFrame(
        {
            "arrival_utc": pd.to_datetime(history.arrival_ns, unit="ns", utc=True),
            "energy_kwh": history.values[:, 0],
            "dwell_min": history.values[:, 1],
        }
    )
