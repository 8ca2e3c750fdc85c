"""FileSource(on_error="quarantine") through a pipeline: the good rows of a file load, its bad
lines land in ``<table>__quarantine`` with ``file:line``, reason and raw text, exactly once."""

from __future__ import annotations

import gzip
from typing import Any, cast

import pyarrow as pa
import pytest

from lakekit.errors import ConfigurationError, InvalidInputError
from lakekit.lake import Lake
from lakekit.pipelines.source import Source, SourceBatch, SourceState
from lakekit.pipelines.sources.files import FileSource

NDJSON = (
    b'{"id": 1, "name": "ann"}\n'
    b"{not json\n"
    b'{"id": 2, "name": "bob"}\n'
    b"[1, 2]\n"
    b'{"id": 3, "name": "caf\xff"}\n'
    b'{"id": 4, "name": "dan"}\n'
)
CSV = b"id,name\n1,ann\n2,bob,extra\n3,cy\n4\n5,eve\n"


def quarantined(lake: Lake, table: str) -> list[tuple[str, str, str]]:
    rows = lake.table(table).to_arrow().sort_by("_origin").to_pylist()
    return [(row["_origin"], row["_reason"], row["_record"]) for row in rows]


def ids(lake: Lake, table: str) -> list[int]:
    return sorted(cast("list[int]", lake.table(table).to_arrow().column("id").to_pylist()))


def test_bad_json_lines_are_quarantined_with_file_and_line_and_good_rows_load(
    lake: Lake,
) -> None:
    lake.store.put("in/orders.ndjson", NDJSON)
    source = FileSource(lake.store, "in/", on_error="quarantine")
    report = lake.pipeline("orders").run(source, into="raw.orders")

    assert ids(lake, "raw.orders") == [1, 2, 4]
    bad = quarantined(lake, "raw.orders__quarantine")
    assert [origin for origin, _, _ in bad] == [
        "in/orders.ndjson:2",
        "in/orders.ndjson:4",
        "in/orders.ndjson:5",
    ]
    assert "invalid JSON" in bad[0][1] and bad[0][2] == "{not json"
    assert "expected a JSON object per line, got list" in bad[1][1] and bad[1][2] == "[1, 2]"
    assert "not valid UTF-8 (byte 0xff" in bad[2][1]
    assert bad[2][2] == '{"id": 3, "name": "caf\ufffd"}'  # decoded with errors="replace"
    assert (report.status, report.rows_in, report.rows_out, report.rows_quarantined) == (
        "succeeded",
        6,
        3,
        3,
    )
    stamps = lake.table("raw.orders__quarantine").to_arrow().column("_quarantined_at")
    assert stamps.type == pa.timestamp("us", tz="UTC") and stamps.null_count == 0


def test_csv_lines_with_the_wrong_number_of_fields_are_quarantined(lake: Lake) -> None:
    lake.store.put("in/people.csv.gz", gzip.compress(CSV))
    source = FileSource(lake.store, "in/", on_error="quarantine")
    report = lake.pipeline("people").run(source, into="raw.people")

    assert ids(lake, "raw.people") == [1, 3, 5]
    assert quarantined(lake, "raw.people__quarantine") == [
        ("in/people.csv.gz:3", "expected 2 fields, got 3", "2,bob,extra"),
        ("in/people.csv.gz:5", "expected 2 fields, got 1", "4"),
    ]
    assert report.rows_quarantined == 2


def test_a_rerun_quarantines_nothing_twice_and_a_new_file_adds_its_own(lake: Lake) -> None:
    lake.store.put("in/a.ndjson", NDJSON)
    pipeline = lake.pipeline("orders")
    pipeline.run(FileSource(lake.store, "in/", on_error="quarantine"), into="raw.orders")
    again = pipeline.run(FileSource(lake.store, "in/", on_error="quarantine"), into="raw.orders")
    assert again.status == "nothing to do"

    lake.store.put("in/b.ndjson", b'{"id": 5, "name": "eve"}\n"text"\n')
    pipeline.run(FileSource(lake.store, "in/", on_error="quarantine"), into="raw.orders")
    assert ids(lake, "raw.orders") == [1, 2, 4, 5]
    origins = [origin for origin, _, _ in quarantined(lake, "raw.orders__quarantine")]
    assert origins == ["in/a.ndjson:2", "in/a.ndjson:4", "in/a.ndjson:5", "in/b.ndjson:2"]


def test_rejected_lines_commit_once_when_a_file_spans_several_batches(lake: Lake) -> None:
    lines = [b'{"id": %d}' % i if i % 4 else b"oops %d" % i for i in range(1, 21)]
    lake.store.put("in/big.ndjson", b"\n".join(lines) + b"\n")
    source = FileSource(lake.store, "in/", on_error="quarantine", batch_rows=3, block_size=16)
    report = lake.pipeline("big").run(source, into="raw.big", batch_rows=3)

    assert ids(lake, "raw.big") == [i for i in range(1, 21) if i % 4]
    origins = [origin for origin, _, _ in quarantined(lake, "raw.big__quarantine")]
    assert sorted(origins, key=lambda o: int(o.rsplit(":", 1)[1])) == [
        f"in/big.ndjson:{i}" for i in (4, 8, 12, 16, 20)
    ]
    assert report.commits == 5 and report.rows_quarantined == 5


def test_a_crash_before_the_batch_commit_neither_loses_nor_repeats_rejected_lines(
    lake: Lake, monkeypatch: pytest.MonkeyPatch
) -> None:
    lake.store.put("in/orders.ndjson", NDJSON)
    catalog = lake.catalog
    real_commit = catalog.commit
    crashes: list[str] = []

    def crashing_commit(ident: Any, *args: Any, **kwargs: Any) -> Any:
        if str(ident) == "raw.orders" and not crashes:
            crashes.append(str(ident))
            raise OSError("power cut")
        return real_commit(ident, *args, **kwargs)

    monkeypatch.setattr(catalog, "commit", crashing_commit)
    pipeline = lake.pipeline("orders")
    with pytest.raises(OSError, match="power cut"):
        pipeline.run(FileSource(lake.store, "in/", on_error="quarantine"), into="raw.orders")
    assert lake.table("raw.orders__quarantine").count() == 3  # committed just before the crash

    report = pipeline.run(FileSource(lake.store, "in/", on_error="quarantine"), into="raw.orders")
    assert ids(lake, "raw.orders") == [1, 2, 4]
    assert lake.table("raw.orders__quarantine").count() == 3
    assert report.rows_out == 3


def test_a_file_of_only_bad_lines_commits_its_quarantine_and_state_without_a_table(
    lake: Lake,
) -> None:
    lake.store.put("in/junk.ndjson", b"nope\n[]\n")
    pipeline = lake.pipeline("junk")
    report = pipeline.run(FileSource(lake.store, "in/", on_error="quarantine"), into="raw.junk")

    assert not lake.catalog.table_exists("raw.junk")
    assert [o for o, _, _ in quarantined(lake, "raw.junk__quarantine")] == [
        "in/junk.ndjson:1",
        "in/junk.ndjson:2",
    ]
    assert (report.status, report.rows_quarantined, report.rows_out) == ("succeeded", 2, 0)
    rerun = pipeline.run(FileSource(lake.store, "in/", on_error="quarantine"), into="raw.junk")
    assert rerun.status == "nothing to do"

    lake.store.put("in/later.ndjson", b'{"id": 9}\n')
    pipeline.run(FileSource(lake.store, "in/", on_error="quarantine"), into="raw.junk")
    assert ids(lake, "raw.junk") == [9]


def test_json_array_elements_that_are_not_objects_are_quarantined(lake: Lake) -> None:
    lake.store.put("in/list.json", b'[{"id": 1}, 2, {"id": 3}]')
    lake.pipeline("list").run(FileSource(lake.store, "in/", on_error="quarantine"), into="raw.l")
    assert ids(lake, "raw.l") == [1, 3]
    assert quarantined(lake, "raw.l__quarantine") == [
        ("in/list.json#2", "expected a JSON object, got int", "2")
    ]


def test_raise_stays_the_default_and_loads_nothing_of_a_bad_file(lake: Lake) -> None:
    lake.store.put("in/orders.ndjson", NDJSON)
    with pytest.raises(InvalidInputError, match=r"in/orders\.ndjson:5: not valid UTF-8"):
        lake.pipeline("orders").run(FileSource(lake.store, "in/"), into="raw.orders")
    assert not lake.catalog.table_exists("raw.orders")
    assert not lake.catalog.table_exists("raw.orders__quarantine")


def test_corrupt_streams_and_unparsable_documents_still_raise(lake: Lake) -> None:
    lake.store.put("gz/a.ndjson.gz", gzip.compress(NDJSON)[:-12])
    lake.store.put("pq/a.parquet", b"PAR1 not really")
    lake.store.put("js/a.json", b'[{"id": 1},')
    for prefix, message in [
        ("gz/", "not a valid gzip stream"),
        ("pq/", "not a readable Parquet file"),
        ("js/", "invalid JSON"),
    ]:
        source = FileSource(lake.store, prefix, on_error="quarantine")
        with pytest.raises(InvalidInputError, match=message):
            lake.pipeline("p" + prefix.strip("/")).run(source, into="raw.t" + prefix.strip("/"))


def test_an_unknown_on_error_is_a_configuration_error(lake: Lake) -> None:
    with pytest.raises(ConfigurationError, match="on_error"):
        FileSource(lake.store, "in/", on_error="ignore")  # type: ignore[arg-type]


class _BadRejects(Source):
    def __init__(self, rejected: Any) -> None:
        self.rejected = rejected

    def read(self, state: SourceState) -> Any:
        yield SourceBatch(pa.table({"id": [1]}), rejected=self.rejected, origin="x")


def test_a_source_with_malformed_rejected_rows_fails_clearly(lake: Lake) -> None:
    with pytest.raises(InvalidInputError, match="_origin, _reason, _record"):
        lake.pipeline("bad").run(_BadRejects(pa.table({"why": ["?"]})), into="raw.bad")
    nulls = pa.table({"_origin": ["a"], "_reason": [None], "_record": ["r"]})
    with pytest.raises(InvalidInputError, match="'_reason' has nulls"):
        lake.pipeline("bad").run(_BadRejects(nulls), into="raw.bad")
