"""Event-driven file processing, end to end on a local lake.

Order files (NDJSON) dropped into ``raw/orders/`` — by lakekit, or copied into the lake folder
by any other program — trigger a function that converts each one into the day-partitioned
Parquet table ``sales.orders``. A malformed file is not retried (retrying cannot fix it): it
lands in the dead letters with its error, naming the file and line, and is also published to
the ``dead_letters`` stream for alerting.

    python examples/file_processing.py [LAKE_DIR]

Delivery: object triggers are at-least-once. The function makes its effect exactly-once by
committing a marker for the event in the catalog's state area *in the same atomic commit* as
the rows (``Table.write(set_state=...)``), and only while that marker is absent
(``precondition=``): a redelivered event, or the same event handled twice at once, finds the
marker and loads nothing.

The same handler body runs on AWS Lambda with an S3 notification: nothing in it is local.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.json as pj

import lakekit
from lakekit.errors import InvalidInputError
from lakekit.events import ObjectCreated
from lakekit.interfaces.function_runtime import Context

ORDERS_SCHEMA = pa.schema(
    [
        ("order_id", pa.int64()),
        ("customer", pa.string()),
        ("amount", pa.float64()),
        ("ordered_at", pa.timestamp("us", tz="UTC")),
    ]
)


class AlreadyLoadedError(Exception):
    """The event's marker is committed: its rows are in the table already."""


def install_converter(lake: lakekit.Lake) -> None:
    """Register the function that turns each new order file into table rows."""

    @lake.functions.on_object_created(
        prefix="raw/orders/", suffix=".ndjson", retries=2, backoff=0.05
    )
    def convert_orders(event: ObjectCreated, context: Context) -> dict[str, Any]:
        assert context.lake is not None
        lake = context.lake
        rows = parse_orders(event.key, lake.store.get(event.key))
        table = lake.create_table(
            "sales.orders", ORDERS_SCHEMA, partition_by=["day(ordered_at)"], exist_ok=True
        )
        marker = f"examples/convert_orders/{event.id}"

        def not_loaded_yet() -> None:
            if lake.catalog.get_state(marker) is not None:
                raise AlreadyLoadedError(event.key)

        try:
            table.append(
                rows,
                set_state={marker: {"key": event.key, "rows": rows.num_rows}},
                precondition=not_loaded_yet,
            )
        except AlreadyLoadedError:
            context.logger.info("%s was loaded already (redelivery)", event.key)
            return {"key": event.key, "rows": 0, "duplicate": True}
        return {"key": event.key, "rows": rows.num_rows, "duplicate": False}


def parse_orders(key: str, data: bytes) -> pa.Table:
    """The orders of an NDJSON file, typed.

    Raises:
        InvalidInputError: the file is not valid order NDJSON (the message names key and line);
            a bad file is not retried, it goes straight to the dead letters.
    """
    try:
        return pj.read_json(
            pa.BufferReader(data),
            parse_options=pj.ParseOptions(
                explicit_schema=ORDERS_SCHEMA, unexpected_field_behavior="ignore"
            ),
        ).cast(ORDERS_SCHEMA)
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        for number, line in enumerate(data.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                order = json.loads(line)
            except ValueError as bad:
                raise InvalidInputError(f"{key}:{number}: not JSON ({bad})") from exc
            missing = [n for n in ORDERS_SCHEMA.names if order.get(n) is None]
            if missing:
                raise InvalidInputError(f"{key}:{number}: missing {', '.join(missing)}") from exc
        raise InvalidInputError(f"{key}: not order NDJSON: {exc}") from exc


def order_lines(first_id: int, count: int, day: str) -> bytes:
    return b"".join(
        json.dumps(
            {
                "order_id": first_id + n,
                "customer": f"c{(first_id + n) % 7}",
                "amount": round(10 + (first_id + n) % 13 * 2.5, 2),
                "ordered_at": f"{day}T{9 + n % 8:02d}:{n % 60:02d}:00+00:00",
            }
        ).encode()
        + b"\n"
        for n in range(count)
    )


def main(lake_dir: str = "files-lake", *, timeout: float = 60.0) -> dict[str, Any]:
    root = Path(lake_dir)
    with lakekit.connect(f"local://{root}") as lake:
        install_converter(lake)
        with lake.functions.serve(scan_interval=0.1, settle=0.2):
            # Through lakekit: delivered within milliseconds.
            lake.store.put("raw/orders/2026-12-01.ndjson", order_lines(1, 40, "2026-12-01"))
            lake.store.put("raw/orders/2026-12-02.ndjson", order_lines(41, 25, "2026-12-02"))
            # By another program: found by the folder scan once the file has settled.
            dropped = root / "raw" / "orders" / "2026-12-03.ndjson"
            dropped.write_bytes(order_lines(66, 10, "2026-12-03"))
            # A broken file: the third line is cut short.
            broken = order_lines(100, 5, "2026-12-03").splitlines(keepends=True)
            broken[2] = broken[2][:20] + b"\n"
            lake.store.put("raw/orders/broken.ndjson", b"".join(broken))
            # Not an order file: no trigger matches it.
            lake.store.put("raw/orders/README.txt", b"drop order files here")
            _wait(lambda: _rows(lake) == 75 and len(lake.functions.dead_letters()) == 1, timeout)
        letter = lake.functions.dead_letters("convert_orders")[0]
        days = lake.sql(
            "select cast(ordered_at as date) as day, count(*) as orders, sum(amount) as revenue "
            "from sales.orders group by 1 order by 1"
        ).to_arrow()
        alerts = lake.stream("dead_letters")
        with alerts.consumer("alerts", start="earliest") as consumer:
            published = [record.json() for record in consumer.poll(100, timeout=1.0)]
        return {
            "rows": _rows(lake),
            "days": [{**row, "day": str(row["day"])} for row in days.to_pylist()],
            "partitions": sorted(
                {f.key.rsplit("/", 2)[-2] for f in lake.table("sales.orders").files()}
            ),
            "dead_letter": {
                "key": letter.event.get("key"),
                "error_type": letter.error_type,
                "error": letter.error,
                "attempts": letter.attempts,
            },
            "published_dead_letters": len(published),
        }


def _rows(lake: lakekit.Lake) -> int:
    if not lake.catalog.table_exists("sales.orders"):
        return 0
    return lake.table("sales.orders").count()


def _wait(done: Any, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not done():
        if time.monotonic() > deadline:
            raise TimeoutError(f"the files were not processed within {timeout} s")
        time.sleep(0.05)


if __name__ == "__main__":
    print(json.dumps(main(*sys.argv[1:2]), indent=2, default=str))
