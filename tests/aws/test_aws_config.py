"""How an ``s3://`` lake is configured: defaults per component, environment variables, the
registry, the shared AWS settings and the mapping of AWS errors (no server needed except where
a test takes ``aws_target``)."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError, NoCredentialsError, ProfileNotFound

import lakekit
from lakekit.adapters.aws._client import AwsClients, AwsSettings
from lakekit.adapters.aws._errors import aws_errors, map_error, scrub
from lakekit.adapters.aws.glue_catalog import GlueCatalog
from lakekit.adapters.aws.object_store import S3ObjectStore
from lakekit.config import load_config
from lakekit.errors import (
    AlreadyExistsError,
    CommitConflictError,
    ConfigurationError,
    ConflictError,
    InvalidInputError,
    LakekitError,
    NotFoundError,
    PermissionDeniedError,
    PreconditionFailedError,
    TransientError,
)
from lakekit.registry import resolve
from servers.aws import AwsTarget


def test_an_s3_lake_defaults_to_s3_glue_duckdb_and_local_functions() -> None:
    config = load_config("s3://bucket/lake", env={})
    urls = {name: config.component(name).url for name in config.components}  # type: ignore[arg-type]
    assert urls == {
        "store": "s3://bucket/lake",
        "catalog": "glue://",
        "engine": "duckdb",
        "stream": None,
        "functions": "local",
    }
    assert resolve("store", "s3://bucket/lake") is S3ObjectStore
    assert resolve("store", "s3a://bucket/lake") is S3ObjectStore
    assert resolve("catalog", "glue://") is GlueCatalog


def test_an_s3_lake_names_the_setting_for_a_stream() -> None:
    with (
        lakekit.connect("s3://bucket/lake") as lake,
        pytest.raises(ConfigurationError, match="LAKEKIT_STREAM"),
    ):
        lake.stream("clicks")


def test_aws_settings_come_from_lakekit_environment_variables(aws_target: AwsTarget) -> None:
    if aws_target.live:
        pytest.skip("moto only")
    env = {"LAKEKIT_URL": aws_target.lake_url()}
    for component in ("STORE", "CATALOG"):
        for name, value in aws_target.settings.items():
            env[f"LAKEKIT_{component}_{name.upper()}"] = value
    env["LAKEKIT_STORE_MULTIPART_THRESHOLD"] = str(8 * 1024 * 1024)
    env["LAKEKIT_CATALOG_COMMIT_TIMEOUT"] = "12.5"
    config = load_config(env=env)
    from lakekit.lake import Lake

    with Lake(config) as lake:
        store, catalog = lake.store.adapter, lake.catalog.adapter
        assert isinstance(store, S3ObjectStore)
        assert isinstance(catalog, GlueCatalog)
        assert store.settings.multipart_threshold == 8 * 1024 * 1024
        assert catalog.settings.commit_timeout == 12.5
        assert store.settings.endpoint_url == aws_target.settings["endpoint_url"]
        lake.store.put("env/x", b"1")
        assert lake.store.get("env/x") == b"1"
        lake.store.delete("env/x")


def test_a_malformed_environment_setting_names_its_variable() -> None:
    config = load_config(
        "s3://bucket/lake", env={"LAKEKIT_STORE_MAX_ATTEMPTS": "many", "LAKEKIT_URL": "x"}
    )
    from lakekit.lake import Lake

    with (
        Lake(config) as lake,
        pytest.raises(ConfigurationError, match="LAKEKIT_STORE_MAX_ATTEMPTS"),
    ):
        _ = lake.store


# -- the shared settings and client factory ---------------------------------------------------
class _Settings(AwsSettings):
    url: str = "x://"


def test_credentials_go_together_and_never_show() -> None:
    for bad in (
        {"access_key_id": "AKIDEXAMPLE"},
        {"secret_access_key": "s"},
        {"session_token": "t"},
        {"profile": "p", "access_key_id": "AKIDEXAMPLE", "secret_access_key": "s"},
        {"region": "Europe"},
        {"endpoint_url": "http://user:pw@host:9000"},
    ):
        with pytest.raises(ValueError, match=r"\w"):
            _Settings(**bad)
    settings = _Settings(
        access_key_id="AKIDEXAMPLE",
        secret_access_key="very-secret",
        session_token="token-secret",
        region="eu-west-1",
    )
    text = repr(settings) + str(settings)
    for secret in ("very-secret", "token-secret", "AKIDEXAMPLE"):
        assert secret not in text
    assert settings.explicit_credentials == {
        "aws_access_key_id": "AKIDEXAMPLE",
        "aws_secret_access_key": "very-secret",
        "aws_session_token": "token-secret",
    }
    clients = AwsClients(settings)
    assert clients.frozen_credentials() == ("AKIDEXAMPLE", "very-secret", "token-secret")
    assert clients.region == "eu-west-1"
    assert "very-secret" not in repr(clients)


def test_the_standard_chain_is_used_when_no_keys_are_given(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    # The standard chain reads the environment (nothing is patched in boto3 itself).
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_REGION"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDFROMENVIRONMENT0")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "env-secret")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "ap-southeast-2")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    clients = AwsClients(_Settings())
    assert clients.frozen_credentials() == ("AKIDFROMENVIRONMENT0", "env-secret", None)
    assert clients.region == "ap-southeast-2"
    assert clients.client("s3").meta.region_name == "ap-southeast-2"


def test_a_missing_profile_is_a_configuration_error(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    with pytest.raises(ConfigurationError, match="LAKEKIT_<COMPONENT>_PROFILE"):
        AwsClients(_Settings(profile="no-such-profile")).client("s3")


# -- error mapping ------------------------------------------------------------------------------
def _client_error(code: str, status: int, message: str = "m") -> ClientError:
    response: Any = {
        "Error": {"Code": code, "Message": message},
        "ResponseMetadata": {"HTTPStatusCode": status},
    }
    return ClientError(response, "Operation")


@pytest.mark.parametrize(
    ("code", "status", "kind"),
    [
        ("NoSuchKey", 404, NotFoundError),
        ("404", 404, NotFoundError),
        ("EntityNotFoundException", 400, NotFoundError),
        ("ResourceNotFoundException", 400, NotFoundError),
        ("NoSuchBucket", 404, ConfigurationError),
        ("AlreadyExistsException", 400, AlreadyExistsError),
        ("PreconditionFailed", 412, PreconditionFailedError),
        ("ConditionalRequestConflict", 409, ConflictError),
        ("ConcurrentModificationException", 400, ConflictError),
        ("AccessDenied", 403, PermissionDeniedError),
        ("ExpiredToken", 400, PermissionDeniedError),
        ("SlowDown", 503, TransientError),
        ("ThrottlingException", 400, TransientError),
        ("InternalError", 500, TransientError),
        ("SomethingNew", 502, TransientError),
        ("InvalidInputException", 400, InvalidInputError),
        ("SomethingNew", 400, InvalidInputError),
        ("SomethingNew", 418, LakekitError),
    ],
)
def test_errors_map_by_code_then_status(code: str, status: int, kind: type[Exception]) -> None:
    error = map_error(_client_error(code, status), "doing x")
    assert type(error) is kind
    assert str(error).startswith("doing x: ")


def test_error_messages_never_decide_the_mapping() -> None:
    misleading = _client_error("AccessDenied", 403, "NoSuchKey: not found, throttled")
    assert isinstance(map_error(misleading, "x"), PermissionDeniedError)


def test_mapped_errors_chain_the_original_and_hide_secrets() -> None:
    secret = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
    url = (
        "https://b.s3.amazonaws.com/k?X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20260101&"
        "X-Amz-Signature=abcdef0123&X-Amz-Security-Token=tok"
    )
    original = _client_error("AccessDenied", 403, f"denied for {url} with {secret}")
    with pytest.raises(PermissionDeniedError) as info, aws_errors("reading k", secrets=[secret]):
        raise original
    assert info.value.__cause__ is original
    text = str(info.value)
    for leaked in (secret, "AKIAIOSFODNN7EXAMPLE", "abcdef0123", "tok"):
        assert leaked not in text, leaked
    assert scrub("key AKIAIOSFODNN7EXAMPLE") == "key ***"


def test_sdk_errors_outside_responses_are_mapped_too() -> None:
    with pytest.raises(ConfigurationError, match="credentials"), aws_errors("listing"):
        raise NoCredentialsError()
    with pytest.raises(ConfigurationError), aws_errors("session"):
        raise ProfileNotFound(profile="x")
    with pytest.raises(ValueError, match="mine"), aws_errors("x"):
        raise ValueError("mine")  # the caller's own errors pass through unchanged
    with pytest.raises(CommitConflictError), aws_errors("x"):
        raise CommitConflictError("already a lakekit error")
