"""Session needs at arrival: no leakage, hand-checked baselines, sorted quantiles, errors, ONNX, backtest."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from smac_rl.cli.main import app
from smac_rl.data.loaders import caltech_sessions
from smac_rl.features.session_windows import masked_quantiles
from smac_rl_forecasting.backtest import (
    ARRIVALS_FIT,
    SessionsBacktestConfig,
    evaluate_sessions,
    session_selection_score,
    sessions_backtest,
    widened_to_coverage,
)
from smac_rl_forecasting.metrics import score
from smac_rl_forecasting.model import BoosterConfig
from smac_rl_forecasting.onnx_export import export_forecaster, onnx_outputs
from smac_rl_forecasting.series import CALTECH_TIMEZONE, ForecastInputError
from smac_rl_forecasting.sessions import (
    SESSION_PARITY_TOLERANCE,
    SESSION_TARGETS,
    SessionFeatureConfig,
    SessionNeedsForecaster,
    widening_for_coverage,
)

TINY = BoosterConfig(n_trees=10, num_leaves=7, min_data_in_leaf=20, num_threads=1, seed=0)
"""Few small trees, one thread: fast and reproducible."""

DAY0 = pd.Timestamp("2019-05-01")
"""First local day of the synthetic sessions (a Wednesday; no DST change in the next 60 days)."""


def _local(day: int, hour: int, minute: int = 0) -> pd.Timestamp:
    local = (DAY0 + pd.Timedelta(days=day, hours=hour, minutes=minute)).tz_localize(CALTECH_TIMEZONE)
    return local.tz_convert("UTC")


def synthetic_sessions(n_days: int = 40) -> pd.DataFrame:
    """Two sessions a day: 09:00 local, 60 min, ``day + 1`` kWh; 14:00, 30 min, ``100 + day`` kWh."""
    rows = []
    for day in range(n_days):
        rows.append((_local(day, 9), _local(day, 10), day + 1.0))
        rows.append((_local(day, 14), _local(day, 14, 30), 100.0 + day))
    arrival, departure, energy = zip(*rows, strict=True)
    return pd.DataFrame(
        {
            "arrival_utc": pd.DatetimeIndex(arrival),
            "departure_utc": pd.DatetimeIndex(departure),
            "delivered_energy_kwh": energy,
        }
    )


@pytest.fixture(scope="module")
def fit_sessions() -> pd.DataFrame:
    """Caltech sessions 2019-05..08."""
    return caltech_sessions(ARRIVALS_FIT)


@pytest.fixture(scope="module")
def fitted(fit_sessions: pd.DataFrame) -> SessionNeedsForecaster:
    """A tiny normalised forecaster fitted on the sessions arriving before 2019-07-20."""
    early = fit_sessions[fit_sessions["arrival_utc"] < pd.Timestamp("2019-07-20", tz="UTC")]
    return SessionNeedsForecaster(booster=TINY).fit(early)


def test_baselines_are_the_hand_computed_quantiles_of_ended_sessions() -> None:
    sessions = synthetic_sessions()
    forecaster = SessionNeedsForecaster(booster=TINY)
    # Day 35 is a Wednesday: at 09:30 its 09:00 session has not ended; at 11:30 it has, and there is
    # no session in hour 11, so the nearest hour with sessions (9) is used.
    _, _, stats = forecaster.feature_rows([_local(35, 9, 30), _local(35, 11, 30)], sessions)
    naive, profile = stats.quantiles["seasonal_naive"], stats.quantiles["profile_4w"]
    # One week earlier: day 28's 09:00 session, 29 kWh, 60 min.
    np.testing.assert_array_equal(naive[:, 0, :], [[29.0, 29.0, 29.0], [29.0, 29.0, 29.0]])
    np.testing.assert_array_equal(naive[:, 1, :], [[60.0, 60.0, 60.0], [60.0, 60.0, 60.0]])
    # Same weekday and hour in the last 28 days: days 14, 21 and 28 (day 7's 09:00 session is before
    # the window), 15, 22 and 29 kWh, whose linear quantiles are 16.4, 22 and 27.6; at 11:30 also
    # day 35's, 36 kWh: 17.1, 25.5 and 33.9.
    np.testing.assert_allclose(profile[:, 0, :], [[16.4, 22.0, 27.6], [17.1, 25.5, 33.9]])
    np.testing.assert_allclose(profile[:, 1, :], [[60.0, 60.0, 60.0], [60.0, 60.0, 60.0]])


@settings(max_examples=60, deadline=None)
@given(
    values=st.lists(st.sampled_from([0.0, 0.5, 1.0, 2.5, 7.25, 60.0, 480.0]), min_size=1, max_size=12),
    seed=st.integers(0, 2**16),
)
def testmasked_quantiles_equal_numpy_row_by_row(values: list[float], seed: int) -> None:
    rng = np.random.default_rng(seed)
    table = np.column_stack([values, rng.permutation(values)])
    mask = rng.random((5, len(values))) < 0.5
    out = masked_quantiles(table, mask)
    for row in range(5):
        if not mask[row].any():
            assert np.isnan(out[row]).all()
            continue
        for t in (0, 1):
            expected = np.quantile(table[mask[row], t], [0.1, 0.5, 0.9])
            np.testing.assert_allclose(out[row, t], expected, rtol=1e-12, atol=1e-12)


def test_features_of_a_synthetic_arrival_are_hand_checkable() -> None:
    sessions = synthetic_sessions()
    forecaster = SessionNeedsForecaster(booster=TINY, features=SessionFeatureConfig(is_normalized=False))
    features, levels, stats = forecaster.feature_rows([_local(35, 9, 30)], sessions)
    row = dict(zip(forecaster.feature_names, features[0], strict=True))
    # 28 days before day 35 09:30: days 8..34 whole (54 sessions) and day 7's 14:00 one.
    assert row["n_sessions_28d"] == 55.0
    assert row["n_sessions_7d"] == 13.0  # day 28's 14:00 session and days 29..34
    assert row["n_same_hour_28d"] == 27.0  # the 09:00 sessions of days 8..34
    assert (row["hour_local_h"], row["minute_of_day_min"], row["weekday"]) == (9.0, 570.0, 2.0)
    assert row["is_holiday"] == 0.0
    # Same hour: 9..35 kWh, median 22; the last 7 days: 30..35 and 128..134 kWh, median 128.
    assert row["q50_same_hour_energy_kwh"] == 22.0
    assert row["q50_7d_energy_kwh"] == 128.0
    assert row["q50_same_hour_dwell_min"] == 60.0
    np.testing.assert_array_equal(levels, [[1.0, 1.0]])
    assert stats.history_days[0] == pytest.approx(35 + 0.5 / 24)


def test_no_leakage_sessions_not_ended_at_an_arrival_do_not_move_its_forecast(
    fitted: SessionNeedsForecaster, fit_sessions: pd.DataFrame
) -> None:
    arrivals = pd.DatetimeIndex(fit_sessions["arrival_utc"].iloc[[2500, 2800, 3100, 3400]])
    cut = arrivals.max()
    rng = np.random.default_rng(7)
    later = fit_sessions["departure_utc"] >= cut  # not ended at any of the arrivals
    altered = fit_sessions.copy()
    n_later = int(later.sum())
    altered.loc[later, "delivered_energy_kwh"] = rng.permutation(altered.loc[later, "delivered_energy_kwh"])
    altered.loc[later, "departure_utc"] += pd.to_timedelta(rng.integers(1, 600, n_later), unit="min")
    fake = altered[later].head(50).copy()
    fake["arrival_utc"] = cut - pd.Timedelta(minutes=5)  # plugged in before, still there at the cut
    fake["departure_utc"] = cut + pd.Timedelta(days=3)
    fake["delivered_energy_kwh"] = 70.0
    altered = pd.concat([altered.drop(altered[later].index[::3]), fake], ignore_index=True)
    altered = altered.sample(frac=1.0, random_state=3)  # row order does not matter either
    for shown in (arrivals, arrivals[::-1]):
        before = fitted.predict(shown, fit_sessions, include_baselines=True)
        after = fitted.predict(shown, altered, include_baselines=True)
        pd.testing.assert_frame_equal(before, after, check_exact=True)
    # The test can fail: altering sessions that did end before the arrivals moves the forecast.
    ended = fit_sessions.copy()
    ended.loc[~later, "delivered_energy_kwh"] *= 2.0
    moved = fitted.predict(arrivals, ended)
    assert not np.allclose(moved["q50_energy_kwh"], fitted.predict(arrivals, fit_sessions)["q50_energy_kwh"])


class _Constant:
    """A stand-in booster that predicts one value for every row."""

    def __init__(self, value: float) -> None:
        self.value = value

    def predict(self, features: Any) -> np.ndarray:
        return np.full(np.asarray(features).shape[0], self.value)


def test_quantiles_are_sorted_scaled_by_the_level_and_floored_at_zero() -> None:
    forecaster = SessionNeedsForecaster(booster=TINY)
    values = {"q10": 5.0, "q50": 3.0, "q90": 4.0}  # crossing raw outputs
    forecaster.boosters = {f"{q}_energy_kwh": _Constant(v) for q, v in values.items()}
    forecaster.boosters |= {f"{q}_dwell_min": _Constant(v - 4.5) for q, v in values.items()}
    levels = np.array([[2.0, 10.0], [1.0, 100.0]])
    outputs = forecaster.predict_raw(np.zeros((2, 23)), levels)
    np.testing.assert_allclose(outputs, [[6.0, 8.0, 10.0, 0.0, 0.0, 5.0], [3.0, 4.0, 5.0, 0.0, 0.0, 50.0]])
    # Widened about the median: energy by 1.5 (8 -+ 1.5 * 2), dwell by 0.5 (-5 - 0.5 * 10, -5 + 0.5 * 10).
    widened = replace(forecaster, interval_widening=(1.5, 0.5)).predict_raw(np.zeros((2, 23)), levels)
    np.testing.assert_allclose(widened[0], [5.0, 8.0, 11.0, 0.0, 0.0, 0.0])
    np.testing.assert_allclose(widened[1], [2.5, 4.0, 5.5, 0.0, 0.0, 0.0])


def test_widening_is_the_smallest_factor_reaching_the_coverage() -> None:
    y = np.array([0.0, 1.0, 2.0, 3.0, 4.0])
    q10, q50, q90 = np.full(5, 1.0), np.full(5, 2.0), np.full(5, 3.0)
    # Needs: (2 - 0) / 1 = 2, 1, 0, 1, 2; the 3rd smallest covers 60 %, the 4th 80 %.
    assert widening_for_coverage(y, q10, q50, q90, 0.6) == 1.0
    assert widening_for_coverage(y, q10, q50, q90, 0.8) == 2.0
    assert widening_for_coverage(y, q10, q50, q90, 0.61) == 2.0
    # A zero-width lower side never covers a truth below the median.
    with pytest.raises(ForecastInputError, match=r"^actual: got a widening of inf"):
        widening_for_coverage(y, q50, q50, q90, 0.9)
    with pytest.raises(ForecastInputError, match=r"^coverage_frac: got 80; expected a share in \(0, 1\)"):
        widening_for_coverage(y, q10, q50, q90, 80)


def test_forecasts_never_cross_and_are_not_negative(
    fitted: SessionNeedsForecaster, fit_sessions: pd.DataFrame
) -> None:
    arrivals = pd.DatetimeIndex(fit_sessions["arrival_utc"].iloc[2400::7])
    frame = fitted.predict(arrivals, fit_sessions)
    assert frame.shape == (len(arrivals), 7)
    for target in SESSION_TARGETS:
        q10, q50, q90 = (frame[f"{q}_{target}"].to_numpy() for q in ("q10", "q50", "q90"))
        assert (q10 >= 0.0).all()
        assert (q10 <= q50).all()
        assert (q50 <= q90).all()
        assert (q10 < q90).mean() > 0.9


def test_bad_inputs_raise_clear_errors(fitted: SessionNeedsForecaster) -> None:
    sessions = synthetic_sessions()
    forecaster = SessionNeedsForecaster(booster=TINY)
    with pytest.raises(ForecastInputError, match=r"^arrivals_utc: got naive 2019-06-05T09:30:00; expected"):
        forecaster.predict([dt.datetime(2019, 6, 5, 9, 30)], sessions)
    local = sessions.assign(arrival_utc=sessions["arrival_utc"].dt.tz_convert(CALTECH_TIMEZONE))
    with pytest.raises(
        ForecastInputError,
        match=r"^sessions.arrival_utc: got time zone America/Los_Angeles; expected UTC",
    ):
        forecaster.predict([_local(35, 9)], local)
    naive = sessions.assign(departure_utc=sessions["departure_utc"].dt.tz_localize(None))
    with pytest.raises(ForecastInputError, match=r"^sessions.departure_utc: got naive timestamps"):
        forecaster.predict([_local(35, 9)], naive)
    with pytest.raises(ForecastInputError, match=r"^sessions: got no column delivered_energy_kwh"):
        forecaster.predict([_local(35, 9)], sessions.drop(columns="delivered_energy_kwh"))
    backwards = sessions.assign(departure_utc=sessions["arrival_utc"])
    with pytest.raises(ForecastInputError, match=r"^sessions.departure_utc: got .* at row 0; expected after"):
        forecaster.predict([_local(35, 9)], backwards)
    with pytest.raises(
        ForecastInputError,
        match=r"^sessions: got 20.0 days of ended sessions before arrival 2019-05-21T16:30:00\+00:00; "
        r"expected at least 28$",
    ):
        forecaster.predict([_local(20, 9, 30)], sessions)
    sparse = sessions.iloc[::8]  # one session every four days: 7 in a 28-day window
    with pytest.raises(ForecastInputError, match=r"^sessions: got 7 sessions ended in the 28 days"):
        forecaster.predict([_local(39, 9, 30)], sparse)
    with pytest.raises(
        ForecastInputError, match=r"^sessions: got 0 sessions ended in the 28 days before arrival"
    ):
        forecaster.predict([_local(100, 9)], sessions)  # 60 days after the last session: none in the window
    with pytest.raises(ForecastInputError, match=r"^sessions forecaster: not fitted"):
        forecaster.predict([_local(35, 9, 30)], sessions)
    with pytest.raises(ForecastInputError, match=r"^sessions: got 24 sessions with 28 days of history"):
        forecaster.fit(sessions)
    with pytest.raises(ForecastInputError, match=r"^booster.objective: got 'poisson'"):
        SessionNeedsForecaster(booster=replace(TINY, objective="poisson"))
    with pytest.raises(ForecastInputError, match=r"^booster.quantiles: got \(0.05, 0.5, 0.95\)"):
        SessionNeedsForecaster(booster=replace(TINY, quantiles=(0.05, 0.5, 0.95)))
    with pytest.raises(ForecastInputError, match=r"^interval_widening: got \(1.0, 0.0\); expected 2 finite"):
        SessionNeedsForecaster(booster=TINY, interval_widening=(1.0, 0.0))


def test_onnx_export_reproduces_the_forecasts(
    fitted: SessionNeedsForecaster, fit_sessions: pd.DataFrame, tmp_path: Path
) -> None:
    arrivals = pd.DatetimeIndex(fit_sessions["arrival_utc"].iloc[3000::5])
    fitted = replace(fitted, interval_widening=(1.25, 0.8))
    features, levels, _ = fitted.feature_rows(arrivals, fit_sessions)
    exported = export_forecaster(
        fitted, tmp_path / "v1", features, "test_sessions", "v1", None, "# card\n", SESSION_PARITY_TOLERANCE
    )
    assert sorted(p.name for p in (tmp_path / "v1").iterdir()) == sorted(
        [f"{name}.onnx" for name in fitted.output_names] + ["MODEL_CARD.md", "metadata.json"]
    )
    assert exported.max_parity_error <= SESSION_PARITY_TOLERANCE
    metadata = json.loads((tmp_path / "v1" / "metadata.json").read_text())
    assert metadata["feature_names"] == fitted.feature_names
    assert metadata["parity"]["tolerance"] == SESSION_PARITY_TOLERANCE
    assert metadata["postprocess"].startswith("per target (energy_kwh, dwell_min): sort")
    # The stated post-processing of the graphs' outputs gives the forecaster's forecasts.
    expected = fitted.predict(arrivals, fit_sessions)
    for t, target in enumerate(SESSION_TARGETS):
        raw = np.column_stack(
            [
                onnx_outputs(exported.onnx_files[f"{q}_{target}"].read_bytes(), features)
                for q in ("q10", "q50", "q90")
            ]
        )
        q10, q50, q90 = (np.sort(raw, axis=1) * levels[:, t : t + 1]).T
        k = fitted.interval_widening[t]
        forecast = np.maximum(np.column_stack([q50 - k * (q50 - q10), q50, q50 + k * (q90 - q50)]), 0.0)
        columns = [f"{q}_{target}" for q in ("q10", "q50", "q90")]
        np.testing.assert_allclose(forecast, expected[columns].to_numpy(), atol=0.01)


def test_evaluation_scores_the_forecaster_and_the_baselines(fitted: SessionNeedsForecaster) -> None:
    evaluation = evaluate_sessions(fitted, caltech_sessions(ARRIVALS_FIT), "check", max_days=2)
    assert (evaluation.first_day, evaluation.last_day) == (dt.date(2019, 5, 29), dt.date(2019, 5, 30))
    frame = evaluation.forecasts
    arrival_day = frame["arrival_utc"].dt.tz_convert(CALTECH_TIMEZONE).dt.date
    assert set(arrival_day) == {dt.date(2019, 5, 29), dt.date(2019, 5, 30)}
    scores = evaluation.scores
    assert list(scores.index) == ["lightgbm", "seasonal_naive", "profile_4w"]
    assert score(scores, "profile_4w", "pinball_ratio_dwell_profile_4w") == 1.0
    assert score(scores, "seasonal_naive", "mae_ratio_energy_seasonal_naive") == 1.0
    y = frame["actual_energy_kwh"].to_numpy()
    assert score(scores, "lightgbm", "mae_energy_kwh") == pytest.approx(
        np.mean(np.abs(y - frame["q50_energy_kwh"]))
    )
    inside = (frame["profile_4w_q10_dwell_min"] <= frame["actual_dwell_min"]) & (
        frame["actual_dwell_min"] <= frame["profile_4w_q90_dwell_min"]
    )
    assert score(scores, "profile_4w", "coverage_10_90_dwell_frac") == pytest.approx(inside.mean())


def test_tiny_backtest_selects_on_2019_and_reports_2021_and_2020() -> None:
    result = sessions_backtest(SessionsBacktestConfig(booster=TINY, max_days=2))
    assert list(result.selection) == ["raw", "normalized"]
    assert result.selected == min(
        result.selection, key=lambda c: session_selection_score(result.selection[c].scores)
    )
    assert result.report.label == "report_2021-05..08"
    assert result.report.first_day >= dt.date(2021, 5, 29)
    assert result.report.last_day <= result.report.first_day + dt.timedelta(days=1)
    assert [e.label for e in result.stress] == ["stress_2020-02..05"]
    model = result.report_forecaster
    assert model.features.is_normalized == (result.selected == "normalized")
    # Intervals widened to cover 80 % of the selection sessions, as scored unwidened there.
    widened = widened_to_coverage(model, result.selection[result.selected], 0.8)
    assert model.interval_widening == widened.interval_widening
    assert model.interval_widening != (1.0, 1.0)
    assert np.isfinite(result.report.scores.to_numpy()).all()


def test_cli_fit_sessions_writes_six_graphs_and_an_mlflow_run(tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    out = tmp_path / "model"
    args = [
        "forecast",
        "fit",
        "--target",
        "sessions",
        "--n-trees",
        "3",
        "--out",
        str(out),
        "--tracking-uri",
        uri,
    ]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    names = sorted(p.name for p in out.iterdir())
    assert names == sorted(
        [f"{q}_{t}.onnx" for t in SESSION_TARGETS for q in ("q10", "q50", "q90")]
        + ["MODEL_CARD.md", "metadata.json"]
    )
    metadata = json.loads((out / "metadata.json").read_text())
    assert metadata["booster"]["n_trees"] == 3
    run = mlflow.MlflowClient(tracking_uri=uri).get_run(metadata["mlflow_run_id"])
    assert run.data.params["target"] == "sessions"
    assert run.data.metrics["onnx_parity_max_abs_error"] <= SESSION_PARITY_TOLERANCE
