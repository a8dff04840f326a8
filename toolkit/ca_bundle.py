"""The corporate / proxy CA bundle that package installs inside a build must trust.

It reaches the build as the BuildKit secret ``ca`` (mounted at ``/run/secrets/ca`` for one
``RUN`` step), so it never lands in an image layer.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from toolkit.errors import UsageError

ENVIRONMENT_VARIABLES = ("SSL_CERT_FILE", "REQUESTS_CA_BUNDLE", "PIP_CERT")
SECRET_ID = "ca"


@dataclass(frozen=True)
class CaBundle:
    path: Path
    source: str  # "--ca-bundle" or the environment variable it came from


def find_ca_bundle(flag: Path | None, environ: dict[str, str] | None = None) -> CaBundle | None:
    """``--ca-bundle`` first, then SSL_CERT_FILE, REQUESTS_CA_BUNDLE and PIP_CERT."""
    environ = dict(os.environ) if environ is None else environ
    if flag is not None:
        return _checked(Path(flag), "--ca-bundle")
    for name in ENVIRONMENT_VARIABLES:
        value = environ.get(name)
        if value:
            return _checked(Path(value), name)
    return None


def _checked(path: Path, source: str) -> CaBundle:
    path = path.expanduser()
    if not path.is_file():
        raise UsageError(
            f"the CA bundle {path} (from {source}) does not exist or is not a file",
            hint="pass a PEM file, e.g. --ca-bundle /etc/ssl/certs/ca-certificates.crt",
        )
    head = path.read_bytes()[:1_000_000]
    if b"-----BEGIN CERTIFICATE-----" not in head:
        raise UsageError(
            f"the CA bundle {path} (from {source}) holds no PEM certificate",
            hint="export the CA as PEM (-----BEGIN CERTIFICATE-----), not DER",
        )
    return CaBundle(path=path.resolve(), source=source)
