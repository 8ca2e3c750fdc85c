"""The ingest benchmark runs end to end and compares like with like: both sides load every row of
the same landing files into the same days (timings are judged by `nox -s bench`); and the
FileSource fast paths it relies on (block-parallel parsing, counted line numbers, optional row
origins, read-ahead) give the same batches and errors as before."""

from __future__ import annotations

import itertools
import threading
from collections.abc import Generator
from pathlib import Path
from types import ModuleType

import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.json as pj
import pytest

from benchmarking import import_benchmark, run_quick_benchmark
from lakekit.errors import InvalidInputError
from lakekit.lake import Lake
from lakekit.pipelines.source import SourceBatch, SourceState
from lakekit.pipelines.sources.files import FileSource, state_key


@pytest.fixture
def bench() -> tuple[ModuleType, ModuleType]:
    """``benchmarks._data`` and ``benchmarks.bench_ingest`` (the repo root is not on sys.path)."""
    return import_benchmark("_data"), import_benchmark("bench_ingest")


@pytest.mark.slow
def test_quick_ingest_benchmark_reports_both_sides_loading_every_row(tmp_path: Path) -> None:
    stdout, report = run_quick_benchmark("ingest", tmp_path)
    assert "ingest_200k_rows" in stdout
    rows = report["parameters"]["rows"]
    repetitions = report["parameters"]["repetitions"]
    assert rows == 200_000 and report["parameters"]["files"] == 40
    assert report["parameters"]["increment_rows"] == 2_000
    (comparison,) = report["comparisons"]
    assert comparison["name"] == "ingest_200k_rows"
    assert comparison["target"] == pytest.approx(1 / 0.85)
    assert len(comparison["lakekit_samples_ms"]) == len(comparison["baseline_samples_ms"])
    assert len(comparison["lakekit_samples_ms"]) == repetitions >= 3
    for side in ("lakekit", "baseline"):
        runs = report["runs"][side]
        assert len(runs) == repetitions
        for run in runs:
            assert run["rows_written"] == rows
            assert run["peak_rss_bytes"] > 0
            assert run["files"] >= 30  # at least one file per day
    for run in report["runs"]["lakekit"]:
        assert run["incremental_rows"] == 2_000
        assert run["noop_seconds"] > 0 and run["incremental_seconds"] > 0
        assert run["snapshots"] >= 2  # the full run and the incremental run
    assert report["incremental_cost"] > 0
    assert report["incremental_target"] is None  # judged on full runs only
    for label in ("rows/s", "peak RSS", "incremental run", "no-op run"):
        assert label in report["extra"]


def test_both_sides_load_the_same_rows_into_the_same_days(
    bench: tuple[ModuleType, ModuleType], tmp_path: Path
) -> None:
    data, bench_ingest = bench
    landing = data.landing_files(8_000, files_per_format=2, cache_dir=tmp_path / "cache")
    ours = bench_ingest._ingest_lakekit(landing.directory, tmp_path / "lakekit")
    theirs = bench_ingest._ingest_baseline(landing.directory, tmp_path / "baseline")
    assert ours["rows_written"] == theirs["rows_written"] == 8_000
    assert ours["incremental_rows"] == landing.increment_rows == 80

    baseline = ds.dataset(tmp_path / "baseline", format="parquet", partitioning="hive")
    expected = baseline.to_table().sort_by("event_id").select(data.STREAM_SCHEMA.names)
    lakekit_files = sorted((tmp_path / "lakekit").rglob("ts_day=*/*.parquet"))
    written = ds.dataset(lakekit_files, format="parquet").to_table().sort_by("event_id")
    assert written.num_rows == 8_080  # the full run and the increment
    assert written.slice(0, 8_000).select(data.STREAM_SCHEMA.names).equals(expected)
    assert sorted({p.parent.name for p in lakekit_files}) == [
        d.name.replace("dt=", "ts_day=") for d in sorted((tmp_path / "baseline").iterdir())
    ]


def test_landing_files_hold_the_events_as_text_and_are_reused(
    bench: tuple[ModuleType, ModuleType], tmp_path: Path
) -> None:
    data, _ = bench
    landing = data.landing_files(4_000, files_per_format=2, cache_dir=tmp_path)
    assert [p.name for p in landing.files] == [
        "part-000.ndjson", "part-001.ndjson", "part-002.csv", "part-003.csv"
    ]  # fmt: skip
    assert landing.increment.name == "part-004.ndjson"
    first = pj.read_json(landing.files[0]).cast(data.LANDING_SCHEMA)
    expected = next(data.iter_event_batches(4_040, batch_rows=1_000))
    assert first.num_rows == 1_000
    assert (
        first.column("ts")
        .cast(pa.timestamp("us"))
        .equals(pa.chunked_array([expected.column("ts")]))
    )
    assert first.column("payload").to_pylist() == expected.column("payload").to_pylist()
    assert landing.files[2].read_text().startswith('"event_id","ts","user_id"')
    modified = landing.files[0].stat().st_mtime_ns
    again = data.landing_files(4_000, files_per_format=2, cache_dir=tmp_path)
    assert again == landing and landing.files[0].stat().st_mtime_ns == modified
    assert [p.name for p in tmp_path.iterdir()] == [landing.directory.name]  # no partial left


# -- the FileSource fast paths the benchmark relies on --------------------------------------------


def _drain(source: FileSource) -> list[SourceBatch]:
    return list(source.read(SourceState({})))


def _big_ndjson(rows: int, *, blank_every: int = 0, mixed: bool = True) -> bytes:
    """~40 bytes a line; ``amount`` is an integer, in the second half a float when ``mixed``."""
    lines = []
    for n in range(1, rows + 1):
        amount = f"{n}.5" if mixed and n > rows // 2 else str(n)
        lines.append(f'{{"id": {n}, "amount": {amount}, "tag": "t{n % 7}"}}')
        if blank_every and n % blank_every == 0:
            lines.append("  ")
    return ("\n".join(lines) + "\n").encode()


def test_large_chunks_parsed_in_blocks_keep_the_types_of_the_whole_chunk(
    lake: Lake,
) -> None:
    data = _big_ndjson(150_000)  # ~6 MB: one 8 MiB chunk, several parse blocks
    lake.store.put("in/a.ndjson", data)
    csv_text = b"id,amount\n" + b"".join(
        f"{n},{n if n <= 75_000 else n + 0.5}\n".encode() for n in range(1, 150_001)
    )
    lake.store.put("in/b.csv", csv_text)

    batches = _drain(FileSource(lake.store, "in/", block_size=8 * 2**20, batch_rows=10**6))

    ndjson, csv = (pa.table(b.data) for b in batches)
    assert ndjson.schema.field("amount").type == pa.float64()  # int then float: promoted
    assert ndjson.column("amount")[-1].as_py() == 150_000.5
    assert csv.schema.field("amount").type == pa.float64()
    assert csv.num_rows == ndjson.num_rows == 150_000
    assert csv.column("amount").to_pylist()[74_999:75_001] == [75_000.0, 75_001.5]


def test_row_origins_count_lines_fast_and_still_skip_blank_ones(lake: Lake) -> None:
    lake.store.put("in/plain.ndjson", _big_ndjson(2_000, mixed=False))
    lake.store.put("in/blanks.ndjson", _big_ndjson(2_000, blank_every=500, mixed=False))

    blanks, plain = _drain(FileSource(lake.store, "in/", block_size=4096))

    assert plain.row_origins is not None and blanks.row_origins is not None
    assert plain.row_origins[:2] == ("in/plain.ndjson:1", "in/plain.ndjson:2")
    assert plain.row_origins[-1] == "in/plain.ndjson:2000"
    assert blanks.row_origins[499:502] == (
        "in/blanks.ndjson:500", "in/blanks.ndjson:502", "in/blanks.ndjson:503"
    )  # fmt: skip
    assert blanks.row_origins[-1] == "in/blanks.ndjson:2003"


def test_without_row_origins_batches_hold_the_same_rows(lake: Lake) -> None:
    lake.store.put("in/a.ndjson", _big_ndjson(1_000))
    lake.store.put("in/b.csv", b"id,amount\n1,2.5\n2,3.5\n")

    with_origins = _drain(FileSource(lake.store, "in/"))
    without = _drain(FileSource(lake.store, "in/", row_origins=False))

    assert [b.row_origins for b in without] == [None, None]
    assert [pa.table(b.data) for b in without] == [pa.table(b.data) for b in with_origins]
    assert [b.state for b in without] == [b.state for b in with_origins]


def test_read_ahead_raises_a_bad_file_only_after_every_batch_before_it(lake: Lake) -> None:
    lake.store.put("in/a.ndjson", _big_ndjson(300))
    lake.store.put("in/b.ndjson", b'{"id": 1}\n{"id": \n')
    source = FileSource(lake.store, "in/", batch_rows=100)

    seen: list[SourceBatch] = []
    reader = source.read(SourceState({}))
    seen.extend(itertools.islice(reader, 3))
    with pytest.raises(InvalidInputError, match=r"in/b\.ndjson:2"):
        next(reader)

    assert [b.data.num_rows for b in seen] == [100, 100, 100]
    entry = seen[-1].state[state_key("in/a.ndjson")]
    meta = lake.store.head("in/a.ndjson")
    assert entry == {
        "key": "in/a.ndjson", "etag": meta.etag, "size": meta.size, "rows": 300, "done": True
    }  # fmt: skip


def test_closing_the_reader_early_stops_the_read_ahead_thread(lake: Lake) -> None:
    for n in range(5):
        lake.store.put(f"in/{n}.ndjson", _big_ndjson(200))
    before = {t.ident for t in threading.enumerate()}

    reader = FileSource(lake.store, "in/", batch_rows=50).read(SourceState({}))
    assert isinstance(reader, Generator)
    first = next(reader)
    reader.close()

    assert first.data.num_rows == 50
    assert {t.ident for t in threading.enumerate()} <= before
