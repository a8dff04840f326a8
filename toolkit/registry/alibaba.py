"""Alibaba Cloud Container Registry (ACR): temporary login credentials from the cr API.

Which flow, by host (``parse_host``):

    registry[-vpc].<region>.aliyuncs.com                      personal edition
        cr 2016-06-07 GetAuthorizationToken: ROA, GET /tokens on cr.<region>.aliyuncs.com
    <instance>-registry[-vpc].<region>.cr.aliyuncs.com        enterprise edition (ACR EE)
        cr 2018-12-01 GetAuthorizationToken: RPC, InstanceId; the id comes from the manifest
        (image.registry.instance_id) or from ListInstance by the host's instance name

A fixed user and password (``ACTK_REGISTRY_USERNAME`` / ``ACTK_REGISTRY_PASSWORD``, e.g. the
console's fixed registry password) win over both; :mod:`toolkit.registry.resolve` checks them
before it calls here. The temporary password lives one hour (or as long as the STS token that
asked for it) and carries the caller's RAM permissions. ``-vpc``
hosts use the same token API; they are only reachable from inside a VPC of their region, so
they are kept as given and ``push_hint`` says what to do when a push to one cannot connect.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from toolkit.cloud.alibaba import (
    AlibabaAPIError,
    AlibabaClient,
    AlibabaCredentials,
    validate_region,
)
from toolkit.errors import CloudError, RegistryError
from toolkit.registry.credentials import RegistryCredentials
from toolkit.registry.resolve import PASSWORD_VARIABLE, USERNAME_VARIABLE

if TYPE_CHECKING:
    import httpx

    from toolkit.cloud.http import RetryPolicy

PERSONAL_API_VERSION = "2016-06-07"
ENTERPRISE_API_VERSION = "2018-12-01"
GET_TOKEN_PERMISSION = "cr:GetAuthorizationToken"
LIST_INSTANCE_PERMISSION = "cr:ListInstance"
LIST_PAGE_SIZE = 30
MAX_LIST_PAGES = 100
REGISTRY_PASSWORD_HINT = (
    "this RAM user has no Container Registry login password yet: set one in the Container "
    "Registry console (Instances > Access Credential > Set Password), or use a fixed user and "
    f"password through {USERNAME_VARIABLE}/{PASSWORD_VARIABLE}"
)

_PERSONAL_HOST = re.compile(
    r"^registry(?P<intl>-intl)?(?P<vpc>-vpc)?\.(?P<region>[a-z0-9-]+)\.aliyuncs\.com$"
)
_ENTERPRISE_HOST = re.compile(
    r"^(?P<instance>[a-z0-9][a-z0-9-]{1,28}[a-z0-9])-registry(?P<vpc>-vpc)?"
    r"\.(?P<region>[a-z0-9-]+)\.cr\.aliyuncs\.com$"
)


@dataclass(frozen=True)
class AlibabaRegistryHost:
    """What an ACR host name says: edition, region, VPC or internet, and the EE instance."""

    host: str
    edition: Literal["personal", "enterprise"]
    region: str
    vpc: bool = False
    instance_name: str | None = None

    @property
    def internet_host(self) -> str:
        """The same registry's internet endpoint (the host itself when it is not ``-vpc``)."""
        label, rest = self.host.split(".", 1)
        return f"{label.removesuffix('-vpc')}.{rest}" if self.vpc else self.host


def parse_host(host: str) -> AlibabaRegistryHost | None:
    """The ACR host ``host`` names, or None when it is not an Alibaba registry host.

    Personal edition: ``registry[-intl][-vpc].<region>.aliyuncs.com``; enterprise edition:
    ``<instance>-registry[-vpc].<region>.cr.aliyuncs.com`` (instance name 3-30 characters).
    """
    name = host.strip().lower().rstrip(".")
    if name.endswith(":443"):
        name = name[: -len(":443")]
    if match := _PERSONAL_HOST.match(name):
        return AlibabaRegistryHost(name, "personal", match["region"], vpc=bool(match["vpc"]))
    if match := _ENTERPRISE_HOST.match(name):
        return AlibabaRegistryHost(
            name,
            "enterprise",
            match["region"],
            vpc=bool(match["vpc"]),
            instance_name=match["instance"],
        )
    return None


def push_hint(host: str) -> str | None:
    """What to tell a user whose push to ``host`` could not connect, when the host is a VPC
    endpoint (None otherwise)."""
    parsed = parse_host(host)
    if parsed is None or not parsed.vpc:
        return None
    return (
        f"{parsed.host} is a VPC endpoint, reachable only from inside an Alibaba Cloud VPC in "
        f"{parsed.region}; from elsewhere push to {parsed.internet_host}"
    )


def credentials_for(
    host: str,
    *,
    instance_id: str | None = None,
    region: str | None = None,
    env: Mapping[str, str],
    endpoint: str | None = None,
    retry: RetryPolicy | None = None,
    transport: httpx.BaseTransport | None = None,
) -> RegistryCredentials:
    """Login credentials for the ACR registry at ``host`` from the cr API (the caller has
    already preferred ``ACTK_REGISTRY_USERNAME``/``ACTK_REGISTRY_PASSWORD``).

    ``instance_id`` and ``region`` come from ``image.registry`` in agent.yaml (needed only for a
    custom domain, or to skip the ListInstance lookup); ``endpoint`` replaces
    ``https://cr.<region>.aliyuncs.com`` (tests point it at a contract server).
    """
    parsed = parse_host(host)
    region = _region(host, parsed, region)
    if parsed is not None and parsed.edition == "personal" and instance_id:
        raise RegistryError(
            f"image.registry.instance_id is {instance_id}, but {host} is a personal edition "
            "registry, which has no instance id",
            hint="remove image.registry.instance_id from agent.yaml, or push to your "
            "enterprise instance's <name>-registry.<region>.cr.aliyuncs.com host",
        )
    try:
        credentials = AlibabaCredentials.from_env(env)
        with AlibabaClient(
            credentials,
            product="cr",
            region=region,
            endpoint=endpoint,
            retry=retry,
            transport=transport,
        ) as client:
            if parsed is not None and parsed.edition == "personal":
                return _personal(client, host, credentials, parsed)
            return _enterprise(client, host, credentials, parsed, instance_id)
    except AlibabaAPIError as exc:
        raise _registry_error(exc) from None
    except CloudError as exc:
        raise RegistryError(exc.message, hint=exc.hint) from None


# --- the flows --------------------------------------------------------------------------------


def _region(host: str, parsed: AlibabaRegistryHost | None, region: str | None) -> str:
    if parsed is None:
        if not region:
            raise RegistryError(
                f"{host} is not an Alibaba Container Registry host, and no region is set",
                hint="Alibaba registry hosts look like registry.<region>.aliyuncs.com or "
                "<instance>-registry.<region>.cr.aliyuncs.com; for a custom domain set "
                "image.registry.region and image.registry.instance_id in agent.yaml",
            )
        chosen = region
    else:
        if region and region != parsed.region:
            raise RegistryError(
                f"image.registry.region is {region}, but {host} is in {parsed.region}",
                hint=f"remove image.registry.region from agent.yaml (the host names the "
                f"region) or set it to {parsed.region}",
            )
        chosen = parsed.region
    try:
        return validate_region(chosen)
    except CloudError as exc:
        where = f"the host {host}" if parsed else "image.registry.region"
        raise RegistryError(
            f"unknown Alibaba Cloud region '{chosen}' (from {where})", hint=exc.hint
        ) from None


def _personal(
    client: AlibabaClient,
    host: str,
    credentials: AlibabaCredentials,
    parsed: AlibabaRegistryHost,
) -> RegistryCredentials:
    answer = client.roa(
        "GET",
        "/tokens",
        action="GetAuthorizationToken",
        version=PERSONAL_API_VERSION,
        ram_action=GET_TOKEN_PERMISSION,
    )
    data = answer.get("data") if isinstance(answer.get("data"), dict) else {}
    return _login(
        host,
        data.get("tempUserName"),
        data.get("authorizationToken"),
        f"GetAuthorizationToken on {client.host} answered without data.tempUserName and "
        "data.authorizationToken",
        _source(
            f"personal edition temporary token (cr GetAuthorizationToken "
            f"{PERSONAL_API_VERSION}, {client.region})",
            credentials,
            parsed,
        ),
        data.get("expireDate"),
    )


def _enterprise(
    client: AlibabaClient,
    host: str,
    credentials: AlibabaCredentials,
    parsed: AlibabaRegistryHost | None,
    instance_id: str | None,
) -> RegistryCredentials:
    how = "from image.registry.instance_id"
    if not instance_id:
        if parsed is None or not parsed.instance_name:
            raise RegistryError(
                f"no enterprise edition instance id for {host}",
                hint="set image.registry.instance_id (cri-...) in agent.yaml",
            )
        instance_id = _instance_id(client, parsed.instance_name)
        how = f"instance {parsed.instance_name} found with ListInstance"
    answer = client.rpc(
        "GetAuthorizationToken",
        ENTERPRISE_API_VERSION,
        {"InstanceId": instance_id},
        ram_action=GET_TOKEN_PERMISSION,
    )
    return _login(
        host,
        answer.get("TempUsername"),
        answer.get("AuthorizationToken"),
        f"GetAuthorizationToken on {client.host} for {instance_id} answered without "
        "TempUsername and AuthorizationToken",
        _source(
            f"enterprise edition temporary token for {instance_id} ({how}; cr "
            f"GetAuthorizationToken {ENTERPRISE_API_VERSION}, {client.region})",
            credentials,
            parsed,
        ),
        answer.get("ExpireTime"),
    )


def _instance_id(client: AlibabaClient, name: str) -> str:
    """The id of the enterprise instance called ``name``, which must be RUNNING."""
    seen: list[str] = []
    for page in range(1, MAX_LIST_PAGES + 1):
        answer = client.rpc(
            "ListInstance",
            ENTERPRISE_API_VERSION,
            {"PageNo": page, "PageSize": LIST_PAGE_SIZE},
            ram_action=LIST_INSTANCE_PERMISSION,
        )
        instances = [i for i in answer.get("Instances") or [] if isinstance(i, dict)]
        for instance in instances:
            if instance.get("InstanceName") != name:
                seen.append(str(instance.get("InstanceName")))
                continue
            instance_id = str(instance.get("InstanceId") or "")
            status = str(instance.get("InstanceStatus") or "UNKNOWN")
            if status != "RUNNING":
                raise RegistryError(
                    f"Container Registry instance {name} ({instance_id}) in {client.region} is "
                    f"{status}, not RUNNING",
                    hint="start or renew the instance in the Container Registry console, or "
                    "wait until it is RUNNING, then push again",
                )
            if not instance_id:
                break
            return instance_id
        total = _int(answer.get("TotalCount"))
        last_page = total is not None and page * LIST_PAGE_SIZE >= total
        if len(instances) < LIST_PAGE_SIZE or last_page:
            break
    others = ""
    if seen:
        others = f" (it sees: {', '.join(seen[:10])}{', ...' if len(seen) > 10 else ''})"
    raise RegistryError(
        f"no Container Registry enterprise instance named {name} in {client.region} for this "
        f"access key{others}",
        hint="check the registry host in image.repository, or set image.registry.instance_id "
        "(cri-...) in agent.yaml; the instance must belong to the access key's account",
    )


def _registry_error(exc: AlibabaAPIError) -> RegistryError:
    if exc.code == "USER_NOT_EXIST" or "user is not exist" in exc.message.lower():
        return RegistryError(exc.message, hint=REGISTRY_PASSWORD_HINT)
    return RegistryError(exc.message, hint=exc.hint)


def _login(
    host: str, username: Any, password: Any, missing: str, source: str, expires_ms: Any
) -> RegistryCredentials:
    """The temporary login a GetAuthorizationToken answered; ``missing`` is the error when the
    answer lacks it."""
    if not (isinstance(username, str) and username and isinstance(password, str) and password):
        raise RegistryError(
            missing,
            hint="check that the endpoint is the Container Registry API (cr.<region>.aliyuncs.com)",
        )
    return RegistryCredentials(
        registry=host,
        username=username,
        password=password,
        source=source,
        expires_at=_epoch_seconds(expires_ms),
    )


def _source(what: str, credentials: AlibabaCredentials, parsed: AlibabaRegistryHost | None) -> str:
    text = f"Alibaba Cloud Container Registry {what}, signed with {credentials.source}"
    if parsed is not None and parsed.vpc:
        text += (
            f"; {parsed.host} is a VPC endpoint: from outside an Alibaba Cloud VPC in "
            f"{parsed.region} the push is likely to fail (use {parsed.internet_host})"
        )
    return text


def _epoch_seconds(milliseconds: Any) -> float | None:
    value = _int(milliseconds)
    return value / 1000 if value else None


def _int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None
