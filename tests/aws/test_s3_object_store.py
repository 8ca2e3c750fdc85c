"""S3ObjectStore beyond the conformance suite: how it uses S3 (conditional headers, multipart,
ranged and seekable reads, paging, batched deletes, presigned URLs), its settings, its errors and
its refusal to leave its prefix. moto on 127.0.0.1, or a real bucket in live mode."""

from __future__ import annotations

import io
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from lakekit.adapters.aws.object_store import S3ObjectStore, parse_s3_url
from lakekit.errors import (
    AlreadyExistsError,
    ConfigurationError,
    InvalidInputError,
    NotFoundError,
    NotSupportedError,
    PreconditionFailedError,
    TransientError,
)
from lakekit.interfaces.object_store import ObjectStore, PutMode
from servers.aws import AwsTarget

MIB = 1024 * 1024


@pytest.fixture
def s3(aws_target: AwsTarget) -> Iterator[ObjectStore]:
    store = ObjectStore(
        S3ObjectStore(
            aws_target.lake_url(),
            multipart_threshold=5 * MIB,
            part_size=5 * MIB,
            upload_concurrency=2,
            **aws_target.settings,
        )
    )
    yield store
    store.delete_prefix("t/")
    store.close()


def _adapter(store: ObjectStore) -> S3ObjectStore:
    adapter = store.adapter
    assert isinstance(adapter, S3ObjectStore)
    return adapter


def _raw_key(store: ObjectStore, key: str) -> str:
    return _adapter(store).prefix + key


# -- conditional writes -----------------------------------------------------------------------
def test_etags_match_quoted_or_unquoted(s3: ObjectStore) -> None:
    meta = s3.put("t/e", b"v1")
    assert not meta.etag.startswith('"')
    assert s3.head("t/e").etag == meta.etag
    second = s3.update("t/e", b"v2", etag=f'"{meta.etag}"')  # quoted, as S3 returns it
    with pytest.raises(PreconditionFailedError):
        s3.update("t/e", b"v3", etag=meta.etag)
    s3.update("t/e", b"v3", etag=second.etag)
    assert s3.get("t/e") == b"v3"


def test_conditional_puts_use_s3_preconditions(s3: ObjectStore, aws_target: AwsTarget) -> None:
    # Another S3 client (not lakekit) writes the key: the precondition is S3's, not a check
    # lakekit made beforehand.
    client = aws_target.client("s3")
    bucket = _adapter(s3).bucket
    client.put_object(Bucket=bucket, Key=_raw_key(s3, "t/other"), Body=b"theirs")
    with pytest.raises(AlreadyExistsError):
        s3.create("t/other", b"mine")
    etag = client.head_object(Bucket=bucket, Key=_raw_key(s3, "t/other"))["ETag"]
    client.put_object(Bucket=bucket, Key=_raw_key(s3, "t/other"), Body=b"theirs again")
    with pytest.raises(PreconditionFailedError):
        s3.update("t/other", b"mine", etag=etag)
    assert s3.get("t/other") == b"theirs again"


# -- multipart ----------------------------------------------------------------------------------
def _chunks(total: int, byte: bytes = b"x", size: int = MIB) -> Iterator[bytes]:
    sent = 0
    while sent < total:
        piece = min(size, total - sent)
        yield byte * piece
        sent += piece


def test_large_puts_stream_in_parts(s3: ObjectStore, aws_target: AwsTarget) -> None:
    meta = s3.put("t/big", _chunks(11 * MIB + 3))
    assert meta.etag.endswith("-3")  # three parts: 5 + 5 + 1 MiB
    assert meta.size == 11 * MIB + 3
    head = s3.head("t/big")
    assert (head.size, head.etag) == (meta.size, meta.etag)
    assert s3.get_range("t/big", 11 * MIB, 11 * MIB + 10) == b"xxx"
    with io.BytesIO(b"y" * (6 * MIB)) as file_object:
        assert s3.put("t/from-file", file_object).etag.endswith("-2")
    assert s3.get("t/from-file") == b"y" * (6 * MIB)


def test_a_failed_multipart_put_leaves_no_object_and_no_upload(
    s3: ObjectStore, aws_target: AwsTarget
) -> None:
    def failing() -> Iterator[bytes]:
        yield from _chunks(7 * MIB)
        raise RuntimeError("source broke")

    s3.put("t/keep", b"old")
    for key in ("t/new", "t/keep"):
        with pytest.raises(RuntimeError, match="source broke"):
            s3.put(key, failing())
    assert not s3.exists("t/new")
    assert s3.get("t/keep") == b"old"
    uploads = aws_target.client("s3").list_multipart_uploads(
        Bucket=_adapter(s3).bucket, Prefix=_adapter(s3).prefix
    )
    assert uploads.get("Uploads", []) == []


def test_a_multipart_create_loses_to_a_writer_that_finished_first(
    s3: ObjectStore, aws_target: AwsTarget
) -> None:
    """The object appears while the parts upload: S3 refuses the completion (If-None-Match)."""
    client = aws_target.client("s3")

    def racing() -> Iterator[bytes]:
        yield b"a" * (5 * MIB)
        client.put_object(Bucket=_adapter(s3).bucket, Key=_raw_key(s3, "t/race"), Body=b"first")
        yield b"a" * MIB

    with pytest.raises(AlreadyExistsError):
        s3.create("t/race", racing())
    assert s3.get("t/race") == b"first"
    with pytest.raises(AlreadyExistsError):  # refused up front, before uploading anything
        s3.create("t/race", _chunks(6 * MIB))


def test_a_multipart_update_loses_to_a_writer_that_finished_first(
    s3: ObjectStore, aws_target: AwsTarget, request: pytest.FixtureRequest
) -> None:
    """If-Match on CompleteMultipartUpload: S3 enforces it; moto 5.2 ignores the header (a
    strict xfail there, so this test tells when moto starts enforcing it)."""
    if not aws_target.live:
        request.applymarker(
            pytest.mark.xfail(
                strict=True, reason="moto 5.2 ignores If-Match on CompleteMultipartUpload"
            )
        )
    client = aws_target.client("s3")
    etag = s3.put("t/cas", b"v1").etag

    def racing() -> Iterator[bytes]:
        yield b"a" * (5 * MIB)
        client.put_object(Bucket=_adapter(s3).bucket, Key=_raw_key(s3, "t/cas"), Body=b"v2")
        yield b"a" * MIB

    with pytest.raises(PreconditionFailedError):
        s3.update("t/cas", racing(), etag=etag)
    assert s3.get("t/cas") == b"v2"


def test_copy_if_absent_is_a_conditional_multipart_copy(s3: ObjectStore) -> None:
    s3.put("t/src", b"source")
    s3.put("t/empty", b"")
    s3.copy("t/src", "t/dst", overwrite=False)
    s3.copy("t/empty", "t/dst-empty", overwrite=False)
    assert (s3.get("t/dst"), s3.get("t/dst-empty")) == (b"source", b"")
    with pytest.raises(AlreadyExistsError):
        s3.copy("t/empty", "t/dst", overwrite=False)
    assert s3.copy("t/empty", "t/dst").size == 0


# -- reads ----------------------------------------------------------------------------------------
def test_open_is_seekable_and_pinned_to_one_version(s3: ObjectStore) -> None:
    data = bytes(range(256)) * 64
    s3.put("t/seek", data)
    with s3.open("t/seek", start=100, end=5000) as stream:
        assert stream.seekable()
        assert stream.read(10) == data[100:110]
        stream.seek(0, io.SEEK_END)
        assert stream.tell() == 4900
        stream.seek(-4, io.SEEK_END)
        assert stream.read() == data[4996:5000]
        stream.seek(1000)
        s3.put("t/seek", b"replaced")
        with pytest.raises(PreconditionFailedError, match="replaced while"):
            stream.read(10)


def test_listing_pages_stay_sorted_and_streamed(s3: ObjectStore) -> None:
    _adapter(s3).list_page_size = 3  # S3 pages at most 1000 keys: make pages small here
    keys = [f"t/list/{name}" for name in ("b", "a/x", "a-y", "a0", "c", "é", "a/b/c", "z")]
    for key in keys:
        s3.put(key, b"1")
    listing = s3.list("t/list/")
    first = next(listing)
    assert first.key == sorted(keys)[0]
    assert [first.key] + [m.key for m in listing] == sorted(keys)
    level = s3.list_dir("t/list/")
    assert level.prefixes == ["t/list/a/"]
    assert [m.key for m in level.objects] == sorted(k for k in keys if k.count("/") == 2)


def test_deletes_go_in_batches(s3: ObjectStore) -> None:
    _adapter(s3).delete_batch = 2  # S3 takes 1000 keys per request: make batches small here
    keys = [f"t/del/{i}" for i in range(5)]
    for key in keys:
        s3.put(key, b"1")
    s3.delete([*keys, "t/del/missing"])
    assert s3.list_keys("t/del/") == []


def test_listings_hide_reserved_keys_and_directory_markers(
    s3: ObjectStore, aws_target: AwsTarget
) -> None:
    client, bucket = aws_target.client("s3"), _adapter(s3).bucket
    for raw in ("t/m/.lakekit/glue/state/x", "t/m/dir/", "t/m//double"):
        client.put_object(Bucket=bucket, Key=_raw_key(s3, raw), Body=b"")
    s3.put("t/m/real", b"1")
    assert s3.list_keys("t/m/") == ["t/m/real"]
    level = s3.list_dir("t/m/")
    assert [m.key for m in level.objects] == ["t/m/real"]
    assert ".lakekit" not in str(level.prefixes)
    for raw in ("t/m/.lakekit/glue/state/x", "t/m/dir/", "t/m//double"):
        client.delete_object(Bucket=bucket, Key=_raw_key(s3, raw))


def test_fsspec_listings_are_never_stale(s3: ObjectStore) -> None:
    fs = s3.fsspec
    s3.put("t/fs/one", b"1")
    assert fs.ls("t/fs", detail=False) == ["t/fs/one"]
    s3.put("t/fs/two", b"2")
    assert sorted(fs.ls("t/fs", detail=False)) == ["t/fs/one", "t/fs/two"]
    s3.delete("t/fs/one")
    assert fs.ls("t/fs", detail=False) == ["t/fs/two"]


# -- presigned URLs -------------------------------------------------------------------------------
def test_presigned_put_and_get_round_trip_over_plain_http(s3: ObjectStore) -> None:
    put_url = s3.url("t/signed é.bin", expires_in=300, method="PUT")
    assert "X-Amz-Signature=" in put_url
    request = urllib.request.Request(put_url, data=b"uploaded via url", method="PUT")
    # urllib's default form Content-Type makes moto (werkzeug) parse the body as a form and
    # store nothing; S3 stores the bytes either way. Real uploaders send a binary type.
    request.add_header("Content-Type", "application/octet-stream")
    with urllib.request.urlopen(request) as response:
        assert response.status == 200
    assert s3.get("t/signed é.bin") == b"uploaded via url"
    with urllib.request.urlopen(s3.url("t/signed é.bin", expires_in=60)) as response:
        assert response.read() == b"uploaded via url"
    head = urllib.request.Request(s3.url("t/signed é.bin", expires_in=60, method="HEAD"))
    head.method = "HEAD"
    with urllib.request.urlopen(head) as response:
        assert int(response.headers["Content-Length"]) == len(b"uploaded via url")


def test_presigning_refuses_what_s3_cannot_sign(s3: ObjectStore) -> None:
    with pytest.raises(NotSupportedError, match="object_url"):
        s3.url("t/x")
    for bad in (0, -1, 7 * 24 * 3600 + 1):
        with pytest.raises(InvalidInputError, match="expires_in"):
            s3.url("t/x", expires_in=bad)
    with pytest.raises(InvalidInputError, match="presign"):
        s3.url("t/x", expires_in=60, method="PATCH")


# -- keys never leave the prefix ------------------------------------------------------------------
@pytest.mark.parametrize("key", ["../escape", "/abs", "a//b", "a/./b", ".lakekit/x", "back\\slash"])
def test_the_adapter_itself_refuses_keys_that_could_escape(s3: ObjectStore, key: str) -> None:
    adapter = _adapter(s3)
    calls: list[Any] = [
        lambda: adapter.put(key, b"x", PutMode.OVERWRITE),
        lambda: adapter.head(key),
        lambda: adapter.open(key),
        lambda: adapter.delete([key]),
        lambda: adapter.url(key, expires_in=60),
    ]
    for call in calls:
        with pytest.raises(InvalidInputError):
            call()


def test_a_store_sees_only_its_own_prefix(aws_target: AwsTarget) -> None:
    base = aws_target.lake_url()
    inner = ObjectStore(S3ObjectStore(f"{base}/lake", **aws_target.settings))
    sibling = ObjectStore(S3ObjectStore(f"{base}/lake2", **aws_target.settings))
    sibling.put("x", b"sibling")
    inner.put("x", b"inner")
    assert inner.list_keys() == ["x"]
    assert inner.get("x") == b"inner"
    assert sibling.get("x") == b"sibling"
    assert inner.uri("x") == f"{base}/lake/x"
    inner.delete_prefix("x")
    sibling.delete_prefix("x")


# -- settings, errors, credentials ----------------------------------------------------------------
def test_urls_are_validated() -> None:
    assert parse_s3_url("s3://bucket/a/b/") == ("bucket", "a/b/")
    assert parse_s3_url("s3a://bucket") == ("bucket", "")
    for bad in ("gs://b/x", "s3:///x", "s3://user:pw@b/x", "s3://b/../x", "s3://b/x?region=y"):
        with pytest.raises(ConfigurationError):
            parse_s3_url(bad)


def test_bad_settings_are_configuration_errors_naming_the_setting() -> None:
    with pytest.raises(ConfigurationError, match="endpoint_url"):
        S3ObjectStore("s3://b/x", endpoint_url="ftp://host")
    with pytest.raises(ConfigurationError, match="secret_access_key"):
        S3ObjectStore("s3://b/x", access_key_id="AKIDEXAMPLE")
    with pytest.raises(ConfigurationError, match="part_size"):
        S3ObjectStore("s3://b/x", part_size=1024)
    with pytest.raises(ConfigurationError, match="unknown setting 'colour'"):
        S3ObjectStore("s3://b/x", colour="blue")


def test_a_missing_bucket_is_a_configuration_error(aws_target: AwsTarget) -> None:
    store = ObjectStore(S3ObjectStore("s3://lakekit-no-such-bucket-4711/x", **aws_target.settings))
    with pytest.raises(ConfigurationError, match="bucket does not exist"):
        store.put("k", b"1")


def test_secrets_never_reach_reprs_or_errors(aws_target: AwsTarget) -> None:
    if aws_target.live:
        pytest.skip("needs the fake keys of moto")
    secret = aws_target.settings["secret_access_key"]
    store = S3ObjectStore("s3://lakekit-no-such-bucket-4711/x", **aws_target.settings)
    assert secret not in repr(store)
    assert secret not in repr(store.settings)
    assert aws_target.settings["access_key_id"] not in repr(store.settings)
    with pytest.raises(ConfigurationError) as info:
        ObjectStore(store).put("k", b"1")
    assert secret not in str(info.value)
    assert aws_target.settings["access_key_id"] not in str(info.value)


def test_an_unreachable_endpoint_is_a_transient_error() -> None:
    store = ObjectStore(
        S3ObjectStore(
            "s3://bucket/x",
            endpoint_url="http://127.0.0.1:9",
            region="us-east-1",
            access_key_id="AKIDEXAMPLE",
            secret_access_key="not-a-secret",
            max_attempts=1,
            connect_timeout=1,
        )
    )
    with pytest.raises(TransientError, match="cannot reach AWS"):
        store.head("k")


def test_the_endpoint_override_reaches_the_configured_server(aws_target: AwsTarget) -> None:
    if aws_target.live:
        pytest.skip("moto only: a live run uses AWS's own endpoints")
    store = S3ObjectStore(aws_target.lake_url(), **aws_target.settings)
    assert store.client.meta.endpoint_url == aws_target.settings["endpoint_url"]
    assert store.settings.effective_addressing_style == "path"
    _fs, root = store.fsspec_filesystem()
    assert root.startswith(store.bucket + "/")
    with pytest.raises(NotFoundError):
        ObjectStore(store).head("nothing-here")
    # path-style: the bucket is in the path, not the host name
    url = store.url("k", expires_in=60)
    assert url.startswith(f"{aws_target.settings['endpoint_url']}/{store.bucket}/")


def test_a_presigned_url_of_a_missing_object_gives_404(s3: ObjectStore) -> None:
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(s3.url("t/absent", expires_in=60))
    assert info.value.code == 404
    info.value.close()


def _conflict_409() -> Exception:
    from botocore.exceptions import ClientError

    response: Any = {
        "Error": {"Code": "ConditionalRequestConflict", "Message": "concurrent write"},
        "ResponseMetadata": {"HTTPStatusCode": 409},
    }
    return ClientError(response, "PutObject")


def test_a_409_conditional_conflict_is_retried_then_counts_as_a_lost_race(
    s3: ObjectStore,
) -> None:
    """S3 answers 409 ConditionalRequestConflict while another conditional write on the key
    is in flight (moto never does, so the S3 response is fed to the retry logic directly)."""
    adapter = _adapter(s3)
    attempts: list[int] = []

    def conflicting_twice() -> dict[str, str]:
        attempts.append(1)
        if len(attempts) <= 2:
            raise _conflict_409()
        return {"ETag": '"done"'}

    assert adapter._conditional("t/k", PutMode.CREATE, conflicting_twice) == {"ETag": '"done"'}
    assert len(attempts) == 3

    def always_conflicting() -> None:
        raise _conflict_409()

    with pytest.raises(AlreadyExistsError):
        adapter._conditional("t/k", PutMode.CREATE, always_conflicting)
    etag = s3.put("t/k", b"v1").etag
    with pytest.raises(PreconditionFailedError):
        adapter._conditional("t/k", PutMode.update(etag), always_conflicting)
    with pytest.raises(NotFoundError):
        adapter._conditional("t/gone", PutMode.update(etag), always_conflicting)
