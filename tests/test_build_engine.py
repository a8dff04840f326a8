"""`actk build` on a real engine, through BuildKit (docker CLI) and through the Engine API."""

from __future__ import annotations

import io
import json
import shutil
import tarfile
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import HOST_CA_BUNDLE, actk, build_args_for_tests

pytestmark = pytest.mark.docker

# Appended to the CA bundle the build trusts: if these bytes appear anywhere in the image,
# the bundle leaked. (Text outside PEM blocks is ignored by every TLS library.)
MARKER = b"actk-test-ca-marker-5d1c0e"


@pytest.fixture(scope="module")
def marked_ca_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    bundle = tmp_path_factory.mktemp("ca") / "bundle.pem"
    host = HOST_CA_BUNDLE.read_bytes() if HOST_CA_BUNDLE.is_file() else b""
    bundle.write_bytes(host + b"\n# " + MARKER + b"\n")
    return bundle


@pytest.fixture(scope="module")
def agent_repo(default_render: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    repo = tmp_path_factory.mktemp("build") / "echo-agent"
    shutil.copytree(default_render, repo)
    return repo


def build(repo: Path, *flags: str) -> dict[str, Any]:
    done = actk("build", str(repo), "--json", *build_args_for_tests(), *flags)
    assert done.returncode == 0, done.stdout + done.stderr
    return json.loads(done.stdout)


def image_files(client: Any, image_id: str) -> tuple[list[bytes], list[str]]:
    """Every layer's file contents and paths, plus the image config, from `docker save`."""
    archive = io.BytesIO(b"".join(client.images.get(image_id).save(named=False)))
    contents: list[bytes] = []
    paths: list[str] = []
    with tarfile.open(fileobj=archive) as image:
        for member in image.getmembers():
            data = image.extractfile(member) if member.isfile() else None
            if data is None:
                continue
            blob = data.read()
            if member.name.endswith("layer.tar"):
                with tarfile.open(fileobj=io.BytesIO(blob)) as layer:
                    for entry in layer.getmembers():
                        paths.append(entry.name)
                        file = layer.extractfile(entry) if entry.isfile() else None
                        if file is not None:
                            contents.append(file.read())
            else:
                contents.append(blob)  # manifest.json, the config with history and labels
    return contents, paths


@pytest.mark.parametrize("builder", ["buildkit", "api"])
def test_builds_with_labels_and_no_trace_of_the_ca_bundle(
    builder: str, agent_repo: Path, marked_ca_bundle: Path, docker_engine: Any
) -> None:
    result = build(
        agent_repo,
        "--builder",
        builder,
        "--ca-bundle",
        str(marked_ca_bundle),
        "--tag",
        f"{builder}-{{version}}",
    )
    assert result["builder"] == builder
    assert result["tags"] == [f"echo-agent:{builder}-0.1.0", "echo-agent:latest"]
    assert result["platform"] == "linux/amd64" and result["size"] > 0
    assert result["ca_bundle"] == str(marked_ca_bundle)

    image = docker_engine.images.get(result["image_id"])
    labels = image.labels
    assert labels["org.opencontainers.image.title"] == "echo-agent"
    assert labels["org.opencontainers.image.version"] == "0.1.0"
    assert labels["org.opencontainers.image.created"].endswith("Z")
    assert image.attrs["Config"]["User"] == "10001:10001"
    assert f"echo-agent:{builder}-0.1.0" in image.tags

    contents, paths = image_files(docker_engine, result["image_id"])
    assert not [path for path in paths if "secrets/ca" in path or path.startswith(".actk")]
    assert not any(MARKER in blob for blob in contents), "the CA bundle leaked into the image"


def test_a_failing_step_is_a_clear_error_on_both_builders(
    tmp_path: Path, docker_engine: Any
) -> None:
    repo = tmp_path / "broken"
    shutil.copytree(Path(__file__).parent / "build_fixtures" / "failing", repo)
    for builder in ("buildkit", "api"):
        done = actk("build", str(repo), "--builder", builder, *build_args_for_tests())
        assert done.returncode == 5, done.stderr
        assert "the build failed" in done.stderr and "step-that-fails" in done.stderr
        assert "Traceback" not in done.stderr


def test_no_engine_is_a_clear_error(default_render: Path) -> None:
    done = actk(
        "build", str(default_render), env={"DOCKER_HOST": "unix:///nonexistent/docker.sock"}
    )
    assert done.returncode == 5
    assert "no Docker engine answers at unix:///nonexistent/docker.sock" in done.stderr
    assert "hint: install Docker Engine" in done.stderr
