"""The one shape every credential provider returns, kept in memory and never printed."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class RegistryCredentials:
    """A user name and secret for one registry host, and where they came from.

    ``password`` is excluded from ``repr`` so a stray log line or traceback cannot show it;
    ``auth_config`` is the only way out, and it goes straight to the Engine API push call.
    """

    registry: str
    username: str
    password: str = field(repr=False)
    source: str = ""
    expires_at: float | None = None
    # An OAuth2 refresh token (what `docker login` stores for OAuth registries) rather than a
    # password: the engine then asks the registry's token service with grant_type=refresh_token.
    identity_token: bool = False

    def auth_config(self) -> dict[str, str]:
        """The ``X-Registry-Auth`` content docker-py sends with a push."""
        if self.identity_token:
            return {"identitytoken": self.password, "serveraddress": self.registry}
        return {
            "username": self.username,
            "password": self.password,
            "serveraddress": self.registry,
        }

    @property
    def secrets(self) -> tuple[str, ...]:
        """Values that must never appear in output (for ``toolkit.redact``)."""
        return (self.password,)
