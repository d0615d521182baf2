"""The service on real HTTP: uvicorn on loopback, shared by the service test modules."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from smac_rl_serve.settings import Settings
from tests.serve.support import serving


@pytest.fixture(scope="session")
def base_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    database = tmp_path_factory.mktemp("serve") / "registry.db"
    with serving(Settings(database_url=f"sqlite:///{database}")) as url:
        yield url
