"""The one HTTP layer under every control-plane client: retries, redaction, call log.

- 429 and 503 are retried after the service's own delay (``Retry-After`` in seconds or as an
  HTTP date, ``retry-after-ms``, ``x-ms-retry-after-ms``), else with exponential backoff;
- 500/502/504 and dropped connections are retried only for idempotent calls (GET, HEAD, PUT,
  DELETE, or a call marked ``idempotent=True``): a POST that may have been applied is not
  sent twice behind the caller's back. A connection that was never made is always retried;
- every secret handed to the client (tokens, keys, SAS signatures) is removed from the call
  log and from the messages of the errors it raises;
- ``on_call`` receives one line per attempt (method, URL without its query's signatures,
  status, milliseconds): what ``--verbose`` prints.
"""

from __future__ import annotations

import email.utils
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import httpx

from toolkit.errors import CloudError
from toolkit.redact import redact

IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS"})
THROTTLED = frozenset({429, 503})
FLAKY = frozenset({500, 502, 504})
# Query parameters that carry credentials (Azure SAS, presigned URLs, OAuth).
SECRET_QUERY_KEYS = frozenset(
    {"sig", "signature", "x-amz-signature", "token", "access_token", "code", "se", "skoid"}
)


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 4  # in all, the first included
    backoff: float = 0.5  # seconds before the first retry, doubled each time
    max_backoff: float = 20.0
    max_retry_after: float = 120.0  # a longer wait than this is not worth holding a CI job


def retry_after(response: httpx.Response) -> float | None:
    """The delay the service asked for, in seconds, or None."""
    headers = response.headers
    for name in ("retry-after-ms", "x-ms-retry-after-ms"):
        try:
            return max(0.0, float(headers[name]) / 1000)
        except (KeyError, ValueError):
            pass
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def safe_url(url: str | httpx.URL) -> str:
    """``url`` with signature-like query values replaced by ``***``."""
    parts = urlsplit(str(url))
    if not parts.query:
        return str(url)
    query = [
        (key, "***" if key.lower() in SECRET_QUERY_KEYS else value)
        for key, value in parse_qsl(parts.query, keep_blank_values=True)
    ]
    return urlunsplit(parts._replace(query=urlencode(query, safe="*:/")))


class CloudHttp:
    """An httpx client for one service, with the retry and redaction rules above."""

    def __init__(
        self,
        service: str,
        *,
        base_url: str = "",
        headers: dict[str, str] | None = None,
        secrets: Iterable[str] = (),
        policy: RetryPolicy | None = None,
        timeout: float = 60.0,
        transport: httpx.BaseTransport | None = None,
        verify: Any = True,
        sleep: Callable[[float], None] = time.sleep,
        on_call: Callable[[str], None] | None = None,
    ) -> None:
        self.service = service
        self.policy = policy or RetryPolicy()
        self.secrets: set[str] = {s for s in secrets if s}
        self._sleep = sleep
        self._on_call = on_call
        self._client = httpx.Client(
            base_url=base_url,
            headers=headers,
            timeout=timeout,
            transport=transport,
            verify=verify,
            follow_redirects=False,
        )

    def __enter__(self) -> CloudHttp:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        self._client.close()

    def add_secret(self, value: str | None) -> None:
        if value:
            self.secrets.add(value)

    def redact(self, text: str) -> str:
        return redact(text, self.secrets)

    def request(
        self, method: str, url: str, *, idempotent: bool | None = None, **kwargs: Any
    ) -> httpx.Response:
        """Send with retries; the last response is returned whatever its status."""
        method = method.upper()
        replayable = method in IDEMPOTENT_METHODS if idempotent is None else idempotent
        delay = self.policy.backoff
        for attempt in range(1, self.policy.attempts + 1):
            last = attempt == self.policy.attempts
            started = time.monotonic()
            try:
                response = self._client.request(method, url, **kwargs)
            except httpx.ConnectError as exc:  # nothing was sent: always safe to retry
                self._log(method, url, f"connection failed ({type(exc).__name__})", started)
                if last:
                    raise self._unreachable(url, exc) from None
            except httpx.TransportError as exc:
                self._log(method, url, f"{type(exc).__name__}", started)
                if last or not replayable:
                    raise self._unreachable(url, exc) from None
            else:
                self._log(method, str(response.request.url), str(response.status_code), started)
                status = response.status_code
                if last or not (status in THROTTLED or (status in FLAKY and replayable)):
                    return response
                asked = retry_after(response)
                if asked is not None:
                    if asked > self.policy.max_retry_after:
                        return response
                    delay = asked
                response.close()
            self._sleep(min(delay, self.policy.max_retry_after))
            delay = min(delay * 2, self.policy.max_backoff)
        raise AssertionError("unreachable")  # pragma: no cover

    def _log(self, method: str, url: str, outcome: str, started: float) -> None:
        if self._on_call is not None:
            elapsed = (time.monotonic() - started) * 1000
            line = f"{method} {safe_url(url)} -> {outcome} ({elapsed:.0f} ms)"
            self._on_call(self.redact(line))

    def _unreachable(self, url: str, exc: Exception) -> CloudError:
        host = urlsplit(str(self._client.base_url.join(url))).netloc
        return CloudError(
            f"cannot reach {self.service} at {host}: {self.redact(str(exc)) or type(exc).__name__}",
            hint="check the endpoint in agent.yaml, your network, and HTTPS_PROXY/NO_PROXY",
        )
