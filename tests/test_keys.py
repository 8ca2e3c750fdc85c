from __future__ import annotations

import pytest

from lakekit._keys import validate_key, validate_prefix
from lakekit.errors import InvalidInputError


@pytest.mark.parametrize(
    "key",
    ["a", "raw/2026/11/26/orders.json", "dt=2026-11-26/part-0.parquet", "ünïcode/ключ", "a b/c"],
)
def test_valid_keys_pass_unchanged(key: str) -> None:
    assert validate_key(key) == key


@pytest.mark.parametrize(
    ("key", "reason"),
    [
        ("", "empty"),
        ("/etc/passwd", "absolute"),
        ("../outside", "'..'"),
        ("a/../../b", "'..'"),
        ("a/./b", "'.'"),
        ("a//b", "empty"),
        ("dir/", "prefix"),
        ("a\\b", "forbidden"),
        ("a\x00b", "forbidden"),
        (".lakekit-tmp/x", "reserved"),
        ("a/.lakekit/x", "reserved"),
        ("x" * 1025, "1024"),
    ],
)
def test_unsafe_keys_are_rejected_with_the_reason(key: str, reason: str) -> None:
    with pytest.raises(InvalidInputError, match=reason):
        validate_key(key)


def test_non_string_key_is_rejected() -> None:
    with pytest.raises(InvalidInputError, match="must be a str"):
        validate_key(b"bytes")  # type: ignore[arg-type]


def test_prefixes_may_be_empty_or_end_with_slash() -> None:
    assert validate_prefix("") == ""
    assert validate_prefix("raw/") == "raw/"
    assert validate_prefix("raw/2026") == "raw/2026"


@pytest.mark.parametrize("prefix", ["../", "/abs/", "a/../", "a//"])
def test_unsafe_prefixes_are_rejected(prefix: str) -> None:
    with pytest.raises(InvalidInputError):
        validate_prefix(prefix)
