"""Child-process bodies of :class:`lakekit.testing.StreamSuite`'s cross-process tests.

Kept apart from the suite (no pytest import) so spawned children start fast. Each child reports
what it did through an append-only file it writes with one ``os.write`` per event, *after* the
event: a line in the file is a fact the parent can rely on even if the child is then killed.
"""

from __future__ import annotations

import os
import random
import time
import zlib
from collections.abc import Callable
from pathlib import Path

from lakekit.interfaces.stream import Message, Record, Stream, StreamAdapter

__all__ = [
    "check_value",
    "consume_until_killed",
    "make_message",
    "produce",
    "produce_until_killed",
]

StreamFactory = Callable[[str], StreamAdapter]


def make_message(rid: str, key: str | None, pad: int) -> Message:
    """A self-checking record: its value carries its id, key and a checksum."""
    body = f"{rid}|{key or '-'}|{'x' * pad}"
    value = f"{body}|{zlib.crc32(body.encode()):08x}".encode()
    return Message(value, key.encode() if key is not None else None, {"rid": rid})


def check_value(record: Record) -> str:
    """The record's id after checking it is exactly what :func:`make_message` built."""
    text = record.value.decode()
    body, _, crc = text.rpartition("|")
    if f"{zlib.crc32(body.encode()):08x}" != crc:
        raise AssertionError(f"garbage record at {record.partition}/{record.offset}: {text!r}")
    rid, key, _pad = body.split("|", 2)
    expected_key = None if key == "-" else key.encode()
    if record.key != expected_key or record.headers.get("rid") != rid:
        raise AssertionError(f"record {record.partition}/{record.offset} does not match its value")
    return rid


def _append(fd: int, text: str) -> None:
    os.write(fd, text.encode())


def _open_log(path: str) -> int:
    return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)


def produce_until_killed(
    factory: StreamFactory, name: str, ack_path: str, ready_path: str, seed: int
) -> None:
    """Publish random batches forever; after each publish returns, log ``p offset rid``."""
    rnd = random.Random(seed)
    stream = Stream(factory(name))
    fd = _open_log(ack_path)
    Path(ready_path).touch()
    seq = 0
    while True:
        batch = []
        for _ in range(rnd.randint(1, 20)):
            key = f"k{rnd.randint(0, 7)}" if rnd.random() < 0.5 else None
            batch.append(make_message(f"{seed}-{seq}", key, rnd.randint(0, 300)))
            seq += 1
        positions = stream.publish_many(batch)
        _append(
            fd,
            "".join(
                f"{p.partition} {p.offset} {m.headers['rid']}\n"
                for p, m in zip(positions, batch, strict=True)
            ),
        )


def produce(factory: StreamFactory, name: str, ack_path: str, producer: int, count: int) -> None:
    """Publish ``count`` records in small batches (half with a shared key); log acks; exit."""
    rnd = random.Random(producer)
    stream = Stream(factory(name))
    fd = _open_log(ack_path)
    try:
        seq = 0
        while seq < count:
            batch = []
            for _ in range(min(rnd.randint(1, 10), count - seq)):
                key = "shared" if seq % 2 == 0 else f"own{producer}"
                batch.append(make_message(f"{producer}-{seq}", key, rnd.randint(0, 50)))
                seq += 1
            positions = stream.publish_many(batch)
            _append(
                fd,
                "".join(
                    f"{p.partition} {p.offset} {m.headers['rid']}\n"
                    for p, m in zip(positions, batch, strict=True)
                ),
            )
    finally:
        os.close(fd)
        stream.close()


def consume_until_killed(
    factory: StreamFactory,
    name: str,
    group: str,
    log_path: str,
    ready_path: str,
    *,
    seed: int,
    drain: bool,
) -> None:
    """Poll, log ``P partition offset`` per record, commit, log ``C partition:next ...``.

    With ``drain`` the child exits once a poll finds nothing; otherwise it runs until killed.
    """
    rnd = random.Random(seed)
    stream = Stream(factory(name))
    consumer = stream.consumer(group)
    fd = _open_log(log_path)
    Path(ready_path).touch()
    while True:
        records = consumer.poll(max_records=rnd.randint(1, 12), timeout=0.5 if drain else 0.05)
        if not records:
            if drain:
                break
            continue
        _append(fd, "".join(f"P {r.partition} {r.offset}\n" for r in records))
        time.sleep(rnd.uniform(0, 0.004))  # "processing"
        consumer.commit(records)
        ends: dict[int, int] = {}
        for r in records:
            ends[r.partition] = max(ends.get(r.partition, 0), r.offset + 1)
        _append(fd, "C " + " ".join(f"{p}:{o}" for p, o in sorted(ends.items())) + "\n")
    consumer.close()
    stream.close()
    os.close(fd)
