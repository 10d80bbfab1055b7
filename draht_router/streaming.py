"""Streams the router hands to callers, and the deadlines it enforces while reading one.

A LiteLLM stream that is cut mid-answer has already yielded its partial chunks before it
raises. The router therefore never passes a provider's chunks straight through in ``buffer``
mode: it reads each attempt to the end under deadlines, and only a complete answer is replayed
to the caller as a :class:`RoutedStream`. In ``live`` mode chunks flow at once and fall-over is
possible only before the first one.
"""

from __future__ import annotations

import asyncio
import queue
import threading
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, NoReturn

from litellm.litellm_core_utils.streaming_handler import CustomStreamWrapper

from .policy import StreamFault

_END = object()


@dataclass(frozen=True)
class StreamDeadlines:
    """Longest waits while reading a stream, in seconds (None: no limit of our own)."""

    first_token: float | None = None
    idle: float | None = None

    @property
    def active(self) -> bool:
        return self.first_token is not None or self.idle is not None

    def wait_for(self, received: int) -> float | None:
        return self.first_token if received == 0 else self.idle


def is_usage_only(chunk: Any) -> bool:
    """A final chunk carrying only token usage (what ``include_usage`` adds)."""
    return not getattr(chunk, "choices", None) and getattr(chunk, "usage", None) is not None


def _fault_for(received: int, waited: float | None, model: str) -> StreamFault:
    if received == 0:
        return StreamFault(f"no first token from {model} within {waited}s")
    return StreamFault(f"stream from {model} stalled: no chunk for {waited}s after {received}")


def _raise_broken(exc: BaseException, received: int, model: str) -> NoReturn:
    """Re-raise a provider error; once chunks have arrived it is a broken stream."""
    if not received:
        raise exc
    raise StreamFault(f"stream from {model} broke after {received} chunks", exc) from exc


def _close_quietly(stream: Any) -> None:
    try:
        stream.close()
    except Exception:  # noqa: BLE001 - abandoning a broken stream; nothing to report
        pass


def iterate_with_deadlines(
    stream: Iterable[Any], deadlines: StreamDeadlines, model: str
) -> Iterator[Any]:
    """Chunks of a sync stream; raises StreamFault when a deadline passes, or when the
    provider breaks the stream after it started (the partial answer is never final)."""
    if not deadlines.active:
        yield from _mark_mid_stream_errors(iter(stream), model)
        return
    # A blocking read cannot be interrupted from the same thread, so a reader thread feeds a
    # queue and this side waits on the queue with the deadline.
    handoff: queue.Queue[Any] = queue.Queue()

    def pump() -> None:
        try:
            for item in stream:
                handoff.put(item)
            handoff.put(_END)
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer
            handoff.put(exc)

    threading.Thread(target=pump, name="draht-stream-reader", daemon=True).start()
    received = 0
    while True:
        wait = deadlines.wait_for(received)
        try:
            item = handoff.get(timeout=wait)
        except queue.Empty:
            _close_quietly(stream)
            raise _fault_for(received, wait, model) from None
        if item is _END:
            return
        if isinstance(item, BaseException):
            _raise_broken(item, received, model)
        received += 1
        yield item


def _mark_mid_stream_errors(chunks: Iterator[Any], model: str) -> Iterator[Any]:
    received = 0
    while True:
        try:
            item = next(chunks)
        except StopIteration:
            return
        except Exception as exc:
            _raise_broken(exc, received, model)
        received += 1
        yield item


async def aiterate_with_deadlines(
    stream: Any, deadlines: StreamDeadlines, model: str
) -> AsyncIterator[Any]:
    """Async twin of :func:`iterate_with_deadlines`."""
    iterator = stream.__aiter__()
    received = 0
    while True:
        wait = deadlines.wait_for(received)
        try:
            item = await asyncio.wait_for(iterator.__anext__(), wait)
        except StopAsyncIteration:
            return
        except asyncio.TimeoutError:
            await _aclose_quietly(stream)
            raise _fault_for(received, wait, model) from None
        except Exception as exc:
            _raise_broken(exc, received, model)
        received += 1
        yield item


async def _aclose_quietly(stream: Any) -> None:
    try:
        await stream.aclose()
    except Exception:  # noqa: BLE001 - abandoning a broken stream; nothing to report
        pass


class RoutedStream(CustomStreamWrapper):
    """The stream ``completion(stream=True)`` returns: a LiteLLM ``CustomStreamWrapper`` whose
    chunks come from the model that answered.

    It deliberately skips ``CustomStreamWrapper.__init__``: the chunks it hands out were already
    produced (and logged) by LiteLLM's own wrapper, and the parent's set-up would log them a
    second time.
    """

    def __init__(
        self,
        chunks: Iterator[Any] | AsyncIterator[Any],
        *,
        model: str,
        provider: str,
        routing: dict[str, Any],
        on_close: Callable[[], None] | None = None,
    ):
        self.model = model
        self.custom_llm_provider = provider
        self.logging_obj = None
        self.completion_stream = None
        self.chunks: list[Any] = []
        self._hidden_params = {"custom_llm_provider": provider, "draht_router": routing}
        self._source = chunks
        self._on_close = on_close
        self._closed = False

    @property
    def routing(self) -> dict[str, Any]:
        """Role, model that answered, attempts and fall-overs of this call."""
        return self._hidden_params["draht_router"]

    def __iter__(self) -> Iterator[Any]:
        return self

    def __next__(self) -> Any:
        if self._closed or not isinstance(self._source, Iterator):
            raise StopIteration
        chunk = next(self._source)
        self.chunks.append(chunk)
        return chunk

    def __aiter__(self) -> AsyncIterator[Any]:
        return self

    async def __anext__(self) -> Any:
        if self._closed:
            raise StopAsyncIteration
        source = self._source
        if isinstance(source, Iterator):  # a buffered answer replays to async callers too
            try:
                chunk = next(source)
            except StopIteration:
                raise StopAsyncIteration from None
        else:
            chunk = await source.__anext__()
        self.chunks.append(chunk)
        return chunk

    def close(self) -> None:
        self._closed = True
        closer = getattr(self._source, "close", None)
        if callable(closer):
            closer()
        if self._on_close:
            self._on_close()

    async def aclose(self) -> None:
        self._closed = True
        closer = getattr(self._source, "aclose", None)
        if callable(closer):
            await closer()
        if self._on_close:
            self._on_close()
