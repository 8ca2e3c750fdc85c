"""Ingest a paged JSON HTTP/REST API, one page per batch, with retries (standard library only).

Paging styles (``paging=``):

* ``"page"``: ``?page=1,2,...``; stops at an empty page or a page shorter than ``page_size``.
  State ``{"page": n}`` (last committed page); a resumed run asks for ``n + 1``.
* ``"offset"``: ``?offset=0,k,...`` advancing by the records received; stops at an empty or
  short page. State ``{"offset": n}`` (records committed); a later run asks for ``offset=n``,
  so records appended to the collection since are read.
* ``"cursor"``: the response holds the next cursor at ``cursor_path``; sent back as
  ``?cursor=...``. State ``{"cursor": c}`` (what to send next).
* ``"next_link"``: the response holds the next page's URL at ``next_link_path`` (or, with no
  path, in an RFC 8288 ``Link: <...>; rel="next"`` header). State ``{"next": url}``.

For ``cursor`` and ``next_link``, when the API says there is no next page the state also records
``"done": true`` and later runs read nothing (clear the pipeline state to read again). The
``page`` and ``next_link`` styles resume *after* the last committed page: records later added to
an already-read page are not re-read (use ``offset`` or ``cursor`` for growing collections).
"""

from __future__ import annotations

import email.utils
import http.client
import json
import random
import re
import ssl
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, ClassVar, Literal
from urllib.parse import parse_qsl, urlencode, urljoin, urlsplit, urlunsplit

from lakekit._redact import redact_url
from lakekit.errors import (
    ConfigurationError,
    InvalidInputError,
    LakekitError,
    NotFoundError,
    PermissionDeniedError,
    TransientError,
)
from lakekit.pipelines.source import RawItem, Source, SourceBatch, SourceState

if TYPE_CHECKING:
    from lakekit.interfaces.catalog import JSONValue

__all__ = ["HttpSource", "Paging"]

Paging = Literal["page", "offset", "cursor", "next_link"]
_PAGINGS: tuple[str, ...] = ("page", "offset", "cursor", "next_link")
_RETRY_STATUS = frozenset({429, 500, 502, 503, 504})
_LINK_NEXT = re.compile(r'<([^>]*)>\s*;[^,]*?\brel="?next"?', re.IGNORECASE)


class HttpSource(Source):
    """Records of a paged JSON API, one batch (an Arrow table) per page.

    Guarantees:
        * Each page's batch carries the state that makes a resumed run continue right after it,
          so with the pipeline's atomic commit every page is ingested exactly once, provided
          the API serves the same pages for the same requests.
        * Retries: 429, 500, 502, 503, 504 and connection errors/timeouts are retried up to
          ``max_retries`` times with exponential backoff and jitter
          (``backoff * 2**attempt``, capped at ``max_backoff``); a ``Retry-After`` header
          (seconds or HTTP date) is honoured, capped at ``max_backoff``.
        * Other 4xx fail at once: 401/403 -> PermissionDeniedError, 404/410 -> NotFoundError,
          others -> InvalidInputError, each with the status and the URL (redacted).
        * Header values (tokens) never appear in ``repr``, ``describe()`` or errors; URLs in
          messages go through ``redact_url``.
        * Records are JSON objects; nested objects become Arrow structs
          (``pa.Table.from_pylist``). Each batch's raw item is the page's JSON bytes.
    """

    kind: ClassVar[str] = "http"

    def __init__(
        self,
        url: str,
        *,
        paging: Paging = "page",
        records_path: str | None = None,
        page_param: str | None = None,
        size_param: str | None = None,
        page_size: int | None = None,
        first_page: int = 1,
        cursor_path: str | None = None,
        next_link_path: str | None = None,
        headers: Mapping[str, str] | None = None,
        params: Mapping[str, str | int] | None = None,
        max_retries: int = 5,
        backoff: float = 0.5,
        max_backoff: float = 30.0,
        timeout: float = 30.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        """Describe the API; nothing is requested until :meth:`read`.

        Args:
            url: the first page's URL (``http`` or ``https``).
            paging: ``"page"``, ``"offset"``, ``"cursor"`` or ``"next_link"``.
            records_path: dotted path to the list of records (``"data.items"``); None when the
                body itself is the list.
            page_param: query parameter of the page number / offset / cursor (default
                ``page`` / ``offset`` / ``cursor``).
            size_param: query parameter for the page size (sent only when set with page_size).
            page_size: records per page; a shorter page ends ``page``/``offset`` paging.
            first_page: number of the first page for ``page`` paging.
            cursor_path: dotted path to the next cursor (required for ``cursor`` paging).
            next_link_path: dotted path to the next URL (``next_link``; None: ``Link`` header).
            headers: request headers, e.g. ``Authorization`` (values never shown).
            params: extra query parameters sent with every request.
            max_retries: retries per request after the first attempt.
            backoff: first retry delay in seconds; doubles per retry.
            max_backoff: cap on any delay, including ``Retry-After``.
            timeout: socket timeout per request, seconds.
            sleep: how to wait between retries (injectable to observe delays in tests).

        Raises:
            InvalidInputError: an unknown paging style, a non-HTTP URL, a missing cursor_path,
                negative retry settings.
        """
        scheme = urlsplit(url).scheme if isinstance(url, str) else ""
        if scheme not in ("http", "https"):
            raise InvalidInputError(
                f"HttpSource needs an http(s) URL, got {redact_url(str(url))!r}"
            )
        if paging not in _PAGINGS:
            raise InvalidInputError(f"paging must be one of {list(_PAGINGS)}, got {paging!r}")
        if paging == "cursor" and not cursor_path:
            raise InvalidInputError("paging='cursor' needs cursor_path= (e.g. 'meta.next_cursor')")
        if page_size is not None and (isinstance(page_size, bool) or page_size < 1):
            raise InvalidInputError(f"page_size must be a positive int, got {page_size!r}")
        if max_retries < 0 or backoff < 0 or max_backoff < 0 or timeout <= 0:
            raise InvalidInputError(
                "max_retries, backoff and max_backoff must be >= 0 and timeout > 0"
            )
        self.url = url
        self.paging: Paging = paging
        self.records_path = records_path
        default_param = {"page": "page", "offset": "offset", "cursor": "cursor"}.get(paging, "")
        self.page_param = page_param or default_param
        self.size_param = size_param
        self.page_size = page_size
        self.first_page = first_page
        self.cursor_path = cursor_path
        self.next_link_path = next_link_path
        self._headers = {"Accept": "application/json", "User-Agent": "lakekit"}
        self._headers.update(headers or {})
        self.params = dict(params or {})
        self.max_retries = max_retries
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.timeout = timeout
        self._sleep = sleep
        self.retries = 0
        """Retries made so far by this source (for reports and tests)."""

    def __repr__(self) -> str:
        names = sorted(self._headers)
        return f"HttpSource({redact_url(self.url)!r}, paging={self.paging!r}, headers={names})"

    def describe(self) -> str:
        """``http <redacted url> (<paging>)``: never a header value."""
        return f"http {redact_url(self.url)} ({self.paging})"

    # -- reading ----------------------------------------------------------------------------------
    def read(self, state: SourceState) -> Iterator[SourceBatch]:
        """Yield one batch per page after the page recorded in ``state``.

        Raises:
            PermissionDeniedError: 401/403. NotFoundError: 404/410.
            InvalidInputError: another 4xx, a body that is not JSON, records not found at
                ``records_path`` or not objects.
            TransientError: retries exhausted on 429/5xx or connection errors.
            ConfigurationError: the server's TLS certificate is not trusted (not retried).
        """
        if state.get("done"):
            return
        if self.paging == "page":
            yield from self._read_numbered(state, "page")
        elif self.paging == "offset":
            yield from self._read_numbered(state, "offset")
        elif self.paging == "cursor":
            yield from self._read_cursor(state)
        else:
            yield from self._read_next_link(state)

    def _read_numbered(self, state: SourceState, key: str) -> Iterator[SourceBatch]:
        done = state.get(key)
        if key == "page":
            position = self.first_page if done is None else int(done) + 1
        else:
            position = 0 if done is None else int(done)
        while True:
            url = self._with_params(self.url, {self.page_param: position, **self._size()})
            body, records, _ = self._fetch(url)
            if not records:
                return
            after = position + 1 if key == "page" else position + len(records)
            committed = position if key == "page" else after
            yield self._batch(records, body, {key: committed}, f"{key} {position}")
            if self.page_size is not None and len(records) < self.page_size:
                return
            position = after

    def _read_cursor(self, state: SourceState) -> Iterator[SourceBatch]:
        cursor = state.get("cursor")
        while True:
            extra: dict[str, Any] = dict(self._size())
            if cursor is not None:
                extra[self.page_param] = cursor
            body, records, payload = self._fetch(self._with_params(self.url, extra))
            assert self.cursor_path is not None
            following = _at_path(payload, self.cursor_path, required=False)
            end = following in (None, "") or following == cursor
            if not records and end:
                return
            new_state: dict[str, JSONValue] = (
                {"cursor": cursor, "done": True} if end else {"cursor": following}
            )
            if records:
                yield self._batch(records, body, new_state, f"cursor {cursor}")
            if end or not records:
                return
            cursor = following

    def _read_next_link(self, state: SourceState) -> Iterator[SourceBatch]:
        url = state.get("next") or self._with_params(self.url, self._size())
        while True:
            body, records, payload, link = self._fetch_with_link(url)
            following: Any
            if self.next_link_path:
                following = _at_path(payload, self.next_link_path, required=False)
            else:
                following = link
            if following is not None and not isinstance(following, str):
                raise InvalidInputError(
                    f"{self.describe()}: next link at {self.next_link_path!r} is not a URL"
                )
            end = not following
            nxt = url if end else urljoin(url, following)
            new_state: dict[str, JSONValue] = {"next": nxt, "done": True} if end else {"next": nxt}
            if records:  # an empty page only moves on; re-fetching it later reads nothing
                yield self._batch(records, body, new_state, redact_url(url))
            if end:
                return
            url = nxt

    # -- helpers ----------------------------------------------------------------------------------
    def _size(self) -> dict[str, Any]:
        if self.size_param and self.page_size is not None:
            return {self.size_param: self.page_size}
        return {}

    def _with_params(self, url: str, extra: Mapping[str, Any]) -> str:
        parts = urlsplit(url)
        query = dict(parse_qsl(parts.query, keep_blank_values=True))
        query.update({k: str(v) for k, v in self.params.items()})
        query.update({k: str(v) for k, v in extra.items()})
        return urlunsplit(parts._replace(query=urlencode(query)))

    def _batch(
        self, records: list[dict[str, Any]], body: bytes, state: dict[str, JSONValue], origin: str
    ) -> SourceBatch:
        import pyarrow as pa

        try:
            data = pa.Table.from_pylist(records)
        except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
            raise InvalidInputError(
                f"{self.describe()}: records of {origin} do not fit one Arrow schema: {exc}"
            ) from exc
        return SourceBatch(data, state=state, raw=RawItem(body, ".json"), origin=origin)

    def _fetch(self, url: str) -> tuple[bytes, list[dict[str, Any]], Any]:
        body, records, payload, _ = self._fetch_with_link(url)
        return body, records, payload

    def _fetch_with_link(self, url: str) -> tuple[bytes, list[dict[str, Any]], Any, str | None]:
        body, link = self._get(url)
        try:
            payload = json.loads(body)
        except ValueError as exc:
            raise InvalidInputError(
                f"{self.describe()}: the response of {redact_url(url)} is not JSON"
            ) from exc
        found = (
            _at_path(payload, self.records_path, required=True) if self.records_path else payload
        )
        if not isinstance(found, list) or not all(isinstance(r, dict) for r in found):
            where = f"at {self.records_path!r}" if self.records_path else "as the body"
            raise InvalidInputError(
                f"{self.describe()}: expected a list of JSON objects {where} in the response of "
                f"{redact_url(url)} (set records_path=)"
            )
        return body, found, payload, link

    def _get(self, url: str) -> tuple[bytes, str | None]:
        """GET with retries; the body and the ``Link`` rel=next target, if any."""
        attempt = 0
        while True:
            request = urllib.request.Request(url, headers=self._headers, method="GET")  # noqa: S310
            retry_after: float | None = None
            try:
                with urllib.request.urlopen(request, timeout=self.timeout) as response:  # noqa: S310
                    body: bytes = response.read()
                    match = _LINK_NEXT.search(response.headers.get("Link", "") or "")
                    return body, match.group(1) if match else None
            except urllib.error.HTTPError as exc:
                try:
                    status = exc.code
                    retry_after = _retry_after(exc.headers.get("Retry-After"))
                finally:
                    exc.close()
                if status not in _RETRY_STATUS:
                    raise self._status_error(status, url) from exc
                failure: str = f"HTTP {status}"
                cause: Exception = exc
            except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
                reason = getattr(exc, "reason", exc)
                if isinstance(reason, ssl.SSLCertVerificationError):  # retrying cannot help
                    raise ConfigurationError(
                        f"{self.describe()}: the TLS certificate of {redact_url(url)} is not "
                        f"trusted: {reason.verify_message}"
                    ) from exc
                failure = f"connection failed ({type(exc).__name__})"
                cause = exc
            if attempt >= self.max_retries:
                raise TransientError(
                    f"{self.describe()}: {failure} from {redact_url(url)} after "
                    f"{attempt + 1} attempts"
                ) from cause
            self._sleep(self._delay(attempt, retry_after))
            attempt += 1
            self.retries += 1

    def _delay(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return min(retry_after, self.max_backoff)
        base = min(self.backoff * 2.0**attempt, self.max_backoff)
        return base * random.uniform(0.5, 1.0)  # noqa: S311 - jitter, not cryptography

    def _status_error(self, status: int, url: str) -> LakekitError:
        where = f"{self.describe()}: HTTP {status} from {redact_url(url)}"
        if status in (401, 403):
            return PermissionDeniedError(f"{where}: the API refused the credentials (headers=)")
        if status in (404, 410):
            return NotFoundError(f"{where}: no such resource")
        return InvalidInputError(f"{where}: the API rejected the request")


def _retry_after(value: str | None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or HTTP date), or None."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def _at_path(payload: Any, path: str, *, required: bool) -> Any:
    """The value at a dotted path of JSON objects (None if absent and not ``required``)."""
    node = payload
    for part in path.split("."):
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif required:
            raise InvalidInputError(f"the API response has no {path!r} (missing {part!r})")
        else:
            return None
    return node
