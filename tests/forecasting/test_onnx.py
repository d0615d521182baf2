"""ONNX export: graphs agree with LightGBM within the stated tolerance; metadata and sizes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from smac_rl_forecasting.onnx_export import (
    PARITY_TOLERANCE,
    OnnxParityError,
    export_forecaster,
    onnx_outputs,
    to_onnx_bytes,
)
from smac_rl_forecasting.prices import PriceForecaster


def _rows(forecaster: PriceForecaster, prices: pd.Series) -> np.ndarray:
    origins = [pd.Timestamp("2024-03-20", tz="UTC") + pd.Timedelta(hours=7 * i) for i in range(20)]
    return forecaster.core.feature_rows(prices, origins)[2]


def test_export_writes_graphs_metadata_and_card_with_parity(
    fitted_prices: PriceForecaster, prices_2024: pd.Series, tmp_path: Path
) -> None:
    rows = _rows(fitted_prices, prices_2024)
    exported = export_forecaster(
        fitted_prices.core,
        tmp_path / "m" / "v1",
        rows,
        "test_prices",
        "v1",
        {"mlflow_run_id": "x"},
        "# card\n",
    )
    assert sorted(p.name for p in exported.onnx_files.values()) == ["q10.onnx", "q50.onnx", "q90.onnx"]
    assert exported.max_parity_error <= PARITY_TOLERANCE
    metadata = json.loads((tmp_path / "m" / "v1" / "metadata.json").read_text())
    assert metadata["feature_names"] == fitted_prices.core.feature_names
    assert metadata["mlflow_run_id"] == "x"
    assert metadata["opsets"]["ai.onnx"] <= 15
    assert (tmp_path / "m" / "v1" / "MODEL_CARD.md").read_text() == "# card\n"
    for path in exported.onnx_files.values():
        assert path.stat().st_size < 1_000_000
        raw = fitted_prices.core.boosters[path.stem].predict(rows.astype(np.float32))
        np.testing.assert_allclose(onnx_outputs(path.read_bytes(), rows), raw, atol=PARITY_TOLERANCE)


def test_a_graph_that_disagrees_is_not_written(
    fitted_prices: PriceForecaster, prices_2024: pd.Series, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    graphs = to_onnx_bytes(fitted_prices.core)
    swapped = {"q10": graphs["q90"], "q50": graphs["q50"], "q90": graphs["q10"]}
    monkeypatch.setattr("smac_rl_forecasting.onnx_export.to_onnx_bytes", lambda core: swapped)
    with pytest.raises(OnnxParityError, match=r"^onnx: got a difference"):
        export_forecaster(fitted_prices.core, tmp_path / "bad", _rows(fitted_prices, prices_2024), "t", "v1")
    assert not (tmp_path / "bad").exists()
