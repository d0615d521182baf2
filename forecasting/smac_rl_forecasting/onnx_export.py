"""ONNX export of a fitted forecaster: one graph per booster, ``metadata.json`` and ``MODEL_CARD.md``.

Each booster becomes ``<output>.onnx`` (``q10.onnx``, ``q50.onnx``, ``q90.onnx`` or ``mean.onnx``)
via onnxmltools' LightGBM converter (``target_opset`` :data:`TARGET_OPSET`). A graph takes the
feature rows ``features`` (float32, ``(N, F)``, in the metadata's order) and returns ``variable``
``(N, 1)``: the booster's output before the forecaster's post-processing, which the metadata's
``postprocess`` states (for a ``SlotForecaster``: the forecast is ``variable * scale + level`` with
``level`` and ``scale`` from the features, 0 and 1 when not normalised; quantiles are sorted
afterwards so they never cross).

Parity: the export recomputes every graph on the given rows with onnxruntime and compares with
LightGBM on the same float32 rows; it refuses to write when the largest difference exceeds the
tolerance, :data:`PARITY_TOLERANCE` unless the caller states another (graphs hold float32
thresholds and leaf values, LightGBM float64).

Holidays: a forecaster whose features name a ``holiday_country`` gets the public holidays of that
country (and subdivision) for :data:`HOLIDAY_FIRST_YEAR` .. :data:`HOLIDAY_LAST_YEAR` in its
metadata (``holidays``: country, subdivision, years, package version and the ISO dates), so that a
consumer without the ``holidays`` package (the service) builds the same ``is_holiday`` feature.
:func:`add_holidays_to_metadata` adds them to a folder exported before this existed.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from smac_rl.core.arraytypes import FloatArray

TARGET_OPSET = 15
"""Highest ONNX opset asked of the LightGBM converter."""

PARITY_TOLERANCE = 1e-4
"""Largest absolute difference allowed between ONNX and LightGBM outputs [model units: the
normalised price for prices, arrivals per step for arrivals]."""

METADATA_SCHEMA_VERSION = 1

HOLIDAY_FIRST_YEAR = 2015
"""First year whose public holidays the metadata lists (the bundled prices start in 2015)."""

HOLIDAY_LAST_YEAR = 2035
"""Last year whose public holidays the metadata lists."""


class OnnxParityError(ValueError):
    """An exported graph that disagrees with its booster beyond the tolerance."""


class ExportableForecaster(Protocol):
    """What the export reads of a fitted forecaster (``SlotForecaster``, ``SessionNeedsForecaster``).

    Attributes:
        field: Name of what is forecast (graph names start with it).
        boosters: Fitted LightGBM boosters by output name (each becomes ``<name>.onnx``).
    """

    field: str
    boosters: dict[str, Any]

    @property
    def feature_names(self) -> list[str]:
        """Ordered feature names (the columns of the graphs' input)."""
        ...

    @property
    def postprocess(self) -> str:
        """How graph outputs become forecasts, in words (written to the metadata)."""
        ...

    def describe(self) -> dict[str, Any]:
        """Configuration and training summary as plain JSON-able values."""
        ...


@dataclass(frozen=True)
class ExportedForecaster:
    """What an export wrote.

    Attributes:
        directory: The model folder.
        onnx_files: Graph file of each output.
        max_parity_error: Largest ONNX-LightGBM difference on the parity rows [model units].
        metadata: The metadata written.
    """

    directory: Path
    onnx_files: dict[str, Path]
    max_parity_error: float
    metadata: dict[str, Any]


def to_onnx_bytes(core: ExportableForecaster) -> dict[str, bytes]:
    """Serialised ONNX graph of each fitted booster, by output name."""
    import onnxmltools
    from onnxmltools.convert.common.data_types import FloatTensorType

    n_features = len(core.feature_names)
    graphs = {}
    for name, booster in core.boosters.items():
        model = onnxmltools.convert_lightgbm(
            booster,
            name=f"{core.field}_{name}",
            initial_types=[("features", FloatTensorType([None, n_features]))],
            target_opset=TARGET_OPSET,
        )
        graphs[name] = model.SerializeToString()
    return graphs


def onnx_outputs(graph: bytes, features: npt.ArrayLike) -> FloatArray:
    """Run one graph on feature rows with onnxruntime, ``(N,)``."""
    import onnxruntime

    session = onnxruntime.InferenceSession(graph, providers=["CPUExecutionProvider"])
    (output,) = session.run(None, {"features": np.asarray(features, dtype=np.float32)})
    return np.asarray(output, dtype=np.float64).reshape(-1)


def parity_errors(
    core: ExportableForecaster, graphs: dict[str, bytes], features: FloatArray
) -> dict[str, float]:
    """Largest absolute ONNX-LightGBM difference of each output on the same float32 rows."""
    rows = np.asarray(features, dtype=np.float32)
    return {
        name: float(np.max(np.abs(onnx_outputs(graphs[name], rows) - core.boosters[name].predict(rows))))
        for name in core.boosters
    }


def holiday_dates(
    country: str, subdiv: str | None, first_year: int = HOLIDAY_FIRST_YEAR, last_year: int = HOLIDAY_LAST_YEAR
) -> list[str]:
    """Public holidays of a country (and subdivision) in ``first_year .. last_year``, ISO dates, sorted.

    The same call the features make (:func:`smac_rl_forecasting.features.calendar_features`).

    Raises:
        ValueError: For ``last_year`` before ``first_year``.
    """
    import holidays

    if last_year < first_year:
        raise ValueError(f"last_year: got {last_year}; expected at least first_year {first_year}")
    days = holidays.country_holidays(country, subdiv=subdiv, years=range(first_year, last_year + 1))
    return [day.isoformat() for day in sorted(days)]


def holiday_metadata(
    features: Mapping[str, Any], first_year: int = HOLIDAY_FIRST_YEAR, last_year: int = HOLIDAY_LAST_YEAR
) -> dict[str, Any] | None:
    """The ``holidays`` entry of a forecaster's metadata, from its feature configuration.

    Args:
        features: The ``features`` entry of the metadata (``holiday_country``, ``holiday_subdiv``).
        first_year: First year listed.
        last_year: Last year listed.

    Returns:
        ``country``, ``subdiv``, ``first_year``, ``last_year``, ``source`` (the ``holidays``
        package and its version) and ``dates`` (ISO, sorted); None when the features name no
        holiday country.
    """
    from importlib.metadata import version

    country = features.get("holiday_country")
    if not country:
        return None
    subdiv = features.get("holiday_subdiv")
    return {
        "country": str(country),
        "subdiv": None if subdiv is None else str(subdiv),
        "first_year": first_year,
        "last_year": last_year,
        "source": f"holidays {version('holidays')}",
        "dates": holiday_dates(str(country), None if subdiv is None else str(subdiv), first_year, last_year),
    }


def _write_metadata(directory: Path, metadata: Mapping[str, Any]) -> None:
    (directory / "metadata.json").write_text(
        json.dumps(metadata, indent=2, default=str) + "\n", encoding="utf-8"
    )


def add_holidays_to_metadata(
    directory: Path, first_year: int = HOLIDAY_FIRST_YEAR, last_year: int = HOLIDAY_LAST_YEAR
) -> dict[str, Any]:
    """Add (or refresh) the ``holidays`` entry of an exported folder's ``metadata.json``, in place.

    Every other field is kept as it is; the graphs are not touched, so their hashes still hold.

    Args:
        directory: The model folder.
        first_year: First year listed.
        last_year: Last year listed.

    Returns:
        The metadata written.

    Raises:
        ValueError: When the metadata has no ``features`` entry naming a ``holiday_country``.
    """
    metadata: dict[str, Any] = json.loads((directory / "metadata.json").read_text(encoding="utf-8"))
    entry = holiday_metadata(metadata.get("features") or {}, first_year, last_year)
    if entry is None:
        raise ValueError(
            f"{directory / 'metadata.json'}: got no features.holiday_country; expected a forecaster "
            "whose features use public holidays"
        )
    metadata["holidays"] = entry
    _write_metadata(directory, metadata)
    return metadata


def _opsets(graph: bytes) -> dict[str, int]:
    import onnx

    model = onnx.load_from_string(graph)
    return {entry.domain or "ai.onnx": int(entry.version) for entry in model.opset_import}


def export_forecaster(
    core: ExportableForecaster,
    directory: Path,
    parity_features: FloatArray,
    name: str,
    version: str,
    extra_metadata: dict[str, Any] | None = None,
    model_card: str | None = None,
    tolerance: float = PARITY_TOLERANCE,
) -> ExportedForecaster:
    """Write a fitted forecaster's graphs, ``metadata.json`` and (optionally) ``MODEL_CARD.md``.

    Args:
        core: The fitted forecaster.
        directory: Folder to write (created).
        parity_features: Feature rows the parity check runs on, ``(N, F)``.
        name: Model name.
        version: Model version (``v1``...).
        extra_metadata: Merged into the metadata (splits, metrics, MLflow run id, git SHA...).
        model_card: Markdown written as ``MODEL_CARD.md``.
        tolerance: Largest ONNX-LightGBM difference allowed [model units]; the default suits
            outputs of order 1 (graphs sum float32 leaf values, so outputs in the hundreds, such
            as dwell times in minutes, need a larger one).

    Returns:
        What was written.

    Raises:
        OnnxParityError: When a graph differs from its booster by more than ``tolerance``;
            nothing is written then.
    """
    graphs = to_onnx_bytes(core)
    errors = parity_errors(core, graphs, parity_features)
    worst = max(errors.values())
    if worst > tolerance:
        raise OnnxParityError(
            f"onnx: got a difference of {worst:.3g} from LightGBM ({errors}); expected at most {tolerance}"
        )
    directory.mkdir(parents=True, exist_ok=True)
    files: dict[str, Path] = {}
    for output, graph in graphs.items():
        path = directory / f"{output}.onnx"
        path.write_bytes(graph)
        files[output] = path
    first = next(iter(graphs.values()))
    metadata: dict[str, Any] = {
        "schema_version": METADATA_SCHEMA_VERSION,
        "name": name,
        "version": version,
        "created_utc": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "inputs": {"features": {"dtype": "float32", "shape": ["N", len(core.feature_names)]}},
        "outputs": {
            output: {"file": path.name, "sha256": hashlib.sha256(path.read_bytes()).hexdigest()}
            for output, path in files.items()
        },
        "postprocess": core.postprocess,
        "opsets": _opsets(first),
        "target_opset": TARGET_OPSET,
        "parity": {
            "tolerance": tolerance,
            "max_abs_error": errors,
            "n_rows": int(parity_features.shape[0]),
        },
        **core.describe(),
        **(extra_metadata or {}),
    }
    features = metadata.get("features")
    holidays_entry = holiday_metadata(features) if isinstance(features, Mapping) else None
    if holidays_entry is not None:
        metadata["holidays"] = holidays_entry
    _write_metadata(directory, metadata)
    if model_card is not None:
        (directory / "MODEL_CARD.md").write_text(model_card, encoding="utf-8")
    return ExportedForecaster(directory, files, worst, metadata)
