"""The session-needs windows and features of the core, on a four-session history checked by hand.

The forecasting package and the service both build their rows with this module; their parity on
the Caltech sessions is tested in ``tests/serve/test_session_forecaster.py``.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from smac_rl.features.session_windows import (
    MIN_WINDOW_SESSIONS,
    SessionArrays,
    day_of_date,
    instant_ns,
    local_calendar,
    on_grid,
    session_feature_names,
    session_features,
    widen_quantiles,
    window_statistics,
)

DAY0 = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
"""A Monday."""


def _at(day: int, hour: int, minute: int = 0) -> int:
    return instant_ns(DAY0 + dt.timedelta(days=day, hours=hour, minutes=minute))


# (arrival, departure, energy [kWh]); dwell 60, 30, 120 and 240 min.
SESSIONS = [
    (_at(25, 9), _at(25, 11), 20.0),  # a Friday, 09:00
    (_at(0, 9), _at(0, 10), 5.0),  # Monday 09:00: before the 28-day window of the arrival
    (_at(28, 8), _at(28, 12), 7.0),  # still plugged in at the arrival: never read
    (_at(0, 14), _at(0, 14, 30), 10.0),  # Monday 14:00
]
ARRIVAL_NS = np.array([_at(28, 10)], dtype=np.int64)
"""Monday 2024-01-29 10:00 UTC."""


def _history() -> SessionArrays:
    arrival, departure, energy = (np.array(column) for column in zip(*SESSIONS, strict=True))
    return SessionArrays.of(arrival, departure, energy, "UTC")


def test_the_history_is_sorted_by_arrival_with_its_local_calendar() -> None:
    history = _history()
    assert history.arrival_ns.tolist() == [_at(0, 9), _at(0, 14), _at(25, 9), _at(28, 8)]
    assert history.values.tolist() == [[5.0, 60.0], [10.0, 30.0], [20.0, 120.0], [7.0, 240.0]]
    assert history.local_hour.tolist() == [9, 14, 9, 8]
    assert history.weekday.tolist() == [0, 0, 4, 0]
    assert history.local_day.tolist() == [19723, 19723, 19748, 19751]  # 2024-01-01 is day 19723
    assert history.departure_sorted_ns.tolist() == [_at(0, 10), _at(0, 14, 30), _at(25, 11), _at(28, 12)]
    assert history.first_arrival_ns.tolist() == [_at(0, 9)] * 4


def test_window_statistics_by_hand() -> None:
    stats = window_statistics(ARRIVAL_NS, _history(), "UTC")
    # Ended before 10:00 on day 28: the first three; the 09:00 one of day 0 arrived 28 days and 1 h before.
    assert stats.history_days.tolist() == [28 + 1 / 24]
    assert (stats.n_sessions_28d.tolist(), stats.n_sessions_7d.tolist()) == ([2], [1])
    assert stats.n_same_hour_28d.tolist() == [0]
    q = {name: value[0].tolist() for name, value in stats.quantiles.items()}
    # 28d: energy (10, 20), dwell (30, 120); numpy's linear rule: q10 = 10 + 0.1 * 10...
    assert q["28d"] == [[11.0, 15.0, 19.0], [39.0, 75.0, 111.0]]
    assert q["7d"] == [[20.0, 20.0, 20.0], [120.0, 120.0, 120.0]]
    # No session in hour 10: the nearest hour present is 09:00 (gap 1), not 14:00 (gap 4).
    assert q["same_hour"] == [[20.0, 20.0, 20.0], [120.0, 120.0, 120.0]]
    # Mondays of the 28 days: the 14:00 session only.
    assert q["profile_4w"] == [[10.0, 10.0, 10.0], [30.0, 30.0, 30.0]]
    # Day 21 has no session: the 7-day window stands in.
    assert q["seasonal_naive"] == [[20.0, 20.0, 20.0], [120.0, 120.0, 120.0]]
    assert stats.has_history.tolist() == [False]  # 2 < MIN_WINDOW_SESSIONS
    assert MIN_WINDOW_SESSIONS == 10
    assert stats.has_enough_history(2).tolist() == [True]
    assert stats.has_enough_history(3).tolist() == [False]


def test_an_arrival_with_no_ended_session_has_empty_windows() -> None:
    stats = window_statistics(np.array([_at(0, 9, 30)], dtype=np.int64), _history(), "UTC")
    assert stats.history_days.tolist() == [-1.0]
    assert stats.n_sessions_28d.tolist() == [0]
    assert all(np.isnan(value).all() for value in stats.quantiles.values())


def test_session_features_by_hand() -> None:
    stats = window_statistics(ARRIVAL_NS, _history(), "UTC")
    calendar = local_calendar(ARRIVAL_NS, "UTC")
    holiday = calendar.is_holiday([day_of_date(dt.date(2024, 1, 29))])
    raw, levels = session_features(calendar, holiday, stats, is_normalized=False)
    assert raw.shape == (1, len(session_feature_names()))
    assert raw[0].tolist() == [
        *(10.0, 600.0, 0.0, 1.0, 2.0, 1.0, 0.0),
        *(15.0, 11.0, 19.0, 20.0, 20.0, 20.0, 10.0, 20.0),
        *(75.0, 39.0, 111.0, 120.0, 120.0, 120.0, 30.0, 120.0),
    ]
    assert levels.tolist() == [[1.0, 1.0]]
    normalised, levels = session_features(calendar, ~holiday, stats, is_normalized=True)
    assert levels.tolist() == [[15.0, 75.0]]
    assert normalised[0, 3] == 0.0
    # 11 / 15 = 0.7333... on the 2**-12 grid: round(3003.73) / 4096.
    assert normalised[0, 8] == 3004 / 4096
    assert normalised[0, 15] == 75.0
    assert normalised[0, 16] == 2130 / 4096  # 39 / 75 = 0.52 -> round(2129.92) / 4096


def test_value_grid_and_level_floor() -> None:
    assert on_grid(np.array([0.3, -0.3, 1 / 128]), 6).tolist() == [19 / 64, -19 / 64, 0.0]
    history = SessionArrays.of(
        np.array([_at(0, 9), _at(1, 9)]), np.array([_at(0, 10), _at(1, 10)]), np.array([0.0, 0.0]), "UTC"
    )
    stats = window_statistics(np.array([_at(2, 9)], dtype=np.int64), history, "UTC")
    calendar = local_calendar(np.array([_at(2, 9)], dtype=np.int64), "UTC")
    _, levels = session_features(calendar, np.array([False]), stats, is_normalized=True)
    assert levels.tolist() == [[0.125, 60.0]]  # no energy: the level floor of 1/8 kWh


def test_widen_quantiles_scales_widens_and_floors() -> None:
    outputs = np.array([[1.0, 2.0, 4.0], [-1.0, 0.5, 1.0]])
    got = widen_quantiles(outputs, np.array([2.0, 1.0]), 1.5)
    # Row 0: (2, 4, 8) -> q10 = 4 - 1.5 * 2 = 1, q90 = 4 + 1.5 * 4 = 10; row 1: q10 = 0.5 - 2.25 < 0.
    assert got.tolist() == [[1.0, 4.0, 10.0], [0.0, 0.5, 1.25]]


def test_local_calendar_on_the_daylight_saving_days() -> None:
    instants = [
        dt.datetime(2019, 11, 3, 8, 30, tzinfo=dt.UTC),  # 01:30 PDT
        dt.datetime(2019, 11, 3, 9, 30, tzinfo=dt.UTC),  # 01:30 PST, an hour later
        dt.datetime(2020, 3, 8, 10, 0, tzinfo=dt.UTC),  # 03:00 PDT: 02:00 is skipped
        dt.datetime(2019, 12, 31, 8, 0, tzinfo=dt.UTC),  # 2019-12-31 00:00 PST
    ]
    calendar = local_calendar(np.array([instant_ns(t) for t in instants]), "America/Los_Angeles")
    assert calendar.hour.tolist() == [1, 1, 3, 0]
    assert calendar.minute.tolist() == [30, 30, 0, 0]
    assert calendar.weekday.tolist() == [6, 6, 6, 1]
    assert calendar.day.tolist() == [day_of_date(dt.date(2019, 11, 3))] * 2 + [
        day_of_date(dt.date(2020, 3, 8)),
        day_of_date(dt.date(2019, 12, 31)),
    ]
    assert calendar.years() == (2019, 2020)


@settings(max_examples=50, deadline=None)
@given(
    st.lists(st.integers(946_684_800, 1_893_456_000), min_size=1, max_size=20),
    st.sampled_from(["America/Los_Angeles", "Europe/Amsterdam", "Australia/Lord_Howe", "Asia/Kolkata"]),
)
def test_local_calendar_equals_pandas(seconds: list[int], timezone: str) -> None:
    instants_ns = np.array(seconds, dtype=np.int64) * 10**9 + 123_456_789
    calendar = local_calendar(instants_ns, timezone)
    local = pd.DatetimeIndex(pd.to_datetime(instants_ns, unit="ns", utc=True)).tz_convert(timezone)
    days = local.tz_localize(None).normalize().as_unit("ns").asi8 // (86_400 * 10**9)
    np.testing.assert_array_equal(calendar.day, days)
    np.testing.assert_array_equal(calendar.hour, local.hour)
    np.testing.assert_array_equal(calendar.minute, local.minute)
    np.testing.assert_array_equal(calendar.weekday, local.dayofweek)
