from __future__ import annotations

import pytest

import lakekit
from lakekit import errors


def test_every_error_derives_from_lakekit_error() -> None:
    for name in errors.__all__:
        assert issubclass(getattr(errors, name), errors.LakekitError), name


@pytest.mark.parametrize(
    ("error", "builtin"),
    [
        (errors.NotFoundError, FileNotFoundError),
        (errors.AlreadyExistsError, FileExistsError),
        (errors.ConfigurationError, ValueError),
        (errors.MissingDependencyError, ImportError),
        (errors.InvalidInputError, ValueError),
        (errors.SchemaError, TypeError),
        (errors.NotSupportedError, NotImplementedError),
        (errors.PermissionDeniedError, PermissionError),
        (errors.FunctionTimeoutError, TimeoutError),
    ],
)
def test_errors_with_a_builtin_twin_are_caught_by_it(error: type, builtin: type) -> None:
    assert issubclass(error, builtin)


def test_not_found_keeps_its_message_verbatim() -> None:
    exc = errors.NotFoundError("table 'ns.t' does not exist")
    assert str(exc) == "table 'ns.t' does not exist"
    with pytest.raises(FileNotFoundError, match=r"ns\.t"):
        raise exc


def test_conflicts_share_a_base_so_one_except_catches_any_lost_race() -> None:
    assert issubclass(errors.PreconditionFailedError, errors.ConflictError)
    assert issubclass(errors.CommitConflictError, errors.ConflictError)
    exc = errors.CommitConflictError("moved on", expected=3, actual=4)
    assert (exc.expected, exc.actual) == (3, 4)


def test_not_supported_names_adapter_and_capability() -> None:
    exc = errors.NotSupportedError("LocalObjectStore", "signed_url", "local files have no signing")
    assert exc.adapter == "LocalObjectStore"
    assert exc.capability == "signed_url"
    assert "LocalObjectStore does not support signed_url" in str(exc)


def test_missing_dependency_prints_the_pip_command() -> None:
    exc = errors.MissingDependencyError("the 's3' store adapter", "aws", "s3fs")
    assert 'pip install "lakekit[aws]"' in str(exc)
    assert exc.install_hint == 'pip install "lakekit[aws]"'
    assert exc.name == "s3fs"


def test_schema_error_carries_column_and_types() -> None:
    exc = errors.SchemaError("bad", column="a.b", old_type="int64", new_type="string")
    assert (exc.column, exc.old_type, exc.new_type) == ("a.b", "int64", "string")


def test_errors_are_exported_at_top_level() -> None:
    for name in errors.__all__:
        assert getattr(lakekit, name) is getattr(errors, name)
