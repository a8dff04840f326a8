"""`actk push` through faults between the engine and the registry (tests/registries.py's
``http_fault_proxy``, an HTTPS proxy in front of the htpasswd registry, and ``flaky_proxy``):

- bursts of 5xx on blob uploads and manifests, and 429 with Retry-After on blob checks: the push
  completes, within bounds, and what the registry holds is what the push reported;
- 200 ms more latency on every request: the push completes, within bounds;
- a registry that keeps refusing the manifest: the push stops after its retries with one error
  line naming the registry and a hint, records no digest, and the same command completes once
  the registry is back (no layer goes up again).

One image build (cached layers) per registry host; the tests share one agent repository.
"""

from __future__ import annotations

import json
import ssl
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.conftest import BASE_IMAGE, actk, build_args_for_tests, commit_all, succeed

pytestmark = pytest.mark.docker


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory, docker_engine: Any) -> Path:
    path = tmp_path_factory.mktemp("faults-push") / "faults-agent"
    succeed(actk("new", str(path), "--defaults", "--data", f"base_image={BASE_IMAGE}"))
    commit_all(path)
    return path


def build_for(repo: Path, host: str, name: str) -> None:
    manifest = yaml.safe_load((repo / "agent.yaml").read_text())
    manifest["image"] = {"repository": f"{host}/team/{name}", "tag": "latest"}
    (repo / "agent.yaml").write_text(yaml.safe_dump(manifest, sort_keys=False))
    succeed(actk("build", str(repo), *build_args_for_tests()))


def credentials(registry: Any) -> dict[str, str]:
    return {"ACTK_REGISTRY_USERNAME": registry.username,
            "ACTK_REGISTRY_PASSWORD": registry.password}


def push(repo: Path, registry: Any, *args: str) -> tuple[subprocess.CompletedProcess[str], float]:
    started = time.monotonic()
    done = actk("push", "--json", *args, cwd=repo, env=credentials(registry))
    return done, time.monotonic() - started


def registry_digest(registry: Any, name: str) -> str | None:
    answer = httpx.head(
        f"https://{registry.host}/v2/team/{name}/manifests/latest",
        auth=(registry.username, registry.password),
        verify=ssl.create_default_context(cafile=str(registry.ca_bundle)),
        headers={"Accept": "application/vnd.docker.distribution.manifest.v2+json"},
    )
    return answer.headers.get("docker-content-digest") if answer.status_code == 200 else None


def test_bursts_of_5xx_and_429s_are_ridden_out_within_bounds(
    repo: Path, htpasswd_registry: Any, http_fault_proxy: Any
) -> None:
    proxy = http_fault_proxy(htpasswd_registry.host)
    build_for(repo, proxy.host, "burst-agent")
    proxy.fail(503, method="PATCH", times=2)
    proxy.fail(502, method="PUT", path_contains="/blobs/", times=1)
    proxy.fail(429, method="POST", path_contains="/blobs/uploads", times=2,
               headers={"Retry-After": "1"})
    proxy.fail(503, method="PUT", path_contains="/manifests/", times=1)
    done, elapsed = push(repo, htpasswd_registry)
    assert done.returncode == 0, done.stdout + done.stderr
    pushed = json.loads(done.stdout)
    assert pushed["digest_verified"]
    assert pushed["digest"] == registry_digest(htpasswd_registry, "burst-agent")
    statuses = [status for _, _, status in proxy.requests]
    assert {503, 502, 429} <= set(statuses)
    assert elapsed < 180, f"the push took {elapsed:.0f} s"


def test_added_latency_slows_a_push_within_bounds(
    repo: Path, htpasswd_registry: Any, http_fault_proxy: Any
) -> None:
    proxy = http_fault_proxy(htpasswd_registry.host)
    build_for(repo, proxy.host, "slow-agent")
    proxy.delay = 0.2
    done, elapsed = push(repo, htpasswd_registry)
    assert done.returncode == 0, done.stdout + done.stderr
    assert json.loads(done.stdout)["digest"] == registry_digest(htpasswd_registry, "slow-agent")
    assert elapsed >= 0.2 * len(proxy.requests) / 8  # the engine overlaps some requests
    assert elapsed < 0.2 * len(proxy.requests) + 120, f"{len(proxy.requests)} requests"


def test_a_registry_that_keeps_failing_stops_the_push_clearly_and_a_rerun_completes(
    repo: Path, htpasswd_registry: Any, http_fault_proxy: Any
) -> None:
    proxy = http_fault_proxy(htpasswd_registry.host)
    build_for(repo, proxy.host, "down-agent")
    state = repo / ".actk" / "state.json"
    before = state.read_text() if state.exists() else None
    proxy.fail(503, method="PUT", path_contains="/manifests/", times=10_000)  # no tag lands
    failed, elapsed = push(repo, htpasswd_registry, "--retries", "1")
    assert failed.returncode == 8, failed.stdout + failed.stderr
    assert "Traceback" not in failed.stdout + failed.stderr
    error = json.loads(failed.stdout)
    assert proxy.host in error["message"] and "\n" not in error["message"], error
    assert error["hint"], error
    assert (state.read_text() if state.exists() else None) == before  # no digest recorded
    assert registry_digest(htpasswd_registry, "down-agent") is None
    assert elapsed < 300

    proxy._faults.clear()
    done, _ = push(repo, htpasswd_registry)
    assert done.returncode == 0, done.stdout + done.stderr
    pushed = json.loads(done.stdout)
    assert pushed["digest"] == registry_digest(htpasswd_registry, "down-agent")
    assert pushed["reference"] in state.read_text()
    assert pushed["layers_uploaded"] == 0, pushed  # the failed push's layers were kept
