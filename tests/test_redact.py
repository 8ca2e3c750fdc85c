from __future__ import annotations

import pytest

from lakekit._redact import redact_url


@pytest.mark.parametrize(
    ("url", "secret"),
    [
        ("postgresql+psycopg://lake:s3cr3t@db:5432/lake", "s3cr3t"),
        ("https://acct.blob.core.windows.net/c?sv=2022&sig=AbC%2Fd&se=2026", "AbC"),
        ("s3://bucket/key?X-Amz-Signature=deadbeef&X-Amz-Credential=AKIA123", "deadbeef"),
        ("s3://bucket/key?X-Amz-Signature=deadbeef&X-Amz-Credential=AKIA123", "AKIA123"),
        ("DefaultEndpointsProtocol=https;AccountName=a;AccountKey=Zm9vYmFy==;", "Zm9vYmFy"),
        ("https://x/?token=tok123", "tok123"),
    ],
)
def test_secrets_never_survive_redaction(url: str, secret: str) -> None:
    redacted = redact_url(url)
    assert secret not in redacted
    assert "***" in redacted


def test_urls_without_secrets_are_unchanged() -> None:
    assert redact_url("local:///tmp/lake") == "local:///tmp/lake"
    assert redact_url("s3://bucket/lake?region=eu-west-1") == "s3://bucket/lake?region=eu-west-1"


def test_user_name_is_kept_for_diagnosis() -> None:
    assert redact_url("postgresql://alice:pw@h/db") == "postgresql://alice:***@h/db"
