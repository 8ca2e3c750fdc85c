"""The local runtime passes the shipped FunctionRuntimeSuite: with dead letters in memory, with
dead letters in a real local object store, and stripped of every optional capability (which
exercises the suite's "refuse with NotSupportedError" branches)."""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import ClassVar

import pytest

from lakekit.adapters.local.function_runtime import LocalFunctionRuntime
from lakekit.adapters.local.object_store import LocalObjectStore
from lakekit.capabilities import Capability
from lakekit.interfaces.function_runtime import FunctionRuntimeAdapter
from lakekit.testing import FunctionRuntimeSuite


class BareLocalFunctionRuntime(LocalFunctionRuntime):
    """The local runtime declaring no optional capability: the facade must refuse them all."""

    capabilities: ClassVar[frozenset[Capability]] = frozenset()


class TestLocalFunctionRuntimeInMemory(FunctionRuntimeSuite):
    @pytest.fixture
    def runtime_factory(self) -> Callable[[], FunctionRuntimeAdapter]:
        return functools.partial(LocalFunctionRuntime, max_workers=4)


class TestLocalFunctionRuntimeWithStore(FunctionRuntimeSuite):
    @pytest.fixture
    def runtime_factory(self, tmp_path: Path) -> Callable[[], FunctionRuntimeAdapter]:
        return functools.partial(
            LocalFunctionRuntime, max_workers=4, store=LocalObjectStore(tmp_path / "lake")
        )


class TestLocalFunctionRuntimeWithoutCapabilities(FunctionRuntimeSuite):
    @pytest.fixture
    def runtime_factory(self) -> Callable[[], FunctionRuntimeAdapter]:
        return functools.partial(BareLocalFunctionRuntime, max_workers=2)
