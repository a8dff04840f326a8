"""The server under load: hundreds of concurrent streams, a thousand clients leaving mid-stream
(no tasks or memory left behind), and SIGTERM with a full house.

The in-process tests serve the app with uvicorn in a thread and count the asyncio tasks of the
server's own event loop through a test-only ASGI route (``/_test/tasks``, added around the app
here, never in the server). LOAD_STREAMS and LOAD_DISCONNECTS change the sizes.
"""

from __future__ import annotations

import asyncio
import gc
import os
import sys
import time

import anyio
import httpx
import pytest

pytestmark = pytest.mark.anyio

STREAMS = int(os.environ.get("LOAD_STREAMS", "300"))
DISCONNECTS = int(os.environ.get("LOAD_DISCONNECTS", "1000"))


class TaskCounter:
    """Wraps an app: ``GET /_test/tasks`` answers how many asyncio tasks the server's loop has
    (after a GC pass), everything else goes to the app."""

    def __init__(self, app) -> None:
        self.app = app
        self.state = app.state

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "http" and scope["path"] == "/_test/tasks":
            gc.collect()
            body = str(len(asyncio.all_tasks())).encode()
            await send({"type": "http.response.start", "status": 200,
                        "headers": [(b"content-length", b"%d" % len(body))]})
            await send({"type": "http.response.body", "body": body})
            return
        await self.app(scope, receive, send)


def rss_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


async def settle(http: httpx.AsyncClient, server) -> int:
    """Wait until nothing is in flight; the server loop's task count then."""
    with anyio.fail_after(20):
        while server.in_flight or server.runs:
            await anyio.sleep(0.05)
    await anyio.sleep(0.2)  # let uvicorn close the connections
    return int((await http.get("/_test/tasks")).text)


def limits(n: int) -> httpx.Limits:
    return httpx.Limits(max_connections=n, max_keepalive_connections=0)


async def test_hundreds_of_concurrent_streams_all_complete(make_app, live_server):
    started = anyio.Event()
    waiting = 0

    async def agent(ctx):
        nonlocal waiting
        waiting += 1
        if waiting == STREAMS:
            started.set()
        await started.wait()  # every stream is open at once before any answers
        for word in ("one ", "two ", "three ", "four ", "five"):
            await anyio.sleep(0.01)
            yield word

    app = make_app(agent=agent)
    base_url = live_server(TaskCounter(app))
    async with httpx.AsyncClient(base_url=base_url, timeout=60, limits=limits(STREAMS)) as http:
        before = await settle(http, app.state.server)
        replies: list[str] = []

        async def stream() -> None:
            body = {"input": "hi", "stream": True}
            reply = await http.post("/responses", json=body)
            assert reply.status_code == 200
            replies.append(reply.text)

        with anyio.fail_after(60):
            async with anyio.create_task_group() as group:
                for _ in range(STREAMS):
                    group.start_soon(stream)
        after = await settle(http, app.state.server)

    assert len(replies) == STREAMS
    assert all(text.endswith("data: [DONE]\n\n") for text in replies)
    assert all('"type":"response.completed"' in text for text in replies)
    assert all("one two three four five" in text for text in replies)
    assert after <= before


@pytest.mark.skipif(sys.platform != "linux", reason="RSS is read from /proc")
async def test_a_thousand_clients_leaving_mid_stream_leave_no_tasks_or_memory_behind(
        make_app, live_server):
    async def endless(ctx):
        while True:
            yield "tick "
            await anyio.sleep(0.01)

    app = make_app(agent=endless)
    server = app.state.server
    base_url = live_server(TaskCounter(app))
    batch = 100

    async def leave_mid_stream(http: httpx.AsyncClient) -> None:
        async with http.stream("POST", "/responses", json={"input": "hi", "stream": True}) as r:
            async for line in r.aiter_lines():
                if line == "event: response.output_text.delta":
                    return  # leaving the block closes the connection mid-stream

    async def wave(http: httpx.AsyncClient, n: int) -> None:
        for start in range(0, n, batch):
            async with anyio.create_task_group() as group:
                for _ in range(min(batch, n - start)):
                    group.start_soon(leave_mid_stream, http)

    async with httpx.AsyncClient(base_url=base_url, timeout=30, limits=limits(batch)) as http:
        await wave(http, 200)  # warm-up: caches, pools and allocator arenas fill once
        tasks_before = await settle(http, server)
        gc.collect()
        rss_before = rss_bytes()

        with anyio.fail_after(120):
            await wave(http, DISCONNECTS)
        tasks_after = await settle(http, server)
        gc.collect()
        rss_after = rss_bytes()
        assert not server.runs and not server.in_flight
        assert (await http.get("/readiness")).status_code == 200  # the server still answers
        with anyio.fail_after(5):
            await leave_mid_stream(http)

    growth = rss_after - rss_before
    print(f"\n{DISCONNECTS} disconnects: tasks {tasks_before} -> {tasks_after}, "
          f"RSS {rss_before / 2**20:.1f} -> {rss_after / 2**20:.1f} MiB")
    assert tasks_after <= tasks_before
    assert growth < 8 * 2**20, f"RSS grew {growth / 2**20:.1f} MiB over {DISCONNECTS} streams"


async def read_until(lines, wanted: str) -> None:
    async for line in lines:
        if line == wanted:
            return
    raise AssertionError(f"the stream ended before {wanted!r}")


async def test_sigterm_under_load_finishes_every_stream_refuses_new_work_and_exits_0(
        agent_process):
    agent = agent_process(ECHO_DELAY="0.1", DRAIN_TIMEOUT="20")
    n = 100
    body = {"input": "one two three four five six seven eight nine ten", "stream": True}
    opened = 0
    all_open = anyio.Event()
    finished: list[str] = []

    async with httpx.AsyncClient(base_url=agent.base_url, timeout=30, limits=limits(n + 8)) \
            as http:
        async def stream() -> None:
            nonlocal opened
            seen: list[str] = []
            async with http.stream("POST", "/responses", json=body) as reply:
                lines = reply.aiter_lines()
                await read_until(lines, "event: response.output_text.delta")
                opened += 1
                if opened == n:
                    all_open.set()
                async for line in lines:
                    seen.append(line)
            finished.append("\n".join(seen))

        with anyio.fail_after(30):
            async with anyio.create_task_group() as group:
                for _ in range(n):
                    group.start_soon(stream)
                await all_open.wait()
                started = time.monotonic()
                agent.terminate()
                while (await http.get("/readiness")).status_code != 503:
                    await anyio.sleep(0.02)
                refused = await http.post("/responses", json={"input": "too late"})
        code = await anyio.to_thread.run_sync(agent.process.wait, 20)
        elapsed = time.monotonic() - started

    assert refused.status_code == 503
    assert refused.json()["error"]["type"] == "server_error"
    assert len(finished) == n
    assert all("event: response.completed" in text for text in finished)
    assert all(text.rstrip().endswith("data: [DONE]") for text in finished)
    assert code == 0
    assert elapsed < 20  # within the drain window
