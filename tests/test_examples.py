"""Every example runs as shipped."""

from __future__ import annotations

import runpy
from pathlib import Path

EXAMPLES = Path(__file__).parents[1] / "examples"


def test_quickstart_example_runs_and_is_rerunnable(tmp_path: Path) -> None:
    module = runpy.run_path(str(EXAMPLES / "quickstart.py"))
    for _ in range(2):
        result = module["main"](str(tmp_path / "lake"))
        assert result["total"] == 32.75
        assert result["enriched"]["page"] == "/checkout"
        assert result["enriched"]["attempt"] == 1
    assert result["consumed"] == 1


def test_conformance_example_from_the_docs_passes() -> None:
    import subprocess
    import sys

    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:benchmark",
         str(EXAMPLES / "conformance")],
        capture_output=True,
        text=True,
        check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:]
    assert " passed" in result.stdout


def test_iot_telemetry_example_cleans_stores_and_serves_window_stats(tmp_path: Path) -> None:
    module = runpy.run_path(str(EXAMPLES / "iot_telemetry.py"))
    result = module["main"](str(tmp_path / "lake"))

    assert result["dead_letters"] == 0
    assert result["sent"]["bad"] > 0, "the simulation breaks some readings on purpose"
    assert result["stored"] == result["sent"]["good"], "every good reading, exactly once"
    assert result["rejected"] == result["sent"]["bad"]
    assert result["windows"] == 12 * 5, "12 devices x the 5 closed 5-minute windows of 30 min"
    served = result["served"]
    assert served["device"] == "dev-003" and served["final"] is True
    assert served["window_end"] == "2026-12-01T08:25:00Z", "the latest closed window"
    assert sum(site["readings"] for site in result["per_site"]) == result["stored"]

    import lakekit

    with lakekit.connect(f"local://{tmp_path / 'lake'}") as lake:
        (row,) = (
            lake.sql(
                "select count(*) as n, avg(temp_c) as avg, max(temp_c) as max, min(battery) as low "
                "from iot.readings where device = 'dev-003' "
                "and ts >= timestamptz '2026-12-01 08:20:00+00' "
                "and ts < timestamptz '2026-12-01 08:25:00+00'"
            )
            .to_arrow()
            .to_pylist()
        )
        assert served["readings"] == row["n"], "the served stats are the stored readings'"
        assert abs(served["avg_temp_c"] - row["avg"]) < 1e-9
        assert served["max_temp_c"] == row["max"] and served["min_battery"] == row["low"]
        reasons = set(lake.table("iot.rejected_readings").to_arrow().column("reason").to_pylist())
        assert "not JSON" in reasons and "missing temp_f" in reasons
        assert any("out of range" in r for r in reasons)


def test_iot_cleaner_is_idempotent_when_a_batch_is_delivered_again(tmp_path: Path) -> None:
    import lakekit
    from lakekit.events import StreamRecord, StreamRecords

    module = runpy.run_path(str(EXAMPLES / "iot_telemetry.py"))
    reading = b'{"device": "dev-001", "ts": "2026-12-01T08:00:00+00:00", "temp_f": 70, '
    reading += b'"humidity": 50, "battery": 0.9}'
    batch = StreamRecords(
        id="batch-1", stream="readings", partition="0",
        records=(StreamRecord(offset="0", value=reading), StreamRecord(offset="1", value=b"{")),
    )  # fmt: skip
    with lakekit.connect(f"local://{tmp_path / 'lake'}") as lake:
        module["register_devices"](lake)
        module["install_cleaner"](lake)
        for _ in range(2):  # at-least-once delivery: the same batch twice
            assert lake.functions.invoke("clean_readings", batch) == {"good": 1, "rejected": 1}
        assert lake.table("iot.readings").count() == 1
        assert lake.table("iot.rejected_readings").count() == 1


def test_file_processing_example_converts_dropped_files_and_dead_letters_a_bad_one(
    tmp_path: Path,
) -> None:
    module = runpy.run_path(str(EXAMPLES / "file_processing.py"))
    result = module["main"](str(tmp_path / "lake"))

    assert result["rows"] == 75, "40 + 25 through lakekit, 10 dropped by another program"
    assert [d["orders"] for d in result["days"]] == [40, 25, 10]
    assert result["partitions"] == [
        "ordered_at_day=2026-12-01",
        "ordered_at_day=2026-12-02",
        "ordered_at_day=2026-12-03",
    ]
    letter = result["dead_letter"]
    assert letter["key"] == "raw/orders/broken.ndjson"
    assert letter["error_type"] == "InvalidInputError"
    assert letter["error"].startswith("raw/orders/broken.ndjson:3: not JSON")
    assert letter["attempts"] == 1, "a bad file is not retried"
    assert result["published_dead_letters"] == 1


def test_file_converter_loads_a_redelivered_event_once(tmp_path: Path) -> None:
    import lakekit
    from lakekit.events import ObjectCreated

    module = runpy.run_path(str(EXAMPLES / "file_processing.py"))
    with lakekit.connect(f"local://{tmp_path / 'lake'}") as lake:
        module["install_converter"](lake)
        meta = lake.store.put("raw/orders/a.ndjson", module["order_lines"](1, 3, "2026-12-01"))
        event = ObjectCreated(id="evt-1", bucket=str(tmp_path), key=meta.key, etag=meta.etag)
        first = lake.functions.invoke("convert_orders", event)
        again = lake.functions.invoke("convert_orders", event)
        assert (first["rows"], first["duplicate"]) == (3, False)
        assert (again["rows"], again["duplicate"]) == (0, True)
        assert lake.table("sales.orders").count() == 3
        assert len(lake.table("sales.orders").history()) == 1
