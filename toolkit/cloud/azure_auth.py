"""Microsoft Entra ID tokens for Azure calls: from the environment (CI) or azure-identity.

``AZURE_ACCESS_TOKEN`` holds an Azure Resource Manager token (what
``az account get-access-token`` prints), used for the ACR token exchange and ACR Tasks;
``AZURE_AI_ACCESS_TOKEN`` holds a token for ``https://ai.azure.com`` (Foundry). Without them,
azure-identity's ``DefaultAzureCredential`` is used when the ``[azure]`` extra is installed.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping

from toolkit.errors import CloudError

ARM_SCOPE = "https://management.azure.com/.default"
FOUNDRY_SCOPE = "https://ai.azure.com/.default"
TOKEN_VARIABLES = {ARM_SCOPE: "AZURE_ACCESS_TOKEN", FOUNDRY_SCOPE: "AZURE_AI_ACCESS_TOKEN"}


def azure_token(scope: str, env: Mapping[str, str], *, tenant_id: str | None = None) -> str:
    """A bearer token for ``scope``: the scope's environment variable, else azure-identity."""
    variable = TOKEN_VARIABLES.get(scope)
    if variable and env.get(variable):
        return env[variable].strip()
    try:
        from azure.identity import DefaultAzureCredential
    except ImportError:
        raise CloudError(
            f"no Azure token: {variable or 'a token'} is not set and azure-identity is not "
            "installed",
            hint=f"set {variable} (az account get-access-token"
            f"{' --resource https://ai.azure.com' if scope == FOUNDRY_SCOPE else ''} "
            "--query accessToken -o tsv), or pip install 'agent-container-toolkit[azure]' and "
            "sign in (az login, a managed identity, or AZURE_CLIENT_ID/AZURE_TENANT_ID/"
            "AZURE_FEDERATED_TOKEN_FILE in CI)",
        ) from None
    from azure.core.exceptions import ClientAuthenticationError

    kwargs = {"additionally_allowed_tenants": ["*"]} if tenant_id else {}
    try:
        return DefaultAzureCredential(**kwargs).get_token(scope, tenant_id=tenant_id).token
    except ClientAuthenticationError as exc:
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CloudError(
            f"azure-identity could not get a token for {scope}: {first_line}",
            hint="sign in with `az login` (or configure a managed identity / workload identity "
            f"federation in CI), or set {variable}",
        ) from None


def token_claims(token: str) -> dict[str, object]:
    """The unverified claims of a JWT (to read ``tid``); empty when it is not a JWT."""
    parts = token.split(".")
    if len(parts) != 3:
        return {}
    payload = parts[1] + "=" * (-len(parts[1]) % 4)
    try:
        claims = json.loads(base64.urlsafe_b64decode(payload))
    except (ValueError, UnicodeDecodeError):
        return {}
    return claims if isinstance(claims, dict) else {}
