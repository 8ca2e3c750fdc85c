"""Shared fixtures: every test runs in its own working directory with no LAKEKIT_* settings
leaking in from the developer's environment or a lakekit.toml in the repo."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import TypeVar

import pytest

from servers.moto import MotoServer, MotoUnavailableError, running_moto
from servers.postgres import PostgresServer, PostgresUnavailableError, running_postgres

T = TypeVar("T")


@pytest.fixture(autouse=True)
def _isolated_lakekit_env(
    monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory
) -> None:
    for name in list(os.environ):
        if name.startswith("LAKEKIT_") and not name.startswith("LAKEKIT_TEST_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path_factory.mktemp("cwd"))


@pytest.fixture
def lake_dir(tmp_path: Path) -> Path:
    return tmp_path / "lake"


@pytest.fixture
def lake(lake_dir: Path) -> Iterator[object]:
    import lakekit

    with lakekit.connect(f"local://{lake_dir}") as opened:
        yield opened


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """A PostgreSQL server on 127.0.0.1 (``$LAKEKIT_TEST_POSTGRES_URL``, or started here).

    Locally, a machine that cannot start one skips the PostgreSQL tests; on CI (``CI=true``)
    that is a failure, so the PostgreSQL half of the suite can never silently vanish.
    """
    with _server_or_skip("PostgreSQL", running_postgres, PostgresUnavailableError) as server:
        yield server


@pytest.fixture(scope="session")
def moto_server() -> Iterator[MotoServer]:
    """moto in server mode on 127.0.0.1 (S3, Glue, ...), one process for the whole session.

    Locally, a machine that cannot start it skips the AWS tests; on CI (``CI=true``) that is a
    failure, so the AWS half of the suite can never silently vanish.
    """
    with _server_or_skip("moto", running_moto, MotoUnavailableError) as server:
        yield server


@contextlib.contextmanager
def _server_or_skip(
    name: str, start: Callable[[], AbstractContextManager[T]], unavailable: type[Exception]
) -> Iterator[T]:
    """Run the server ``start()`` opens; if it raises ``unavailable``, skip the tests that need
    it, or on CI (``CI=true``) fail them, so half of the suite can never silently vanish."""
    with contextlib.ExitStack() as stack:
        try:
            server = stack.enter_context(start())
        except unavailable as exc:
            if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
                pytest.fail(f"{name} is required on CI but could not start: {exc}")
            pytest.skip(f"{name} unavailable: {exc}")
        yield server
