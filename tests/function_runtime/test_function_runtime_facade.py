"""The FunctionRuntime facade: options fitted to or checked against capabilities, the decorator
forms, and the shared retry rule."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any, ClassVar

import pytest

from lakekit.adapters.local.function_runtime import LocalFunctionRuntime
from lakekit.capabilities import Capability
from lakekit.errors import InvalidInputError, NotSupportedError, SchemaError
from lakekit.events import Invoke
from lakekit.interfaces.function_runtime import (
    Context,
    DeadLetter,
    FunctionOptions,
    FunctionRuntime,
    is_retryable,
)


class NoRetryRuntime(LocalFunctionRuntime):
    capabilities: ClassVar[frozenset[Capability]] = LocalFunctionRuntime.capabilities - {
        Capability.RETRIES
    }


@pytest.fixture
def no_retry() -> Iterator[FunctionRuntime]:
    runtime = FunctionRuntime(NoRetryRuntime(max_workers=2))
    yield runtime
    runtime.close()


def _handler(event: Invoke, context: Context) -> Any:
    return event.payload


def test_defaults_are_fitted_to_what_the_adapter_can_do(no_retry: FunctionRuntime) -> None:
    no_retry.register("plain", _handler)

    @no_retry.handler(timeout=5)
    def decorated(event: Invoke, context: Context) -> Any:
        return event.payload

    assert no_retry.functions()["plain"].retries == 0
    assert no_retry.functions()["decorated"] == FunctionOptions(timeout=5, retries=0)
    assert no_retry.invoke("decorated", 3) == 3


def test_explicit_options_the_adapter_cannot_honour_are_refused(
    no_retry: FunctionRuntime,
) -> None:
    with pytest.raises(NotSupportedError, match="NoRetryRuntime does not support retries"):
        no_retry.register("explicit", _handler, FunctionOptions(retries=1))
    with pytest.raises(NotSupportedError, match="retries"):
        no_retry.handler(retries=3)
    assert "explicit" not in no_retry.functions()
    no_retry.register("zero", _handler, FunctionOptions(retries=0))  # no retries is always fine


def test_the_decorator_works_bare_named_and_with_options() -> None:
    runtime = FunctionRuntime(LocalFunctionRuntime(max_workers=2))
    try:

        @runtime.handler
        def bare(event: Invoke, context: Context) -> str:
            return "bare"

        @runtime.handler("renamed", retries=0, backoff=1.0, max_backoff=2.0, concurrency=1)
        def original(event: Invoke, context: Context) -> str:
            return "renamed"

        assert runtime.invoke("bare") == "bare"
        assert runtime.invoke("renamed") == "renamed"
        assert "original" not in runtime.functions()
        assert runtime.functions()["renamed"] == FunctionOptions(
            retries=0, backoff=1.0, max_backoff=2.0, concurrency=1
        )
        assert original(Invoke(), None) == "renamed"  # type: ignore[arg-type]
    finally:
        runtime.close()


def test_register_rejects_options_of_the_wrong_type() -> None:
    runtime = FunctionRuntime(LocalFunctionRuntime(max_workers=1))
    with pytest.raises(InvalidInputError, match="FunctionOptions"):
        runtime.register("f", _handler, {"retries": 1})  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("error", "retryable"),
    [
        (ValueError("x"), True),
        (TimeoutError(), True),
        (SchemaError("column"), True),
        (InvalidInputError("bad event"), False),
        (SystemExit(1), False),
        (KeyboardInterrupt(), False),
        (asyncio.CancelledError(), False),
    ],
)
def test_only_bad_input_and_non_exception_errors_skip_retries(
    error: BaseException, retryable: bool
) -> None:
    assert is_retryable(error) is retryable


def test_context_cancellation_and_remaining_time() -> None:
    context = Context(
        function_name="f",
        invocation_id="i",
        attempt=1,
        deadline=time.monotonic() + 0.05,
        logger=logging.getLogger("lakekit.functions.f"),
    )
    before = context.cancelled
    assert 0 < context.remaining_time() <= 0.05
    threading.Thread(target=context.cancel_event.set).start()
    assert context.cancel_event.wait(5)
    assert (before, context.cancelled) == (False, True)
    time.sleep(0.06)
    assert context.remaining_time() == 0.0


def test_dead_letter_timestamps_without_a_zone_are_read_as_utc() -> None:
    letter = DeadLetter.from_dict(
        {
            "function_name": "f",
            "error_type": "ValueError",
            "error": "x",
            "attempts": 1,
            "failed_at": "2026-11-26T10:00:00",
        }
    )
    assert letter.failed_at == datetime(2026, 11, 26, 10, 0, tzinfo=UTC)
    assert letter.event_id is None
