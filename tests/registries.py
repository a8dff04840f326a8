"""Real registries on 127.0.0.1 for the push tests (a pytest plugin: session-scoped fixtures).

- ``test_ca``: a test certificate authority (trustme). Every server below uses its certificate
  for 127.0.0.1; ``trust(host)`` writes ``/etc/docker/certs.d/<host>/ca.crt`` for the engine, and
  ``ca_bundle`` (the host bundle + the test CA) is what httpx clients verify against.
- ``htpasswd_registry``: the CNCF Distribution registry (Debian's docker-registry, 2.8) with TLS
  and htpasswd (bcrypt) auth.
- ``acr_registry``: an Azure Container Registry look-alike: a front server (TLS) that implements
  ACR's ``/oauth2/exchange`` and ``/oauth2/token`` and proxies ``/v2/`` to a registry configured
  for token auth, which verifies the front's ES256 tokens (``x5c`` chained to the test CA).
- ``flaky_proxy``: ``flaky_proxy(target_host, reset_every=3, reset_after=4096, max_resets=None)``,
  a TCP proxy that resets every Nth connection (alternately at once and after forwarding some
  bytes) and forwards the rest.
- ``http_fault_proxy``: ``http_fault_proxy(target_host)``, an HTTPS proxy (the test CA's
  certificate) that forwards each request to the registry and answers chosen ones itself
  (``fail(503, method="PATCH", times=2)``, ``fail(429, headers={"Retry-After": "1"})``), and
  delays every request by ``delay`` seconds.

Servers listen on ephemeral ports and stop at the end of the session; the registry processes
also die with the pytest process (parent-death signal) and after ``MAX_LIFETIME`` at the latest.
Without an engine or the registry binary the fixtures skip with the reason (fail with CI=true).
Install the binary with scripts/registry.

What the Docker engine (20.10) does with these hosts, checked against them: 127.0.0.0/8 is an
insecure registry range by default (always, whatever the daemon configuration), so the engine
speaks HTTPS *without* verifying the certificate: pushes work with a wrong CA in certs.d or with
no certs.d entry at all. It falls back to plain HTTP only when the HTTPS attempt fails before TLS
is confirmed (a plain-HTTP registry on 127.0.0.1 works); once TLS worked, no plaintext retry
(moby's confirmedTLSRegistries). These servers speak TLS only; httpx clients verify them with
``ca_bundle``.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import secrets
import shutil
import socket
import ssl
import struct
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import HOST_CA_BUNDLE, engine, free_port

REGISTRY_BINARY = Path("/usr/bin/docker-registry")
CERTS_D = Path("/etc/docker/certs.d")
ACR_USERNAME = "00000000-0000-0000-0000-000000000000"  # ACR's user name for refresh tokens
ACR_UNAUTHORIZED = (
    "authentication required, visit https://aka.ms/acr/authorization for more information."
)
MAX_LIFETIME = 3600  # seconds; a registry left behind by a killed session stops by itself
_OWNER_FILE = "actk-test.owner"  # next to ca.crt: the pid that wrote it (the engine ignores it)


def unavailable(reason: str) -> None:
    """Skip with the reason; in CI a missing prerequisite is a failure (as conftest.engine())."""
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(reason)
    pytest.skip(reason)


def require_registry_binary() -> None:
    if not REGISTRY_BINARY.is_file():
        unavailable(f"{REGISTRY_BINARY} is missing; run scripts/registry")


# --- the test certificate authority ---------------------------------------------------------


class CertificateAuthority:
    """The test CA, its server certificate for 127.0.0.1, and the engine's trust of it."""

    def __init__(self, directory: Path) -> None:
        import trustme

        self.ca = trustme.CA(organization_name="actk test CA")
        self.directory = directory
        self.ca_file = directory / "ca.pem"
        self.ca.cert_pem.write_to_path(str(self.ca_file))
        host_bundle = Path(os.environ.get("SSL_CERT_FILE") or HOST_CA_BUNDLE)
        self.ca_bundle = directory / "bundle.pem"
        host_pems = host_bundle.read_bytes() if host_bundle.is_file() else b""
        self.ca_bundle.write_bytes(host_pems.rstrip(b"\n") + b"\n" + self.ca.cert_pem.bytes())
        server = self.ca.issue_cert("127.0.0.1", "localhost")
        self.server_cert = directory / "server.crt"  # leaf + chain
        self.server_key = directory / "server.key"
        self.server_cert.write_bytes(b"".join(pem.bytes() for pem in server.cert_chain_pems))
        server.private_key_pem.write_to_path(str(self.server_key))
        self._trusted: list[Path] = []

    def ssl_context(self) -> ssl.SSLContext:
        """A client context that trusts the host bundle and the test CA."""
        return ssl.create_default_context(cafile=str(self.ca_bundle))

    def trust(self, host: str) -> None:
        """Make the engine trust the test CA for ``host`` ("127.0.0.1:PORT"), until close().

        Without write access to /etc/docker this does nothing: the engine does not verify
        loopback registries anyway (see the module docstring)."""
        folder = CERTS_D / host
        try:
            folder.mkdir(parents=True, exist_ok=True)
            (folder / _OWNER_FILE).write_text(str(os.getpid()))
            shutil.copyfile(self.ca_file, folder / "ca.crt")
        except OSError:  # not root: nothing the engine needs (see the module docstring)
            return
        self._trusted.append(folder)

    def close(self) -> None:
        for folder in self._trusted:
            shutil.rmtree(folder, ignore_errors=True)
        self._trusted.clear()


def _remove_stale_trust() -> None:
    """certs.d folders left by sessions that were killed before their teardown."""
    for owner in CERTS_D.glob(f"127.0.0.1:*/{_OWNER_FILE}"):
        with contextlib.suppress(OSError, ValueError):
            pid = int(owner.read_text())
            if pid != os.getpid() and not Path(f"/proc/{pid}").exists():
                shutil.rmtree(owner.parent, ignore_errors=True)


@pytest.fixture(scope="session")
def test_ca(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CertificateAuthority]:
    _remove_stale_trust()
    authority = CertificateAuthority(tmp_path_factory.mktemp("test-ca"))
    yield authority
    authority.close()


# --- the Distribution registry process ------------------------------------------------------


class RegistryProcess:
    """One docker-registry process with ``config`` (a dict written as YAML's JSON subset)."""

    def __init__(self, directory: Path, config: dict[str, Any]) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        storage = directory / "storage"
        base = {
            "version": 0.1,
            "log": {"level": "warn", "accesslog": {"disabled": True}},
            "storage": {"filesystem": {"rootdirectory": str(storage)}, "delete": {"enabled": True}},
        }
        self.config_file = directory / "config.yml"
        self.config_file.write_text(json.dumps({**base, **config}, indent=2))
        self.log_file = directory / "registry.log"
        # `timeout` stops the registry after MAX_LIFETIME, and passes on the SIGTERM that
        # setpriv asks the kernel to send it when the thread that started it (pytest's main
        # thread, for session fixtures) dies, or that stop() sends.
        # REGISTRY_* variables would override the config file: keep them out.
        env = {k: v for k, v in os.environ.items() if not k.startswith("REGISTRY_")}
        command = ["timeout", "-k", "5", str(MAX_LIFETIME), str(REGISTRY_BINARY), "serve"]
        command.append("config.yml")
        if shutil.which("setpriv"):
            command = ["setpriv", "--pdeathsig", "TERM", *command]
        with self.log_file.open("wb") as log:
            self.process = subprocess.Popen(
                command, cwd=directory, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=log
            )

    def wait_until_it_answers(self, get: Callable[[], Any], timeout: float = 20) -> None:
        """Poll ``get()`` (a GET /v2/) until it returns; fail with the log if the process exits."""
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"docker-registry exited:\n{self.log()}")
            try:
                get()
                return
            except (OSError, httpx.TransportError):
                if time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"docker-registry did not answer:\n{self.log()}") from None
                time.sleep(0.05)

    def log(self) -> str:
        return self.log_file.read_text(errors="replace")[-4000:]

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@dataclass
class HttpFault:
    status: int
    method: str | None
    path_contains: str | None
    headers: dict[str, str]
    remaining: int


class HttpFaultProxy:
    """An HTTPS proxy in front of a registry: forwards every request (the registry sees the
    proxy's Host, so the upload URLs it hands out come back here), after ``delay`` seconds,
    except the ones a :meth:`fail` picks, which it answers with that status (a registry-shaped
    error body). ``requests`` records (method, path, status) of each."""

    HOP = {"connection", "keep-alive", "transfer-encoding", "proxy-connection", "upgrade", "te"}

    def __init__(self, target: str, test_ca: CertificateAuthority) -> None:
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        self.target = target
        self.delay = 0.0
        self.requests: list[tuple[str, str, int]] = []
        self._faults: list[HttpFault] = []
        self._lock = threading.Lock()
        upstream_context = test_ca.ssl_context()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def handle_one(self) -> None:
                proxy._forward(self, upstream_context)

            do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = handle_one

            def log_message(self, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(test_ca.server_cert, test_ca.server_key)
        self._server.socket = context.wrap_socket(self._server.socket, server_side=True)
        self.host = f"127.0.0.1:{self._server.server_address[1]}"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def fail(self, status: int, *, method: str | None = None, path_contains: str | None = None,
             times: int = 1, headers: dict[str, str] | None = None) -> None:
        with self._lock:
            self._faults.append(HttpFault(status, method, path_contains, dict(headers or {}),
                                          times))

    def _take(self, method: str, path: str) -> HttpFault | None:
        with self._lock:
            for fault in self._faults:
                if fault.remaining > 0 and fault.method in (None, method) and (
                    fault.path_contains is None or fault.path_contains in path
                ):
                    fault.remaining -= 1
                    return fault
        return None

    def _forward(self, handler: Any, context: ssl.SSLContext) -> None:
        import http.client

        from tests.contract_server import read_body

        headers = {k.lower(): v for k, v in handler.headers.items()}
        body = read_body(handler, headers)
        if self.delay:
            time.sleep(self.delay)
        fault = self._take(handler.command, handler.path)
        if fault is not None:
            error = json.dumps({"errors": [{"code": "UNAVAILABLE" if fault.status != 429
                                            else "TOOMANYREQUESTS",
                                            "message": f"injected {fault.status}"}]}).encode()
            handler.send_response(fault.status)
            for name, value in {"Content-Type": "application/json", **fault.headers}.items():
                handler.send_header(name, value)
            handler.send_header("Content-Length", str(len(error)))
            handler.end_headers()
            if handler.command != "HEAD":
                handler.wfile.write(error)
            self.requests.append((handler.command, handler.path, fault.status))
            return
        upstream = http.client.HTTPSConnection(self.target, context=context, timeout=120)
        try:
            forwarded = {k: v for k, v in handler.headers.items() if k.lower() not in self.HOP}
            forwarded["Content-Length"] = str(len(body))
            upstream.request(handler.command, handler.path, body=body, headers=forwarded)
            answer = upstream.getresponse()
            data = answer.read()
        finally:
            upstream.close()
        handler.send_response(answer.status)
        for name, value in answer.getheaders():
            if name.lower() not in self.HOP and name.lower() != "content-length":
                handler.send_header(name, value)
        length = answer.getheader("content-length") if handler.command == "HEAD" else None
        handler.send_header("Content-Length", length or str(len(data)))
        handler.end_headers()
        if handler.command != "HEAD":
            handler.wfile.write(data)
        self.requests.append((handler.command, handler.path, answer.status))

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture(scope="session")
def http_fault_proxy(test_ca: CertificateAuthority) -> Iterator[Callable[[str], HttpFaultProxy]]:
    """``http_fault_proxy(target_host)`` -> HttpFaultProxy (``.host``, ``.fail``, ``.delay``,
    ``.requests``); the engine trusts the test CA for its host. Proxies close at the end of
    the session."""
    proxies: list[HttpFaultProxy] = []

    def make(target: str) -> HttpFaultProxy:
        proxy = HttpFaultProxy(target, test_ca)
        proxies.append(proxy)
        test_ca.trust(proxy.host)
        return proxy

    yield make
    for proxy in proxies:
        proxy.close()


# --- htpasswd + TLS -------------------------------------------------------------------------


@dataclass
class HtpasswdRegistry:
    host: str  # "127.0.0.1:PORT"
    username: str
    password: str
    ca_bundle: Path

    @property
    def url(self) -> str:
        return f"https://{self.host}"

    @property
    def auth_config(self) -> dict[str, str]:
        """For docker-py: ``client.api.push(..., auth_config=registry.auth_config)``."""
        return {"username": self.username, "password": self.password, "serveraddress": self.host}


@pytest.fixture(scope="session")
def htpasswd_registry(
    test_ca: CertificateAuthority, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[HtpasswdRegistry]:
    import bcrypt

    engine()
    require_registry_binary()
    directory = tmp_path_factory.mktemp("htpasswd-registry")
    username, password = "actk-test", secrets.token_urlsafe(16)
    # Cost 4 (the minimum): the registry checks the password on every request.
    hashed = bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=4)).decode()
    (directory / "htpasswd").write_text(f"{username}:{hashed}\n")
    for attempt in range(3):  # a free port can be taken between probe and bind
        host = f"127.0.0.1:{free_port()}"
        registry = RegistryProcess(
            directory / f"run{attempt}",
            {
                "http": {
                    "addr": host,
                    "secret": secrets.token_hex(16),
                    "tls": {
                        "certificate": str(test_ca.server_cert),
                        "key": str(test_ca.server_key),
                    },
                },
                "auth": {"htpasswd": {"realm": "actk-test", "path": str(directory / "htpasswd")}},
            },
        )
        try:
            registry.wait_until_it_answers(
                lambda host=host: httpx.get(f"https://{host}/v2/", verify=test_ca.ssl_context())
            )
            break
        except RuntimeError:
            registry.stop()
            if attempt == 2 or "address already in use" not in registry.log():
                raise
    test_ca.trust(host)
    yield HtpasswdRegistry(host, username, password, test_ca.ca_bundle)
    registry.stop()


# --- the ACR look-alike ---------------------------------------------------------------------


@dataclass
class AcrRegistry:
    host: str  # the front: "127.0.0.1:PORT"; also the token service name
    entra_token: str  # the only Entra access token /oauth2/exchange accepts
    tenant: str  # its `tid` claim
    ca_bundle: Path
    requests: list[dict[str, Any]] = field(default_factory=list)  # the oauth2 calls, in order
    username: str = ACR_USERNAME

    @property
    def url(self) -> str:
        return f"https://{self.host}"


def _entra_like_token(tenant: str) -> str:
    """A JWT-shaped Entra access token for the ARM audience (only its shape matters)."""
    import jwt

    now = int(time.time())
    claims = {
        "aud": "https://management.azure.com/",
        "iss": f"https://sts.windows.net/{tenant}/",
        "tid": tenant,
        "oid": str(uuid.uuid4()),
        "iat": now,
        "nbf": now,
        "exp": now + 3600,
    }
    return jwt.encode(claims, secrets.token_bytes(32), algorithm="HS256")


class AcrFront:
    """The front server: ACR's OAuth2 endpoints, and /v2/ proxied to the registry."""

    HOP_BY_HOP = frozenset(
        {
            "connection",
            "keep-alive",
            "proxy-connection",
            "te",
            "trailer",
            "transfer-encoding",
            "upgrade",
        }
    )

    def __init__(self, registry: AcrRegistry, socket_path: Path, signer: Any, issuer: str) -> None:
        self.registry = registry
        self.socket_path = socket_path
        self.issuer = issuer
        self._key = signer.private_key_pem.bytes()
        leaf_der = ssl.PEM_cert_to_DER_cert(signer.cert_chain_pems[0].bytes().decode())
        self._x5c = [base64.b64encode(leaf_der).decode()]
        self._refresh_tokens: set[str] = set()
        self._client: Any = None

    def app(self) -> Any:
        from starlette.applications import Starlette
        from starlette.routing import Route

        proxied = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"]
        return Starlette(
            routes=[
                Route("/oauth2/exchange", self.exchange, methods=["POST"]),
                Route("/oauth2/token", self.token, methods=["GET", "POST"]),
                Route("/v2/{path:path}", self.proxy, methods=proxied),
            ],
            lifespan=self.lifespan,
        )

    @contextlib.asynccontextmanager
    async def lifespan(self, app: Any):
        transport = httpx.AsyncHTTPTransport(uds=str(self.socket_path))
        async with httpx.AsyncClient(
            transport=transport, base_url="http://registry", timeout=120
        ) as self._client:
            yield

    # POST /oauth2/exchange: an Entra access token -> an ACR refresh token
    async def exchange(self, request: Any) -> Any:
        import jwt

        form = await _form(request)
        entry = self._log(request, form)
        if form.get("grant_type") != "access_token":
            return self._error(entry, 400, "UNSUPPORTED", "grant_type must be access_token")
        if form.get("service") != self.registry.host:
            return self._error(entry, 400, "INVALID", f"unknown service {form.get('service')!r}")
        tenant = form.get("tenant")
        if form.get("access_token") != self.registry.entra_token or tenant not in (
            None,
            self.registry.tenant,
        ):
            return self._error(entry, 401, "UNAUTHORIZED", ACR_UNAUTHORIZED)
        now = int(time.time())
        refresh = jwt.encode(
            {
                "jti": str(uuid.uuid4()),
                "sub": "actk-test",
                "tid": self.registry.tenant,
                "grant_type": "refresh_token",
                "aud": self.registry.host,
                "iss": self.issuer,
                "iat": now,
                "nbf": now,
                "exp": now + 3 * 3600,
            },
            self._key,
            algorithm="ES256",
        )
        self._refresh_tokens.add(refresh)
        return self._json(entry, 200, {"refresh_token": refresh})

    # GET (Basic: ACR_USERNAME + refresh token, as the engine does) or POST (refresh_token
    # grant) /oauth2/token -> an access token for the requested scopes
    async def token(self, request: Any) -> Any:
        if request.method == "POST":
            form = await _form(request)
            entry = self._log(request, form)
            scopes = " ".join(form.getlist("scope")).split()
            refresh = form.get("refresh_token")
            if form.get("grant_type") != "refresh_token":
                refresh = None
            service = form.get("service")
        else:
            entry = self._log(request, request.query_params)
            scopes = request.query_params.getlist("scope")
            refresh = _basic_password(request.headers.get("authorization"), ACR_USERNAME)
            service = request.query_params.get("service")
        if service != self.registry.host:
            return self._error(entry, 400, "INVALID", f"unknown service {service!r}")
        if refresh not in self._refresh_tokens:
            return self._error(entry, 401, "UNAUTHORIZED", ACR_UNAUTHORIZED)
        access = [_scope_claim(scope) for scope in scopes]
        token = self._access_token([item for item in access if item is not None])
        return self._json(entry, 200, {"access_token": token, "token": token})

    def _access_token(self, access: list[dict[str, Any]]) -> str:
        import jwt

        now = int(time.time())
        claims = {
            "iss": self.issuer,
            "sub": ACR_USERNAME,
            "aud": self.registry.host,
            "iat": now,
            "nbf": now,
            "exp": now + 3600,
            "jti": secrets.token_hex(8),
            "access": access,
        }
        return jwt.encode(claims, self._key, algorithm="ES256", headers={"x5c": self._x5c})

    # /v2/...: streamed both ways to the registry. The registry builds its Location URLs from
    # the forwarded host and protocol, and its WWW-Authenticate realm and service name the
    # front (see acr_registry), so clients keep talking to the front.
    async def proxy(self, request: Any) -> Any:
        from starlette.background import BackgroundTask
        from starlette.responses import StreamingResponse

        headers = [
            (name, value)
            for name, value in request.headers.raw
            if name.decode().lower() not in self.HOP_BY_HOP
        ]
        headers += [
            (b"x-forwarded-proto", b"https"),
            (b"x-forwarded-host", self.registry.host.encode()),
        ]
        has_body = "content-length" in request.headers or "transfer-encoding" in request.headers
        target = request.scope["raw_path"]
        if request.scope["query_string"]:
            target += b"?" + request.scope["query_string"]
        upstream = self._client.build_request(
            request.method,
            self._client.base_url.copy_with(raw_path=target),
            headers=headers,
            content=request.stream() if has_body else None,
        )
        answer = await self._client.send(upstream, stream=True)
        response = StreamingResponse(
            answer.aiter_raw(),
            status_code=answer.status_code,
            background=BackgroundTask(answer.aclose),
        )
        response.raw_headers = [
            (name.lower(), value)
            for name, value in answer.headers.raw
            if name.decode().lower() not in self.HOP_BY_HOP
        ]
        return response

    def _log(self, request: Any, params: Any) -> dict[str, Any]:
        entry = {
            "method": request.method,
            "path": request.url.path,
            "grant_type": params.get("grant_type"),
            "service": params.get("service"),
            "scope": params.getlist("scope"),
            "tenant": params.get("tenant"),
            "basic_user": _basic_user(request.headers.get("authorization")),
        }
        self.registry.requests.append(entry)
        return entry

    def _json(self, entry: dict[str, Any], status: int, body: dict[str, Any]) -> Any:
        from starlette.responses import JSONResponse

        entry["status"] = status
        return JSONResponse(body, status_code=status)

    def _error(self, entry: dict[str, Any], status: int, code: str, message: str) -> Any:
        """ACR's error shape, the Distribution error envelope. (Given this body for a refused
        refresh token, the engine 20.10 retries the layer upload for ~50 s before failing.)"""
        return self._json(entry, status, {"errors": [{"code": code, "message": message}]})


async def _form(request: Any) -> Any:
    """A urlencoded body as QueryParams (Starlette's own form parser needs python-multipart)."""
    from starlette.datastructures import QueryParams

    return QueryParams((await request.body()).decode())


def _basic_credentials(header: str | None) -> tuple[str, str] | None:
    if not header or not header.lower().startswith("basic "):
        return None
    with contextlib.suppress(ValueError):
        user, _, password = base64.b64decode(header[6:]).decode().partition(":")
        return user, password
    return None


def _basic_user(header: str | None) -> str | None:
    credentials = _basic_credentials(header)
    return credentials[0] if credentials else None


def _basic_password(header: str | None, username: str) -> str | None:
    credentials = _basic_credentials(header)
    return credentials[1] if credentials and credentials[0] == username else None


def _scope_claim(scope: str) -> dict[str, Any] | None:
    """The token's access entry for a scope such as ``repository:team/app:pull,push``; every
    requested action is granted."""
    kind, _, rest = scope.partition(":")
    name, _, actions = rest.rpartition(":")
    if not kind or not name:
        return None
    return {"type": kind, "name": name, "actions": [a for a in actions.split(",") if a]}


class ThreadedServer:
    """A uvicorn server on an already bound socket, on its own thread and event loop."""

    def __init__(self, app: Any, sock: socket.socket, certfile: Path, keyfile: Path) -> None:
        import uvicorn

        config = uvicorn.Config(
            app,
            ssl_certfile=str(certfile),
            ssl_keyfile=str(keyfile),
            log_level="warning",
            server_header=False,
            lifespan="on",
            timeout_keep_alive=30,
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(
            target=lambda: asyncio.run(self.server.serve(sockets=[sock])), daemon=True
        )
        self.thread.start()

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


@pytest.fixture(scope="session")
def acr_registry(
    test_ca: CertificateAuthority, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[AcrRegistry]:
    engine()
    require_registry_binary()
    directory = tmp_path_factory.mktemp("acr-registry")
    front_socket = socket.create_server(("127.0.0.1", 0))
    host = f"127.0.0.1:{front_socket.getsockname()[1]}"
    tenant = str(uuid.uuid4())
    registry = AcrRegistry(host, _entra_like_token(tenant), tenant, test_ca.ca_bundle)
    issuer = "actk-test-acr"
    signer = test_ca.ca.issue_cert("actk-test-acr-token-signer")
    (directory / "token-root.pem").write_bytes(test_ca.ca.cert_pem.bytes())
    # Only the front can reach the registry: a unix socket, in a short path (the limit is 107).
    socket_dir = Path(tempfile.mkdtemp(prefix="actk-acr-"))
    backend = socket_dir / "registry.sock"
    process = RegistryProcess(
        directory / "registry",
        {
            "http": {"net": "unix", "addr": str(backend), "secret": secrets.token_hex(16)},
            "auth": {
                "token": {
                    "realm": f"https://{host}/oauth2/token",
                    "service": host,
                    "issuer": issuer,
                    "rootcertbundle": str(directory / "token-root.pem"),
                }
            },
        },
    )
    with httpx.Client(transport=httpx.HTTPTransport(uds=str(backend))) as local:
        process.wait_until_it_answers(lambda: local.get("http://registry/v2/"))
    front = AcrFront(registry, backend, signer, issuer)
    server = ThreadedServer(front.app(), front_socket, test_ca.server_cert, test_ca.server_key)
    try:
        process.wait_until_it_answers(
            lambda: httpx.get(f"https://{host}/v2/", verify=test_ca.ssl_context())
        )
    except RuntimeError:
        server.stop()
        raise
    test_ca.trust(host)
    yield registry
    server.stop()
    front_socket.close()
    process.stop()
    shutil.rmtree(socket_dir, ignore_errors=True)


# --- fault injection ------------------------------------------------------------------------


class FlakyProxy:
    """A TCP proxy to ``target`` that resets (RST) every ``reset_every``-th connection:
    alternately right after accepting it and after forwarding ``reset_after`` bytes; after
    ``max_resets`` resets (if given) it forwards everything. TLS passes through unchanged.
    Runs on its own thread and event loop.

    The engine opens a new connection for almost every request of a push (about 10 for a
    one-layer image), so every Nth connection fails the same step of every attempt: give
    ``max_resets`` when a retrying client must eventually get through."""

    def __init__(
        self,
        target: str,
        reset_every: int = 3,
        reset_after: int = 4096,
        max_resets: int | None = None,
    ) -> None:
        address, _, port = target.rpartition(":")
        self.target = (address, int(port))
        self.reset_every = reset_every
        self.reset_after = reset_after
        self.max_resets = max_resets
        self.connections = 0
        self.resets = 0
        self._doomed = 0  # connections picked for a reset so far
        listener = socket.create_server(("127.0.0.1", 0))
        self.host = f"127.0.0.1:{listener.getsockname()[1]}"
        self._loop = asyncio.new_event_loop()
        self._writers: set[asyncio.StreamWriter] = set()
        self._server = self._loop.run_until_complete(
            asyncio.start_server(self._handle, sock=listener)
        )
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()

    def _budget(self) -> int | None:
        """How many bytes the next connection forwards before its reset (None: no reset)."""
        self.connections += 1
        if self.connections % self.reset_every or self._doomed == self.max_resets:
            return None
        self._doomed += 1
        return 0 if self._doomed % 2 else self.reset_after  # at once, then after some bytes

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        budget = self._budget()
        if budget == 0:
            self._reset(writer)
            return
        try:
            upstream_reader, upstream = await asyncio.open_connection(*self.target)
        except OSError:
            self._reset(writer)
            return
        self._writers.update((writer, upstream))
        state = {"budget": budget}
        await asyncio.gather(
            self._pump(reader, upstream, state, writer),
            self._pump(upstream_reader, writer, state, upstream),
            return_exceptions=True,
        )
        for each in (writer, upstream):
            each.close()
            self._writers.discard(each)

    async def _pump(
        self,
        source: asyncio.StreamReader,
        sink: asyncio.StreamWriter,
        state: dict[str, int | None],
        source_writer: asyncio.StreamWriter,
    ) -> None:
        while data := await source.read(65536):
            budget = state["budget"]
            if budget is not None:
                data = data[:budget]
                state["budget"] = budget - len(data)
            sink.write(data)
            await sink.drain()
            if state["budget"] == 0:
                self._reset(sink, source_writer)
                return
        if sink.can_write_eof() and not sink.is_closing():
            sink.write_eof()

    def _reset(self, *writers: asyncio.StreamWriter) -> None:
        """Close with SO_LINGER 0: the peers get a TCP RST instead of a FIN."""
        self.resets += 1
        for writer in writers:
            sock = writer.get_extra_info("socket")
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            writer.transport.abort()

    def close(self) -> None:
        async def stop() -> None:
            self._server.close()
            for writer in list(self._writers):
                writer.transport.abort()

        asyncio.run_coroutine_threadsafe(stop(), self._loop).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()


@pytest.fixture(scope="session")
def flaky_proxy(test_ca: CertificateAuthority) -> Iterator[Callable[..., FlakyProxy]]:
    """``flaky_proxy(target_host, reset_every=3, reset_after=4096, max_resets=None)`` ->
    FlakyProxy (``.host``, ``.connections``, ``.resets``); the engine trusts the test CA for its
    host too. Proxies close at the end of the session."""
    proxies: list[FlakyProxy] = []

    def make(
        target: str,
        reset_every: int = 3,
        reset_after: int = 4096,
        max_resets: int | None = None,
    ) -> FlakyProxy:
        proxy = FlakyProxy(target, reset_every, reset_after, max_resets)
        proxies.append(proxy)
        test_ca.trust(proxy.host)
        return proxy

    yield make
    for proxy in proxies:
        proxy.close()
