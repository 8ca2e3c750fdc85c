"""Hide credentials in URLs before they reach a repr, a log line or an error message."""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

__all__ = ["SECRET_QUERY_KEYS", "redact_url"]

SECRET_QUERY_KEYS = frozenset(
    {
        "password", "pwd", "secret", "secret_key", "token", "access_token", "sig", "signature",
        "sas", "sas_token", "key", "account_key", "accountkey", "credential", "credentials",
        "x-amz-signature", "x-amz-credential", "x-amz-security-token", "x-goog-signature",
        "x-goog-credential", "sharedaccesssignature", "client_secret",
    }
)  # fmt: skip

_MASK = "***"
_CONN_STRING_SECRET = re.compile(r"(?i)((?:AccountKey|SharedAccessSignature|Password)=)[^;]*")


def redact_url(url: str) -> str:
    """Return ``url`` with any password and secret-looking query values replaced by ``***``.

    Also masks ``AccountKey=``/``SharedAccessSignature=``/``Password=`` in Azure-style
    connection strings. Never raises: an unparsable value is returned masked as a whole.
    """
    if "://" not in url:
        return _CONN_STRING_SECRET.sub(rf"\g<1>{_MASK}", url)
    try:
        parts = urlsplit(url)
        netloc, query, changed = parts.netloc, parts.query, False
        if "@" in netloc:
            userinfo, host = netloc.rsplit("@", 1)
            if ":" in userinfo:
                netloc = f"{userinfo.split(':', 1)[0]}:{_MASK}@{host}"
                changed = True
        if query:
            pairs = parse_qsl(query, keep_blank_values=True)
            if any(k.lower() in SECRET_QUERY_KEYS for k, _ in pairs):
                masked = [(k, _MASK if k.lower() in SECRET_QUERY_KEYS else v) for k, v in pairs]
                query = urlencode(masked, safe="*/:")
                changed = True
        if not changed:
            return url
        return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))
    except ValueError:
        return _MASK
