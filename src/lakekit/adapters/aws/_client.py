"""Settings shared by every AWS adapter, and boto3 clients built from them.

Each AWS adapter's settings model subclasses :class:`AwsSettings`, so S3, Glue, Athena, Kinesis
and Lambda are configured the same way. Every field ``f`` of component ``c`` can come from the
environment variable ``LAKEKIT_<C>_<F>`` (``LAKEKIT_STORE_REGION``,
``LAKEKIT_CATALOG_ENDPOINT_URL``, ``LAKEKIT_STREAM_PROFILE``, ...), from ``lakekit.toml``
(``[store] region = "eu-west-1"``) or from an explicit argument.

Credentials: when no keys are set, boto3's standard chain decides (environment variables
``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``/``AWS_SESSION_TOKEN``, ``AWS_PROFILE``, the shared
config and credentials files, SSO, web identity, ECS and EC2 instance roles). Keys given to
lakekit are held as ``SecretStr``: no repr, log line or error message ever shows them.

Endpoints: ``endpoint_url`` points one component at an S3-compatible store (MinIO, Cloudflare
R2, Ceph, moto) or a VPC endpoint. Unset, boto3 also honours ``AWS_ENDPOINT_URL_<SERVICE>`` and
``AWS_ENDPOINT_URL``.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar, Literal, Self, TypeVar, cast
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator, model_validator

from lakekit.config import AdapterSettings, ComponentConfig, LakeConfig
from lakekit.errors import MissingDependencyError

if TYPE_CHECKING:
    import boto3
    from botocore.client import BaseClient
    from botocore.config import Config

    from lakekit.registry import Component

__all__ = ["AwsClients", "AwsSettings", "import_boto3", "settings_from_arguments"]

USER_AGENT = "lakekit"


class AwsSettings(AdapterSettings):
    """Connection settings every AWS adapter accepts (the env prefix is the component's).

    ``access_key_id`` and ``secret_access_key`` go together; ``session_token`` needs both;
    ``profile`` and explicit keys are exclusive. Leave all four unset to use boto3's standard
    credential chain.
    """

    component: ClassVar[str] = ""

    region: str | None = Field(
        default=None,
        pattern=r"^[a-z0-9][a-z0-9-]{1,31}$",
        description=(
            "AWS region, e.g. 'eu-west-1' ('auto' for Cloudflare R2). Default: the standard "
            "chain (AWS_REGION, AWS_DEFAULT_REGION, the profile's region), else 'us-east-1'. "
            "Env LAKEKIT_<COMPONENT>_REGION."
        ),
    )
    endpoint_url: str | None = Field(
        default=None,
        description=(
            "Endpoint override, e.g. 'http://127.0.0.1:9000' for MinIO or moto, an R2 account "
            "endpoint, or a VPC endpoint. Default: AWS's endpoint for the region (boto3 also "
            "honours AWS_ENDPOINT_URL_<SERVICE> and AWS_ENDPOINT_URL). "
            "Env LAKEKIT_<COMPONENT>_ENDPOINT_URL."
        ),
    )
    profile: str | None = Field(
        default=None,
        min_length=1,
        description=(
            "Named profile of ~/.aws/config to take credentials and region from. "
            "Env LAKEKIT_<COMPONENT>_PROFILE (boto3 itself also reads AWS_PROFILE)."
        ),
    )
    access_key_id: SecretStr | None = Field(
        default=None,
        description=(
            "Access key id; leave unset to use the standard credential chain. "
            "Env LAKEKIT_<COMPONENT>_ACCESS_KEY_ID."
        ),
    )
    secret_access_key: SecretStr | None = Field(
        default=None,
        description=(
            "Secret access key, required with access_key_id. Never shown in reprs or errors. "
            "Env LAKEKIT_<COMPONENT>_SECRET_ACCESS_KEY."
        ),
    )
    session_token: SecretStr | None = Field(
        default=None,
        description=(
            "Session token of temporary credentials (with both keys). "
            "Env LAKEKIT_<COMPONENT>_SESSION_TOKEN."
        ),
    )
    max_attempts: int = Field(
        default=5,
        ge=1,
        le=50,
        description=(
            "Attempts per request including the first, with botocore's retry mode for "
            "throttling, 5xx and connection errors. Env LAKEKIT_<COMPONENT>_MAX_ATTEMPTS."
        ),
    )
    retry_mode: Literal["standard", "adaptive"] = Field(
        default="standard",
        description=(
            "botocore retry mode: 'standard' (exponential backoff with jitter) or 'adaptive' "
            "(also rate-limits the client after throttling). Env LAKEKIT_<COMPONENT>_RETRY_MODE."
        ),
    )
    connect_timeout: float = Field(
        default=10.0,
        gt=0,
        description="Seconds to open a connection. Env LAKEKIT_<COMPONENT>_CONNECT_TIMEOUT.",
    )
    read_timeout: float = Field(
        default=60.0,
        gt=0,
        description="Seconds to wait for a response. Env LAKEKIT_<COMPONENT>_READ_TIMEOUT.",
    )
    max_pool_connections: int = Field(
        default=20,
        ge=1,
        le=1000,
        description=(
            "HTTP connections each client keeps (parallel uploads and deletes use several). "
            "Env LAKEKIT_<COMPONENT>_MAX_POOL_CONNECTIONS."
        ),
    )

    @field_validator("endpoint_url")
    @classmethod
    def _check_endpoint(cls, value: str | None) -> str | None:
        if value is None:
            return None
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("must be an http:// or https:// URL with a host")
        if parts.username or parts.password:
            raise ValueError("must not hold credentials; use access_key_id/secret_access_key")
        return value.rstrip("/")

    @model_validator(mode="after")
    def _check_credentials(self) -> Self:
        has_id = self.access_key_id is not None
        has_secret = self.secret_access_key is not None
        if has_id != has_secret:
            raise ValueError(
                "access_key_id and secret_access_key must be set together (or neither, to use "
                "the standard AWS credential chain)"
            )
        if self.session_token is not None and not has_id:
            raise ValueError("session_token needs access_key_id and secret_access_key")
        if self.profile is not None and has_id:
            raise ValueError("set either profile or access_key_id/secret_access_key, not both")
        return self

    @property
    def explicit_credentials(self) -> dict[str, str] | None:
        """The configured keys as boto3 keyword arguments, or None for the standard chain."""
        if self.access_key_id is None or self.secret_access_key is None:
            return None
        creds = {
            "aws_access_key_id": self.access_key_id.get_secret_value(),
            "aws_secret_access_key": self.secret_access_key.get_secret_value(),
        }
        if self.session_token is not None:
            creds["aws_session_token"] = self.session_token.get_secret_value()
        return creds

    def botocore_config(self, **extra: Any) -> Config:
        """The botocore ``Config`` (retries, timeouts, pool size, user agent) for a client."""
        from botocore.config import Config

        return Config(
            retries={"total_max_attempts": self.max_attempts, "mode": self.retry_mode},
            connect_timeout=self.connect_timeout,
            read_timeout=self.read_timeout,
            max_pool_connections=self.max_pool_connections,
            user_agent_extra=USER_AGENT,
            **extra,
        )


S = TypeVar("S", bound=AwsSettings)


def settings_from_arguments(model: type[S], arguments: Mapping[str, Any]) -> S:
    """An adapter's settings from its constructor's keyword ``arguments`` (``url`` included),
    validated exactly as ``lakekit.connect`` validates them, so a bad one raises the same error
    naming the setting, its origin ("argument") and its environment variable.

    Raises:
        ConfigurationError: an unknown or malformed setting.
    """
    comp = ComponentConfig()
    for key, value in arguments.items():
        comp.set(key, value, "argument")
    component = cast("Component", model.component)
    config = LakeConfig(url=comp.url or "", components={component: comp})
    return config.settings(component, model)


def import_boto3(what: str) -> Any:
    """Import boto3, or raise MissingDependencyError with the ``pip install`` command."""
    try:
        import boto3
    except ImportError as exc:
        raise MissingDependencyError(what, "aws", "boto3") from exc
    return boto3


_LOADER_LOCK = threading.Lock()
_LOADER: Any = None


def _botocore_session() -> Any:
    """A fresh botocore session sharing one (thread-safe, read-only) loader of service models:
    building a client then costs milliseconds instead of re-parsing the service's JSON."""
    global _LOADER  # noqa: PLW0603 - one process-wide cache of parsed service models
    import botocore.loaders
    import botocore.session

    with _LOADER_LOCK:
        if _LOADER is None:
            _LOADER = botocore.loaders.create_loader()
        session = botocore.session.get_session()
        session.register_component("data_loader", _LOADER)
    return session


class AwsClients:
    """boto3 clients of one settings object, built on first use and shared by threads.

    boto3 clients are thread-safe; sessions are not, so each is created under a lock. Not
    shared across processes: a child process builds its own from the (picklable) settings.
    """

    def __init__(self, settings: AwsSettings, **service_config: dict[str, Any]) -> None:
        self.settings = settings
        self._service_config = service_config
        self._lock = threading.Lock()
        self._session: boto3.Session | None = None
        self._clients: dict[str, BaseClient] = {}

    def __repr__(self) -> str:
        return f"AwsClients({self.settings!r})"

    @property
    def session(self) -> boto3.Session:
        """The boto3 session: explicit keys, else the profile, else the standard chain."""
        with self._lock:
            return self._get_session()

    def _get_session(self) -> boto3.Session:
        if self._session is None:
            boto3 = import_boto3("the AWS adapters")
            kwargs: dict[str, Any] = self.settings.explicit_credentials or {}
            kwargs["botocore_session"] = _botocore_session()
            if self.settings.profile is not None:
                kwargs["profile_name"] = self.settings.profile
            if self.settings.region is not None:
                kwargs["region_name"] = self.settings.region
            from lakekit.adapters.aws._errors import aws_errors

            with aws_errors("AWS session"):
                self._session = boto3.Session(**kwargs)
        return self._session

    @property
    def region(self) -> str:
        """The region in use: the setting, else the session's, else ``us-east-1``."""
        if self.settings.region is not None:
            return self.settings.region
        from lakekit.adapters.aws._errors import aws_errors

        with aws_errors("AWS region"):
            region = self.session.region_name
        return region if isinstance(region, str) and region else "us-east-1"

    def client(self, service: str) -> Any:
        """The (cached) boto3 client of ``service`` ('s3', 'glue', 'athena', ...).

        Raises:
            MissingDependencyError: boto3 is not installed (``pip install "lakekit[aws]"``).
        """
        from lakekit.adapters.aws._errors import aws_errors

        with self._lock:
            client = self._clients.get(service)
            if client is None:
                with aws_errors(f"AWS {service} client"):
                    session = self._get_session()
                    region = self.settings.region or session.region_name or "us-east-1"
                    config = self.settings.botocore_config(**self._service_config.get(service, {}))
                    client = session.client(
                        service,
                        region_name=region,
                        endpoint_url=self.settings.endpoint_url,
                        config=config,
                    )
                self._clients[service] = client
            return client

    def frozen_credentials(self) -> tuple[str, str, str | None] | None:
        """Current (access key, secret key, token) from the chain, for non-boto3 clients such
        as pyarrow's S3 filesystem; None if the chain finds no credentials."""
        from lakekit.adapters.aws._errors import aws_errors

        with aws_errors("AWS credentials"):
            credentials = self.session.get_credentials()
            if credentials is None:
                return None
            frozen = credentials.get_frozen_credentials()
        return frozen.access_key, frozen.secret_key, frozen.token

    def close(self) -> None:
        """Close the HTTP connection pools of every client built."""
        with self._lock:
            clients, self._clients = self._clients, {}
        for client in clients.values():
            client.close()
