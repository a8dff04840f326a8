"""A self-hosted environment's work queue: poll, ack, stop, stats.

These calls authenticate with the environment key alone (``Authorization: Bearer``, no
``x-api-key``): the key a worker host holds is scoped to one environment's queue, and the
organization's API key stays off worker hosts. Errors are the API's envelope, as
:func:`toolkit.cloud.anthropic.error_from` reads it, with the key's own fix for 401/403.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import httpx

from toolkit.cloud.anthropic import (
    API_VERSION,
    BETA,
    ENVIRONMENT_KEY_VARIABLE,
    SERVICE,
    AnthropicAPIError,
    error_from,
)
from toolkit.cloud.http import CloudHttp, RetryPolicy

BLOCK_MS = 999  # the longest long-poll the queue allows
KEY_HINT = (
    f"{ENVIRONMENT_KEY_VARIABLE} is not a key of this environment: generate one in the Claude "
    "Console (the environment's page > Generate environment key)"
)


def environment_headers(key: str) -> dict[str, str]:
    return {
        "authorization": f"Bearer {key}",
        "anthropic-version": API_VERSION,
        "anthropic-beta": BETA,
        "content-type": "application/json",
    }


class WorkQueue:
    """One environment's queue, as a worker host sees it."""

    def __init__(
        self,
        base_url: str,
        environment_id: str,
        key: str,
        *,
        policy: RetryPolicy | None = None,
        transport: httpx.BaseTransport | None = None,
        trust_env: bool = True,
        sleep: Callable[[float], None] = time.sleep,
        timeout: float = 30.0,  # a poll is held open up to BLOCK_MS; the rest is the network's
    ) -> None:
        self.environment_id = environment_id
        self.http = CloudHttp(
            SERVICE,
            base_url=base_url.rstrip("/"),
            headers=environment_headers(key),
            secrets=[key],
            policy=policy or RetryPolicy(attempts=3, backoff=1.0),
            timeout=timeout,
            transport=transport,
            trust_env=trust_env,
            sleep=sleep,
        )

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> WorkQueue:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def poll(self, worker_id: str) -> dict[str, Any] | None:
        """A queued item (claimed until acknowledged), or None after the long poll."""
        answer = self._call("GET", "/poll", "poll for work", params={"block_ms": BLOCK_MS},
                            headers={"anthropic-worker-id": worker_id})
        return answer if isinstance(answer, dict) and answer.get("id") else None

    def ack(self, work_id: str) -> None:
        self._call("POST", f"/{work_id}/ack", f"acknowledge work item {work_id}")

    def stop(self, work_id: str, *, force: bool = True) -> None:
        """Release the item; one already stopped (409) is fine."""
        try:
            self._call("POST", f"/{work_id}/stop", f"stop work item {work_id}",
                       json={"force": force})
        except AnthropicAPIError as error:
            if error.status != 409:
                raise

    def stats(self) -> dict[str, Any]:
        answer = self._call("GET", "/stats", f"work queue stats of {self.environment_id}")
        return answer if isinstance(answer, dict) else {}

    def _call(self, method: str, tail: str, what: str, *, params: dict[str, Any] | None = None,
              **kwargs: Any) -> Any:
        response = self.http.request(
            method, f"/v1/environments/{self.environment_id}/work{tail}",
            params={"beta": "true", **(params or {})}, label=what, **kwargs,
        )
        if response.status_code >= 400:
            error = error_from(response, what, self.http.redact)
            if error.status in (401, 403):
                error.hint = KEY_HINT
            raise error
        if not response.content or response.content.strip() == b"null":
            return None
        return response.json()
