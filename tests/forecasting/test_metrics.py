"""Scores on hand-checkable numbers."""

from __future__ import annotations

import math

import numpy as np
import pytest

from smac_rl_forecasting.metrics import interval_coverage_frac, mae, pinball_loss, poisson_deviance, rmse


def test_point_scores() -> None:
    y, f = np.array([1.0, 2.0, 4.0]), np.array([2.0, 2.0, 1.0])
    assert mae(y, f) == pytest.approx(4.0 / 3.0)
    assert rmse(y, f) == pytest.approx(math.sqrt(10.0 / 3.0))


def test_pinball_is_asymmetric_and_half_the_mae_at_the_median() -> None:
    y, f = np.array([0.0, 10.0]), np.array([5.0, 5.0])
    assert pinball_loss(y, f, 0.9) == pytest.approx((0.1 * 5 + 0.9 * 5) / 2)
    assert pinball_loss(np.array([0.0]), np.array([5.0]), 0.9) == pytest.approx(0.5)
    assert pinball_loss(y, f, 0.5) == pytest.approx(mae(y, f) / 2)


def test_coverage_counts_the_bounds_inside() -> None:
    y = np.array([1.0, 2.0, 3.0, 4.0])
    assert interval_coverage_frac(y, np.full(4, 2.0), np.full(4, 3.0)) == 0.5


def test_poisson_deviance_is_zero_for_the_truth_and_floors_zero_forecasts() -> None:
    y = np.array([0.0, 1.0, 3.0])
    assert poisson_deviance(y, np.maximum(y, 0.01)) == pytest.approx(2 * 0.01 / 3)
    assert poisson_deviance(np.array([1.0]), np.array([0.0])) == pytest.approx(2 * (math.log(100.0) - 0.99))


def test_misaligned_inputs_are_refused() -> None:
    with pytest.raises(ValueError, match=r"^forecast: got shapes"):
        mae(np.zeros(3), np.zeros(2))
