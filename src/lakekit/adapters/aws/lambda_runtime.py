"""The Lambda function runtime: ``@lake.functions.handler`` functions deployed to AWS Lambda.

``lakekit.connect("s3://bucket/lake", functions={"url": "lambda", "role_arn": "arn:..."})`` (or
``LAKEKIT_FUNCTIONS=lambda`` + ``LAKEKIT_FUNCTIONS_ROLE_ARN``) makes ``lake.functions`` deploy
to Lambda. How the FunctionRuntime interface maps:

* ``register(name, handler, options)`` **deploys**: it packages the handler's module with
  lakekit (:mod:`lakekit.adapters.aws.lambda_package`, size report in
  ``last_package``), then creates the function ``<function_prefix><name>`` or updates its code
  and configuration (skipping the code upload when Lambda already has the same bytes), and
  waits until Lambda reports the update done (``LastUpdateStatus``). The Lambda handler is the
  shim :func:`lakekit.adapters.aws.lambda_shim.handler`; ``LAKEKIT_HANDLER`` names the user's
  handler and ``LAKEKIT_URL`` the lake. ``options.timeout`` becomes the function's timeout
  (1-900 s, rounded up), ``options.retries`` the asynchronous retry count (Lambda allows 0-2),
  a non-default ``options.concurrency`` its reserved concurrency.
* ``invoke`` is a synchronous (RequestResponse) invocation: the event travels as JSON (see
  :mod:`lakekit.adapters.aws._lambda_events`), the handler's result comes back decoded. A
  function error (the ``X-Amz-Function-Error`` header) raises FunctionError with the remote
  error type and message (FunctionTimeoutError for Lambda's timeout); it is retried
  ``options.retries`` times with backoff first, unless the handler raised InvalidInputError.
* ``invoke_async`` is an asynchronous (Event) invocation: Lambda queues the event, runs it,
  retries it and sends it to the on-failure destination. The returned future resolves when
  Lambda *accepted* the event (to the request id), not when the handler finished: its result
  stays on Lambda. At-least-once, as everywhere.
* ``dead_letters`` reads the ``dead_letter_queue`` (an SQS queue set as the functions'
  on-failure destination for asynchronous invocations) without consuming it.
* ``deploy_triggers`` wires the trigger decorators' bindings (``lake.functions.triggers()``):
  S3 notifications, Kinesis event source mappings and EventBridge schedules (see
  :mod:`lakekit.adapters.aws._lambda_triggers`).
"""

from __future__ import annotations

import hashlib
import json
import math
import random
import threading
import time
from collections.abc import Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, ClassVar, Self

from pydantic import Field, field_validator

from lakekit.adapters.aws._client import AwsClients, AwsSettings, settings_from_arguments
from lakekit.adapters.aws._errors import aws_errors, error_code, is_client_error, scrub
from lakekit.adapters.aws._lambda_events import encode_event
from lakekit.adapters.aws._lambda_triggers import TriggerWiring, wire_triggers
from lakekit.adapters.aws.lambda_package import (
    HEAVY,
    RUNTIME_PROVIDED,
    LambdaPackage,
    build_package,
)
from lakekit.capabilities import Capability
from lakekit.config import AdapterSettings
from lakekit.errors import (
    ConfigurationError,
    FunctionError,
    FunctionTimeoutError,
    InvalidInputError,
    LakekitError,
    NotFoundError,
    TransientError,
)
from lakekit.events import Event
from lakekit.interfaces.function_runtime import (
    DeadLetter,
    FunctionOptions,
    FunctionRuntimeAdapter,
    Handler,
)

if TYPE_CHECKING:
    from lakekit.lake import Lake
    from lakekit.triggers.model import TriggerBinding

__all__ = ["AsyncInvocation", "LambdaFunctionRuntime", "LambdaFunctionRuntimeSettings"]

SHIM = "lakekit.adapters.aws.lambda_shim.handler"
_MAX_ASYNC_RETRIES = 2
_DEFAULT_CONCURRENCY = FunctionOptions().concurrency
_TIMEOUT_TYPES = frozenset({"Sandbox.Timedout", "FunctionTimeoutError"})


class LambdaFunctionRuntimeSettings(AwsSettings):
    """Settings of :class:`LambdaFunctionRuntime` (component ``functions``,
    env ``LAKEKIT_FUNCTIONS_*``)."""

    component: ClassVar[str] = "functions"

    url: str = Field(default="lambda://", description="'lambda' or 'lambda://'.")
    role_arn: str | None = Field(
        default=None,
        pattern=r"^arn:aws[a-z-]*:iam::\d{12}:role/.+$",
        description=(
            "IAM role the functions run as (needed to create functions). "
            "Env LAKEKIT_FUNCTIONS_ROLE_ARN."
        ),
    )
    function_prefix: str = Field(
        default="lakekit-",
        pattern=r"^[a-zA-Z0-9_-]{0,32}$",
        description="Prepended to function names on Lambda. Env LAKEKIT_FUNCTIONS_FUNCTION_PREFIX.",
    )
    python_runtime: str = Field(
        default="python3.11",
        pattern=r"^python3\.\d+$",
        description="Lambda runtime; match the Python the package is built with. "
        "Env LAKEKIT_FUNCTIONS_PYTHON_RUNTIME.",
    )
    architecture: str = Field(
        default="x86_64",
        pattern=r"^(x86_64|arm64)$",
        description="x86_64 or arm64; match the machine compiled dependencies come from. "
        "Env LAKEKIT_FUNCTIONS_ARCHITECTURE.",
    )
    memory_mb: int = Field(
        default=512, ge=128, le=10240, description="Memory. Env LAKEKIT_FUNCTIONS_MEMORY_MB."
    )
    include: list[str] = Field(
        default_factory=list,
        description=(
            "Extra import names to package, e.g. ['pyarrow']. Env LAKEKIT_FUNCTIONS_INCLUDE."
        ),
    )
    exclude: list[str] = Field(
        default_factory=lambda: sorted(RUNTIME_PROVIDED | HEAVY),
        description=(
            "Import names never packaged (default: what the Lambda runtime provides, and "
            "pyarrow, duckdb, pandas, numpy, polars, sqlalchemy: give them as layers). "
            "Env LAKEKIT_FUNCTIONS_EXCLUDE."
        ),
    )
    layers: list[str] = Field(
        default_factory=list,
        description="Layer version ARNs for the functions. Env LAKEKIT_FUNCTIONS_LAYERS.",
    )
    dead_letter_queue: str | None = Field(
        default=None,
        pattern=r"^arn:aws[a-z-]*:sqs:[a-z0-9-]+:\d{12}:.+$",
        description=(
            "ARN of the SQS queue asynchronous invocations that failed for good go to "
            "(on-failure destination); dead_letters() reads it. "
            "Env LAKEKIT_FUNCTIONS_DEAD_LETTER_QUEUE."
        ),
    )
    lake_url: str | None = Field(
        default=None,
        description="LAKEKIT_URL given to the functions (default: this lake's URL). "
        "Env LAKEKIT_FUNCTIONS_LAKE_URL.",
    )
    environment: dict[str, str] = Field(
        default_factory=dict,
        description="More environment variables for the functions (no secrets: use a secrets "
        "manager). Env LAKEKIT_FUNCTIONS_ENVIRONMENT as JSON.",
    )
    code_location: str | None = Field(
        default=None,
        description=(
            "s3://bucket/prefix/ where packages over 50 MB are uploaded (default: the lake's "
            "'.lakekit/lambda/' area). Env LAKEKIT_FUNCTIONS_CODE_LOCATION."
        ),
    )
    deploy_timeout: float = Field(
        default=300.0, gt=0, description="Seconds to wait for Lambda to finish an update."
    )

    @field_validator("url")
    @classmethod
    def _check_url(cls, value: str) -> str:
        if value.rstrip("/") not in ("lambda", "lambda:"):
            raise ValueError("must be 'lambda' or 'lambda://' (settings go in other fields)")
        return value


@dataclass(frozen=True, slots=True)
class AsyncInvocation:
    """Lambda's receipt for an asynchronous invocation: the event is queued."""

    function_name: str
    request_id: str
    status_code: int


class LambdaFunctionRuntime(FunctionRuntimeAdapter):
    """Functions deployed to AWS Lambda (see the module docstring for the mapping).

    Thread-safe. Cheap to build (no network until used).

    Raises:
        ConfigurationError: a malformed setting.
    """

    capabilities: ClassVar[frozenset[Capability]] = frozenset(
        {
            Capability.ASYNC_INVOKE,
            Capability.RETRIES,
            Capability.DEAD_LETTER,
            Capability.TIMEOUT,
            Capability.CONCURRENCY_LIMIT,
        }
    )
    settings_model: ClassVar[type[AdapterSettings]] = LambdaFunctionRuntimeSettings

    def __init__(self, **settings: Any) -> None:
        arguments = {"url": "lambda://", **settings}
        self._init(settings_from_arguments(LambdaFunctionRuntimeSettings, arguments), None)

    def _init(self, settings: LambdaFunctionRuntimeSettings, lake: Lake | None) -> None:
        self.settings = settings
        self.lake = lake
        self._clients = AwsClients(settings)
        self._lock = threading.Lock()
        self._functions: dict[str, FunctionOptions] = {}
        self.last_package: LambdaPackage | None = None
        """The package of the last deployment (``.report`` has the sizes)."""

    @classmethod
    def from_settings(cls, settings: AdapterSettings, lake: Lake | None = None) -> Self:
        if not isinstance(settings, LambdaFunctionRuntimeSettings):
            raise ConfigurationError(
                f"LambdaFunctionRuntime needs LambdaFunctionRuntimeSettings, got "
                f"{type(settings).__name__}"
            )
        runtime = cls.__new__(cls)
        runtime._init(settings, lake)
        return runtime

    def __repr__(self) -> str:
        return f"LambdaFunctionRuntime(prefix={self.settings.function_prefix!r})"

    @property
    def client(self) -> Any:
        """The boto3 Lambda client."""
        return self._clients.client("lambda")

    def function_name(self, name: str) -> str:
        """The Lambda function name of the lakekit function ``name``."""
        return f"{self.settings.function_prefix}{name}"

    # -- FunctionRuntimeAdapter ------------------------------------------------------------------
    def register(self, name: str, handler: Handler, options: FunctionOptions) -> None:
        """Package ``handler``'s module and deploy it as ``<function_prefix><name>``.

        Idempotent: deploying the same code and options again changes nothing on Lambda.

        Raises:
            InvalidInputError: the handler is not deployable (defined in ``__main__``, a
                lambda, a nested function), more than 2 retries, a timeout over 900 s, or the
                package exceeds Lambda's 250 MB limit (the message has the size report).
            ConfigurationError: creating a function without ``role_arn``.
            PermissionDeniedError, TransientError: as Lambda answers.
        """
        reference = _reference(handler)
        if options.retries > _MAX_ASYNC_RETRIES:
            raise InvalidInputError(
                f"Lambda retries asynchronous invocations at most {_MAX_ASYNC_RETRIES} times; "
                f"got retries={options.retries}"
            )
        if options.timeout > 900:
            raise InvalidInputError(f"Lambda's longest timeout is 900 s, got {options.timeout}")
        package = build_package(
            reference, include=self.settings.include, exclude=self.settings.exclude
        )
        if not package.report.fits_lambda:
            raise InvalidInputError(
                f"the package of {name!r} is too large for Lambda:\n{package.report}"
            )
        self.last_package = package
        self._deploy(name, package, options)
        with self._lock:
            self._functions[name] = options

    def unregister(self, name: str) -> None:
        """Delete the Lambda function.

        Raises:
            NotFoundError: no such function.
        """
        with aws_errors(f"deleting function {name!r}"):
            self.client.delete_function(FunctionName=self.function_name(name))
        with self._lock:
            self._functions.pop(name, None)

    def functions(self) -> dict[str, FunctionOptions]:
        """The functions this runtime deployed (in this process), with their options."""
        with self._lock:
            return dict(self._functions)

    def invoke(self, name: str, event: Event) -> Any:
        """Run the function synchronously on Lambda and return its (JSON) result.

        Raises:
            NotFoundError: no such function.
            FunctionError: the handler failed on its last attempt (remote type and message).
            FunctionTimeoutError: Lambda stopped it at its timeout.
        """
        payload = json.dumps(encode_event(event)).encode()
        options = self._functions.get(name, FunctionOptions(retries=0))
        attempt = 0
        while True:
            attempt += 1
            try:
                return self._invoke_once(name, payload)
            except FunctionError as exc:
                retryable = not isinstance(exc, FunctionTimeoutError) and (
                    getattr(exc, "remote_type", "") != "InvalidInputError"
                )
                if not retryable or attempt > options.retries:
                    raise
            delay = min(options.max_backoff, options.backoff * 2 ** (attempt - 1))
            time.sleep(delay * random.uniform(0.5, 1.0))  # noqa: S311 - jitter

    def _invoke_once(self, name: str, payload: bytes) -> Any:
        with aws_errors(f"invoking function {name!r}"):
            response = self.client.invoke(
                FunctionName=self.function_name(name),
                InvocationType="RequestResponse",
                Payload=payload,
            )
        body = response["Payload"].read()
        value = json.loads(body) if body else None
        if response.get("FunctionError"):
            raise _function_error(name, value)
        return value

    def invoke_async(self, name: str, event: Event) -> Future[Any]:
        """Queue the event on Lambda (Event invocation); the future resolves to an
        :class:`AsyncInvocation` once Lambda accepted it, or to the error if it did not."""
        future: Future[Any] = Future()
        try:
            payload = json.dumps(encode_event(event)).encode()
            with aws_errors(f"invoking function {name!r} asynchronously"):
                response = self.client.invoke(
                    FunctionName=self.function_name(name), InvocationType="Event", Payload=payload
                )
            meta = response.get("ResponseMetadata", {})
            future.set_result(
                AsyncInvocation(
                    function_name=name,
                    request_id=str(meta.get("RequestId", "")),
                    status_code=int(response.get("StatusCode", 0)),
                )
            )
        except LakekitError as exc:
            if isinstance(exc, NotFoundError):
                raise
            future.set_exception(exc)
        return future

    def dead_letters(self, name: str | None = None) -> list[DeadLetter]:
        """Failed asynchronous invocations in ``dead_letter_queue``, oldest first, without
        consuming them (the queue keeps them for its retention period).

        Best effort: SQS hands out a sample of messages per call; this reads until a round
        brings no new message.

        Raises:
            ConfigurationError: no ``dead_letter_queue`` is configured.
        """
        queue = self.settings.dead_letter_queue
        if queue is None:
            raise ConfigurationError(
                "no dead-letter queue: set LAKEKIT_FUNCTIONS_DEAD_LETTER_QUEUE to an SQS queue "
                "ARN (the functions' on-failure destination)"
            )
        sqs = self._clients.client("sqs")
        *_, account, queue_name = queue.split(":")
        with aws_errors(f"reading the dead-letter queue {queue_name!r}"):
            url = sqs.get_queue_url(QueueName=queue_name, QueueOwnerAWSAccountId=account)[
                "QueueUrl"
            ]
            seen: dict[str, DeadLetter] = {}
            for _ in range(50):
                messages = sqs.receive_message(
                    QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=0, WaitTimeSeconds=0
                ).get("Messages", [])
                fresh = [m for m in messages if m["MessageId"] not in seen]
                if not fresh:
                    break
                for message in fresh:
                    letter = _dead_letter(message, self.settings.function_prefix)
                    if letter is not None:
                        seen[message["MessageId"]] = letter
        letters = [d for d in seen.values() if name is None or d.function_name == name]
        return sorted(letters, key=lambda d: d.failed_at)

    def close(self, wait: bool = True) -> None:
        self._clients.close()

    # -- triggers --------------------------------------------------------------------------------
    def deploy_triggers(self, bindings: Sequence[TriggerBinding]) -> list[TriggerWiring]:
        """Wire ``bindings`` (``lake.functions.triggers()``) to the deployed functions.

        Raises:
            NotSupportedError: an HTTP trigger, or object triggers on a lake not in S3.
            InvalidInputError: a schedule EventBridge cannot run.
        """
        bucket, prefix = self._lake_root()
        stream_prefix = self._stream_prefix()

        def stream_arn(stream: str) -> str:
            with aws_errors(f"finding Kinesis stream {stream!r}"):
                summary = self._clients.client("kinesis").describe_stream_summary(
                    StreamName=stream_prefix + stream
                )
            return str(summary["StreamDescriptionSummary"]["StreamARN"])

        return wire_triggers(
            bindings,
            client=self._clients.client,
            function_arn=self._function_arn,
            bucket=bucket,
            prefix=prefix,
            stream_arn=stream_arn,
            rule_prefix=self.settings.function_prefix,
        )

    # -- internals -------------------------------------------------------------------------------
    def _function_arn(self, name: str) -> str:
        with aws_errors(f"finding function {name!r}"):
            config = self.client.get_function_configuration(FunctionName=self.function_name(name))
        return str(config["FunctionArn"])

    def _lake_root(self) -> tuple[str | None, str]:
        from lakekit.registry import scheme_of

        if self.lake is None:
            return None, ""
        url = self.lake.config.component("store").url or self.lake.config.url
        if scheme_of(url) not in ("s3", "s3a"):
            return None, ""
        bucket, _, prefix = url.split("://", 1)[1].partition("/")
        prefix = prefix.strip("/")
        return bucket, f"{prefix}/" if prefix else ""

    def _stream_prefix(self) -> str:
        if self.lake is None:
            return ""
        value = self.lake.config.component("stream").values.get("name_prefix", "")
        return str(value or "")

    def _environment(self, name: str, handler: str) -> dict[str, str]:
        env = dict(self.settings.environment)
        env["LAKEKIT_HANDLER"] = handler
        env["LAKEKIT_FUNCTION"] = name
        lake_url = self.settings.lake_url or (self.lake.config.url if self.lake else None)
        if lake_url:
            env["LAKEKIT_URL"] = lake_url
        prefix = self._stream_prefix()
        if prefix:
            env["LAKEKIT_STREAM_NAME_PREFIX"] = prefix
        return env

    def _deploy(self, name: str, package: LambdaPackage, options: FunctionOptions) -> None:
        function = self.function_name(name)
        config: dict[str, Any] = {
            "Role": self.settings.role_arn,
            "Handler": SHIM,
            "Runtime": self.settings.python_runtime,
            "Timeout": max(1, min(900, math.ceil(options.timeout))),
            "MemorySize": self.settings.memory_mb,
            "Environment": {"Variables": self._environment(name, package.handler)},
            "Layers": list(self.settings.layers),
        }
        code = self._code(name, package)
        with aws_errors(f"deploying function {name!r}"):
            try:
                current = self.client.get_function_configuration(FunctionName=function)
            except Exception as exc:
                if not (is_client_error(exc) and error_code(exc) == "ResourceNotFoundException"):
                    raise
                current = None
            if current is None:
                if self.settings.role_arn is None:
                    raise ConfigurationError(
                        f"creating function {function!r} needs an IAM role: set "
                        "LAKEKIT_FUNCTIONS_ROLE_ARN (a role Lambda can assume)"
                    )
                self.client.create_function(
                    FunctionName=function,
                    Code=code,
                    Architectures=[self.settings.architecture],
                    Description=f"lakekit function {name} ({package.handler})",
                    **config,
                )
                self._wait(function)
            else:
                if current.get("CodeSha256") != package.code_sha256:
                    self.client.update_function_code(FunctionName=function, **code)
                    self._wait(function)
                if self.settings.role_arn is None:
                    config.pop("Role")
                self.client.update_function_configuration(FunctionName=function, **config)
                self._wait(function)
            invoke_config: dict[str, Any] = {"MaximumRetryAttempts": options.retries}
            if self.settings.dead_letter_queue is not None:
                invoke_config["DestinationConfig"] = {
                    "OnFailure": {"Destination": self.settings.dead_letter_queue}
                }
            self.client.put_function_event_invoke_config(FunctionName=function, **invoke_config)
            if options.concurrency != _DEFAULT_CONCURRENCY:
                self.client.put_function_concurrency(
                    FunctionName=function, ReservedConcurrentExecutions=options.concurrency
                )
            else:
                self.client.delete_function_concurrency(FunctionName=function)

    def _code(self, name: str, package: LambdaPackage) -> dict[str, Any]:
        if package.report.fits_direct_upload:
            return {"ZipFile": package.data}
        location = self.settings.code_location
        if location is None:
            bucket, prefix = self._lake_root()
            if bucket is None:
                raise ConfigurationError(
                    f"the package of {name!r} is over 50 MB: set LAKEKIT_FUNCTIONS_CODE_LOCATION "
                    "to an s3:// prefix to upload it through S3"
                )
            location = f"s3://{bucket}/{prefix}.lakekit/lambda/"
        bucket, _, prefix = location.removeprefix("s3://").partition("/")
        digest = hashlib.sha256(package.data).hexdigest()[:16]
        key = f"{prefix.rstrip('/') + '/' if prefix else ''}{name}-{digest}.zip"
        with aws_errors(f"uploading the package of {name!r}"):
            self._clients.client("s3").put_object(Bucket=bucket, Key=key, Body=package.data)
        return {"S3Bucket": bucket, "S3Key": key}

    def _wait(self, function: str) -> None:
        """Wait until Lambda finished creating or updating the function."""
        deadline = time.monotonic() + self.settings.deploy_timeout
        delay = 0.2
        while True:
            config = self.client.get_function_configuration(FunctionName=function)
            state = config.get("State", "Active")
            update = config.get("LastUpdateStatus", "Successful")
            if state == "Failed" or update == "Failed":
                reason = config.get("LastUpdateStatusReason") or config.get("StateReason") or ""
                raise LakekitError(f"Lambda could not deploy {function!r}: {scrub(str(reason))}")
            if state != "Pending" and update != "InProgress":
                return
            if time.monotonic() > deadline:
                raise TransientError(
                    f"Lambda is still updating {function!r} after {self.settings.deploy_timeout} s"
                )
            time.sleep(delay)
            delay = min(delay * 2, 5.0)


def _reference(handler: Handler) -> str:
    """``module:qualname`` of a deployable handler.

    Raises:
        InvalidInputError: the handler cannot be imported by name on Lambda.
    """
    module = getattr(handler, "__module__", None)
    qualname = getattr(handler, "__qualname__", None)
    if not module or not qualname or "<" in qualname:
        raise InvalidInputError(
            f"cannot deploy {handler!r}: Lambda imports handlers by name, so use a function "
            "defined at the top level of a module (not a lambda or a nested function)"
        )
    if module == "__main__":
        raise InvalidInputError(
            f"cannot deploy {qualname!r} from __main__: move it into a module and import it"
        )
    return f"{module}:{qualname}"


class _RemoteFunctionError(FunctionError):
    def __init__(self, message: str, remote_type: str) -> None:
        super().__init__(message)
        self.remote_type = remote_type


class _RemoteTimeoutError(FunctionTimeoutError):
    remote_type = "Sandbox.Timedout"


def _function_error(name: str, value: Any) -> FunctionError:
    """The error for a Lambda function error payload (``errorType``, ``errorMessage``)."""
    payload = value if isinstance(value, dict) else {"errorMessage": str(value)}
    kind = str(payload.get("errorType") or "Unhandled")
    message = scrub(str(payload.get("errorMessage") or "no message"))
    text = f"function {name!r} failed on Lambda: {kind}: {message}"
    if kind in _TIMEOUT_TYPES:
        return _RemoteTimeoutError(text)
    return _RemoteFunctionError(text, kind)


def _dead_letter(message: dict[str, Any], prefix: str) -> DeadLetter | None:
    """A Lambda on-failure destination record as a DeadLetter (None for anything else)."""
    try:
        record = json.loads(message["Body"])
        context = record["requestContext"]
        function = str(context["functionArn"]).split(":")[6]
    except (KeyError, ValueError, IndexError, TypeError):
        return None
    response = record.get("responsePayload")
    error = response if isinstance(response, dict) else {}
    payload = record.get("requestPayload")
    event = payload.get("lakekit_event", payload) if isinstance(payload, dict) else payload
    try:
        failed_at = datetime.fromisoformat(str(record.get("timestamp", "")).replace("Z", "+00:00"))
    except ValueError:
        failed_at = datetime.now(UTC)
    return DeadLetter(
        function_name=function.removeprefix(prefix),
        event=event,
        error_type=str(error.get("errorType") or context.get("condition") or "Unknown"),
        error=str(
            error.get("errorMessage") or record.get("responseContext", {}).get("functionError", "")
        ),
        attempts=int(context.get("approximateInvokeCount") or 1),
        failed_at=failed_at if failed_at.tzinfo else failed_at.replace(tzinfo=UTC),
        invocation_id=str(context.get("requestId", "")),
        extra={"condition": context.get("condition")},
        event_type=str(event.get("$event", "")) if isinstance(event, dict) else "",
    )
