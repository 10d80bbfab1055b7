"""Tests for the loopback stub provider, over real HTTP and through LiteLLM."""

from __future__ import annotations

import os

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

import json  # noqa: E402
import socket  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
from collections.abc import Iterator  # noqa: E402
from typing import Any  # noqa: E402

import httpx  # noqa: E402
import litellm  # noqa: E402
import pytest  # noqa: E402
from litellm.exceptions import MidStreamFallbackError  # noqa: E402

from draht_router import stub as stubmod  # noqa: E402
from draht_router.stub import (  # noqa: E402
    RecordedRequest,
    Reply,
    StubClient,
    StubProvider,
    bad_request,
    content_policy_violation,
    context_length_exceeded,
    cut,
    error,
    hang,
    malformed_chunk,
    no_done,
    not_found,
    ok,
    rate_limited,
    reset_connection,
    server_error,
    slow_first_token,
    stall,
    unauthorized,
)

litellm.suppress_debug_info = True

MESSAGES = [{"role": "user", "content": "hi"}]


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=5.0) as http_client:
        yield http_client


def post(client: httpx.Client, stub: StubProvider, model: str, **extra: Any) -> httpx.Response:
    body = {"model": model, "messages": MESSAGES, **extra}
    return client.post(f"{stub.base_url}/chat/completions", json=body)


def sse_events(raw: str) -> list[str]:
    return [block[len("data: ") :] for block in raw.split("\n\n") if block.startswith("data: ")]


def raw_request(port: int, model: str, *, stream: bool = False) -> tuple[bytes, str]:
    """Send one request on a fresh socket; return what came back and how it ended."""
    body = json.dumps({"model": model, "stream": stream}).encode()
    head = f"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}\r\n\r\n"
    received = b""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(head.encode() + body)
        try:
            while chunk := sock.recv(65536):
                received += chunk
        except ConnectionResetError:
            return received, "reset"
    return received, "eof"


def llm(stub: StubProvider, model: str, **kwargs: Any) -> Any:
    return litellm.completion(
        model=f"openai/{model}",
        api_base=stub.base_url,
        api_key="sk-test",
        messages=MESSAGES,
        max_retries=0,
        **kwargs,
    )


# --------------------------------------------------------------------------- replies


ALL_REPLIES = [
    ok(),
    ok("x y", prompt_tokens=3, completion_tokens=9, reasoning_tokens=4, cached_tokens=2, delay=1),
    error(418, "teapot", type="odd", code="c", retry_after=1.5, headers={"X-A": "b"}),
    rate_limited(retry_after=2),
    server_error(503),
    unauthorized(),
    bad_request("nope"),
    not_found(),
    context_length_exceeded(),
    content_policy_violation("violence"),
    hang(3),
    reset_connection(),
    cut(1),
    stall(1, 2),
    slow_first_token(0.5),
    malformed_chunk(),
    no_done(),
]


@pytest.mark.parametrize("reply", ALL_REPLIES, ids=lambda r: r.kind)
def test_reply_round_trips_through_json(reply: Reply) -> None:
    assert Reply.from_dict(json.loads(json.dumps(reply.to_dict()))) == reply


def test_reply_rejects_unknown_kind_and_fields() -> None:
    with pytest.raises(ValueError, match="kind"):
        Reply.from_dict({"kind": "explode"})
    with pytest.raises(ValueError, match="bogus"):
        Reply.from_dict({"kind": "ok", "bogus": 1})
    assert Reply.from_dict({"kind": "error", "status": 429, "type": "t"}).error_type == "t"


def test_usage_defaults_to_word_count() -> None:
    assert ok("one two three").usage == {
        "prompt_tokens": 10,
        "completion_tokens": 3,
        "total_tokens": 13,
    }
    usage = ok("a", reasoning_tokens=5, cached_tokens=7).usage
    assert usage["completion_tokens_details"] == {"reasoning_tokens": 5}
    assert usage["prompt_tokens_details"] == {"cached_tokens": 7}


def test_text_pieces_join_back() -> None:
    for text in ["", "one", "  lead and trail  ", "a\nb  c"]:
        assert "".join(stubmod._split_text(text)) == text


# --------------------------------------------------------------------------- plain HTTP


def test_plain_completion_records_request(stub: StubProvider, client: httpx.Client) -> None:
    stub.script("m", ok("hi there friend", prompt_tokens=4, reasoning_tokens=2, cached_tokens=1))
    response = client.post(
        f"{stub.base_url}/chat/completions",
        json={"model": "m", "messages": MESSAGES},
        headers={"Authorization": "Bearer sk-secret"},
    )
    assert response.status_code == 200
    assert int(response.headers["content-length"]) == len(response.content)
    data = response.json()
    assert data["object"] == "chat.completion"
    assert data["model"] == "m"
    assert data["choices"][0]["message"] == {"role": "assistant", "content": "hi there friend"}
    assert data["usage"] == {
        "prompt_tokens": 4,
        "completion_tokens": 3,
        "total_tokens": 7,
        "completion_tokens_details": {"reasoning_tokens": 2},
        "prompt_tokens_details": {"cached_tokens": 1},
    }
    [record] = stub.requests
    assert record.model == "m" and record.stream is False and record.path == "/v1/chat/completions"
    assert record.body["messages"] == MESSAGES
    assert record.headers["authorization"] == "<redacted>"
    assert "sk-secret" not in json.dumps(record.to_dict())
    assert record.received_at <= time.monotonic()


def test_stream_is_chunked_sse_with_usage(stub: StubProvider, client: httpx.Client) -> None:
    stub.script("m", ok("one two three four", reasoning_tokens=1))
    with client.stream(
        "POST", f"{stub.base_url}/chat/completions", json={"model": "m", "stream": True}
    ) as response:
        assert response.headers["transfer-encoding"] == "chunked"
        assert response.headers["content-type"].startswith("text/event-stream")
        events = sse_events(response.read().decode())
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    assert all(c["object"] == "chat.completion.chunk" and c["model"] == "m" for c in chunks)
    texts = [c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"]]
    assert "".join(texts) == "one two three four"
    assert len(texts) > 3
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    assert chunks[-2]["choices"][0]["finish_reason"] == "stop"
    assert chunks[-1]["choices"] == []
    assert chunks[-1]["usage"]["completion_tokens_details"] == {"reasoning_tokens": 1}
    assert stub.requests_for("m")[0].stream is True


def test_keep_alive_connection_is_reused(stub: StubProvider) -> None:
    sockets = set()
    with httpx.Client() as http_client:
        for stream in (False, True, False, True):
            response = post(http_client, stub, "m", stream=stream)
            assert response.status_code == 200
            sockets.add(response.extensions["network_stream"].get_extra_info("socket").fileno())
    assert len(sockets) == 1


def test_fifo_defaults_and_reset(stub: StubProvider, client: httpx.Client) -> None:
    stub.script("m", ok("first"), ok("second"))
    stub.set_default("m", ok("fallback"))
    stub.set_default(None, ok("global"))
    contents = [
        post(client, stub, "m").json()["choices"][0]["message"]["content"] for _ in range(3)
    ]
    assert contents == ["first", "second", "fallback"]
    assert post(client, stub, "other").json()["choices"][0]["message"]["content"] == "global"
    assert stub.count("m") == 3 and stub.count() == 4
    models = client.get(f"{stub.base_url}/models").json()["data"]
    assert [m["id"] for m in models] == ["m"]
    stub.reset()
    assert stub.requests == []
    text = post(client, stub, "m").json()["choices"][0]["message"]["content"]
    assert text == stubmod.DEFAULT_TEXT


def test_max_recorded_keeps_newest_but_counts_all(client: httpx.Client) -> None:
    with StubProvider(max_recorded=2) as small:
        for model in ("a", "b", "c"):
            post(client, small, model)
        assert [r.model for r in small.requests] == ["b", "c"]
        assert small.count() == 3 and small.count("a") == 1


def test_path_without_v1_and_bad_bodies(stub: StubProvider, client: httpx.Client) -> None:
    root = stub.base_url.removesuffix("/v1")
    assert client.post(f"{root}/chat/completions", json={"model": "m"}).status_code == 200
    response = client.post(f"{root}/v1/chat/completions", content=b"{oops")
    assert response.status_code == 400
    assert response.json()["error"]["type"] == "invalid_request_error"
    assert client.post(f"{root}/v1/nothing", json={}).status_code == 404


def test_concurrent_requests_each_pop_one_reply(stub: StubProvider) -> None:
    stub.script("m", *[ok(str(i)) for i in range(40)])
    seen: list[str] = []

    def worker() -> None:
        with httpx.Client() as http_client:
            for _ in range(10):
                seen.append(post(http_client, stub, "m").json()["choices"][0]["message"]["content"])

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(seen, key=int) == [str(i) for i in range(40)]


@pytest.mark.parametrize(
    ("reply", "status", "code", "needle"),
    [
        (rate_limited(retry_after=3), 429, "rate_limit_exceeded", "Rate limit reached for m"),
        (server_error(502), 502, None, "server had an error"),
        (unauthorized(), 401, "invalid_api_key", "Incorrect API key"),
        (bad_request("field x is wrong"), 400, None, "field x is wrong"),
        (not_found(), 404, "model_not_found", "The model `m` does not exist"),
        (context_length_exceeded(4096, 5000), 400, "context_length_exceeded", "is 4096 tokens"),
        (content_policy_violation("too spicy"), 400, "content_policy_violation", "too spicy"),
    ],
)
def test_error_replies(
    stub: StubProvider,
    client: httpx.Client,
    reply: Reply,
    status: int,
    code: str | None,
    needle: str,
) -> None:
    stub.script("m", reply)
    response = post(client, stub, "m", stream=True)
    assert response.status_code == status
    body = response.json()["error"]
    assert set(body) == {"message", "type", "param", "code"}
    assert body["code"] == code and needle in body["message"]
    assert response.headers.get("retry-after") == ("3" if status == 429 else None)


def test_error_custom_headers(stub: StubProvider, client: httpx.Client) -> None:
    stub.script("m", error(503, retry_after=0.5, headers={"X-Why": "maintenance"}))
    response = post(client, stub, "m")
    assert response.status_code == 503
    assert response.headers["retry-after"] == "0.5"
    assert response.headers["x-why"] == "maintenance"
    assert response.json()["error"]["type"] == "server_error"


# --------------------------------------------------------------------------- failures


def test_reset_connection_sends_rst(stub: StubProvider) -> None:
    stub.script("m", reset_connection())
    assert raw_request(stub.port, "m") == (b"", "reset")


@pytest.mark.parametrize("stream", [False, True])
def test_cut_drops_mid_body(stub: StubProvider, client: httpx.Client, stream: bool) -> None:
    stub.script("m", cut(after_chunks=2, text="a b c d e f"))
    with pytest.raises(httpx.RemoteProtocolError):
        post(client, stub, "m", stream=stream)
    stub.script("m", cut(after_chunks=2, text="a b c d e f"))
    received, _ = raw_request(stub.port, "m", stream=stream)
    if stream:
        assert received.count(b"data: ") == 2 and b"[DONE]" not in received
    else:
        head, _, body = received.partition(b"\r\n\r\n")
        assert 0 < len(body) < int(head.split(b"Content-Length: ")[1].split(b"\r\n")[0])


def test_stall_goes_silent_after_chunks(stub: StubProvider) -> None:
    stub.script("m", stall(after_chunks=1, seconds=0.3, text="a b c"))
    started = time.monotonic()
    received, how = raw_request(stub.port, "m", stream=True)
    assert how == "eof" and 0.3 <= time.monotonic() - started < 2
    assert received.count(b"data: ") == 1
    stub.script("m", stall(after_chunks=1, seconds=5))
    with httpx.Client(timeout=httpx.Timeout(5.0, read=0.3)) as http_client:
        with http_client.stream(
            "POST", f"{stub.base_url}/chat/completions", json={"model": "m", "stream": True}
        ) as response:
            lines = response.iter_lines()
            assert next(lines).startswith("data: ")
            with pytest.raises(httpx.ReadTimeout):
                list(lines)


def test_slow_first_token_sends_headers_first(stub: StubProvider, client: httpx.Client) -> None:
    stub.script("m", slow_first_token(0.5, text="x y"))
    started = time.monotonic()
    with client.stream(
        "POST", f"{stub.base_url}/chat/completions", json={"model": "m", "stream": True}
    ) as response:
        assert time.monotonic() - started < 0.4
        events = sse_events(response.read().decode())
    assert time.monotonic() - started >= 0.5
    assert events[-1] == "[DONE]"
    stub.script("m", slow_first_token(0.2))
    started = time.monotonic()
    assert post(client, stub, "m").status_code == 200
    assert time.monotonic() - started >= 0.2


def test_ok_delay(stub: StubProvider, client: httpx.Client) -> None:
    stub.script("m", ok(delay=0.2))
    started = time.monotonic()
    post(client, stub, "m")
    assert time.monotonic() - started >= 0.2


def test_malformed_chunk_and_no_done(stub: StubProvider, client: httpx.Client) -> None:
    stub.script("m", malformed_chunk(), no_done("p q"))
    events = sse_events(post(client, stub, "m", stream=True).text)
    assert "{not json" in events and events[-1] == "[DONE]"
    events = sse_events(post(client, stub, "m", stream=True).text)
    assert "[DONE]" not in events and "usage" in json.loads(events[-1])
    assert post(client, stub, "m").status_code == 200  # the connection is still healthy
    stub.script("m", malformed_chunk())
    with pytest.raises(json.JSONDecodeError):
        post(client, stub, "m").json()


def test_close_is_prompt_while_connections_hang() -> None:
    stub = StubProvider().start()
    stub.script("h", hang(30), hang(30))
    stub.script("s", stall(seconds=30))
    outcomes: list[str] = []

    def call(model: str, stream: bool) -> None:
        outcomes.append(raw_request(stub.port, model, stream=stream)[1])

    threads = [
        threading.Thread(target=call, args=args)
        for args in [("h", False), ("h", True), ("s", True)]
    ]
    for thread in threads:
        thread.start()
    while stub.count() < 3:
        time.sleep(0.01)
    started = time.monotonic()
    stub.close()
    assert time.monotonic() - started < 1.0
    for thread in threads:
        thread.join(2)
    assert outcomes == ["eof", "eof", "eof"]
    assert not stub.running


def test_client_disconnect_prints_nothing(capfd: pytest.CaptureFixture[str]) -> None:
    with StubProvider() as stub:
        stub.script("m", slow_first_token(0.2, text="word " * 50_000))
        body = b'{"model": "m", "stream": true}'
        with socket.create_connection(("127.0.0.1", stub.port)) as sock:
            sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nContent-Length: 30\r\n\r\n" + body)
            sock.recv(10)
        time.sleep(0.4)
    out, err = capfd.readouterr()
    assert err == "" and out == ""


# --------------------------------------------------------------------------- LiteLLM


def test_litellm_plain_usage_and_reasoning(stub: StubProvider) -> None:
    stub.script("x", ok("The answer is 42.", prompt_tokens=12, reasoning_tokens=5))
    response = llm(stub, "x")
    assert response.choices[0].message.content == "The answer is 42."
    assert response.usage.prompt_tokens == 12
    assert response.usage.completion_tokens == 4
    assert response.usage.completion_tokens_details.reasoning_tokens == 5
    assert stub.requests_for("x")[0].body["messages"] == MESSAGES


def test_litellm_stream_assembles_text(stub: StubProvider) -> None:
    stub.script("x", ok("streamed in several small pieces", cached_tokens=3))
    chunks = list(llm(stub, "x", stream=True, stream_options={"include_usage": True}))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "streamed in several small pieces"
    assert chunks[-1].usage.total_tokens == 15


def test_litellm_rate_limit_exposes_retry_after(stub: StubProvider) -> None:
    stub.script("x", rate_limited(retry_after=7))
    with pytest.raises(litellm.RateLimitError) as caught:
        llm(stub, "x")
    assert caught.value.response.headers["retry-after"] == "7"
    assert stub.count("x") == 1


@pytest.mark.parametrize(
    ("reply", "exception"),
    [
        (unauthorized(), litellm.AuthenticationError),
        (not_found(), litellm.NotFoundError),
        (context_length_exceeded(), litellm.ContextWindowExceededError),
        (content_policy_violation("flagged"), litellm.ContentPolicyViolationError),
        (server_error(), litellm.InternalServerError),
    ],
)
def test_litellm_maps_errors(stub: StubProvider, reply: Reply, exception: type) -> None:
    stub.script("x", reply)
    with pytest.raises(exception):
        llm(stub, "x")


def test_litellm_cut_stream_raises(stub: StubProvider) -> None:
    stub.script("x", cut(after_chunks=2))
    received: list[str] = []
    with pytest.raises(MidStreamFallbackError):  # LiteLLM's wrapper for a broken stream
        for chunk in llm(stub, "x", stream=True):
            received.append(chunk.choices[0].delta.content or "")
    assert "".join(received).strip()


def test_litellm_hang_ends_at_client_timeout(stub: StubProvider) -> None:
    stub.script("x", hang(30))
    started = time.monotonic()
    with pytest.raises(litellm.Timeout):
        llm(stub, "x", timeout=0.5)
    assert 0.4 < time.monotonic() - started < 3


# --------------------------------------------------------------------------- out of process


def test_out_of_process_stub_is_scriptable() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "draht_router.stub"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        base_url = proc.stdout.readline().strip()
        assert base_url.startswith("http://127.0.0.1:") and base_url.endswith("/v1")
        remote = StubClient(base_url)
        remote.script("far", rate_limited(retry_after=1), ok("from afar", reasoning_tokens=2))
        remote.set_default("far", ok("default afar"))
        with httpx.Client(timeout=5) as http_client:
            url = f"{base_url}/chat/completions"
            first = http_client.post(url, json={"model": "far"})
            second = http_client.post(url, json={"model": "far", "stream": True})
            third = http_client.post(url, json={"model": "far"})
        assert first.status_code == 429 and first.headers["retry-after"] == "1"
        assert "from afar" in "".join(
            json.loads(e)["choices"][0]["delta"].get("content", "")
            for e in sse_events(second.text)[:-1]
            if json.loads(e)["choices"]
        )
        assert third.json()["choices"][0]["message"]["content"] == "default afar"
        records = remote.requests("far")
        assert [r.stream for r in records] == [False, True, False]
        assert all(isinstance(r, RecordedRequest) for r in records)
        assert remote.count() == 3
        remote.reset()
        assert remote.requests() == []
    finally:
        proc.terminate()
        _, stderr = proc.communicate(timeout=5)
    assert proc.returncode == 0
    assert stderr == ""
