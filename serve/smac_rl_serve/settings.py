"""Service settings: the model, the registry's database, the API keys and the request bounds."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from smac_rl_serve.catalog import REFERENCE_PATTERN

_REPOSITORY_MODEL_DIR = Path(__file__).resolve().parents[2] / "models" / "policies" / "default" / "v1"
_WHEEL_MODEL_DIR = Path(__file__).resolve().parent / "policies" / "default" / "v1"
DEFAULT_MODEL_DIR = _REPOSITORY_MODEL_DIR if _REPOSITORY_MODEL_DIR.is_dir() else _WHEEL_MODEL_DIR
"""The policy committed with the repository (``models/policies/default/v1``); an installed wheel
carries the same files as ``smac_rl_serve/policies/default/v1``, beside the family's ``ALIASES.json``
(:data:`smac_rl_serve.catalog.PACKAGED_MODELS_ROOT`)."""

_REPOSITORY_FORECASTERS = Path(__file__).resolve().parents[2] / "models" / "forecasters"
_WHEEL_FORECASTERS = Path(__file__).resolve().parent / "forecaster_models"
_REPOSITORY_PRICE_FORECASTER_DIR = _REPOSITORY_FORECASTERS / "nl_day_ahead_prices" / "v1"
_WHEEL_PRICE_FORECASTER_DIR = _WHEEL_FORECASTERS / "nl_day_ahead_prices" / "v1"
_REPOSITORY_SESSION_FORECASTER_DIR = _REPOSITORY_FORECASTERS / "caltech_session_needs" / "v1"
_WHEEL_SESSION_FORECASTER_DIR = _WHEEL_FORECASTERS / "caltech_session_needs" / "v1"
_REPOSITORY_ARRIVALS_FORECASTER_DIR = _REPOSITORY_FORECASTERS / "caltech_arrivals" / "v1"
_WHEEL_ARRIVALS_FORECASTER_DIR = _WHEEL_FORECASTERS / "caltech_arrivals" / "v1"


def default_forecaster_dir(repository_dir: Path, wheel_dir: Path) -> Path | None:
    """A forecaster's default folder: the repository's if present, else the wheel's, else None.

    Args:
        repository_dir: The folder under the checkout's ``models/forecasters``.
        wheel_dir: The same folder as an installed wheel carries it, under
            ``smac_rl_serve/forecaster_models``.
    """
    for candidate in (repository_dir, wheel_dir):
        if candidate.is_dir():
            return candidate
    return None


DEFAULT_PRICE_FORECASTER_DIR = default_forecaster_dir(
    _REPOSITORY_PRICE_FORECASTER_DIR, _WHEEL_PRICE_FORECASTER_DIR
)
"""The price forecaster committed with the repository (``models/forecasters/nl_day_ahead_prices/v1``);
an installed wheel carries it as ``smac_rl_serve/forecaster_models/nl_day_ahead_prices/v1``."""

DEFAULT_SESSION_FORECASTER_DIR = default_forecaster_dir(
    _REPOSITORY_SESSION_FORECASTER_DIR, _WHEEL_SESSION_FORECASTER_DIR
)
"""The session-needs forecaster committed with the repository
(``models/forecasters/caltech_session_needs/v1``); an installed wheel carries it as
``smac_rl_serve/forecaster_models/caltech_session_needs/v1``."""

DEFAULT_ARRIVALS_FORECASTER_DIR = default_forecaster_dir(
    _REPOSITORY_ARRIVALS_FORECASTER_DIR, _WHEEL_ARRIVALS_FORECASTER_DIR
)
"""The arrivals forecaster committed with the repository (``models/forecasters/caltech_arrivals/v1``);
an installed wheel carries it as ``smac_rl_serve/forecaster_models/caltech_arrivals/v1``."""


def parse_forecaster_dir(value: str | None, default: Path | None) -> Path | None:
    """The folder a forecaster variable (``SMAC_*_FORECASTER_DIR``) names.

    Args:
        value: The variable; unset or empty gives ``default``, ``none`` (any case) gives None (no
            forecaster served), anything else is the folder.
        default: The forecaster's default folder.
    """
    if not value:
        return default
    return None if value.lower() == "none" else Path(value)


def forecaster_dir_variable(directory: Path | None) -> str:
    """What :func:`parse_forecaster_dir` reads back as ``directory``: ``none`` or its absolute path."""
    return "none" if directory is None else str(directory.resolve())


DEFAULT_DATABASE_URL = "sqlite:///smac-serve.db"
"""The registry's database when none is given: a SQLite file in the working folder."""

PUBLIC_TENANT_ID = "public"
"""The one tenant of a service without API keys (development and single-operator use)."""


@dataclass(frozen=True)
class Settings:
    """What the app factory needs.

    Attributes:
        model_dir: Folder with ``policy.onnx`` and ``metadata.json``.
        price_forecaster_dir: Folder with the day-ahead price forecaster (``q10/q50/q90.onnx`` and
            ``metadata.json``), checked at start and served by ``POST /v1/forecasts/prices``; None
            serves no forecaster (that endpoint then answers 404).
        session_forecaster_dir: Folder with the session-needs forecaster (six ONNX graphs and
            ``metadata.json``), checked at start and served by ``POST /v1/forecasts/sessions``;
            None serves none (that endpoint then answers 404).
        arrivals_forecaster_dir: Folder with the arrivals forecaster (``mean.onnx`` and
            ``metadata.json``), checked at start and served by ``POST /v1/forecasts/arrivals``;
            None serves none (that endpoint then answers 404).
        database_url: SQLAlchemy URL of the registry (``sqlite:///file.db`` or
            ``postgresql+psycopg://user:password@host/db``).
        api_keys: SHA-256 hex digest of each API key -> the tenants (CPO ids) it may act for.
            Empty (and no ``api_keys_file``): no keys; every caller is tenant ``public``.
        api_keys_file: JSON or YAML file of ``{sha256_hex: [tenant_id, ...]}``, merged into
            ``api_keys`` at start.
        allow_anonymous_profiles: With keys configured, ``POST /v1/profiles`` answers callers
            without a key too (the registry never does).
        n_sessions_max: Largest number of sessions accepted per ``POST /v1/profiles`` request.
        max_horizon_steps: Longest horizon accepted per request or site [steps].
        n_active_sessions_max: Largest number of active sessions per registry site.
        n_body_bytes_max: Largest request body accepted [bytes]; larger ones get a 413.
        n_capacity_blocks_max: Largest number of blocks or intervals in one capacity signal.
        n_decisions_page_max: Largest page of ``GET /v1/sites/{site_id}/decisions``.
        clock_skew_s: How far in the future a reported measurement may lie [s].
        max_instant_offset_h: How far from now an instant in an event may lie (arrivals,
            departures, readings, capacity blocks) [h].
    """

    model_dir: Path = DEFAULT_MODEL_DIR
    price_forecaster_dir: Path | None = DEFAULT_PRICE_FORECASTER_DIR
    session_forecaster_dir: Path | None = DEFAULT_SESSION_FORECASTER_DIR
    arrivals_forecaster_dir: Path | None = DEFAULT_ARRIVALS_FORECASTER_DIR
    database_url: str = DEFAULT_DATABASE_URL
    api_keys: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    api_keys_file: Path | None = None
    allow_anonymous_profiles: bool = False
    n_sessions_max: int = 2000
    max_horizon_steps: int = 672
    n_active_sessions_max: int = 200
    n_body_bytes_max: int = 2_000_000
    n_capacity_blocks_max: int = 1000
    n_decisions_page_max: int = 100
    clock_skew_s: float = 300.0
    max_instant_offset_h: float = 8784.0

    @classmethod
    def from_environment(cls, environment: Mapping[str, str] | None = None) -> Settings:
        """Settings from ``SMAC_*`` environment variables, defaults for the rest.

        Reads ``SMAC_MODEL_DIR``, ``SMAC_PRICE_FORECASTER_DIR``, ``SMAC_SESSION_FORECASTER_DIR`` and
        ``SMAC_ARRIVALS_FORECASTER_DIR`` (a folder, or ``none`` for no forecaster),
        ``SMAC_DATABASE_URL``, ``SMAC_API_KEYS_FILE`` and ``SMAC_ALLOW_ANONYMOUS_PROFILES``
        (``1``/``true``/``yes``).

        Args:
            environment: The variables; None reads ``os.environ``.

        Returns:
            The settings.
        """
        env = os.environ if environment is None else environment
        model_dir = env.get("SMAC_MODEL_DIR")
        keys_file = env.get("SMAC_API_KEYS_FILE")
        return cls(
            model_dir=Path(model_dir) if model_dir else DEFAULT_MODEL_DIR,
            price_forecaster_dir=parse_forecaster_dir(
                env.get("SMAC_PRICE_FORECASTER_DIR"), DEFAULT_PRICE_FORECASTER_DIR
            ),
            session_forecaster_dir=parse_forecaster_dir(
                env.get("SMAC_SESSION_FORECASTER_DIR"), DEFAULT_SESSION_FORECASTER_DIR
            ),
            arrivals_forecaster_dir=parse_forecaster_dir(
                env.get("SMAC_ARRIVALS_FORECASTER_DIR"), DEFAULT_ARRIVALS_FORECASTER_DIR
            ),
            database_url=env.get("SMAC_DATABASE_URL") or DEFAULT_DATABASE_URL,
            api_keys_file=Path(keys_file) if keys_file else None,
            allow_anonymous_profiles=env.get("SMAC_ALLOW_ANONYMOUS_PROFILES", "").lower()
            in ("1", "true", "yes"),
        )

    def to_environment(self) -> dict[str, str]:
        """The ``SMAC_*`` variables that :meth:`from_environment` reads back into these settings.

        How ``smac serve --workers N`` hands its settings to worker processes, each of which builds
        its app with :func:`smac_rl_serve.app.create_app_from_environment`.

        Returns:
            The variables, paths absolute (a worker may resolve them from another folder).

        Raises:
            ValueError: When a setting has no variable: keys given in memory (``api_keys``; give an
                ``api_keys_file``) or request bounds other than the defaults.
        """
        defaults = Settings()
        carried = (
            "model_dir",
            "price_forecaster_dir",
            "session_forecaster_dir",
            "arrivals_forecaster_dir",
            "database_url",
            "api_keys_file",
            "allow_anonymous_profiles",
        )
        if self.api_keys:
            raise ValueError(
                f"api_keys: got {len(self.api_keys)} keys in memory; expected an api_keys_file "
                "(worker processes read settings from SMAC_* variables)"
            )
        for name in self.__dataclass_fields__:
            if name not in carried and name != "api_keys" and getattr(self, name) != getattr(defaults, name):
                raise ValueError(
                    f"{name}: got {getattr(self, name)!r}; expected the default {getattr(defaults, name)!r} "
                    "(worker processes read settings from SMAC_* variables, which do not carry it)"
                )
        model = str(self.model_dir)
        return {
            # NAME@ALIAS stays as given (resolved by each worker); a folder is made absolute
            "SMAC_MODEL_DIR": model
            if REFERENCE_PATTERN.fullmatch(model) and not Path(model).exists()
            else str(Path(model).resolve()),
            "SMAC_PRICE_FORECASTER_DIR": forecaster_dir_variable(self.price_forecaster_dir),
            "SMAC_SESSION_FORECASTER_DIR": forecaster_dir_variable(self.session_forecaster_dir),
            "SMAC_ARRIVALS_FORECASTER_DIR": forecaster_dir_variable(self.arrivals_forecaster_dir),
            "SMAC_DATABASE_URL": self.database_url,
            "SMAC_API_KEYS_FILE": "" if self.api_keys_file is None else str(self.api_keys_file.resolve()),
            "SMAC_ALLOW_ANONYMOUS_PROFILES": "1" if self.allow_anonymous_profiles else "0",
        }
