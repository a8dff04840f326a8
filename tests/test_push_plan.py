"""`actk push` before any upload: which registry, which credentials, which errors (no engine)."""

from __future__ import annotations

import json
import os
import stat
import sys
from pathlib import Path

import pytest
from conftest import actk, render

from toolkit.errors import RegistryError, UsageError
from toolkit.manifest import RegistrySettings
from toolkit.push import _failure, is_transient
from toolkit.redact import redact
from toolkit.registry.credentials import RegistryCredentials
from toolkit.registry.generic import from_docker_config
from toolkit.registry.hosts import is_azure, is_loopback, registry_host, repository_path
from toolkit.registry.resolve import registry_kind, resolve_credentials
from toolkit.state import read_state, write_section

SECRET = "s3cret-Passw0rd-value"


@pytest.mark.parametrize(
    ("repository", "host", "path"),
    [
        ("myreg.azurecr.io/support-agent", "myreg.azurecr.io", "support-agent"),
        ("registry.cn-hangzhou.aliyuncs.com/ns/agent", "registry.cn-hangzhou.aliyuncs.com",
         "ns/agent"),
        ("127.0.0.1:5000/team/agent", "127.0.0.1:5000", "team/agent"),
        ("localhost/agent", "localhost", "agent"),
        ("docker.io/user/agent", "docker.io", "user/agent"),
        ("user/agent", "docker.io", "user/agent"),
        ("agent", "docker.io", "library/agent"),
    ],
)
def test_the_registry_host_is_read_the_way_docker_reads_it(
    repository: str, host: str, path: str
) -> None:
    assert registry_host(repository) == host
    assert repository_path(repository) == path


def test_azure_hosts_include_the_sovereign_clouds() -> None:
    hosts = ("a.azurecr.io", "a.azurecr.cn", "a.azurecr.us", "A.AzureCR.io")
    assert all(is_azure(h) for h in hosts)
    assert not is_azure("azurecr.io.example.com")


def test_loopback_hosts() -> None:
    hosts = ("127.0.0.1:5000", "127.0.0.2", "localhost:80", "[::1]:5000", "::1")
    assert all(is_loopback(h) for h in hosts)
    assert not is_loopback("10.0.0.1:5000")
    assert not is_loopback("registry.example.com")


def test_credentials_never_show_their_secret() -> None:
    credentials = RegistryCredentials("r.example.com", "robot", SECRET, source="test")
    assert SECRET not in repr(credentials)
    assert SECRET not in str(credentials)
    assert credentials.auth_config() == {
        "username": "robot", "password": SECRET, "serveraddress": "r.example.com"
    }
    token = RegistryCredentials("r.example.com", "<token>", SECRET, identity_token=True)
    assert token.auth_config() == {"identitytoken": SECRET, "serveraddress": "r.example.com"}


def test_redact_replaces_every_occurrence_and_ignores_short_values() -> None:
    text = f"a {SECRET} b {SECRET}"
    assert redact(text, [SECRET, None, "ab"]) == "a [REDACTED] b [REDACTED]"


class TestResolution:
    def test_flags_come_first(self) -> None:
        env = {"ACTK_REGISTRY_USERNAME": "env-user", "ACTK_REGISTRY_PASSWORD": "env-password"}
        found = resolve_credentials(
            "r.example.com", RegistrySettings(), env, username="flag-user", password=SECRET
        )
        assert found is not None
        assert (found.username, found.password) == ("flag-user", SECRET)

    def test_then_the_environment_even_for_azure(self) -> None:
        env = {"ACTK_REGISTRY_USERNAME": "scoped-token", "ACTK_REGISTRY_PASSWORD": SECRET}
        found = resolve_credentials("myreg.azurecr.io", RegistrySettings(), env)
        assert found is not None
        assert found.username == "scoped-token"
        assert found.source == "ACTK_REGISTRY_USERNAME/ACTK_REGISTRY_PASSWORD"

    def test_half_a_pair_is_a_usage_error(self) -> None:
        with pytest.raises(UsageError, match="ACTK_REGISTRY_PASSWORD"):
            resolve_credentials("r.example.com", RegistrySettings(),
                                {"ACTK_REGISTRY_USERNAME": "u"})
        with pytest.raises(UsageError, match="go together"):
            resolve_credentials("r.example.com", RegistrySettings(), {}, username="u")

    @pytest.mark.parametrize(
        ("host", "kind", "expected"),
        [
            ("myreg.azurecr.io", "auto", "azure"),
            ("registry.cn-hangzhou.aliyuncs.com", "auto", "alibaba"),
            ("myinst-registry.cn-shanghai.cr.aliyuncs.com", "auto", "alibaba"),
            ("ghcr.io", "auto", "generic"),
            ("127.0.0.1:5000", "azure", "azure"),
        ],
    )
    def test_the_family_comes_from_the_host_or_the_manifest(
        self, host: str, kind: str, expected: str
    ) -> None:
        assert registry_kind(host, RegistrySettings(kind=kind)) == expected

    def test_azure_without_any_token_names_both_ways_to_give_one(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        from toolkit.errors import CloudError

        monkeypatch.setitem(sys.modules, "azure.identity", None)  # as if not installed
        with pytest.raises(CloudError) as raised:
            resolve_credentials("myreg.azurecr.io", RegistrySettings(), {})
        assert "AZURE_ACCESS_TOKEN" in str(raised.value.hint)
        assert "agent-container-toolkit[azure]" in str(raised.value.hint)


class TestDockerConfig:
    def test_a_saved_login_is_used(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        import base64

        auth = base64.b64encode(f"robot:{SECRET}".encode()).decode()
        (tmp_path / "config.json").write_text(
            json.dumps({"auths": {"r.example.com": {"auth": auth}}})
        )
        monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path))
        found = from_docker_config("r.example.com")
        assert found is not None
        assert (found.username, found.password) == ("robot", SECRET)
        assert from_docker_config("other.example.com") is None

    def test_credential_helpers_are_asked(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        helper = tmp_path / "bin" / "docker-credential-fake"
        helper.parent.mkdir()
        helper.write_text(
            f"#!{sys.executable}\n"
            "import json, sys\n"
            "host = sys.stdin.read().strip()\n"
            "if host != 'r.example.com':\n"
            "    print('credentials not found in native keychain'); sys.exit(1)\n"
            f"print(json.dumps({{'Username': '<token>', 'Secret': '{SECRET}'}}))\n"
        )
        helper.chmod(helper.stat().st_mode | stat.S_IEXEC)
        (tmp_path / "config.json").write_text(
            json.dumps({"credHelpers": {"r.example.com": "fake"}})
        )
        monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path))
        monkeypatch.setenv("PATH", f"{helper.parent}{os.pathsep}{os.environ['PATH']}")
        found = from_docker_config("r.example.com")
        assert found is not None
        assert found.identity_token
        assert found.auth_config()["identitytoken"] == SECRET

    def test_no_config_means_no_credentials(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path))
        assert from_docker_config("r.example.com") is None


@pytest.mark.parametrize(
    ("message", "transient"),
    [
        ("Put https://r/v2/a/blobs/uploads/x: read: connection reset by peer", True),
        ("received unexpected HTTP status: 503 Service Unavailable", True),
        ("net/http: TLS handshake timeout", True),
        ("unexpected EOF", True),
        ("toomanyrequests: retry later", True),
        ("denied: requested access to the resource is denied", False),
        ("unauthorized: authentication required", False),
        ("manifest invalid: manifest invalid", False),
    ],
)
def test_which_failures_are_retried(message: str, transient: bool) -> None:
    assert is_transient(message) is transient


class TestFailureHints:
    def creds(self, host: str, username: str = "robot") -> RegistryCredentials:
        return RegistryCredentials(host, username, SECRET, source="test")

    def test_denied_on_azure_names_acrpush(self) -> None:
        error = _failure("myreg.azurecr.io/a", "v1", "denied: requested access to the "
                         "resource is denied", self.creds("myreg.azurecr.io"), transient=False)
        assert "AcrPush" in str(error.hint)

    def test_denied_on_alibaba_names_the_ram_action(self) -> None:
        host = "registry.cn-hangzhou.aliyuncs.com"
        error = _failure(f"{host}/ns/a", "v1", "unauthorized: authentication required",
                         self.creds(host), transient=False)
        assert "cr:PushRepository" in str(error.hint)

    def test_denied_without_credentials_says_how_to_sign_in(self) -> None:
        error = _failure("r.example.com/a", "v1", "unauthorized", None, transient=False)
        assert "--password-stdin" in str(error.hint)

    def test_an_unknown_host(self) -> None:
        error = _failure("nope.example.com/a", "v1", "dial tcp: lookup nope.example.com: "
                         "no such host", None, transient=True)
        assert error.message.startswith("unknown registry host nope.example.com")

    def test_an_untrusted_certificate_names_where_the_ca_goes(self) -> None:
        error = _failure("r.example.com:5000/a", "v1", "x509: certificate signed by unknown "
                         "authority", None, transient=False)
        assert "/etc/docker/certs.d/r.example.com:5000/ca.crt" in str(error.hint)

    def test_an_expired_token(self) -> None:
        error = _failure("myreg.azurecr.io/a", "v1", "unauthorized: token has expired",
                         self.creds("myreg.azurecr.io"), transient=False)
        assert "run the push again" in str(error.hint)

    def test_the_secret_is_redacted_from_the_engine_message(self) -> None:
        error = _failure("r.example.com/a", "v1", f"denied for password {SECRET}",
                         self.creds("r.example.com"), transient=False)
        assert SECRET not in error.message


def test_state_sections_are_replaced_one_at_a_time(tmp_path: Path) -> None:
    write_section(tmp_path, "azure", {"version": "3"})
    write_section(tmp_path, "image", {"digest": "sha256:1"})
    write_section(tmp_path, "image", {"digest": "sha256:2"})
    assert read_state(tmp_path) == {"azure": {"version": "3"}, "image": {"digest": "sha256:2"}}
    assert [p.name for p in (tmp_path / ".actk").iterdir()] == ["state.json"]


def test_a_repository_without_a_registry_is_refused_with_the_fix(tmp_path: Path) -> None:
    repo = render(tmp_path / "echo-agent")
    result = actk("push", "--json", cwd=repo)
    assert result.returncode == RegistryError.exit_code
    error = json.loads(result.stdout)
    assert error["message"] == "echo-agent names no registry"
    assert "image.repository" in error["hint"]


def test_a_password_on_the_command_line_is_not_accepted(tmp_path: Path) -> None:
    repo = render(tmp_path / "echo-agent")
    result = actk("push", "--username", "robot", cwd=repo)
    assert result.returncode == UsageError.exit_code
    assert "--password-stdin" in result.stderr


def test_layer_progress_counts_bytes_and_prints_each_change_once(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from toolkit.console import Console
    from toolkit.push_progress import LayerTally, layer_progress

    monkeypatch.setenv("CI", "true")
    events = [
        {"status": "The push refers to repository [r/a]"},
        {"status": "Preparing", "id": "aaa"},
        {"status": "Preparing", "id": "bbb"},
        {"status": "Pushing", "id": "aaa", "progressDetail": {"current": 512, "total": 1000}},
        {"status": "Pushing", "id": "aaa", "progressDetail": {"current": 1000, "total": 1000}},
        {"status": "Layer already exists", "id": "bbb"},
        {"status": "Pushed", "id": "aaa"},
        {"status": "v1: digest: sha256:abc size: 528"},
    ]
    tally = LayerTally()
    with layer_progress(Console(), "r/a:v1") as sink:
        for event in events:
            tally.record(event)
            sink(event)
    assert (tally.bytes_uploaded, set(tally.uploaded), tally.existing) == (1000, {"aaa"}, {"bbb"})
    lines = capsys.readouterr().err.splitlines()
    assert lines.count("    aaa: Pushing") == 1
    assert lines[-1] == "    v1: digest: sha256:abc size: 528"
