"""Built-in pipeline sources, one module per kind.

Import the source you need from its module (this package imports nothing heavy by itself):

- ``lakekit.pipelines.sources.files.FileSource``: NDJSON/JSON/CSV/Parquet/Avro files (gz, zst)
  in any ObjectStore, incremental by path + etag + size, resumable within a file;
- ``lakekit.pipelines.sources.sql.SqlSource``: a table or query of any SQLAlchemy database,
  incremental by a cursor column with lag and backfill bounds;
- ``lakekit.pipelines.sources.http.HttpSource``: paged JSON APIs (page, offset, cursor,
  next-link) with retries honouring Retry-After;
- ``lakekit.pipelines.sources.stream.StreamSource``: any lakekit Stream, with per-partition
  offsets committed with the data (exactly-once) and the consumer group advanced after.
"""

from __future__ import annotations

__all__: list[str] = []
