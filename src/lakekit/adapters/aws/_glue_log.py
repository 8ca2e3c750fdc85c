"""The Glue catalog's own objects in S3: commit records and state entries.

Everything lives under ``<lake root>/.lakekit/glue/`` (a reserved prefix: the lake's store never
lists it and refuses keys in it):

* ``commits/<table id>/<version>.json``: one *commit record* per table version, created with
  ``If-None-Match: *``. Creating record ``n+1`` is the moment a commit is decided: of racing
  writers exactly one creates it. It holds everything needed to finish the commit (the Glue
  TableInput, partition changes, state values), so any process can roll a commit forward.
* ``state/<encoded key>``: one object per state key (``{"value", "version", "intent"}``),
  replaced with ``If-Match: <etag>``. An *intent* marks a key that a commit is about to change.

Only I/O lives here; the protocol is in :mod:`lakekit.adapters.aws.glue_catalog`. Ages are
measured with S3's clock (an object's LastModified against the response's Date header), so
clocks of the machines involved do not matter.
"""

from __future__ import annotations

import json
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Any

from lakekit.adapters.aws._errors import aws_errors
from lakekit.errors import (
    AlreadyExistsError,
    InvalidInputError,
    LakekitError,
    NotFoundError,
    PreconditionFailedError,
)
from lakekit.interfaces.object_store import PutMode

if TYPE_CHECKING:
    from lakekit.adapters.aws.object_store import S3ObjectStore
    from lakekit.interfaces.catalog import JSONValue

__all__ = ["CommitRecord", "GlueLog", "StateObject", "decode_key", "encode_key"]

_SAFE = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-")
_MAX_S3_KEY = 1024
_LIST_WORKERS = 8


def encode_key(key: str) -> str:
    """A state key as one S3 key segment: ``[A-Za-z0-9_-]`` kept, every other UTF-8 byte as
    ``%XX``. Byte-wise, so the encoding of a prefix is a prefix of the encoding."""
    return "".join(
        ch if ch in _SAFE else "".join(f"%{b:02X}" for b in ch.encode("utf-8")) for ch in key
    )


def decode_key(segment: str) -> str:
    from urllib.parse import unquote

    return unquote(segment, errors="strict")


@dataclass(frozen=True, slots=True)
class StateObject:
    """One state key as stored (or absent)."""

    key: str
    value: JSONValue
    version: int
    """0 when absent or deleted."""
    intent: dict[str, Any] | None
    etag: str | None
    """None when no object exists yet."""
    age: float
    """Seconds since the object was written (S3's clock); 0 when absent."""

    @property
    def exists(self) -> bool:
        return self.version > 0


@dataclass(frozen=True, slots=True)
class CommitRecord:
    """The decided content of one table version."""

    txn: str
    body: dict[str, Any]
    age: float


class GlueLog:
    """Commit records and state objects below ``<root>/.lakekit/glue/`` of one bucket.

    ``store`` is an :class:`S3ObjectStore` rooted there (its conditional writes do the work).
    """

    def __init__(self, store: S3ObjectStore) -> None:
        self.store = store

    # -- commit records -------------------------------------------------------------------------
    def record_key(self, table_id: str, version: int) -> str:
        return f"commits/{table_id}/{version:012d}.json"

    def create_record(self, table_id: str, version: int, body: dict[str, Any]) -> bool:
        """Create the record of ``version``; False if one exists already (the race is lost)."""
        data = json.dumps(body, separators=(",", ":"), default=str).encode("utf-8")
        try:
            self.store.put(self.record_key(table_id, version), data, PutMode.CREATE)
        except AlreadyExistsError:
            return False
        return True

    def read_record(self, table_id: str, version: int) -> CommitRecord | None:
        found = self._get(self.record_key(table_id, version))
        if found is None:
            return None
        body, _etag, age = found
        return CommitRecord(txn=str(body.get("txn", "")), body=body, age=age)

    def delete_records(self, table_id: str) -> None:
        """Forget a dropped table's records (best effort)."""
        keys = [meta.key for meta in self.store.list(f"commits/{table_id}/")]
        if keys:
            self.store.delete(keys)

    def prune_records(self, table_id: str, below: int) -> None:
        """Delete records of versions below ``below`` (they were applied long ago)."""
        keys = []
        for meta in self.store.list(f"commits/{table_id}/"):
            try:
                version = int(meta.key.rsplit("/", 1)[1].split(".", 1)[0])
            except ValueError:
                continue
            if version < below:
                keys.append(meta.key)
        if keys:
            self.store.delete(keys)

    # -- state ----------------------------------------------------------------------------------
    def state_path(self, key: str) -> str:
        path = f"state/{encode_key(key)}"
        if len((self.store.prefix + path).encode("utf-8")) > _MAX_S3_KEY:
            raise InvalidInputError(
                f"state key {key[:40]!r}... is too long for the Glue catalog's state area: "
                "encoded (letters, digits, '_' and '-' count 1 byte, others 3 per UTF-8 byte) it "
                f"must fit in S3's {_MAX_S3_KEY}-byte keys with the lake prefix; use a shorter key"
            )
        return path

    def read_state(self, key: str) -> StateObject:
        found = self._get(self.state_path(key))
        if found is None:
            return StateObject(key=key, value=None, version=0, intent=None, etag=None, age=0.0)
        body, etag, age = found
        return _state_object(key, body, etag, age)

    def write_state(
        self,
        key: str,
        *,
        value: JSONValue,
        version: int,
        intent: dict[str, Any] | None,
        etag: str | None,
    ) -> str | None:
        """Replace the key's object if it still has ``etag`` (create it if ``etag`` is None).

        Returns the new etag, or None if another writer changed the object first.
        """
        body = {
            "key": key,
            "value": value if version > 0 else None,
            "version": version,
            "intent": intent,
            "write": uuid.uuid4().hex,  # every write has new content, hence a new etag
        }
        data = json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
        mode = PutMode.CREATE if etag is None else PutMode.update(etag)
        try:
            meta = self.store.put(self.state_path(key), data, mode)
        except (AlreadyExistsError, PreconditionFailedError, NotFoundError):
            return None
        return meta.etag

    def list_state(self, prefix: str) -> list[StateObject]:
        """Every state object whose key starts with ``prefix`` (absent ones included)."""
        listed = [meta.key for meta in self.store.list(f"state/{encode_key(prefix)}")]
        if not listed:
            return []

        def read(path: str) -> StateObject | None:
            found = self._get(path)
            if found is None:
                return None
            body, etag, age = found
            return _state_object(decode_key(path.split("/", 1)[1]), body, etag, age)

        with ThreadPoolExecutor(max_workers=min(_LIST_WORKERS, len(listed))) as pool:
            objects = [obj for obj in pool.map(read, listed) if obj is not None]
        return sorted(objects, key=lambda obj: obj.key)

    # -- helpers --------------------------------------------------------------------------------
    def _get(self, path: str) -> tuple[dict[str, Any], str, float] | None:
        """(JSON body, etag, age in seconds) of the object at ``path``, or None if absent."""
        store = self.store
        try:
            with aws_errors(f"catalog object {path!r}"):
                response = store.client.get_object(Bucket=store.bucket, Key=store.prefix + path)
                raw = response["Body"].read()
        except NotFoundError:
            return None
        try:
            body = json.loads(raw)
        except ValueError as exc:
            raise LakekitError(f"catalog object {path!r} is not valid JSON: {exc}") from exc
        etag = str(response["ETag"]).strip('"')
        return body, etag, _age(response)


def _state_object(key: str, body: dict[str, Any], etag: str, age: float) -> StateObject:
    version = int(body.get("version") or 0)
    intent = body.get("intent")
    return StateObject(
        key=key,
        value=body.get("value") if version > 0 else None,
        version=version,
        intent=intent if isinstance(intent, dict) else None,
        etag=etag,
        age=age,
    )


def _age(response: dict[str, Any]) -> float:
    modified = response.get("LastModified")
    date = response.get("ResponseMetadata", {}).get("HTTPHeaders", {}).get("date")
    if not isinstance(modified, datetime) or not date:
        return 0.0
    try:
        now = parsedate_to_datetime(date)
    except (TypeError, ValueError):
        return 0.0
    return max(0.0, (now - modified).total_seconds())
