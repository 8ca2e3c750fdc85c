"""LocalStream retention: whole sealed segments go by age or size, never the active one."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from lakekit.interfaces.stream import Stream

OpenStream = Callable[..., Stream]
Segments = Callable[..., list[Path]]


def _fill(stream: Stream, batches: int) -> None:
    for batch in range(batches):
        stream.publish_many([b"%d|" % (batch * 5 + i) + b"." * 300 for i in range(5)])


def test_retention_by_age_keeps_only_the_active_segment(
    open_stream: OpenStream, segments: Segments
) -> None:
    stream = open_stream(partitions=1, segment_bytes=4096, retention_ms=200)
    _fill(stream, 10)
    assert len(segments(0)) > 2
    assert stream.offsets("earliest") == {0: 0}  # still young
    time.sleep(0.3)
    active_base = int(segments(0)[-1].stem)
    assert stream.enforce_retention() == active_base
    assert [int(p.stem) for p in segments(0)] == [active_base]
    assert stream.offsets("earliest") == {0: active_base}
    assert stream.offsets("latest") == {0: 50}
    assert [r.offset for r in stream.read(0, 0, 100)] == list(range(active_base, 50))
    assert stream.enforce_retention() == 0


def test_retention_by_size_runs_as_segments_roll(
    open_stream: OpenStream, segments: Segments
) -> None:
    stream = open_stream(partitions=1, segment_bytes=4096, retention_bytes=8192)
    _fill(stream, 30)
    earliest = stream.offsets("earliest")[0]
    assert earliest > 0
    sizes = [p.stat().st_size for p in segments(0)]
    assert sum(sizes[:-1]) <= 8192  # the sealed segments left fit the limit
    kept = list(stream.replay())
    assert [r.offset for r in kept] == list(range(earliest, 150))
    assert all(r.value.startswith(b"%d|" % r.offset) for r in kept)


def test_no_limit_means_nothing_is_dropped(open_stream: OpenStream, segments: Segments) -> None:
    stream = open_stream(partitions=1, segment_bytes=4096)
    _fill(stream, 10)
    assert stream.enforce_retention() == 0
    assert stream.offsets("earliest") == {0: 0}
    assert len(segments(0)) > 2


def test_other_processes_follow_segments_deleted_by_retention(
    open_stream: OpenStream,
) -> None:
    reader = open_stream(partitions=1, segment_bytes=4096)
    writer = open_stream(partitions=1, segment_bytes=4096, retention_bytes=4096)
    _fill(writer, 2)  # no roll yet
    assert reader.read(0, 0, 1)[0].offset == 0  # the reader caches the first segment now
    _fill(writer, 22)
    earliest = writer.offsets("earliest")[0]
    assert earliest > 0
    assert reader.offsets("earliest") == {0: earliest}
    assert reader.read(0, 0, 1)[0].offset == earliest
    assert [r.offset for r in reader.replay()] == list(range(earliest, 120))
    assert reader.adapter.offsets_for_time(reader.read(0, earliest, 1)[0].timestamp) == {
        0: earliest
    }
