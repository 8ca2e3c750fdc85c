"""relative_to_root: a lake trigger hands its handlers keys relative to the lake root, and never
events outside it."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from lakekit.errors import InvalidInputError
from lakekit.events import ObjectCreated, ObjectDeleted, Schedule, relative_to_root

WHEN = datetime(2026, 1, 1, tzinfo=UTC)


def _created(key: str, bucket: str = "data") -> ObjectCreated:
    return ObjectCreated(id="e1", time=WHEN, bucket=bucket, key=key, size=3, etag="x")


def test_key_becomes_relative_and_other_fields_stay() -> None:
    event = relative_to_root(_created("lake/prod/raw/a b.json"), bucket="data", root="lake/prod")
    assert event == ObjectCreated(id="e1", time=WHEN, bucket="data", key="raw/a b.json", size=3,
                                  etag="x")  # fmt: skip


@pytest.mark.parametrize("root", ["", "/", "lake/prod/", "/lake/prod"])
def test_root_slashes_do_not_matter(root: str) -> None:
    expected = "raw/a.json" if root.strip("/") else "lake/prod/raw/a.json"
    event = relative_to_root(_created("lake/prod/raw/a.json"), bucket="data", root=root)
    assert event is not None
    assert event.key == expected


@pytest.mark.parametrize(
    ("key", "bucket"),
    [
        ("lake/prod/raw/a.json", "other-bucket"),  # another bucket
        ("lake/prodx/raw/a.json", "data"),  # a sibling prefix, not under the root
        ("elsewhere/a.json", "data"),
        ("lake/prod", "data"),  # the root itself
        ("lake/prod/.lakekit/tmp/123", "data"),  # lakekit's scratch space
        ("lake/prod/raw/../secret", "data"),  # not addressable as a lake key
    ],
)
def test_events_outside_the_lake_are_dropped(key: str, bucket: str) -> None:
    assert relative_to_root(_created(key, bucket), bucket="data", root="lake/prod") is None


def test_deleted_events_keep_their_type() -> None:
    event = ObjectDeleted(id="d", time=WHEN, bucket="data", key="root/x")
    assert relative_to_root(event, bucket="data", root="root") == ObjectDeleted(
        id="d", time=WHEN, bucket="data", key="x"
    )


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(InvalidInputError, match="takes an ObjectEvent, got Schedule"):
        relative_to_root(Schedule(name="n", expression=""), bucket="data")  # type: ignore[type-var]
    with pytest.raises(InvalidInputError, match=r"'\.\.' segment"):
        relative_to_root(_created("a/b"), bucket="data", root="a/../b")
