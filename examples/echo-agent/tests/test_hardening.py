"""The server against hostile and unlucky callers: odd ids and text, races on the same response
id, clients that leave, repeated signals, slow clients, and load."""

from __future__ import annotations

import socket
import threading
import time

import anyio
import httpx
import pytest

pytestmark = pytest.mark.anyio

SLOW_QUESTION = " ".join(f"word{index}" for index in range(40))
JSON = {"content-type": "application/json"}


def assert_openai_error(response: httpx.Response, status: int) -> dict:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert isinstance(error["message"], str) and error["message"]
    return error


# --- ids and text ------------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["resp_1\n", "resp_1\r\n", "\nresp_1", "", "a" * 129, "a b"])
def test_is_valid_id_rejects_anything_but_the_whole_string(package, value):
    assert not package.ids.is_valid_id(value)


async def test_a_response_id_with_a_trailing_newline_is_refused(http):
    reply = await http.post("/responses", json={"input": "hi", "response_id": "resp_1\n"})

    assert assert_openai_error(reply, 400)["param"] == "response_id"


@pytest.mark.parametrize("body", [
    b'{"input": "\\ud800"}',  # a lone high surrogate, escaped
    b'{"input": "x\\udfff y"}',  # a lone low surrogate, escaped
    b'{"input": "hi", "metadata": {"\\ud800": "key"}}',  # in a key
    b'{"input": "\xed\xa0\x80"}',  # a surrogate encoded as UTF-8 bytes
    b' {"input": "\\ud800"}',  # the other decoding path (leading space)
])
async def test_a_lone_surrogate_in_the_body_is_a_400_in_the_openai_shape(http, body):
    reply = await http.post("/responses", content=body, headers=JSON)

    assert assert_openai_error(reply, 400)["code"] == "invalid_json"


async def test_an_escaped_surrogate_pair_is_text(http):
    reply = await http.post("/responses", content=b'{"input": "smile \\ud83d\\ude00"}',
                            headers=JSON)

    assert reply.status_code == 200
    assert "\U0001F600" in reply.json()["output"][0]["content"][0]["text"]


# --- one response id, two requests --------------------------------------------------------------


@pytest.mark.parametrize("stream", [False, True])
async def test_concurrent_requests_with_the_same_response_id_one_gets_409(make_app, http_for,
                                                                           stream):
    release = anyio.Event()

    async def waiting_agent(ctx):
        yield "waiting "
        await release.wait()
        yield "done"

    app = make_app(agent=waiting_agent)
    http = http_for(app)
    headers = {"x-agent-response-id": "resp_shared"}
    replies: list[httpx.Response] = []

    async def call() -> None:
        body = {"input": "hi", "stream": stream}
        replies.append(await http.post("/responses", json=body, headers=headers))

    with anyio.fail_after(10):
        async with anyio.create_task_group() as group:
            group.start_soon(call)
            group.start_soon(call)
            while not replies:  # the second is refused while the first waits
                await anyio.sleep(0.01)
            release.set()

    refused, served = replies
    assert assert_openai_error(refused, 409)["code"] == "response_id_conflict"
    assert refused.headers["x-should-retry"] == "false"
    assert served.status_code == 200
    assert app.state.server.claimed == set()
    again = await http.post("/responses", json={"input": "hi"}, headers=headers)
    assert assert_openai_error(again, 409)["code"] == "response_id_conflict"  # it is stored


async def test_a_refused_request_does_not_release_the_id_it_did_not_claim(make_app, http_for):
    release = anyio.Event()

    async def waiting_agent(ctx):
        yield "waiting "
        await release.wait()

    app = make_app(agent=waiting_agent)
    http = http_for(app)
    body = {"input": "hi", "store": False}
    headers = {"x-agent-response-id": "resp_unstored"}
    replies: list[httpx.Response] = []

    async def call() -> None:
        replies.append(await http.post("/responses", json=body, headers=headers))

    with anyio.fail_after(10):
        async with anyio.create_task_group() as group:
            group.start_soon(call)
            for _ in range(2):  # two refusals in a row: the first must not free the id
                while not app.state.server.claimed:
                    await anyio.sleep(0.01)
                reply = await http.post("/responses", json=body, headers=headers)
                assert reply.status_code == 409
            release.set()

    assert replies[0].status_code == 200
    assert app.state.server.claimed == set()


# --- clients that leave --------------------------------------------------------------------------


async def test_client_disconnect_cancels_a_non_streaming_run(make_app, live_server):
    ended = threading.Event()
    how_it_ended: list[str] = []

    async def slow_agent(ctx):
        try:
            yield "thinking "
            await anyio.sleep(60)
            yield "never"
        except BaseException as exc:
            how_it_ended.append(type(exc).__name__)
            raise
        finally:
            ended.set()

    app = make_app(agent=slow_agent)
    base_url = live_server(app)
    async with httpx.AsyncClient(base_url=base_url, timeout=10) as http:
        with pytest.raises(httpx.ReadTimeout):
            await http.post("/responses", json={"input": "hi"}, timeout=0.5)

        assert await anyio.to_thread.run_sync(ended.wait, 5), "the agent was never stopped"
        assert how_it_ended == ["CancelledError"]
        with anyio.fail_after(5):
            while app.state.server.in_flight or app.state.server.runs:
                await anyio.sleep(0.02)
        assert (await http.get("/readiness")).status_code == 200


async def test_client_disconnect_cancels_an_invocation(make_app, live_server):
    ended = threading.Event()

    async def slow_agent(ctx):
        try:
            yield "thinking "
            await anyio.sleep(60)
        finally:
            ended.set()

    app = make_app(agent=slow_agent)
    base_url = live_server(app)
    async with httpx.AsyncClient(base_url=base_url, timeout=10) as http:
        with pytest.raises(httpx.ReadTimeout):
            await http.post("/invocations", json={"input": "hi"}, timeout=0.5)

    assert await anyio.to_thread.run_sync(ended.wait, 5), "the agent was never stopped"


# --- signals -------------------------------------------------------------------------------------


async def read_until(lines, wanted: str, seen: list[str]) -> None:
    async for line in lines:
        seen.append(line)
        if line == wanted:
            return
    raise AssertionError(f"the stream ended before {wanted!r}")


async def test_a_second_sigterm_ends_the_drain_early_and_still_exits_0(agent_process):
    agent = agent_process(ECHO_DELAY="0.5", DRAIN_TIMEOUT="30")
    seen: list[str] = []
    async with httpx.AsyncClient(base_url=agent.base_url, timeout=10) as http:
        body = {"input": SLOW_QUESTION, "stream": True}  # 40 words: 20 s to answer
        async with http.stream("POST", "/responses", json=body) as reply:
            lines = reply.aiter_lines()
            await read_until(lines, "event: response.output_text.delta", seen)

            started = time.monotonic()
            agent.terminate()
            with anyio.fail_after(5):
                while (await http.get("/readiness")).status_code != 503:
                    await anyio.sleep(0.02)
            agent.terminate()
            await read_until(lines, "data: [DONE]", seen)
            code = await anyio.to_thread.run_sync(agent.process.wait, 10)

    assert code == 0
    assert time.monotonic() - started < 8  # not the 30 s drain, nor the 20 s answer
    failed = next(line for line in seen if '"type":"response.failed"' in line)
    assert '"code":"server_shutting_down"' in failed


async def test_a_third_signal_still_exits_0(agent_process):
    agent = agent_process(ECHO_DELAY="0.5", DRAIN_TIMEOUT="30")
    async with httpx.AsyncClient(base_url=agent.base_url, timeout=10) as http:
        body = {"input": SLOW_QUESTION, "stream": True}
        async with http.stream("POST", "/responses", json=body) as reply:
            await read_until(reply.aiter_lines(), "event: response.output_text.delta", [])
            for _ in range(3):
                agent.terminate()
                await anyio.sleep(0.1)
            code = await anyio.to_thread.run_sync(agent.process.wait, 10)

    assert code == 0


# --- session ids sent back as a header ------------------------------------------------------------


async def test_a_body_session_id_latin_1_cannot_write_goes_back_as_utf_8(http):
    reply = await http.post("/responses", json={"input": "hi", "agent_session_id": "séance-😀"})

    assert reply.status_code == 200
    assert reply.headers.raw[0] == (b"x-agent-session-id", "séance-😀".encode())


async def test_a_body_session_id_with_a_newline_is_refused(http):
    body = {"input": "hi", "agent_session_id": "sess\r\nx-injected: 1"}
    reply = await http.post("/responses", json=body)

    assert assert_openai_error(reply, 400)["param"] == "agent_session_id"


# --- slow clients -------------------------------------------------------------------------------


def closed_within(sock: socket.socket, seconds: float) -> bool:
    """Whether the server closes ``sock`` within ``seconds`` (whatever it sends first)."""
    sock.settimeout(seconds)
    deadline = time.monotonic() + seconds
    try:
        while time.monotonic() < deadline:
            if not sock.recv(65536):
                return True
    except TimeoutError:
        return False
    except ConnectionError:
        return True
    return False


def connect(base_url: str) -> socket.socket:
    host, port = base_url.removeprefix("http://").split(":")
    return socket.create_connection((host, int(port)))


REQUEST_START = b"POST /responses HTTP/1.1\r\nhost: agent\r\n"


@pytest.mark.parametrize(("name", "sent"), [
    ("nothing", b""),
    ("half the headers", REQUEST_START),
    ("the headers, half the body",
     REQUEST_START + b"content-type: application/json\r\ncontent-length: 40\r\n\r\n{\"input\""),
])
async def test_a_slow_sender_is_cut_off_after_request_timeout(agent_process, name, sent):
    agent = agent_process(REQUEST_TIMEOUT="1")
    with connect(agent.base_url) as sock:
        sock.sendall(sent)
        started = time.monotonic()
        closed = await anyio.to_thread.run_sync(closed_within, sock, 5)

    assert closed, f"the server kept a connection that sent {name} for 5 s"
    assert 0.9 <= time.monotonic() - started < 4
    async with httpx.AsyncClient(base_url=agent.base_url, timeout=5) as http:
        assert (await http.post("/responses", json={"input": "still here"})).status_code == 200


async def test_a_slow_sender_that_keeps_trickling_is_cut_off_too(agent_process):
    agent = agent_process(REQUEST_TIMEOUT="1")
    with connect(agent.base_url) as sock:
        started = time.monotonic()
        sock.sendall(REQUEST_START)
        try:
            for _ in range(50):  # a header byte every 0.1 s: 5 s in all
                sock.sendall(b"x")
                await anyio.sleep(0.1)
        except OSError:
            pass  # closed by the server while we were still sending
        assert await anyio.to_thread.run_sync(closed_within, sock, 5)

    assert time.monotonic() - started < 4


async def test_keep_alive_requests_are_not_cut_off_by_request_timeout(agent_process):
    agent = agent_process(REQUEST_TIMEOUT="1")
    async with httpx.AsyncClient(base_url=agent.base_url, timeout=5) as http:
        for _ in range(3):  # one connection, 3 s: only each request is bounded
            assert (await http.post("/responses", json={"input": "hi"})).status_code == 200
            await anyio.sleep(0.7)
        assert (await http.post("/responses", json={"input": "hi", "stream": True})).is_success


async def test_a_client_that_reads_nothing_is_dropped_after_write_timeout(make_app, live_server):
    ended = threading.Event()

    async def firehose(ctx):
        try:
            while True:
                yield "x" * 65536
                await anyio.sleep(0)
        finally:
            ended.set()

    app = make_app(agent=firehose, write_timeout=0.5)
    base_url = live_server(app)
    with connect(base_url) as sock:
        body = b'{"input": "hi", "stream": true}'
        sock.sendall(REQUEST_START + b"content-type: application/json\r\n"
                     b"content-length: %d\r\n\r\n%s" % (len(body), body))
        # never read: the server's writes block once the socket buffers are full
        assert await anyio.to_thread.run_sync(ended.wait, 10), "the stream was never dropped"

    with anyio.fail_after(5):
        while app.state.server.in_flight or app.state.server.runs:
            await anyio.sleep(0.02)


async def test_a_client_gone_before_its_body_arrived_is_not_an_error(make_app, live_server,
                                                                     caplog):
    app = make_app()
    base_url = live_server(app)
    with connect(base_url) as sock:
        sock.sendall(REQUEST_START + b"content-type: application/json\r\n"
                     b"content-length: 40\r\n\r\n{\"inp")
        await anyio.sleep(0.2)
    with anyio.fail_after(5):
        while app.state.server.in_flight:
            await anyio.sleep(0.02)
    await anyio.sleep(0.1)

    assert not [record for record in caplog.records if record.levelname == "ERROR"]
