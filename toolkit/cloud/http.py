"""The one HTTP layer under every control-plane client: retries, redaction, call log.

- 429 and 503 are retried after the service's own delay (``Retry-After`` in seconds or as an
  HTTP date, ``retry-after-ms``, ``x-ms-retry-after-ms``, Alibaba's ``x-acs-retry-after``),
  else with exponential backoff;
- 500/502/504 and dropped connections are retried only for idempotent calls (GET, HEAD, PUT,
  DELETE, or a call marked ``idempotent=True``): a POST that may have been applied is not
  sent twice behind the caller's back. A connection that was never made is always retried;
- a client may name more answers that mean "not done, try again" (``retry_if``: Alibaba's
  ``Throttling.*`` codes in a 400, ARM's 408); those are retried whatever the method;
- every secret handed to the client (tokens, keys, SAS URLs) and every signature-like query
  value (``sig=``, ``token=`` ...) is removed from the call log and from the errors it raises;
- ``on_call`` receives one line per attempt (method, URL without its query's signatures,
  status, milliseconds); ``on_retry`` one line per wait ("HTTP 503; retrying in 2.0 s
  (attempt 2 of 4)"), for clients that show progress. Both lines also go to the process-wide
  call log (:mod:`toolkit.call_log`), which ``--verbose`` prints on stderr.

Per-attempt signing (Alibaba's ACS3) is an ``httpx.Auth`` passed with the request: httpx runs
its ``auth_flow`` on every send, so each retry is signed afresh.
"""

from __future__ import annotations

import email.utils
import random
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import httpx

from toolkit import call_log
from toolkit.errors import CloudError
from toolkit.redact import redact

IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS"})
THROTTLED = frozenset({429, 503})
FLAKY = frozenset({500, 502, 504})
# Query parameters that carry credentials (Azure SAS, presigned URLs, OAuth).
SECRET_QUERY_KEYS = frozenset(
    {"sig", "signature", "x-amz-signature", "token", "access_token", "code", "se", "skoid"}
)
# The same parameters inside free text (a log line, an error body; ``&amp;`` in XML).
_SECRET_PARAMETER = re.compile(
    r"(?i)((?:[?&]|&amp;)(?:" + "|".join(map(re.escape, sorted(SECRET_QUERY_KEYS))) + r")=)"
    r"[^&\s\"'<>]+"
)
ATTEMPTS = "actk.attempts"  # the response extension that counts the sends behind it


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 4  # in all, the first included
    backoff: float = 0.5  # seconds before the first retry, doubled each time
    max_backoff: float = 20.0
    max_retry_after: float = 120.0  # a longer wait than this is not worth holding a CI job
    jitter: float = 0.0  # each backoff varies by up to this fraction (0.2: ±20 %)

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError("RetryPolicy.attempts counts every try, so it is at least 1")


def retry_after(response: httpx.Response) -> float | None:
    """The delay the service asked for, in seconds, or None."""
    headers = response.headers
    for name in ("retry-after-ms", "x-ms-retry-after-ms", "x-acs-retry-after"):
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


def attempts_made(response: httpx.Response) -> int:
    """How many times :meth:`CloudHttp.request` sent the call ``response`` answers."""
    return int(response.extensions.get(ATTEMPTS, 1))


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
    """An httpx client for one service, with the retry and redaction rules above.

    ``retry_if`` names further answers to retry; ``unreachable(label, exc, attempts)`` builds
    the error raised when no answer came (default: "cannot reach <service> at <host>").
    """

    def __init__(
        self,
        service: str,
        *,
        base_url: str = "",
        headers: dict[str, str] | None = None,
        secrets: Iterable[str] = (),
        policy: RetryPolicy | None = None,
        timeout: float | httpx.Timeout = 60.0,
        transport: httpx.BaseTransport | None = None,
        verify: Any = True,
        trust_env: bool = True,
        sleep: Callable[[float], None] = time.sleep,
        on_call: Callable[[str], None] | None = None,
        on_retry: Callable[[str], None] | None = None,
        retry_if: Callable[[httpx.Response], bool] | None = None,
        unreachable: Callable[[str, Exception, int], CloudError] | None = None,
    ) -> None:
        self.service = service
        self.policy = policy or RetryPolicy()
        self.secrets: set[str] = {s for s in secrets if s}
        self._sleep = sleep
        self._on_call = on_call
        self._on_retry = on_retry
        self._retry_if = retry_if
        self._unreachable_error = unreachable
        self._client = httpx.Client(
            base_url=base_url,
            headers=headers,
            timeout=timeout,
            transport=transport,
            verify=verify,
            trust_env=trust_env,
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
        """``text`` without the secrets and signature-like query values (``sig=***``)."""
        return _SECRET_PARAMETER.sub(r"\1***", redact(text, self.secrets))

    def request(
        self,
        method: str,
        url: str,
        *,
        idempotent: bool | None = None,
        label: str | None = None,
        stream: bool = False,
        **kwargs: Any,
    ) -> httpx.Response:
        """Send with retries; the last response is returned whatever its status, and
        ``attempts_made(response)`` says how many sends it took. ``label`` names the call in
        retry notices and to ``unreachable`` (default: the method and the safe URL).
        With ``stream=True`` the body is left unread (the caller reads and closes it), so retry
        decisions then rest on the status and headers alone."""
        method = method.upper()
        replayable = method in IDEMPOTENT_METHODS if idempotent is None else idempotent
        label = label or f"{method} {safe_url(url)}"
        delay = self.policy.backoff
        for attempt in range(1, self.policy.attempts + 1):
            last = attempt == self.policy.attempts
            started = time.monotonic()
            asked = None
            try:
                response = self._send(method, url, stream, kwargs)
            except httpx.ConnectError as exc:  # nothing was sent: always safe to retry
                self._log(method, url, f"connection failed ({type(exc).__name__})", started)
                if last:
                    raise self._unreachable(label, url, exc, attempt) from None
                reason = type(exc).__name__
            except httpx.TransportError as exc:
                self._log(method, url, f"{type(exc).__name__}", started)
                if last or not replayable:
                    raise self._unreachable(label, url, exc, attempt) from None
                reason = type(exc).__name__
            else:
                self._log(method, str(response.request.url), str(response.status_code), started)
                response.extensions[ATTEMPTS] = attempt
                if last or not self._retryable(response, replayable):
                    return response
                asked = retry_after(response)
                if asked is not None:
                    if asked > self.policy.max_retry_after:
                        return response
                    delay = asked
                reason = f"HTTP {response.status_code}"
                response.close()
            wait = min(delay, self.policy.max_retry_after)
            if asked is None and self.policy.jitter:
                wait *= random.uniform(1 - self.policy.jitter, 1 + self.policy.jitter)
            notice = self.redact(
                f"{label}: {reason}; retrying in {wait:.1f} s "
                f"(attempt {attempt + 1} of {self.policy.attempts})"
            )
            if self._on_retry is not None:
                self._on_retry(notice)
            call_log.record(notice, source="retry")
            self._sleep(wait)
            delay = min(delay * 2, self.policy.max_backoff)
        raise AssertionError("unreachable")  # pragma: no cover

    def _retryable(self, response: httpx.Response, replayable: bool) -> bool:
        status = response.status_code
        if status in THROTTLED or (status in FLAKY and replayable):
            return True
        return self._retry_if is not None and self._retry_if(response)

    def _send(
        self, method: str, url: str, stream: bool, kwargs: dict[str, Any]
    ) -> httpx.Response:
        if not stream:
            return self._client.request(method, url, **kwargs)
        auth = kwargs.get("auth", httpx.USE_CLIENT_DEFAULT)
        request = self._client.build_request(
            method, url, **{key: value for key, value in kwargs.items() if key != "auth"}
        )
        return self._client.send(request, auth=auth, stream=True)

    def _log(self, method: str, url: str, outcome: str, started: float) -> None:
        if self._on_call is None and not call_log.enabled():
            return
        elapsed = (time.monotonic() - started) * 1000
        if not url.startswith(("http://", "https://")):  # a failed connection: name its host
            url = str(self._client.base_url.join(url))
        line = self.redact(f"{method} {safe_url(url)} -> {outcome} ({elapsed:.0f} ms)")
        if self._on_call is not None:
            self._on_call(line)
        call_log.record(line)

    def _unreachable(self, label: str, url: str, exc: Exception, attempts: int) -> CloudError:
        if self._unreachable_error is not None:
            return self._unreachable_error(label, exc, attempts)
        host = urlsplit(str(self._client.base_url.join(url))).netloc
        return CloudError(
            f"cannot reach {self.service} at {host}: {self.redact(str(exc)) or type(exc).__name__}",
            hint="check the endpoint in agent.yaml, your network, and HTTPS_PROXY/NO_PROXY",
        )
