"""`actk push` end to end on a real engine and real registries, once per way of signing in:

new -> build -> push -> pull back by digest -> smoke, with the password on stdin, in the
environment, in a Docker config, through the ACR token exchange, through Alibaba's enterprise
token API, and through a proxy that resets connections. Everything each command prints is
scanned for the secrets it handled, and the Docker config is never written.
"""

from __future__ import annotations

import json
import ssl
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import BASE_IMAGE, actk, build_args_for_tests, commit_all, run, succeed

pytestmark = pytest.mark.docker


def assert_no_secret(done: subprocess.CompletedProcess[str], secrets: Iterable[str]) -> None:
    printed = done.stdout + done.stderr
    for secret in secrets:
        assert secret not in printed, "a secret was printed"


def actk_with_stdin(
    *args: str, stdin: str, cwd: Path, env: dict[str, str]
) -> subprocess.CompletedProcess[str]:
    import os

    return subprocess.run(
        [sys.executable, "-m", "toolkit", *args],
        cwd=cwd,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, **env},
    )


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory, docker_engine: Any) -> Path:
    """A fresh agent repository, committed, so its tags carry the git sha."""
    path = tmp_path_factory.mktemp("push") / "push-agent"
    succeed(actk("new", str(path), "--defaults", "--data", f"base_image={BASE_IMAGE}"))
    commit_all(path)
    return path


@pytest.fixture
def docker_config(tmp_path: Path) -> dict[str, str]:
    """An empty Docker config directory: the push must not write a config.json into it (the
    docker CLI's BuildKit builds leave a .buildNodeID there, which holds no credentials)."""
    directory = tmp_path / "docker-config"
    directory.mkdir()
    return {"DOCKER_CONFIG": str(directory)}


def point_image_at(repo: Path, repository: str, **registry: str) -> None:
    """Set agent.yaml's image.repository (and image.registry) as a user would."""
    path = repo / "agent.yaml"
    manifest = yaml.safe_load(path.read_text())
    manifest["image"] = {"repository": repository, "tag": "{git_sha}"}
    if registry:
        manifest["image"]["registry"] = registry
    path.write_text(yaml.safe_dump(manifest, sort_keys=False))
    succeed(run(["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qam",
                 f"image {repository}", "--allow-empty"], cwd=repo))


def build(repo: Path, *extra: str, env: dict[str, str] | None = None) -> dict[str, Any]:
    done = succeed(actk("build", str(repo), "--json", *build_args_for_tests(), *extra, env=env))
    return json.loads(done.stdout)


def pull_and_smoke(repo: Path, reference: str, auth_config: dict[str, str]) -> None:
    """Remove every local tag of the image, pull it back by digest, and smoke-test that."""
    import docker

    client = docker.from_env()
    image = client.images.get(reference.split("@")[0] + ":latest")
    for tag in image.tags:
        client.images.remove(tag, force=True)
    client.images.pull(reference, auth_config=auth_config)
    assert client.images.get(reference).id == image.id
    smoke = json.loads(succeed(actk("smoke", reference, "-C", str(repo), "--json")).stdout)
    assert smoke["passed"]


def registry_digest(host: str, path: str, tag: str, auth: tuple[str, str], ca: Path) -> str:
    import httpx

    response = httpx.head(
        f"https://{host}/v2/{path}/manifests/{tag}",
        auth=auth,
        verify=ssl.create_default_context(cafile=str(ca)),
        headers={"Accept": "application/vnd.docker.distribution.manifest.v2+json"},
    )
    assert response.status_code == 200, response.text
    return response.headers["docker-content-digest"]


def test_password_on_stdin_then_pull_by_digest_and_smoke(
    repo: Path, htpasswd_registry: Any, docker_config: dict[str, str]
) -> None:
    registry = htpasswd_registry
    point_image_at(repo, f"{registry.host}/team/push-agent")
    built = build(repo)

    done = succeed(
        actk_with_stdin(
            "push", "--username", registry.username, "--password-stdin", "--json",
            stdin=registry.password + "\n", cwd=repo, env=docker_config,
        )
    )
    pushed = json.loads(done.stdout)
    assert pushed["tags"] == [t.rsplit(":", 1)[1] for t in built["tags"]]
    assert pushed["digest_verified"] and pushed["digest"].startswith("sha256:")
    assert pushed["credentials"] == "--username/--password-stdin"
    assert pushed["digest"] == registry_digest(
        registry.host, "team/push-agent", "latest",
        (registry.username, registry.password), registry.ca_bundle,
    )
    state = json.loads((repo / ".actk" / "state.json").read_text())
    assert state["image"]["reference"] == pushed["reference"]
    assert_no_secret(done, [registry.password])
    assert not (Path(docker_config["DOCKER_CONFIG"]) / "config.json").exists()

    pull_and_smoke(repo, pushed["reference"], registry.auth_config)


def test_environment_credentials_with_build_push(
    repo: Path, htpasswd_registry: Any, docker_config: dict[str, str]
) -> None:
    registry = htpasswd_registry
    point_image_at(repo, f"{registry.host}/team/env-agent")
    env = {
        "ACTK_REGISTRY_USERNAME": registry.username,
        "ACTK_REGISTRY_PASSWORD": registry.password,
        "CI": "true",
        **docker_config,
    }
    done = succeed(actk("build", str(repo), "--push", *build_args_for_tests(), env=env))
    assert "ACTK_REGISTRY_USERNAME/ACTK_REGISTRY_PASSWORD" in done.stderr
    assert "pushed " in done.stdout
    assert_no_secret(done, [registry.password])
    assert not (Path(docker_config["DOCKER_CONFIG"]) / "config.json").exists()
    reference = json.loads((repo / ".actk" / "state.json").read_text())["image"]["reference"]
    pull_and_smoke(repo, reference, registry.auth_config)


def test_a_docker_login_is_used_and_left_untouched(
    repo: Path, htpasswd_registry: Any, docker_config: dict[str, str]
) -> None:
    import base64

    registry = htpasswd_registry
    point_image_at(repo, f"{registry.host}/team/config-agent")
    build(repo)
    auth = base64.b64encode(f"{registry.username}:{registry.password}".encode()).decode()
    config = Path(docker_config["DOCKER_CONFIG"]) / "config.json"
    config.write_text(json.dumps({"auths": {registry.host: {"auth": auth}}}))
    before = config.read_bytes()

    done = succeed(actk("push", "--json", cwd=repo, env=docker_config))
    pushed = json.loads(done.stdout)
    assert pushed["credentials"] == "your Docker config" and pushed["digest_verified"]
    assert config.read_bytes() == before
    assert_no_secret(done, [registry.password, auth])
    pull_and_smoke(repo, pushed["reference"], registry.auth_config)


def test_a_wrong_password_is_denied_with_the_fix(
    repo: Path, htpasswd_registry: Any, docker_config: dict[str, str]
) -> None:
    point_image_at(repo, f"{htpasswd_registry.host}/team/denied-agent")
    build(repo)
    wrong = "wrong-password-0123456789"
    done = actk_with_stdin(
        "push", "--username", htpasswd_registry.username, "--password-stdin", "--json",
        stdin=wrong, cwd=repo, env=docker_config,
    )
    assert done.returncode == 8, done.stderr
    error = json.loads(done.stdout)
    assert "unauthorized" in error["message"] or "denied" in error["message"]
    assert "may not push" in error["hint"]
    assert_no_secret(done, [wrong])


def test_the_acr_token_exchange_end_to_end(
    repo: Path, acr_registry: Any, docker_config: dict[str, str]
) -> None:
    import httpx

    registry = acr_registry
    point_image_at(repo, f"{registry.host}/push-agent", kind="azure")
    build(repo)
    env = {"AZURE_ACCESS_TOKEN": registry.entra_token, **docker_config}
    done = succeed(actk("push", "--json", cwd=repo, env=env))
    pushed = json.loads(done.stdout)
    assert pushed["credentials"].startswith("Microsoft Entra ID token exchanged")
    assert pushed["digest_verified"]
    paths = [call["path"] for call in registry.requests]
    assert paths[0] == "/oauth2/exchange" and "/oauth2/token" in paths
    exchanged = [c for c in registry.requests if c["path"] == "/oauth2/exchange"]
    assert exchanged[0]["tenant"] == registry.tenant
    assert exchanged[0]["grant_type"] == "access_token"
    assert_no_secret(done, [registry.entra_token])
    assert not (Path(docker_config["DOCKER_CONFIG"]) / "config.json").exists()

    refresh = httpx.post(
        f"{registry.url}/oauth2/exchange",
        data={"grant_type": "access_token", "service": registry.host,
              "access_token": registry.entra_token},
        verify=ssl.create_default_context(cafile=str(registry.ca_bundle)),
    ).json()["refresh_token"]
    assert refresh not in done.stdout + done.stderr
    pull_and_smoke(
        repo,
        pushed["reference"],
        {"username": registry.username, "password": refresh, "serveraddress": registry.host},
    )


def test_a_refused_entra_token_is_explained(
    repo: Path, acr_registry: Any, docker_config: dict[str, str]
) -> None:
    point_image_at(repo, f"{acr_registry.host}/push-agent", kind="azure")
    build(repo)
    forged = acr_registry.entra_token[:-6] + "AAAAAA"
    done = actk("push", "--json", cwd=repo, env={"AZURE_ACCESS_TOKEN": forged, **docker_config})
    assert done.returncode == 8
    error = json.loads(done.stdout)
    assert "refused the Microsoft Entra ID token" in error["message"]
    assert "az login" in error["hint"]
    assert_no_secret(done, [forged])


def test_alibaba_enterprise_temporary_token(
    repo: Path, htpasswd_registry: Any, alibaba_cr: Any, docker_config: dict[str, str]
) -> None:
    registry = htpasswd_registry
    from alibaba_contract import Instance

    cr = alibaba_cr(
        username=registry.username,
        password=registry.password,
        instances=[Instance("cri-e2etest0001", "e2e")],
    )
    # A custom domain (the local registry) for an enterprise instance named by its id.
    point_image_at(repo, f"{registry.host}/ns/ali-agent", kind="alibaba",
                   instance_id="cri-e2etest0001", region="cn-hangzhou")
    build(repo)
    done = succeed(actk("push", "--json", cwd=repo, env={**cr.env, **docker_config}))
    pushed = json.loads(done.stdout)
    assert pushed["digest_verified"]
    assert [r.action for r in cr.requests] == ["GetAuthorizationToken"]
    assert cr.requests[0].query["InstanceId"] == "cri-e2etest0001"
    assert_no_secret(done, [registry.password, cr.access_key_secret])
    pull_and_smoke(repo, pushed["reference"], registry.auth_config)


def test_a_push_through_connection_resets_completes(
    repo: Path, htpasswd_registry: Any, flaky_proxy: Any, docker_config: dict[str, str]
) -> None:
    registry = htpasswd_registry
    proxy = flaky_proxy(registry.host, reset_every=4, max_resets=6)
    point_image_at(repo, f"{proxy.host}/team/flaky-agent")
    build(repo)
    done = succeed(
        actk_with_stdin(
            "push", "--username", registry.username, "--password-stdin", "--json",
            stdin=registry.password, cwd=repo, env=docker_config,
        )
    )
    pushed = json.loads(done.stdout)
    assert proxy.resets > 0
    # The registry itself, not through the proxy, holds what the push reported.
    assert pushed["digest"] == registry_digest(
        registry.host, "team/flaky-agent", "latest",
        (registry.username, registry.password), registry.ca_bundle,
    )


def test_an_image_for_another_platform_is_refused(repo: Path, docker_engine: Any) -> None:
    point_image_at(repo, "127.0.0.1:9/team/arch-agent")
    build(repo)
    manifest = yaml.safe_load((repo / "agent.yaml").read_text())
    manifest["build"]["platform"] = "linux/arm64"
    (repo / "agent.yaml").write_text(yaml.safe_dump(manifest, sort_keys=False))
    done = actk("push", "127.0.0.1:9/team/arch-agent:latest", "--json", cwd=repo)
    assert done.returncode == 8
    error = json.loads(done.stdout)
    assert "built for linux/amd64" in error["message"] and "--force" in error["hint"]
    succeed(run(["git", "checkout", "agent.yaml"], cwd=repo))


def test_only_latest_is_warned_about_and_an_unreachable_registry_is_named(
    repo: Path, docker_engine: Any
) -> None:
    point_image_at(repo, "127.0.0.1:9/team/gone-agent")
    build(repo)
    done = actk("push", "127.0.0.1:9/team/gone-agent:latest", "--retries", "1", cwd=repo,
                env={"CI": "true"})
    assert done.returncode == 8
    assert "only as :latest" in done.stderr
    assert "retrying in 1 s (1/1)" in done.stderr
    assert "127.0.0.1:9 is unreachable or failing" in done.stderr
