"""The shared control-plane HTTP layer: which failures are retried, how long it waits, and
that secrets never reach its call log or its errors."""

from __future__ import annotations

import httpx
import pytest

from toolkit.cloud.http import CloudHttp, RetryPolicy, retry_after, safe_url
from toolkit.errors import CloudError

TOKEN = "eyJ0eXAiOiJKV1QiLCJhbGciOi.secret-token-value"


def client(answers: list[object], **kwargs: object) -> tuple[CloudHttp, list[float], list[str]]:
    """A CloudHttp whose transport answers from ``answers`` (a status, or an exception)."""
    queue = list(answers)
    slept: list[float] = []
    calls: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        answer = queue.pop(0)
        if isinstance(answer, Exception):
            raise answer
        status, headers = answer if isinstance(answer, tuple) else (answer, {})
        return httpx.Response(status, headers=headers, json={"n": len(queue)})

    http = CloudHttp(
        "Test service",
        base_url="https://svc.example.com",
        transport=httpx.MockTransport(handler),
        sleep=slept.append,
        on_call=calls.append,
        secrets=[TOKEN],
        **kwargs,  # type: ignore[arg-type]
    )
    return http, slept, calls


def test_throttling_waits_as_long_as_the_service_asks() -> None:
    http, slept, _ = client([(429, {"retry-after": "7"}), (429, {"retry-after-ms": "250"}), 200])
    assert http.request("POST", "/things").status_code == 200
    assert slept == [7.0, 0.25]


def test_flaky_5xx_is_retried_with_backoff_for_idempotent_calls_only() -> None:
    http, slept, _ = client([500, 502, 200])
    assert http.request("GET", "/things").status_code == 200
    assert slept == [0.5, 1.0]
    http, slept, _ = client([500, 200])
    assert http.request("POST", "/things").status_code == 500
    assert slept == []
    http, slept, _ = client([500, 200])
    assert http.request("POST", "/things", idempotent=True).status_code == 200


def test_the_last_answer_is_returned_when_retries_run_out() -> None:
    http, slept, _ = client([503, 503, 503], policy=RetryPolicy(attempts=3, backoff=1))
    assert http.request("GET", "/").status_code == 503
    assert slept == [1, 2]


def test_a_wait_longer_than_the_limit_is_not_held() -> None:
    http, slept, _ = client([(429, {"retry-after": "3600"}), 200])
    assert http.request("GET", "/").status_code == 429
    assert slept == []


def test_a_connection_never_made_is_retried_even_for_post() -> None:
    http, slept, _ = client([httpx.ConnectError("refused"), 201])
    assert http.request("POST", "/things").status_code == 201
    assert len(slept) == 1


def test_a_dropped_post_is_not_replayed_and_names_the_service() -> None:
    http, _, _ = client([httpx.ReadError(f"reset while sending {TOKEN}")])
    with pytest.raises(CloudError) as raised:
        http.request("POST", "/things")
    assert raised.value.message.startswith("cannot reach Test service at svc.example.com")
    assert TOKEN not in raised.value.message


def test_the_call_log_has_no_secret_and_no_signature() -> None:
    http, _, calls = client([200])
    http.request("GET", f"/blob?sv=2021&sig=abc123&note={TOKEN}")
    assert calls and "sig=***" in calls[0] and "abc123" not in calls[0]
    assert TOKEN not in calls[0] and "-> 200" in calls[0]


def test_retry_after_reads_seconds_dates_and_milliseconds() -> None:
    assert retry_after(httpx.Response(429, headers={"retry-after": "2"})) == 2
    assert retry_after(httpx.Response(429, headers={"x-ms-retry-after-ms": "1500"})) == 1.5
    dated = httpx.Response(429, headers={"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"})
    assert retry_after(dated) == 0
    assert retry_after(httpx.Response(429)) is None


def test_safe_url_keeps_ordinary_parameters() -> None:
    assert safe_url("https://a/b?api-version=2025&sig=x") == "https://a/b?api-version=2025&sig=***"
    assert safe_url("https://a/b") == "https://a/b"
