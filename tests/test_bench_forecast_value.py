"""``smac bench forecast-value``: one generated day, 2-hour MPC windows, the report's invariants."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from smac_rl.bench.forecast_value import METHODS, MPC_METHODS, MpcDayFigures
from smac_rl.cli.main import app
from tests.core.test_units import name_problems

runner = CliRunner()

PRICE_MODEL = Path(__file__).parents[1] / "models" / "forecasters" / "nl_day_ahead_prices" / "v1"


def test_the_figures_carry_units() -> None:
    assert name_problems(MpcDayFigures) == []


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    out = tmp_path_factory.mktemp("forecast_value") / "report.json"
    result = runner.invoke(
        app,
        [
            "bench",
            "forecast-value",
            "--days",
            "1",
            "--first-day",
            "2024-04-15",
            "--horizon-h",
            "2",
            "--price-model",
            str(PRICE_MODEL),
            "--output",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "mpc_seasonal_naive_prices" in result.output
    payload: dict[str, object] = json.loads(out.read_text())
    return payload


def test_the_report_holds_every_method_on_the_same_day(report: dict[str, object]) -> None:
    summary = report["summary"]
    records = report["records"]
    assert isinstance(summary, dict)
    assert isinstance(records, list)
    assert list(summary) == list(METHODS)
    assert [r["policy"] for r in records] == list(METHODS)
    assert {r["scenario"] for r in records} == {"turku_ultrafast_hub_2024-04-15_1d_elaad_s0"}
    setup = report["setup"]
    assert isinstance(setup, dict)
    assert setup["mpc_horizon_h"] == 2.0
    assert setup["price_model_last_training_target_utc"] < "2024"
    for name in METHODS:
        assert summary[name]["total_cost_sum_eur"] == pytest.approx(
            sum(r["total_cost_eur"] for r in records if r["policy"] == name), rel=1e-12
        )


def test_the_oracle_bounds_every_method_and_captures_are_scored_against_it(report: dict[str, object]) -> None:
    records = report["records"]
    assert isinstance(records, list)
    by_method = {r["policy"]: r for r in records}
    optimum = by_method["optimal"]
    assert optimum["optimum_status"] == "optimal"
    assert by_method["uncontrolled"]["savings_capture_frac"] == 0.0
    assert optimum["savings_capture_frac"] == 1.0
    for name in MPC_METHODS:
        # no policy beats the perfect-foresight optimum (its MIP gap is at most 1e-4)
        assert by_method[name]["objective_eur"] >= optimum["objective_eur"] - 1e-4 * abs(
            optimum["objective_eur"]
        )
        assert by_method[name]["savings_capture_frac"] <= 1.0 + 1e-4


def test_only_the_perfect_forecast_is_free_of_price_error(report: dict[str, object]) -> None:
    figures = report["mpc_days"]
    assert isinstance(figures, list)
    mae = {f["method"]: f["price_mae_eur_per_kwh"] for f in figures}
    assert list(mae) == list(MPC_METHODS)
    assert mae["mpc_perfect"] == 0.0
    assert mae["mpc_lightgbm_prices_q50"] > 0.0
    assert mae["mpc_seasonal_naive_prices"] > 0.0
    assert all(f["n_steps"] == 96 for f in figures)
    assert {f["scenario"] for f in figures} == {"turku_ultrafast_hub_2024-04-15_1d_elaad_s0"}
    records = report["records"]
    assert isinstance(records, list)
    costs = {r["policy"]: r["objective_eur"] for r in records}
    # the forecasts reach the MPC: the two forecast MPCs plan differently
    assert costs["mpc_lightgbm_prices_q50"] != costs["mpc_seasonal_naive_prices"]


def test_days_the_price_model_was_fitted_on_are_refused() -> None:
    result = runner.invoke(
        app, ["bench", "forecast-value", "--first-day", "2023-06-01", "--price-model", str(PRICE_MODEL)]
    )
    assert result.exit_code == 1
    assert "first_day: got 2023-06-01; expected a day that starts after the price model's" in result.output


def test_a_missing_price_model_is_one_line() -> None:
    result = runner.invoke(app, ["bench", "forecast-value", "--days", "1", "--price-model", "no/such/model"])
    assert result.exit_code == 1
    assert (
        "price model: got 'no/such/model'; expected a folder with a readable metadata.json" in result.output
    )
