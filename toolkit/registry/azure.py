"""Azure Container Registry: a Microsoft Entra ID token exchanged for an ACR refresh token.

The flow is ACR's documented one (https://github.com/Azure/acr/blob/main/docs/AAD-OAuth.md):
``POST https://<registry>/oauth2/exchange`` with ``grant_type=access_token`` returns a refresh
token, which Docker uses as the password of the all-zero user name. A repository-scoped token
or the admin user come from ``ACTK_REGISTRY_USERNAME``/``ACTK_REGISTRY_PASSWORD`` instead (see
``toolkit.registry.resolve``).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import TYPE_CHECKING

from toolkit.cloud.azure_auth import ARM_SCOPE, azure_token, token_claims
from toolkit.errors import RegistryError
from toolkit.manifest import RegistrySettings
from toolkit.redact import redact
from toolkit.registry.credentials import RegistryCredentials
from toolkit.registry.hosts import is_loopback, tls_context

if TYPE_CHECKING:
    import httpx

ACR_USERNAME = "00000000-0000-0000-0000-000000000000"
# ACR refresh tokens live three hours; we never keep them that long, the figure is informative.
REFRESH_TOKEN_SECONDS = 3 * 3600


def credentials_for(
    host: str, settings: RegistrySettings, env: Mapping[str, str]
) -> RegistryCredentials:
    """An ACR refresh token for ``host`` from the caller's Entra ID token."""
    import httpx

    entra_token = azure_token(ARM_SCOPE, env, tenant_id=settings.tenant_id)
    tenant = settings.tenant_id or str(token_claims(entra_token).get("tid") or "")
    form = {"grant_type": "access_token", "service": host, "access_token": entra_token}
    if tenant:
        form["tenant"] = tenant
    secrets = (entra_token,)
    try:
        from toolkit.call_log import httpx_hooks

        with httpx.Client(verify=tls_context(host), timeout=30,
                          event_hooks=httpx_hooks(secrets)) as client:
            response = client.post(f"https://{host}/oauth2/exchange", data=form)
    except httpx.HTTPError as exc:
        raise RegistryError(
            f"cannot reach {host} for the ACR token exchange: {redact(str(exc), secrets)}",
            hint="check the registry name in image.repository and your network (ACR's firewall "
            "and private endpoints can block this machine)",
        ) from None
    if response.status_code in (401, 403):
        raise RegistryError(
            f"{host} refused the Microsoft Entra ID token ({response.status_code} "
            f"{_reason(response, secrets)})",
            hint="the token may have expired or belong to another tenant: sign in again "
            "(az login), set image.registry.tenant_id in agent.yaml, or refresh "
            "AZURE_ACCESS_TOKEN; registries with azureADAuthenticationAsArmPolicy disabled "
            "need a token for https://containerregistry.azure.net",
        )
    if response.status_code == 404:
        raise RegistryError(
            f"{host} has no ACR token exchange (404 at /oauth2/exchange)",
            hint="is this an Azure Container Registry? Set image.registry.kind: generic in "
            "agent.yaml for other registries",
        )
    if response.status_code >= 400:
        raise RegistryError(
            f"the ACR token exchange at {host} failed: {response.status_code} "
            f"{_reason(response, secrets)}",
            hint="retry in a minute; if it persists, check the registry's status in the portal",
        )
    try:
        refresh_token = response.json()["refresh_token"]
    except (ValueError, KeyError, TypeError):
        raise RegistryError(
            f"the ACR token exchange at {host} answered without a refresh_token",
            hint="check that the host is an Azure Container Registry login server",
        ) from None
    where = "loopback test registry" if is_loopback(host) else host
    return RegistryCredentials(
        registry=host,
        username=ACR_USERNAME,
        password=refresh_token,
        source=f"Microsoft Entra ID token exchanged for an ACR refresh token ({where})",
        expires_at=time.time() + REFRESH_TOKEN_SECONDS,
    )


def _reason(response: httpx.Response, secrets: tuple[str, ...]) -> str:
    """ACR's error text (``{"errors":[{"message"}]}`` or ``{"error":..}``), redacted."""
    try:
        body = response.json()
    except ValueError:
        return redact(response.text.strip()[:200], secrets)
    if isinstance(body, dict):
        errors = body.get("errors")
        if isinstance(errors, list) and errors and isinstance(errors[0], dict):
            return redact(str(errors[0].get("message", ""))[:200], secrets)
        for key in ("error_description", "error", "message"):
            if body.get(key):
                return redact(str(body[key])[:200], secrets)
    return redact(str(body)[:200], secrets)
