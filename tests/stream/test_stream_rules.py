"""The rules every stream adapter shares (lakekit.adapters._stream_rules): the local log and
Kinesis accept and refuse the same messages and member ids, and split partitions alike."""

from __future__ import annotations

import pytest

from lakekit.adapters._stream_rules import fair_share, message_bytes, validate_member
from lakekit.errors import InvalidInputError
from lakekit.interfaces.stream import Message


def test_fair_shares_add_up_to_the_partitions_whoever_computes_them() -> None:
    members = ["c", "a", "b"]
    shares = {m: fair_share(10, members, m) for m in members}
    # by id order, the first 10 % 3 members take one more; starting points are spread out
    assert shares == {"a": (4, 0), "b": (3, 3), "c": (3, 6)}
    assert shares == {m: fair_share(10, reversed(members), m) for m in members}


def test_a_member_not_yet_listed_counts_as_live() -> None:
    assert fair_share(4, ["a"], "b") == fair_share(4, ["a", "b"], "b") == (2, 2)
    assert fair_share(3, [], "solo") == (3, 0)


def test_message_bytes_are_copied_out_of_any_bytes_like() -> None:
    value, key = message_bytes(Message(memoryview(b"v"), bytearray(b"k")))
    assert (value, key) == (b"v", b"k")
    assert type(value) is bytes and type(key) is bytes
    assert message_bytes(Message(b"v")) == (b"v", None)


@pytest.mark.parametrize(
    ("message", "error"),
    [
        (b"raw", "publish takes Message objects, got bytes"),
        (Message("text", None), "record value must be bytes, got str"),  # type: ignore[arg-type]
        (Message(b"v", "k"), "record key must be bytes or None, got str"),  # type: ignore[arg-type]
    ],
)
def test_malformed_messages_are_refused_with_what_to_fix(message: object, error: str) -> None:
    with pytest.raises(InvalidInputError, match=error):
        message_bytes(message)  # type: ignore[arg-type]


@pytest.mark.parametrize("member", ["../x", ".hidden", "a/b", "", "x" * 129, 7])
def test_member_ids_that_cannot_be_file_names_are_refused(member: object) -> None:
    with pytest.raises(InvalidInputError, match="invalid consumer member id"):
        validate_member(member)  # type: ignore[arg-type]


def test_portable_member_ids_pass_unchanged() -> None:
    assert validate_member("worker-1.eu_west") == "worker-1.eu_west"
    assert validate_member("x" * 128) == "x" * 128
