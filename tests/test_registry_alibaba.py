"""Alibaba Container Registry credentials: which host means which flow, each flow against the
contract server (which checks every signature like Alibaba's gateway), each failure's hint, and
no secret in any error."""

from __future__ import annotations

import json
import sys
import types
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from alibaba_contract import AlibabaCRContract, Instance

from toolkit.cloud.alibaba import AlibabaCredentials
from toolkit.cloud.http import RetryPolicy
from toolkit.errors import RegistryError, ToolkitError, UsageError
from toolkit.manifest import RegistrySettings
from toolkit.registry.alibaba import credentials_for, parse_host, push_hint
from toolkit.registry.credentials import RegistryCredentials
from toolkit.registry.resolve import ALIBABA_ENDPOINT_VARIABLE, resolve_credentials

PERSONAL = "registry.cn-hangzhou.aliyuncs.com"
ENTERPRISE = "team-a-registry.cn-hangzhou.cr.aliyuncs.com"
INSTANCE = Instance("cri-teama0001", "team-a")
FAST = RetryPolicy(attempts=3, backoff=0)
Start = Callable[..., AlibabaCRContract]


def login(cr: AlibabaCRContract, host: str, **kwargs: Any) -> RegistryCredentials:
    """credentials_for against the contract server, with its access key in the environment."""
    env = kwargs.pop("env", cr.env)
    return credentials_for(host, env=env, endpoint=cr.endpoint, retry=FAST, **kwargs)


def failure(cr: AlibabaCRContract, host: str = PERSONAL, **kwargs: Any) -> RegistryError:
    with pytest.raises(RegistryError) as caught:
        login(cr, host, **kwargs)
    return caught.value


# --- host names -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("host", "edition", "region", "vpc", "instance"),
    [
        ("registry.cn-hangzhou.aliyuncs.com", "personal", "cn-hangzhou", False, None),
        ("registry-vpc.cn-shanghai.aliyuncs.com", "personal", "cn-shanghai", True, None),
        ("registry-intl.ap-southeast-1.aliyuncs.com", "personal", "ap-southeast-1", False, None),
        ("Registry.CN-Beijing.Aliyuncs.com", "personal", "cn-beijing", False, None),
        ("registry.cn-hangzhou.aliyuncs.com:443", "personal", "cn-hangzhou", False, None),
        (
            "team-a-registry.cn-hangzhou.cr.aliyuncs.com",
            "enterprise",
            "cn-hangzhou",
            False,
            "team-a",
        ),
        (
            "team-a-registry-vpc.cn-hangzhou.cr.aliyuncs.com",
            "enterprise",
            "cn-hangzhou",
            True,
            "team-a",
        ),
        ("abc-registry.eu-central-1.cr.aliyuncs.com", "enterprise", "eu-central-1", False, "abc"),
        (
            f"{'a' * 30}-registry.cn-hangzhou.cr.aliyuncs.com",
            "enterprise",
            "cn-hangzhou",
            False,
            "a" * 30,
        ),
        (
            "x-registry-registry.cn-hangzhou.cr.aliyuncs.com",
            "enterprise",
            "cn-hangzhou",
            False,
            "x-registry",
        ),
    ],
)
def test_alibaba_hosts_name_their_edition_region_and_instance(
    host: str, edition: str, region: str, vpc: bool, instance: str | None
) -> None:
    parsed = parse_host(host)

    assert parsed is not None
    assert (parsed.edition, parsed.region, parsed.vpc, parsed.instance_name) == (
        edition,
        region,
        vpc,
        instance,
    )


@pytest.mark.parametrize(
    "host",
    [
        "docker.io",
        "myreg.azurecr.io",
        "127.0.0.1:5000",
        "cr.cn-hangzhou.aliyuncs.com",  # the API, not a registry
        "registry.cn-hangzhou.aliyuncs.com.example.com",
        "registry.cn-hangzhou.cr.aliyuncs.com",  # an enterprise host needs an instance name
        "ab-registry.cn-hangzhou.cr.aliyuncs.com",  # instance names are 3-30 characters
        f"{'a' * 31}-registry.cn-hangzhou.cr.aliyuncs.com",
        "-abc-registry.cn-hangzhou.cr.aliyuncs.com",
        "team-a-registry.cn-hangzhou.aliyuncs.com",  # enterprise hosts live under .cr.
        "registry.aliyuncs.com",
    ],
)
def test_other_hosts_are_not_alibaba_registries(host: str) -> None:
    assert parse_host(host) is None


def test_a_vpc_host_knows_its_internet_twin_and_explains_itself() -> None:
    personal = parse_host("registry-vpc.cn-shanghai.aliyuncs.com")
    enterprise = parse_host("t1m-registry-vpc.cn-shanghai.cr.aliyuncs.com")

    assert personal is not None and enterprise is not None
    assert personal.internet_host == "registry.cn-shanghai.aliyuncs.com"
    assert enterprise.internet_host == "t1m-registry.cn-shanghai.cr.aliyuncs.com"
    hint = push_hint("registry-vpc.cn-shanghai.aliyuncs.com")
    assert hint is not None
    assert "inside an Alibaba Cloud VPC in cn-shanghai" in hint
    assert "registry.cn-shanghai.aliyuncs.com" in hint
    assert push_hint(PERSONAL) is None


# --- the credential flows -------------------------------------------------------------------


def test_personal_edition_gets_a_temporary_token_from_get_tokens(alibaba_cr: Start) -> None:
    cr = alibaba_cr(username="cr_temp_user", password="personal-registry-token-1234")

    credentials = login(cr, PERSONAL)

    assert (credentials.registry, credentials.username, credentials.password) == (
        PERSONAL,
        "cr_temp_user",
        "personal-registry-token-1234",
    )
    assert credentials.expires_at is not None
    [call] = cr.requests
    assert (call.method, call.path, call.body) == ("GET", "/tokens", b"")
    assert (call.action, call.version) == ("GetAuthorizationToken", "2016-06-07")
    assert "personal edition" in credentials.source
    assert "ALIBABA_CLOUD_ACCESS_KEY_ID" in credentials.source


def test_enterprise_edition_with_an_instance_id_asks_for_that_instance(
    alibaba_cr: Start,
) -> None:
    cr = alibaba_cr(password="enterprise-token-5678", instances=[INSTANCE])

    credentials = login(cr, ENTERPRISE, instance_id="cri-teama0001")

    assert credentials.password == "enterprise-token-5678"
    [call] = cr.requests
    assert (call.method, call.path, call.action, call.version) == (
        "POST",
        "/",
        "GetAuthorizationToken",
        "2018-12-01",
    )
    assert call.query == {"InstanceId": "cri-teama0001"}
    assert "cri-teama0001" in credentials.source


def test_enterprise_edition_by_name_pages_through_list_instance(alibaba_cr: Start) -> None:
    others = [Instance(f"cri-other{n:04d}", f"other-{n}") for n in range(35)]
    cr = alibaba_cr(instances=[*others, INSTANCE])

    credentials = login(cr, ENTERPRISE)

    assert [(r.action, r.query.get("PageNo")) for r in cr.requests] == [
        ("ListInstance", "1"),
        ("ListInstance", "2"),
        ("GetAuthorizationToken", None),
    ]
    assert cr.requests[-1].query == {"InstanceId": "cri-teama0001"}
    assert "team-a found with ListInstance" in credentials.source


def test_enterprise_instance_that_does_not_exist_is_named_with_the_ones_that_do(
    alibaba_cr: Start,
) -> None:
    cr = alibaba_cr(instances=[Instance("cri-b0001", "team-b")])

    error = failure(cr, ENTERPRISE)

    assert "no Container Registry enterprise instance named team-a in cn-hangzhou" in error.message
    assert "team-b" in error.message
    assert "image.registry.instance_id" in (error.hint or "")


def test_enterprise_instance_that_is_not_running_is_refused(alibaba_cr: Start) -> None:
    cr = alibaba_cr(instances=[Instance("cri-teama0001", "team-a", status="STOPPED")])

    error = failure(cr, ENTERPRISE)

    assert "team-a (cri-teama0001) in cn-hangzhou is STOPPED, not RUNNING" in error.message
    assert "RUNNING" in (error.hint or "")
    assert cr.calls("GetAuthorizationToken") == []


def test_enterprise_instance_id_the_api_does_not_know_is_reported(alibaba_cr: Start) -> None:
    cr = alibaba_cr(instances=[INSTANCE])

    error = failure(cr, ENTERPRISE, instance_id="cri-missing01")

    assert "INSTANCE_NOT_EXIST" in error.message


def test_a_custom_domain_works_with_instance_id_and_region(alibaba_cr: Start) -> None:
    cr = alibaba_cr(instances=[INSTANCE])

    credentials = login(cr, "images.example.com", instance_id="cri-teama0001", region="cn-hangzhou")

    assert credentials.registry == "images.example.com"
    assert cr.requests[0].query == {"InstanceId": "cri-teama0001"}


def resolve(cr: AlibabaCRContract, host: str, **env: str) -> RegistryCredentials | None:
    """What a push resolves for ``host``, with the contract server as the cr API."""
    return resolve_credentials(
        host, RegistrySettings(), {**cr.env, ALIBABA_ENDPOINT_VARIABLE: cr.endpoint, **env}
    )


def test_fixed_user_and_password_skip_the_api(alibaba_cr: Start) -> None:
    cr = alibaba_cr()

    credentials = resolve(
        cr, ENTERPRISE, ACTK_REGISTRY_USERNAME="ops@team", ACTK_REGISTRY_PASSWORD="fixed-pw-9"
    )

    assert credentials is not None
    assert (credentials.username, credentials.password) == ("ops@team", "fixed-pw-9")
    assert credentials.source.startswith("ACTK_REGISTRY_USERNAME/ACTK_REGISTRY_PASSWORD")
    assert cr.requests == []


def test_half_a_fixed_login_is_a_usage_error(alibaba_cr: Start) -> None:
    cr = alibaba_cr()

    with pytest.raises(UsageError) as caught:
        resolve(cr, PERSONAL, ACTK_REGISTRY_USERNAME="ops")

    assert "ACTK_REGISTRY_PASSWORD is not set" in caught.value.message
    assert cr.requests == []


def test_without_a_fixed_login_a_push_uses_the_temporary_token(alibaba_cr: Start) -> None:
    cr = alibaba_cr(username="cr_temp_user", password="personal-registry-token-1234")

    credentials = resolve(cr, PERSONAL)

    assert credentials is not None and credentials.password == "personal-registry-token-1234"
    assert [r.action for r in cr.requests] == ["GetAuthorizationToken"]


def test_sts_credentials_send_and_sign_the_security_token(alibaba_cr: Start) -> None:
    cr = alibaba_cr(access_key_id="STS.NContractKey", security_token="sts-security-token-abcdef")

    credentials = login(cr, PERSONAL)

    [call] = cr.requests
    assert call.headers["x-acs-security-token"] == "sts-security-token-abcdef"
    assert "x-acs-security-token" in call.signed_headers
    assert "ALIBABA_CLOUD_SECURITY_TOKEN" in credentials.source


def test_sts_access_key_without_its_token_is_rejected_with_the_sts_hint(
    alibaba_cr: Start,
) -> None:
    cr = alibaba_cr(access_key_id="STS.NContractKey", security_token="sts-security-token-abcdef")
    env = {k: v for k, v in cr.env.items() if k != "ALIBABA_CLOUD_SECURITY_TOKEN"}

    error = failure(cr, env=env)

    assert "InvalidSecurityToken" in error.message
    assert "ALIBABA_CLOUD_SECURITY_TOKEN" in (error.hint or "")


def test_default_credential_chain_is_used_when_the_variables_are_unset(
    alibaba_cr: Start, monkeypatch: pytest.MonkeyPatch
) -> None:
    cr = alibaba_cr()
    model = types.SimpleNamespace(
        access_key_id=cr.access_key_id,
        access_key_secret=cr.access_key_secret,
        security_token=None,
        provider_name="profile",
    )
    fake = types.ModuleType("alibabacloud_credentials.client")
    fake.Client = lambda: types.SimpleNamespace(get_credential=lambda: model)
    monkeypatch.setitem(sys.modules, "alibabacloud_credentials.client", fake)

    credentials = login(cr, PERSONAL, env={})

    assert "alibabacloud_credentials default chain (profile)" in credentials.source
    assert len(cr.requests) == 1


def test_no_alibaba_credentials_names_the_variables_to_set(
    alibaba_cr: Start, monkeypatch: pytest.MonkeyPatch
) -> None:
    cr = alibaba_cr()
    monkeypatch.setitem(sys.modules, "alibabacloud_credentials.client", None)

    error = failure(cr, env={})

    assert "ALIBABA_CLOUD_ACCESS_KEY_ID" in error.message
    assert "ALIBABA_CLOUD_ACCESS_KEY_SECRET" in (error.hint or "")
    assert cr.requests == []


# --- failures and their hints ---------------------------------------------------------------


def test_wrong_secret_is_rejected_by_the_signature_check_with_the_clock_or_secret_hint(
    alibaba_cr: Start,
) -> None:
    cr = alibaba_cr()
    env = {**cr.env, "ALIBABA_CLOUD_ACCESS_KEY_SECRET": "not-the-right-secret-000"}

    error = failure(cr, env=env)

    assert "SignatureDoesNotMatch" in error.message
    assert cr.requests[0].status == 400
    assert "ALIBABA_CLOUD_ACCESS_KEY_SECRET" in (error.hint or "")
    assert "clock" in (error.hint or "")
    assert len(cr.requests) == 1  # a signature error is not retried


def test_a_skewed_clock_is_reported_as_one(alibaba_cr: Start) -> None:
    cr = alibaba_cr(clock_skew=20 * 60)

    error = failure(cr)

    assert "InvalidTimeStamp.Expired" in error.message
    assert "clock" in (error.hint or "")


def test_unknown_access_key_id_says_which_key(alibaba_cr: Start) -> None:
    cr = alibaba_cr()
    env = {**cr.env, "ALIBABA_CLOUD_ACCESS_KEY_ID": "LTAI5tSomebodyElse"}

    error = failure(cr, env=env)

    assert "InvalidAccessKeyId.NotFound" in error.message
    assert "LTAI5tSomebodyElse" in (error.hint or "")
    assert "ALIBABA_CLOUD_ACCESS_KEY_ID" in (error.hint or "")


@pytest.mark.parametrize(
    ("host", "kwargs", "action", "permission"),
    [
        (PERSONAL, {}, "GetAuthorizationToken", "cr:GetAuthorizationToken"),
        (
            ENTERPRISE,
            {"instance_id": "cri-teama0001"},
            "GetAuthorizationToken",
            "cr:GetAuthorizationToken",
        ),
        (ENTERPRISE, {}, "ListInstance", "cr:ListInstance"),
    ],
)
def test_missing_ram_permission_names_the_action_to_grant(
    alibaba_cr: Start, host: str, kwargs: dict[str, str], action: str, permission: str
) -> None:
    cr = alibaba_cr(instances=[INSTANCE])
    cr.fail("forbidden", action=action)

    error = failure(cr, host, **kwargs)

    assert "Forbidden.RAM" in error.message
    assert permission in (error.hint or "")


def test_a_permission_error_without_details_still_names_the_action(alibaba_cr: Start) -> None:
    cr = alibaba_cr(instances=[INSTANCE])
    cr.fail("bare", status=403, body={"Code": "NoPermission", "Message": "no permission"})

    error = failure(cr, ENTERPRISE)

    assert "ListInstance" in error.message
    assert "cr:ListInstance" in (error.hint or "")


def test_ram_user_without_a_registry_password_is_told_to_set_one(alibaba_cr: Start) -> None:
    cr = alibaba_cr()
    cr.fail("user_not_exist")

    error = failure(cr)

    assert "USER_NOT_EXIST" in error.message
    assert "user is not exist" in error.message
    assert "Set Password" in (error.hint or "")
    assert "ACTK_REGISTRY_USERNAME/ACTK_REGISTRY_PASSWORD" in (error.hint or "")


def test_throttling_is_retried_with_a_fresh_signature(alibaba_cr: Start) -> None:
    cr = alibaba_cr(password="after-throttling-token")
    cr.fail("throttling", times=2)

    credentials = login(cr, PERSONAL)

    assert credentials.password == "after-throttling-token"
    assert [r.code for r in cr.requests] == ["Throttling.User", "Throttling.User", ""]
    assert len({r.headers["x-acs-signature-nonce"] for r in cr.requests}) == 3


def test_throttling_that_does_not_stop_fails_after_the_bounded_attempts(
    alibaba_cr: Start,
) -> None:
    cr = alibaba_cr()
    cr.fail("throttling", times=None)

    error = failure(cr)

    assert len(cr.requests) == FAST.attempts
    assert "after 3 attempts" in error.message
    assert "throttling" in (error.hint or "")


def test_a_server_error_is_retried(alibaba_cr: Start) -> None:
    cr = alibaba_cr(instances=[INSTANCE])
    cr.fail("server_error", action="GetAuthorizationToken")

    credentials = login(cr, ENTERPRISE, instance_id="cri-teama0001")

    assert [r.status for r in cr.requests] == [500, 200]
    assert credentials.username == "cr_temp_user"


def test_server_errors_that_persist_fail_with_a_retry_later_hint(alibaba_cr: Start) -> None:
    cr = alibaba_cr()
    cr.fail("server_error", times=None)

    error = failure(cr)

    assert "InternalError" in error.message
    assert len(cr.requests) == FAST.attempts
    assert "retry" in (error.hint or "")


def test_an_unreachable_endpoint_fails_after_bounded_retries(alibaba_cr: Start) -> None:
    cr = alibaba_cr()
    endpoint, env = cr.endpoint, cr.env
    cr.stop()

    with pytest.raises(RegistryError) as caught:
        credentials_for(PERSONAL, env=env, endpoint=endpoint, retry=FAST)

    assert f"cannot reach {endpoint.removeprefix('http://')}" in caught.value.message
    assert "after 3 attempts" in caught.value.message
    assert endpoint in (caught.value.hint or "")


def test_a_region_whose_api_host_does_not_resolve_points_at_the_region(
    alibaba_cr: Start,
) -> None:
    cr = alibaba_cr()
    asked: list[str] = []

    def no_such_host(request: httpx.Request) -> httpx.Response:
        asked.append(request.url.host)
        raise httpx.ConnectError("[Errno -2] Name or service not known", request=request)

    with pytest.raises(RegistryError) as caught:
        credentials_for(
            "registry.cn-nowhere-9.aliyuncs.com",
            env=cr.env,
            retry=FAST,
            transport=httpx.MockTransport(no_such_host),
        )

    assert asked == ["cr.cn-nowhere-9.aliyuncs.com"] * FAST.attempts
    assert "cannot reach cr.cn-nowhere-9.aliyuncs.com" in caught.value.message
    assert "'cn-nowhere-9' is an Alibaba Cloud region" in (caught.value.hint or "")


def test_an_unknown_region_in_the_host_is_reported_before_any_call(alibaba_cr: Start) -> None:
    cr = alibaba_cr()

    error = failure(cr, "registry.hangzhou.aliyuncs.com")

    assert "unknown Alibaba Cloud region 'hangzhou'" in error.message
    assert "cn-hangzhou" in (error.hint or "")
    assert cr.requests == []


def test_a_region_that_contradicts_the_host_is_refused(alibaba_cr: Start) -> None:
    cr = alibaba_cr()

    error = failure(cr, PERSONAL, region="cn-beijing")

    assert "image.registry.region is cn-beijing" in error.message
    assert "cn-hangzhou" in error.message


def test_a_non_alibaba_host_without_region_says_what_is_missing(alibaba_cr: Start) -> None:
    cr = alibaba_cr()

    error = failure(cr, "images.example.com")

    assert "not an Alibaba Container Registry host" in error.message
    assert "image.registry.region" in (error.hint or "")


def test_an_instance_id_for_a_personal_edition_host_is_a_mistake(alibaba_cr: Start) -> None:
    cr = alibaba_cr()

    error = failure(cr, PERSONAL, instance_id="cri-teama0001")

    assert "personal edition" in error.message
    assert cr.requests == []


def test_a_vpc_host_keeps_its_name_and_its_source_warns_about_pushing_from_outside(
    alibaba_cr: Start,
) -> None:
    cr = alibaba_cr()

    credentials = login(cr, "registry-vpc.cn-hangzhou.aliyuncs.com")

    assert credentials.registry == "registry-vpc.cn-hangzhou.aliyuncs.com"
    assert "VPC endpoint" in credentials.source
    assert "registry.cn-hangzhou.aliyuncs.com" in credentials.source


# --- secrets stay secret --------------------------------------------------------------------


SECRET = "contract-test-access-key-secret-0123456789"
TOKEN = "sts-security-token-must-not-leak-42"
PASSWORD = "returned-registry-password-must-not-leak"


def all_text(error: ToolkitError) -> str:
    return "\n".join((str(error), repr(error), error.hint or "", json.dumps(error.to_dict())))


def test_no_secret_appears_in_any_error_or_repr(
    alibaba_cr: Start, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "alibabacloud_credentials.client", None)
    cr = alibaba_cr(
        access_key_id="STS.NLeakCheck",
        access_key_secret=SECRET,
        security_token=TOKEN,
        password=PASSWORD,
        instances=[INSTANCE],
    )
    errors: list[ToolkitError] = []

    def collect(host: str = PERSONAL, **kwargs: Any) -> ToolkitError:
        with pytest.raises(ToolkitError) as caught:
            login(cr, host, **kwargs)
        errors.append(caught.value)
        return caught.value

    for fault in ("throttling", "server_error", "forbidden", "user_not_exist"):
        cr.fail(fault, times=None)
        collect()
        cr.clear_faults()
    # A server that echoes secrets back (Alibaba does not, but nothing should rely on that).
    cr.fail("echo", status=400, body={"Code": "InvalidParameter", "Message": f"{SECRET} {TOKEN}"})
    echoed = collect()
    cr.clear_faults()
    collect(env={**cr.env, "ALIBABA_CLOUD_ACCESS_KEY_SECRET": SECRET[::-1]})
    collect(env={**cr.env, "ALIBABA_CLOUD_SECURITY_TOKEN": TOKEN + "-stale"})
    collect(env={"ALIBABA_CLOUD_ACCESS_KEY_SECRET": SECRET})
    collect(ENTERPRISE, instance_id="cri-unknown")
    good = login(cr, PERSONAL)

    for error in errors:
        text = all_text(error)
        for secret in (SECRET, TOKEN, PASSWORD):
            assert secret not in text, f"{type(error).__name__} leaks a secret: {text}"
    assert "[REDACTED]" in echoed.message
    assert PASSWORD not in repr(good) and PASSWORD not in good.source
    assert SECRET not in good.source and TOKEN not in good.source
    key = AlibabaCredentials("STS.NLeakCheck", SECRET, TOKEN, source="test")
    assert SECRET not in repr(key) and TOKEN not in repr(key)
