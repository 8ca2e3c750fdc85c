"""``FileSource``: ingest the files under a prefix of any object store, each exactly once.

Formats: NDJSON / JSON Lines, JSON (an array of objects, or one object), CSV, Parquet and Avro,
each optionally gzip- (``.gz``) or zstd- (``.zst``) compressed. The format and compression come
from the key's extension unless given.

Incremental: a file is identified by its key, etag and size. The state entry
``files/<sha1(key)>`` records ``{"key", "etag", "size", "rows", "done"}``; a file whose entry
matches the listed object and is ``done`` is never read again, a rewritten file (new etag or
size) is read again in full, and a new file is read. Within a file, every batch carries the
number of rows committed so far (``done: false``) and the last one ``done: true``, so a crash in
the middle of a large file resumes right after the last committed batch: the file is re-read
deterministically and its first ``rows`` rows are skipped.

Malformed input (a bad JSON line, a CSV row with the wrong number of fields, bytes that are not
UTF-8, a corrupt compressed stream or Parquet/Avro file) raises :class:`InvalidInputError` naming
the key and the line (``orders.ndjson:17: ...``) **before any row of that file is yielded**: each
file is parsed to its end first. Files up to ``max_buffer_bytes`` of decoded Arrow data are kept
in memory between that validation pass and yielding; larger files are parsed twice (the first
pass only validates, with memory bounded by ``block_size``/``batch_rows``), trading CPU for a
bounded memory footprint.

With ``on_error="quarantine"`` bad *lines* do not stop the file: a line of an NDJSON or CSV file
that is not UTF-8, not valid JSON, not a JSON object, or has the wrong number of CSV fields (and
an element of a JSON array that is not an object) is left out, and reported in the file's first
batch as ``SourceBatch.rejected`` (``_origin`` ``key:line``, ``_reason``, ``_record`` the line's
text decoded with ``errors="replace"``), which a pipeline commits to the quarantine table
together with that batch. The file's other rows load. Errors that are not about one line still
raise: a corrupt compressed stream, an unreadable Parquet or Avro file, a JSON document that does
not parse, a CSV header that is not UTF-8, and values whose type changes within a file (declare
it with ``schema=``).

Avro needs the ``avro`` extra (``fastavro``); pyarrow has no Avro reader.
"""

from __future__ import annotations

import contextlib
import csv as _csv
import fnmatch
import functools
import gzip
import hashlib
import io
import json
import re
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import IO, TYPE_CHECKING, Any, ClassVar, Literal, NoReturn, cast, get_args

from lakekit.errors import (
    ConfigurationError,
    InvalidInputError,
    LakekitError,
    MissingDependencyError,
    TransientError,
)
from lakekit.pipelines.source import RawItem, Source, SourceBatch, SourceState

if TYPE_CHECKING:
    import pyarrow as pa

    from lakekit.interfaces.object_store import ObjectMeta, ObjectStore

__all__ = ["CsvOptions", "FileFormat", "FileSource", "state_key"]

FileFormat = Literal["ndjson", "json", "csv", "parquet", "avro"]
"""The file formats :class:`FileSource` reads."""

_FORMAT_BY_EXTENSION: dict[str, FileFormat] = {
    ".ndjson": "ndjson",
    ".jsonl": "ndjson",
    ".json": "json",
    ".csv": "csv",
    ".parquet": "parquet",
    ".pq": "parquet",
    ".avro": "avro",
}
_COMPRESSION_BY_EXTENSION = {".gz": "gzip", ".gzip": "gzip", ".zst": "zstd", ".zstd": "zstd"}
_STATE_PREFIX = "files/"
_MIB = 1024 * 1024
_PARSE_BLOCK = _MIB
"""Smallest text parsed per pyarrow block (blocks of one chunk are parsed on parallel threads)."""


def _parse_block(size: int, limit: int) -> int | None:
    """The pyarrow block size for parsing ``size`` bytes of text: a number of equal blocks
    that is a multiple of the cores (so no core idles while another parses a last, lone
    block), each at most ``limit`` (``FileSource.block_size``) and at least ``_PARSE_BLOCK``;
    None when the text is too small to be worth splitting. Every block becomes one batch, and
    every batch costs the table writer a fixed amount of work, so blocks are not made smaller
    than that."""
    import pyarrow as pa

    if size <= 2 * _PARSE_BLOCK:
        return None
    cores = max(1, pa.cpu_count())
    blocks = -(-size // max(limit, 1))
    blocks = -(-blocks // cores) * cores
    return max(_PARSE_BLOCK, -(-size // blocks) + 1)


@dataclass(frozen=True, slots=True)
class CsvOptions:
    """How CSV files are written (the dialect) and which values mean null.

    Rows are one per line: a quoted value may not contain a newline.
    """

    delimiter: str = ","
    quote_char: str | None = '"'
    """``None`` disables quoting."""
    escape_char: str | None = None
    header: bool = True
    """The first line holds the column names (it is skipped when ``column_names`` is given)."""
    column_names: tuple[str, ...] | None = None
    """Column names to use; without them and without a header, columns are ``f0, f1, ...``."""
    null_values: tuple[str, ...] = ("",)
    """Values read as null (in every column, strings included)."""
    skip_rows: int = 0
    """Lines to skip before the header (or the first row)."""

    def __post_init__(self) -> None:
        for name in ("delimiter", "quote_char", "escape_char"):
            value = getattr(self, name)
            if value is not None and (len(value) != 1 or value in "\r\n"):
                raise ConfigurationError(f"CsvOptions.{name} must be one character, got {value!r}")
        if self.skip_rows < 0:
            raise ConfigurationError("CsvOptions.skip_rows must be >= 0")


def state_key(key: str) -> str:
    """The state entry (relative key) that records how far ``key`` was ingested."""
    return _STATE_PREFIX + hashlib.sha1(key.encode(), usedforsecurity=False).hexdigest()


class FileSource(Source):
    """The files under ``prefix`` of ``store`` (optionally matching a glob), each ingested once.

    Guarantees (with a pipeline that commits each batch's rows and state atomically):

    - **Exactly once per file version**: an unchanged file (same key, etag and size) is never
      read again; a rewritten file is read again in full; a file interrupted mid-way resumes
      after its last committed batch.
    - **Ordered and deterministic**: files in lexicographic key order, rows in file order, the
      same batches from the same state.
    - **No half-loaded file on bad input**: a malformed file raises before any of its rows is
      yielded (rows of *earlier* files have been yielded and may be committed). With
      ``on_error="quarantine"`` bad lines are rejected instead (see the module docs) and every
      rejected line of a file is in exactly one batch's ``rejected``: the file's first one.
    - Each batch holds rows of one file only, at most ``batch_rows`` of them; the last batch of
      a file carries ``done: true`` (a file without rows yields one zero-row batch for it).
      ``row_origins`` gives ``key:line`` for NDJSON and CSV, ``key#row`` (1-based) for JSON
      arrays, Parquet and Avro (``None`` with ``row_origins=False``). ``raw`` carries the
      file's original bytes on the file's first batch when the file is at most
      ``raw_max_bytes`` (otherwise ``None``).

    Args:
        store: The object store to read from.
        prefix: Key prefix to list.
        pattern: ``fnmatch`` glob the full key must match (e.g. ``"landing/*/orders-*.csv.gz"``).
        format: The format of every file, or ``None`` to take it from each key's extension
            (``.ndjson``/``.jsonl``, ``.json``, ``.csv``, ``.parquet``/``.pq``, ``.avro``,
            optionally followed by ``.gz``/``.zst``).
        compression: ``"gzip"``, ``"zstd"``, ``"none"``, or ``None`` to take it from the key.
        csv: CSV dialect and null values.
        schema: Explicit column types: listed columns are read (or cast) to these types and
            added as nulls when absent; other columns keep their inferred types.
        block_size: Bytes of text parsed at once (NDJSON/CSV); bounds memory while streaming.
        batch_rows: Maximum rows per yielded batch (and per commit).
        max_buffer_bytes: Decoded size up to which a validated file stays in memory instead of
            being parsed a second time.
        raw_max_bytes: Largest file whose original bytes are attached as ``raw`` (0: never).
            Files up to ``max(raw_max_bytes, max_buffer_bytes)`` are fetched into memory once;
            larger ones are streamed from the store.
        on_error: ``"raise"`` (default): a malformed file raises before any of its rows is
            yielded. ``"quarantine"``: bad lines become ``SourceBatch.rejected`` rows and the
            rest of the file loads (a file's rejected lines are held in memory until its first
            batch is yielded).
        row_origins: Attach ``row_origins`` to each batch (a contract's rejected rows then
            name their line). ``False`` yields ``None`` instead and saves building one string
            per row: about a tenth of the CPU of a large NDJSON/CSV ingest without a contract.

    Raises:
        ConfigurationError: An unknown format, compression or ``on_error``, or non-positive
            sizes.
    """

    kind: ClassVar[str] = "files"
    read_ahead: int = 8
    """Batches parsed ahead of the caller in a background thread (0: parse in the caller's
    thread). Parsing and writing then overlap (both release the GIL); batches are still yielded
    in order and an error is raised only after every batch before it was yielded. Deep enough
    that parsing goes on while a pipeline finishes its files and commits (with 2, parsing
    stalled at every commit); it holds at most ``read_ahead * batch_rows`` parsed rows."""

    def __init__(
        self,
        store: ObjectStore,
        prefix: str = "",
        *,
        pattern: str | None = None,
        format: FileFormat | None = None,
        compression: Literal["gzip", "zstd", "none"] | None = None,
        csv: CsvOptions | None = None,
        schema: pa.Schema | None = None,
        block_size: int = 4 * _MIB,
        batch_rows: int = 100_000,
        max_buffer_bytes: int = 128 * _MIB,
        raw_max_bytes: int = 256 * _MIB,
        on_error: Literal["raise", "quarantine"] = "raise",
        row_origins: bool = True,
    ) -> None:
        if format is not None and format not in get_args(FileFormat):
            raise ConfigurationError(
                f"unknown file format {format!r}; use one of {', '.join(get_args(FileFormat))}"
            )
        if compression is not None and compression not in ("gzip", "zstd", "none"):
            raise ConfigurationError(
                f"unknown compression {compression!r}; use 'gzip', 'zstd', 'none' or None"
            )
        if on_error not in ("raise", "quarantine"):
            raise ConfigurationError(f"unknown on_error {on_error!r}; use 'raise' or 'quarantine'")
        for name, value in (("block_size", block_size), ("batch_rows", batch_rows)):
            if value <= 0:
                raise ConfigurationError(f"FileSource {name} must be > 0, got {value}")
        self.store = store
        self.prefix = prefix
        self.pattern = pattern
        self.format = format
        self.compression = compression
        self.csv = csv or CsvOptions()
        self.schema = schema
        self.block_size = block_size
        self.batch_rows = batch_rows
        self.max_buffer_bytes = max_buffer_bytes
        self.raw_max_bytes = raw_max_bytes
        self.on_error = on_error
        self.row_origins = row_origins

    def describe(self) -> str:
        where = self.prefix + (f" ({self.pattern})" if self.pattern else "")
        return f"files {where}".rstrip()

    # -- listing and state ---------------------------------------------------------------------

    def files(self) -> list[ObjectMeta]:
        """The objects this source covers, sorted by key (ingested or not)."""
        found = [
            meta
            for meta in self.store.list(self.prefix)
            if not meta.key.endswith("/")
            and (self.pattern is None or fnmatch.fnmatchcase(meta.key, self.pattern))
        ]
        return sorted(found, key=lambda meta: meta.key)

    def read(self, state: SourceState) -> Iterator[SourceBatch]:
        """Yield the rows of every file not yet ingested, file after file.

        Raises:
            InvalidInputError: A file is malformed (the message names key and line), or its
                format cannot be told from its key (pass ``format=``).
            TransientError: A file changed while it was being read; run again.
            MissingDependencyError: An Avro file without the ``avro`` extra installed.
        """
        todo: list[tuple[ObjectMeta, FileFormat, str, int]] = []
        for meta in self.files():
            fmt, compression = self._format_of(meta.key)
            entry = state.get(state_key(meta.key))
            skip = 0
            if (
                isinstance(entry, dict)
                and entry.get("key") == meta.key
                and entry.get("etag") == meta.etag
                and entry.get("size") == meta.size
            ):
                if entry.get("done", True):
                    continue
                skip = int(entry.get("rows", 0))
            todo.append((meta, fmt, compression, skip))
        batches = (
            batch
            for meta, fmt, compression, skip in todo
            for batch in self._read_file(meta, fmt, compression, skip)
        )
        if self.read_ahead < 1 or not todo:
            yield from batches
        else:  # parse the next batches while the caller writes this one
            yield from _read_ahead(batches, self.read_ahead)

    def _format_of(self, key: str) -> tuple[FileFormat, str]:
        name = key.rsplit("/", 1)[-1].lower()
        compression = "none"
        for ext, codec in _COMPRESSION_BY_EXTENSION.items():
            if name.endswith(ext):
                compression, name = codec, name[: -len(ext)]
                break
        if self.compression is not None:
            compression = self.compression
        if self.format is not None:
            return self.format, compression
        for ext, fmt in _FORMAT_BY_EXTENSION.items():
            if name.endswith(ext):
                return fmt, compression
        raise InvalidInputError(
            f"cannot tell the format of {key!r} from its extension; pass FileSource(format=...) "
            "or a pattern that excludes it"
        )

    # -- one file ------------------------------------------------------------------------------

    def _read_file(
        self, meta: ObjectMeta, fmt: FileFormat, compression: str, skip: int
    ) -> Iterator[SourceBatch]:
        import pyarrow as pa

        content: bytes | None = None
        if meta.size <= self.raw_max_bytes or meta.size <= self.max_buffer_bytes:
            content = self.store.get(meta.key)
        # Pass 1: parse the whole file so that bad input raises before any row is yielded.
        buffered: list[tuple[pa.Table, list[str]]] | None = []
        buffered_bytes = 0
        rejects: list[_Reject] = []
        for table, origins in self._decode(meta.key, fmt, compression, content, rejects):
            if buffered is not None:
                buffered.append((table, origins))
                buffered_bytes += table.nbytes
                if buffered_bytes > self.max_buffer_bytes:
                    buffered = None  # too big to keep: validate to the end, then parse again
        current = self.store.head(meta.key)
        if current.etag != meta.etag or current.size != meta.size:
            raise TransientError(f"{meta.key!r} changed while it was being read; run again")
        pieces = (
            iter(buffered)
            if buffered is not None
            else self._decode(meta.key, fmt, compression, content, [])
        )
        raw = None
        if content is not None and meta.size <= self.raw_max_bytes and skip == 0:
            raw = RawItem(content, _suffix(meta.key))
        # A resumed file (skip > 0) committed its rejected lines with its first batch.
        rejected = _rejected_table(rejects) if rejects and skip == 0 else None
        done_rows = 0
        pending: tuple[pa.Table, list[str]] | None = None
        for table, origins in _rebatch(_skip_rows(pieces, skip), self.batch_rows):
            if pending is not None:
                done_rows += pending[0].num_rows
                yield self._batch(
                    meta, pending, skip + done_rows, done=False, raw=raw, rejected=rejected
                )
                raw, rejected = None, None
            pending = (table, origins)
        if pending is None:
            pending = (pa.table({}), [])
        done_rows += pending[0].num_rows
        yield self._batch(meta, pending, skip + done_rows, done=True, raw=raw, rejected=rejected)

    def _batch(
        self,
        meta: ObjectMeta,
        piece: tuple[pa.Table, list[str]],
        rows: int,
        *,
        done: bool,
        raw: RawItem | None,
        rejected: pa.Table | None,
    ) -> SourceBatch:
        table, origins = piece
        entry: dict[str, Any] = {
            "key": meta.key,
            "etag": meta.etag,
            "size": meta.size,
            "rows": rows,
            "done": done,
        }
        return SourceBatch(
            table,
            state={state_key(meta.key): entry},
            raw=raw,
            origin=meta.key,
            row_origins=tuple(origins) if self.row_origins else None,
            rejected=rejected,
        )

    def _decode(
        self,
        key: str,
        fmt: FileFormat,
        compression: str,
        content: bytes | None,
        rejects: list[_Reject],
    ) -> Iterator[tuple[pa.Table, list[str]]]:
        """Parse one file into tables with one origin per row; raise on malformed input, or
        (``on_error="quarantine"``) skip bad lines and append them to ``rejects``."""
        with self._open(key, compression, content) as stream:
            if fmt == "ndjson":
                yield from self._decode_ndjson(key, stream, rejects)
            elif fmt == "csv":
                yield from self._decode_csv(key, stream, rejects)
            elif fmt == "json":
                yield from self._decode_json(key, stream, rejects)
            elif fmt == "parquet":
                yield from self._decode_parquet(key, stream)
            else:
                yield from self._decode_avro(key, stream)

    def _open(self, key: str, compression: str, content: bytes | None) -> IO[bytes]:
        raw: IO[bytes] = io.BytesIO(content) if content is not None else self.store.open(key)
        if compression == "gzip":
            return cast("IO[bytes]", _Checked(key, "gzip", gzip.GzipFile(fileobj=raw), raw))
        if compression == "zstd":
            import pyarrow as pa

            stream = pa.CompressedInputStream(
                pa.PythonFile(cast("io.IOBase", raw), mode="r"), "zstd"
            )
            return cast("IO[bytes]", _Checked(key, "zstd", stream, raw))
        return raw

    # -- formats -------------------------------------------------------------------------------

    def _chunk_size(self, stream: IO[bytes]) -> int:
        """Bytes of text handed to pyarrow at once: ``block_size``, except that a file already
        in memory and at most twice that size goes in one piece (its blocks still parsed in
        parallel), rather than as a chunk and a small remainder parsed on one core: a 10 MB
        file took ~40 ms instead of ~70 ms. Larger files go in ``block_size`` chunks, which
        measured faster for them."""
        if isinstance(stream, io.BytesIO):
            # getvalue() is the BytesIO's own bytes object; getbuffer() would copy them.
            size = len(stream.getvalue()) - stream.tell()
            if size <= 2 * self.block_size:
                return max(size, 1)
        return self.block_size

    def _decode_ndjson(
        self, key: str, stream: IO[bytes], rejects: list[_Reject]
    ) -> Iterator[tuple[pa.Table, list[str]]]:
        import pyarrow as pa
        import pyarrow.json as pj

        quarantine = self.on_error == "quarantine"
        schema: pa.Schema | None = None
        # Declared columns the JSON reader converts exactly as a cast of the inferred column
        # would (the baseline: explicit types are parsed, not read as text and cast).
        direct = [f for f in self.schema or () if _json_parses_directly(f.type)]

        def read(chunk: bytes, explicit: pa.Schema | None, block_size: int) -> pa.Table:
            return pj.read_json(
                _arrow_input(chunk),
                read_options=pj.ReadOptions(block_size=block_size),
                parse_options=pj.ParseOptions(
                    explicit_schema=explicit, unexpected_field_behavior="infer"
                ),
            )

        def parse_as(chunk: bytes, explicit: pa.Schema | None) -> pa.Table:
            block = _parse_block(len(chunk), self.block_size)
            if block is not None:  # blocks parsed on several threads ...
                with contextlib.suppress(pa.ArrowException):  # ... unless their types differ
                    return read(chunk, explicit, block)
            return read(chunk, explicit, len(chunk) + 1)

        def parse(chunk: bytes) -> pa.Table:
            if direct:
                known = [] if schema is None else list(schema)
                with contextlib.suppress(pa.ArrowException):  # e.g. a number for a timestamp
                    return parse_as(chunk, pa.schema(known + direct))
            return parse_as(chunk, schema)

        for line_of, block in _line_chunks(stream, self._chunk_size(stream)):
            chunk = block
            if quarantine:
                chunk = _drop_lines(key, line_of(), chunk, _utf8_error, rejects)
            else:
                _check_utf8(key, line_of, chunk)
            # Line numbers are only needed for row origins and errors: counting them costs
            # more than parsing on clean input, so skip it when nobody asks for origins.
            lines: list[int] | None = None
            if self.row_origins or quarantine:
                lines = _line_numbers(line_of(), chunk)
                if not lines:
                    continue
            elif not _has_content(chunk, _JSON_CONTENT):
                continue
            try:
                table = parse(chunk)
            except pa.ArrowException as exc:
                if lines is None:
                    lines = _line_numbers(line_of(), chunk)
                if not quarantine:
                    _locate_json_error(key, line_of(), chunk)
                    table = self._ndjson_fallback(key, chunk, lines, exc)
                else:  # drop the bad lines, then parse what is left
                    chunk = _drop_lines(key, line_of(), chunk, _json_line_error, rejects)
                    lines = _line_numbers(line_of(), chunk)
                    if not lines:
                        continue
                    try:
                        table = parse(chunk)
                    except pa.ArrowException as again:
                        table = self._ndjson_fallback(key, chunk, lines, again)
            # Later chunks keep the types seen so far, except all-null columns (still unknown)
            # and declared ones (read as inferred, then cast: JSON cannot parse 1 as a string).
            declared = set(self.schema.names) if self.schema is not None else set()
            schema = _known_types(table.schema, declared)
            table = self._apply_schema(key, table)
            origins = _origins(key, lines, table.num_rows) if lines and self.row_origins else []
            yield table, origins

    def _ndjson_fallback(
        self, key: str, chunk: bytes, lines: list[int], exc: pa.ArrowException
    ) -> pa.Table:
        fallback = self._ndjson_declared(chunk)
        if fallback is None:
            raise InvalidInputError(
                f"{key}:{lines[0]}-{lines[-1]}: cannot read these JSON lines: {exc} (if a "
                "field's type changes within the file, declare it with FileSource(schema=))"
            ) from exc
        return fallback

    def _ndjson_declared(self, chunk: bytes) -> pa.Table | None:
        """Slow path for JSON lines whose values pyarrow cannot type on its own: parse them in
        Python, turn values of declared string columns into their JSON text, let Arrow infer the
        rest. ``None`` when nothing is declared or the values still do not fit."""
        import pyarrow as pa

        if self.schema is None:
            return None
        text_columns = [f.name for f in self.schema if pa.types.is_string(f.type)]
        rows = [json.loads(line) for line in chunk.split(b"\n") if line.strip(b" \t\r")]
        for row in rows:
            for name in text_columns:
                value = row.get(name)
                if value is not None and not isinstance(value, str):
                    row[name] = json.dumps(value)
        try:
            return pa.Table.from_pylist(rows)
        except (pa.ArrowException, TypeError, ValueError):
            return None

    def _decode_csv(
        self, key: str, stream: IO[bytes], rejects: list[_Reject]
    ) -> Iterator[tuple[pa.Table, list[str]]]:

        options = self.csv
        quarantine = self.on_error == "quarantine"
        names = list(options.column_names) if options.column_names else None
        skip_lines = options.skip_rows
        need_header = options.header
        types: dict[str, pa.DataType] = {}
        if self.schema is not None:
            types = {field.name: field.type for field in self.schema}
        first_chunk = True
        for chunk_line_of, chunk_data in _line_chunks(stream, self._chunk_size(stream)):
            line_of, chunk = chunk_line_of, chunk_data
            if first_chunk:
                first_chunk = False
                if chunk.startswith(b"\xef\xbb\xbf"):
                    chunk = chunk[3:]
            if not quarantine:
                _check_utf8(key, line_of, chunk)
            if skip_lines or need_header:  # cut skipped lines and the header off the front
                offset = cut_lines = 0  # chunks are whole lines: each ends with a newline
                while skip_lines and offset < len(chunk):
                    offset = chunk.index(b"\n", offset) + 1
                    skip_lines -= 1
                    cut_lines += 1
                if not skip_lines and need_header and offset < len(chunk):
                    need_header = False
                    end = chunk.index(b"\n", offset)
                    if names is None:
                        header = chunk[offset:end]
                        _check_utf8(key, _shifted(line_of, cut_lines), header)  # no header, no file
                        names = next(self._csv_reader([header.decode().rstrip("\r")]))
                    offset = end + 1
                    cut_lines += 1
                if offset:
                    chunk = chunk[offset:]
                    line_of = _shifted(line_of, cut_lines)
            parsed = self._csv_chunk(key, line_of, chunk, names=names, types=types, rejects=rejects)
            if parsed is None:
                continue
            table, lines = parsed
            if names is None:
                names = table.column_names
            table = self._apply_schema(key, table)
            types = {field.name: field.type for field in _known_types(table.schema)}
            yield table, _origins(key, lines, table.num_rows) if lines and self.row_origins else []

    def _csv_chunk(
        self,
        key: str,
        line_of: Callable[[], int],
        chunk: bytes,
        *,
        names: list[str] | None,
        types: dict[str, pa.DataType],
        rejects: list[_Reject],
    ) -> tuple[pa.Table, list[int] | None] | None:
        """Parse a chunk of data lines (header and skipped lines removed): the table and the
        line number of each row (None when row origins are off), or None when it has no rows."""
        import pyarrow as pa

        quarantine = self.on_error == "quarantine"
        if quarantine:
            chunk = _drop_lines(key, line_of(), chunk, _utf8_error, rejects)
        lines: list[int] | None = None
        if self.row_origins or quarantine:  # see _decode_ndjson: only counted when needed
            lines = _line_numbers(line_of(), chunk, blank=b"\r")
            if not lines:
                return None
        elif not _has_content(chunk, _CSV_CONTENT):
            return None
        try:
            return self._parse_csv(chunk, names, types), lines
        except pa.ArrowException as exc:
            if lines is None:
                lines = _line_numbers(line_of(), chunk, blank=b"\r")
            parts = chunk.split(b"\n")[:-1]
            if not quarantine:
                self._csv_failure(key, line_of(), parts, names=names, lines=lines, exc=exc)
        # Quarantine: drop the lines with a wrong number of fields, then parse what is left.
        check = self._csv_width_error(len(names) if names is not None else self._csv_width(parts))
        chunk = _drop_lines(key, line_of(), chunk, check, rejects)
        parts = chunk.split(b"\n")[:-1]
        lines = [line_of() + n for n, text in enumerate(parts) if text.strip(b"\r")]
        if not lines:
            return None
        try:
            return self._parse_csv(chunk, names, types), lines
        except pa.ArrowException as again:
            self._csv_failure(key, line_of(), parts, names=names, lines=lines, exc=again)

    def _parse_csv(
        self, chunk: bytes, names: list[str] | None, types: dict[str, pa.DataType]
    ) -> pa.Table:
        import pyarrow as pa
        import pyarrow.csv as pc

        options = self.csv
        parse_options = pc.ParseOptions(
            delimiter=options.delimiter,
            quote_char=options.quote_char or False,
            escape_char=options.escape_char or False,
            newlines_in_values=False,
        )
        convert_options = pc.ConvertOptions(
            column_types=types,
            null_values=list(options.null_values),
            strings_can_be_null=True,
        )
        # Blocks are parsed on several threads, but types are inferred from the first block
        # only: when a later block does not fit them, parse the chunk as one block.
        block = _parse_block(len(chunk), self.block_size)
        block_sizes = [block, len(chunk) + 1] if block is not None else []
        for block_size in block_sizes or [len(chunk) + 1]:
            read_options = pc.ReadOptions(
                column_names=names, autogenerate_column_names=names is None, block_size=block_size
            )
            try:
                return pc.read_csv(
                    _arrow_input(chunk),
                    read_options=read_options,
                    parse_options=parse_options,
                    convert_options=convert_options,
                )
            except pa.ArrowException:
                if block_size > len(chunk):
                    raise
        raise AssertionError("unreachable: the last attempt parses one block or raises")

    def _csv_failure(
        self,
        key: str,
        first_line: int,
        parts: list[bytes],
        *,
        names: list[str] | None,
        lines: list[int],
        exc: Exception,
    ) -> NoReturn:
        self._locate_csv_error(key, first_line, parts, names)
        raise InvalidInputError(
            f"{key}:{lines[0]}-{lines[-1]}: cannot read these CSV lines: {exc} (if a "
            "column's type changes within the file, declare it with FileSource(schema=))"
        ) from exc

    def _csv_width(self, parts: list[bytes]) -> int:
        """The number of fields of the first non-blank line (files without a header)."""
        for text in parts:
            line = text.decode().rstrip("\r")
            if line:
                return len(next(self._csv_reader([line])))
        return 0

    def _csv_width_error(self, expected: int) -> Callable[[bytes], str | None]:
        def check(text: bytes) -> str | None:
            fields = next(self._csv_reader([text.decode().rstrip("\r")]))
            if len(fields) != expected:
                return f"expected {expected} fields, got {len(fields)}"
            return None

        return check

    def _csv_reader(self, lines: Iterable[str]) -> Iterator[list[str]]:
        options = self.csv
        return _csv.reader(
            lines,
            delimiter=options.delimiter,
            quotechar=options.quote_char or '"',
            quoting=_csv.QUOTE_MINIMAL if options.quote_char else _csv.QUOTE_NONE,
            escapechar=options.escape_char,
        )

    def _locate_csv_error(
        self, key: str, first_line: int, parts: list[bytes], names: list[str] | None
    ) -> None:
        expected = len(names) if names is not None else None
        for offset, text in enumerate(parts):
            line = text.decode().rstrip("\r")
            if not line:
                continue
            fields = next(self._csv_reader([line]))
            if expected is None:
                expected = len(fields)
            elif len(fields) != expected:
                raise InvalidInputError(
                    f"{key}:{first_line + offset}: expected {expected} fields, got {len(fields)}: "
                    f"{line[:200]!r}"
                )

    def _decode_json(
        self, key: str, stream: IO[bytes], rejects: list[_Reject]
    ) -> Iterator[tuple[pa.Table, list[str]]]:
        import pyarrow as pa

        data = stream.read()
        _check_utf8(key, _known_line(1), data)
        try:
            value = json.loads(data)
        except json.JSONDecodeError as exc:
            raise InvalidInputError(
                f"{key}:{exc.lineno}: invalid JSON ({exc.msg}, column {exc.colno})"
            ) from exc
        items = [value] if isinstance(value, dict) else value
        if not isinstance(items, list):
            raise InvalidInputError(f"{key}:1: expected a JSON array of objects or one object")
        rows: list[dict[str, Any]] = []
        origins: list[str] = []
        for n, item in enumerate(items, start=1):
            if isinstance(item, dict):
                rows.append(item)
                origins.append(f"{key}#{n}")
            elif self.on_error == "quarantine":
                reason = f"expected a JSON object, got {type(item).__name__}"
                rejects.append((f"{key}#{n}", reason, json.dumps(item)))
            else:
                raise InvalidInputError(
                    f"{key}#{n}: expected a JSON array of objects or one object, got an "
                    f"element of type {type(item).__name__}"
                )
        if not rows:
            return
        try:
            table = pa.Table.from_pylist(rows)
        except (pa.ArrowException, TypeError, ValueError) as exc:
            raise InvalidInputError(
                f"{key}: cannot convert the JSON objects to columns: {exc}"
            ) from exc
        yield self._apply_schema(key, table), origins

    def _decode_parquet(self, key: str, stream: IO[bytes]) -> Iterator[tuple[pa.Table, list[str]]]:
        import pyarrow as pa
        import pyarrow.parquet as pq

        row = 0
        if not stream.seekable():
            stream = io.BytesIO(stream.read())
        try:
            with pq.ParquetFile(stream) as parquet:
                for batch in parquet.iter_batches(batch_size=self.batch_rows):
                    table = self._apply_schema(key, pa.Table.from_batches([batch]))
                    yield table, [f"{key}#{row + n}" for n in range(1, table.num_rows + 1)]
                    row += table.num_rows
        except (pa.ArrowException, OSError) as exc:
            if isinstance(exc, LakekitError):
                raise
            raise InvalidInputError(f"{key}#{row + 1}: not a readable Parquet file: {exc}") from exc

    def _decode_avro(self, key: str, stream: IO[bytes]) -> Iterator[tuple[pa.Table, list[str]]]:
        import pyarrow as pa

        try:
            import fastavro
        except ImportError as exc:
            raise MissingDependencyError("reading Avro files", "avro", "fastavro") from exc
        row = 0
        schema: pa.Schema | None = None
        try:
            reader = fastavro.reader(stream)
            schema = _avro_schema(reader.writer_schema)
            records: list[dict[str, Any]] = []
            for record in reader:
                records.append(record)  # type: ignore[arg-type]
                if len(records) >= self.batch_rows:
                    table, schema = _avro_table(records, schema)
                    yield self._apply_schema(key, table), _numbered(key, row, len(records))
                    row += len(records)
                    records = []
            if records:
                table, schema = _avro_table(records, schema)
                yield self._apply_schema(key, table), _numbered(key, row, len(records))
        except (ValueError, TypeError, KeyError, IndexError, EOFError, OSError) as exc:
            if isinstance(exc, LakekitError):
                raise
            raise InvalidInputError(f"{key}#{row + 1}: not a readable Avro file: {exc}") from exc
        except pa.ArrowException as exc:
            raise InvalidInputError(f"{key}#{row + 1}: cannot convert Avro records: {exc}") from exc

    def _apply_schema(self, key: str, table: pa.Table) -> pa.Table:
        """Cast the columns named in ``schema`` to its types and add absent ones as nulls."""
        import pyarrow as pa

        if self.schema is None:
            return table
        for field in self.schema:
            if field.name not in table.column_names:
                table = table.append_column(field, pa.nulls(table.num_rows, field.type))
                continue
            index = table.column_names.index(field.name)
            if table.schema.field(index).type != field.type:
                try:
                    column = table.column(index).cast(field.type)
                except (pa.ArrowException, TypeError, ValueError) as exc:
                    raise InvalidInputError(
                        f"{key}: column {field.name!r} cannot be read as {field.type}: {exc}"
                    ) from exc
                table = table.set_column(index, field, column)
        return table


# -- helpers -----------------------------------------------------------------------------------


class _Checked(io.RawIOBase):
    """A decompressing stream whose corrupt-data errors become InvalidInputError."""

    def __init__(self, key: str, codec: str, inner: Any, base: IO[bytes]) -> None:
        super().__init__()
        self._key, self._codec, self._inner, self._base = key, codec, inner, base

    def readable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> bytes:
        import pyarrow as pa

        try:
            data: bytes = self._inner.read() if size is None or size < 0 else self._inner.read(size)
        except LakekitError:
            raise
        except (OSError, EOFError, zlib.error, pa.ArrowException) as exc:
            raise InvalidInputError(
                f"{self._key}: not a valid {self._codec} stream (corrupt or truncated): {exc}"
            ) from exc
        return bytes(data)

    def readinto(self, buffer: Any) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def close(self) -> None:
        if not self.closed:
            try:
                self._inner.close()
            finally:
                self._base.close()
        super().close()


LineOf = Callable[[], int]
"""The 1-based line number of a chunk's first line, computed when called (see _LineCounter)."""


def _line_chunks(stream: IO[bytes], block_size: int) -> Iterator[tuple[LineOf, bytes]]:
    """Split ``stream`` into chunks of whole lines (about ``block_size`` bytes each), each with
    a callable giving the number of its first line.

    Line numbers only matter for errors and row origins, so in-memory files count them only
    when asked (counting costs as much as a tenth of parsing); streamed files count as they go.
    """
    if isinstance(stream, io.BytesIO):  # in memory: slice the bytes (one copy, not three)
        yield from _memory_line_chunks(stream, block_size)
        return
    line = 1
    rest: list[bytes] = []  # the start of a line that continues in the next block
    while True:
        data = stream.read(block_size)
        if not data:
            break
        cut = data.rfind(b"\n")
        if cut < 0:
            rest.append(data)
            continue
        chunk = b"".join([*rest, data[: cut + 1]]) if rest else data[: cut + 1]
        rest = [data[cut + 1 :]] if cut + 1 < len(data) else []
        yield _known_line(line), chunk
        line += chunk.count(b"\n")
    if rest:
        yield _known_line(line), b"".join(rest) + b"\n"


def _memory_line_chunks(stream: io.BytesIO, block_size: int) -> Iterator[tuple[LineOf, bytes]]:
    """:func:`_line_chunks` of an in-memory stream (from its position to its end)."""
    data = stream.getvalue()  # the BytesIO's own bytes object when it was built from bytes
    start = stream.tell()
    stream.seek(0, io.SEEK_END)
    counter = _LineCounter(data)
    while start < len(data):
        end = start + block_size
        cut = len(data) - 1 if end >= len(data) else data.rfind(b"\n", start, end)
        if cut < start:  # a line longer than block_size: up to its end
            cut = data.find(b"\n", end)
            cut = len(data) - 1 if cut < 0 else cut
        chunk = data[start : cut + 1]
        if not chunk.endswith(b"\n"):
            chunk += b"\n"
        yield functools.partial(counter.line_at, start), chunk
        start = cut + 1


class _LineCounter:
    """1-based line numbers of byte offsets of ``data``, counted on demand from the last offset
    asked about, so asking in increasing order counts each byte at most once."""

    __slots__ = ("_data", "_line", "_offset")

    def __init__(self, data: bytes) -> None:
        self._data = data
        self._offset = 0
        self._line = 1

    def line_at(self, offset: int) -> int:
        if offset >= self._offset:
            self._line += self._data.count(b"\n", self._offset, offset)
        else:
            self._line -= self._data.count(b"\n", offset, self._offset)
        self._offset = offset
        return self._line


def _known_line(line: int) -> LineOf:
    return lambda: line


def _shifted(line_of: LineOf, lines: int) -> LineOf:
    """``line_of`` moved ``lines`` lines down (after cutting lines off a chunk's front)."""
    return lambda: line_of() + lines


def _check_utf8(key: str, line_of: LineOf, chunk: bytes) -> None:
    if chunk.isascii():  # ASCII is UTF-8; this check costs a fraction of decoding
        return
    try:
        chunk.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = line_of() + chunk.count(b"\n", 0, exc.start)
        column = exc.start - (chunk.rfind(b"\n", 0, exc.start) + 1) + 1
        raise InvalidInputError(
            f"{key}:{line}: not valid UTF-8 (byte {chunk[exc.start]:#04x} at column {column}); "
            "re-encode the file as UTF-8"
        ) from exc


def _locate_json_error(key: str, first_line: int, chunk: bytes) -> None:
    """Raise InvalidInputError for the first line of ``chunk`` that is not a JSON object."""
    for offset, text in enumerate(chunk.split(b"\n")):
        if not text.strip(b" \t\r"):
            continue
        try:
            value = json.loads(text)
        except json.JSONDecodeError as exc:
            raise InvalidInputError(
                f"{key}:{first_line + offset}: invalid JSON ({exc.msg}, column {exc.colno}): "
                f"{text[:200].decode(errors='replace')!r}"
            ) from exc
        if not isinstance(value, dict):
            raise InvalidInputError(
                f"{key}:{first_line + offset}: expected a JSON object per line, "
                f"got {type(value).__name__}"
            )


_Reject = tuple[str, str, str]
"""A rejected line: (origin ``key:line``, reason, the line's text)."""


def _rejected_table(rejects: list[_Reject]) -> pa.Table:
    """``SourceBatch.rejected`` for ``rejects``: columns ``_origin``, ``_reason``, ``_record``."""
    import pyarrow as pa

    origins, reasons, records = zip(*rejects, strict=True)
    return pa.table(
        {
            "_origin": pa.array(origins, pa.string()),
            "_reason": pa.array(reasons, pa.string()),
            "_record": pa.array(records, pa.string()),
        }
    )


def _drop_lines(
    key: str,
    first_line: int,
    chunk: bytes,
    check: Callable[[bytes], str | None],
    rejects: list[_Reject],
) -> bytes:
    """``chunk`` with every non-blank line that ``check`` finds fault with blanked out (line
    numbers of the others stay the same); the blanked lines are appended to ``rejects``."""
    parts = chunk.split(b"\n")
    dropped = False
    for offset, text in enumerate(parts):
        if not text.strip(b" \t\r"):
            continue
        reason = check(text)
        if reason is not None:
            record = text.decode("utf-8", errors="replace").rstrip("\r")
            rejects.append((f"{key}:{first_line + offset}", reason, record))
            parts[offset] = b""
            dropped = True
    return b"\n".join(parts) if dropped else chunk


def _utf8_error(text: bytes) -> str | None:
    try:
        text.decode("utf-8")
    except UnicodeDecodeError as exc:
        return f"not valid UTF-8 (byte {text[exc.start]:#04x} at column {exc.start + 1})"
    return None


def _json_line_error(text: bytes) -> str | None:
    try:
        value = json.loads(text)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        if isinstance(exc, json.JSONDecodeError):
            return f"invalid JSON ({exc.msg}, column {exc.colno})"
        return "not valid UTF-8"
    if not isinstance(value, dict):
        return f"expected a JSON object per line, got {type(value).__name__}"
    return None


@functools.cache
def _blank_line(blank: bytes) -> re.Pattern[bytes]:
    return re.compile(rb"\n[" + re.escape(blank) + rb"]*\n")


_JSON_CONTENT = re.compile(rb"[^ \t\r\n]")
_CSV_CONTENT = re.compile(rb"[^\r\n]")


def _has_content(chunk: bytes, content: re.Pattern[bytes]) -> bool:
    """Whether ``chunk`` holds a non-blank line (stops at the first such byte)."""
    return content.search(chunk) is not None


def _line_numbers(first_line: int, chunk: bytes, *, blank: bytes = b" \t\r") -> list[int]:
    """The numbers of the lines of ``chunk`` holding more than ``blank`` characters.

    Without a blank line (the common case) they are counted, not split and stripped one by one.
    """
    if chunk.endswith(b"\n") and _blank_line(blank).search(b"\n" + chunk) is None:
        return list(range(first_line, first_line + chunk.count(b"\n")))
    return [first_line + n for n, text in enumerate(chunk.split(b"\n")) if text.strip(blank)]


def _suffix(key: str) -> str:
    """``.csv.gz`` for ``a/orders.2024.csv.gz``: the format extension plus any compression."""
    parts = key.rsplit("/", 1)[-1].split(".")[1:]
    if not parts:
        return ""
    compressed = len(parts) >= 2 and f".{parts[-1].lower()}" in _COMPRESSION_BY_EXTENSION
    return "." + ".".join(parts[-2:] if compressed else parts[-1:])


def _arrow_input(data: bytes) -> IO[Any]:
    """``data`` as a pyarrow input stream: zero-copy, and read without holding the GIL (a
    Python file object makes pyarrow call back into Python for every read)."""
    import pyarrow as pa

    return cast("IO[Any]", pa.BufferReader(pa.py_buffer(data)))


def _json_parses_directly(type_: pa.DataType) -> bool:
    """Whether pyarrow's JSON reader, told this type, reads exactly what reading the inferred
    type and casting gives (integers, booleans, timestamps without a zone), or else fails."""
    import pyarrow as pa

    return (
        pa.types.is_integer(type_)
        or pa.types.is_boolean(type_)
        or (pa.types.is_timestamp(type_) and type_.tz is None)
    )


def _known_types(schema: pa.Schema, exclude: Iterable[str] = ()) -> pa.Schema:
    import pyarrow as pa

    skip = set(exclude)
    return pa.schema([f for f in schema if not pa.types.is_null(f.type) and f.name not in skip])


def _read_ahead(items: Iterator[SourceBatch], depth: int) -> Iterator[SourceBatch]:
    """Yield ``items`` in order while a daemon thread produces up to ``depth`` of them ahead.

    An exception of the producer is re-raised here after the items produced before it. Closing
    the returned generator stops the producer (after the item it is working on) and closes
    ``items`` in the calling thread.
    """
    import queue
    import threading

    ready: queue.Queue[tuple[str, Any]] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def offer(kind: str, payload: Any) -> bool:
        while not stop.is_set():
            try:
                ready.put((kind, payload), timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in items:
                if not offer("item", item):
                    return
        except BaseException as exc:  # handed to the consumer, raised there
            offer("error", exc)
            return
        offer("end", None)

    thread = threading.Thread(target=produce, name="lakekit-files-read-ahead", daemon=True)
    thread.start()
    try:
        while True:
            kind, payload = ready.get()
            if kind == "item":
                yield payload
            elif kind == "error":
                raise payload
            else:
                return
    finally:
        stop.set()
        thread.join()
        close = getattr(items, "close", None)
        if callable(close):
            close()


def _origins(key: str, lines: list[int], rows: int) -> list[str]:
    if len(lines) == rows:
        return list(map(f"{key}:".__add__, map(str, lines)))
    span = f"{key}:{lines[0]}-{lines[-1]}"
    return [span] * rows


def _numbered(key: str, start: int, count: int) -> list[str]:
    return [f"{key}#{start + n}" for n in range(1, count + 1)]


def _skip_rows(
    pieces: Iterator[tuple[pa.Table, list[str]]], skip: int
) -> Iterator[tuple[pa.Table, list[str]]]:
    for table, origins in pieces:
        if skip >= table.num_rows:
            skip -= table.num_rows
            continue
        yield (table.slice(skip), origins[skip:]) if skip else (table, origins)
        skip = 0


def _rebatch(
    pieces: Iterable[tuple[pa.Table, list[str]]], size: int
) -> Iterator[tuple[pa.Table, list[str]]]:
    """Regroup tables into tables of exactly ``size`` rows (the last one may be shorter)."""
    import pyarrow as pa

    held: list[pa.Table] = []
    held_origins: list[str] = []
    held_rows = 0
    for table, origins in pieces:
        if table.num_rows == 0:
            continue
        held.append(table)
        held_origins.extend(origins)
        held_rows += table.num_rows
        while held_rows >= size:
            merged = pa.concat_tables(held, promote_options="permissive")
            yield merged.slice(0, size), held_origins[:size]
            rest = merged.slice(size)
            held = [rest] if rest.num_rows else []
            held_origins = held_origins[size:]
            held_rows -= size
    if held_rows:
        yield pa.concat_tables(held, promote_options="permissive"), held_origins


_AVRO_PRIMITIVES = {
    "boolean": "bool_",
    "int": "int32",
    "long": "int64",
    "float": "float32",
    "double": "float64",
    "bytes": "binary",
    "string": "string",
    "null": "null",
}


def _avro_type(avro: Any) -> pa.DataType | None:
    """The Arrow type of an Avro type, or None when it has no simple mapping."""
    import pyarrow as pa

    if isinstance(avro, list):
        branches = [branch for branch in avro if branch != "null"]
        return _avro_type(branches[0]) if len(branches) == 1 else None
    if isinstance(avro, str):
        name = _AVRO_PRIMITIVES.get(avro)
        return getattr(pa, name)() if name else None
    if not isinstance(avro, dict):
        return None
    if "logicalType" in avro:
        return _avro_logical_type(avro)
    return _avro_complex_type(avro)


def _avro_logical_type(avro: dict[str, Any]) -> pa.DataType | None:
    import pyarrow as pa

    logical, base = avro["logicalType"], avro.get("type")
    simple: dict[str, pa.DataType] = {
        "date": pa.date32(),
        "timestamp-millis": pa.timestamp("ms", tz="UTC"),
        "timestamp-micros": pa.timestamp("us", tz="UTC"),
    }
    if logical in simple:
        return simple[logical]
    if logical == "decimal" and base in ("bytes", "fixed"):
        return pa.decimal128(int(avro["precision"]), int(avro.get("scale", 0)))
    return None


def _avro_complex_type(avro: dict[str, Any]) -> pa.DataType | None:
    import pyarrow as pa

    base = avro.get("type")
    result: pa.DataType | None = None
    if base == "record":
        fields = [(f["name"], _avro_type(f["type"])) for f in avro.get("fields", [])]
        if all(kind is not None for _, kind in fields):
            result = pa.struct([pa.field(name, kind) for name, kind in fields])
    elif base == "array":
        item = _avro_type(avro.get("items"))
        result = pa.list_(item) if item is not None else None
    elif base == "map":
        value = _avro_type(avro.get("values"))
        result = pa.map_(pa.string(), value) if value is not None else None
    elif base == "enum":
        result = pa.string()
    elif base == "fixed":
        result = pa.binary(int(avro["size"]))
    elif isinstance(base, str | list):
        result = _avro_type(base)
    return result


def _avro_schema(writer_schema: Any) -> pa.Schema | None:
    import pyarrow as pa

    kind = _avro_type(writer_schema)
    if kind is None or not pa.types.is_struct(kind):
        return None
    return pa.schema(list(kind))


def _avro_table(
    records: list[dict[str, Any]], schema: pa.Schema | None
) -> tuple[pa.Table, pa.Schema]:
    import pyarrow as pa

    table = pa.Table.from_pylist(records, schema=schema)
    return table, table.schema
