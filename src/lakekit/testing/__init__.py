"""The adapter conformance suite, shipped in the wheel.

A third-party adapter proves it behaves like lakekit's own by subclassing a suite and overriding
one fixture that returns a picklable zero-argument factory of its adapter::

    from lakekit.testing import ObjectStoreSuite

    class TestMyStore(ObjectStoreSuite):
        @pytest.fixture
        def store_factory(self):
            return functools.partial(MyStore, bucket="test")

Tests are gated on the adapter's declared capabilities: where one is missing, the suite asserts
that the operation raises NotSupportedError instead of skipping. See ``docs/conformance.md``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from lakekit._lazy import load_lazy

if TYPE_CHECKING:
    from lakekit.testing.catalog_suite import CatalogSuite
    from lakekit.testing.function_runtime_suite import FunctionRuntimeSuite
    from lakekit.testing.object_store_suite import ObjectStoreSuite
    from lakekit.testing.query_engine_suite import QueryEngineSuite
    from lakekit.testing.stream_suite import StreamSuite
    from lakekit.testing.table_suite import TableSuite

__all__ = [
    "CatalogSuite",
    "FunctionRuntimeSuite",
    "ObjectStoreSuite",
    "QueryEngineSuite",
    "StreamSuite",
    "TableSuite",
]

_MODULES = {
    "CatalogSuite": "lakekit.testing.catalog_suite",
    "FunctionRuntimeSuite": "lakekit.testing.function_runtime_suite",
    "ObjectStoreSuite": "lakekit.testing.object_store_suite",
    "QueryEngineSuite": "lakekit.testing.query_engine_suite",
    "StreamSuite": "lakekit.testing.stream_suite",
    "TableSuite": "lakekit.testing.table_suite",
}


def __getattr__(name: str) -> Any:
    # Lazy, so that importing one suite does not require pytest plugins of the others.
    return load_lazy(__name__, _MODULES, globals(), name)
