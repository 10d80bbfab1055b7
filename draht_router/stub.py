"""A loopback OpenAI-compatible provider whose failures can be scripted.

Tests, benchmarks and ``draht-router demo`` point LiteLLM at it
(``model="openai/<name>", api_base=stub.base_url``) and script, per model, how each
request is answered: a normal completion, an OpenAI-style error, a hung or reset
connection, a stream that is cut, stalls, starts slowly, carries garbage or never
says ``[DONE]``.

    with StubProvider() as stub:
        stub.script("fast", rate_limited(retry_after=1), ok("Hi there"))
        litellm.completion(model="openai/fast", api_base=stub.base_url, ...)

Run ``python -m draht_router.stub [--port N]`` to serve from another process; the first
line printed is the base URL, and :class:`StubClient` scripts that process over HTTP.

Only the standard library is used.
"""

from __future__ import annotations

import argparse
import http
import json
import logging
import re
import signal
import socket
import struct
import threading
import time
import urllib.parse
import urllib.request
from collections import Counter, deque
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal, NoReturn, cast, get_args

__all__ = [
    "DEFAULT_TEXT",
    "RecordedRequest",
    "Reply",
    "ReplyKind",
    "StubClient",
    "StubProvider",
    "bad_request",
    "content_policy_violation",
    "context_length_exceeded",
    "cut",
    "error",
    "hang",
    "main",
    "malformed_chunk",
    "no_done",
    "not_found",
    "ok",
    "rate_limited",
    "reset_connection",
    "server_error",
    "slow_first_token",
    "stall",
    "unauthorized",
]

_log = logging.getLogger(__name__)

DEFAULT_TEXT = "Hello from the stub."
"""The answer text of :func:`ok` when none is given."""

_LONG_TEXT = "The stub is streaming an answer that will not arrive in one piece, word by word."

ReplyKind = Literal[
    "ok",
    "error",
    "hang",
    "reset",
    "cut",
    "stall",
    "slow_first_token",
    "malformed_chunk",
    "no_done",
]
_KINDS: frozenset[str] = frozenset(get_args(ReplyKind))

_REDACTED_HEADERS = frozenset({"authorization", "proxy-authorization", "api-key", "x-api-key"})
_COMPLETION_PATHS = frozenset({"/v1/chat/completions", "/chat/completions"})
_MODELS_PATHS = frozenset({"/v1/models", "/models"})


# --------------------------------------------------------------------------- replies


@dataclass(frozen=True)
class Reply:
    """How the stub answers one request; build it with the module's constructors.

    ``kind`` selects the behaviour; the other fields are used by the kinds they concern
    (text and token counts by answers, ``status``/``message``/``error_type``/``code``/
    ``retry_after``/``headers`` by errors, ``seconds``/``after_chunks`` by hangs, stalls
    and cuts, ``delay`` by every kind before anything is sent).
    """

    kind: ReplyKind = "ok"
    text: str = DEFAULT_TEXT
    prompt_tokens: int = 10
    completion_tokens: int | None = None
    reasoning_tokens: int = 0
    cached_tokens: int = 0
    delay: float = 0.0
    status: int = 200
    message: str = ""
    error_type: str | None = None
    code: str | None = None
    retry_after: float | None = None
    headers: tuple[tuple[str, str], ...] = ()
    seconds: float = 0.0
    after_chunks: int = 0

    def __post_init__(self) -> None:
        if self.kind not in _KINDS:
            raise ValueError(f"unknown reply kind {self.kind!r}; expected one of {sorted(_KINDS)}")

    @property
    def usage(self) -> dict[str, Any]:
        """The OpenAI ``usage`` object this reply reports."""
        completion = (
            self.completion_tokens if self.completion_tokens is not None else len(self.text.split())
        )
        usage: dict[str, Any] = {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": completion,
            "total_tokens": self.prompt_tokens + completion,
        }
        if self.reasoning_tokens:
            usage["completion_tokens_details"] = {"reasoning_tokens": self.reasoning_tokens}
        if self.cached_tokens:
            usage["prompt_tokens_details"] = {"cached_tokens": self.cached_tokens}
        return usage

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready form that :meth:`from_dict` turns back into an equal reply."""
        data = asdict(self)
        data["headers"] = dict(self.headers)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Reply:
        """Build a reply from :meth:`to_dict` output (``type`` is accepted for ``error_type``).

        Raises ``ValueError`` for unknown keys or an unknown kind.
        """
        values = dict(data)
        if "type" in values and "error_type" not in values:
            values["error_type"] = values.pop("type")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown reply field(s): {', '.join(unknown)}")
        if "headers" in values:
            values["headers"] = _header_pairs(values["headers"])
        return cls(**values)


def _header_pairs(
    headers: Mapping[str, str] | Sequence[Sequence[str]] | None,
) -> tuple[tuple[str, str], ...]:
    if not headers:
        return ()
    items = headers.items() if isinstance(headers, Mapping) else headers
    return tuple((str(name), str(value)) for name, value in items)


def ok(
    text: str = DEFAULT_TEXT,
    prompt_tokens: int = 10,
    completion_tokens: int | None = None,
    reasoning_tokens: int = 0,
    cached_tokens: int = 0,
    delay: float = 0.0,
) -> Reply:
    """A successful answer; ``completion_tokens`` defaults to the word count of ``text``.

    ``delay`` seconds pass before the response (for streams: before the headers).
    """
    return Reply(
        kind="ok",
        text=text,
        prompt_tokens=prompt_tokens,
        completion_tokens=completion_tokens,
        reasoning_tokens=reasoning_tokens,
        cached_tokens=cached_tokens,
        delay=delay,
    )


_DEFAULT_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "invalid_request_error",
    409: "invalid_request_error",
    422: "invalid_request_error",
    429: "rate_limit_exceeded",
}


def error(
    status: int,
    message: str | None = None,
    *,
    type: str | None = None,  # mirrors the OpenAI error field name
    code: str | None = None,
    retry_after: float | None = None,
    headers: Mapping[str, str] | None = None,
) -> Reply:
    """An OpenAI-style error body ``{"error": {message, type, param, code}}`` with ``status``.

    ``retry_after`` (seconds) adds a ``Retry-After`` header; ``{model}`` in the message is
    replaced by the requested model. ``type`` defaults from the status.
    """
    if not 400 <= status <= 599:
        raise ValueError(f"error status must be 4xx or 5xx, got {status}")
    if message is None:
        message = f"The stub answered {status} {_phrase(status)}."
    if type is None:
        type = _DEFAULT_ERROR_TYPES.get(status, "server_error" if status >= 500 else "api_error")
    return Reply(
        kind="error",
        status=status,
        message=message,
        error_type=type,
        code=code,
        retry_after=retry_after,
        headers=_header_pairs(headers),
    )


def rate_limited(retry_after: float | None = None) -> Reply:
    """A 429 rate-limit error, optionally with a ``Retry-After`` header (seconds)."""
    return error(
        429,
        "Rate limit reached for {model} on requests per min (RPM). Please try again later.",
        type="rate_limit_exceeded",
        code="rate_limit_exceeded",
        retry_after=retry_after,
    )


def server_error(status: int = 500) -> Reply:
    """A 5xx server error."""
    if not 500 <= status <= 599:
        raise ValueError(f"server_error status must be 5xx, got {status}")
    return error(
        status,
        "The server had an error while processing your request. Sorry about that!",
        type="server_error",
    )


def unauthorized() -> Reply:
    """A 401 with OpenAI's ``invalid_api_key`` code."""
    return error(
        401,
        "Incorrect API key provided. You can find your API key in your account settings.",
        type="invalid_request_error",
        code="invalid_api_key",
    )


def bad_request(message: str = "Invalid request.") -> Reply:
    """A 400 ``invalid_request_error`` with ``message``."""
    return error(400, message, type="invalid_request_error")


def not_found() -> Reply:
    """A 404 ``model_not_found`` naming the requested model."""
    return error(
        404,
        "The model `{model}` does not exist or you do not have access to it.",
        type="invalid_request_error",
        code="model_not_found",
    )


def context_length_exceeded(max_tokens: int = 8192, requested: int | None = None) -> Reply:
    """A 400 ``context_length_exceeded`` worded like OpenAI's message."""
    if requested is None:
        requested = max_tokens * 2
    return error(
        400,
        f"This model's maximum context length is {max_tokens} tokens. However, your "
        f"messages resulted in {requested} tokens. Please reduce the length of the messages.",
        type="invalid_request_error",
        code="context_length_exceeded",
    )


def content_policy_violation(reason: str = "The prompt was flagged.") -> Reply:
    """A 400 ``content_policy_violation`` whose message carries ``reason``."""
    return error(
        400,
        "Invalid prompt: your prompt was flagged as potentially violating our usage policy. "
        f"{reason}",
        type="invalid_request_error",
        code="content_policy_violation",
    )


def hang(seconds: float = 30.0) -> Reply:
    """Read the request, send nothing for ``seconds`` (or until the stub closes), then close."""
    return Reply(kind="hang", seconds=seconds)


def reset_connection() -> Reply:
    """Close the connection with a TCP reset before sending any byte."""
    return Reply(kind="reset")


def cut(after_chunks: int = 2, text: str = _LONG_TEXT) -> Reply:
    """Drop the connection mid-answer.

    Streams: ``after_chunks`` content chunks, then the connection closes with no final
    chunk and no ``[DONE]``. Non-stream: headers with the full Content-Length and half
    of the body, then the connection closes.
    """
    return Reply(kind="cut", text=text, after_chunks=after_chunks)


def stall(after_chunks: int = 2, seconds: float = 30.0, text: str = _LONG_TEXT) -> Reply:
    """Go silent mid-answer for ``seconds`` (or until the stub closes), then close.

    Streams stall after ``after_chunks`` content chunks; non-stream answers after the
    headers and half of the body.
    """
    return Reply(kind="stall", text=text, after_chunks=after_chunks, seconds=seconds)


def slow_first_token(seconds: float, text: str = DEFAULT_TEXT) -> Reply:
    """Streams: headers at once, ``seconds`` of silence, then the whole answer.

    Non-stream: the same as ``ok(text, delay=seconds)``.
    """
    return Reply(kind="slow_first_token", text=text, seconds=seconds)


def malformed_chunk(text: str = _LONG_TEXT) -> Reply:
    """Streams: a complete answer with one ``data: {not json`` event in the middle.

    Non-stream: a 200 whose body is not valid JSON.
    """
    return Reply(kind="malformed_chunk", text=text)


def no_done(text: str = DEFAULT_TEXT) -> Reply:
    """Streams: the whole answer and usage chunk, ended cleanly without ``data: [DONE]``.

    Non-stream: the same as ``ok(text)``.
    """
    return Reply(kind="no_done", text=text)


# --------------------------------------------------------------------------- recording


@dataclass
class RecordedRequest:
    """One completion request the stub received (authorization header values redacted)."""

    model: str
    stream: bool
    body: dict[str, Any]
    received_at: float
    path: str
    headers: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready form; ``received_at`` is the stub process's ``time.monotonic()``."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RecordedRequest:
        """Rebuild a record from :meth:`to_dict` output."""
        return cls(
            model=str(data["model"]),
            stream=bool(data["stream"]),
            body=dict(data["body"]),
            received_at=float(data["received_at"]),
            path=str(data["path"]),
            headers=dict(data.get("headers") or {}),
        )


class _StubState:
    """Scripts, defaults and the request log, shared by all handler threads."""

    def __init__(self, max_recorded: int | None = None) -> None:
        self.lock = threading.Lock()
        self.queues: dict[str, deque[Reply]] = {}
        self.defaults: dict[str, Reply] = {}
        self.scripted: set[str] = set()
        self.global_default: Reply = ok()
        self.requests: deque[RecordedRequest] = deque(maxlen=max_recorded)
        self.counts: Counter[str] = Counter()
        self._ids = 0

    def script(self, model: str, replies: Sequence[Reply]) -> None:
        with self.lock:
            self.queues.setdefault(model, deque()).extend(replies)
            self.scripted.add(model)

    def set_default(self, model: str | None, reply: Reply) -> None:
        with self.lock:
            if model is None:
                self.global_default = reply
            else:
                self.defaults[model] = reply
                self.scripted.add(model)

    def reset(self) -> None:
        with self.lock:
            self.queues.clear()
            self.defaults.clear()
            self.scripted.clear()
            self.global_default = ok()
            self.requests.clear()
            self.counts.clear()

    def record(self, record: RecordedRequest) -> int:
        """Log ``record``; returns a fresh response number."""
        with self.lock:
            self.requests.append(record)
            self.counts[record.model] += 1
            self._ids += 1
            return self._ids

    def next_reply(self, model: str) -> Reply:
        """Pop the next scripted reply for ``model``, or its default."""
        with self.lock:
            queue = self.queues.get(model)
            if queue:
                return queue.popleft()
            return self.defaults.get(model, self.global_default)

    def models(self) -> list[str]:
        with self.lock:
            return sorted(self.scripted)

    def count(self, model: str | None = None) -> int:
        with self.lock:
            return sum(self.counts.values()) if model is None else self.counts[model]

    def snapshot(self, model: str | None = None) -> list[RecordedRequest]:
        with self.lock:
            if model is None:
                return list(self.requests)
            return [r for r in self.requests if r.model == model]


# --------------------------------------------------------------------------- HTTP


class _StubServer(ThreadingHTTPServer):
    """A threading HTTP server that can drop every open connection when closing."""

    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True
    request_queue_size = 256

    def __init__(self, address: tuple[str, int], state: _StubState) -> None:
        self.state = state
        self.stopping = threading.Event()
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        super().__init__(address, _StubHandler)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._connections_lock:
            self._connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._connections_lock:
            self._connections.discard(request)
        super().shutdown_request(request)

    def drop_connections(self) -> None:
        """Shut down every open client connection so handler threads finish."""
        with self._connections_lock:
            connections = list(self._connections)
        for conn in connections:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Clients hanging up mid-response are part of the job; never print tracebacks.
        _log.debug("stub connection from %s ended with an error", client_address, exc_info=True)


class _Dropped(Exception):
    """The handler closed the connection on purpose; stop handling it."""


class _StubHandler(BaseHTTPRequestHandler):
    """Serves the OpenAI-compatible endpoints and the ``/_stub/`` control API."""

    protocol_version = "HTTP/1.1"
    server_version = "draht-stub/1"
    disable_nagle_algorithm = True
    server: _StubServer

    def log_message(self, format: str, *args: Any) -> None:
        """Stay quiet."""

    # ----- plumbing

    def handle_one_request(self) -> None:
        try:
            super().handle_one_request()
        except _Dropped:
            self.close_connection = True
        except (ConnectionError, BrokenPipeError, TimeoutError):
            self.close_connection = True

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            parts: list[bytes] = []
            while True:
                size_line = self.rfile.readline(65537)
                size = int(size_line.split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(parts)
                parts.append(self.rfile.read(size))
                self.rfile.readline(65537)
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def _head(
        self,
        status: int,
        content_type: str,
        *,
        length: int | None = None,
        extra: Sequence[tuple[str, str]] = (),
    ) -> bytes:
        lines = [
            f"HTTP/1.1 {status} {_phrase(status)}",
            f"Content-Type: {content_type}",
            f"Server: {self.server_version}",
        ]
        if length is None:
            lines.append("Transfer-Encoding: chunked")
            lines.append("Cache-Control: no-cache")
        else:
            lines.append(f"Content-Length: {length}")
        if self.close_connection:
            lines.append("Connection: close")
        else:
            lines.append("Connection: keep-alive")
        lines.extend(f"{name}: {value}" for name, value in extra)
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")

    def _send_json(self, status: int, payload: Any, extra: Sequence[tuple[str, str]] = ()) -> None:
        body = json.dumps(payload, separators=(",", ":")).encode()
        head = self._head(status, "application/json", length=len(body), extra=extra)
        self.wfile.write(head + body)

    def _wait(self, seconds: float) -> None:
        if seconds > 0:
            self.server.stopping.wait(seconds)

    def _drop(self, *, reset: bool = False) -> NoReturn:
        """Close the connection now (with a TCP reset if asked) and stop handling it."""
        self.close_connection = True
        conn = self.connection
        if reset:
            try:
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            except OSError:
                pass
            self.rfile.close()
            conn.close()
        else:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        raise _Dropped

    # ----- routing

    def do_GET(self) -> None:
        path, query = _split_path(self.path)
        if path in _MODELS_PATHS:
            data = [
                {"id": m, "object": "model", "created": 0, "owned_by": "draht-stub"}
                for m in self.server.state.models()
            ]
            self._send_json(200, {"object": "list", "data": data})
        elif path == "/_stub/requests":
            model = query.get("model", [None])[0]
            records = self.server.state.snapshot(model)
            self._send_json(200, [r.to_dict() for r in records])
        elif path == "/_stub/count":
            model = query.get("model", [None])[0]
            self._send_json(200, {"count": self.server.state.count(model)})
        elif path == "/_stub/health":
            self._send_json(200, {"ok": True})
        else:
            self._not_found(path)

    def do_POST(self) -> None:
        path, _ = _split_path(self.path)
        raw = self._read_body()
        if path in _COMPLETION_PATHS:
            self._completion(path, raw)
        elif path == "/_stub/script":
            self._control_script(raw)
        elif path == "/_stub/reset":
            self.server.state.reset()
            self._send_json(200, {"ok": True})
        else:
            self._not_found(path)

    def _not_found(self, path: str) -> None:
        self._send_json(
            404,
            _error_body(f"Unknown stub endpoint {path}", "invalid_request_error", None),
        )

    def _control_script(self, raw: bytes) -> None:
        try:
            data = json.loads(raw or b"{}")
            model = data.get("model")
            replies = [Reply.from_dict(r) for r in data.get("replies") or ()]
            default = Reply.from_dict(data["default"]) if data.get("default") else None
            if model is None and replies:
                raise ValueError("replies need a model")
            if model is not None and not isinstance(model, str):
                raise ValueError("model must be a string")
        except (ValueError, TypeError, AttributeError) as exc:
            self._send_json(400, _error_body(f"bad script: {exc}", "invalid_request_error", None))
            return
        if replies:
            self.server.state.script(cast(str, model), replies)
        if default is not None:
            self.server.state.set_default(model, default)
        self._send_json(200, {"ok": True})

    # ----- completions

    def _completion(self, path: str, raw: bytes) -> None:
        headers = {
            name.lower(): ("<redacted>" if name.lower() in _REDACTED_HEADERS else value)
            for name, value in self.headers.items()
        }
        try:
            body = json.loads(raw)
            if not isinstance(body, dict):
                raise ValueError("body is not a JSON object")
        except ValueError:
            body = {}
            problem: str | None = "We could not parse the JSON body of your request."
        else:
            problem = None
        model = body.get("model")
        model = model if isinstance(model, str) else ""
        stream = body.get("stream") is True
        record = RecordedRequest(model, stream, body, time.monotonic(), path, headers)
        number = self.server.state.record(record)
        if problem is None and not model:
            problem = "you must provide a model parameter"
        if problem is not None:
            self._send_json(400, _error_body(problem, "invalid_request_error", None))
            return
        reply = self.server.state.next_reply(model)
        answer = _Answer(reply, model, f"chatcmpl-stub{number}")
        self._wait(reply.delay)
        if reply.kind == "error":
            self._send_error_reply(reply, model)
        elif reply.kind == "hang":
            self._wait(reply.seconds)
            self._drop()
        elif reply.kind == "reset":
            self._drop(reset=True)
        elif stream:
            self._stream(reply, answer)
        else:
            self._plain(reply, answer)

    def _send_error_reply(self, reply: Reply, model: str) -> None:
        extra = list(reply.headers)
        if reply.retry_after is not None:
            extra.append(("Retry-After", _format_seconds(reply.retry_after)))
        message = reply.message.replace("{model}", model)
        self._send_json(reply.status, _error_body(message, reply.error_type, reply.code), extra)

    def _plain(self, reply: Reply, answer: _Answer) -> None:
        if reply.kind == "slow_first_token":
            self._wait(reply.seconds)
        if reply.kind == "malformed_chunk":
            body = b'{"id": "chatcmpl-broken", "choices": [{not json'
        else:
            body = json.dumps(answer.completion(), separators=(",", ":")).encode()
        head = self._head(200, "application/json", length=len(body))
        if reply.kind in ("cut", "stall"):
            self.wfile.write(head + body[: len(body) // 2])
            if reply.kind == "stall":
                self._wait(reply.seconds)
            self._drop()
        self.wfile.write(head + body)

    def _stream(self, reply: Reply, answer: _Answer) -> None:
        write = self.wfile.write
        write(self._head(200, "text/event-stream"))
        if reply.kind == "slow_first_token":
            self._wait(reply.seconds)
        pieces = _split_text(reply.text)
        broken = reply.kind in ("cut", "stall")
        limit = min(reply.after_chunks, len(pieces)) if broken else len(pieces)
        garbage_at = len(pieces) // 2 if reply.kind == "malformed_chunk" else -1
        for index in range(limit):
            if index == garbage_at:
                write(_chunk(b"data: {not json\n\n"))
            write(_chunk(_event(answer.content_chunk(pieces[index], first=index == 0))))
        if broken:
            if reply.kind == "stall":
                self._wait(reply.seconds)
            self._drop()
        write(_chunk(_event(answer.finish_chunk()) + _event(answer.usage_chunk())))
        if reply.kind != "no_done":
            write(_chunk(b"data: [DONE]\n\n"))
        write(b"0\r\n\r\n")


class _Answer:
    """Builds the completion objects for one response."""

    def __init__(self, reply: Reply, model: str, response_id: str) -> None:
        self.reply = reply
        self.model = model
        self.id = response_id
        self.created = int(time.time())

    def _base(self, obj: str) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": obj,
            "created": self.created,
            "model": self.model,
            "system_fingerprint": None,
        }

    def completion(self) -> dict[str, Any]:
        data = self._base("chat.completion")
        data["choices"] = [
            {
                "index": 0,
                "message": {"role": "assistant", "content": self.reply.text},
                "logprobs": None,
                "finish_reason": "stop",
            }
        ]
        data["usage"] = self.reply.usage
        return data

    def content_chunk(self, piece: str, *, first: bool) -> dict[str, Any]:
        delta: dict[str, Any] = (
            {"role": "assistant", "content": piece} if first else {"content": piece}
        )
        data = self._base("chat.completion.chunk")
        data["choices"] = [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": None}]
        return data

    def finish_chunk(self) -> dict[str, Any]:
        data = self._base("chat.completion.chunk")
        data["choices"] = [{"index": 0, "delta": {}, "logprobs": None, "finish_reason": "stop"}]
        return data

    def usage_chunk(self) -> dict[str, Any]:
        data = self._base("chat.completion.chunk")
        data["choices"] = []
        data["usage"] = self.reply.usage
        return data


def _event(payload: dict[str, Any]) -> bytes:
    return b"data: " + json.dumps(payload, separators=(",", ":")).encode() + b"\n\n"


def _chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


_WORD = re.compile(r"\s*\S+\s*$|\s*\S+")


def _split_text(text: str) -> list[str]:
    """Word-sized pieces (each keeps its leading space) that join back to ``text``."""
    return _WORD.findall(text) or [text]


def _error_body(message: str, error_type: str | None, code: str | None) -> dict[str, Any]:
    return {"error": {"message": message, "type": error_type, "param": None, "code": code}}


def _phrase(status: int) -> str:
    try:
        return http.HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def _format_seconds(seconds: float) -> str:
    return str(int(seconds)) if float(seconds).is_integer() else f"{seconds:g}"


def _split_path(raw_path: str) -> tuple[str, dict[str, list[str]]]:
    parsed = urllib.parse.urlsplit(raw_path)
    path = parsed.path.rstrip("/") or "/"
    if path.startswith("/v1/_stub/"):
        path = path[3:]
    return path, urllib.parse.parse_qs(parsed.query)


# --------------------------------------------------------------------------- provider


class StubProvider:
    """A scripted OpenAI-compatible server on a loopback port, run in a daemon thread."""

    def __init__(
        self, host: str = "127.0.0.1", port: int = 0, *, max_recorded: int | None = None
    ) -> None:
        """Serve on ``host:port`` (port 0: any free port) once started.

        ``max_recorded`` keeps only the newest that many requests in :attr:`requests`
        (for long benchmarks); :meth:`count` stays exact either way.
        """
        self.host = host
        self._requested_port = port
        self._state = _StubState(max_recorded)
        self._server: _StubServer | None = None
        self._thread: threading.Thread | None = None

    # ----- lifecycle

    def start(self) -> StubProvider:
        """Bind the port and start serving; returns ``self``. Starting twice is an error."""
        if self._server is not None:
            raise RuntimeError("StubProvider is already started")
        server = _StubServer((self.host, self._requested_port), self._state)
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"draht-stub:{server.server_address[1]}",
            daemon=True,
        )
        self._thread.start()
        return self

    def close(self) -> None:
        """Stop serving and drop open connections, including hung and stalled ones."""
        server, self._server = self._server, None
        if server is None:
            return
        server.stopping.set()
        server.shutdown()
        server.server_close()
        server.drop_connections()
        if self._thread is not None:
            self._thread.join(timeout=2)
            self._thread = None

    def __enter__(self) -> StubProvider:
        if self._server is None:
            self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @property
    def running(self) -> bool:
        """Whether the server is serving."""
        return self._server is not None

    @property
    def port(self) -> int:
        """The bound TCP port."""
        return int(self._require().server_address[1])

    @property
    def base_url(self) -> str:
        """The OpenAI-style base URL, ``http://127.0.0.1:PORT/v1``."""
        return f"http://{self.host}:{self.port}/v1"

    def _require(self) -> _StubServer:
        if self._server is None:
            raise RuntimeError("StubProvider is not started")
        return self._server

    # ----- scripting

    def script(self, model: str, *replies: Reply) -> None:
        """Queue ``replies`` for ``model``; each request pops one, first in first out."""
        self._state.script(model, replies)

    def set_default(self, model: str | None, reply: Reply) -> None:
        """The reply ``model`` gets when its queue is empty (``None``: every model)."""
        self._state.set_default(model, reply)

    def reset(self) -> None:
        """Forget queues, defaults and recorded requests."""
        self._state.reset()

    # ----- recording

    @property
    def requests(self) -> list[RecordedRequest]:
        """A copy of every completion request received so far, oldest first."""
        return self._state.snapshot()

    def requests_for(self, model: str) -> list[RecordedRequest]:
        """The recorded completion requests for ``model``."""
        return self._state.snapshot(model)

    def count(self, model: str | None = None) -> int:
        """How many completion requests arrived (for ``model``, or in total)."""
        return self._state.count(model)


# --------------------------------------------------------------------------- client


class StubClient:
    """Scripts a stub running in another process through its ``/_stub/`` control API."""

    def __init__(self, base_url: str, timeout: float = 10.0) -> None:
        root = base_url.rstrip("/")
        if root.endswith("/v1"):
            root = root[: -len("/v1")]
        self.base_url = root + "/v1"
        self.root_url = root
        self.timeout = timeout

    def _call(self, method: str, path: str, payload: Any = None) -> Any:
        data = None if payload is None else json.dumps(payload).encode()
        request = urllib.request.Request(
            self.root_url + path,
            data=data,
            method=method,
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=self.timeout) as response:
            return json.loads(response.read() or b"null")

    def script(self, model: str, *replies: Reply) -> None:
        """Queue ``replies`` for ``model`` in the remote stub."""
        self._call(
            "POST",
            "/_stub/script",
            {
                "model": model,
                "replies": [r.to_dict() for r in replies],
            },
        )

    def set_default(self, model: str | None, reply: Reply) -> None:
        """Set the remote stub's default reply for ``model`` (``None``: every model)."""
        self._call("POST", "/_stub/script", {"model": model, "default": reply.to_dict()})

    def reset(self) -> None:
        """Clear the remote stub's queues, defaults and request log."""
        self._call("POST", "/_stub/reset", {})

    def requests(self, model: str | None = None) -> list[RecordedRequest]:
        """The remote stub's recorded completion requests (for ``model``, or all)."""
        query = "" if model is None else "?" + urllib.parse.urlencode({"model": model})
        return [RecordedRequest.from_dict(r) for r in self._call("GET", "/_stub/requests" + query)]

    def count(self, model: str | None = None) -> int:
        """How many completion requests the remote stub received (for ``model``, or all)."""
        query = "" if model is None else "?" + urllib.parse.urlencode({"model": model})
        return int(self._call("GET", "/_stub/count" + query)["count"])


# --------------------------------------------------------------------------- CLI


def main(argv: Sequence[str] | None = None) -> int:
    """Serve a stub until SIGTERM/SIGINT; print its base URL as the first stdout line."""
    parser = argparse.ArgumentParser(
        prog="python -m draht_router.stub",
        description="Serve a scripted OpenAI-compatible stub provider.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default: loopback)")
    parser.add_argument("--port", type=int, default=0, help="port to bind (default: any free)")
    parser.add_argument(
        "--max-recorded",
        type=int,
        default=None,
        help="keep only the newest N requests in the log (counts stay exact)",
    )
    args = parser.parse_args(argv)

    done = threading.Event()

    def _stop(signum: int, frame: object) -> None:
        done.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    with StubProvider(args.host, args.port, max_recorded=args.max_recorded) as stub:
        print(stub.base_url, flush=True)
        while not done.wait(0.5):
            pass
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
