"""Rules every stream adapter applies the same way: what a published message must hold, what a
consumer-group member id may be, and each member's fair share of the partitions.

Kept in one place so that the local log and Kinesis (and later adapters) accept and refuse the
same input with the same words, and split partitions among members by the same arithmetic.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from lakekit.errors import InvalidInputError
from lakekit.interfaces.stream import Message

__all__ = ["fair_share", "message_bytes", "validate_member"]

_MEMBER = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")


def message_bytes(message: Message) -> tuple[bytes, bytes | None]:
    """The ``(value, key)`` of a message handed to an adapter's ``publish``, as bytes.

    Raises:
        InvalidInputError: not a Message, a value that is not bytes-like, or a key that is
            neither bytes-like nor None.
    """
    if not isinstance(message, Message):
        raise InvalidInputError(f"publish takes Message objects, got {type(message).__name__}")
    value, key = message.value, message.key
    if not isinstance(value, bytes | bytearray | memoryview):
        raise InvalidInputError(f"record value must be bytes, got {type(value).__name__}")
    if key is not None and not isinstance(key, bytes | bytearray | memoryview):
        raise InvalidInputError(f"record key must be bytes or None, got {type(key).__name__}")
    return bytes(value), None if key is None else bytes(key)


def validate_member(member: str) -> str:
    """Member ids (they may become file names): letters, digits, ``_.-``, starting with a
    letter or digit, at most 128 characters.

    Raises:
        InvalidInputError: naming the rule.
    """
    if not isinstance(member, str) or not _MEMBER.fullmatch(member):
        raise InvalidInputError(
            f"invalid consumer member id {member!r}: use letters, digits, '_', '.' or '-', "
            "starting with a letter or digit, at most 128 characters"
        )
    return member


def fair_share(partitions: int, live: Iterable[str], member: str) -> tuple[int, int]:
    """``(how many of the partitions member should own, the partition to start looking
    from)``.

    Members are ordered by id (``member`` counts as live); each owns ``partitions // members``
    and the first ``partitions % members`` one more, so every member computes the same split
    from the same membership and shares converge as members poll. Starting points are spread
    over the partitions (``index * partitions // members``) so members rarely contend.
    """
    ordered = sorted({*live, member})
    count = len(ordered)
    index = ordered.index(member)
    share = partitions // count + (1 if index < partitions % count else 0)
    return share, index * partitions // count
