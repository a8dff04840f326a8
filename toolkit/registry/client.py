"""Just enough of the OCI distribution API to read a pushed manifest's digest back.

Authentication follows the registry's ``WWW-Authenticate`` challenge: Basic, or Bearer through
the token service it names (Basic auth to the realm, or ``grant_type=refresh_token`` for an
identity token), as the Docker engine does. Loopback registries may answer plain HTTP, which
Docker also accepts for 127.0.0.0/8.
"""

from __future__ import annotations

import hashlib
import re
from typing import TYPE_CHECKING

from toolkit.errors import RegistryError
from toolkit.redact import redact
from toolkit.registry.credentials import RegistryCredentials
from toolkit.registry.hosts import is_loopback, tls_context

if TYPE_CHECKING:
    import httpx

MANIFEST_TYPES = ", ".join(
    [
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
        "application/vnd.docker.distribution.manifest.v2+json",
    ]
)
CHALLENGE_PARAM = re.compile(r'(\w+)="([^"]*)"')


class AccessDenied(RegistryError):
    """The registry (or its token service) refused the credentials."""


class RegistryClient:
    """A read-only client for one registry host."""

    def __init__(
        self, host: str, credentials: RegistryCredentials | None, *, timeout: float = 30
    ) -> None:
        import httpx

        self.host = host
        self.credentials = credentials
        self._secrets = credentials.secrets if credentials else ()
        from toolkit.call_log import httpx_hooks

        self._http = httpx.Client(verify=tls_context(host), timeout=timeout,
                                  event_hooks=httpx_hooks(self._secrets))
        self._base = f"https://{host}"

    def __enter__(self) -> RegistryClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._http.close()

    def manifest_digest(self, repository: str, reference: str) -> str:
        """The digest the registry holds for ``repository:reference``."""
        path = f"/v2/{repository}/manifests/{reference}"
        response = self._get(path, scope=f"repository:{repository}:pull", method="HEAD")
        if response.status_code == 404:
            raise RegistryError(
                f"{self.host} has no manifest {repository}:{reference}",
                hint="the push did not complete: run it again",
            )
        self._check(response, f"reading {repository}:{reference}")
        digest = response.headers.get("docker-content-digest")
        if digest:
            return digest
        response = self._get(path, scope=f"repository:{repository}:pull")
        self._check(response, f"reading {repository}:{reference}")
        return "sha256:" + hashlib.sha256(response.content).hexdigest()

    def check_access(self, repository: str) -> None:
        """Sign in with push scope, so bad credentials fail now rather than after the engine's
        own retries (a refused token costs the engine about a minute of back-off)."""
        response = self._get("/v2/", scope=f"repository:{repository}:push,pull")
        self._check(response, "the credentials")

    def _get(self, path: str, *, scope: str, method: str = "GET") -> httpx.Response:
        headers = {"Accept": MANIFEST_TYPES}
        response = self._send(method, path, headers)
        if response.status_code == 401:
            headers["Authorization"] = self._authorization(
                response.headers.get("www-authenticate", ""), scope
            )
            response = self._send(method, path, headers)
        return response

    def _send(self, method: str, path: str, headers: dict[str, str]) -> httpx.Response:
        import httpx

        try:
            return self._http.request(method, self._base + path, headers=headers)
        except httpx.ConnectError as exc:
            if self._base.startswith("https://") and is_loopback(self.host):
                self._base = f"http://{self.host}"
                return self._send(method, path, headers)
            raise self._unreachable(exc) from None
        except httpx.HTTPError as exc:
            raise self._unreachable(exc) from None

    def _authorization(self, challenge: str, scope: str) -> str:
        """The Authorization header that answers the registry's challenge."""
        import base64

        import httpx

        scheme = challenge.split(" ", 1)[0].lower()
        if self.credentials is None:
            raise AccessDenied(
                f"{self.host} asks for credentials to read the pushed manifest",
                hint="pass --username/--password-stdin or set ACTK_REGISTRY_USERNAME/PASSWORD",
            )
        basic = base64.b64encode(
            f"{self.credentials.username}:{self.credentials.password}".encode()
        ).decode()
        if scheme == "basic":
            return f"Basic {basic}"
        params = dict(CHALLENGE_PARAM.findall(challenge))
        realm = params.get("realm")
        if scheme != "bearer" or not realm:
            raise RegistryError(
                f"{self.host} asks for an unsupported authentication scheme: {scheme or 'none'}",
                hint="push with the docker CLI to check the registry, or report this",
            )
        query = {"service": params.get("service", self.host), "scope": scope}
        try:
            if self.credentials.identity_token:
                response = self._http.post(
                    realm,
                    data={**query, "grant_type": "refresh_token",
                          "refresh_token": self.credentials.password},
                )
            else:
                response = self._http.get(
                    realm, params=query, headers={"Authorization": f"Basic {basic}"}
                )
        except httpx.HTTPError as exc:
            raise self._unreachable(exc) from None
        self._check(response, "getting a token")
        body = response.json()
        token = body.get("token") or body.get("access_token")
        if not token:
            raise RegistryError(
                f"the token service of {self.host} answered without a token",
                hint="check the registry's token service configuration",
            )
        self._secrets = (*self._secrets, token)
        return f"Bearer {token}"

    def _check(self, response: httpx.Response, doing: str) -> None:
        if response.status_code in (401, 403):
            raise AccessDenied(
                f"{self.host} refused {doing} ({response.status_code} "
                f"{_error_text(response, self._secrets)})",
                hint="the credentials lack rights on this repository",
            )
        if response.status_code >= 400:
            text = redact(response.text.strip()[:200], self._secrets)
            raise RegistryError(
                f"{self.host} failed {doing}: {response.status_code} {text}",
                hint="retry; if it persists, check the registry's health",
            )

    def _unreachable(self, exc: Exception) -> RegistryError:
        return RegistryError(
            f"cannot reach {self.host}: {redact(str(exc), self._secrets) or type(exc).__name__}",
            hint="check the host name, your network and proxy settings (HTTPS_PROXY, NO_PROXY)",
        )


def _error_text(response: httpx.Response, secrets: tuple[str, ...]) -> str:
    """The distribution spec's ``{"errors":[{"code","message"}]}`` as one short line."""
    try:
        errors = response.json().get("errors") or []
        text = "; ".join(f"{e.get('code', '')}: {e.get('message', '')}" for e in errors)
    except (ValueError, AttributeError):
        text = response.text
    return redact(text.strip()[:200], secrets) or response.reason_phrase
