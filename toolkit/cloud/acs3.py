"""Alibaba Cloud V3 request signatures (``ACS3-HMAC-SHA256``), standard library only.

The algorithm, from https://www.alibabacloud.com/help/en/sdk/product-overview/v3-request-structure-and-signature:

    CanonicalRequest = Method \\n CanonicalURI \\n CanonicalQueryString \\n
                       CanonicalHeaders \\n SignedHeaders \\n HashedRequestPayload
    StringToSign     = "ACS3-HMAC-SHA256" \\n hex(sha256(CanonicalRequest))
    Signature        = hex(hmac_sha256(AccessKeySecret, StringToSign))
    Authorization    = ACS3-HMAC-SHA256 Credential=<AccessKeyId>,SignedHeaders=<names>,
                       Signature=<Signature>

One signer serves both API styles: RPC (parameters in the query, path ``/``) and ROA (a
resource path and usually a JSON body). ``sign_request`` returns every header to send;
``canonical_uri`` and ``canonical_query_string`` give the path and query to put on the wire,
so the server sees exactly what was signed.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Protocol
from urllib.parse import quote

ALGORITHM = "ACS3-HMAC-SHA256"
EMPTY_BODY_SHA256 = hashlib.sha256(b"").hexdigest()
DATE_FORMAT = "%Y-%m-%dT%H:%M:%SZ"
# Besides every x-acs-* header, these are signed when present (the documented minimum).
SIGNED_PLAIN_HEADERS = ("host", "content-type")

QueryValue = str | int | float | bool | None


class SigningCredentials(Protocol):
    """An access key, and the STS security token that goes with a temporary one."""

    access_key_id: str
    access_key_secret: str
    security_token: str | None


def percent_encode(value: str) -> str:
    """RFC 3986 encoding: only ``A-Z a-z 0-9 - _ . ~`` stay as they are, UTF-8 bytes become
    upper-case ``%XX`` (so a space is ``%20``, ``*`` is ``%2A``, ``~`` stays ``~``)."""
    return quote(value, safe="~")


def canonical_uri(path: str) -> str:
    """The resource path with each ``/``-separated segment percent-encoded (``/`` for RPC).

    ``path`` is the decoded path: ``/repos/my ns`` becomes ``/repos/my%20ns``.
    """
    if not path:
        return "/"
    if not path.startswith("/"):
        path = "/" + path
    return "/".join(percent_encode(segment) for segment in path.split("/"))


def _query_text(value: QueryValue) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def canonical_query_string(query: Mapping[str, QueryValue] | None) -> str:
    """Parameters sorted by encoded name, name and value encoded, ``k=`` for an empty value;
    parameters whose value is None are left out (as the SDKs do)."""
    pairs = sorted(
        (percent_encode(name), percent_encode(_query_text(value)))
        for name, value in (query or {}).items()
        if value is not None
    )
    return "&".join(f"{name}={value}" for name, value in pairs)


def signed_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """The headers that take part in the signature: ``host``, ``content-type`` and every
    ``x-acs-*``; names lower-cased, values trimmed, sorted by name."""
    chosen: dict[str, str] = {}
    for name, value in headers.items():
        lowered = name.lower()
        if lowered in SIGNED_PLAIN_HEADERS or lowered.startswith("x-acs-"):
            chosen[lowered] = str(value).strip()
    return dict(sorted(chosen.items()))


def canonical_request(
    method: str,
    path: str,
    query: Mapping[str, QueryValue] | None,
    headers: Mapping[str, str],
    payload_sha256: str,
) -> str:
    """The six parts of the canonical request joined by newlines (see the module docstring)."""
    signed = signed_headers(headers)
    canonical_headers = "".join(f"{name}:{value}\n" for name, value in signed.items())
    return "\n".join(
        (
            method.upper(),
            canonical_uri(path),
            canonical_query_string(query),
            canonical_headers,
            ";".join(signed),
            payload_sha256,
        )
    )


def string_to_sign(canonical: str) -> str:
    return f"{ALGORITHM}\n{hashlib.sha256(canonical.encode('utf-8')).hexdigest()}"


def signature(access_key_secret: str, to_sign: str) -> str:
    return hmac.new(
        access_key_secret.encode("utf-8"), to_sign.encode("utf-8"), hashlib.sha256
    ).hexdigest()


def format_date(moment: datetime) -> str:
    """``x-acs-date``: UTC, ISO 8601, whole seconds (naive datetimes are taken as UTC)."""
    if moment.tzinfo is not None:
        moment = moment.astimezone(timezone.utc)
    return moment.strftime(DATE_FORMAT)


def new_nonce() -> str:
    return secrets.token_hex(16)


def sign_request(
    method: str,
    host: str,
    path: str = "/",
    query: Mapping[str, QueryValue] | None = None,
    headers: Mapping[str, str] | None = None,
    body: bytes = b"",
    *,
    credentials: SigningCredentials,
    date: datetime | None = None,
    nonce: str | None = None,
) -> dict[str, str]:
    """Every header to send with the request, ``Authorization`` included.

    ``headers`` carries the operation's own headers (``x-acs-action``, ``x-acs-version``,
    ``content-type`` for a body); ``host``, ``x-acs-date``, ``x-acs-signature-nonce``,
    ``x-acs-content-sha256`` and, with STS credentials, ``x-acs-security-token`` and
    ``x-acs-accesskey-id`` are added. ``date`` and ``nonce`` default to now and a random value;
    tests pass fixed ones. Send the path as ``canonical_uri(path)`` and the query as
    ``canonical_query_string(query)``.
    """
    payload_sha256 = hashlib.sha256(body).hexdigest()
    out: dict[str, str] = {name.lower(): str(value) for name, value in (headers or {}).items()}
    out.pop("authorization", None)
    out["host"] = host
    out["x-acs-date"] = format_date(date or datetime.now(timezone.utc))
    out["x-acs-signature-nonce"] = nonce or new_nonce()
    out["x-acs-content-sha256"] = payload_sha256
    if credentials.security_token:
        out["x-acs-security-token"] = credentials.security_token
        out["x-acs-accesskey-id"] = credentials.access_key_id
    canonical = canonical_request(method, path, query, out, payload_sha256)
    names = ";".join(signed_headers(out))
    out["authorization"] = (
        f"{ALGORITHM} Credential={credentials.access_key_id},SignedHeaders={names},"
        f"Signature={signature(credentials.access_key_secret, string_to_sign(canonical))}"
    )
    return out
