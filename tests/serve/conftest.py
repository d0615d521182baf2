"""The service on real HTTP: uvicorn on loopback, shared by the service test modules."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from smac_rl_serve.auth import mint_api_key
from smac_rl_serve.settings import Settings
from tests.serve.support import serving


@pytest.fixture(scope="session")
def base_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    database = tmp_path_factory.mktemp("serve") / "registry.db"
    with serving(Settings(database_url=f"sqlite:///{database}")) as url:
        yield url


@pytest.fixture(scope="session")
def keyed_without_forecasters(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """A service with one API key and no forecaster at all; its URL and the key."""
    key, digest = mint_api_key()
    database = tmp_path_factory.mktemp("keyed") / "registry.db"
    settings = Settings(
        database_url=f"sqlite:///{database}",
        api_keys={digest: ("cpo-a",)},
        price_forecaster_dir=None,
        session_forecaster_dir=None,
        arrivals_forecaster_dir=None,
    )
    with serving(settings) as url:
        yield url, key
