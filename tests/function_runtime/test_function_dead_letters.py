"""Dead letters: one portable JSON object per failed async event in the lake's object store,
readable after a restart, by plain ``json``, and never lost when the store refuses a write."""

from __future__ import annotations

import json
import logging
import math
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest

from lakekit.adapters.local.function_runtime import DEFAULT_DEAD_LETTER_PREFIX, LocalFunctionRuntime
from lakekit.adapters.local.object_store import LocalObjectStore
from lakekit.errors import FunctionError, InvalidInputError
from lakekit.events import Event, Invoke
from lakekit.interfaces.function_runtime import (
    Context,
    DeadLetter,
    FunctionOptions,
    FunctionRuntime,
    event_to_dict,
)
from lakekit.interfaces.object_store import ObjectStore

WAIT = 30.0


@dataclass(frozen=True)
class Money:
    amount: int
    currency: str


@dataclass(frozen=True, kw_only=True)
class OrderPlaced(Event):
    order_id: int
    total: Money
    placed_on: date
    tags: frozenset[str]


def _runtime(root: Path, **kwargs: Any) -> FunctionRuntime:
    return FunctionRuntime(
        LocalFunctionRuntime(max_workers=2, store=LocalObjectStore(root), **kwargs)
    )


def _reject(event: Event, context: Context) -> None:
    raise ValueError(f"rejected {event.id}")


def test_dead_letters_survive_a_restart(tmp_path: Path) -> None:
    first = _runtime(tmp_path / "lake")
    first.register("ingest", _reject, FunctionOptions(retries=1, backoff=0.01))
    events = [Invoke(payload={"n": i}) for i in range(3)]
    for event in events:
        first.invoke_async("ingest", event).exception(timeout=WAIT)
    before = first.dead_letters("ingest")
    first.close()

    second = _runtime(tmp_path / "lake")  # a new process would see the same directory
    try:
        after = second.dead_letters("ingest")
        assert "ingest" not in second.functions()  # nothing registered, letters still there
    finally:
        second.close()

    assert after == before
    assert [d.event_id for d in after] == [e.id for e in events]
    assert all(d.attempts == 2 and d.error_type == "ValueError" for d in after)


def test_each_dead_letter_is_one_json_object_under_a_sortable_key(tmp_path: Path) -> None:
    runtime = _runtime(tmp_path / "lake")
    runtime.register("ingest", _reject, FunctionOptions(retries=0))
    event = Invoke(payload={"file": "raw/2026/orders.json"})
    runtime.invoke_async("ingest", event).exception(timeout=WAIT)
    runtime.close()
    [letter] = runtime.dead_letters("ingest")

    store = ObjectStore(LocalObjectStore(tmp_path / "lake"))
    [key] = store.list_keys(f"{DEFAULT_DEAD_LETTER_PREFIX}/")
    pattern = rf"{DEFAULT_DEAD_LETTER_PREFIX}/ingest/(\d{{8}}T\d{{12}}Z)-([0-9a-f]{{32}})\.json"
    match = re.fullmatch(pattern, key)
    assert match, key
    assert match.group(2) == letter.invocation_id
    stamp = datetime.strptime(match.group(1), "%Y%m%dT%H%M%S%fZ").replace(tzinfo=UTC)
    assert stamp == letter.failed_at

    document = json.loads(store.get(key))  # plain JSON, no lakekit needed to read it
    assert document == {
        "format": 1,
        "function_name": "ingest",
        "invocation_id": letter.invocation_id,
        "event_type": "Invoke",
        "event": {
            "id": event.id,
            "time": event.time.isoformat(),
            "payload": {"file": "raw/2026/orders.json"},
        },
        "error_type": "ValueError",
        "error": f"rejected {event.id}",
        "attempts": 1,
        "failed_at": letter.failed_at.isoformat(),
        "extra": {},
    }


def test_custom_dead_letter_prefix_is_used(tmp_path: Path) -> None:
    runtime = _runtime(tmp_path / "lake", dead_letter_prefix="ops/failed/")
    runtime.register("ingest", _reject, FunctionOptions(retries=0))
    runtime.invoke_async("ingest", 1).exception(timeout=WAIT)
    runtime.close()

    keys = ObjectStore(LocalObjectStore(tmp_path / "lake")).list_keys()
    assert len(keys) == 1
    assert keys[0].startswith("ops/failed/ingest/")


@pytest.mark.parametrize("prefix", ["", "/", "../up", "a//b", ".lakekit-x/dl"])
def test_bad_dead_letter_prefixes_are_rejected(prefix: str) -> None:
    with pytest.raises(InvalidInputError):
        LocalFunctionRuntime(dead_letter_prefix=prefix)


def test_any_event_is_dead_lettered_as_portable_json(tmp_path: Path) -> None:
    runtime = _runtime(tmp_path / "lake")
    runtime.register("orders", _reject, FunctionOptions(retries=0))
    event = OrderPlaced(
        order_id=7,
        total=Money(1250, "EUR"),
        placed_on=date(2026, 11, 26),
        tags=frozenset({"b", "a"}),
    )
    runtime.invoke_async("orders", event).exception(timeout=WAIT)
    runtime.close()

    [letter] = runtime.dead_letters("orders")
    assert letter.event_type == "OrderPlaced"
    assert letter.event == {
        "id": event.id,
        "time": event.time.isoformat(),
        "order_id": 7,
        "total": {"amount": 1250, "currency": "EUR"},
        "placed_on": "2026-11-26",
        "tags": ["a", "b"],
    }


def test_payloads_json_cannot_hold_are_kept_as_their_repr() -> None:
    class Opaque:
        def __repr__(self) -> str:
            return "<Opaque 42>"

    class Broken:
        def __repr__(self) -> str:
            raise RuntimeError("no repr")

    payload = {
        "raw": b"\x00\xff",
        "nan": math.nan,
        "obj": Opaque(),
        "broken": Broken(),
        "int_keys": {1: "a"},
        "nested": [(1, 2), {"when": datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)}],
    }
    data = event_to_dict(Invoke(payload=payload))["payload"]

    assert data == {
        "raw": "b'\\x00\\xff'",
        "nan": "nan",
        "obj": "<Opaque 42>",
        "broken": "<unrepresentable Broken: RuntimeError>",
        "int_keys": "{1: 'a'}",
        "nested": [[1, 2], {"when": "2026-01-02T03:04:05+00:00"}],
    }
    json.dumps(data, allow_nan=False)  # strictly valid JSON


def test_dead_letter_round_trips_through_its_dict_form() -> None:
    letter = DeadLetter(
        function_name="f",
        event={"id": "e1", "payload": [1, "x"]},
        error_type="KeyError",
        error="'k'",
        attempts=3,
        failed_at=datetime(2026, 11, 26, 10, 0, tzinfo=UTC),
        invocation_id="abc",
        extra={"region": "local"},
        event_type="Invoke",
    )

    again = DeadLetter.from_dict(json.loads(json.dumps(letter.to_dict())))

    assert again == letter
    assert again.event_id == "e1"


@pytest.mark.parametrize(
    "document",
    [{}, {"format": 99, "function_name": "f"}, {"function_name": "f", "error_type": "E"}],
)
def test_from_dict_rejects_what_is_not_a_dead_letter(document: dict[str, Any]) -> None:
    with pytest.raises(InvalidInputError):
        DeadLetter.from_dict(document)


def test_unreadable_objects_under_the_prefix_are_skipped_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    runtime = _runtime(tmp_path / "lake")
    runtime.register("ingest", _reject, FunctionOptions(retries=0))
    runtime.invoke_async("ingest", 1).exception(timeout=WAIT)
    runtime.close()
    store = ObjectStore(LocalObjectStore(tmp_path / "lake"))
    store.put(f"{DEFAULT_DEAD_LETTER_PREFIX}/ingest/zz-garbage.json", b"{not json")
    store.put(f"{DEFAULT_DEAD_LETTER_PREFIX}/ingest/zz-list.json", b"[1, 2]")
    store.put(f"{DEFAULT_DEAD_LETTER_PREFIX}/ingest/README.txt", b"ignored: not .json")

    with caplog.at_level(logging.WARNING, logger="lakekit.functions"):
        letters = runtime.dead_letters("ingest")

    assert len(letters) == 1
    skipped = [r.getMessage() for r in caplog.records if "skipping" in r.getMessage()]
    assert len(skipped) == 2


def test_a_failed_store_write_keeps_the_dead_letter_in_memory(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = ObjectStore(LocalObjectStore(tmp_path / "lake"))
    store.put("dl/ingest", b"a file where the function's folder should be")
    runtime = FunctionRuntime(LocalFunctionRuntime(store=store, dead_letter_prefix="dl"))
    runtime.register("ingest", _reject, FunctionOptions(retries=0))

    with caplog.at_level(logging.ERROR, logger="lakekit.functions"):
        error = runtime.invoke_async("ingest", 1).exception(timeout=WAIT)
    runtime.close()

    assert isinstance(error, FunctionError)
    assert any("memory" in note for note in error.__notes__)
    assert any("could not write dead letter" in r.getMessage() for r in caplog.records)
    [letter] = runtime.dead_letters("ingest")
    assert letter.error_type == "ValueError"


def test_dead_letters_of_one_function_need_a_valid_name() -> None:
    runtime = LocalFunctionRuntime(max_workers=1)
    with pytest.raises(InvalidInputError):
        runtime.dead_letters("../etc")
    assert runtime.dead_letters("never_registered") == []
