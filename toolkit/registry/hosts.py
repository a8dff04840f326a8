"""Which registry a reference points at, and how to reach that registry over HTTPS."""

from __future__ import annotations

import ipaddress
import os
import ssl
from pathlib import Path

DOCKER_HUB = "docker.io"
AZURE_SUFFIXES = (".azurecr.io", ".azurecr.cn", ".azurecr.us")
# Where the Docker engine looks for a registry's private CA (and so do we).
DOCKER_CERTS_DIR = Path(os.environ.get("ACTK_DOCKER_CERTS_DIR", "/etc/docker/certs.d"))


def registry_host(repository: str) -> str:
    """The registry host of ``repository`` the way Docker reads it (Docker Hub when none)."""
    first, sep, _ = repository.partition("/")
    if sep and ("." in first or ":" in first or first == "localhost"):
        return first
    return DOCKER_HUB


def repository_path(repository: str) -> str:
    """``host/team/app`` -> ``team/app`` (Docker Hub's official images get ``library/``)."""
    host = registry_host(repository)
    if host == DOCKER_HUB and not repository.startswith(DOCKER_HUB + "/"):
        path = repository
    else:
        path = repository.split("/", 1)[1]
    return path if host != DOCKER_HUB or "/" in path else f"library/{path}"


def is_azure(host: str) -> bool:
    return host.lower().split(":")[0].endswith(AZURE_SUFFIXES)


def is_loopback(host: str) -> bool:
    """127.0.0.0/8, ::1 and localhost: where Docker itself also accepts plain HTTP."""
    if host.startswith("["):
        name = host[1:].partition("]")[0]
    elif host.count(":") == 1:
        name = host.partition(":")[0]
    else:
        name = host
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def tls_context(host: str) -> ssl.SSLContext:
    """The system trust (or SSL_CERT_FILE) plus the engine's CA for this host, if it has one."""
    import httpx

    context = httpx.create_ssl_context(trust_env=True)
    ca = DOCKER_CERTS_DIR / host / "ca.crt"
    if ca.is_file():
        context.load_verify_locations(cafile=str(ca))
    return context
