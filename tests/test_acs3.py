"""The ACS3-HMAC-SHA256 (V3) signer: Alibaba's published vector, RFC 3986 encoding, STS, and
agreement with Alibaba's own signer (alibabacloud_tea_openapi) for RPC and ROA requests."""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from types import SimpleNamespace
from typing import Any

import pytest

from toolkit.cloud import acs3

# The official example (V3 signature doc and the Function Compute signature page).
VECTOR_HEADERS = {
    "host": "ecs.cn-shanghai.aliyuncs.com",
    "x-acs-action": "RunInstances",
    "x-acs-version": "2014-05-26",
    "x-acs-date": "2023-10-26T10:22:32Z",
    "x-acs-signature-nonce": "3156853299f313e23d1673dc12e1703d",
    "x-acs-content-sha256": acs3.EMPTY_BODY_SHA256,
}
VECTOR_QUERY = {
    "ImageId": "win2019_1809_x64_dtc_zh-cn_40G_alibase_20230811.vhd",
    "RegionId": "cn-shanghai",
}
VECTOR_CANONICAL_SHA256 = "7ea06492da5221eba5297e897ce16e55f964061054b7695beedaac1145b1e259"
VECTOR_SIGNATURE = "06563a9e1b43f5dfe96b81484da74bceab24a1d853912eee15083a6f0f3283c0"
VECTOR_SIGNED_HEADERS = (
    "host;x-acs-action;x-acs-content-sha256;x-acs-date;x-acs-signature-nonce;x-acs-version"
)


@dataclass
class Key:
    access_key_id: str = "YourAccessKeyId"
    access_key_secret: str = "YourAccessKeySecret"
    security_token: str | None = None


def sdk_utils() -> Any:
    """alibabacloud_tea_openapi.utils, the official signer (a test dependency)."""
    try:
        from alibabacloud_tea_openapi import utils
    except ImportError:
        reason = "alibabacloud_tea_openapi is not installed: pip install -e '.[test]'"
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(reason)
        pytest.skip(reason)
    return utils


def sdk_authorization(
    method: str, path: str, query: dict[str, str], headers: dict[str, str], body: bytes, key: Key
) -> str:
    """The Authorization header Alibaba's SDK computes for the same request.

    The SDK's generated clients encode each path parameter with ``get_encode_param`` and sign
    the path as built; it signs every header it is given.
    """
    utils = sdk_utils()
    segments = path.split("/")
    pathname = "/".join(utils.Utils.get_encode_param(s) for s in segments)
    request = SimpleNamespace(method=method, pathname=pathname, query=query, headers=headers)
    payload = hashlib.sha256(body).hexdigest()
    return utils.Utils.get_authorization(
        request, acs3.ALGORITHM, payload, key.access_key_id, key.access_key_secret
    )


# --- the published vector -------------------------------------------------------------------


def test_published_vector_canonical_request_hash() -> None:
    canonical = acs3.canonical_request(
        "POST", "/", VECTOR_QUERY, VECTOR_HEADERS, acs3.EMPTY_BODY_SHA256
    )

    assert hashlib.sha256(canonical.encode()).hexdigest() == VECTOR_CANONICAL_SHA256


def test_published_vector_signature() -> None:
    canonical = acs3.canonical_request(
        "POST", "/", VECTOR_QUERY, VECTOR_HEADERS, acs3.EMPTY_BODY_SHA256
    )

    assert acs3.signature("YourAccessKeySecret", acs3.string_to_sign(canonical)) == (
        VECTOR_SIGNATURE
    )


def test_sign_request_reproduces_the_published_authorization_header() -> None:
    headers = acs3.sign_request(
        "POST",
        "ecs.cn-shanghai.aliyuncs.com",
        "/",
        VECTOR_QUERY,
        {"x-acs-action": "RunInstances", "x-acs-version": "2014-05-26"},
        b"",
        credentials=Key(),
        date=datetime(2023, 10, 26, 10, 22, 32, tzinfo=timezone.utc),
        nonce="3156853299f313e23d1673dc12e1703d",
    )

    assert headers["authorization"] == (
        f"ACS3-HMAC-SHA256 Credential=YourAccessKeyId,SignedHeaders={VECTOR_SIGNED_HEADERS},"
        f"Signature={VECTOR_SIGNATURE}"
    )
    assert headers["x-acs-content-sha256"] == acs3.EMPTY_BODY_SHA256
    assert headers["host"] == "ecs.cn-shanghai.aliyuncs.com"


def test_canonical_request_has_six_parts_with_a_blank_line_after_the_headers() -> None:
    canonical = acs3.canonical_request(
        "post", "/", VECTOR_QUERY, VECTOR_HEADERS, acs3.EMPTY_BODY_SHA256
    )

    lines = canonical.split("\n")
    assert lines[0] == "POST"
    assert lines[1] == "/"
    assert lines[2] == (
        "ImageId=win2019_1809_x64_dtc_zh-cn_40G_alibase_20230811.vhd&RegionId=cn-shanghai"
    )
    assert lines[3:9] == [f"{k}:{v}" for k, v in sorted(VECTOR_HEADERS.items())]
    assert lines[9] == ""
    assert lines[10:] == [VECTOR_SIGNED_HEADERS, acs3.EMPTY_BODY_SHA256]


# --- RFC 3986 encoding ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "encoded"),
    [
        ("AZaz09-_.~", "AZaz09-_.~"),  # unreserved characters stay as they are
        ("a b", "a%20b"),  # space is %20, never +
        ("*", "%2A"),  # * is encoded (form encoders leave it)
        ("~", "~"),  # ~ is not encoded (older encoders give %7E)
        ("+", "%2B"),
        ("a/b", "a%2Fb"),  # in a value or a path segment, / is data
        ("k=v&x", "k%3Dv%26x"),
        ("!'()", "%21%27%28%29"),
        ("é", "%C3%A9"),  # UTF-8 bytes, upper-case hex
        ("杭州", "%E6%9D%AD%E5%B7%9E"),
        ("%41", "%2541"),  # an existing escape is data too
        ("", ""),
    ],
)
def test_percent_encode_follows_rfc_3986(raw: str, encoded: str) -> None:
    assert acs3.percent_encode(raw) == encoded


def test_query_string_is_sorted_by_name_with_names_and_values_encoded() -> None:
    query = {"b": "2", "a b": "x*y", "A": "~", "empty": "", "skipped": None, "flag": True, "n": 5}

    assert acs3.canonical_query_string(query) == ("A=~&a%20b=x%2Ay&b=2&empty=&flag=true&n=5")


def test_query_string_of_no_parameters_is_empty() -> None:
    assert acs3.canonical_query_string({}) == ""
    assert acs3.canonical_query_string(None) == ""


@pytest.mark.parametrize(
    ("path", "uri"),
    [
        ("/", "/"),
        ("", "/"),
        ("/tokens", "/tokens"),
        ("/2025-09-10/agents/runtimes", "/2025-09-10/agents/runtimes"),
        ("/repos/my ns/app*1", "/repos/my%20ns/app%2A1"),
        ("/runtimes/a~b/版本", "/runtimes/a~b/%E7%89%88%E6%9C%AC"),
        ("tokens", "/tokens"),
    ],
)
def test_canonical_uri_encodes_each_segment_and_keeps_the_slashes(path: str, uri: str) -> None:
    assert acs3.canonical_uri(path) == uri


def test_signed_headers_are_host_content_type_and_x_acs_lowercased_trimmed_and_sorted() -> None:
    headers = {
        "X-Acs-Version": " 2018-12-01 ",
        "Host": "cr.cn-hangzhou.aliyuncs.com",
        "Content-Type": "application/json; charset=utf-8",
        "User-Agent": "actk",
        "Accept": "application/json",
        "x-acs-action": "ListInstance",
    }

    assert acs3.signed_headers(headers) == {
        "content-type": "application/json; charset=utf-8",
        "host": "cr.cn-hangzhou.aliyuncs.com",
        "x-acs-action": "ListInstance",
        "x-acs-version": "2018-12-01",
    }


# --- sign_request ---------------------------------------------------------------------------


def test_body_hash_is_the_sha256_of_the_bytes_sent() -> None:
    body = b'{"name":"agent"}'

    headers = acs3.sign_request(
        "POST", "agentrun.cn-hangzhou.aliyuncs.com", "/x", None, None, body, credentials=Key()
    )

    assert headers["x-acs-content-sha256"] == hashlib.sha256(body).hexdigest()


def test_sts_security_token_is_sent_and_signed() -> None:
    key = Key(access_key_id="STS.NTestKey", security_token="sts-token-value-123456")

    headers = acs3.sign_request(
        "GET", "cr.cn-hangzhou.aliyuncs.com", "/tokens", credentials=key, nonce="n1"
    )

    assert headers["x-acs-security-token"] == "sts-token-value-123456"
    assert headers["x-acs-accesskey-id"] == "STS.NTestKey"
    signed = headers["authorization"].split("SignedHeaders=")[1].split(",")[0].split(";")
    assert "x-acs-security-token" in signed
    assert "x-acs-accesskey-id" in signed


def test_a_different_security_token_changes_the_signature() -> None:
    moment = datetime(2026, 1, 1, tzinfo=timezone.utc)

    def sign(token: str) -> str:
        key = Key(access_key_id="STS.NTestKey", security_token=token)
        return acs3.sign_request(
            "GET",
            "cr.cn-hangzhou.aliyuncs.com",
            "/tokens",
            credentials=key,
            date=moment,
            nonce="same",
        )["authorization"]

    assert sign("token-one-123456") != sign("token-two-123456")


def test_without_a_security_token_no_sts_headers_are_sent() -> None:
    headers = acs3.sign_request("GET", "cr.cn-hangzhou.aliyuncs.com", "/tokens", credentials=Key())

    assert "x-acs-security-token" not in headers
    assert "x-acs-accesskey-id" not in headers


def test_date_is_utc_whole_seconds_even_from_another_time_zone() -> None:
    beijing = timezone(timedelta(hours=8))

    headers = acs3.sign_request(
        "GET", "h", "/", credentials=Key(), date=datetime(2026, 3, 1, 8, 0, 5, 999, beijing)
    )

    assert headers["x-acs-date"] == "2026-03-01T00:00:05Z"


def test_each_request_gets_a_fresh_nonce() -> None:
    nonces = {
        acs3.sign_request("GET", "h", "/", credentials=Key())["x-acs-signature-nonce"]
        for _ in range(20)
    }

    assert len(nonces) == 20


def test_a_caller_supplied_authorization_header_is_replaced() -> None:
    headers = acs3.sign_request(
        "GET", "h", "/", headers={"Authorization": "Bearer stale"}, credentials=Key()
    )

    assert headers["authorization"].startswith("ACS3-HMAC-SHA256 Credential=YourAccessKeyId,")


# --- agreement with Alibaba's own signer ----------------------------------------------------


def test_rpc_request_signature_matches_alibabas_sdk() -> None:
    key = Key("LTAI5tRpcKey", "rpc-secret-value")
    query = {"InstanceId": "cri-abc123", "PageNo": "1", "Name": "a b*c~d/é"}

    headers = acs3.sign_request(
        "POST",
        "cr.cn-hangzhou.aliyuncs.com",
        "/",
        query,
        {"x-acs-action": "GetAuthorizationToken", "x-acs-version": "2018-12-01"},
        b"",
        credentials=key,
    )

    sent = {k: v for k, v in headers.items() if k != "authorization"}
    assert headers["authorization"] == sdk_authorization("POST", "/", query, sent, b"", key)


def test_roa_json_body_request_signature_matches_alibabas_sdk() -> None:
    key = Key("LTAI5tRoaKey", "roa-secret-value", security_token="sts-token-for-roa")
    body = json.dumps({"agentRuntimeName": "support-agent", "cpu": 1.0}).encode()
    path = "/2025-09-10/agents/runtimes/my runtime*1"
    query = {"dryRun": "true"}

    headers = acs3.sign_request(
        "PUT",
        "agentrun.cn-hangzhou.aliyuncs.com",
        path,
        query,
        {
            "x-acs-action": "UpdateAgentRuntime",
            "x-acs-version": "2025-09-10",
            "content-type": "application/json; charset=utf-8",
        },
        body,
        credentials=key,
    )

    sent = {k: v for k, v in headers.items() if k != "authorization"}
    assert headers["authorization"] == sdk_authorization("PUT", path, query, sent, body, key)
