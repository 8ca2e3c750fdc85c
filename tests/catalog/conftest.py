"""Fixtures for the catalog tests (the session's PostgreSQL server is in tests/conftest.py)."""

from __future__ import annotations

import pytest

from servers.postgres import PostgresServer


@pytest.fixture(scope="session")
def postgres_url(postgres_server: PostgresServer) -> str:
    """SQLAlchemy URL (``postgresql+psycopg://...``) of the session's PostgreSQL server."""
    return postgres_server.url
