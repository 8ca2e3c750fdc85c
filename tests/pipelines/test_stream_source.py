"""StreamSource on the local stream: records become rows with stream metadata, progress lives in
the pipeline state (committed with the rows), and the consumer group follows it a run behind.

The kill -9 loop is in ``test_source_crash.py``."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, ClassVar

import pyarrow as pa
import pytest

import lakekit
from lakekit.adapters.local.stream import LocalStream
from lakekit.capabilities import Capability
from lakekit.errors import ConfigurationError, InvalidInputError, NotSupportedError
from lakekit.interfaces.stream import Record, Stream
from lakekit.lake import Lake
from lakekit.pipelines import SourceBatch, SourceState
from lakekit.pipelines.sources.stream import METADATA_COLUMNS, StreamSource


@pytest.fixture
def lake(tmp_path: Path) -> Iterator[Lake]:
    url = f"local://{tmp_path / 'lake'}"
    with lakekit.connect(
        url, store={"fsync": False}, stream={"fsync": "never", "partitions": 3}
    ) as opened:
        yield opened


def _publish(stream: Stream, ids: range) -> None:
    for i in ids:
        stream.publish_json({"id": i, "name": f"n{i}"}, key=str(i))


def _ints(values: list[Any]) -> list[int]:
    return [int(v) for v in values]


def _ids(lake: Lake, table: str = "raw.events") -> list[int]:
    return sorted(_ints(lake.table(table).to_arrow().column("id").to_pylist()))


def _table(batches: list[SourceBatch]) -> pa.Table:
    return pa.concat_tables(
        pa.Table.from_batches([b.data]) if isinstance(b.data, pa.RecordBatch) else b.data
        for b in batches
    )


def test_records_load_as_rows_with_stream_metadata(lake: Lake) -> None:
    stream = lake.stream("events")
    _publish(stream, range(50))
    report = lake.pipeline("ev").run(
        StreamSource(stream, group="loader", max_records=7), into="raw.events", progress=False
    )
    assert report.rows_out == 50
    table = lake.table("raw.events").to_arrow()
    assert _ids(lake) == list(range(50))
    assert table.schema.field("_stream_partition").type == pa.int32()
    assert table.schema.field("_stream_offset").type == pa.int64()
    assert table.schema.field("_stream_timestamp").type == pa.timestamp("us", tz="UTC")
    positions = set(
        zip(
            table.column("_stream_partition").to_pylist(),
            table.column("_stream_offset").to_pylist(),
            strict=True,
        )
    )
    assert len(positions) == 50, "partition + offset identify each record"
    for row in table.to_pylist():
        stored = stream.read(row["_stream_partition"], row["_stream_offset"], 1)[0]
        assert json.loads(stored.value)["id"] == row["id"]
        assert stored.timestamp == row["_stream_timestamp"]


def test_progress_is_the_pipeline_state_and_a_rerun_loads_only_new_records(lake: Lake) -> None:
    stream = lake.stream("events")
    _publish(stream, range(30))
    pipeline = lake.pipeline("ev")
    pipeline.run(StreamSource(stream, group="loader"), into="raw.events", progress=False)
    assert pipeline.state().get("offsets") == {str(p): n for p, n in stream.offsets().items()}
    again = pipeline.run(StreamSource(stream, group="loader"), into="raw.events", progress=False)
    assert again.status == "nothing to do"
    _publish(stream, range(30, 45))
    third = pipeline.run(StreamSource(stream, group="loader"), into="raw.events", progress=False)
    assert third.rows_out == 15
    assert _ids(lake) == list(range(45))


def test_group_offsets_follow_the_committed_state_one_run_behind(lake: Lake) -> None:
    stream = lake.stream("events")
    _publish(stream, range(20))
    pipeline = lake.pipeline("ev")
    pipeline.run(StreamSource(stream, group="loader"), into="raw.events", progress=False)
    assert stream.committed("loader") == {}, "the group is only told at the next read"
    pipeline.run(StreamSource(stream, group="loader"), into="raw.events", progress=False)
    assert stream.committed("loader") == {p: n for p, n in stream.offsets().items() if n > 0}


def test_state_wins_over_a_group_that_is_behind_or_ahead(lake: Lake) -> None:
    stream = lake.stream("events")
    _publish(stream, range(30))
    pipeline = lake.pipeline("ev")
    pipeline.run(StreamSource(stream, group="loader"), into="raw.events", progress=False)
    # the group moved elsewhere (e.g. a crash before the group commit, or a manual reset)
    stream.adapter.commit("loader", dict.fromkeys(stream.partitions(), 0))
    _publish(stream, range(30, 40))
    report = pipeline.run(StreamSource(stream, group="loader"), into="raw.events", progress=False)
    assert report.rows_out == 10
    assert _ids(lake) == list(range(40))


def test_a_new_pipeline_starts_from_the_groups_committed_offsets(lake: Lake) -> None:
    stream = lake.stream("events")
    _publish(stream, range(12))
    with stream.consumer("loader") as consumer:  # an earlier consumer acknowledged everything
        while consumer.poll(100):
            consumer.commit()
    _publish(stream, range(12, 20))
    lake.pipeline("ev").run(StreamSource(stream, group="loader"), into="raw.events", progress=False)
    assert _ids(lake) == list(range(12, 20))


def test_batches_resume_exactly_after_any_committed_state(lake: Lake) -> None:
    stream = lake.stream("events")
    _publish(stream, range(40))
    source = StreamSource(stream, group="g", max_records=6)
    batches = list(source.read(SourceState({})))
    assert sum(b.data.num_rows for b in batches) == 40
    for cut in range(len(batches)):
        resumed = list(source.read(SourceState(dict(batches[cut].state))))
        seen = _ints(_table(batches[: cut + 1]).column("id").to_pylist())
        rest = _ints(_table(resumed).column("id").to_pylist()) if resumed else []
        assert sorted(seen + rest) == list(range(40)), f"resuming after batch {cut}"


def test_raw_and_callable_decoding(lake: Lake) -> None:
    stream = lake.stream("blobs")
    stream.publish(b"\x00\x01", key="a")
    stream.publish(b"skip-me", key="b")
    stream.publish(b"hello", key="c")
    raw = list(StreamSource(stream, group="g", decode="raw").read(SourceState({})))
    table = _table(raw)
    values = [bytes(v or b"") for v in table.column("value").to_pylist()]
    assert sorted(values) == [b"\x00\x01", b"hello", b"skip-me"]
    assert table.column_names == ["key", "value", *METADATA_COLUMNS]

    def decode(record: Record) -> Mapping[str, Any] | None:
        if record.value == b"skip-me":
            return None
        return {"size": len(record.value), "key": (record.key or b"").decode()}

    decoded = list(StreamSource(stream, group="g", decode=decode).read(SourceState({})))
    rows = _table(decoded).to_pylist()
    assert sorted((r["key"], r["size"]) for r in rows) == [("a", 2), ("c", 5)]
    assert decoded[-1].state["offsets"] == {str(p): n for p, n in stream.offsets().items()}


def test_a_record_that_is_not_a_json_object_fails_the_run_naming_it(lake: Lake) -> None:
    stream = lake.stream("events")
    _publish(stream, range(5))
    position = stream.publish(b"[1, 2]")
    pipeline = lake.pipeline("ev")
    with pytest.raises(InvalidInputError, match=rf"events/p{position.partition}:{position.offset}"):
        pipeline.run(
            StreamSource(stream, group="g", max_records=1),
            into="raw.events",
            batch_rows=1,
            progress=False,
        )
    committed = pipeline.state().get("offsets", {})
    assert committed.get(str(position.partition), 0) == position.offset, "stops right before it"
    ids = _ids(lake) if lake.catalog.table_exists("raw.events") else []
    assert len(ids) == len(set(ids)) == sum(committed.values()), "the records before it loaded"


def test_a_schema_is_applied_to_decoded_rows(lake: Lake) -> None:
    stream = lake.stream("events")
    _publish(stream, range(3))
    fields: list[pa.Field[Any]] = [pa.field("id", pa.int16()), pa.field("name", pa.string())]
    schema = pa.schema(fields)
    batches = list(StreamSource(stream, group="g", schema=schema).read(SourceState({})))
    assert batches[0].data.schema.field("id").type == pa.int16()


def test_without_stop_at_end_the_source_keeps_polling_for_new_records(lake: Lake) -> None:
    stream = lake.stream("events")
    source = StreamSource(stream, group="g", stop_at_end=False, poll_timeout=0.05)
    reader = source.read(SourceState({}))
    publisher = threading.Timer(0.2, _publish, args=(stream, range(3)))
    publisher.start()
    try:
        seen: list[int] = []
        deadline = time.monotonic() + 10
        idle = 0
        while len(seen) < 3 and time.monotonic() < deadline:
            batch = next(reader)
            if batch.data.num_columns == 0:  # an idle poll: no rows, the state unchanged
                assert batch.data.num_rows == 0
                assert batch.state == {"offsets": {"0": 0, "1": 0, "2": 0}} or seen
                idle += 1
                continue
            seen.extend(_ints(_table([batch]).column("id").to_pylist()))
        assert sorted(seen) == [0, 1, 2]
        assert idle >= 1, "the source reports idle polls before the records arrive"
    finally:
        publisher.join()
        reader.close()  # type: ignore[attr-defined]


def test_a_continuous_run_commits_micro_batches_within_commit_every(lake: Lake) -> None:
    stream = lake.stream("events")
    source = StreamSource(stream, group="g", stop_at_end=False, poll_timeout=0.05)
    reports: list[Any] = []
    runner = threading.Thread(
        target=lambda: reports.append(
            lake.pipeline("live").run(
                source,
                into="raw.events",
                commit_every=0.3,
                batch_rows=1_000_000,
                progress=False,
            )
        )
    )
    runner.start()
    try:
        for wave in range(3):  # a trickle: far below batch_rows, so only time commits it
            _publish(stream, range(wave * 5, wave * 5 + 5))
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                if lake.catalog.table_exists("raw.events") and len(_ids(lake)) == wave * 5 + 5:
                    break
                time.sleep(0.05)
            assert _ids(lake) == list(range(wave * 5 + 5)), f"wave {wave} was not committed"
        history = lake.table("raw.events").history()
        assert len(history) >= 3, "each wave is its own micro-batch commit"
    finally:
        source.stop()
        runner.join(timeout=30)
    assert not runner.is_alive(), "stop() ends the continuous run"
    assert reports and reports[0].status == "succeeded"
    assert reports[0].rows_out == 15
    assert _ids(lake) == list(range(15)), "nothing is loaded twice"
    saved = lake.pipeline("live").state().get("offsets")
    assert isinstance(saved, dict)
    assert sum(saved.values()) == 15, "the committed offsets cover every loaded record"


def test_commit_every_must_be_positive(lake: Lake) -> None:
    source = StreamSource(lake.stream("events"), group="g")
    for bad in (0, -1.0, True, "1"):
        with pytest.raises(InvalidInputError, match="commit_every"):
            lake.pipeline("p").run(source, into="raw.events", commit_every=bad)  # type: ignore[arg-type]


def test_bad_arguments_and_state_are_clear_errors(lake: Lake) -> None:
    stream = lake.stream("events")
    with pytest.raises(ConfigurationError, match="decode"):
        StreamSource(stream, group="g", decode="xml")  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="max_records"):
        StreamSource(stream, group="g", max_records=0)
    with pytest.raises(InvalidInputError, match="consumer group"):
        StreamSource(stream, group="bad group!")
    with pytest.raises(InvalidInputError, match="offsets"):
        list(StreamSource(stream, group="g").read(SourceState({"offsets": {"x": 1}})))


def test_a_stream_without_consumer_groups_is_not_supported(tmp_path: Path) -> None:
    class NoGroups(LocalStream):
        capabilities: ClassVar[frozenset[Capability]] = frozenset()

    adapter = NoGroups("plain", directory=tmp_path / "streams")
    try:
        with pytest.raises(NotSupportedError):
            StreamSource(Stream(adapter), group="g")
    finally:
        adapter.close()


def test_sequence_number_offsets_load_as_ordered_text(tmp_path: Path) -> None:
    from lakekit.pipelines.sources.stream import OFFSET_DIGITS

    class Sequenced(LocalStream):
        """Offsets far beyond int64, as Kinesis sequence numbers are (~200 bits)."""

        dense_offsets: ClassVar[bool] = False
        base = 2**190

        def read(self, partition: int, offset: int, max_records: int) -> list[Record]:
            import dataclasses

            local = max(0, offset - self.base) if offset >= self.base else offset
            return [
                dataclasses.replace(r, offset=r.offset + self.base)
                for r in super().read(partition, local, max_records)
            ]

        def offsets(self, which: Any) -> dict[int, int]:
            return {p: n + self.base for p, n in super().offsets(which).items()}

        def committed(self, group: str) -> dict[int, int]:
            return {p: n + self.base for p, n in super().committed(group).items()}

        def commit(self, group: str, offsets: Mapping[int, int]) -> None:
            super().commit(group, {p: n - self.base for p, n in offsets.items()})

    url = f"local://{tmp_path / 'lake'}"
    with lakekit.connect(
        url, stream=lambda name: Sequenced(name, directory=tmp_path / "s", partitions=2)
    ) as lake:
        stream = lake.stream("events")
        _publish(stream, range(12))
        report = lake.pipeline("p").run(
            StreamSource(stream, group="g", max_records=5), into="raw.events", progress=False
        )
        assert report.rows_out == 12
        table = lake.table("raw.events").to_arrow()
    assert table.schema.field("_stream_offset").type == pa.string()
    offsets = table.column("_stream_offset").to_pylist()
    assert all(len(o) == OFFSET_DIGITS for o in offsets)
    assert sorted(int(o) for o in offsets) == [int(o) for o in sorted(offsets)], "text order"
    assert min(int(o) for o in offsets) >= 2**190
