"""Credentials any registry accepts: the Docker config and its credential helpers.

Read through docker-py, which follows ``credsStore``/``credHelpers`` exactly as the docker CLI
does. Nothing is written back: what we read stays in memory.
"""

from __future__ import annotations

from toolkit.errors import RegistryError
from toolkit.registry.credentials import RegistryCredentials
from toolkit.registry.hosts import DOCKER_HUB

DOCKER_HUB_INDEX = "https://index.docker.io/v1/"


def from_docker_config(host: str) -> RegistryCredentials | None:
    """The saved login for ``host`` (``docker login``), or None when there is none."""
    from docker import auth
    from docker.errors import DockerException

    try:
        config = auth.load_config()
        entry = config.resolve_authconfig(DOCKER_HUB_INDEX if host == DOCKER_HUB else host)
    except (DockerException, OSError, ValueError) as exc:
        raise RegistryError(
            f"cannot read the Docker credentials for {host}: {str(exc).splitlines()[0][:200]}",
            hint="check ~/.docker/config.json and its credential helper (docker-credential-*), "
            "or pass --username and --password-stdin",
        ) from None
    if not entry:
        return None
    # Entries from the file use lower-case keys, entries from credential helpers capitalised ones.
    if entry.get("IdentityToken"):
        # What `docker login` saves for OAuth registries (ACR among them): a refresh token.
        return RegistryCredentials(
            registry=host,
            username="<token>",
            password=entry["IdentityToken"],
            source="identity token from your Docker config",
            identity_token=True,
        )
    username = entry.get("Username") or entry.get("username") or ""
    password = entry.get("Password") or entry.get("password") or ""
    if not username or not password:
        return None
    return RegistryCredentials(
        registry=host, username=username, password=password, source="your Docker config"
    )
