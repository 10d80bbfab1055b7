"""Many requests through the router at once: bounded concurrency, optional per-role pacing, and
one :class:`BatchResult` per request, handed out as each request finishes.

    from draht_router import batch_completion

    requests = [
        {"id": "a", "task_type": "question", "prompt": "What is a monad?"},
        {"id": "b", "role": "review", "messages": [{"role": "user", "content": "..."}]},
    ]
    for result in batch_completion(requests, concurrency=8):
        print(result.id, result.error or result.content)

A request is a mapping with

* ``id``: a string (an integer is turned into one); when absent the request is called
  ``req-<N>``, ``N`` being its 0-based position in ``requests``;
* where to send it, like :meth:`ModelRouter.acompletion`: ``role``, else ``task_type``, else
  ``model`` (a role name, or a ``provider/model`` called directly);
* ``messages``, or ``prompt``: a plain string becomes one user message;
* any other LiteLLM argument (``max_tokens``, ``temperature``, ...), passed through.

``stream`` and ``session_id`` are not allowed in a request: a batch collects whole answers and
logs every call under the batch's own session id.

A request that fails (after the router's fall-over chain) or is not valid gives a result whose
``error`` says why; it never stops the batch. This module imports LiteLLM only when a batch
runs, so importing it is cheap.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import queue
import threading
import time
from collections.abc import AsyncIterator, Callable, Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .log import redact
from .policy import status_of

if TYPE_CHECKING:
    from .config import RouterConfig
    from .router import ModelRouter

__all__ = [
    "DEFAULT_CONCURRENCY",
    "BatchRequest",
    "BatchResult",
    "BatchRunner",
    "InvalidBatchRequest",
    "abatch_completion",
    "append_result",
    "batch_completion",
    "estimate_batch_cost",
    "open_output",
    "parse_request",
    "read_results",
    "route_role",
]

DEFAULT_CONCURRENCY = 8
DEFAULT_GRACE_SECONDS = 10.0  # how long in-flight requests may finish after stop()
_MAX_ERROR_MESSAGE = 2000  # characters of a provider's error text kept in a result

_ROUTING_KEYS = ("role", "task_type", "model")
_FORBIDDEN_KEYS = {
    "stream": "stream is not supported in a batch",
    "session_id": "session_id is set per batch, not per request",
}


class InvalidBatchRequest(ValueError):
    """A batch request that cannot be sent; the message says why."""


# --------------------------------------------------------------------------- requests


@dataclass(frozen=True)
class BatchRequest:
    """A validated request: its id, where it goes, and the LiteLLM arguments to send."""

    id: str
    messages: list[dict[str, Any]]
    role: str | None = None
    task_type: str | None = None
    model: str | None = None
    kwargs: Mapping[str, Any] = field(default_factory=dict)


def _text_field(data: Mapping[str, Any], key: str) -> str | None:
    value = data.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise InvalidBatchRequest(f"{key} must be a non-empty string")
    return value


def _messages_of(data: Mapping[str, Any]) -> list[dict[str, Any]]:
    messages, prompt = data.get("messages"), data.get("prompt")
    if messages is not None and prompt is not None:
        raise InvalidBatchRequest("give messages or prompt, not both")
    value = messages if messages is not None else prompt
    name = "messages" if messages is not None else "prompt"
    if value is None:
        raise InvalidBatchRequest("no messages or prompt")
    if isinstance(value, str):
        if not value.strip():
            raise InvalidBatchRequest(f"{name} is empty")
        return [{"role": "user", "content": value}]
    if name == "prompt":
        raise InvalidBatchRequest("prompt must be a string")
    if not isinstance(value, list) or not value:
        raise InvalidBatchRequest("messages must be a non-empty list of message objects")
    for position, message in enumerate(value):
        if not isinstance(message, dict) or not isinstance(message.get("role"), str):
            raise InvalidBatchRequest(f"messages[{position}] is not a message with a role")
    return value


def _id_of(data: Mapping[str, Any], default_id: str) -> str:
    value = data.get("id")
    if value is None:
        return default_id
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if not isinstance(value, str) or not value.strip():
        raise InvalidBatchRequest("id must be a non-empty string")
    return value


def parse_request(
    data: Any,
    position: int = 0,
    *,
    default_id: str | None = None,
    roles: Collection[str] | None = None,
) -> BatchRequest:
    """The :class:`BatchRequest` for one request mapping, or :class:`InvalidBatchRequest`.

    ``default_id`` names a request without an ``id`` (default ``req-<position>``). With
    ``roles`` given, a ``role`` outside them is invalid.
    """
    if not isinstance(data, Mapping):
        kind = "array" if isinstance(data, list) else type(data).__name__
        raise InvalidBatchRequest(f"expected a JSON object, got {kind}")
    request_id = _id_of(data, default_id if default_id is not None else f"req-{position}")
    for key, reason in _FORBIDDEN_KEYS.items():
        if data.get(key):
            raise InvalidBatchRequest(reason)
    role, task_type, model = (_text_field(data, key) for key in _ROUTING_KEYS)
    if role is None and task_type is None and model is None:
        raise InvalidBatchRequest("no role, task_type or model")
    if role is not None and roles is not None and role not in roles:
        raise InvalidBatchRequest(f"unknown role '{role}' (roles: {', '.join(sorted(roles))})")
    messages = _messages_of(data)
    reserved = {"id", "messages", "prompt", *_ROUTING_KEYS, *_FORBIDDEN_KEYS}
    kwargs = {key: value for key, value in data.items() if key not in reserved}
    return BatchRequest(request_id, messages, role, task_type, model, kwargs)


def route_role(request: BatchRequest, config: RouterConfig) -> str:
    """The role the router will use for ``request`` (``direct`` for a plain model call).

    Same precedence as :meth:`ModelRouter.acompletion`: role, then task type, then a model
    that names a role.
    """
    if request.role is not None:
        return request.role
    if request.task_type is not None:
        from .roles import explain_role

        return explain_role(request.task_type, config.task_types, roles=config.roles).role
    if request.model is not None and request.model in config.roles:
        return request.model
    return "direct"


# --------------------------------------------------------------------------- results


@dataclass
class BatchResult:
    """The outcome of one request.

    ``model`` is the ``provider/model`` that answered (for a failure: the last one tried,
    when known); ``cost_usd`` is the cost of the request's cost-log row (0 for a failure,
    which writes no row); ``error`` is ``{type, message, status}`` for a failure and None on
    success. Fields can also be read as ``result["content"]`` or ``result.get("error")``.
    """

    id: str
    role: str | None = None
    model: str | None = None
    content: str | None = None
    usage: dict[str, int] | None = None
    cost_usd: float = 0.0
    latency_ms: int = 0
    attempts: int | None = None
    fallback_from: str | None = None
    error: dict[str, Any] | None = None

    @property
    def ok(self) -> bool:
        """True when the request was answered."""
        return self.error is None

    def to_dict(self) -> dict[str, Any]:
        """The JSON-ready form (one line of a batch's output file)."""
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> BatchResult:
        """A result from :meth:`to_dict` output; unknown keys are ignored."""
        known = {f.name for f in fields(cls)}
        return cls(**{key: value for key, value in data.items() if key in known})

    def __getitem__(self, key: str) -> Any:
        if key not in self.__dataclass_fields__:
            raise KeyError(key)
        return getattr(self, key)

    def get(self, key: str, default: Any = None) -> Any:
        """The field ``key``, or ``default`` when there is no such field."""
        return getattr(self, key) if key in self.__dataclass_fields__ else default


def _error_info(exc: BaseException) -> dict[str, Any]:
    message = redact(str(exc) or type(exc).__name__)
    if len(message) > _MAX_ERROR_MESSAGE:
        message = message[:_MAX_ERROR_MESSAGE] + "..."
    return {"type": type(exc).__name__, "message": message, "status": status_of(exc)}


def _failed_model(exc: BaseException) -> str | None:
    """``provider/model`` of the last model tried, as LiteLLM's exception names it."""
    model = getattr(exc, "model", None)
    provider = getattr(exc, "llm_provider", None)
    if not isinstance(model, str) or not model:
        return None
    if isinstance(provider, str) and provider and not model.startswith(provider + "/"):
        return f"{provider}/{model}"
    return model


def _usage_dict(response: Any) -> dict[str, int] | None:
    usage = getattr(response, "usage", None)
    if usage is None:
        return None
    numbers = {}
    for name in ("prompt_tokens", "completion_tokens", "total_tokens"):
        value = getattr(usage, name, None)
        numbers[name] = int(value) if isinstance(value, (int, float)) else 0
    return numbers


def _content_of(response: Any) -> str | None:
    try:
        content = response.choices[0].message.content
    except (AttributeError, IndexError, TypeError):
        return None
    return content if isinstance(content, str) else None


def _row_cost(response: Any, hidden: dict[str, Any], model: str, config: RouterConfig) -> float:
    """The cost the router's row for ``response`` carries, worked out the way it was.

    Needed when the router could not hand the figure over: a direct model call, or a row that
    LiteLLM's own callback wrote first.
    """
    from .callbacks import CallContext, build_entry

    ref = next(
        (ref for role in config.roles.values() for ref in role.chain if str(ref) == model),
        None,
    )
    if ref is not None:
        provider, name = ref.provider, ref.model
    else:
        provider = str(hidden.get("custom_llm_provider") or "unknown")
        name = str(getattr(response, "model", "") or "unknown")
    context = CallContext(role="", session_id="", log_path=Path(os.devnull), ref=ref)
    litellm_cost = hidden.get("response_cost")
    entry = build_entry(
        response,
        context,
        provider=provider,
        model=name,
        litellm_cost=litellm_cost if isinstance(litellm_cost, (int, float)) else None,
        latency_ms=None,
    )
    return entry.estimated_cost_usd


def _result_from_response(
    request: BatchRequest, role: str, response: Any, latency_ms: int, config: RouterConfig
) -> BatchResult:
    hidden = getattr(response, "_hidden_params", None)
    hidden = hidden if isinstance(hidden, dict) else {}
    routing = hidden.get("draht_router")
    routing = routing if isinstance(routing, dict) else {}
    model = routing.get("model")
    if model is None:  # a direct call: the router adds no routing details
        provider = hidden.get("custom_llm_provider")
        name = request.model or str(getattr(response, "model", "") or "")
        model = name if not provider or name.startswith(f"{provider}/") else f"{provider}/{name}"
    cost = routing.get("cost_usd")
    if not isinstance(cost, (int, float)):
        cost = _row_cost(response, hidden, model, config)
    return BatchResult(
        id=request.id,
        role=routing.get("role", role),
        model=model,
        content=_content_of(response),
        usage=_usage_dict(response),
        cost_usd=float(cost),
        latency_ms=latency_ms,
        attempts=routing.get("attempts", 1),
        fallback_from=routing.get("fallback_from"),
    )


def read_results(path: str | os.PathLike[str]) -> dict[str, dict[str, Any]]:
    """The last line for each id of a batch output file (later lines win).

    Lines that are not JSON objects with a string ``id`` (such as a last line cut short when
    a run was killed) are ignored. A missing file reads as empty.
    """
    latest: dict[str, dict[str, Any]] = {}
    try:
        with open(path, "rb") as fh:
            for raw in fh:
                if not raw.endswith(b"\n"):
                    break  # cut short mid-write: never a whole result
                try:
                    data = json.loads(raw)
                except ValueError:
                    continue
                if isinstance(data, dict) and isinstance(data.get("id"), str):
                    latest[data["id"]] = data
    except FileNotFoundError:
        return {}
    return latest


# --------------------------------------------------------------------------- pacing


class _Pacer:
    """Spaces the starts of one key's requests ``60 / rpm`` seconds apart.

    Even spacing (no burst) keeps every 60-second window at or under ``rpm`` starts, and
    stays under providers that enforce their per-minute limits over shorter windows.
    """

    def __init__(self, rpm: float | Mapping[str, float]):
        self._rpm = rpm
        self._next: dict[str, float] = {}

    def _interval(self, key: str) -> float | None:
        rpm = self._rpm.get(key) if isinstance(self._rpm, Mapping) else self._rpm
        return 60.0 / rpm if rpm else None

    def reserve(self, key: str, now: float) -> float:
        """Book the next start for ``key``; returns the seconds to wait for it."""
        interval = self._interval(key)
        if interval is None:
            return 0.0
        start = max(now, self._next.get(key, now))
        self._next[key] = start + interval
        return start - now


def _check_rpm(rpm: float | Mapping[str, float] | None) -> None:
    values = list(rpm.values()) if isinstance(rpm, Mapping) else [rpm]
    for value in values:
        if value is not None and (isinstance(value, bool) or not value > 0):
            raise ValueError(f"rpm must be a positive number, got {value!r}")


# --------------------------------------------------------------------------- runner

BatchInput = Mapping[str, Any] | BatchRequest
_FEED_DONE = object()
_WAKE = object()


class BatchRunner:
    """One batch run: feeds requests to the router, at most ``concurrency`` at a time.

    Iterate :meth:`results` (once) on an event loop. :meth:`stop` ends the run early: nothing
    new is sent, requests in flight get ``grace`` seconds to finish and are then cancelled;
    a cancelled request gives no result and writes no cost row. After the run,
    ``cancelled`` holds the ids of requests cancelled in flight and ``unsent`` counts those
    taken from ``requests`` but never sent (requests not yet taken are not counted).
    """

    def __init__(
        self,
        requests: Iterable[BatchInput],
        *,
        concurrency: int = DEFAULT_CONCURRENCY,
        router: ModelRouter | None = None,
        on_result: Callable[[BatchResult], object] | None = None,
        rpm: float | Mapping[str, float] | None = None,
        session_id: str | None = None,
        grace: float = DEFAULT_GRACE_SECONDS,
    ):
        if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1:
            raise ValueError(f"concurrency must be a positive integer, got {concurrency!r}")
        _check_rpm(rpm)
        self._requests = requests
        self.concurrency = concurrency
        self._router = router
        self._on_result = on_result
        self._pacer = _Pacer(rpm) if rpm else None
        self.session_id = session_id
        self.grace = grace
        self.cancelled: list[str] = []
        self.unsent = 0
        self._sent: set[str] = set()
        self._started = False
        self._stopping = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._feeder: asyncio.Task[None] | None = None
        self._tasks: dict[asyncio.Task[BatchResult], str] = {}
        self._waiting: set[asyncio.Task[BatchResult]] = set()  # paced, nothing sent yet
        self._cancel_timer: asyncio.TimerHandle | None = None

    @property
    def stopping(self) -> bool:
        """Whether :meth:`stop` was called."""
        return self._stopping

    @property
    def in_flight(self) -> int:
        """Requests started and not finished."""
        return len(self._tasks)

    def stop(self, grace: float | None = None) -> None:
        """Send nothing more; cancel requests still in flight after ``grace`` seconds.

        Call it on the batch's event loop (a signal handler added with
        ``loop.add_signal_handler`` runs there). Calling it again restarts the countdown with
        the new grace (``stop(0)``: cancel now).
        """
        self._stopping = True
        grace = self.grace if grace is None else grace
        if self._loop is None:
            return
        if self._feeder is not None:
            self._feeder.cancel()
        for task in list(self._waiting):
            task.cancel()  # not sent yet: nothing to wait for
        if self._cancel_timer is not None:
            self._cancel_timer.cancel()
        self._cancel_timer = self._loop.call_later(max(grace, 0.0), self._cancel_in_flight)

    def _cancel_in_flight(self) -> None:
        for task in list(self._tasks):
            task.cancel()

    async def results(self) -> AsyncIterator[BatchResult]:
        """Yield each request's result as it finishes (input order is not kept)."""
        if self._started:
            raise RuntimeError("a BatchRunner runs once")
        self._started = True
        if self._stopping:  # stop() before the run began: nothing to send
            return
        router = self._router
        if router is None:
            from .router import get_router

            router = get_router()
        self._loop = asyncio.get_running_loop()
        outbox: asyncio.Queue[Any] = asyncio.Queue()
        slots = asyncio.Semaphore(self.concurrency)
        self._feeder = asyncio.create_task(self._feed(router, slots, outbox))
        # A callback, not the feeder's own code: a task cancelled before it ever ran runs
        # no code, and the loop below must still learn that feeding is over.
        self._feeder.add_done_callback(lambda done: _feeding_over(done, outbox))
        fed = False
        try:
            while not (fed and not self._tasks and outbox.empty()):
                item = await outbox.get()
                if item is _FEED_DONE:
                    fed = True
                elif item is _WAKE:
                    continue
                elif isinstance(item, BaseException):
                    raise item
                else:
                    if self._on_result is not None:
                        self._on_result(item)
                    yield item
        finally:
            if self._cancel_timer is not None:
                self._cancel_timer.cancel()
            pending = [self._feeder, *self._tasks]
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)

    async def _feed(self, router: ModelRouter, slots: asyncio.Semaphore, outbox: Any) -> None:
        seen: set[str] = set()
        config = router.config
        for position, item in enumerate(self._requests):
            await slots.acquire()  # stop() cancels the feeder here: the rest stays unsent
            if self._stopping:
                slots.release()
                self.unsent += 1
                return
            try:
                request = (
                    item
                    if isinstance(item, BatchRequest)
                    else parse_request(item, position, roles=config.roles)
                )
                if request.id in seen:
                    raise InvalidBatchRequest(f"duplicate id '{request.id}'")
            except InvalidBatchRequest as exc:
                slots.release()
                failed_id = _id_or_position(item, position)
                outbox.put_nowait(BatchResult(id=failed_id, error=_error_info(exc)))
                continue
            seen.add(request.id)
            task = asyncio.create_task(self._run_one(router, config, request))
            self._tasks[task] = request.id
            task.add_done_callback(lambda done: self._finished(done, slots, outbox))

    def _finished(
        self, task: asyncio.Task[BatchResult], slots: asyncio.Semaphore, outbox: Any
    ) -> None:
        request_id = self._tasks.pop(task, "")
        self._waiting.discard(task)
        slots.release()
        if task.cancelled():
            if request_id in self._sent:
                self.cancelled.append(request_id)
            else:
                self.unsent += 1
            outbox.put_nowait(_WAKE)  # the run may be waiting for its last task to end
            return
        exc = task.exception()
        outbox.put_nowait(exc if exc is not None else task.result())

    async def _run_one(
        self, router: ModelRouter, config: RouterConfig, request: BatchRequest
    ) -> BatchResult:
        role = route_role(request, config)
        if self._pacer is not None:
            key = role if role != "direct" else f"direct:{request.model}"
            wait = self._pacer.reserve(key, time.monotonic())
            if wait > 0:
                task = asyncio.current_task()
                assert task is not None
                self._waiting.add(task)
                await asyncio.sleep(wait)
                self._waiting.discard(task)
        self._sent.add(request.id)
        started = time.monotonic()
        try:
            response = await router.acompletion(
                model=request.model,
                messages=request.messages,
                role=request.role,
                task_type=request.task_type,
                session_id=self.session_id,
                **request.kwargs,
            )
        except Exception as exc:  # noqa: BLE001 - one failed request never stops the batch
            return BatchResult(
                id=request.id,
                role=role,
                model=_failed_model(exc),
                latency_ms=_ms_since(started),
                error=_error_info(exc),
            )
        return _result_from_response(request, role, response, _ms_since(started), config)


def _feeding_over(feeder: asyncio.Task[None], outbox: Any) -> None:
    if not feeder.cancelled() and feeder.exception() is not None:
        outbox.put_nowait(feeder.exception())  # e.g. the caller's request iterator raised
    outbox.put_nowait(_FEED_DONE)


def _ms_since(started: float) -> int:
    return int((time.monotonic() - started) * 1000)


def _id_or_position(item: Any, position: int) -> str:
    if isinstance(item, Mapping):
        value = item.get("id")
        if isinstance(value, str) and value.strip():
            return value
        if isinstance(value, int) and not isinstance(value, bool):
            return str(value)
    return f"req-{position}"


# --------------------------------------------------------------------------- entry points


async def abatch_completion(
    requests: Iterable[BatchInput],
    concurrency: int = DEFAULT_CONCURRENCY,
    router: ModelRouter | None = None,
    on_result: Callable[[BatchResult], object] | None = None,
    rpm: float | Mapping[str, float] | None = None,
    *,
    session_id: str | None = None,
) -> AsyncIterator[BatchResult]:
    """Run ``requests`` through ``router`` (default: :func:`get_router`), yielding results.

    At most ``concurrency`` requests are in flight; ``rpm`` paces request starts per role
    (a number for every role, or a mapping of role to requests per minute; a direct model
    call is paced under ``direct:<model>``; a request waiting for its turn keeps its
    concurrency slot). ``on_result`` is called with each result before
    it is yielded; an exception it raises ends the batch. ``session_id`` is logged with every
    cost row (default: the router's). Results come in completion order.
    """
    runner = BatchRunner(
        requests,
        concurrency=concurrency,
        router=router,
        on_result=on_result,
        rpm=rpm,
        session_id=session_id,
    )
    results = runner.results()
    try:
        async for result in results:
            yield result
    finally:
        await results.aclose()


def batch_completion(
    requests: Iterable[BatchInput],
    concurrency: int = DEFAULT_CONCURRENCY,
    router: ModelRouter | None = None,
    on_result: Callable[[BatchResult], object] | None = None,
    rpm: float | Mapping[str, float] | None = None,
    *,
    session_id: str | None = None,
) -> Iterator[BatchResult]:
    """:func:`abatch_completion` for synchronous code: a generator of results.

    The batch runs on an event loop in a background thread (so it also works where a loop is
    already running); ``on_result`` is called on that thread. Leaving the loop early (break,
    or closing the generator) cancels the requests still in flight.
    """
    runner = BatchRunner(
        requests,
        concurrency=concurrency,
        router=router,
        on_result=on_result,
        rpm=rpm,
        session_id=session_id,
    )
    return _drive_in_thread(runner)


_DONE = object()


def _drive_in_thread(runner: BatchRunner) -> Iterator[BatchResult]:
    inbox: queue.SimpleQueue[Any] = queue.SimpleQueue()
    ready = threading.Event()
    handle: dict[str, Any] = {}

    async def pump() -> None:
        handle["loop"] = asyncio.get_running_loop()
        handle["task"] = asyncio.current_task()
        ready.set()
        async for result in runner.results():
            inbox.put(result)

    def work() -> None:
        try:
            asyncio.run(pump())
        except asyncio.CancelledError:
            pass
        except BaseException as exc:  # noqa: BLE001 - handed to the consuming thread
            inbox.put(_Raised(exc))
        finally:
            ready.set()
            inbox.put(_DONE)

    thread = threading.Thread(target=work, name="draht-batch", daemon=True)
    thread.start()
    try:
        while True:
            item = inbox.get()
            if item is _DONE:
                return
            if isinstance(item, _Raised):
                raise item.exc
            yield item
    finally:
        if thread.is_alive():
            ready.wait()
            loop, task = handle.get("loop"), handle.get("task")
            if loop is not None and task is not None:
                with contextlib.suppress(RuntimeError):  # the loop already finished
                    loop.call_soon_threadsafe(task.cancel)
            thread.join()


@dataclass
class _Raised:
    exc: BaseException


# --------------------------------------------------------------------------- estimates


def _max_output(request: BatchRequest, default: int) -> int:
    for key in ("max_tokens", "max_completion_tokens"):
        value = request.kwargs.get(key)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
    return default


def _count_input(model: str, messages: list[dict[str, Any]]) -> int:
    import litellm

    try:
        return int(litellm.token_counter(model=model, messages=messages))
    except Exception:  # noqa: BLE001 - an unknown tokenizer: about four characters a token
        text = "".join(str(m.get("content") or "") for m in messages)
        return max(1, len(text) // 4)


def estimate_batch_cost(
    requests: Iterable[BatchRequest], config: RouterConfig | None = None
) -> dict[str, Any]:
    """What sending ``requests`` would cost, if each were answered by its role's primary model.

    Input tokens are counted with LiteLLM's token counter; output is the request's
    ``max_tokens`` (or ``max_completion_tokens``), else ``settings.batch_output_tokens``.
    Returns ``{"roles": {role: {model, requests, input_tokens, output_tokens, cost_usd}},
    "total": {requests, input_tokens, output_tokens, cost_usd}}``.
    """
    from .config import ModelRef, load_config
    from .pricing import estimate_cost

    config = config if config is not None else load_config()
    default_output = config.settings.batch_output_tokens
    roles: dict[str, dict[str, Any]] = {}
    for request in requests:
        role = route_role(request, config)
        if role == "direct":
            name = request.model or ""
            provider, _, model = name.rpartition("/")
            ref = ModelRef(provider, model)
            key, label = f"direct:{name}", name
        else:
            ref = config.role(role).primary
            key, label = role, str(ref)
        input_tokens = _count_input(
            ref.litellm_model if ref.provider else ref.model, request.messages
        )
        output_tokens = _max_output(request, default_output)
        cost = estimate_cost(
            ref.provider,
            ref.model,
            input_tokens,
            output_tokens,
            input_cost_per_token=ref.params.get("input_cost_per_token"),
            output_cost_per_token=ref.params.get("output_cost_per_token"),
        )
        row = roles.setdefault(
            key,
            {"model": label, "requests": 0, "input_tokens": 0, "output_tokens": 0, "cost_usd": 0.0},
        )
        row["requests"] += 1
        row["input_tokens"] += input_tokens
        row["output_tokens"] += output_tokens
        row["cost_usd"] += cost
    total = {
        "requests": sum(r["requests"] for r in roles.values()),
        "input_tokens": sum(r["input_tokens"] for r in roles.values()),
        "output_tokens": sum(r["output_tokens"] for r in roles.values()),
        "cost_usd": sum(r["cost_usd"] for r in roles.values()),
    }
    return {"roles": roles, "total": total}


def append_result(fd: int, result: BatchResult) -> None:
    """Append ``result`` as one whole line, in one write, to a file from :func:`open_output`."""
    data = result.to_dict()
    line = (json.dumps(data, ensure_ascii=False, separators=(",", ":")) + "\n").encode("utf-8")
    written = os.write(fd, line)
    if written != len(line):
        os.write(fd, b"\n")  # end the partial line so readers skip it and the next is whole
        raise OSError(f"short write: {written} of {len(line)} bytes")


def open_output(path: str | os.PathLike[str]) -> int:
    """Open a batch output file for appending whole lines; returns the file descriptor.

    A last line cut short by a killed run is ended first, so the next result starts a line
    of its own (readers skip the cut one).
    """
    target = Path(path)
    if target.parent != Path(""):
        target.parent.mkdir(parents=True, exist_ok=True)
    flags = os.O_RDWR | os.O_APPEND | os.O_CREAT | getattr(os, "O_CLOEXEC", 0)
    fd = os.open(target, flags, 0o644)
    try:
        size = os.fstat(fd).st_size
        if size:
            os.lseek(fd, size - 1, os.SEEK_SET)
            if os.read(fd, 1) != b"\n":
                os.write(fd, b"\n")  # O_APPEND: lands at the end whatever the offset
    except BaseException:
        os.close(fd)
        raise
    return fd
