"""Run the app under uvicorn with a graceful SIGTERM drain.

On SIGTERM (or SIGINT): readiness turns 503 and new work is refused with 503; in-flight
requests get up to ``DRAIN_TIMEOUT`` seconds to finish; then the server stops and the process
exits 0. A second signal stops at once.
"""

from __future__ import annotations

import asyncio
import gc
import importlib.util
import logging
import sys

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


class DrainingServer(Server):
    def __init__(self, config: Config, agent_server: AgentServer, drain_timeout: float):
        super().__init__(config)
        self.agent_server = agent_server
        self.drain_timeout = drain_timeout
        self._drain_task: asyncio.Task | None = None

    async def startup(self, *args, **kwargs) -> None:
        await super().startup(*args, **kwargs)
        asyncio.get_running_loop().call_later(GC_FREEZE_DELAY, _collect_and_freeze)

    def handle_exit(self, sig, frame) -> None:
        if self.agent_server.draining:  # second signal: stop now
            super().handle_exit(sig, frame)
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
        while self.agent_server.busy and loop.time() < deadline:
            await asyncio.sleep(0.05)
        if self.agent_server.busy:
            aborted = self.agent_server.abort_runs()
            logger.warning("drain timed out: stopping what is left",
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
        server_header=False,
        timeout_graceful_shutdown=1,
    )
    server = DrainingServer(config, app.state.server, settings.drain_timeout)
    logger.info(
        "listening",
        extra={"host": settings.host, "port": settings.port, "agent": settings.agent_name,
               "model_provider": settings.model_provider, "model": settings.model_name},
    )
    server.run()
    return 0


def _collect_and_freeze() -> None:
    """Start-up objects live as long as the process: keep them out of every future GC pass.

    Runs once the socket listens (the collection takes milliseconds), and turns the cyclic GC
    back on if ``__main__`` kept it off during start-up."""
    gc.collect()
    gc.freeze()
    gc.enable()
