"""Google Cloud payloads -> portable events: GCS CloudEvents and Pub/Sub notifications, Pub/Sub
push envelopes and messagePublished CloudEvents, on the documented sample events."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest

from lakekit.errors import InvalidInputError
from lakekit.events import ObjectCreated, ObjectDeleted, parse_gcs, parse_pubsub

Sample = Callable[[str], Any]


# --- Cloud Storage CloudEvents -------------------------------------------------------------


def test_gcs_finalized_cloudevent_gives_object_created(sample: Sample) -> None:
    [event] = parse_gcs(sample("gcp_gcs_finalized_cloudevent_simple"))
    assert isinstance(event, ObjectCreated)
    assert (event.bucket, event.key, event.size) == ("sample-bucket", "folder/Test.cs", 352)
    assert event.etag == "CNHZkbuF/ugCEAE="
    assert event.id == "1587627537231057"
    assert event.source == "gcp:storage"
    assert event.time == datetime(2020, 4, 23, 7, 38, 57, 230000, tzinfo=UTC)


def test_gcs_workflows_sample_with_numeric_size(sample: Sample) -> None:
    [event] = parse_gcs(sample("gcp_gcs_finalized_cloudevent"))
    assert (event.bucket, event.key, event.id) == ("sample-bucket", "MyFile", "1234567")
    assert isinstance(event, ObjectCreated)
    assert event.size == 0


def test_gcs_deleted_and_archived_give_object_deleted(sample: Sample) -> None:
    [deleted] = parse_gcs(sample("gcp_gcs_deleted_cloudevent"))
    assert isinstance(deleted, ObjectDeleted)
    assert (deleted.bucket, deleted.key) == ("sample-bucket", "folder/Test.cs")
    archived = sample("gcp_gcs_deleted_cloudevent")
    archived["type"] = "google.cloud.storage.object.v1.archived"
    assert isinstance(parse_gcs(archived)[0], ObjectDeleted)


def test_gcs_metadata_update_gives_nothing(sample: Sample) -> None:
    payload = sample("gcp_gcs_finalized_cloudevent_simple")
    payload["type"] = "google.cloud.storage.object.v1.metadataUpdated"
    assert parse_gcs(payload) == []


@pytest.mark.parametrize("name", ["raw/a b+c.csv", "données/日本 📄.json", "100%/x"])
def test_gcs_object_names_are_taken_as_they_are(sample: Sample, name: str) -> None:
    payload = sample("gcp_gcs_finalized_cloudevent_simple")
    payload["data"]["name"] = name
    assert parse_gcs(payload)[0].key == name


def test_gcs_cloudevent_data_as_json_text(sample: Sample) -> None:
    payload = sample("gcp_gcs_finalized_cloudevent_simple")
    expected = parse_gcs(payload)
    payload["data"] = json.dumps(payload["data"])
    assert parse_gcs(payload) == expected


def test_malformed_gcs_cloudevent_is_named(sample: Sample) -> None:
    payload = sample("gcp_gcs_finalized_cloudevent_simple")
    del payload["data"]["name"]
    with pytest.raises(InvalidInputError) as info:
        parse_gcs(payload)
    assert str(info.value) == "GCS CloudEvent data.name is missing"
    payload = sample("gcp_gcs_finalized_cloudevent_simple")
    payload["data"]["size"] = "twelve"
    with pytest.raises(InvalidInputError, match=r"GCS CloudEvent data\.size must be a number"):
        parse_gcs(payload)


# --- Cloud Storage Pub/Sub notifications ---------------------------------------------------


def test_gcs_pubsub_notification_finalize(sample: Sample) -> None:
    [event] = parse_gcs(sample("gcp_gcs_pubsub_notification"))
    assert isinstance(event, ObjectCreated)
    assert (event.bucket, event.key, event.size) == ("sample-bucket", "folder/Test.cs", 352)
    assert event.etag == "CNHZkbuF/ugCEAE="
    assert event.id == "2070443601311540"
    assert event.time == datetime(2020, 4, 23, 7, 38, 57, 230000, tzinfo=UTC)


def test_gcs_pubsub_notification_without_payload_has_no_size(sample: Sample) -> None:
    payload = sample("gcp_gcs_pubsub_notification")
    payload["message"]["attributes"]["payloadFormat"] = "NONE"
    del payload["message"]["data"]
    [event] = parse_gcs(payload)
    assert isinstance(event, ObjectCreated)
    assert event.size is None


def test_gcs_pubsub_delete_and_overwrite(sample: Sample) -> None:
    payload = sample("gcp_gcs_pubsub_notification")
    payload["message"]["attributes"]["eventType"] = "OBJECT_DELETE"
    [event] = parse_gcs(payload)
    assert isinstance(event, ObjectDeleted)
    payload["message"]["attributes"]["overwrittenByGeneration"] = "1587627537231099"
    assert parse_gcs(payload) == []
    payload["message"]["attributes"]["eventType"] = "OBJECT_METADATA_UPDATE"
    assert parse_gcs(payload) == []


def test_gcs_notification_in_a_message_published_cloudevent(sample: Sample) -> None:
    notification = sample("gcp_gcs_pubsub_notification")
    cloudevent = sample("gcp_pubsub_cloudevent")
    cloudevent["data"]["message"] = notification["message"]
    assert parse_gcs(cloudevent) == parse_gcs(notification)


def test_malformed_gcs_notification_is_named(sample: Sample) -> None:
    payload = sample("gcp_gcs_pubsub_notification")
    del payload["message"]["attributes"]["objectId"]
    with pytest.raises(InvalidInputError) as info:
        parse_gcs(payload)
    assert str(info.value) == "Pub/Sub push envelope message.attributes.objectId is missing"


def test_parse_gcs_refuses_other_payloads(sample: Sample) -> None:
    with pytest.raises(InvalidInputError, match="neither a Cloud Storage CloudEvent"):
        parse_gcs(sample("gcp_pubsub_push"))


# --- Pub/Sub -------------------------------------------------------------------------------


def test_pubsub_push_envelope(sample: Sample) -> None:
    batch = parse_pubsub(sample("gcp_pubsub_push"))
    [record] = batch.records
    assert record.value == b"Hello Cloud Pub/Sub! Here is my message!"
    assert record.offset == batch.id == "2070443601311540"
    assert record.headers == {"key": "value"}
    assert record.key is None
    assert record.timestamp == batch.time == datetime(2021, 2, 26, 19, 13, 55, 749000, tzinfo=UTC)
    assert batch.partition == batch.stream == "projects/myproject/subscriptions/mysubscription"


def test_pubsub_push_with_only_snake_case_fields_and_stream_override(sample: Sample) -> None:
    payload = sample("gcp_pubsub_push")
    del payload["message"]["messageId"], payload["message"]["publishTime"]
    batch = parse_pubsub(payload, stream="projects/myproject/topics/orders")
    assert batch.id == "2070443601311540"
    assert batch.stream == "projects/myproject/topics/orders"


def test_pubsub_message_published_cloudevent(sample: Sample) -> None:
    batch = parse_pubsub(sample("gcp_pubsub_cloudevent"))
    [record] = batch.records
    assert record.text() == "test message 3"
    assert record.key == b"ordering-key"
    assert record.headers == {"attr1": "attr1-value"}
    assert batch.id == record.offset == "message-id"
    assert batch.stream == "projects/test-project/topics/my-topic"
    assert batch.partition == "projects/test-project/subscriptions/my-subscription"


def test_pubsub_attributes_only_message_has_empty_value(sample: Sample) -> None:
    payload = sample("gcp_pubsub_push")
    del payload["message"]["data"]
    assert parse_pubsub(payload).records[0].value == b""


def test_pubsub_url_safe_base64_is_decoded(sample: Sample) -> None:
    payload = sample("gcp_pubsub_push")
    payload["message"]["data"] = base64.urlsafe_b64encode(b"\xfb\xff>?").decode().rstrip("=")
    assert parse_pubsub(payload).records[0].value == b"\xfb\xff>?"


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (
            lambda p: (p["message"].pop("messageId"), p["message"].pop("message_id")),
            "Pub/Sub push envelope message.messageId is missing",
        ),
        (
            lambda p: (p["message"].pop("publishTime"), p["message"].pop("publish_time")),
            "Pub/Sub push envelope message.publishTime is missing",
        ),
        (
            lambda p: p["message"].update(data="***"),
            "Pub/Sub push envelope message.data is not valid base64",
        ),
        (lambda p: p.pop("message"), "Pub/Sub push envelope message is missing"),
        (
            lambda p: p.pop("subscription"),
            "Pub/Sub push envelope names neither its subscription nor its topic",
        ),
    ],
)
def test_malformed_pubsub_push_is_named(
    sample: Sample, mutate: Callable[[dict[str, Any]], object], message: str
) -> None:
    payload = sample("gcp_pubsub_push")
    mutate(payload)
    with pytest.raises(InvalidInputError) as info:
        parse_pubsub(payload)
    assert str(info.value) == message
