"""lakekit benchmarks: see docs/benchmarks.md. Run with ``python -m benchmarks.run``."""
