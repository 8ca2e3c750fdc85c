"""The embedded DuckDB query engine."""
