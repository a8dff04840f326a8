"""The local registries of tests/registries.py work with the real engine, as `actk push` uses
it: docker-py pushes with in-memory credentials, httpx reads the digest back over verified TLS."""

from __future__ import annotations

import io
import os
import secrets
import ssl
import tarfile
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.conftest import engine
from tests.registries import ACR_USERNAME, AcrRegistry, HtpasswdRegistry

pytestmark = pytest.mark.docker

LAYER_BYTES = 20 * 1024 * 1024  # random, so the pushed (gzipped) blob stays this big
MANIFEST_TYPES = ", ".join(
    [
        "application/vnd.docker.distribution.manifest.v2+json",
        "application/vnd.oci.image.manifest.v1+json",
    ]
)


class Image:
    """A one-layer image imported from a tarball, and every reference a test gives it."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.name = f"actk-test-registry-{secrets.token_hex(3)}"
        payload = io.BytesIO()
        with tarfile.open(fileobj=payload, mode="w") as tar:
            info = tarfile.TarInfo("payload.bin")
            info.size = LAYER_BYTES
            tar.addfile(info, io.BytesIO(os.urandom(LAYER_BYTES)))
        client.api.import_image_from_data(payload.getvalue(), repository=self.name, tag="v1")
        self.id = client.images.get(f"{self.name}:v1").id

    def push(self, host: str, repository: str, auth: dict[str, str]) -> str:
        """Push as ``host/repository:v1``; the digest the engine reports, or PushFailed."""
        self.client.api.tag(self.id, f"{host}/{repository}", "v1")
        digest = None
        for event in self.client.api.push(
            f"{host}/{repository}", tag="v1", auth_config=auth, stream=True, decode=True
        ):
            if "error" in event:
                raise PushFailed(event["error"])
            digest = (event.get("aux") or {}).get("Digest", digest)
        assert digest, "the engine reported no digest"
        return digest

    def pull(self, host: str, repository: str, digest: str, auth: dict[str, str]) -> str:
        """Pull ``host/repository@digest`` back; the local image id."""
        pulled = self.client.images.pull(f"{host}/{repository}", tag=digest, auth_config=auth)
        return pulled.id

    def remove(self) -> None:
        self.client.images.remove(self.id, force=True)  # every tag and digest reference


class PushFailed(Exception):
    pass


@pytest.fixture(scope="module")
def image() -> Iterator[Image]:
    made = Image(engine())
    yield made
    made.remove()


def manifest_digest(url: str, repository: str, ca_bundle: Any, auth: Any) -> str:
    """The registry's digest of ``repository:v1``, read over TLS verified with ``ca_bundle``."""
    with httpx.Client(verify=ssl.create_default_context(cafile=str(ca_bundle))) as client:
        response = client.get(
            f"{url}/v2/{repository}/manifests/v1", headers={"Accept": MANIFEST_TYPES}, auth=auth
        )
    response.raise_for_status()
    return response.headers["Docker-Content-Digest"]


def bearer(token: str) -> Any:
    """httpx auth that sends ``token`` as a bearer token."""

    def authorize(request: httpx.Request) -> httpx.Request:
        request.headers["Authorization"] = f"Bearer {token}"
        return request

    return authorize


# --- htpasswd ---------------------------------------------------------------------------------


def test_htpasswd_registry_takes_a_push_with_the_right_password(
    image: Image, htpasswd_registry: HtpasswdRegistry
) -> None:
    registry = htpasswd_registry
    digest = image.push(registry.host, "team/app", registry.auth_config)

    auth = (registry.username, registry.password)
    assert manifest_digest(registry.url, "team/app", registry.ca_bundle, auth) == digest
    assert image.pull(registry.host, "team/app", digest, registry.auth_config) == image.id


def test_htpasswd_registry_denies_a_wrong_password(
    image: Image, htpasswd_registry: HtpasswdRegistry
) -> None:
    wrong = {**htpasswd_registry.auth_config, "password": "not-the-password"}
    with pytest.raises(PushFailed, match=r"(?i)unauthorized|authentication required"):
        image.push(htpasswd_registry.host, "team/denied", wrong)


# --- the ACR look-alike -------------------------------------------------------------------------


def exchange(registry: AcrRegistry, entra_token: str) -> httpx.Response:
    """ACR's AAD -> ACR refresh token exchange (POST /oauth2/exchange)."""
    form = {
        "grant_type": "access_token",
        "service": registry.host,
        "tenant": registry.tenant,
        "access_token": entra_token,
    }
    context = ssl.create_default_context(cafile=str(registry.ca_bundle))
    return httpx.post(f"{registry.url}/oauth2/exchange", data=form, verify=context)


def access_token(registry: AcrRegistry, refresh_token: str, scope: str) -> str:
    form = {
        "grant_type": "refresh_token",
        "service": registry.host,
        "scope": scope,
        "refresh_token": refresh_token,
    }
    context = ssl.create_default_context(cafile=str(registry.ca_bundle))
    response = httpx.post(f"{registry.url}/oauth2/token", data=form, verify=context)
    response.raise_for_status()
    return response.json()["access_token"]


@pytest.fixture(scope="module")
def acr_refresh_token(acr_registry: AcrRegistry) -> str:
    response = exchange(acr_registry, acr_registry.entra_token)
    assert response.status_code == 200, response.text
    return response.json()["refresh_token"]


@pytest.fixture(scope="module")
def acr_pushed(image: Image, acr_registry: AcrRegistry, acr_refresh_token: str) -> str:
    """The digest of ``agents/echo:v1`` (a 20 MiB layer through the front), pushed with the
    refresh token as the password, as `docker login` to ACR does."""
    auth = {
        "username": ACR_USERNAME,
        "password": acr_refresh_token,
        "serveraddress": acr_registry.host,
    }
    return image.push(acr_registry.host, "agents/echo", auth)


def test_acr_exchange_refuses_an_unknown_entra_token(acr_registry: AcrRegistry) -> None:
    response = exchange(acr_registry, acr_registry.entra_token + "x")

    assert response.status_code == 401
    assert response.json()["errors"][0]["code"] == "UNAUTHORIZED"


def test_acr_registry_takes_a_push_with_an_exchanged_refresh_token(
    image: Image, acr_registry: AcrRegistry, acr_refresh_token: str, acr_pushed: str
) -> None:
    calls = [(call["method"], call["path"], call["status"]) for call in acr_registry.requests]
    exchanged = calls.index(("POST", "/oauth2/exchange", 200))
    assert ("GET", "/oauth2/token", 200) in calls[exchanged:]
    engine_calls = [call for call in acr_registry.requests if call["method"] == "GET"]
    assert {call["basic_user"] for call in engine_calls} == {ACR_USERNAME}
    scopes = {scope for call in engine_calls for scope in call["scope"]}
    assert scopes & {"repository:agents/echo:push,pull", "repository:agents/echo:pull,push"}

    token = access_token(acr_registry, acr_refresh_token, "repository:agents/echo:pull")
    url, ca_bundle = acr_registry.url, acr_registry.ca_bundle
    assert manifest_digest(url, "agents/echo", ca_bundle, bearer(token)) == acr_pushed
    auth = {"username": ACR_USERNAME, "password": acr_refresh_token}
    assert image.pull(acr_registry.host, "agents/echo", acr_pushed, auth) == image.id


def test_acr_token_endpoint_refuses_an_unknown_refresh_token(acr_registry: AcrRegistry) -> None:
    # As the engine asks (an engine push with this password fails only after ~50 s of retries).
    context = ssl.create_default_context(cafile=str(acr_registry.ca_bundle))
    response = httpx.get(
        f"{acr_registry.url}/oauth2/token",
        params={"service": acr_registry.host, "scope": "repository:agents/echo:pull,push"},
        auth=(ACR_USERNAME, "not-a-refresh-token"),
        verify=context,
    )

    assert response.status_code == 401
    assert response.json()["errors"][0]["code"] == "UNAUTHORIZED"


def test_acr_front_keeps_upload_locations_on_the_front(
    acr_registry: AcrRegistry, acr_refresh_token: str
) -> None:
    token = access_token(acr_registry, acr_refresh_token, "repository:agents/echo:pull,push")
    context = ssl.create_default_context(cafile=str(acr_registry.ca_bundle))
    response = httpx.post(
        f"{acr_registry.url}/v2/agents/echo/blobs/uploads/",
        headers={"Authorization": f"Bearer {token}"},
        verify=context,
    )

    assert response.status_code == 202
    assert response.headers["Location"].startswith(f"{acr_registry.url}/v2/agents/echo/")


def test_acr_registry_refuses_a_token_for_another_repository(
    acr_registry: AcrRegistry, acr_refresh_token: str, acr_pushed: str
) -> None:
    token = access_token(acr_registry, acr_refresh_token, "repository:agents/other:pull")
    context = ssl.create_default_context(cafile=str(acr_registry.ca_bundle))
    response = httpx.get(
        f"{acr_registry.url}/v2/agents/echo/manifests/v1",
        headers={"Authorization": f"Bearer {token}", "Accept": MANIFEST_TYPES},
        verify=context,
    )

    assert response.status_code == 401
    assert 'scope="repository:agents/echo:pull"' in response.headers["WWW-Authenticate"]


# --- fault injection ----------------------------------------------------------------------------


def test_push_through_a_flaky_proxy_lands_after_retries(
    image: Image, htpasswd_registry: HtpasswdRegistry, flaky_proxy: Any
) -> None:
    proxy = flaky_proxy(htpasswd_registry.host, reset_every=3, max_resets=4)
    auth = {**htpasswd_registry.auth_config, "serveraddress": proxy.host}
    failures = []
    for _ in range(5):
        try:
            digest = image.push(proxy.host, "team/flaky", auth)
            break
        except PushFailed as failure:
            failures.append(str(failure))
    else:
        pytest.fail(f"5 pushes through the proxy failed: {failures}")

    assert proxy.resets > 0
    registry = htpasswd_registry
    auth_pair = (registry.username, registry.password)
    assert manifest_digest(registry.url, "team/flaky", registry.ca_bundle, auth_pair) == digest
