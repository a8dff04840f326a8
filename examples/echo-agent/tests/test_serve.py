"""The server on a real socket: client disconnects, and the SIGTERM drain of the real process."""

from __future__ import annotations

import threading
import time

import anyio
import httpx
import pytest

pytestmark = pytest.mark.anyio

SLOW_QUESTION = " ".join(f"word{index}" for index in range(40))


async def read_until(lines, wanted: str, seen: list[str]) -> None:
    async for line in lines:
        seen.append(line)
        if line == wanted:
            return
    raise AssertionError(f"the stream ended before {wanted!r}")


async def read_rest(lines, seen: list[str]) -> None:
    """Read what is left of a stream the server may cut off."""
    try:
        async for line in lines:
            seen.append(line)
    except httpx.TransportError:
        pass


async def test_client_disconnect_cancels_a_silent_agent(make_app, live_server):
    ended = threading.Event()
    how_it_ended: list[str] = []

    async def silent_agent(ctx):
        try:
            yield "let me think "
            await anyio.sleep(60)  # nothing is written now: only the disconnect can stop it
            yield "never"
        except BaseException as exc:
            how_it_ended.append(type(exc).__name__)
            raise
        finally:
            ended.set()

    base_url = live_server(make_app(agent=silent_agent))
    async with httpx.AsyncClient(base_url=base_url, timeout=10) as http:
        async with http.stream("POST", "/responses", json={"input": "hi", "stream": True}) as reply:
            await read_until(reply.aiter_lines(), "event: response.output_text.delta", [])
        # leaving the block closed the connection mid-stream

    assert await anyio.to_thread.run_sync(ended.wait, 5), "the agent was never stopped"
    assert how_it_ended == ["CancelledError"]


async def test_client_disconnect_stops_a_talking_agent(make_app, live_server):
    ended = threading.Event()
    disconnected = threading.Event()
    chunks_after_disconnect: list[str] = []

    async def talking_agent(ctx):
        try:
            while True:
                if disconnected.is_set():
                    chunks_after_disconnect.append("tick")
                yield "tick "
                await anyio.sleep(0.02)
        finally:
            ended.set()

    base_url = live_server(make_app(agent=talking_agent))
    async with httpx.AsyncClient(base_url=base_url, timeout=10) as http:
        async with http.stream("POST", "/responses", json={"input": "hi", "stream": True}) as reply:
            await read_until(reply.aiter_lines(), "event: response.output_text.delta", [])
    disconnected.set()

    assert await anyio.to_thread.run_sync(ended.wait, 5), "the agent was never stopped"
    assert len(chunks_after_disconnect) <= 1


async def test_client_disconnect_leaves_nothing_in_flight(make_app, live_server):
    async def endless_agent(ctx):
        while True:
            yield "tick "
            await anyio.sleep(0.02)

    app = make_app(agent=endless_agent)
    base_url = live_server(app)
    async with httpx.AsyncClient(base_url=base_url, timeout=10) as http:
        async with http.stream("POST", "/responses", json={"input": "hi", "stream": True}) as reply:
            await read_until(reply.aiter_lines(), "event: response.output_text.delta", [])

        with anyio.fail_after(5):
            while app.state.server.in_flight:
                await anyio.sleep(0.02)
        assert (await http.get("/ping")).json() == {"status": "Healthy"}


async def test_ping_is_busy_while_a_request_is_in_flight(make_app, live_server):
    release = threading.Event()

    async def waiting_agent(ctx):
        yield "waiting "
        while not release.is_set():
            await anyio.sleep(0.01)
        yield "done"

    base_url = live_server(make_app(agent=waiting_agent))
    async with httpx.AsyncClient(base_url=base_url, timeout=10) as http:
        async with http.stream("POST", "/responses", json={"input": "hi", "stream": True}) as reply:
            lines = reply.aiter_lines()
            await read_until(lines, "event: response.output_text.delta", [])

            busy = (await http.get("/ping")).json()
            release.set()
            await read_until(lines, "data: [DONE]", [])

    assert busy == {"status": "HealthyBusy"}


async def test_sigterm_drains_the_in_flight_stream_then_exits_0(agent_process):
    agent = agent_process(ECHO_DELAY="0.1", DRAIN_TIMEOUT="20")
    seen: list[str] = []
    async with httpx.AsyncClient(base_url=agent.base_url, timeout=10) as http:
        body = {"input": "one two three four five six seven eight nine ten", "stream": True}
        async with http.stream("POST", "/responses", json=body) as reply:
            lines = reply.aiter_lines()
            await read_until(lines, "event: response.output_text.delta", seen)
            assert "event: response.completed" not in seen

            agent.terminate()
            with anyio.fail_after(5):
                while (await http.get("/readiness")).status_code != 503:
                    await anyio.sleep(0.02)
            refused = await http.post("/responses", json={"input": "too late"})

            await read_until(lines, "data: [DONE]", seen)

    assert refused.status_code == 503
    assert "event: response.completed" in seen
    assert await anyio.to_thread.run_sync(agent.process.wait, 10) == 0


async def test_sigterm_waits_for_a_background_run_to_finish(agent_process):
    agent = agent_process(ECHO_DELAY="0.2", DRAIN_TIMEOUT="20")
    async with httpx.AsyncClient(base_url=agent.base_url, timeout=10) as http:
        body = {"input": "one two three four five six", "background": True}  # 1.2 s of work
        reply = await http.post("/responses", json=body)
        assert reply.json()["status"] == "queued"
        started = time.monotonic()
        agent.terminate()

    assert await anyio.to_thread.run_sync(agent.process.wait, 10) == 0
    assert time.monotonic() - started >= 1.0  # it waited for the run, not just for requests


async def test_sigterm_ends_a_stream_that_outlasts_the_drain_with_response_failed(agent_process):
    agent = agent_process(ECHO_DELAY="0.5", DRAIN_TIMEOUT="0.5")
    seen: list[str] = []
    async with httpx.AsyncClient(base_url=agent.base_url, timeout=10) as http:
        body = {"input": SLOW_QUESTION, "stream": True}  # 40 words: 20 s to answer
        async with http.stream("POST", "/responses", json=body) as reply:
            lines = reply.aiter_lines()
            await read_until(lines, "event: response.output_text.delta", seen)

            started = time.monotonic()
            agent.terminate()
            await read_until(lines, "data: [DONE]", seen)
            code = await anyio.to_thread.run_sync(agent.process.wait, 10)

    assert code == 0
    assert time.monotonic() - started < 8  # DRAIN_TIMEOUT plus a short grace, not 20 s
    assert "event: response.completed" not in seen
    failed = next(line for line in seen if '"type":"response.failed"' in line)
    assert '"code":"server_shutting_down"' in failed


async def test_runs_stopped_at_shutdown_fail_with_server_shutting_down(make_app, http_for):
    async def endless(ctx):
        yield "working "
        await anyio.sleep(30)
        yield "never"

    app = make_app(agent=endless)
    http = http_for(app)
    async with anyio.create_task_group() as group:
        replies: dict[str, httpx.Response] = {}

        async def call(name: str, stream: bool) -> None:
            replies[name] = await http.post("/responses", json={"input": "x", "stream": stream})

        group.start_soon(call, "json", False)
        group.start_soon(call, "stream", True)
        with anyio.fail_after(5):
            while len(app.state.server.runs) < 2 or app.state.server.in_flight < 2:
                await anyio.sleep(0.01)
            await anyio.sleep(0.05)
            assert app.state.server.abort_runs() == 2

    assert replies["json"].status_code == 503
    assert replies["json"].json()["error"]["code"] == "server_shutting_down"
    assert replies["stream"].text.endswith("data: [DONE]\n\n")
    assert '"code":"server_shutting_down"' in replies["stream"].text


async def test_sigterm_with_nothing_in_flight_exits_0_at_once(agent_process):
    agent = agent_process(DRAIN_TIMEOUT="20")
    started = time.monotonic()

    agent.terminate()
    code = await anyio.to_thread.run_sync(agent.process.wait, 10)

    assert code == 0
    assert time.monotonic() - started < 3


async def test_disconnect_while_a_write_is_blocked_still_cancels_the_waiting_agent(make_app):
    """The agent pauses while the server is stuck writing what it had ready (a slow client),
    then the client goes away: the agent must see the cancellation, not be left suspended."""
    outcome: list[str] = []

    async def agent(ctx):
        try:
            yield "ready at once "
            await anyio.sleep(30)
            yield "never sent"
        except BaseException as exc:
            outcome.append(type(exc).__name__)
            raise
        finally:
            outcome.append("cleaned up")

    app = make_app(agent=agent)
    body = b'{"input": "hi", "stream": true}'
    write_blocked = anyio.Event()
    requested = False

    async def receive():
        nonlocal requested
        if not requested:
            requested = True
            return {"type": "http.request", "body": body, "more_body": False}
        await write_blocked.wait()
        return {"type": "http.disconnect"}

    async def send(message):
        if message["type"] == "http.response.body":
            write_blocked.set()
            await anyio.sleep_forever()  # the client stopped reading

    scope = {
        "type": "http", "asgi": {"version": "3.0", "spec_version": "2.4"}, "http_version": "1.1",
        "method": "POST", "scheme": "http", "path": "/responses", "raw_path": b"/responses",
        "query_string": b"", "root_path": "", "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 8088),
        "headers": [(b"content-type", b"application/json"), (b"content-length", b"31")],
    }
    with anyio.fail_after(5):
        await app(scope, receive, send)

    assert outcome == ["CancelledError", "cleaned up"]
    assert app.state.server.in_flight == 0
