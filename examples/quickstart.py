"""The README's quickstart as a runnable script: every interface once, on a local lake.

python examples/quickstart.py [LAKE_DIR]
"""

from __future__ import annotations

import contextlib
import sys

import pyarrow as pa

import lakekit


def main(lake_dir: str = "quickstart-lake") -> dict[str, object]:
    with lakekit.connect(f"local://{lake_dir}") as lake:
        # ObjectStore: land a raw file atomically; create-if-absent makes re-runs safe.
        lake.store.put("raw/orders/2026-11-26.json", b'{"id": 1, "amount": 9.5}\n')
        with contextlib.suppress(lakekit.AlreadyExistsError):
            lake.store.create("raw/orders/_claimed", b"run-1")

        # Lake table: a partitioned Parquet table; each write is one atomic snapshot.
        schema = pa.schema([("id", pa.int64()), ("amount", pa.float64()), ("dt", pa.string())])
        orders = lake.create_table("sales.orders", schema, partition_by=["dt"], exist_ok=True)
        day = pa.table({"id": [1, 2, 3], "amount": [9.5, 20.0, 3.25], "dt": ["2026-11-26"] * 3})
        orders.overwrite_partitions(day)  # re-runnable: replaces that day only

        # QueryEngine: SQL over the catalog, values always bound.
        total = lake.sql(
            "select sum(amount) from sales.orders where dt = $day", {"day": "2026-11-26"}
        ).scalar()

        # Stream: publish and consume with a consumer group (at-least-once).
        clicks = lake.stream("clicks")
        clicks.publish_json({"user": 7, "page": "/checkout"}, key="7")
        with clicks.consumer("dashboard") as consumer:
            batch = consumer.poll(timeout=1.0)
            consumer.commit()

        # FunctionRuntime: a handler with retries and a timeout.
        @lake.functions.handler(retries=3, timeout=30)
        def enrich(event: lakekit.Event, context: lakekit.Context) -> dict[str, object]:
            return {**event.payload, "attempt": context.attempt}  # type: ignore[attr-defined]

        enriched = lake.functions.invoke("enrich", batch[-1].json())
        return {"total": total, "consumed": len(batch), "enriched": enriched}


if __name__ == "__main__":
    print(main(*sys.argv[1:]))
