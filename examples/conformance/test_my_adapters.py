"""How a third-party adapter package proves itself: subclass a suite, override one fixture.

Run with ``pytest examples/conformance``. Here lakekit's own local adapters stand in for
"your adapter"; a plugin package imports its own classes instead.
"""

import functools

import pytest

from lakekit.adapters.local.object_store import LocalObjectStore
from lakekit.adapters.local.stream import LocalStream
from lakekit.adapters.sql.catalog import SqlCatalog
from lakekit.testing import CatalogSuite, ObjectStoreSuite, StreamSuite


class TestMyStore(ObjectStoreSuite):
    @pytest.fixture
    def store_factory(self, tmp_path):
        return functools.partial(LocalObjectStore, root=tmp_path / "store")


class TestMyCatalog(CatalogSuite):
    @pytest.fixture
    def catalog_factory(self, tmp_path):
        return functools.partial(SqlCatalog, f"sqlite:///{tmp_path}/catalog.db")


class TestMyStream(StreamSuite):
    @pytest.fixture
    def stream_factory(self, tmp_path):
        return functools.partial(LocalStream, directory=tmp_path / "streams")
