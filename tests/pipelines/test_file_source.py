"""FileSource: every format from a real local lake's store, incremental by file version, resumable
within a file, and malformed files rejected with key and line before any of their rows."""

from __future__ import annotations

import datetime as dt
import gzip
import importlib.util
import io
import sys
from collections.abc import Mapping
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from lakekit.errors import ConfigurationError, InvalidInputError, MissingDependencyError
from lakekit.interfaces.object_store import ObjectStore
from lakekit.lake import Lake
from lakekit.pipelines.source import SourceBatch, SourceState
from lakekit.pipelines.sources.files import CsvOptions, FileSource, state_key

needs_fastavro = pytest.mark.skipif(
    importlib.util.find_spec("fastavro") is None, reason='needs the "avro" extra (fastavro)'
)

ROWS: list[dict[str, Any]] = [
    {"id": 1, "name": "ann"},
    {"id": 2, "name": "bob"},
    {"id": 3, "name": None},
]
NDJSON = b'{"id": 1, "name": "ann"}\n{"id": 2, "name": "bob"}\n{"id": 3, "name": null}\n'
CSV = b"id,name\n1,ann\n2,bob\n3,\n"


@pytest.fixture
def store(lake: Lake) -> ObjectStore:
    return lake.store


def run(
    source: FileSource, state: Mapping[str, Any] | None = None
) -> tuple[list[SourceBatch], dict[str, Any]]:
    """Drain ``read`` like a pipeline: commit each batch's state after it."""
    committed = dict(state or {})
    batches = []
    for batch in source.read(SourceState(committed)):
        batches.append(batch)
        committed.update(batch.state)
    return batches, committed


def rows_of(batches: list[SourceBatch]) -> list[dict[str, Any]]:
    return [row for batch in batches for row in pa.table(batch.data).to_pylist()]


def zstd(data: bytes) -> bytes:
    sink = pa.BufferOutputStream()
    with pa.CompressedOutputStream(sink, "zstd") as out:
        out.write(data)
    return bytes(sink.getvalue())


def parquet_bytes(rows: list[dict[str, Any]]) -> bytes:
    sink = io.BytesIO()
    pq.write_table(pa.Table.from_pylist(rows), sink)
    return sink.getvalue()


def avro_bytes(rows: list[dict[str, Any]]) -> bytes:
    import fastavro

    schema = {
        "type": "record",
        "name": "row",
        "fields": [{"name": "id", "type": "long"}, {"name": "name", "type": ["null", "string"]}],
    }
    sink = io.BytesIO()
    fastavro.writer(sink, fastavro.parse_schema(schema), rows)
    return sink.getvalue()


FILES = {
    "orders.ndjson": NDJSON,
    "orders.jsonl.gz": gzip.compress(NDJSON),
    "orders.ndjson.zst": zstd(NDJSON),
    "orders.json": b'[{"id": 1, "name": "ann"},\n {"id": 2, "name": "bob"},\n'
    b' {"id": 3, "name": null}]',
    "orders.csv": CSV,
    "orders.csv.gz": gzip.compress(CSV),
    "orders.csv.zst": zstd(CSV),
    "orders.parquet": parquet_bytes(ROWS),
    "orders.parquet.gz": gzip.compress(parquet_bytes(ROWS)),
}
AVRO_FILES = ("orders.avro", "orders.avro.zst")


def avro_file_bytes(name: str) -> bytes:
    data = avro_bytes(ROWS)
    return zstd(data) if name.endswith(".zst") else data


@pytest.mark.parametrize(
    "name", [*sorted(FILES), *(pytest.param(name, marks=needs_fastavro) for name in AVRO_FILES)]
)
def test_reads_every_format_and_compression_by_extension(store: ObjectStore, name: str) -> None:
    store.put(f"in/{name}", FILES[name] if name in FILES else avro_file_bytes(name))

    batches, state = run(FileSource(store, "in/"))

    assert rows_of(batches) == ROWS
    assert pa.table(batches[0].data).schema.field("id").type == pa.int64()
    assert state[state_key(f"in/{name}")]["done"] is True
    assert state[state_key(f"in/{name}")]["rows"] == 3
    assert batches[0].origin == f"in/{name}"


def test_explicit_format_overrides_the_extension(store: ObjectStore) -> None:
    store.put("in/export.txt", CSV)

    batches, _ = run(FileSource(store, "in/", format="csv"))

    assert rows_of(batches) == ROWS


def test_unchanged_file_is_never_read_again(store: ObjectStore) -> None:
    store.put("in/a.ndjson", NDJSON)
    source = FileSource(store, "in/")
    _, state = run(source)

    again, _ = run(source, state)

    assert again == []


def test_rewritten_file_is_read_again_and_new_file_is_read(store: ObjectStore) -> None:
    store.put("in/a.ndjson", NDJSON)
    source = FileSource(store, "in/")
    _, state = run(source)
    store.put("in/a.ndjson", b'{"id": 10, "name": "new"}\n')
    store.put("in/b.ndjson", b'{"id": 20, "name": "other"}\n')

    batches, _ = run(source, state)

    assert rows_of(batches) == [{"id": 10, "name": "new"}, {"id": 20, "name": "other"}]
    assert [batch.origin for batch in batches] == ["in/a.ndjson", "in/b.ndjson"]


def test_files_are_read_in_key_order_and_pattern_selects_keys(store: ObjectStore) -> None:
    store.put("in/2024/b.csv", b"id\n2\n")
    store.put("in/2023/a.csv", b"id\n1\n")
    store.put("in/2023/skip.ndjson", b'{"id": 9}\n')

    batches, _ = run(FileSource(store, "in/", pattern="in/*/*.csv"))

    assert [batch.origin for batch in batches] == ["in/2023/a.csv", "in/2024/b.csv"]
    assert rows_of(batches) == [{"id": 1}, {"id": 2}]


def test_batches_hold_at_most_batch_rows_and_only_the_last_is_done(store: ObjectStore) -> None:
    store.put("in/n.ndjson", b"".join(b'{"n": %d}\n' % n for n in range(7)))

    batches, _ = run(FileSource(store, "in/", batch_rows=3, block_size=16))

    entries: list[Any] = [batch.state[state_key("in/n.ndjson")] for batch in batches]
    assert [len(batch.data) for batch in batches] == [3, 3, 1]
    assert [(entry["rows"], entry["done"]) for entry in entries] == [
        (3, False),
        (6, False),
        (7, True),
    ]
    assert rows_of(batches) == [{"n": n} for n in range(7)]


def test_resume_within_a_file_continues_after_the_last_committed_batch(
    store: ObjectStore,
) -> None:
    store.put("in/n.csv.gz", gzip.compress(b"n\n" + b"".join(b"%d\n" % n for n in range(5))))
    source = FileSource(store, "in/", batch_rows=2)
    first = next(iter(source.read(SourceState({}))))  # committed, then the process crashed

    rest, state = run(source, first.state)

    assert rows_of([first]) == [{"n": 0}, {"n": 1}]
    assert rows_of(rest) == [{"n": n} for n in range(2, 5)]
    assert rest[0].raw is None  # the raw file was landed with the first batch
    assert run(source, state)[0] == []


def test_row_origins_name_the_line_of_each_row(store: ObjectStore) -> None:
    store.put("in/a.ndjson", b'{"x": 1}\n\n{"x": 2}\n')
    store.put("in/b.csv", b"# exported\nx\n3\n\n4\n")

    batches, _ = run(FileSource(store, "in/", csv=CsvOptions(skip_rows=1)))

    assert batches[0].row_origins == ("in/a.ndjson:1", "in/a.ndjson:3")
    assert batches[1].row_origins == ("in/b.csv:3", "in/b.csv:5")


def test_raw_carries_the_original_bytes_and_suffix(store: ObjectStore) -> None:
    data = gzip.compress(CSV)
    store.put("in/orders.2024.csv.gz", data)

    batches, _ = run(FileSource(store, "in/"))
    no_raw, _ = run(FileSource(store, "in/", raw_max_bytes=0))

    assert batches[0].raw is not None
    assert batches[0].raw.data == data
    assert batches[0].raw.suffix == ".csv.gz"
    assert no_raw[0].raw is None


def test_csv_dialect_options(store: ObjectStore) -> None:
    store.put("in/x.csv", b"meta line\n1;'a;b'\nNA;c\n")
    options = CsvOptions(
        delimiter=";", quote_char="'", header=False, column_names=("id", "name"),
        null_values=("NA",), skip_rows=1,
    )  # fmt: skip

    batches, _ = run(FileSource(store, "in/", csv=options))

    assert rows_of(batches) == [{"id": 1, "name": "a;b"}, {"id": None, "name": "c"}]


def test_explicit_schema_sets_types_and_adds_missing_columns(store: ObjectStore) -> None:
    store.put("in/a.ndjson", b'{"id": 1}\n')
    store.put("in/b.csv", b"id\n2\n")
    store.put("in/c.parquet", parquet_bytes([{"id": 3}]))
    types: dict[str, pa.DataType] = {"id": pa.string(), "note": pa.float64()}
    schema = pa.schema(types)

    batches, _ = run(FileSource(store, "in/", schema=schema))

    for batch in batches:
        table = pa.table(batch.data)
        assert table.schema.field("id").type == pa.string()
        assert table.schema.field("note").type == pa.float64()
    assert [row["id"] for row in rows_of(batches)] == ["1", "2", "3"]


def test_declared_type_wins_over_what_later_chunks_hold(store: ObjectStore) -> None:
    store.put("in/a.ndjson", b'{"id": 1}\n' * 20 + b'{"id": "A-7"}\n')
    types: dict[str, pa.DataType] = {"id": pa.string()}

    batches, _ = run(FileSource(store, "in/", schema=pa.schema(types), block_size=32))

    assert [row["id"] for row in rows_of(batches)] == ["1"] * 20 + ["A-7"]


def test_type_change_within_a_file_asks_for_a_schema(store: ObjectStore) -> None:
    store.put("in/a.ndjson", b'{"id": 1}\n' * 20 + b'{"id": "A-7"}\n')

    with pytest.raises(InvalidInputError, match=r"in/a\.ndjson:\d+-21: .*FileSource\(schema="):
        run(FileSource(store, "in/", block_size=32))


def test_file_bigger_than_the_buffer_gives_the_same_batches(store: ObjectStore) -> None:
    data = b"".join(b'{"n": %d, "s": "%s"}\n' % (n, b"x" * 50) for n in range(500))
    store.put("in/big.ndjson", data)

    buffered, _ = run(FileSource(store, "in/", block_size=1000, batch_rows=64))
    streamed, _ = run(
        FileSource(
            store, "in/", block_size=1000, batch_rows=64, max_buffer_bytes=1, raw_max_bytes=0
        )
    )

    assert rows_of(streamed) == rows_of(buffered) == [{"n": n, "s": "x" * 50} for n in range(500)]
    assert [b.state for b in streamed] == [b.state for b in buffered]


def test_empty_file_yields_one_zero_row_batch_marking_it_done(store: ObjectStore) -> None:
    store.put("in/empty.ndjson", b"")

    batches, state = run(FileSource(store, "in/"))

    assert [len(batch.data) for batch in batches] == [0]
    assert state[state_key("in/empty.ndjson")]["done"] is True


def test_bad_json_line_names_file_and_line_and_yields_nothing_of_that_file(
    store: ObjectStore,
) -> None:
    store.put("in/a.ndjson", NDJSON)
    good = b"".join(b'{"n": %d}\n' % n for n in range(200))
    store.put("in/b.ndjson", good + b'{"n": 200,\n' + good)
    yielded: list[SourceBatch] = []
    batches = FileSource(store, "in/", block_size=64, batch_rows=10).read(SourceState({}))

    with pytest.raises(InvalidInputError, match=r"in/b\.ndjson:201: invalid JSON"):
        yielded.extend(batches)

    assert {batch.origin for batch in yielded} == {"in/a.ndjson"}


def test_json_line_that_is_not_an_object_is_rejected(store: ObjectStore) -> None:
    store.put("in/a.ndjson", b'{"n": 1}\n[1, 2]\n')

    with pytest.raises(InvalidInputError, match=r"in/a\.ndjson:2: expected a JSON object"):
        run(FileSource(store, "in/"))


def test_csv_row_with_wrong_column_count_names_file_and_line(store: ObjectStore) -> None:
    store.put("in/a.csv", b"id,name\n1,ann\n2\n3,cy\n")

    with pytest.raises(InvalidInputError, match=r"in/a\.csv:3: expected 2 fields, got 1"):
        run(FileSource(store, "in/"))


def test_non_utf8_bytes_name_file_and_line(store: ObjectStore) -> None:
    store.put("in/a.csv.gz", gzip.compress(b"id,name\n1,ann\n2,b\xffb\n"))
    store.put("in/b.ndjson", b'{"n": "ok"}\n{"n": "caf\xe9"}\n')

    with pytest.raises(InvalidInputError, match=r"in/a\.csv\.gz:3: not valid UTF-8"):
        run(FileSource(store, "in/", pattern="*.csv.gz"))
    with pytest.raises(InvalidInputError, match=r"in/b\.ndjson:2: not valid UTF-8"):
        run(FileSource(store, "in/", pattern="*.ndjson"))


def test_bad_json_array_names_the_line(store: ObjectStore) -> None:
    store.put("in/a.json", b'[\n{"n": 1},\n{"n": 2\n]')

    with pytest.raises(InvalidInputError, match=r"in/a\.json:4: invalid JSON"):
        run(FileSource(store, "in/"))


@needs_fastavro
def test_avro_types_map_to_arrow_types(store: ObjectStore) -> None:
    import fastavro

    schema = {
        "type": "record",
        "name": "event",
        "fields": [
            {"name": "at", "type": {"type": "long", "logicalType": "timestamp-millis"}},
            {"name": "tags", "type": {"type": "array", "items": "string"}},
            {"name": "score", "type": ["null", "double"]},
        ],
    }
    at = dt.datetime(2024, 5, 1, 12, 30, tzinfo=dt.UTC)
    records = [{"at": at, "tags": ["a", "b"], "score": None}, {"at": at, "tags": [], "score": 1.5}]
    sink = io.BytesIO()
    fastavro.writer(sink, fastavro.parse_schema(schema), records)
    store.put("in/events.avro", sink.getvalue())

    batches, _ = run(FileSource(store, "in/"))

    table = pa.table(batches[0].data)
    assert table.schema.field("at").type == pa.timestamp("ms", tz="UTC")
    assert table.schema.field("tags").type == pa.list_(pa.string())
    assert table.schema.field("score").type == pa.float64()
    assert table.to_pylist() == records
    assert batches[0].row_origins == ("in/events.avro#1", "in/events.avro#2")


def test_csv_type_change_within_a_streamed_file_asks_for_a_schema(store: ObjectStore) -> None:
    store.put("in/a.csv", b"n\n" + b"1\n" * 20 + b"x\n")
    streamed = {"max_buffer_bytes": 1, "raw_max_bytes": 0}  # read block_size bytes at a time

    with pytest.raises(InvalidInputError, match=r"in/a\.csv:\d+-22: .*FileSource\(schema="):
        run(FileSource(store, "in/", block_size=16, **streamed))


def test_a_small_buffered_csv_file_is_typed_from_all_its_rows(store: ObjectStore) -> None:
    # A file in memory and at most 2 x block_size is parsed in one piece: its types come from
    # every row, so a late non-number makes the column text instead of failing half-way.
    store.put("in/a.csv", b"n\n" + b"1\n" * 20 + b"x\n")

    batches, _ = run(FileSource(store, "in/", block_size=32))

    assert batches[0].data.schema.field("n").type == pa.string()
    assert rows_of(batches)[-2:] == [{"n": "1"}, {"n": "x"}]


@pytest.mark.parametrize(
    ("name", "data", "what"),
    [
        ("a.ndjson.gz", gzip.compress(NDJSON, mtime=0)[:-12], "gzip"),
        ("a.csv.zst", zstd(CSV)[:-6] + b"junk", "zstd"),
        ("a.parquet", b"PAR1 not really parquet", "Parquet"),
        pytest.param("a.avro", b"Obj\x01 truncated", "Avro", marks=needs_fastavro),
    ],
    ids=["gzip", "zstd", "parquet", "avro"],
)
def test_corrupt_files_raise_invalid_input(
    store: ObjectStore, name: str, data: bytes, what: str
) -> None:
    store.put(f"in/{name}", data)

    with pytest.raises(InvalidInputError, match=rf"in/{name}.*{what}"):
        run(FileSource(store, "in/"))


def test_unknown_extension_raises_before_any_row(store: ObjectStore) -> None:
    store.put("in/a.ndjson", NDJSON)
    store.put("in/b.bin", b"\x00")

    with pytest.raises(InvalidInputError, match=r"in/b\.bin.*format="):
        next(iter(FileSource(store, "in/").read(SourceState({}))))


@needs_fastavro
def test_avro_without_the_extra_names_the_install_command(
    store: ObjectStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    store.put("in/a.avro", avro_bytes(ROWS))
    monkeypatch.setitem(sys.modules, "fastavro", None)

    with pytest.raises(MissingDependencyError, match=r'pip install "lakekit\[avro\]"'):
        run(FileSource(store, "in/"))


def test_bad_options_are_configuration_errors(store: ObjectStore) -> None:
    with pytest.raises(ConfigurationError, match="unknown file format"):
        FileSource(store, format="xml")  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="batch_rows"):
        FileSource(store, batch_rows=0)
    with pytest.raises(ConfigurationError, match="delimiter"):
        CsvOptions(delimiter=";;")


@pytest.mark.parametrize(
    ("name", "content", "match"),
    [
        ("a.ndjson", b'{"n": 1}\n\n{"n": 2,\n', r"in/a\.ndjson:3: invalid JSON"),
        ("a.ndjson", b'{"n": 1}\n[1, 2]\n', r"in/a\.ndjson:2: expected a JSON object"),
        ("a.csv", b"id,name\n1,ann\n2\n3,cy\n", r"in/a\.csv:3: expected 2 fields, got 1"),
    ],
)
def test_errors_name_the_line_even_without_row_origins(
    store: ObjectStore, name: str, content: bytes, match: str
) -> None:
    store.put(f"in/{name}", content)

    with pytest.raises(InvalidInputError, match=match):
        run(FileSource(store, "in/", row_origins=False))


def test_rows_are_the_same_with_and_without_row_origins(store: ObjectStore) -> None:
    store.put("in/a.ndjson", b'{"n": 1}\n\n  \n{"n": 2}\n')
    store.put("in/b.csv", b"id\n1\n\n2\n")

    with_origins, _ = run(FileSource(store, "in/"))
    without, _ = run(FileSource(store, "in/", row_origins=False))

    assert [b.data.to_pylist() for b in with_origins] == [b.data.to_pylist() for b in without]
    assert all(b.row_origins is None for b in without)


@pytest.mark.parametrize("streamed", [False, True], ids=["in-memory", "streamed"])
@pytest.mark.parametrize(
    ("name", "bad", "match"),
    [
        ("a.ndjson", b'{"n": 500,\n', r"in/a\.ndjson:{line}: invalid JSON"),
        ("a.ndjson", b'{"n": "caf\xe9"}\n', r"in/a\.ndjson:{line}: not valid UTF-8"),
        ("a.csv", b"500\n", r"in/a\.csv:{line}: expected 2 fields, got 1"),
        ("a.csv", b"500,caf\xe9\n", r"in/a\.csv:{line}: not valid UTF-8"),
    ],
)
def test_errors_deep_in_a_file_name_the_exact_line(
    store: ObjectStore, streamed: bool, name: str, bad: bytes, match: str
) -> None:
    # Many chunks before the bad line: line numbers are counted lazily across chunks.
    if name.endswith(".csv"):
        head, good = b"# exported\nn,name\n", b"".join(b"%d,x\n" % n for n in range(700))
        options = CsvOptions(skip_rows=1)
        line = 2 + 700 + 1
    else:
        head, good = b"", b"".join(b'{"n": %d}\n' % n for n in range(700))
        options = CsvOptions()
        line = 700 + 1
    store.put(f"in/{name}", head + good + bad + good)
    sizes = {"max_buffer_bytes": 1, "raw_max_bytes": 0} if streamed else {}
    source = FileSource(
        store, "in/", csv=options, block_size=256, row_origins=False, **sizes
    )  # fmt: skip

    with pytest.raises(InvalidInputError, match=match.format(line=line)):
        run(source)


def test_declared_types_read_the_same_whether_parsed_directly_or_cast(
    store: ObjectStore,
) -> None:
    schema = pa.schema([("ts", pa.timestamp("us")), ("n", pa.int32()), ("ok", pa.bool_())])
    # ISO text, ints and booleans are parsed straight into the declared types; epoch numbers
    # for a timestamp, numeric text for an int and 0/1 for a bool are read as JSON gives them
    # and cast (the same values either way).
    store.put(
        "in/a.ndjson",
        b'{"ts": "2024-01-01T00:00:01.5", "n": 7, "ok": true}\n'
        b'{"ts": "2024-01-01 00:00:02", "n": 8, "ok": false}\n',
    )
    store.put("in/b.ndjson", b'{"ts": 3000000, "n": "9", "ok": 1}\n')

    batches, _ = run(FileSource(store, "in/", schema=schema))

    assert all(batch.data.schema == schema for batch in batches)
    assert rows_of(batches) == [
        {"ts": dt.datetime(2024, 1, 1, 0, 0, 1, 500000), "n": 7, "ok": True},
        {"ts": dt.datetime(2024, 1, 1, 0, 0, 2), "n": 8, "ok": False},
        {"ts": dt.datetime(1970, 1, 1, 0, 0, 3), "n": 9, "ok": True},
    ]
