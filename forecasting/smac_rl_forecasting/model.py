"""The LightGBM core shared by the forecasters: one booster per output, direct multi-horizon.

One model serves every lead: each training row is an (origin, lead) pair with the features of
:mod:`smac_rl_forecasting.features`, the lead among them. Outputs are quantiles (``quantile``
objective, one booster per level, sorted after prediction so they never cross) or a mean
(``poisson`` objective, one booster). Training is deterministic for a seed and thread count
(LightGBM's ``deterministic`` mode).
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from dataclasses import field as dataclass_field
from typing import Any, Literal

import numpy as np
import pandas as pd

from smac_rl.core.arraytypes import FloatArray, IntArray
from smac_rl.features.series import SLOT_POSTPROCESS
from smac_rl_forecasting.features import FeatureConfig, build_features, feature_names
from smac_rl_forecasting.series import ForecastInputError, check_origin, check_regular_series


@dataclass(frozen=True)
class BoosterConfig:
    """LightGBM settings.

    Attributes:
        objective: ``quantile`` (one booster per level of ``quantiles``) or ``poisson`` (one booster
            for the mean of a count).
        quantiles: Quantile levels, each in (0, 1).
        n_trees: Boosting rounds per booster.
        num_leaves: Leaves per tree.
        learning_rate: Shrinkage per round.
        min_data_in_leaf: Fewest training rows in a leaf.
        feature_fraction: Share of features each tree sees.
        seed: Seed of every random choice.
        num_threads: Threads LightGBM uses (results depend on it; tests use 1).
    """

    objective: Literal["quantile", "poisson"] = "quantile"
    quantiles: tuple[float, ...] = (0.1, 0.5, 0.9)
    n_trees: int = 200
    num_leaves: int = 15
    learning_rate: float = 0.05
    min_data_in_leaf: int = 100
    feature_fraction: float = 0.9
    seed: int = 0
    num_threads: int = 1

    @property
    def output_names(self) -> list[str]:
        """Names of the outputs: ``q10``, ``q50``... or ``mean``."""
        if self.objective == "poisson":
            return ["mean"]
        return [f"q{round(q * 100):02d}" for q in self.quantiles]

    def lightgbm_params(self, output_index: int) -> dict[str, Any]:
        """LightGBM parameters of one output's booster."""
        params: dict[str, Any] = {
            "objective": self.objective,
            "num_leaves": self.num_leaves,
            "learning_rate": self.learning_rate,
            "min_data_in_leaf": self.min_data_in_leaf,
            "feature_fraction": self.feature_fraction,
            "seed": self.seed,
            "num_threads": self.num_threads,
            "deterministic": True,
            "force_row_wise": True,
            "verbosity": -1,
        }
        if self.objective == "quantile":
            params["alpha"] = self.quantiles[output_index]
        return params


@dataclass(frozen=True)
class TrainingSummary:
    """What a fit saw.

    Attributes:
        first_target_utc: Start of the first target step of the training rows.
        last_target_utc: Start of the last target step.
        n_origins: Training origins.
        n_rows: Training rows (origins times leads).
    """

    first_target_utc: str
    last_target_utc: str
    n_origins: int
    n_rows: int


@dataclass
class SlotForecaster:
    """Direct multi-horizon LightGBM forecaster of one regular series.

    Attributes:
        field: Name of the series in error messages (``prices``, ``arrivals``).
        features: Feature configuration.
        booster: LightGBM configuration.
        horizon_steps: Longest horizon forecast (training leads are ``0 .. horizon_steps - 1``).
        boosters: Fitted boosters, by output name (empty before :meth:`fit`).
        training: Summary of the fit, or None.
    """

    field: str
    features: FeatureConfig
    booster: BoosterConfig
    horizon_steps: int
    boosters: dict[str, Any] = dataclass_field(default_factory=dict)
    training: TrainingSummary | None = None

    def __post_init__(self) -> None:
        """Check the horizon against the features' reach."""
        if not 1 <= self.horizon_steps <= self.features.max_horizon_steps:
            raise ForecastInputError(
                f"horizon_steps: got {self.horizon_steps}; expected 1 to {self.features.max_horizon_steps}"
            )

    @property
    def is_fitted(self) -> bool:
        """True once :meth:`fit` has run."""
        return bool(self.boosters)

    @property
    def feature_names(self) -> list[str]:
        """Ordered feature names."""
        return feature_names(self.features)

    def _checked(self, series: pd.Series) -> pd.Series:
        return check_regular_series(series, self.field, self.features.step_min)

    def fit(self, series: pd.Series, origin_every_steps: int = 5) -> SlotForecaster:
        """Fit on every origin of a series that has 28 days of history and a full horizon after it.

        Args:
            series: The series on a regular UTC index.
            origin_every_steps: Spacing of the training origins (5 hours for hourly prices cycles
                through every hour of the day).

        Returns:
            Itself, fitted.

        Raises:
            ForecastInputError: For a bad series or one too short for a single training origin.
        """
        checked = self._checked(series)
        values = checked.to_numpy()
        first, last = self.features.history_steps, values.shape[0] - self.horizon_steps
        if last < first:
            needed_days = (self.features.history_steps + self.horizon_steps) / self.features.steps_per_day
            raise ForecastInputError(
                f"{self.field}: got {values.shape[0]} rows; expected at least "
                f"{self.features.history_steps + self.horizon_steps} ({needed_days:g} days: "
                "28 days of history and one horizon)"
            )
        origins = np.arange(first, last + 1, max(1, origin_every_steps), dtype=np.int64)
        origin_pos, lead = _pairs(origins, self.horizon_steps)
        features, level, scale = build_features(values, checked.index[0], origin_pos, lead, self.features)
        target = (values[origin_pos + lead] - level) / scale
        self.boosters = train_boosters(features, target, self.feature_names, self.booster)
        step = pd.Timedelta(minutes=self.features.step_min)
        self.training = TrainingSummary(
            first_target_utc=(checked.index[0] + step * int(origin_pos.min())).isoformat(),
            last_target_utc=(checked.index[0] + step * int((origin_pos + lead).max())).isoformat(),
            n_origins=int(origins.size),
            n_rows=int(origin_pos.size),
        )
        return self

    def predict_raw(self, features: FloatArray, level: FloatArray, scale: FloatArray) -> FloatArray:
        """Outputs for feature rows, in the series' units, ``(N, outputs)`` (quantiles sorted).

        Raises:
            ForecastInputError: Before :meth:`fit`.
        """
        if not self.is_fitted:
            raise ForecastInputError(f"{self.field} forecaster: not fitted; call fit() first")
        outputs = predict_boosters(list(self.boosters.values()), features, self.booster.objective)
        return np.asarray(outputs * scale[:, None] + level[:, None], dtype=np.float64)

    def feature_rows(
        self,
        series: pd.Series,
        origins_utc: Sequence[dt.datetime | pd.Timestamp],
        horizon_steps: int | None = None,
    ) -> tuple[IntArray, IntArray, FloatArray, FloatArray, FloatArray]:
        """Feature rows of every (origin, lead) pair; arguments and errors as :meth:`predict_many`.

        Returns:
            ``(origin_pos, lead_steps, features, level, scale)``, positions in the series.
        """
        horizon = self.horizon_steps if horizon_steps is None else horizon_steps
        if not 1 <= horizon <= self.horizon_steps:
            raise ForecastInputError(f"horizon_steps: got {horizon}; expected 1 to {self.horizon_steps}")
        checked = self._checked(series)
        step = pd.Timedelta(minutes=self.features.step_min)
        origins = [check_origin(o, self.features.step_min) for o in origins_utc]
        start = checked.index[0]
        positions = np.array([(o - start) // step for o in origins], dtype=np.int64)
        for origin, position in zip(origins, positions, strict=True):
            if position < self.features.history_steps:
                raise ForecastInputError(
                    f"{self.field}: got {max(int(position), 0)} steps before origin {origin.isoformat()}; "
                    f"expected at least {self.features.history_steps} (28 days of history)"
                )
            if position > checked.shape[0]:
                raise ForecastInputError(
                    f"origin_utc: got {origin.isoformat()}, after the series' end "
                    f"{(start + step * checked.shape[0]).isoformat()}; expected the series up to the origin"
                )
        origin_pos, lead = _pairs(positions, horizon)
        features, level, scale = build_features(checked.to_numpy(), start, origin_pos, lead, self.features)
        return origin_pos, lead, features, level, scale

    def predict_many(
        self,
        series: pd.Series,
        origins_utc: Sequence[dt.datetime | pd.Timestamp],
        horizon_steps: int | None = None,
    ) -> pd.DataFrame:
        """Forecasts from several origins, each reading only the series before it.

        Args:
            series: The series on a regular UTC index; it must hold 28 days before each origin
                (values at or after an origin are ignored for that origin).
            origins_utc: Forecast origins, timezone-aware, on step boundaries.
            horizon_steps: Steps forecast from each origin (default: the fitted horizon).

        Returns:
            One row per (origin, lead): ``origin_utc``, ``target_utc``, ``lead_h`` and one column
            per output (:attr:`BoosterConfig.output_names`).

        Raises:
            ForecastInputError: For a bad series, a naive or misaligned origin, too little history
                before an origin or a horizon beyond the fitted one.
        """
        origin_pos, lead, features, level, scale = self.feature_rows(series, origins_utc, horizon_steps)
        checked_start = pd.Timestamp(series.index[0])
        step = pd.Timedelta(minutes=self.features.step_min)
        outputs = self.predict_raw(features, level, scale)
        frame = pd.DataFrame(
            {
                "origin_utc": checked_start + step * origin_pos,
                "target_utc": checked_start + step * (origin_pos + lead),
                "lead_h": lead * self.features.step_min / 60.0,
            }
        )
        for i, name in enumerate(self.booster.output_names):
            frame[name] = outputs[:, i]
        return frame

    @property
    def postprocess(self) -> str:
        """How the exported graphs' outputs become forecasts, in words (``metadata.json``).

        The rule the service applies: :data:`smac_rl.features.series.SLOT_POSTPROCESS`.
        """
        return SLOT_POSTPROCESS

    def describe(self) -> dict[str, Any]:
        """Configuration and training summary as plain JSON-able values."""
        return {
            "field": self.field,
            "horizon_steps": self.horizon_steps,
            "features": asdict(self.features),
            "booster": asdict(self.booster),
            "feature_names": self.feature_names,
            "training": None if self.training is None else asdict(self.training),
        }

    def to_json(self) -> str:
        """The fitted forecaster as JSON (configuration and the boosters' LightGBM text models)."""
        payload = self.describe()
        payload["models"] = {name: b.model_to_string() for name, b in self.boosters.items()}
        return json.dumps(payload)

    @classmethod
    def from_json(cls, text: str) -> SlotForecaster:
        """A forecaster written by :meth:`to_json`."""
        import lightgbm as lgb

        payload = json.loads(text)
        features = payload["features"]
        booster = payload["booster"]
        booster["quantiles"] = tuple(booster["quantiles"])
        forecaster = cls(
            field=payload["field"],
            features=FeatureConfig(**features),
            booster=BoosterConfig(**booster),
            horizon_steps=int(payload["horizon_steps"]),
        )
        forecaster.boosters = {n: lgb.Booster(model_str=s) for n, s in payload["models"].items()}
        if payload["training"] is not None:
            forecaster.training = TrainingSummary(**payload["training"])
        return forecaster


def train_boosters(
    features: FloatArray,
    target: FloatArray,
    feature_names: Sequence[str],
    config: BoosterConfig,
    suffix: str = "",
) -> dict[str, Any]:
    """One LightGBM booster per output of ``config`` on the same rows (the forecasters' shared fit).

    Args:
        features: Training rows, ``(N, F)``.
        target: Training targets, ``(N,)``.
        feature_names: The ``F`` feature names, in column order.
        config: LightGBM settings (objective, quantile levels, trees...).
        suffix: Appended to each output name to key the result (``_energy_kwh`` gives
            ``q10_energy_kwh``...); empty by default.

    Returns:
        The fitted boosters, keyed ``<output name><suffix>`` in :attr:`BoosterConfig.output_names`
        order.
    """
    import lightgbm as lgb

    boosters: dict[str, Any] = {}
    for i, name in enumerate(config.output_names):
        dataset = lgb.Dataset(
            features,
            label=target,
            feature_name=list(feature_names),
            free_raw_data=True,
            params={"verbosity": -1},
        )
        boosters[f"{name}{suffix}"] = lgb.train(
            config.lightgbm_params(i), dataset, num_boost_round=config.n_trees
        )
    return boosters


def predict_boosters(
    boosters: Sequence[Any], features: FloatArray, objective: Literal["quantile", "poisson"]
) -> FloatArray:
    """Raw outputs of boosters on feature rows, ``(N, len(boosters))``; quantiles sorted per row.

    Args:
        boosters: Fitted boosters of one target, in :attr:`BoosterConfig.output_names` order.
        features: Feature rows, ``(N, F)``.
        objective: The boosters' objective; ``quantile`` outputs are sorted so they never cross.
    """
    columns = [np.asarray(b.predict(features), dtype=np.float64) for b in boosters]
    outputs = np.column_stack(columns)
    if objective == "quantile":
        outputs = np.sort(outputs, axis=1)
    return np.asarray(outputs, dtype=np.float64)


def _pairs(origins: IntArray, horizon_steps: int) -> tuple[IntArray, IntArray]:
    """Every (origin, lead) pair, origin-major."""
    origin_pos = np.repeat(origins, horizon_steps)
    lead = np.tile(np.arange(horizon_steps, dtype=np.int64), origins.shape[0])
    return origin_pos, lead
