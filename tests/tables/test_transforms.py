"""Partition transforms and the Hive directory layout, checked against real pyarrow and DuckDB."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import zlib
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from lakekit.errors import InvalidInputError, SchemaError
from lakekit.partition_spec import PartitionField, PartitionSpec
from lakekit.tables.transforms import (
    MAX_SEGMENT_BYTES,
    NULL_PARTITION,
    format_partition_value,
    parse_partition_path,
    parse_partition_value,
    partition_columns,
    partition_path,
    partition_type,
    transform_is_order_preserving,
    transform_literal,
)

TOKYO = timezone(timedelta(hours=9))
TRICKY = [
    "a/b", "a=b", "100%", "%41", "%zz", "x#y", "q?", "sp ace", "a+b", "ünïcödé", "日本",
    "emoji 🎉", ".dot", "..", "_under", "~tilde", "", "NULL", "null", "tab\tnew\nline",
    "quote'\"", "back\\slash", "a:b*c<d>e|f", "semi;amp&", "'; DROP TABLE t; --",
    "\u00a0nbsp", "e\u0301", "\u2028", "\ufeff\uffff",
    *("".join(map(chr, range(start, min(start + 32, 128)))) for start in (1, 33, 65, 97)),
]  # fmt: skip


def field(text: str) -> PartitionField:
    return PartitionSpec.of(text).fields[0]


def compute(spec: str, values: Any, type: pa.DataType | None = None) -> list[Any]:
    f = field(spec)
    array = values if isinstance(values, pa.Array) else pa.array(values, type)
    table = pa.table({f.source: array})
    return partition_columns(table, PartitionSpec(fields=(f,)))[f.name].to_pylist()


def connect() -> duckdb.DuckDBPyConnection:
    return duckdb.connect(
        config={"autoinstall_known_extensions": False, "autoload_known_extensions": False}
    )


# -- temporal transforms ---------------------------------------------------------------------

# 20:30 UTC on Nov 26 is already Nov 27 in Tokyo: the partition must follow UTC.
INSTANTS = [datetime(2026, 11, 26, 20, 30, tzinfo=UTC), datetime(1969, 12, 31, 23, 59, 59), None]


@pytest.mark.parametrize("unit", ["s", "ms", "us", "ns"])
@pytest.mark.parametrize("tz", [None, "UTC", "Asia/Tokyo", "America/Los_Angeles"])
def test_time_transforms_take_every_timestamp_in_utc(unit: str, tz: str | None) -> None:
    values = [v.astimezone(TOKYO) if v and v.tzinfo else v for v in INSTANTS]
    ts = pa.array(values, pa.timestamp(unit, tz=tz))
    assert compute("year(ts)", ts) == [2026, 1969, None]
    assert compute("month(ts)", ts) == ["2026-11", "1969-12", None]
    assert compute("day(ts)", ts) == [date(2026, 11, 26), date(1969, 12, 31), None]
    assert compute("hour(ts)", ts) == ["2026-11-26-20", "1969-12-31-23", None]


@pytest.mark.parametrize("type", [pa.date32(), pa.date64()])
def test_date_transforms(type: pa.DataType) -> None:
    dates = pa.array([date(2026, 1, 31), date(1900, 12, 1), None], type)
    assert compute("year(d)", dates) == [2026, 1900, None]
    assert compute("month(d)", dates) == ["2026-01", "1900-12", None]
    assert compute("day(d)", dates) == [date(2026, 1, 31), date(1900, 12, 1), None]


def test_day_partition_of_naive_timestamps_before_the_epoch_floors() -> None:
    ts = pa.array([-1, -86_400_000_001, 0], pa.timestamp("us"))
    assert compute("day(ts)", ts) == [date(1969, 12, 31), date(1969, 12, 30), date(1970, 1, 1)]
    assert compute("hour(ts)", ts) == ["1969-12-31-23", "1969-12-30-23", "1970-01-01-00"]


@pytest.mark.parametrize(
    ("spec", "source", "expected"),
    [
        ("identity(c)", pa.int16(), pa.int16()),
        ("identity(c)", pa.dictionary(pa.int8(), pa.string()), pa.string()),
        ("identity(c)", pa.string_view(), pa.string()),
        ("year(c)", pa.timestamp("ns", tz="UTC"), pa.int32()),
        ("month(c)", pa.date64(), pa.string()),
        ("day(c)", pa.timestamp("s"), pa.date32()),
        ("hour(c)", pa.timestamp("ms"), pa.string()),
        ("bucket[4](c)", pa.large_string(), pa.int32()),
        ("truncate[3](c)", pa.int8(), pa.int8()),
        ("truncate[3](c)", pa.large_string(), pa.large_string()),
        ("truncate[3](c)", pa.binary(8), pa.string()),
        ("truncate[3](c)", pa.decimal128(9, 2), pa.decimal128(9, 2)),
    ],
)
def test_partition_type_is_fixed_per_transform(
    spec: str, source: pa.DataType, expected: pa.DataType
) -> None:
    assert partition_type(field(spec), source) == expected


def test_computed_columns_have_the_declared_types() -> None:
    table = pa.table(
        {
            "ts": pa.array([datetime(2026, 1, 1)], pa.timestamp("ms", tz="Asia/Tokyo")),
            "s": pa.array(["abc"]).dictionary_encode(),
            "n": pa.array([7], pa.uint8()),
        }
    )
    spec = PartitionSpec.of("year(ts)", "month(ts)", "day(ts)", "hour(ts)", "s",
                            "bucket[3](s)", "truncate[5](n)")  # fmt: skip
    columns = partition_columns(table, spec)
    assert list(columns) == [f.name for f in spec.fields]
    for f in spec.fields:
        assert columns[f.name].type == partition_type(f, table.schema.field(f.source).type)


# -- bucket -------------------------------------------------------------------------------------


def splitmix_bucket(key: int, n: int) -> int:
    """The documented bucket function, written out independently in plain Python."""
    mask = (1 << 64) - 1
    z = (key + 0x9E3779B97F4A7C15) & mask
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & mask
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & mask
    return (z ^ (z >> 31)) % n


BUCKET_INTS = [0, 1, -1, 42, 2**63 - 1, -(2**63)]
BUCKET_STRINGS = ["", "a", "hello", "ünïcödé", "日本"]


def test_bucket_matches_the_documented_function_and_a_frozen_vector() -> None:
    ints = compute("bucket[16](v)", BUCKET_INTS)
    strings = compute("bucket[16](v)", BUCKET_STRINGS)
    binary = compute("bucket[16](v)", [b"", b"\x00", b"\xff\xfe"])
    dates = compute("bucket[16](v)", [date(1970, 1, 1), date(2026, 11, 26)])
    stamps = compute("bucket[16](v)", [datetime(2026, 11, 26, 13, 0, 0, 123456)])
    decimals = compute("bucket[16](v)", [Decimal("12.34"), Decimal("-0.01")], pa.decimal128(9, 2))
    assert ints == [splitmix_bucket(v & (2**64 - 1), 16) for v in BUCKET_INTS]
    assert strings == [splitmix_bucket(zlib.crc32(s.encode()), 16) for s in BUCKET_STRINGS]
    assert decimals == [splitmix_bucket(zlib.crc32(b), 16) for b in (b"\x04\xd2", b"\xff")]
    days = (date(2026, 11, 26) - date(1970, 1, 1)).days
    assert dates == [splitmix_bucket(0, 16), splitmix_bucket(days, 16)]
    micros = (datetime(2026, 11, 26, 13, 0, 0, 123456, tzinfo=UTC).timestamp() * 10**6).__round__()
    assert stamps == [splitmix_bucket(micros, 16)]
    # Frozen: a change here changes the on-disk layout of every bucketed table.
    assert ints == [15, 1, 0, 5, 7, 11]
    assert strings == [15, 14, 9, 6, 13]
    assert binary == [15, 14, 8]
    assert dates == [15, 10]
    assert stamps == [5]
    assert decimals == [14, 12]


def test_bucket_is_the_same_in_another_process_with_another_hash_seed() -> None:
    code = (
        "import json, pyarrow as pa; from lakekit.partition_spec import PartitionSpec;"
        "from lakekit.tables.transforms import partition_columns;"
        f"t = pa.table({{'v': pa.array({BUCKET_STRINGS!r})}});"
        "print(json.dumps(partition_columns(t, PartitionSpec.of('bucket[1000](v)'))"
        "['v_bucket'].to_pylist()))"
    )
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, check=True)
    assert json.loads(out.stdout) == compute("bucket[1000](v)", BUCKET_STRINGS)


def test_bucket_ignores_integer_width_time_unit_zone_and_encoding() -> None:
    small = [-3, 0, 5, None]
    assert {
        str(compute("bucket[7](v)", small, t))
        for t in (pa.int8(), pa.int16(), pa.int32(), pa.int64())
    } == {str(compute("bucket[7](v)", small))}
    moment = datetime(2026, 11, 26, 13, 0, 1)
    stamps = [
        compute("bucket[97](v)", [moment], pa.timestamp(unit, tz=tz))
        for unit in ("s", "ms", "us", "ns")
        for tz in (None, "UTC", "Asia/Tokyo")
    ]
    assert all(s == stamps[0] for s in stamps)
    words = ["x", "yy", None, "x"]
    expected = compute("bucket[97](v)", words)
    assert compute("bucket[97](v)", pa.array(words).dictionary_encode()) == expected
    assert compute("bucket[97](v)", words, pa.large_string()) == expected
    assert compute("bucket[97](v)", words, pa.string_view()) == expected
    assert compute("bucket[97](v)", [date(2026, 1, 1)], pa.date64()) == compute(
        "bucket[97](v)", [date(2026, 1, 1)]
    )


def test_bucket_spreads_values_evenly_over_the_range() -> None:
    counts = [0] * 16
    for b in compute("bucket[16](v)", list(range(16_000))):
        counts[b] += 1
    assert min(counts) > 850 and max(counts) < 1150
    words = compute("bucket[10](v)", [f"user-{i}" for i in range(10_000)])
    assert set(words) == set(range(10)) and max(words.count(b) for b in range(10)) < 1150


# -- truncate -----------------------------------------------------------------------------------


def test_truncate_floors_integers_toward_negative_infinity() -> None:
    values = [-11, -10, -1, 0, 1, 9, 10, None]
    assert compute("truncate[10](v)", values) == [-20, -10, -10, 0, 0, 0, 10, None]
    assert compute("truncate[10](v)", values, pa.int8()) == [-20, -10, -10, 0, 0, 0, 10, None]
    assert compute("truncate[10](v)", [2**64 - 1], pa.uint64()) == [2**64 - 6]


def test_truncate_of_strings_binary_and_decimals() -> None:
    assert compute("truncate[2](v)", ["hello", "ü日本", "e\u0301x", "a", "", None]) == [
        "he", "ü日", "e\u0301", "a", "", None,
    ]  # fmt: skip
    assert compute("truncate[2](v)", [b"\x00\xff\x10", b"a", None]) == ["00ff", "61", None]
    assert compute(
        "truncate[50](v)", [Decimal("12.34"), Decimal("-0.01"), None], pa.decimal128(9, 2)
    ) == [Decimal("12.00"), Decimal("-0.50"), None]


def test_truncate_that_overflows_is_an_error_not_a_wrong_partition() -> None:
    with pytest.raises(InvalidInputError, match="v_truncate"):
        compute("truncate[3](v)", [-(2**63)])
    with pytest.raises(InvalidInputError, match="v_truncate"):
        compute("truncate[3](v)", [-128], pa.int8())


# -- errors -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "type"),
    [
        ("day(v)", pa.string()),
        ("hour(v)", pa.date32()),
        ("bucket[4](v)", pa.float64()),
        ("truncate[4](v)", pa.date32()),
        ("identity(v)", pa.binary()),
        ("identity(v)", pa.list_(pa.int32())),
    ],
)
def test_transform_on_a_type_it_does_not_fit_is_a_schema_error(
    spec: str, type: pa.DataType
) -> None:
    with pytest.raises(SchemaError, match=f"'v'.*{re.escape(str(type))}") as caught:
        compute(spec, [None], type)
    assert caught.value.column == "v"


def test_missing_source_column_is_invalid_input() -> None:
    with pytest.raises(InvalidInputError, match="'ts' is missing"):
        partition_columns(pa.table({"x": [1]}), PartitionSpec.of("day(ts)"))


def test_field_names_starting_with_underscore_are_rejected_because_readers_hide_them(
    tmp_path: Path,
) -> None:
    (tmp_path / "_k=1").mkdir()
    pq.write_table(pa.table({"i": [1]}), tmp_path / "_k=1" / "p.parquet")
    assert ds.dataset(tmp_path, format="parquet", partitioning="hive").files == []
    spec = PartitionSpec(fields=(PartitionField(source="k", name="_k"),))
    with pytest.raises(InvalidInputError, match="starts with '_'"):
        partition_columns(pa.table({"k": [1]}), spec)
    with pytest.raises(InvalidInputError, match="starts with '_'"):
        partition_path({"_k": 1})


def test_reserved_null_marker_and_overlong_values_are_rejected_before_writing() -> None:
    with pytest.raises(InvalidInputError, match="reserved"):
        compute("identity(v)", ["ok", NULL_PARTITION])
    with pytest.raises(InvalidInputError, match="reserved"):
        format_partition_value(NULL_PARTITION)
    with pytest.raises(InvalidInputError, match="255 bytes"):
        compute("identity(v)", ["ü" * 60])  # 120 UTF-8 bytes, 360 escaped
    assert compute("identity(v)", ["a" * 250]) == ["a" * 250]
    with pytest.raises(InvalidInputError, match="truncate"):
        partition_path({"v": "a" * (MAX_SEGMENT_BYTES - 1)})
    with pytest.raises(InvalidInputError, match="bucket"):
        compute(f"bucket[{2**31}](v)", [1])
    with pytest.raises(InvalidInputError, match="Unicode"):
        format_partition_value("lone \ud800 surrogate")
    with pytest.raises(InvalidInputError, match="directory"):
        format_partition_value(b"\x00\xff")
    with pytest.raises(InvalidInputError, match="string"):
        parse_partition_value("00ff", pa.binary())


# -- directory values -----------------------------------------------------------------------------


def test_escaping_follows_the_uri_unreserved_set() -> None:
    assert partition_path({"country": "US", "dt": date(2026, 11, 26)}) == "country=US/dt=2026-11-26"
    assert format_partition_value("a/b=c d%") == "a%2Fb%3Dc%20d%25"
    assert format_partition_value("ü") == "%C3%BC"
    assert format_partition_value("A-z_0.9~") == "A-z_0.9~"
    assert format_partition_value("") == ""
    assert format_partition_value(None) == NULL_PARTITION
    assert format_partition_value(True) == "true"
    assert (
        format_partition_value(datetime(2026, 1, 2, 3, 4, 5)) == "2026-01-02%2003%3A04%3A05.000000"
    )


@pytest.mark.parametrize(
    ("value", "type"),
    [
        (-5, pa.int8()),
        (2**64 - 1, pa.uint64()),
        (0.1, pa.float32()),
        (1e20, pa.float64()),
        (Decimal("-12.30"), pa.decimal128(9, 2)),
        (True, pa.bool_()),
        (date(2026, 11, 26), pa.date32()),
        (datetime(2026, 11, 26, 13, 0, 0, 123000), pa.timestamp("ms")),
        (datetime(2026, 11, 26, 13, tzinfo=UTC), pa.timestamp("us", tz="Asia/Tokyo")),
        ("2026-11-26-13", pa.string()),
        (None, pa.int64()),
    ],
)
def test_typed_values_round_trip_through_directory_text(value: Any, type: pa.DataType) -> None:
    text = format_partition_value(value, type)
    assert "/" not in text
    back = parse_partition_value(text, type)
    assert back == pa.scalar(value, type).as_py()


@given(st.text())
def test_any_string_round_trips_through_a_path(value: str) -> None:
    assume(value != NULL_PARTITION and len(value.encode()) * 3 <= 200)
    path = partition_path({"a": value, "b": None, "c": 1})
    assert path.count("/") == 2
    assert parse_partition_path(path) == {"a": value, "b": None, "c": "1"}
    assert parse_partition_value(format_partition_value(value), pa.string()) == value


def test_parse_partition_path_skips_file_names_and_types_values() -> None:
    path = "country=US/dt=2026-11-26/n=__HIVE_DEFAULT_PARTITION__/part-0.parquet"
    assert parse_partition_path(path) == {"country": "US", "dt": "2026-11-26", "n": None}
    typed = parse_partition_path(path, {"dt": pa.date32(), "n": pa.int32()})
    assert typed == {"country": "US", "dt": date(2026, 11, 26), "n": None}
    assert parse_partition_path("k=%c3%bc/j=%zz") == {"k": "ü", "j": "%zz"}  # as readers decode
    with pytest.raises(InvalidInputError, match="twice"):
        parse_partition_path("k=1/k=2")
    with pytest.raises(InvalidInputError, match="UTF-8"):
        parse_partition_path("k=%C3")
    with pytest.raises(InvalidInputError, match="int32"):
        parse_partition_path("k=abc", {"k": pa.int32()})


def test_pyarrow_writes_exactly_the_directories_partition_path_names(tmp_path: Path) -> None:
    values = [*TRICKY, None]
    table = pa.table({"k": pa.array(values), "i": pa.array(range(len(values)))})
    partitioning = ds.HivePartitioning(
        pa.schema([("k", pa.string())]), null_fallback=NULL_PARTITION
    )
    ds.write_dataset(table, tmp_path, format="parquet", partitioning=partitioning)
    assert {p.name for p in tmp_path.iterdir()} == {partition_path({"k": v}) for v in values}


def test_tricky_values_read_back_exactly_with_pyarrow_and_duckdb(tmp_path: Path) -> None:
    values = [*TRICKY, None, " ", "0"]
    written = {}
    for i, value in enumerate(values):
        directory = tmp_path / partition_path({"k": value, "n": i})
        directory.mkdir(parents=True)
        pq.write_table(pa.table({"i": [i]}), directory / "part-0.parquet")
        written[i] = value
    schema = pa.schema([("k", pa.string()), ("n", pa.int64())])
    partitioning = ds.HivePartitioning(schema, null_fallback=NULL_PARTITION)
    table = ds.dataset(tmp_path, format="parquet", partitioning=partitioning).to_table()
    assert dict(zip(table["i"].to_pylist(), table["k"].to_pylist(), strict=True)) == written
    with connect() as con:
        rows = con.execute(
            "SELECT i, k, n FROM read_parquet(?, hive_partitioning = true,"
            " hive_types = {'k': VARCHAR, 'n': BIGINT})",
            [f"{tmp_path}/**/*.parquet"],
        ).fetchall()
    assert {i: k for i, k, _ in rows} == written
    assert all(i == n for i, _, n in rows)
    assert written[values.index("")] == "" and written[values.index(None)] is None


def test_table_written_with_partition_columns_reads_back_typed_with_both_readers(
    tmp_path: Path,
) -> None:
    ts = [datetime(2026, 11, 26, 23, 30, tzinfo=UTC), datetime(2026, 11, 27, 1), None]
    table = pa.table(
        {
            "ts": pa.array(ts, pa.timestamp("us", tz="UTC")),
            "country": ["US", "a/b", None],
            "id": [1, 2, 3],
        }
    )
    spec = PartitionSpec.of("country", "day(ts)", "hour(ts)", "bucket[4](id)")
    derived = partition_columns(table, spec)
    for name in ("ts_day", "ts_hour", "id_bucket"):
        table = table.append_column(name, derived[name])
    part_schema = pa.schema([table.schema.field(f.name) for f in spec.fields])
    partitioning = ds.HivePartitioning(part_schema, null_fallback=NULL_PARTITION)
    ds.write_dataset(table, tmp_path, format="parquet", partitioning=partitioning)
    files = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*.parquet"))
    types = {name: part_schema.field(name).type for name in part_schema.names}
    for f in files:
        assert f.startswith(partition_path(parse_partition_path(f, types), types) + "/")
    back = ds.dataset(tmp_path, format="parquet", partitioning=partitioning).to_table()
    back = back.sort_by("id")
    assert back["ts_day"].to_pylist() == [date(2026, 11, 26), date(2026, 11, 27), None]
    assert back["country"].to_pylist() == ["US", "a/b", None]
    with connect() as con:
        rows = con.execute(
            "SELECT id, ts_day, ts_hour, country FROM read_parquet(?, hive_partitioning = true,"
            " hive_types = {'ts_day': DATE, 'ts_hour': VARCHAR, 'country': VARCHAR,"
            " 'id_bucket': INTEGER}) ORDER BY id",
            [f"{tmp_path}/**/*.parquet"],
        ).fetchall()
    assert rows == [
        (1, date(2026, 11, 26), "2026-11-26-23", "US"),
        (2, date(2026, 11, 27), "2026-11-27-01", "a/b"),
        (3, None, None, None),
    ]


def test_readers_disagree_on_an_escaped_null_marker_so_it_is_never_written(tmp_path: Path) -> None:
    directory = tmp_path / "k=%5F_HIVE_DEFAULT_PARTITION__"
    directory.mkdir()
    pq.write_table(pa.table({"i": [1]}), directory / "p.parquet")
    partitioning = ds.HivePartitioning(pa.schema([("k", pa.string())]))
    assert ds.dataset(tmp_path, partitioning=partitioning).to_table()["k"].to_pylist() == [None]
    with connect() as con:
        row = con.execute(
            "SELECT k FROM read_parquet(?, hive_partitioning = true)", [f"{tmp_path}/**/*.parquet"]
        ).fetchone()
    assert row == (NULL_PARTITION,)
    assert parse_partition_path(directory.name) == {"k": None}  # lakekit sides with pyarrow


# -- pruning helpers ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "value", "source_type", "expected"),
    [
        ("day(ts)", datetime(2026, 11, 26, 20, 30, tzinfo=TOKYO), None, date(2026, 11, 26)),
        ("hour(ts)", datetime(2026, 11, 26, 20, 30), None, "2026-11-26-20"),
        ("month(ts)", date(2026, 11, 26), None, "2026-11"),
        ("year(ts)", datetime(2026, 11, 26), pa.timestamp("ns", tz="UTC"), 2026),
        ("truncate[10](v)", -1, pa.int32(), -10),
        ("truncate[50](v)", Decimal("-0.01"), pa.decimal128(9, 2), Decimal("-0.50")),
        ("bucket[16](v)", "hello", None, 9),
        ("identity(v)", None, pa.int64(), None),
    ],
)
def test_transform_literal_matches_the_column_transform(
    spec: str, value: Any, source_type: pa.DataType | None, expected: Any
) -> None:
    f = field(spec)
    assert transform_literal(f, value, source_type) == expected
    if value is not None:
        assert compute(spec, [value], source_type) == [expected]


def test_transform_literal_reports_bad_literals() -> None:
    with pytest.raises(InvalidInputError):
        transform_literal(field("day(ts)"), "not a time", pa.timestamp("us"))
    with pytest.raises(SchemaError):
        transform_literal(field("day(ts)"), "2026-11-26")


def test_order_preserving_transforms_keep_range_filters_valid() -> None:
    start = datetime(1999, 12, 31, 22, tzinfo=UTC)
    moments = [start + timedelta(minutes=37 * i) for i in range(2000)]
    ints = list(range(-500, 500, 7))
    words = sorted(["", "a", "ab", "abc", "b", "ü", "日本", "zz"])
    for spec, values in [
        ("year(v)", moments), ("month(v)", moments), ("day(v)", moments), ("hour(v)", moments),
        ("identity(v)", ints), ("truncate[10](v)", ints), ("truncate[1](v)", words),
    ]:  # fmt: skip
        assert transform_is_order_preserving(field(spec))
        out = compute(spec, values)
        assert out == sorted(out), spec
    assert not transform_is_order_preserving(field("bucket[8](v)"))
