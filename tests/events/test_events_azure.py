"""Azure payloads -> portable events: Event Grid blob events (both schemas), the subscription
validation event, and Event Hubs batches as Azure Functions hands them to Python."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pytest

from lakekit.errors import InvalidInputError
from lakekit.events import (
    ObjectCreated,
    ObjectDeleted,
    event_grid_validation_code,
    event_grid_validation_response,
    parse_event,
    parse_event_grid,
    parse_event_hubs,
)

Sample = Callable[[str], Any]


# --- Event Grid ----------------------------------------------------------------------------


@pytest.mark.parametrize("schema", ["event_grid", "cloudevents"])
def test_blob_created_in_both_schemas(sample: Sample, schema: str) -> None:
    [event] = parse_event_grid(sample(f"azure_{schema}_blob_created"))
    assert isinstance(event, ObjectCreated)
    assert (event.bucket, event.key) == ("test-container", "new-file.txt")
    assert (event.size, event.etag) == (524288, "0x8D4BCC2E4835CD0")
    assert event.id == "831e1650-001e-001b-66ab-eeb76e069631"
    assert event.source == "azure:blob"
    assert event.time == datetime(2017, 6, 26, 18, 41, 0, 958410, tzinfo=UTC)


@pytest.mark.parametrize("schema", ["event_grid", "cloudevents"])
def test_blob_deleted_in_both_schemas(sample: Sample, schema: str) -> None:
    [event] = parse_event_grid(sample(f"azure_{schema}_blob_deleted"))
    assert isinstance(event, ObjectDeleted)
    assert (event.bucket, event.key) == ("testcontainer", "file-to-delete.txt")
    assert event.id == "4c2359fe-001e-00ba-0e04-58586806d298"


def test_a_single_event_and_a_mixed_batch_keep_order(sample: Sample) -> None:
    created = sample("azure_event_grid_blob_created")[0]
    deleted = sample("azure_event_grid_blob_deleted")[0]
    tier = sample("azure_event_grid_blob_tier_changed")
    assert parse_event_grid(created) == parse_event_grid([created])
    events = parse_event_grid([deleted, tier, created])
    assert [type(e) for e in events] == [ObjectDeleted, ObjectCreated]


def test_blob_names_from_the_subject_are_taken_as_they_are(sample: Sample) -> None:
    payload = sample("azure_event_grid_blob_created")
    payload[0]["subject"] = "/blobServices/default/containers/lake/blobs/raw/a b+c/日本.csv"
    [event] = parse_event_grid(payload)
    assert (event.bucket, event.key) == ("lake", "raw/a b+c/日本.csv")


def test_without_subject_the_url_is_decoded(sample: Sample) -> None:
    payload = sample("azure_cloudevents_blob_created")
    del payload[0]["subject"]
    payload[0]["data"]["url"] = (
        "https://my-storage-account.blob.core.windows.net/lake/raw/a%20b%2Bc/%E6%97%A5.csv"
    )
    [event] = parse_event_grid(payload)
    assert (event.bucket, event.key) == ("lake", "raw/a b+c/日.csv")


def test_subscription_validation_gives_no_events_and_exposes_its_code(sample: Sample) -> None:
    payload = sample("azure_event_grid_subscription_validation")
    assert parse_event_grid(payload) == []
    assert parse_event(payload) == []
    assert event_grid_validation_code(payload) == "512d38b6-c7b8-40c8-89fe-f46f9e9622b6"
    assert event_grid_validation_response(payload) == {
        "validationResponse": "512d38b6-c7b8-40c8-89fe-f46f9e9622b6"
    }
    assert event_grid_validation_code(sample("azure_event_grid_blob_created")) is None
    assert event_grid_validation_response(sample("azure_event_grid_blob_created")) is None


def test_validation_event_without_code_is_named(sample: Sample) -> None:
    payload = sample("azure_event_grid_subscription_validation")
    del payload[0]["data"]["validationCode"]
    with pytest.raises(InvalidInputError) as info:
        event_grid_validation_code(payload)
    assert str(info.value) == "Event Grid validation event [0].data.validationCode is missing"


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (
            lambda e: e.pop("subject") and e["data"].pop("url"),
            "Event Grid event [0].data.url is missing",
        ),
        (
            lambda e: e.update(subject="/containers/c/new.txt"),
            "Event Grid event [0].subject must look like /blobServices/default/containers/"
            "<container>/blobs/<name>, got '/containers/c/new.txt'",
        ),
        (lambda e: e.pop("eventTime"), "Event Grid event [0].eventTime is missing"),
        (lambda e: e.pop("id"), "Event Grid event [0].id is missing"),
        (
            lambda e: e["data"].update(contentLength="big"),
            "Event Grid event [0].data.contentLength must be a number, got a string",
        ),
        (
            lambda e: e.update(eventType="Microsoft.Resources.ResourceWriteSuccess"),
            "Event Grid event [0].eventType is 'Microsoft.Resources.ResourceWriteSuccess': lakekit "
            "reads Microsoft.Storage.BlobCreated and Microsoft.Storage.BlobDeleted (other "
            "Microsoft.Storage.* events and Microsoft.EventGrid.SubscriptionValidationEvent give "
            "no event)",
        ),
    ],
)
def test_malformed_event_grid_event_is_named(
    sample: Sample, mutate: Callable[[dict[str, Any]], object], message: str
) -> None:
    payload = sample("azure_event_grid_blob_created")
    mutate(payload[0])
    with pytest.raises(InvalidInputError) as info:
        parse_event_grid(payload)
    assert str(info.value) == message


# --- Event Hubs ----------------------------------------------------------------------------


@dataclass
class FunctionsEventHubEvent:
    """The public surface of ``azure.functions.EventHubEvent`` (get_body, sequence_number,
    offset, enqueued_time, partition_key, metadata), filled the way the Python worker's
    ``EventHubTriggerConverter.decode_multiple_events`` fills it."""

    body: bytes
    metadata: Mapping[str, Any] | None = None
    sequence_number: int | None = None
    offset: str | None = None
    enqueued_time: datetime | None = None
    partition_key: str | None = None
    iothub_metadata: Mapping[str, str] = field(default_factory=dict)

    def get_body(self) -> bytes:
        return self.body


def _batch(sample: Sample, *, with_attributes: bool = True) -> list[FunctionsEventHubEvent]:
    data = sample("azure_event_hubs_batch")
    metadata = data["metadata"]
    events = []
    for body, system in zip(data["bodies"], metadata["SystemPropertiesArray"], strict=True):
        event = FunctionsEventHubEvent(body=body.encode(), metadata=metadata)
        if with_attributes:
            event.sequence_number = system["SequenceNumber"]
            event.offset = system["Offset"]
            event.partition_key = system["PartitionKey"]
            # the worker parses EnqueuedTimeUtc into a naive datetime
            stamp = datetime.fromisoformat(system["EnqueuedTimeUtc"]).replace(tzinfo=None)
            event.enqueued_time = stamp
        events.append(event)
    return events


def test_event_hubs_batch_becomes_one_ordered_stream_batch(sample: Sample) -> None:
    events = _batch(sample)
    batch = parse_event_hubs(list(reversed(events)))
    assert (batch.stream, batch.partition) == ("telemetry", "3")
    assert batch.offsets == ("41", "42", "43")
    assert [r.json()["device"] for r in batch.records] == ["d1", "d2", "d1"]
    assert [r.key for r in batch.records] == [b"d1", b"d2", b"d1"]
    assert batch.records[0].headers == {"source": "sensor", "schema": "2"}
    assert batch.records[2].headers == {}
    assert batch.records[0].timestamp == datetime(2019, 10, 21, 18, 10, 41, 317000, tzinfo=UTC)
    assert batch.time == datetime(2019, 10, 21, 18, 10, 41, 530000, tzinfo=UTC)
    assert batch.id == parse_event_hubs(events).id
    assert parse_event(events) == [batch]


def test_event_hubs_system_properties_fill_in_missing_attributes(sample: Sample) -> None:
    with_attributes = parse_event_hubs(_batch(sample))
    from_metadata = parse_event_hubs(_batch(sample, with_attributes=False))
    assert from_metadata == with_attributes


def test_event_hubs_amqp_annotations_alone_suffice(sample: Sample) -> None:
    events = _batch(sample, with_attributes=False)
    metadata = json.loads(json.dumps(events[0].metadata))
    for system in metadata["SystemPropertiesArray"]:
        for name in ("SequenceNumber", "Offset", "PartitionKey", "EnqueuedTimeUtc"):
            del system[name]
    for event in events:
        event.metadata = metadata
    assert parse_event_hubs(events) == parse_event_hubs(_batch(sample))


def test_event_hubs_single_event_cardinality_one(sample: Sample) -> None:
    data = sample("azure_event_hubs_batch")
    system = data["metadata"]["SystemPropertiesArray"][1]
    metadata = {
        "PartitionContext": data["metadata"]["PartitionContext"],
        "SystemProperties": system,
        "Properties": {"source": "sensor"},
    }
    event = FunctionsEventHubEvent(body=data["bodies"][1].encode(), metadata=metadata)
    batch = parse_event_hubs(event)
    assert batch.offsets == ("42",)
    assert batch.records[0].headers == {"source": "sensor"}
    assert parse_event(event) == [batch]


def test_event_hubs_names_can_be_given_when_metadata_lacks_them(sample: Sample) -> None:
    events = _batch(sample)
    metadata = dict(events[0].metadata or {})
    del metadata["PartitionContext"]
    for event in events:
        event.metadata = metadata
    with pytest.raises(InvalidInputError) as info:
        parse_event_hubs(events)
    assert str(info.value) == (
        "Event Hubs trigger metadata PartitionContext.EventHubName is missing: "
        "pass event_hub= to parse_event_hubs"
    )
    batch = parse_event_hubs(events, event_hub="telemetry", partition="3")
    assert (batch.stream, batch.partition) == ("telemetry", "3")


@pytest.mark.parametrize(
    ("events", "message"),
    [
        ([], "Event Hubs batch is empty: Azure Functions never invokes a function with no events"),
        ([{"body": "x"}], "Event Hubs batch [0] is an object, not an azure.functions.EventHubEvent "
         "(no get_body() / sequence_number)"),
        ("text", "Event Hubs batch must be a list of azure.functions.EventHubEvent, got a string"),
    ],
)  # fmt: skip
def test_malformed_event_hubs_batch_is_named(events: Any, message: str) -> None:
    with pytest.raises(InvalidInputError) as info:
        parse_event_hubs(events)
    assert str(info.value) == message


def test_event_hubs_event_without_sequence_number_is_named(sample: Sample) -> None:
    events = _batch(sample, with_attributes=False)
    metadata = json.loads(json.dumps(events[0].metadata))
    del metadata["SystemPropertiesArray"][2]["SequenceNumber"]
    del metadata["SystemPropertiesArray"][2]["x-opt-sequence-number"]
    for event in events:
        event.metadata = metadata
    with pytest.raises(InvalidInputError) as info:
        parse_event_hubs(events)
    assert str(info.value) == (
        "Event Hubs batch [2] has no sequence number (sequence_number, "
        "SystemProperties.SequenceNumber or x-opt-sequence-number)"
    )


def test_damaged_event_hubs_metadata_gives_invalid_input_or_a_result(sample: Sample) -> None:
    original = _batch(sample, with_attributes=False)[0].metadata
    assert original is not None
    refused = 0
    for section in ("PartitionContext", "SystemPropertiesArray", "PropertiesArray"):
        for replacement in (None, 7, "x", "[]", [], {}, [7], [[]]):
            metadata = json.loads(json.dumps(original))
            metadata[section] = replacement
            events = _batch(sample, with_attributes=False)
            for event in events:
                event.metadata = metadata
            try:
                parse_event_hubs(events)
            except InvalidInputError:
                refused += 1
    assert refused > 0
