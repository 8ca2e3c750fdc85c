"""Triggers are data: decorators record validated triggers next to the function, listable
with ``lake.functions.triggers()``, with the same options as ``@handler``."""

from __future__ import annotations

from typing import Any

import pytest

from lakekit.errors import InvalidInputError, NotFoundError, NotSupportedError
from lakekit.interfaces.function_runtime import FunctionOptions, FunctionRuntime
from lakekit.lake import Lake
from lakekit.triggers import (
    HttpTrigger,
    ObjectTrigger,
    ScheduleTrigger,
    StreamTrigger,
    TriggerBinding,
)


def _noop(event: Any, context: Any) -> None:
    return None


def test_each_decorator_records_its_trigger_and_registers_the_function(lake: Lake) -> None:
    functions = lake.functions

    @functions.on_object_created(prefix="raw/", suffix=".json", retries=5, timeout=30)
    def load(event: Any, context: Any) -> None: ...

    @functions.on_object_deleted(prefix="raw/")
    def forget(event: Any, context: Any) -> None: ...

    @functions.on_stream("events", batch_size=50, max_wait=2, start="latest")
    def enrich(event: Any, context: Any) -> None: ...

    @functions.on_schedule("rate(5 minutes)", name="every_five")
    def tick(event: Any, context: Any) -> None: ...

    @functions.on_http("/orders", methods="post", concurrency=2)
    def orders(event: Any, context: Any) -> None: ...

    assert functions.triggers() == [
        TriggerBinding("enrich", StreamTrigger("events", "enrich", 50, 2.0, "latest")),
        TriggerBinding("every_five", ScheduleTrigger("rate(5 minutes)")),
        TriggerBinding("forget", ObjectTrigger("raw/", "", ("deleted",))),
        TriggerBinding("load", ObjectTrigger("raw/", ".json", ("created",))),
        TriggerBinding("orders", HttpTrigger("/orders", ("POST",))),
    ]
    options = functions.functions()
    assert options["load"] == FunctionOptions(retries=5, timeout=30)
    assert options["orders"].concurrency == 2
    assert set(options) == {"enrich", "every_five", "forget", "load", "orders"}
    assert tick.__name__ == "tick", "the decorated function is returned unchanged"


def test_bindings_serialise_for_deployment_tooling(lake: Lake) -> None:
    @lake.functions.on_http("/a", methods=["GET"])
    def route(event: Any, context: Any) -> None: ...

    assert lake.functions.triggers("route")[0].to_dict() == {
        "function": "route",
        "kind": "http",
        "path": "/a",
        "methods": ["GET"],
    }
    assert str(lake.functions.triggers()[0]) == "route <- http GET /a"


def test_stacked_decorators_give_one_function_several_triggers_and_merge_options(
    lake: Lake,
) -> None:
    @lake.functions.on_schedule("rate(1 hour)", retries=4)
    @lake.functions.on_http("/refresh", timeout=10)
    def refresh(event: Any, context: Any) -> None: ...

    assert [b.trigger for b in lake.functions.triggers("refresh")] == [
        HttpTrigger("/refresh"),
        ScheduleTrigger("rate(1 hour)"),
    ]
    assert lake.functions.functions()["refresh"] == FunctionOptions(retries=4, timeout=10)


def test_stacked_decorators_refuse_two_values_for_one_option(lake: Lake) -> None:
    with pytest.raises(InvalidInputError, match="retries=1 conflicts with retries=4"):

        @lake.functions.on_schedule("rate(1 hour)", retries=1)
        @lake.functions.on_http("/refresh", retries=4)
        def refresh(event: Any, context: Any) -> None: ...


def test_handler_stacked_with_a_trigger_keeps_the_trigger_and_both_options(lake: Lake) -> None:
    @lake.functions.handler(retries=7)
    @lake.functions.on_stream("events")
    def enrich(event: Any, context: Any) -> None: ...

    assert lake.functions.triggers("enrich") == [
        TriggerBinding("enrich", StreamTrigger("events", "enrich"))
    ]
    assert lake.functions.functions()["enrich"].retries == 7


def test_replacing_the_handler_drops_the_old_triggers_and_unregister_drops_them(
    lake: Lake,
) -> None:
    lake.functions.on_schedule("rate(1 day)", name="job")(_noop)
    assert len(lake.functions.triggers()) == 1
    lake.functions.register("job", lambda e, c: None)
    assert lake.functions.triggers() == []
    lake.functions.on_schedule("rate(1 day)", name="job")(_noop)
    lake.functions.unregister("job")
    assert lake.functions.triggers() == []
    assert "job" not in lake.functions.functions()


def test_add_trigger_attaches_a_trigger_to_a_registered_function(lake: Lake) -> None:
    lake.functions.register("job", _noop)
    lake.functions.add_trigger("job", ScheduleTrigger("cron(0 3 * * ? *)"))
    lake.functions.add_trigger("job", ScheduleTrigger("cron(0  3 * * ? *)"))  # same, normalised
    assert lake.functions.triggers() == [
        TriggerBinding("job", ScheduleTrigger("cron(0 3 * * ? *)"))
    ]
    with pytest.raises(NotFoundError, match="no function named 'missing'"):
        lake.functions.add_trigger("missing", ScheduleTrigger("rate(1 day)"))
    with pytest.raises(InvalidInputError, match="not a trigger"):
        lake.functions.add_trigger("job", "rate(1 day)")  # type: ignore[arg-type]


def test_two_functions_cannot_share_a_route_or_a_consumer_group(lake: Lake) -> None:
    lake.functions.on_http("/x", methods=["GET", "POST"], name="one")(_noop)
    with pytest.raises(InvalidInputError, match="POST /x is already served by function 'one'"):
        lake.functions.on_http("/x", methods=["POST"], name="two")(_noop)
    lake.functions.on_http("/x", methods=["PUT"], name="three")(_noop)  # another method is fine

    lake.functions.on_stream("events", group="shared", name="a")(_noop)
    with pytest.raises(InvalidInputError, match="already triggers function 'a'"):
        lake.functions.on_stream("events", group="shared", name="b")(_noop)
    assert "two" not in lake.functions.functions(), "a refused trigger registers nothing"


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: ObjectTrigger(prefix="/abs"), "absolute"),
        (lambda: ObjectTrigger(prefix="a/../b"), r"'\.\.'"),
        (lambda: ObjectTrigger(prefix=".lakekit/x"), "reserved"),
        (lambda: ObjectTrigger(suffix="a/b.json"), "suffix"),
        (lambda: ObjectTrigger(events=("modified",)), "created"),
        (lambda: StreamTrigger("Events", "g"), "stream name"),
        (lambda: StreamTrigger("events", "bad-group"), "consumer group"),
        (lambda: StreamTrigger("events", "g", batch_size=0), "batch_size"),
        (lambda: StreamTrigger("events", "g", batch_size=10_001), "batch_size"),
        (lambda: StreamTrigger("events", "g", max_wait=-1), "max_wait"),
        (lambda: StreamTrigger("events", "g", start="middle"), "start"),  # type: ignore[arg-type]
        (lambda: ScheduleTrigger("every 5 minutes"), "rate"),
        (lambda: HttpTrigger("orders"), "start with '/'"),
        (lambda: HttpTrigger("/orders?x=1"), r"'\?'"),
        (lambda: HttpTrigger("/a//b"), "empty"),
        (lambda: HttpTrigger("/a/../b"), "empty"),
        (lambda: HttpTrigger("/a b"), "may hold only"),
        (lambda: HttpTrigger("/a", methods=("FETCH",)), "unknown HTTP method"),
        (lambda: HttpTrigger("/a", methods=()), "at least one method"),
    ],
)
def test_bad_triggers_are_refused_with_a_message_saying_what_to_fix(
    make: Any, message: str
) -> None:
    with pytest.raises(InvalidInputError, match=message):
        make()


def test_decorators_validate_before_registering_anything(lake: Lake) -> None:
    with pytest.raises(InvalidInputError, match="rate"):
        lake.functions.on_schedule("rate(1 minutes)")
    with pytest.raises(InvalidInputError, match="unknown option"):
        lake.functions.on_http("/a", retry=3)
    with pytest.raises(InvalidInputError, match="concurrency"):
        lake.functions.on_stream("events", concurrency=0)
    with pytest.raises(InvalidInputError, match="invalid function name"):
        lake.functions.on_http("/a", name="Bad-Name")(_noop)
    assert lake.functions.functions() == {}
    assert lake.functions.triggers() == []


def test_options_the_adapter_cannot_honour_are_refused_at_decoration(lake: Lake) -> None:
    from lakekit.interfaces.function_runtime import FunctionRuntimeAdapter

    class Minimal(FunctionRuntimeAdapter):
        def __init__(self) -> None:
            self.names: dict[str, FunctionOptions] = {}

        def register(self, name: str, handler: Any, options: FunctionOptions) -> None:
            self.names[name] = options

        def unregister(self, name: str) -> None:
            del self.names[name]

        def functions(self) -> dict[str, FunctionOptions]:
            return dict(self.names)

        def invoke(self, name: str, event: Any) -> Any:
            return None

        def invoke_async(self, name: str, event: Any) -> Any:
            raise AssertionError("unused")

        def dead_letters(self, name: str | None = None) -> list[Any]:
            return []

    runtime = FunctionRuntime(Minimal())
    with pytest.raises(NotSupportedError, match="retries"):
        runtime.on_schedule("rate(1 day)", retries=3)
    runtime.on_schedule("rate(1 day)")(_noop)
    assert runtime.functions()["_noop"].retries == 0, "defaults are fitted to the adapter"
    assert runtime.triggers() == [TriggerBinding("_noop", ScheduleTrigger("rate(1 day)"))]
