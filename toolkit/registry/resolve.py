"""Pick the credentials for a push: flags, then the environment, then the registry's family.

In order:
1. ``--username`` with ``--password-stdin``;
2. ``ACTK_REGISTRY_USERNAME`` / ``ACTK_REGISTRY_PASSWORD`` (an ACR repository-scoped token or
   admin user, an Alibaba fixed password, any registry's robot account);
3. the family's own flow, chosen by ``image.registry.kind`` or the host: Azure (Entra ID token
   exchange), Alibaba (temporary token from the Container Registry API);
4. the Docker config and credential helpers (``docker login``);
5. none: the push is tried anonymously and a refusal explains how to sign in.
"""

from __future__ import annotations

from collections.abc import Mapping

from toolkit.errors import UsageError
from toolkit.manifest import RegistrySettings
from toolkit.registry import generic
from toolkit.registry.credentials import RegistryCredentials
from toolkit.registry.hosts import is_azure

USERNAME_VARIABLE = "ACTK_REGISTRY_USERNAME"
PASSWORD_VARIABLE = "ACTK_REGISTRY_PASSWORD"
ALIBABA_ENDPOINT_VARIABLE = "ACTK_ALIBABA_CR_ENDPOINT"


def registry_kind(host: str, settings: RegistrySettings) -> str:
    """azure, alibaba or generic: the manifest's choice, else read from the host."""
    if settings.kind != "auto":
        return settings.kind
    if is_azure(host):
        return "azure"
    from toolkit.registry import alibaba

    return "alibaba" if alibaba.parse_host(host) is not None else "generic"


def resolve_credentials(
    host: str,
    settings: RegistrySettings,
    env: Mapping[str, str],
    *,
    username: str | None = None,
    password: str | None = None,
) -> RegistryCredentials | None:
    """The credentials to push to ``host`` with, or None to try without."""
    if username or password:
        if not (username and password):
            raise UsageError(
                "--username and --password-stdin go together",
                hint="echo \"$TOKEN\" | actk push --username NAME --password-stdin",
            )
        return RegistryCredentials(host, username, password, source="--username/--password-stdin")
    env_user, env_password = env.get(USERNAME_VARIABLE), env.get(PASSWORD_VARIABLE)
    if env_user and env_password:
        return RegistryCredentials(
            host, env_user, env_password, source=f"{USERNAME_VARIABLE}/{PASSWORD_VARIABLE}"
        )
    if bool(env_user) != bool(env_password):
        missing = PASSWORD_VARIABLE if env_user else USERNAME_VARIABLE
        raise UsageError(
            f"{missing} is not set but its partner is",
            hint=f"set both {USERNAME_VARIABLE} and {PASSWORD_VARIABLE}, or neither",
        )
    kind = registry_kind(host, settings)
    if kind == "azure":
        from toolkit.registry import azure

        return azure.credentials_for(host, settings, env)
    if kind == "alibaba":
        from toolkit.registry import alibaba

        return alibaba.credentials_for(
            host,
            instance_id=settings.instance_id,
            region=settings.region,
            env=env,
            endpoint=env.get(ALIBABA_ENDPOINT_VARIABLE) or None,
        )
    return generic.from_docker_config(host)
