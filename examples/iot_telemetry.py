"""IoT telemetry, end to end on a local lake.

A simulated fleet of devices publishes readings to the stream ``readings``. A stream-triggered
function cleans them (bad readings go to ``iot.rejected_readings`` with the reason), enriches
them with the device registry (``iot.devices``: site and model), stores them in the
day-partitioned lake table ``iot.readings`` and forwards them to the stream ``clean_readings``.
A 5-minute tumbling window over that stream computes per-device statistics, committed exactly
once to ``iot.device_stats`` (for SQL and BI) and kept in a key-value view served as JSON over
HTTP on 127.0.0.1 (for a dashboard).

    python examples/iot_telemetry.py [LAKE_DIR]

Delivery: the stream trigger is at-least-once, so the function writes with ``merge`` on the
reading's natural key ``(device, ts)``: a redelivered batch updates the same rows instead of
adding them again, and ``iot.readings`` holds every good reading exactly once. Forwarding to
``clean_readings`` is at-least-once: a function that crashed after forwarding and before it
finished would forward that batch again on redelivery (the live statistics could then count it
twice; the readings table never does).

The same handler body runs on AWS Lambda with a Kinesis trigger: nothing in it is local.
"""

from __future__ import annotations

import json
import random
import sys
import time
import urllib.request
from datetime import UTC, datetime, timedelta
from typing import Any

import pyarrow as pa

import lakekit
from lakekit.events import StreamRecords
from lakekit.interfaces.function_runtime import Context
from lakekit.interfaces.stream import Message
from lakekit.streaming import Count, KeyValueView, Max, Mean, Min, TableSink, Tumbling, windowed

START = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)
SITES = ("berlin", "lyon", "porto")
READINGS_SCHEMA = pa.schema(
    [
        ("device", pa.string()),
        ("ts", pa.timestamp("us", tz="UTC")),
        ("temp_c", pa.float64()),
        ("humidity", pa.float64()),
        ("battery", pa.float64()),
        ("site", pa.string()),
        ("model", pa.string()),
    ]
)


def simulate_fleet(
    lake: lakekit.Lake, *, devices: int = 12, minutes: int = 30, seed: int = 7
) -> dict[str, int]:
    """Publish one reading per device every 20 s of event time, keyed by device (so each
    device's readings stay in order). About 2% are broken on purpose: a missing temperature, a
    sensor glitch (-273 °C), or text that is not JSON. Returns how many of each were sent."""
    rng = random.Random(seed)  # noqa: S311 - simulated data, not security
    stream = lake.stream("readings")
    sent = {"good": 0, "bad": 0}
    values: list[tuple[str, bytes]] = []
    for step in range(minutes * 3):
        ts = START + timedelta(seconds=20 * step)
        for n in range(devices):
            device = f"dev-{n:03d}"
            reading: dict[str, Any] = {
                "device": device,
                "ts": ts.isoformat(),
                "temp_f": round(68 + 10 * rng.random() + n, 2),
                "humidity": round(40 + 20 * rng.random(), 1),
                "battery": round(1.0 - step / (minutes * 3) * 0.3 - 0.01 * n, 3),
            }
            payload = json.dumps(reading).encode()
            broken = rng.random()
            if broken < 0.007:  # a missing temperature
                del reading["temp_f"]
                payload = json.dumps(reading).encode()
            elif broken < 0.014:  # a sensor glitch: -273 °C
                reading["temp_f"] = -459.4
                payload = json.dumps(reading).encode()
            elif broken < 0.021:  # garbled on the wire
                payload = b"#" + payload
            sent["bad" if broken < 0.021 else "good"] += 1
            values.append((device, payload))
    for device, payload in values:
        stream.publish(payload, key=device)
    return sent


def register_devices(lake: lakekit.Lake, devices: int = 12) -> None:
    """The device registry the cleaning function enriches readings with."""
    names = [f"dev-{n:03d}" for n in range(devices)]
    registry = pa.table(
        {
            "device": names,
            "site": [SITES[n % len(SITES)] for n in range(devices)],
            "model": ["th-2" if n % 2 else "th-1" for n in range(devices)],
        }
    )
    lake.create_table("iot.devices", registry.schema, exist_ok=True).overwrite(registry)


def install_cleaner(lake: lakekit.Lake) -> None:
    """Register the stream-triggered function that cleans, enriches, stores and forwards."""

    # concurrency=1: each batch merges into the same day's file (copy-on-write), so batches of
    # different partitions would only conflict and retry if they ran side by side.
    @lake.functions.on_stream(
        "readings", group="cleaner", batch_size=500, retries=3, concurrency=1, backoff=0.1
    )
    def clean_readings(event: StreamRecords, context: Context) -> dict[str, int]:
        assert context.lake is not None
        lake = context.lake
        registry = {row["device"]: row for row in lake.table("iot.devices").to_arrow().to_pylist()}
        good: list[dict[str, Any]] = []
        rejected: list[dict[str, Any]] = []
        for record in event.records:
            row, reason = _clean(record.value, registry)
            if row is None:
                rejected.append(
                    {
                        "stream": event.stream,
                        "partition": event.partition,
                        "offset": record.offset,
                        "reason": reason,
                        "value": record.value.decode("utf-8", errors="replace"),
                    }
                )
            else:
                good.append(row)
        if good:
            table = pa.Table.from_pylist(good, schema=READINGS_SCHEMA)
            readings = lake.create_table(
                "iot.readings", READINGS_SCHEMA, partition_by=["day(ts)"], exist_ok=True
            )
            readings.merge(table, on=["device", "ts"])  # idempotent: a redelivery adds nothing
            lake.stream("clean_readings").publish_many(  # keyed: a device's readings in order
                [
                    Message(json.dumps(r, default=_iso).encode(), key=r["device"].encode())
                    for r in good
                ]
            )
        if rejected:
            bad = pa.Table.from_pylist(rejected)
            lake.create_table("iot.rejected_readings", bad.schema, exist_ok=True).merge(
                bad, on=["stream", "partition", "offset"]
            )
        context.logger.info("batch %s: %d good, %d rejected", event.id, len(good), len(rejected))
        return {"good": len(good), "rejected": len(rejected)}


def _clean(value: bytes, registry: dict[str, dict[str, Any]]) -> tuple[dict[str, Any] | None, str]:
    """A clean, enriched reading, or None and why it was rejected."""
    try:
        reading = json.loads(value)
    except ValueError:
        return None, "not JSON"
    if not isinstance(reading, dict):
        return None, "not a JSON object"
    missing = [f for f in ("device", "ts", "temp_f", "humidity", "battery") if f not in reading]
    if missing:
        return None, f"missing {', '.join(missing)}"
    device = registry.get(reading["device"])
    if device is None:
        return None, f"unknown device {reading['device']!r}"
    temp_c = (float(reading["temp_f"]) - 32) * 5 / 9
    if not -60 <= temp_c <= 90:
        return None, f"temperature {temp_c:.1f} °C out of range"
    return {
        "device": reading["device"],
        "ts": datetime.fromisoformat(reading["ts"]),
        "temp_c": round(temp_c, 2),
        "humidity": float(reading["humidity"]),
        "battery": float(reading["battery"]),
        "site": device["site"],
        "model": device["model"],
    }, ""


def _iso(value: object) -> str:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"cannot serialise {type(value).__name__}")


def stats_job(lake: lakekit.Lake, view: KeyValueView) -> Any:
    """Per device and 5 minutes of event time: readings, mean/max temperature, lowest battery."""
    return windowed(
        lake,
        "clean_readings",
        group="device_stats",
        key="device",
        time="ts",
        window=Tumbling("5m"),
        allowed_lateness="1m",
        aggregate={
            "readings": Count(),
            "avg_temp_c": Mean("temp_c"),
            "max_temp_c": Max("temp_c"),
            "min_battery": Min("battery"),
        },
        sinks=[TableSink(lake, "iot.device_stats"), view],
    )


def wait_until_consumed(lake: lakekit.Lake, stream: str, group: str, timeout: float) -> None:
    """Block until ``group`` has committed every record of ``stream`` (or raise TimeoutError)."""
    deadline = time.monotonic() + timeout
    target = lake.stream(stream)
    while time.monotonic() < deadline:
        latest = target.offsets("latest")
        committed = target.committed(group)
        if all(committed.get(p, 0) >= n for p, n in latest.items()):
            return
        time.sleep(0.05)
    raise TimeoutError(f"{group!r} did not consume {stream!r} within {timeout} s")


def main(lake_dir: str = "iot-lake", *, timeout: float = 120.0) -> dict[str, Any]:
    with lakekit.connect(f"local://{lake_dir}") as lake:
        register_devices(lake)
        install_cleaner(lake)
        sent = simulate_fleet(lake)
        with lake.functions.serve(stream_poll_interval=0.05):  # the local trigger runtime
            wait_until_consumed(lake, "readings", "cleaner", timeout)
        view = KeyValueView("latest_device_stats")
        job = stats_job(lake, view)
        try:
            job.run_once()
            url = view.serve(port=0)
            with urllib.request.urlopen(f"{url}/keys/dev-003", timeout=10) as response:  # noqa: S310 - our own 127.0.0.1 endpoint
                served = json.load(response)
        finally:
            job.close()
            view.close()
        per_site = lake.sql(
            "select site, count(*) as readings, round(avg(temp_c), 2) as avg_temp_c "
            "from iot.readings group by site order by site"
        ).to_arrow()
        return {
            "sent": sent,
            "stored": lake.table("iot.readings").count(),
            "rejected": lake.table("iot.rejected_readings").count(),
            "windows": lake.table("iot.device_stats").count(),
            "served": served,
            "per_site": per_site.to_pylist(),
            "dead_letters": len(lake.functions.dead_letters()),
        }


if __name__ == "__main__":
    result = main(*sys.argv[1:2])
    print(json.dumps(result, indent=2, default=str))
