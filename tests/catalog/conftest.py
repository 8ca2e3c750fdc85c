"""Fixtures for the catalog tests: a real PostgreSQL server for the whole session."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

import pytest

from servers.postgres import PostgresServer, PostgresUnavailableError, running_postgres


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """A PostgreSQL server on 127.0.0.1 (``$LAKEKIT_TEST_POSTGRES_URL``, or started here).

    Locally, a machine that cannot start one skips the PostgreSQL tests; on CI (``CI=true``)
    that is a failure, so the PostgreSQL half of the suite can never silently vanish.
    """
    with contextlib.ExitStack() as stack:
        try:
            server = stack.enter_context(running_postgres())
        except PostgresUnavailableError as exc:
            if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
                pytest.fail(f"PostgreSQL is required on CI but could not start: {exc}")
            pytest.skip(f"PostgreSQL unavailable: {exc}")
        yield server


@pytest.fixture(scope="session")
def postgres_url(postgres_server: PostgresServer) -> str:
    """SQLAlchemy URL (``postgresql+psycopg://...``) of the session's PostgreSQL server."""
    return postgres_server.url
