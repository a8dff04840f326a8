"""The shared control-plane HTTP layer: which failures are retried, how long it waits, and
that secrets never reach its call log or its errors."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from toolkit.cloud.http import CloudHttp, RetryPolicy, attempts_made, retry_after, safe_url
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


def test_retry_after_reads_alibabas_milliseconds() -> None:
    assert retry_after(httpx.Response(400, headers={"x-acs-retry-after": "750"})) == 0.75


def test_a_client_may_name_more_answers_to_retry_whatever_the_method() -> None:
    http, slept, _ = client([400, 400, 201], retry_if=lambda r: r.status_code == 400)
    response = http.request("POST", "/things")
    assert response.status_code == 201
    assert attempts_made(response) == 3 and len(slept) == 2


def test_an_answer_says_how_many_sends_it_took() -> None:
    http, _, _ = client([503, 404])
    assert attempts_made(http.request("GET", "/")) == 2


def test_each_wait_is_announced_with_the_calls_label() -> None:
    notices: list[str] = []
    http, _, _ = client([503, httpx.ConnectError("refused"), 200], on_retry=notices.append)
    http.request("GET", "/things", label="listing things")
    assert notices == [
        "listing things: HTTP 503; retrying in 0.5 s (attempt 2 of 4)",
        "listing things: ConnectError; retrying in 1.0 s (attempt 3 of 4)",
    ]


def test_a_client_words_the_error_of_a_call_that_got_no_answer() -> None:
    def unreachable(label: str, exc: Exception, attempts: int) -> CloudError:
        return CloudError(f"{label}: no answer after {attempts} attempts", hint="fix it")

    http, _, _ = client([httpx.ConnectError("refused")] * 4, unreachable=unreachable)
    with pytest.raises(CloudError) as raised:
        http.request("GET", "/things", label="listing things")
    assert raised.value.message == "listing things: no answer after 4 attempts"


def test_jitter_spreads_the_backoff_but_not_the_services_delay() -> None:
    http, slept, _ = client(
        [500, (429, {"retry-after": "2"}), 200], policy=RetryPolicy(backoff=1, jitter=0.2)
    )
    http.request("GET", "/")
    assert 0.8 <= slept[0] <= 1.2 and slept[1] == 2


def test_an_auth_signs_every_attempt_afresh() -> None:
    class Counting(httpx.Auth):
        def __init__(self) -> None:
            self.signed = 0

        def auth_flow(self, request: httpx.Request) -> Iterator[httpx.Request]:
            self.signed += 1
            request.headers["x-signature"] = str(self.signed)
            yield request

    auth = Counting()
    http, _, _ = client([429, 503, 200])
    http.request("GET", "/", auth=auth)
    assert auth.signed == 3


def test_signature_like_query_values_are_redacted_from_any_text() -> None:
    http, _, _ = client([])
    text = "GET https://a.blob/x?sv=1&sig=abc%2B1 and <Url>https://b/y?se=1&amp;sig=def</Url>"
    assert http.redact(text) == (
        "GET https://a.blob/x?sv=1&sig=*** and <Url>https://b/y?se=***&amp;sig=***</Url>"
    )


def test_a_policy_needs_at_least_one_attempt() -> None:
    with pytest.raises(ValueError):
        RetryPolicy(attempts=0)


def test_a_streamed_call_is_retried_on_throttling() -> None:
    http, slept, _ = client([(429, {"retry-after": "2"}), 200])
    response = http.request("POST", "/stream", stream=True)
    assert response.status_code == 200 and slept == [2.0]
    assert response.read()
    response.close()
