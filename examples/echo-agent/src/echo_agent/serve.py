"""Run the app under uvicorn with a graceful SIGTERM drain.

On SIGTERM (or SIGINT): readiness turns 503 and new work is refused with 503; in-flight
requests get up to ``DRAIN_TIMEOUT`` seconds to finish; then the server stops and the process
exits 0. A second signal ends the drain early: the runs still going are stopped (each ends as
``failed`` with ``server_shutting_down``, streams still get their terminal event), and the
process still exits 0. A third closes the connections at once (uvicorn's forced exit), also 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import importlib.util
import logging
import signal
import sys
import threading
from collections.abc import Iterator

from . import logs
from .app import AgentServer, create_app
from .settings import Settings

logger = logging.getLogger(__name__)
GC_FREEZE_DELAY = 1.0  # seconds after the socket listens


def _defer(name: str) -> None:
    """Register module ``name`` without running it: it runs at the first use of a name it
    defines (``name.x``, ``from name import x``), so code that needs it still sees all of it.
    Its submodules import as usual (a package's ``__path__`` is set without running it).

    (importlib's ``LazyLoader`` cannot do this: on 3.11 an ``import name`` statement reads the
    module's ``__spec__``, which runs it.)
    """
    if name in sys.modules:
        return
    spec = importlib.util.find_spec(name)
    if spec is None or spec.loader is None:
        return
    module = importlib.util.module_from_spec(spec)

    def complete(attribute: str):
        del module.__getattr__
        spec.loader.exec_module(module)
        return getattr(module, attribute)

    module.__getattr__ = complete
    sys.modules[name] = module
    parent, _, child = name.rpartition(".")
    if parent:
        setattr(sys.modules[parent], child, module)


def _uvicorn_server():
    """uvicorn's ``Config`` and ``Server``, without what this process never uses.

    ``import uvicorn`` runs uvicorn/__init__.py, which imports uvicorn.main: click, the reloader
    and multiprocessing, for the ``uvicorn`` command (about a tenth of the container's
    start-up). And uvicorn.config imports ``logging.config`` (with logging.handlers,
    socketserver, pickle and queue: about 3 ms) for the ``log_config`` files and dicts this
    server never passes. Both are deferred (see :func:`_defer`) unless imported already.
    """
    _defer("uvicorn")
    _defer("logging.config")
    from uvicorn.config import Config
    from uvicorn.server import Server

    package = sys.modules["uvicorn"]
    package.Config, package.Server = Config, Server  # what uvicorn's own modules import
    return Config, Server


Config, Server = _uvicorn_server()
from uvicorn.server import HANDLED_SIGNALS  # noqa: E402 (after the deferrals above)


def bounded_protocol(request_timeout: float) -> type[asyncio.Protocol]:
    """uvicorn's httptools protocol, with slow senders bounded (uvicorn has no such timeout): a
    connection is closed when a request has not arrived whole (headers and body)
    ``request_timeout`` seconds after its first byte, or after the connection opened.

    Per request it only notes the time; one timer per connection checks it. When httptools is
    missing (uvicorn falls back to h11) this returns ``"auto"``: no bound.
    """
    try:
        from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
    except ImportError:
        return "auto"  # type: ignore[return-value]

    class BoundedHttpToolsProtocol(HttpToolsProtocol):
        _began: float | None = None  # when the request arriving now began; None: none is
        _timer: asyncio.TimerHandle | None = None

        def connection_made(self, transport) -> None:
            super().connection_made(transport)
            self._began = self.loop.time()  # an idle new connection counts as a slow request
            self._timer = self.loop.call_later(request_timeout, self._check)

        def on_message_begin(self) -> None:
            super().on_message_begin()
            self._began = self.loop.time()

        def on_message_complete(self) -> None:
            super().on_message_complete()
            self._began = None

        def connection_lost(self, exc) -> None:
            if self._timer is not None:
                self._timer.cancel()
            super().connection_lost(exc)

        def _check(self) -> None:
            self._timer = None
            if self.transport.is_closing():
                return
            now, began = self.loop.time(), self._began
            if began is not None and now - began >= request_timeout:
                client = "{}:{}".format(*self.client) if self.client else None
                logger.warning("request timed out: closing the connection",
                               extra={"request_timeout": request_timeout, "client": client})
                self.transport.close()
                return
            wait = request_timeout if began is None else began + request_timeout - now
            self._timer = self.loop.call_later(wait, self._check)

    return BoundedHttpToolsProtocol


class DrainingServer(Server):
    def __init__(self, config: Config, agent_server: AgentServer, drain_timeout: float):
        super().__init__(config)
        self.agent_server = agent_server
        self.drain_timeout = drain_timeout
        self._drain_task: asyncio.Task | None = None
        self._signals = 0  # exit signals received
        self._hurry = False  # a second signal: stop waiting for in-flight work

    async def startup(self, *args, **kwargs) -> None:
        await super().startup(*args, **kwargs)
        asyncio.get_running_loop().call_later(GC_FREEZE_DELAY, _collect_and_freeze)

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        """uvicorn's, minus the end: it puts the old handlers back once the server has stopped,
        so a signal arriving while the process finishes would kill it (exit -15). This
        handler stays to the end; what it does then changes nothing."""
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        for sig in HANDLED_SIGNALS:
            signal.signal(sig, self.handle_exit)
        yield

    def handle_exit(self, sig, frame) -> None:
        # Not uvicorn's handle_exit: it records the signal and raises it again once the server
        # has stopped, so the process would die of it (exit -15) instead of exiting 0.
        self._signals += 1
        if self._signals == 2:  # end the drain now
            logger.warning("second signal: stopping the drain early",
                           extra={"in_flight": self.agent_server.busy})
            self._hurry = True
            return
        if self._signals > 2:  # close the connections at once
            self.should_exit = self.force_exit = True
            return
        self.agent_server.draining = True
        logger.info("draining", extra={"in_flight": self.agent_server.busy,
                                       "drain_timeout": self.drain_timeout})
        loop = asyncio.get_event_loop()
        loop.call_soon_threadsafe(self._start_drain)

    def _start_drain(self) -> None:
        self._drain_task = asyncio.get_running_loop().create_task(self._drain())

    async def _drain(self) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.drain_timeout
        while self.agent_server.busy and loop.time() < deadline and not self._hurry:
            await asyncio.sleep(0.05)
        if self.agent_server.busy:
            aborted = self.agent_server.abort_runs()
            logger.warning("drain ended early: stopping what is left" if self._hurry else
                           "drain timed out: stopping what is left",
                           extra={"in_flight": self.agent_server.busy, "runs_stopped": aborted})
            # Let the stopped runs send their terminal events before the server closes.
            grace = loop.time() + 2
            while self.agent_server.busy and loop.time() < grace:
                await asyncio.sleep(0.05)
        else:
            logger.info("drained")
        self.should_exit = True


def serve(settings: Settings | None = None) -> int:
    settings = settings or Settings.from_env()
    logs.configure(settings.log_level)
    app = create_app(settings)
    config = Config(
        app,
        host=settings.host,
        port=settings.port,
        log_config=None,
        access_log=False,
        lifespan="off",
        ws="none",  # no WebSocket routes; "auto" would import any websockets library installed
        http=bounded_protocol(settings.request_timeout),
        server_header=False,
        timeout_graceful_shutdown=1,
    )
    agent_server = app.state.server
    server = DrainingServer(config, agent_server, settings.drain_timeout)
    telemetry = agent_server.telemetry  # None unless an exporter is configured
    if telemetry is not None:
        telemetry.install()
    logger.info(
        "listening",
        extra={"host": settings.host, "port": settings.port, "agent": settings.agent_name,
               "model_provider": settings.model_provider, "model": settings.model_name,
               "telemetry": telemetry is not None},
    )
    try:
        server.run()
    finally:
        # From here a signal has nothing left to stop; ignored, it cannot kill the process as
        # it finishes (Python puts the default handlers back when it exits, not ignored ones).
        if threading.current_thread() is threading.main_thread():
            for sig in HANDLED_SIGNALS:
                signal.signal(sig, signal.SIG_IGN)
        if telemetry is not None:  # export what is pending before the process exits
            telemetry.shutdown()
    return 0


def _collect_and_freeze() -> None:
    """Start-up objects live as long as the process: keep them out of every future GC pass.

    Runs once the socket listens (the collection takes milliseconds), and turns the cyclic GC
    back on if ``__main__`` kept it off during start-up."""
    gc.collect()
    gc.freeze()
    gc.enable()
