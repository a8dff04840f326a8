"""`actk build --remote acr`: the plan built on ACR Tasks, against a local ARM contract server."""

from __future__ import annotations

import tarfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from io import BytesIO
from pathlib import Path

import pytest

from tests.acr_tasks_contract import (
    LOG_SIGNATURE,
    SECRET_SIGNATURE,
    AcrTasksContract,
    model_problems,
)
from toolkit.build import BuildOptions, plan_build
from toolkit.builders import BuildRequest
from toolkit.cloud.acr_tasks import parse_login_server
from toolkit.cloud.http import RetryPolicy
from toolkit.console import Console
from toolkit.errors import CloudError, ManifestError, UsageError
from toolkit.manifest import Manifest, RegistrySettings
from toolkit.remote_build import (
    RemoteBuildOptions,
    RemoteBuildResult,
    arm_token,
    check_endpoint,
    pack_context,
    platform_properties,
    registry_resource,
    remote_build,
)

TOKEN = "eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiJ9.eyJ0aWQiOiJ0ZXN0In0.arm-token-signature-0123"
SUBSCRIPTION = "00000000-1111-2222-3333-444444444444"
RESOURCE_GROUP = "rg-agents"
REGISTRY = "contosoagents"
LOGIN_SERVER = f"{REGISTRY}.azurecr.io"
OPENAI_KEY = "sk-test-5f3c9a0d7e1b4c2a"
LOG = [
    "2026/01/01 00:00:00 Downloading source code...",
    "2026/01/01 00:00:01 Finished downloading source code",
    "Step 1/3 : FROM python:3.12-slim",
    "Step 2/3 : COPY . /app  ✓ déjà copié",
    "Step 3/3 : RUN python -m compileall /app",
    "Successfully built 0123456789ab",
    f"2026/01/01 00:00:09 Successfully pushed image: {LOGIN_SERVER}/demo-agent:v1",
]
FAST = RemoteBuildOptions(
    poll_interval=0.005, poll_max=0.02, retry=RetryPolicy(attempts=4, backoff=0.01, max_backoff=5)
)
ENV = {"AZURE_ACCESS_TOKEN": TOKEN, "OPENAI_API_KEY": OPENAI_KEY}


# --- fixtures ---------------------------------------------------------------------------------


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """An agent repository whose .env is kept out of the context by .dockerignore."""
    root = tmp_path / "demo-agent"
    (root / "src" / "demo_agent").mkdir(parents=True)
    (root / "Dockerfile").write_text("ARG BASE_IMAGE\nFROM ${BASE_IMAGE}\nCOPY src/ /app/src/\n")
    (root / ".dockerignore").write_text(".env\n*.pyc\n")
    (root / ".env").write_text(f"OPENAI_API_KEY={OPENAI_KEY}\n")
    (root / "src" / "demo_agent" / "__init__.py").write_text("")
    (root / "src" / "demo_agent" / "agent.py").write_text("async def run():\n    yield 'hi'\n")
    (root / "agent.yaml").write_text("name: demo-agent\n")
    return root


def manifest(**registry: str) -> Manifest:
    settings = {"subscription_id": SUBSCRIPTION, "resource_group": RESOURCE_GROUP, **registry}
    return Manifest.model_validate(
        {
            "name": "demo-agent",
            "image": {
                "repository": f"{LOGIN_SERVER}/demo-agent",
                "tag": "v1",
                "registry": {k: v for k, v in settings.items() if v},
            },
            "runtime": {"secrets": ["OPENAI_API_KEY"]},
        }
    )


def plan(repo: Path, **options: object) -> BuildRequest:
    return plan_build(repo, manifest(), BuildOptions(**options), Console(as_json=True))


@contextmanager
def contract_server(**settings: object) -> Iterator[AcrTasksContract]:
    values: dict[str, object] = {
        "token": TOKEN,
        "subscription_id": SUBSCRIPTION,
        "resource_group": RESOURCE_GROUP,
        "registry": REGISTRY,
        "login_server": LOGIN_SERVER,
        "log_lines": LOG,
        **settings,
    }
    with AcrTasksContract(**values) as server:  # type: ignore[arg-type]
        yield server


@pytest.fixture
def contract() -> Iterator[AcrTasksContract]:
    with contract_server() as server:
        yield server
        assert server.violations == []


Build = Callable[..., RemoteBuildResult]


@pytest.fixture
def build(repo: Path, contract: AcrTasksContract) -> Build:
    """Run a remote build of ``repo`` against ``contract`` (keywords override the defaults)."""

    def run(**overrides: object) -> RemoteBuildResult:
        arguments: dict[str, object] = {
            "registry": manifest().image.registry,
            "env": ENV,
            "console": Console(),
            "arm_endpoint": contract.url,
            "secret_names": ["OPENAI_API_KEY"],
            "options": FAST,
        }
        the_plan = overrides.pop("plan", None) or plan(repo)
        arguments.update(overrides)
        return remote_build(the_plan, **arguments)  # type: ignore[arg-type]

    return run


def stderr_lines(capsys: pytest.CaptureFixture[str]) -> list[str]:
    return capsys.readouterr().err.splitlines()


# --- the happy path ---------------------------------------------------------------------------


def test_a_successful_run_returns_the_pushed_digest(build: Build, contract: AcrTasksContract):
    result = build()
    run = contract.runs[result.run_id]
    assert result.status == "Succeeded"
    assert result.digest == run.digest
    assert [image.reference for image in result.images] == [
        f"{LOGIN_SERVER}/demo-agent@{run.digest}"
    ] * 2
    assert [image.tag for image in result.images] == ["v1", "latest"]
    assert result.image_names == [
        f"{LOGIN_SERVER}/demo-agent:v1",
        f"{LOGIN_SERVER}/demo-agent:latest",
    ]
    assert result.registry == LOGIN_SERVER
    assert result.to_dict()["builder"] == "acr-tasks"
    assert result.to_dict()["digest"] == run.digest


def test_the_log_is_printed_line_by_line_in_order(
    build: Build, contract: AcrTasksContract, capsys: pytest.CaptureFixture[str]
):
    build()
    printed = [line.strip() for line in stderr_lines(capsys) if line.startswith("    ")]
    log = [line for line in printed if line in LOG]
    assert log == LOG  # chunks split lines and a UTF-8 character; every line arrives whole


def test_the_log_blob_is_read_in_ranges_until_acr_marks_it_complete(
    build: Build, contract: AcrTasksContract
):
    build()
    reads = [r for r in contract.calls("log") if r.method == "GET"]
    assert len(reads) >= 3  # it grew over several polls
    assert all(r.headers["range"].startswith("bytes=") for r in reads)
    heads = [r for r in contract.calls("log") if r.method == "HEAD"]
    assert len(heads) == contract.log_steps + 1 + 1  # 404, one per chunk, the Complete check


def test_the_run_request_carries_the_plan(build: Build, contract: AcrTasksContract, repo: Path):
    the_plan = plan(repo, build_args=["PIP_INDEX_URL=https://pypi.example/simple"])
    build(plan=the_plan)
    [body] = contract.schedule_bodies
    assert body["type"] == "DockerBuildRequest"
    assert body["imageNames"] == ["demo-agent:v1", "demo-agent:latest"]
    assert body["isPushEnabled"] is True
    assert body["noCache"] is False
    assert body["platform"] == {"os": "Linux", "architecture": "amd64"}
    assert body["dockerFilePath"] == "Dockerfile"
    assert body["timeout"] == 3600
    assert body["sourceLocation"] in contract.uploads
    arguments = {arg["name"]: arg["value"] for arg in body["arguments"]}
    assert arguments["BASE_IMAGE"] == "python:3.12-slim"
    assert arguments["PIP_INDEX_URL"] == "https://pypi.example/simple"
    assert all(arg["isSecret"] is False for arg in body["arguments"])
    assert model_problems("RunRequest", body, request=True) == []


def test_the_uploaded_context_honours_dockerignore(build: Build, contract: AcrTasksContract):
    build()
    [names] = contract.archive_names
    assert "Dockerfile" in names and "src/demo_agent/agent.py" in names
    assert ".env" not in names
    assert names == sorted(names)


def test_the_upload_is_a_block_blob_without_the_arm_token(build: Build, contract: AcrTasksContract):
    build()
    [put] = contract.calls("upload")
    assert put.headers["x-ms-blob-type"] == "BlockBlob"
    assert "authorization" not in put.headers
    assert all("authorization" not in r.headers for r in contract.calls("log"))


def test_each_upload_has_its_own_correlation_id(build: Build, contract: AcrTasksContract):
    build()
    build()
    first, second = contract.correlation_ids
    assert first != second
    assert [r.headers["x-ms-correlation-request-id"] for r in contract.calls("upload")] == [
        first,
        second,
    ]


def test_an_accepted_schedule_is_followed_to_its_run(repo: Path):
    with contract_server(schedule_async=True) as server:
        result = remote_build(
            plan(repo),
            registry=manifest().image.registry,
            env=ENV,
            console=Console(as_json=True),
            arm_endpoint=server.url,
            options=FAST,
        )
        assert result.status == "Succeeded"
        assert len(server.calls("scheduleRunResult")) == 1
        assert server.violations == []


def test_json_mode_prints_nothing(build: Build, capsys: pytest.CaptureFixture[str]):
    build(console=Console(as_json=True))
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == ""


# --- failures ---------------------------------------------------------------------------------


def test_a_failed_run_shows_its_status_error_and_log_tail(repo: Path):
    lines = [f"Step {n}/30 : RUN echo {n}" for n in range(1, 31)]
    lines[-1] = "ERROR: Could not find a version that satisfies the requirement nope==9"
    with contract_server(
        log_lines=lines,
        outcome="Failed",
        error_message="failed during run, err: exit status 1",
    ) as server:
        with pytest.raises(CloudError) as caught:
            remote_build(
                plan(repo),
                registry=manifest().image.registry,
                env=ENV,
                console=Console(as_json=True),
                arm_endpoint=server.url,
                options=FAST,
            )
        assert server.violations == []
    error = caught.value
    assert error.exit_code == 9
    assert "Failed" in error.message and "exit status 1" in error.message
    assert "Could not find a version" in error.message
    assert "Step 11/30" in error.message and "Step 10/30" not in error.message  # last 20 lines
    assert "az acr task logs --registry contosoagents --run-id cb1" in (error.hint or "")


@pytest.mark.parametrize(
    ("operation", "action"),
    [
        ("listBuildSourceUploadUrl", "listBuildSourceUploadUrl/action"),
        ("scheduleRun", "scheduleRun/action"),
        ("getRun", "runs/read"),
    ],
)
def test_a_403_names_the_missing_action_and_the_role(
    build: Build, contract: AcrTasksContract, operation: str, action: str
):
    contract.fail(operation, 403, code="AuthorizationFailed", message="no authorization")
    with pytest.raises(CloudError) as caught:
        build()
    hint = caught.value.hint or ""
    assert f"Microsoft.ContainerRegistry/registries/{action}" in hint
    assert "Contributor" in hint and "AcrPush" in hint


def test_a_403_quotes_the_action_arm_names(build: Build, contract: AcrTasksContract):
    contract.fail(
        "scheduleRun",
        403,
        code="AuthorizationFailed",
        message="The client 'ci@example.com' with object id '1234' does not have authorization "
        "to perform action 'Microsoft.ContainerRegistry/registries/scheduleRun/action' over "
        f"scope '/subscriptions/{SUBSCRIPTION}' or the scope is invalid.",
    )
    with pytest.raises(CloudError) as caught:
        build()
    assert "ci@example.com" in caught.value.message
    assert "registries/scheduleRun/action on the registry" in (caught.value.hint or "")


def test_tasks_not_permitted_points_to_a_local_build(build: Build, contract: AcrTasksContract):
    contract.fail(
        "scheduleRun",
        400,
        code="TasksOperationsNotAllowed",
        message=f"ACR Tasks requests for the registry {REGISTRY} and {SUBSCRIPTION} are not "
        "permitted. Please file an Azure support request at http://aka.ms/azuresupport for "
        "assistance.",
    )
    with pytest.raises(CloudError) as caught:
        build()
    assert "not permitted" in caught.value.message
    assert "`actk build` (without --remote)" in (caught.value.hint or "")


def test_an_unknown_resource_group_points_at_agent_yaml(build: Build, contract: AcrTasksContract):
    registry = RegistrySettings(subscription_id=SUBSCRIPTION, resource_group="rg-typo")
    with pytest.raises(CloudError) as caught:
        build(registry=registry)
    assert "registry contosoagents not found in resource group rg-typo" in caught.value.message
    assert "image.registry.resource_group" in (caught.value.hint or "")
    assert "az acr show --name contosoagents" in (caught.value.hint or "")


def test_a_refused_token_asks_for_a_fresh_one(build: Build, contract: AcrTasksContract):
    stale = "eyJ.stale-token-that-expired.sig"
    with pytest.raises(CloudError) as caught:
        build(env={"AZURE_ACCESS_TOKEN": stale})
    assert "invalid or expired" in caught.value.message
    assert "az login" in (caught.value.hint or "")
    assert stale not in caught.value.message + (caught.value.hint or "")


def test_a_429_is_retried_after_its_retry_after(build: Build, contract: AcrTasksContract):
    contract.fail("scheduleRun", 429, code="TooManyRequests", headers={"Retry-After": "1"})
    result = build()
    first, second = contract.calls("scheduleRun")
    assert second.at - first.at >= 0.95
    assert result.status == "Succeeded"
    assert len(contract.runs) == 1


def test_5xx_answers_are_retried(
    build: Build, contract: AcrTasksContract, capsys: pytest.CaptureFixture[str]
):
    contract.fail("listBuildSourceUploadUrl", 500, times=2)
    contract.fail("upload", 503, code="ServerBusy")
    contract.fail("getRun", 502)
    assert build().status == "Succeeded"
    assert len(contract.calls("listBuildSourceUploadUrl")) == 3
    assert "HTTP 500; retrying" in capsys.readouterr().err


def test_retries_stop_after_the_policy_attempts(build: Build, contract: AcrTasksContract):
    contract.fail("scheduleRun", 503, code="ServiceUnavailable", times=10)
    with pytest.raises(CloudError) as caught:
        build()
    assert "after 4 attempts" in caught.value.message
    assert len(contract.calls("scheduleRun")) == 4


def test_an_expired_log_link_is_renewed(build: Build, contract: AcrTasksContract):
    contract.fail("log", 403, code="AuthenticationFailed")
    assert build().status == "Succeeded"
    assert len(contract.calls("listLogSasUrl")) == 2


def test_an_unreadable_log_does_not_fail_a_successful_run(
    build: Build, contract: AcrTasksContract, capsys: pytest.CaptureFixture[str]
):
    contract.fail("listLogSasUrl", 403, code="AuthorizationFailed", message="no authorization")
    assert build().status == "Succeeded"
    assert "warning: cannot follow the log of run cb1" in capsys.readouterr().err


def test_ctrl_c_cancels_the_run(build: Build, contract: AcrTasksContract):
    class Interrupting(Console):
        @contextmanager
        def live_log(self, title: str) -> Iterator[Callable[[str], None]]:
            def sink(line: str) -> None:
                raise KeyboardInterrupt

            yield sink

    with pytest.raises(KeyboardInterrupt):
        build(console=Interrupting(as_json=True))
    assert len(contract.calls("cancel")) == 1
    assert contract.runs["cb1"].canceled


# --- the manifest and the plan ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("settings", "named", "not_named"),
    [
        ({}, ["image.registry.subscription_id", "image.registry.resource_group"], []),
        (
            {"subscription_id": SUBSCRIPTION},
            ["image.registry.resource_group"],
            ["image.registry.subscription_id"],
        ),
    ],
)
def test_missing_registry_fields_are_named(
    build: Build,
    contract: AcrTasksContract,
    settings: dict[str, str],
    named: list[str],
    not_named: list[str],
):
    with pytest.raises(ManifestError) as caught:
        build(registry=RegistrySettings(**settings))
    for name in named:
        assert name in caught.value.message
    for name in not_named:
        assert name not in caught.value.message
    assert "az acr show --name contosoagents --query id" in (caught.value.hint or "")
    assert contract.requests == []


@pytest.mark.parametrize(
    ("host", "name", "endpoint"),
    [
        ("contosoagents.azurecr.io", "contosoagents", "https://management.azure.com"),
        ("contosoagents.azurecr.cn", "contosoagents", "https://management.chinacloudapi.cn"),
        ("contosoagents.azurecr.us", "contosoagents", "https://management.usgovcloudapi.net"),
        ("contosoagents-f3hbd2a7c5.azurecr.io", "contosoagents", "https://management.azure.com"),
        ("ContosoAgents.AzureCR.io", "contosoagents", "https://management.azure.com"),
    ],
)
def test_the_registry_name_and_cloud_come_from_the_login_server(
    host: str, name: str, endpoint: str
):
    resource = registry_resource(
        [f"{host}/team/agent:v1"],
        RegistrySettings(subscription_id=SUBSCRIPTION, resource_group=RESOURCE_GROUP),
    )
    assert resource.name == name
    assert resource.arm_endpoint == endpoint
    assert resource.id.endswith(f"/registries/{name}")


@pytest.mark.parametrize(
    "tag", ["ghcr.io/acme/agent:v1", "demo-agent:v1", "localhost:5000/agent:v1"]
)
def test_a_registry_other_than_acr_is_refused(tag: str):
    with pytest.raises(UsageError) as caught:
        registry_resource([tag], RegistrySettings(subscription_id="s", resource_group="g"))
    assert "azurecr.io" in caught.value.message


def test_tags_on_two_registries_are_refused():
    with pytest.raises(UsageError) as caught:
        registry_resource(
            ["one12.azurecr.io/agent:v1", "two34.azurecr.io/agent:v1"],
            RegistrySettings(subscription_id="s", resource_group="g"),
        )
    assert "one12.azurecr.io, two34.azurecr.io" in caught.value.message


def test_login_servers_outside_acr_are_not_parsed():
    assert parse_login_server("contosoagents.azurecr.io") == ("contosoagents", "azurecr.io")
    assert parse_login_server("azurecr.io.evil.example") is None
    assert parse_login_server("abc.azurecr.io") is None  # registry names have 5-50 characters


@pytest.mark.parametrize(
    ("platform", "properties"),
    [
        ("linux/amd64", {"os": "Linux", "architecture": "amd64"}),
        ("linux/arm64", {"os": "Linux", "architecture": "arm64"}),
        ("linux/arm64/v8", {"os": "Linux", "architecture": "arm64", "variant": "v8"}),
    ],
)
def test_the_platform_becomes_platform_properties(platform: str, properties: dict[str, str]):
    assert platform_properties(platform) == properties


def test_an_unknown_platform_is_refused():
    with pytest.raises(UsageError):
        platform_properties("linux/riscv64")


def test_a_sovereign_cloud_uses_the_ci_token_when_one_is_set():
    endpoint = "https://management.chinacloudapi.cn"
    assert arm_token(endpoint, {"AZURE_ACCESS_TOKEN": TOKEN}) == TOKEN


def test_the_arm_endpoint_must_be_https_except_on_loopback():
    assert check_endpoint("https://management.azure.com/") == "https://management.azure.com"
    assert check_endpoint("http://127.0.0.1:8080") == "http://127.0.0.1:8080"
    with pytest.raises(UsageError) as caught:
        check_endpoint("http://management.example.com")
    assert "ACTK_AZURE_ARM_ENDPOINT" in (caught.value.hint or "")


# --- secrets ----------------------------------------------------------------------------------


def test_a_secret_env_file_is_refused_unless_allowed(repo: Path, contract: AcrTasksContract):
    (repo / ".dockerignore").write_text("*.pyc\n")
    with pytest.raises(UsageError) as caught:
        plan(repo)
    assert ".env" in caught.value.message
    allowed = plan(repo, allow_secret_files=True)
    with pytest.raises(UsageError) as caught:  # the remote flow checks again before uploading
        remote_build(
            allowed,
            registry=manifest().image.registry,
            env=ENV,
            console=Console(as_json=True),
            arm_endpoint=contract.url,
            options=FAST,
        )
    assert "--allow-secret-files" in (caught.value.hint or "")
    assert contract.requests == []


def test_an_allowed_secret_file_is_sent_with_a_warning(
    repo: Path, capsys: pytest.CaptureFixture[str]
):
    (repo / ".dockerignore").write_text("*.pyc\n")
    with contract_server(forbidden_files=()) as server:
        remote_build(
            plan(repo, allow_secret_files=True),
            registry=manifest().image.registry,
            env=ENV,
            console=Console(),
            arm_endpoint=server.url,
            allow_secret_files=True,
            options=FAST,
        )
        assert ".env" in server.archive_names[0]
    assert "warning: sending secret-looking files to ACR" in capsys.readouterr().err


def test_a_build_argument_carrying_a_secret_is_refused(
    build: Build, contract: AcrTasksContract, repo: Path
):
    leaky = plan(repo, build_args=[f"PIP_EXTRA=token-{OPENAI_KEY}"])
    with pytest.raises(UsageError) as caught:
        build(plan=leaky)
    assert "PIP_EXTRA" in caught.value.message and "OPENAI_API_KEY" in caught.value.message
    assert OPENAI_KEY not in caught.value.message
    assert contract.requests == []


def test_a_build_argument_named_after_a_secret_is_refused(
    build: Build, contract: AcrTasksContract, repo: Path
):
    with pytest.raises(UsageError) as caught:
        build(plan=plan(repo, build_args=["OPENAI_API_KEY=placeholder"]))
    assert "is the secret OPENAI_API_KEY" in caught.value.message
    assert contract.requests == []


def test_no_secret_reaches_output_or_errors(repo: Path, capsys: pytest.CaptureFixture[str]):
    log_link_probe = f"{LOG_SIGNATURE.replace('%3D', '=')}"
    with contract_server(
        log_lines=[
            "Step 1/2 : RUN env",
            f"OPENAI_API_KEY={OPENAI_KEY}",
            f"Authorization: Bearer {TOKEN}",
            "fetching https://acr.blob.core.windows.net/logs/cb1/rawtext.log?sv=1&sig=abcDEF%2B1",
        ],
        outcome="Failed",
        error_message=f"failed with {OPENAI_KEY}",
    ) as server:
        with pytest.raises(CloudError) as caught:
            remote_build(
                plan(repo),
                registry=manifest().image.registry,
                env=ENV,
                console=Console(),
                arm_endpoint=server.url,
                secret_names=["OPENAI_API_KEY"],
                options=FAST,
            )
        source_url = server.source_url(server.correlation_ids[0])
        log_url = server.log_url("cb1")
    captured = capsys.readouterr()
    text = "\n".join(
        [
            captured.out,
            captured.err,
            caught.value.message,
            caught.value.hint or "",
            str(caught.value),
        ]
    )
    for secret in (
        TOKEN,
        OPENAI_KEY,
        SECRET_SIGNATURE,
        log_link_probe,
        "abcDEF%2B1",
        source_url,
        log_url,
    ):
        assert secret not in text
    assert "[REDACTED]" in caught.value.message


def test_a_refused_upload_names_the_blob_without_its_signature(
    build: Build, contract: AcrTasksContract
):
    contract.fail("upload", 403, code="AuthenticationFailed")
    with pytest.raises(CloudError) as caught:
        build()
    assert "/blob/source/" in caught.value.message
    assert "sig=" not in caught.value.message and SECRET_SIGNATURE not in caught.value.message
    assert "expired" in (caught.value.hint or "")


# --- the Dockerfile ---------------------------------------------------------------------------

BUILDKIT_DOCKERFILE = """\
ARG BASE_IMAGE
FROM ${BASE_IMAGE} AS deps
RUN --mount=type=secret,id=ca,required=false \\
    if [ -s /run/secrets/ca ]; then export PIP_CERT=/run/secrets/ca; fi; pip install -r req.txt
RUN --mount=type=cache,target=/root/.cache/pip pip install extra
FROM ${BASE_IMAGE}
COPY --from=deps /opt/venv /opt/venv
"""


def test_the_uploaded_dockerfile_suits_the_classic_builder(
    build: Build, contract: AcrTasksContract, repo: Path, capsys: pytest.CaptureFixture[str]
):
    (repo / "Dockerfile").write_text(BUILDKIT_DOCKERFILE)
    build()
    [archive] = contract.uploads.values()
    with tarfile.open(fileobj=BytesIO(archive), mode="r:gz") as tar:
        sent = tar.extractfile("Dockerfile").read().decode()  # type: ignore[union-attr]
    assert "--mount" not in sent
    assert "pip install -r req.txt" in sent and "pip install extra" in sent
    assert (repo / "Dockerfile").read_text() == BUILDKIT_DOCKERFILE  # the local file is untouched
    assert "cache mount /root/.cache/pip ignored" in capsys.readouterr().err


def test_a_mount_acr_cannot_provide_is_refused_before_upload(
    build: Build, contract: AcrTasksContract, repo: Path
):
    (repo / "Dockerfile").write_text(
        "FROM scratch\nRUN --mount=type=ssh git clone git@example.com:a/b.git\n"
    )
    with pytest.raises(UsageError) as caught:
        build()
    assert "ACR Tasks (the classic builder)" in caught.value.message
    assert "actk build" in (caught.value.hint or "")
    assert contract.requests == []


# --- the archive ------------------------------------------------------------------------------


def test_the_context_archive_is_reproducible(repo: Path):
    context = plan(repo).context
    first, second = pack_context(context), pack_context(context)
    assert first == second
    with tarfile.open(fileobj=BytesIO(first), mode="r:gz") as tar:
        members = tar.getmembers()
    assert [m.name for m in members] == sorted(m.name for m in members)
    assert {(m.uid, m.gid, m.uname, m.gname) for m in members} == {(0, 0, "", "")}


# --- from the command line --------------------------------------------------------------------


def test_actk_build_remote_acr_records_the_digest_for_deploy(tmp_path: Path) -> None:
    """What a user types in a generated repo: no engine involved, the digest lands in state."""
    import json

    import yaml

    from tests.conftest import actk, render

    agent = render(tmp_path / "remote-agent")
    path = agent / "agent.yaml"
    data = yaml.safe_load(path.read_text())
    data["image"] = {
        "repository": f"{LOGIN_SERVER}/remote-agent",
        "tag": "v1",
        "registry": {"subscription_id": SUBSCRIPTION, "resource_group": RESOURCE_GROUP},
    }
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    with contract_server() as server:
        done = actk(
            "build", str(agent), "--remote", "acr", "--json",
            env={**ENV, "ACTK_AZURE_ARM_ENDPOINT": server.url, "DOCKER_HOST": "unix:///nonexistent"},
        )
        assert done.returncode == 0, done.stderr
        result = json.loads(done.stdout)
        run = server.runs[result["run_id"]]
        assert result["digest"] == run.digest and result["builder"] == "acr-tasks"
        assert server.violations == []
    state = json.loads((agent / ".actk" / "state.json").read_text())
    assert state["image"]["reference"] == f"{LOGIN_SERVER}/remote-agent@{run.digest}"
    assert state["image"]["tags"] == ["v1", "latest"]
    assert TOKEN not in done.stdout + done.stderr
