"""`actk build` before the engine: tags, labels, CA bundle, context hygiene, builder choice."""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

import pytest

from toolkit.build import BuildOptions, parse_build_args, plan_build, project_version
from toolkit.build_context import collect, secret_files
from toolkit.builders import DockerCli, builder_mode, choose_builder, cli_command
from toolkit.ca_bundle import find_ca_bundle
from toolkit.console import Console
from toolkit.dockerfile import for_classic_builder
from toolkit.errors import DockerError, UsageError
from toolkit.gitinfo import public_url, read_git_info
from toolkit.manifest import load_manifest
from toolkit.tags import expand, image_references

PEM = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"


def git(repo: Path, *args: str) -> None:
    subprocess.run(
        ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@example.com", *args],
        check=True,
        capture_output=True,
    )


@pytest.fixture
def repo(default_render: Path, tmp_path: Path) -> Path:
    """A private copy of the default render, made a git repository with one commit."""
    copy = tmp_path / "echo-agent"
    subprocess.run(["cp", "-r", str(default_render), str(copy)], check=True)
    git(copy, "init", "-q")
    git(copy, "add", ".")
    git(copy, "commit", "-qm", "initial")
    git(copy, "remote", "add", "origin", "https://user:s3cret@github.com/acme/echo-agent.git")
    return copy


def plan(repo: Path, **options: object):  # type: ignore[no-untyped-def]
    return plan_build(repo, load_manifest(repo), BuildOptions(**options), Console(as_json=True))


class TestTags:
    def test_placeholders_are_filled(self) -> None:
        values = {"git_sha": "abc123", "timestamp": "20260101", "version": "1.2.0"}
        assert expand("v{version}-{git_sha}", values) == "v1.2.0-abc123"

    def test_an_unknown_placeholder_names_the_known_ones(self) -> None:
        with pytest.raises(UsageError) as error:
            expand("{branch}", {})
        assert "{branch}" in error.value.message and "{git_sha}" in (error.value.hint or "")

    def test_a_bare_tag_goes_on_the_repository_and_a_reference_stands_alone(self) -> None:
        values = {"git_sha": "abc", "timestamp": "t", "version": "1"}
        refs = image_references("agent", ["{git_sha}", "reg.io:5000/team/agent:v{version}"], values)
        assert refs == ["agent:abc", "reg.io:5000/team/agent:v1"]

    @pytest.mark.parametrize("template", ["Bad Tag", "-lead", "x" * 129, "UPPER/Case:1"])
    def test_invalid_references_are_refused(self, template: str) -> None:
        with pytest.raises(UsageError):
            image_references("agent", [template], {"git_sha": "", "timestamp": "", "version": ""})


class TestPlan:
    def test_tags_come_from_git_and_latest_is_added(self, repo: Path) -> None:
        sha = subprocess.check_output(["git", "-C", str(repo), "rev-parse", "HEAD"], text=True)
        request = plan(repo)
        assert request.tags == [f"echo-agent:{sha.strip()[:12]}", "echo-agent:latest"]

    def test_a_dirty_tree_is_marked_in_the_tag(self, repo: Path) -> None:
        (repo / "src" / "echo_agent" / "agent.py").write_text("# edited\n", encoding="utf-8")
        assert plan(repo).tags[0].endswith("-dirty")

    def test_a_committed_state_file_that_changed_is_not_dirt(self, repo: Path) -> None:
        from toolkit.state import write_section

        write_section(repo, "image", {"digest": "sha256:1"})
        subprocess.run(["git", "-C", str(repo), "add", ".actk"], check=True)
        subprocess.run(["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t",
                        "commit", "-qm", "record the push"], check=True)
        write_section(repo, "image", {"digest": "sha256:2"})
        assert not plan(repo).tags[0].endswith("-dirty")

    def test_without_git_the_sha_is_dev(self, default_render: Path) -> None:
        assert plan(default_render).tags[0] == "echo-agent:dev"

    def test_oci_labels_and_build_args(self, repo: Path) -> None:
        request = plan(repo, build_args=["EXTRA=1"], base_image="local/base:1")
        labels = request.labels
        assert labels["org.opencontainers.image.title"] == "echo-agent"
        assert labels["org.opencontainers.image.version"] == project_version(repo) == "0.1.0"
        assert len(labels["org.opencontainers.image.revision"]) == 40
        assert labels["org.opencontainers.image.created"].endswith("Z")
        # The remote's credentials never reach a label.
        assert labels["org.opencontainers.image.source"] == "https://github.com/acme/echo-agent"
        assert request.build_args["BASE_IMAGE"] == "local/base:1"
        assert request.build_args["EXTRA"] == "1"
        assert request.platform == "linux/amd64"

    def test_flags_override_the_manifest(self, repo: Path) -> None:
        request = plan(repo, tags=["v{version}"], platform="linux/arm64", tag_latest=False)
        assert request.tags == ["echo-agent:v0.1.0"]
        assert request.platform == "linux/arm64"

    def test_a_build_arg_must_be_name_equals_value(self) -> None:
        with pytest.raises(UsageError, match="NAME=VALUE"):
            parse_build_args(["JUSTNAME"])


class TestCaBundle:
    def test_the_flag_wins_over_the_environment(self, tmp_path: Path) -> None:
        flag, env = tmp_path / "flag.pem", tmp_path / "env.pem"
        flag.write_text(PEM)
        env.write_text(PEM)
        assert find_ca_bundle(flag, {"SSL_CERT_FILE": str(env)}).source == "--ca-bundle"

    @pytest.mark.parametrize("name", ["SSL_CERT_FILE", "REQUESTS_CA_BUNDLE", "PIP_CERT"])
    def test_detected_from_the_environment(self, tmp_path: Path, name: str) -> None:
        bundle = tmp_path / "ca.pem"
        bundle.write_text(PEM)
        found = find_ca_bundle(None, {name: str(bundle)})
        assert found is not None and found.source == name and found.path == bundle

    def test_none_when_nothing_is_set(self) -> None:
        assert find_ca_bundle(None, {}) is None

    def test_a_missing_or_non_pem_file_is_a_clear_error(self, tmp_path: Path) -> None:
        with pytest.raises(UsageError, match="does not exist"):
            find_ca_bundle(tmp_path / "nope.pem", {})
        der = tmp_path / "ca.der"
        der.write_bytes(b"\x30\x82\x01")
        with pytest.raises(UsageError, match="no PEM certificate"):
            find_ca_bundle(None, {"PIP_CERT": str(der)})


class TestContext:
    def test_dockerignore_is_honoured_and_size_counted(self, repo: Path) -> None:
        context = collect(repo, "Dockerfile")
        assert "agent.yaml" in context.files and "Dockerfile" in context.files
        assert not any(f.startswith(("tests/", ".git/")) for f in context.files)
        assert context.size == sum((repo / f).stat().st_size for f in context.files)

    def test_secret_files_are_refused_unless_allowed(self, repo: Path) -> None:
        for name in ("config/prod.env.local", "deploy/id_ed25519", "certs/server.key"):
            (repo / name).parent.mkdir(parents=True, exist_ok=True)
            (repo / name).write_text("secret")
        (repo / ".dockerignore").write_text("tests\n")  # a careless ignore file
        (repo / ".env").write_text("OPENAI_API_KEY=sk-live")
        (repo / ".env.example").write_text("OPENAI_API_KEY=")
        (repo / ".aws").mkdir()
        (repo / ".aws" / "credentials").write_text("[default]")
        found = secret_files(collect(repo, "Dockerfile"))
        assert sorted(found) == [
            ".aws/credentials",
            ".env",
            "certs/server.key",
            "deploy/id_ed25519",
        ]
        with pytest.raises(UsageError) as error:
            plan(repo)
        assert ".env" in error.value.message and "--allow-secret-files" in (error.value.hint or "")
        assert plan(repo, allow_secret_files=True).context.files


class TestClassicBuilderDockerfile:
    TEMPLATE = (
        "ARG BASE_IMAGE=x\n"
        "FROM ${BASE_IMAGE} AS build\n"
        "RUN --mount=type=secret,id=ca,required=false \\\n"
        "    --mount=type=cache,target=/root/.cache \\\n"
        "    pip install -r r.txt\n"
        "FROM ${BASE_IMAGE}\n"
        "COPY --from=build /opt/venv /opt/venv\n"
    )

    def test_the_ca_is_copied_into_the_build_stage_and_deleted(self) -> None:
        text, warnings = for_classic_builder(self.TEMPLATE, ca_file=".actk/ca.crt")
        assert "--mount" not in text
        assert "COPY .actk/ca.crt /run/secrets/ca\nRUN \\\n    pip install -r r.txt\n" in text
        assert "RUN rm -f /run/secrets/ca\nFROM ${BASE_IMAGE}\n" in text
        assert warnings == ["cache mount /root/.cache ignored (no BuildKit)"]

    def test_without_a_ca_the_optional_mount_is_dropped(self) -> None:
        text, _ = for_classic_builder(self.TEMPLATE, ca_file=None)
        assert "/run/secrets" not in text and "pip install" in text

    def test_a_required_ca_without_a_bundle_is_refused(self) -> None:
        text = self.TEMPLATE.replace("required=false", "required=true")
        with pytest.raises(UsageError, match="requires the CA bundle"):
            for_classic_builder(text, ca_file=None)

    def test_a_secret_in_the_final_stage_is_refused(self) -> None:
        text = "FROM base\nRUN --mount=type=secret,id=ca cat /run/secrets/ca\n"
        with pytest.raises(UsageError, match="final stage"):
            for_classic_builder(text, ca_file=".actk/ca.crt")

    @pytest.mark.parametrize(
        "flag",
        ["--mount=type=bind,source=.,target=/src", "--mount=type=secret,id=npm", "--network=none"],
    )
    def test_what_cannot_be_emulated_is_refused_with_the_buildkit_hint(self, flag: str) -> None:
        with pytest.raises(UsageError) as error:
            for_classic_builder(f"FROM a AS b\nRUN {flag} true\nFROM c\n", ca_file=None)
        assert "buildx" in (error.value.hint or "")


def fake_docker(directory: Path, version: str, buildx: bool) -> str:
    """An executable that answers `docker --version` and `docker buildx version` like a client."""
    directory.mkdir(parents=True)
    script = directory / "docker"
    script.write_text(
        "#!/bin/sh\n"
        f'[ "$1" = --version ] && {{ echo "Docker version {version}, build x"; exit 0; }}\n'
        f'[ "$1" = buildx ] && exit {0 if buildx else 1}\n'
        "exit 2\n"
    )
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    return str(script)


class TestBuilderChoice:
    def test_a_new_client_without_buildx_is_skipped_for_an_old_one(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        new = fake_docker(tmp_path / "new", "28.2.2", buildx=False)
        old = fake_docker(tmp_path / "old", "20.10.24+dfsg1", buildx=False)
        monkeypatch.setenv("PATH", os.pathsep.join([str(Path(new).parent), str(Path(old).parent)]))
        mode, cli = choose_builder("auto")
        assert (mode, cli.path if cli else None) == ("buildkit", old)

    def test_buildx_is_preferred_when_present(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        new = fake_docker(tmp_path / "new", "28.2.2", buildx=True)
        monkeypatch.setenv("PATH", str(Path(new).parent))
        assert choose_builder("auto")[0] == "buildx"

    def test_auto_falls_back_to_the_engine_api(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        new = fake_docker(tmp_path / "new", "28.2.2", buildx=False)
        monkeypatch.setenv("PATH", str(Path(new).parent))
        assert choose_builder("auto") == ("api", None)
        with pytest.raises(DockerError, match="buildx"):
            choose_builder("buildx")

    def test_the_buildx_command_loads_the_image_and_passes_the_ca_as_a_secret(
        self, repo: Path, tmp_path: Path
    ) -> None:
        bundle = tmp_path / "ca.pem"
        bundle.write_text(PEM)
        request = plan(repo, ca_bundle=bundle)
        argv = cli_command(DockerCli("docker", (28, 2), True), "buildx", request, "/tmp/iid")
        assert argv[:4] == ["docker", "buildx", "build", "--load"]
        assert f"id=ca,src={bundle.resolve()}" in argv
        assert argv[argv.index("--platform") + 1] == "linux/amd64"
        assert argv[-1] == str(repo.resolve())
        assert PEM.strip() not in " ".join(argv)

    def test_any_other_builder_name_is_a_buildx_builder(self, repo: Path) -> None:
        mode, name = builder_mode("remote-bk")
        assert (mode, name) == ("buildx", "remote-bk")
        request = plan(repo)
        request.builder_name = name
        argv = cli_command(DockerCli("docker", (28, 2), True), mode, request, "/tmp/iid")
        assert argv[argv.index("--builder") + 1] == "remote-bk"
        assert builder_mode("api") == ("api", None)
        with pytest.raises(UsageError, match="buildx builder"):
            builder_mode("--rm")


def test_git_urls_lose_their_credentials() -> None:
    assert public_url("https://x-token:ghp_123@github.com/a/b.git") == "https://github.com/a/b"
    assert public_url("git@github.com:a/b.git") == "https://github.com/a/b"


def test_outside_git_there_are_no_facts(tmp_path: Path) -> None:
    info = read_git_info(tmp_path)
    assert info.sha is None and info.short_sha is None and not info.dirty
