"""The slot forecasters' series features of the core, checked by hand on small series.

The forecasting package (``build_features``) and the service (``smac_rl_serve.series_features``)
both build their rows with this module; their parity on the bundled prices and the Caltech arrival
counts is tested in ``tests/serve/test_forecasters.py`` and ``tests/serve/test_arrivals_forecaster.py``.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
import pytest

from smac_rl.features.series import (
    SERIES_FEATURE_NAMES,
    SeriesFeatureSpec,
    calendar_columns,
    local_years,
    series_feature_names,
    series_features,
)
from smac_rl.features.session_windows import day_of_date, instant_ns

START = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
"""A Monday."""

ORIGIN = 28 * 24
"""Position of 2024-01-29 00:00 UTC (a Monday) in an hourly series from :data:`START`."""


@dataclass(frozen=True)
class Spec(SeriesFeatureSpec):
    step_min: int
    timezone: str
    is_normalized: bool
    scale_floor: float


HOURLY_UTC = Spec(step_min=60, timezone="UTC", is_normalized=False, scale_floor=0.01)


def _at(month: int, day: int, hour: int, minute: int = 0, year: int = 2024) -> int:
    return instant_ns(dt.datetime(year, month, day, hour, minute, tzinfo=dt.UTC))


def test_names_and_sizes() -> None:
    assert len(SERIES_FEATURE_NAMES) == 21
    assert series_feature_names(False) == list(SERIES_FEATURE_NAMES)
    assert series_feature_names(True)[-2:] == ["level", "scale"]
    quarter = Spec(step_min=15, timezone="UTC", is_normalized=True, scale_floor=1.0)
    assert (quarter.steps_per_day, quarter.history_steps, quarter.max_horizon_steps) == (96, 2688, 672)
    assert len(quarter.feature_names) == 23


def test_value_and_calendar_features_of_a_ramp_by_hand() -> None:
    values = np.arange(ORIGIN + 200, dtype=np.float64)  # v[i] = i
    holiday = day_of_date(dt.date(2024, 1, 29))
    rows, level, scale = series_features(
        values, instant_ns(START), np.array([ORIGIN, ORIGIN]), np.array([0, 25]), HOURLY_UTC, [holiday]
    )
    first = dict(zip(HOURLY_UTC.feature_names, rows[0].tolist(), strict=True))
    second = dict(zip(HOURLY_UTC.feature_names, rows[1].tolist(), strict=True))
    # Lead 0 (Monday 2024-01-29 00:00, a holiday here): the slot 1..7 days and 1..4 weeks back.
    assert [first[f"same_slot_d{d}"] for d in range(1, 8)] == [648, 624, 600, 576, 552, 528, 504]
    assert [first[f"week_lag_{j}"] for j in range(1, 5)] == [504, 336, 168, 0]
    assert (first["profile_4w"], first["last"], first["mean_24h"], first["mean_168h"]) == (
        252,
        671,
        659.5,
        587.5,
    )
    assert first["std_168h"] == pytest.approx(np.sqrt((168**2 - 1) / 12), rel=1e-12)
    assert (first["lead_h"], first["hour_of_day_h"], first["weekday"], first["month"]) == (0, 0, 0, 1)
    assert first["is_holiday"] == 1.0
    # Lead 25 (Tuesday 01:00): c = 2, so the same slot of the last day before the origin is v[649].
    assert [second[f"same_slot_d{d}"] for d in (1, 7)] == [649, 505]
    assert (second["week_lag_1"], second["last"]) == (529, 671)
    assert (second["lead_h"], second["hour_of_day_h"], second["weekday"], second["is_holiday"]) == (
        25,
        1,
        1,
        0,
    )
    assert level.tolist() == [0.0, 0.0]
    assert scale.tolist() == [1.0, 1.0]


def test_normalised_constant_series_uses_the_scale_floor() -> None:
    spec = Spec(step_min=60, timezone="UTC", is_normalized=True, scale_floor=0.5)
    values = np.full(ORIGIN, 2.0)
    rows, level, scale = series_features(
        values, instant_ns(START), np.array([ORIGIN]), np.array([3]), spec, []
    )
    row = dict(zip(spec.feature_names, rows[0].tolist(), strict=True))
    value_like = [
        name
        for name in SERIES_FEATURE_NAMES
        if name not in ("lead_h", "hour_of_day_h", "weekday", "month", "is_holiday")
    ]
    assert [row[name] for name in value_like] == [0.0] * len(value_like)  # (2 - 2) / 0.5; std 0 / 0.5
    assert (row["level"], row["scale"], row["lead_h"], row["hour_of_day_h"]) == (2.0, 0.5, 3.0, 3.0)
    assert (level.tolist(), scale.tolist()) == ([2.0], [0.5])


def test_rows_never_read_at_or_after_their_origin() -> None:
    values = np.arange(ORIGIN + 24, dtype=np.float64)
    spoiled = values.copy()
    spoiled[ORIGIN:] = np.nan
    origin, lead = np.full(24, ORIGIN), np.arange(24)
    clean = series_features(values, instant_ns(START), origin, lead, HOURLY_UTC, [])
    dirty = series_features(spoiled, instant_ns(START), origin, lead, HOURLY_UTC, [])
    for a, b in zip(clean, dirty, strict=True):
        np.testing.assert_array_equal(a, b)


def test_calendar_in_local_time_across_daylight_saving_and_new_year() -> None:
    spring = [_at(3, 31, h) for h in range(4)]  # 01:00 CET, then 03:00, 04:00, 05:00 CEST
    autumn = [_at(10, 27, 0, 45), _at(10, 27, 1, 45)]  # 02:45 CEST, then 02:45 CET
    new_year = [_at(12, 31, 23, 30)]  # Wednesday 2025-01-01 00:30 CET, a holiday
    instants = np.array(spring + autumn + new_year, dtype=np.int64)
    table = calendar_columns(instants, "Europe/Amsterdam", [day_of_date(dt.date(2025, 1, 1))])
    assert table[:, 0].tolist() == [1.0, 3.0, 4.0, 5.0, 2.75, 2.75, 0.5]
    assert table[:, 1].tolist() == [6.0] * 6 + [2.0]
    assert table[:, 2].tolist() == [3.0] * 4 + [10.0] * 2 + [1.0]
    assert table[:, 3].tolist() == [0.0] * 6 + [1.0]
    assert calendar_columns(np.zeros(0, dtype=np.int64), "UTC", []).shape == (0, 4)
    assert local_years(instants[-1:], "Europe/Amsterdam") == (2025, 2025)
    assert local_years(instants, "Europe/Amsterdam") == (2024, 2025)
