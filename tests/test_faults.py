"""Fall-over a production team can trust: every provider fault, through the loopback stub.

Each test scripts the stub, calls ``ModelRouter.completion`` (or ``acompletion``) and checks
both what the caller got and which requests the stub saw (counts and the gaps between their
arrival times). Timeouts are kept small so the whole file runs in well under a minute.
"""

from __future__ import annotations

import os

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

import asyncio  # noqa: E402
import json  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable, Iterator  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import litellm  # noqa: E402
import pytest  # noqa: E402

from draht_router import ModelRouter  # noqa: E402
from draht_router import router as router_module  # noqa: E402
from draht_router.log import configure_logging  # noqa: E402
from draht_router.policy import Action, backoff_delay, classify, is_retryable_error  # noqa: E402
from draht_router.stub import (  # noqa: E402
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

MESSAGES = [{"role": "user", "content": "Say something."}]
PRIMARY_TEXT = "The primary model answers in full."
BACKUP_TEXT = "The backup model delivers this whole answer, every word of it."
# What a caller may get when a stream broke and no model was left: LiteLLM's own types.
BROKEN_STREAM_ERRORS = (
    litellm.ServiceUnavailableError,
    litellm.APIConnectionError,
    litellm.Timeout,
)
MODES = pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])

# Settings every test starts from: short timeouts, one same-model retry, and a circuit that
# never opens unless a test asks for it (so one fault's test does not depend on another's).
BASE_SETTINGS: dict[str, Any] = {
    "timeout": 5.0,
    "num_retries": 1,
    "retry_after_max": 5.0,
    "cooldown": 30.0,
    "cooldown_failures": 1000,
}


# --------------------------------------------------------------------------- helpers


@pytest.fixture(autouse=True)
def quick_backoff(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """Same-model retries back off 10x faster (still exponential, still jittered) unless a
    test asks for ``real_backoff``: the file must stay fast."""
    if "real_backoff" in request.fixturenames:
        return
    monkeypatch.setattr(
        router_module, "backoff_delay", lambda attempt: backoff_delay(attempt, base=0.05)
    )


@pytest.fixture
def real_backoff() -> None:
    """Marker fixture: keep the router's default backoff (0.5 s base) in this test."""


@pytest.fixture
def cost_log(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "cost-log.jsonl"
    monkeypatch.setenv("DRAHT_COST_LOG", str(path))
    return path


RouterFactory = Callable[..., ModelRouter]


@pytest.fixture
def make_router(stub: StubProvider, cost_log: Path) -> RouterFactory:
    """``make_router("primary", "backup", num_retries=2)``: role ``implement`` over the stub."""

    def build(*models: str, **settings: Any) -> ModelRouter:
        names = models or ("primary", "backup")
        entries = [
            {"model": f"openai/{name}", "api_base": stub.base_url, "api_key": "sk-test"}
            for name in names
        ]
        config = {
            "roles": {"implement": {"primary": entries[0], "fallbacks": entries[1:]}},
            "settings": {**BASE_SETTINGS, **settings},
        }
        return ModelRouter(config)

    return build


def text_of(response: Any) -> str:
    """The answer text of a plain response or of a (fully consumed) stream."""
    if hasattr(response, "choices") and not hasattr(response, "__next__"):
        return response.choices[0].message.content
    parts = []
    for chunk in response:
        for choice in chunk.choices or ():
            parts.append(choice.delta.content or "")
    return "".join(parts)


async def atext_of(response: Any) -> str:
    if hasattr(response, "choices") and not hasattr(response, "__anext__"):
        return response.choices[0].message.content
    parts = []
    async for chunk in response:
        for choice in chunk.choices or ():
            parts.append(choice.delta.content or "")
    return "".join(parts)


def ask(router: ModelRouter, stream: bool = False, **kwargs: Any) -> str:
    response = router.completion(messages=MESSAGES, role="implement", stream=stream, **kwargs)
    return text_of(response)


def aask(router: ModelRouter, stream: bool = False, **kwargs: Any) -> str:
    async def run() -> str:
        response = await router.acompletion(
            messages=MESSAGES, role="implement", stream=stream, **kwargs
        )
        return await atext_of(response)

    return asyncio.run(run())


def gaps(stub: StubProvider, model: str) -> list[float]:
    """Seconds between consecutive requests the stub received for ``model``."""
    times = [r.received_at for r in stub.requests_for(model)]
    return [later - earlier for earlier, later in zip(times[:-1], times[1:], strict=True)]


def rows(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


@pytest.fixture
def events(capsys: pytest.CaptureFixture[str]) -> Iterator[Callable[[str], list[dict]]]:
    """Router log events (JSON) printed so far, by event name."""
    configure_logging(level="info", fmt="json")

    def read(name: str) -> list[dict[str, Any]]:
        found = []
        for line in capsys.readouterr().err.splitlines():
            line = line.strip()
            if not line.startswith("{"):
                continue
            try:
                event = json.loads(line)
            except ValueError:
                continue
            if event.get("event") == name:
                found.append(event)
        return found

    try:
        yield read
    finally:
        configure_logging()


# ------------------------------------------------------------ 1. 429 with Retry-After


@pytest.mark.parametrize(
    ("stream", "retry_after"), [(False, 1), (True, 0.5)], ids=["plain", "stream"]
)
def test_retry_after_is_waited_before_the_same_model(
    stub: StubProvider, make_router: RouterFactory, stream: bool, retry_after: float
) -> None:
    stub.script("primary", rate_limited(retry_after=retry_after), ok(PRIMARY_TEXT))
    router = make_router(retry_after_max=5)

    assert ask(router, stream) == PRIMARY_TEXT
    assert stub.count("primary") == 2
    assert stub.count("backup") == 0
    assert gaps(stub, "primary")[0] >= retry_after  # never sooner than the header says


def test_fractional_retry_after_is_waited(stub: StubProvider, make_router: RouterFactory) -> None:
    stub.script("primary", rate_limited(retry_after=0.6), ok(PRIMARY_TEXT))
    router = make_router(retry_after_max=5)

    assert ask(router) == PRIMARY_TEXT
    assert stub.count("primary") == 2
    assert gaps(stub, "primary")[0] >= 0.6


@MODES
def test_retry_after_beyond_the_maximum_falls_over_at_once(
    stub: StubProvider, make_router: RouterFactory, stream: bool
) -> None:
    stub.set_default("primary", rate_limited(retry_after=30))
    stub.set_default("backup", ok(BACKUP_TEXT))
    router = make_router(retry_after_max=1)

    started = time.monotonic()
    assert ask(router, stream) == BACKUP_TEXT
    assert time.monotonic() - started < 1.0  # no waiting at all
    assert stub.count("primary") == 1
    assert stub.count("backup") == 1

    # The provider said "not for 30 s": the next call does not knock again.
    assert ask(router, stream) == BACKUP_TEXT
    assert stub.count("primary") == 1
    assert stub.count("backup") == 2


def test_retry_after_is_respected_after_retries_run_out(
    stub: StubProvider, make_router: RouterFactory
) -> None:
    # No same-model retries left: fall over now, but keep away from the primary until the
    # Retry-After has passed (it is within retry_after_max, so it is honoured).
    stub.script("primary", rate_limited(retry_after=0.6), ok(PRIMARY_TEXT))
    stub.set_default("backup", ok(BACKUP_TEXT))
    router = make_router(num_retries=0, retry_after_max=5)

    assert ask(router) == BACKUP_TEXT
    assert ask(router) == BACKUP_TEXT  # within the Retry-After: primary not asked
    assert stub.count("primary") == 1
    time.sleep(0.65)
    assert ask(router) == PRIMARY_TEXT
    assert stub.count("primary") == 2
    assert gaps(stub, "primary")[0] >= 0.6


def test_retry_after_async(stub: StubProvider, make_router: RouterFactory) -> None:
    stub.script("primary", rate_limited(retry_after=0.5), ok(PRIMARY_TEXT))
    router = make_router(retry_after_max=5)

    assert aask(router, stream=True) == PRIMARY_TEXT
    assert stub.count("primary") == 2
    assert stub.count("backup") == 0
    assert gaps(stub, "primary")[0] >= 0.5


# ------------------------------------------------- 2. persistent 429 / 5xx, no header


def test_persistent_429_retries_with_the_default_backoff_then_falls_over(
    stub: StubProvider, make_router: RouterFactory, real_backoff: None
) -> None:
    stub.set_default("primary", rate_limited())
    stub.set_default("backup", ok(BACKUP_TEXT))
    router = make_router(num_retries=2)

    assert ask(router) == BACKUP_TEXT
    assert stub.count("primary") == 3  # num_retries + 1, never more
    assert stub.count("backup") == 1
    first, second = gaps(stub, "primary")
    # backoff_delay: retry 1 waits 0.25-0.5 s, retry 2 waits 0.5-1.0 s (full jitter in halves)
    assert 0.25 <= first
    assert 0.5 <= second


@pytest.mark.parametrize(
    ("reply", "stream"),
    [(rate_limited(), True), (server_error(500), True), (server_error(503), False)],
    ids=["429-stream", "500-stream", "503-plain"],
)
def test_persistent_transient_errors_retry_with_backoff_then_fall_over(
    stub: StubProvider, make_router: RouterFactory, reply: Any, stream: bool
) -> None:
    stub.set_default("primary", reply)
    stub.set_default("backup", ok(BACKUP_TEXT))
    router = make_router(num_retries=2)

    assert ask(router, stream) == BACKUP_TEXT
    assert stub.count("primary") == 3  # num_retries + 1, never more
    assert stub.count("backup") == 1
    first, second = gaps(stub, "primary")
    assert first >= 0.025 and second >= 0.05  # quick_backoff: 0.025-0.05 s, then 0.05-0.1 s


def test_retries_are_bounded_even_below_the_circuit_threshold(
    stub: StubProvider, make_router: RouterFactory
) -> None:
    stub.set_default("primary", server_error())
    router = make_router("primary", num_retries=1)  # a chain of one model

    with pytest.raises(litellm.InternalServerError):
        ask(router)
    assert stub.count("primary") == 2


# --------------------------------------------------------- 3. transient 500 then success


@MODES
def test_one_transient_500_is_retried_on_the_same_model(
    stub: StubProvider, make_router: RouterFactory, stream: bool
) -> None:
    stub.script("primary", server_error(), ok(PRIMARY_TEXT))
    router = make_router()

    assert ask(router, stream) == PRIMARY_TEXT
    assert stub.count("primary") == 2
    assert stub.count("backup") == 0
    assert gaps(stub, "primary")[0] > 0


def test_backoff_is_exponential_with_jitter_and_capped() -> None:
    for attempt, ceiling in [(1, 0.5), (2, 1.0), (3, 2.0), (4, 4.0), (5, 8.0), (9, 8.0)]:
        samples = [backoff_delay(attempt) for _ in range(200)]
        assert all(ceiling / 2 <= value <= ceiling for value in samples)
        assert len(set(samples)) > 150  # jittered: concurrent callers do not retry in step


# ------------------------------------------------------------- 4. connection reset


@MODES
def test_connection_reset_is_retried(
    stub: StubProvider, make_router: RouterFactory, stream: bool
) -> None:
    stub.script("primary", reset_connection(), ok(PRIMARY_TEXT))
    router = make_router()

    assert ask(router, stream) == PRIMARY_TEXT
    assert stub.count("primary") == 2
    assert stub.count("backup") == 0


def test_stream_dropped_before_the_first_chunk_is_retried_then_falls_over(
    stub: StubProvider, make_router: RouterFactory
) -> None:
    stub.set_default("primary", cut(after_chunks=0))  # headers, then the connection drops
    stub.set_default("backup", ok(BACKUP_TEXT))
    router = make_router(num_retries=1)

    assert ask(router, stream=True) == BACKUP_TEXT
    assert stub.count("primary") == 2  # nothing was received: a retry is safe
    assert stub.count("backup") == 1


@MODES
def test_connection_reset_every_time_falls_over(
    stub: StubProvider, make_router: RouterFactory, stream: bool
) -> None:
    stub.set_default("primary", reset_connection())
    stub.set_default("backup", ok(BACKUP_TEXT))
    router = make_router(num_retries=1)

    assert ask(router, stream) == BACKUP_TEXT
    assert stub.count("primary") == 2
    assert stub.count("backup") == 1


def test_connection_reset_async(stub: StubProvider, make_router: RouterFactory) -> None:
    stub.set_default("primary", reset_connection())
    stub.set_default("backup", ok(BACKUP_TEXT))
    router = make_router(num_retries=0)

    assert aask(router) == BACKUP_TEXT
    assert stub.count("primary") == 1
    assert stub.count("backup") == 1


# ------------------------------------------------------------------- 5. hung provider


@MODES
def test_hung_provider_times_out_and_falls_over_without_retry(
    stub: StubProvider, make_router: RouterFactory, stream: bool
) -> None:
    stub.set_default("primary", hang(10))
    stub.set_default("backup", ok(BACKUP_TEXT))
    router = make_router(timeout=0.5, num_retries=3)

    started = time.monotonic()
    assert ask(router, stream) == BACKUP_TEXT
    elapsed = time.monotonic() - started
    assert stub.count("primary") == 1  # a silent route is not asked twice
    assert stub.count("backup") == 1
    assert 0.5 <= elapsed < 0.5 + 0.8


def test_hung_provider_async(stub: StubProvider, make_router: RouterFactory) -> None:
    stub.set_default("primary", hang(10))
    stub.set_default("backup", ok(BACKUP_TEXT))
    router = make_router(timeout=0.5, num_retries=3)

    started = time.monotonic()
    assert aask(router, stream=True) == BACKUP_TEXT
    assert time.monotonic() - started < 0.5 + 0.8
    assert stub.count("primary") == 1


def test_hang_with_nothing_left_raises_timeout(
    stub: StubProvider, make_router: RouterFactory
) -> None:
    stub.set_default("primary", hang(10))
    router = make_router("primary", timeout=0.5)

    started = time.monotonic()
    with pytest.raises(litellm.Timeout):
        ask(router)
    assert time.monotonic() - started < 0.5 + 0.8
    assert stub.count("primary") == 1


# ----------------------------------------------------------------- 6. slow first token


def test_slow_first_token_falls_over(
    stub: StubProvider, make_router: RouterFactory, cost_log: Path
) -> None:
    stub.set_default("primary", slow_first_token(0.6, text=PRIMARY_TEXT))
    stub.set_default("backup", ok(BACKUP_TEXT))
    router = make_router(first_token_timeout=0.3)

    started = time.monotonic()
    assert ask(router, stream=True) == BACKUP_TEXT
    assert time.monotonic() - started < 0.3 + 0.5
    assert stub.count("primary") == 1
    assert stub.count("backup") == 1
    # The abandoned primary stream finishes later on the wire; it is still not billed.
    time.sleep(0.5)
    assert [row["model"] for row in rows(cost_log)] == ["backup"]


def test_first_token_within_the_deadline_is_kept(
    stub: StubProvider, make_router: RouterFactory
) -> None:
    stub.set_default("primary", slow_first_token(0.1, text=PRIMARY_TEXT))
    router = make_router(first_token_timeout=0.6)

    assert ask(router, stream=True) == PRIMARY_TEXT
    assert stub.count("backup") == 0


def test_slow_first_token_as_a_call_option_async(
    stub: StubProvider, make_router: RouterFactory
) -> None:
    stub.set_default("primary", slow_first_token(2, text=PRIMARY_TEXT))
    stub.set_default("backup", ok(BACKUP_TEXT))
    router = make_router()  # no deadline in the config: this call sets one

    started = time.monotonic()
    assert aask(router, stream=True, first_token_timeout=0.3) == BACKUP_TEXT
    assert time.monotonic() - started < 0.3 + 0.5
    assert stub.count("primary") == 1


# ------------------------------------------------------------ 7. stream cut mid-answer


def test_cut_stream_is_replaced_by_the_whole_next_answer(
    stub: StubProvider, make_router: RouterFactory, cost_log: Path
) -> None:
    stub.set_default("primary", cut(after_chunks=3))
    stub.set_default("backup", ok(BACKUP_TEXT))
    router = make_router()

    assert ask(router, stream=True) == BACKUP_TEXT  # not one word of the primary
    assert stub.count("primary") == 1  # a broken stream is not retried on the same model
    assert stub.count("backup") == 1
    assert [row["model"] for row in rows(cost_log)] == ["backup"]


def test_cut_stream_async(stub: StubProvider, make_router: RouterFactory) -> None:
    stub.set_default("primary", cut(after_chunks=3))
    stub.set_default("backup", ok(BACKUP_TEXT))
    router = make_router()

    assert aask(router, stream=True) == BACKUP_TEXT
    assert stub.count("primary") == 1
    assert stub.count("backup") == 1


def test_cut_plain_body_falls_over(stub: StubProvider, make_router: RouterFactory) -> None:
    stub.set_default("primary", cut())
    stub.set_default("backup", ok(BACKUP_TEXT))
    router = make_router(num_retries=1)

    assert ask(router) == BACKUP_TEXT
    assert 1 <= stub.count("primary") <= 2
    assert stub.count("backup") == 1


@pytest.mark.parametrize("use_async", [False, True], ids=["sync", "async"])
def test_cut_stream_with_nothing_left_raises(
    stub: StubProvider, make_router: RouterFactory, cost_log: Path, use_async: bool
) -> None:
    stub.set_default("primary", cut(after_chunks=3))
    stub.set_default("backup", cut(after_chunks=2))
    router = make_router()

    with pytest.raises(BROKEN_STREAM_ERRORS) as caught:
        (aask if use_async else ask)(router, stream=True)
    exc = caught.value
    assert type(exc).__module__.startswith("litellm")
    message = str(exc).lower()
    assert "stream" in message and ("broke" in message or "cut" in message)
    assert "no model left" in message
    assert stub.count("primary") == 1
    assert stub.count("backup") == 1
    assert rows(cost_log) == []  # nothing was delivered, nothing is billed


@pytest.mark.parametrize("use_async", [False, True], ids=["sync", "async"])
def test_live_stream_cut_after_first_chunk_raises_to_the_caller(
    stub: StubProvider, make_router: RouterFactory, cost_log: Path, use_async: bool
) -> None:
    stub.set_default("primary", cut(after_chunks=2))
    stub.set_default("backup", ok(BACKUP_TEXT))
    router = make_router(stream_fallback="live")

    with pytest.raises(BROKEN_STREAM_ERRORS) as caught:
        (aask if use_async else ask)(router, stream=True)
    assert "stream" in str(caught.value).lower()
    assert stub.count("primary") == 1
    assert stub.count("backup") == 0  # chunks were already delivered: no silent swap
    assert rows(cost_log) == []


def test_live_stream_delivers_chunks_then_raises(
    stub: StubProvider, make_router: RouterFactory
) -> None:
    stub.set_default("primary", cut(after_chunks=2))
    router = make_router(stream_fallback="live")

    response = router.completion(messages=MESSAGES, role="implement", stream=True)
    received = []
    with pytest.raises(BROKEN_STREAM_ERRORS):
        for chunk in response:
            received.append(chunk.choices[0].delta.content if chunk.choices else None)
    assert 1 <= len(received) <= 2  # the caller saw the start, then a clear error


def test_live_stream_falls_over_before_the_first_chunk(
    stub: StubProvider, make_router: RouterFactory
) -> None:
    stub.set_default("primary", slow_first_token(2, text=PRIMARY_TEXT))
    stub.set_default("backup", ok(BACKUP_TEXT))
    router = make_router(stream_fallback="live", first_token_timeout=0.3)

    assert ask(router, stream=True) == BACKUP_TEXT
    assert stub.count("primary") == 1


# ------------------------------------------------------------ 8. stream stalls mid-answer


@pytest.mark.parametrize("use_async", [False, True], ids=["sync", "async"])
def test_stalled_stream_falls_over_after_the_idle_timeout(
    stub: StubProvider, make_router: RouterFactory, use_async: bool
) -> None:
    stub.set_default("primary", stall(after_chunks=2, seconds=10))
    stub.set_default("backup", ok(BACKUP_TEXT))
    router = make_router(stream_idle_timeout=0.3)

    started = time.monotonic()
    assert (aask if use_async else ask)(router, stream=True) == BACKUP_TEXT
    assert time.monotonic() - started < 0.3 + 0.7
    assert stub.count("primary") == 1
    assert stub.count("backup") == 1


def test_stalled_plain_body_ends_at_the_timeout(
    stub: StubProvider, make_router: RouterFactory
) -> None:
    stub.set_default("primary", stall(seconds=10))
    stub.set_default("backup", ok(BACKUP_TEXT))
    router = make_router(timeout=0.5)

    started = time.monotonic()
    assert ask(router) == BACKUP_TEXT
    assert time.monotonic() - started < 0.5 + 0.8
    assert stub.count("primary") == 1


# ----------------------------------------------------------------- 9. malformed chunk


@pytest.mark.parametrize("use_async", [False, True], ids=["sync", "async"])
def test_malformed_chunk_is_skipped_or_falls_over_cleanly(
    stub: StubProvider, make_router: RouterFactory, cost_log: Path, use_async: bool
) -> None:
    stub.script("primary", malformed_chunk(text=PRIMARY_TEXT))
    stub.set_default("backup", ok(BACKUP_TEXT))
    router = make_router()

    text = (aask if use_async else ask)(router, stream=True)
    [row] = rows(cost_log)
    # Whole answers only, never a fragment: either the garbage was skipped and the primary's
    # answer is complete, or the attempt failed cleanly and the backup answered in full.
    assert text == {"primary": PRIMARY_TEXT, "backup": BACKUP_TEXT}[row["model"]]
    assert stub.count("primary") == 1
    # The process stays healthy: the next call is answered normally.
    stub.set_default("primary", ok("Next answer."))
    assert ask(router, stream=True) == "Next answer."
    assert ask(router) == "Next answer."


def test_malformed_plain_body_fails_cleanly_and_falls_over(
    stub: StubProvider, make_router: RouterFactory, cost_log: Path
) -> None:
    stub.set_default("primary", malformed_chunk())
    stub.set_default("backup", ok(BACKUP_TEXT))
    router = make_router(num_retries=0)

    assert ask(router) == BACKUP_TEXT
    assert stub.count("primary") == 1
    assert [row["model"] for row in rows(cost_log)] == ["backup"]


# ------------------------------------------------------------ 10. stream without [DONE]


@pytest.mark.parametrize("use_async", [False, True], ids=["sync", "async"])
def test_stream_without_done_finishes_promptly_with_usage(
    stub: StubProvider, make_router: RouterFactory, cost_log: Path, use_async: bool
) -> None:
    stub.set_default("primary", no_done(text=PRIMARY_TEXT))
    router = make_router(stream_idle_timeout=5)

    started = time.monotonic()
    assert (aask if use_async else ask)(router, stream=True) == PRIMARY_TEXT
    assert time.monotonic() - started < 1.0
    assert stub.count("primary") == 1
    [row] = rows(cost_log)
    assert row["model"] == "primary"
    assert row["inputTokens"] == 10
    assert row["outputTokens"] == len(PRIMARY_TEXT.split())


# ------------------------------------------------------- 11. context length exceeded


BIG_PROMPT = [{"role": "user", "content": "hello " * 12_000}]  # ~12k tokens > gpt-4's 8k


@MODES
def test_context_overflow_skips_to_a_model_whose_window_fits(
    stub: StubProvider, make_router: RouterFactory, stream: bool
) -> None:
    stub.set_default("gpt-4o-mini", context_length_exceeded(max_tokens=8192, requested=12_001))
    stub.set_default("gpt-4.1", ok(BACKUP_TEXT))
    router = make_router("gpt-4o-mini", "gpt-4", "gpt-4.1", num_retries=3)

    response = router.completion(messages=BIG_PROMPT, role="implement", stream=stream)
    assert text_of(response) == BACKUP_TEXT
    assert stub.count("gpt-4o-mini") == 1  # no same-model retry
    assert stub.count("gpt-4") == 0  # 8k window: skipped without a request
    assert stub.count("gpt-4.1") == 1


def test_context_overflow_with_no_model_that_fits_raises(
    stub: StubProvider, make_router: RouterFactory
) -> None:
    stub.set_default("gpt-4o-mini", context_length_exceeded(max_tokens=8192, requested=12_001))
    router = make_router("gpt-4o-mini", "gpt-4", "gpt-4-0613")

    with pytest.raises(litellm.ContextWindowExceededError) as caught:
        router.completion(messages=BIG_PROMPT, role="implement")
    assert "maximum context length" in str(caught.value)
    assert stub.count("gpt-4o-mini") == 1
    assert stub.count("gpt-4") == 0
    assert stub.count("gpt-4-0613") == 0


def test_context_overflow_async(stub: StubProvider, make_router: RouterFactory) -> None:
    stub.set_default("gpt-4o-mini", context_length_exceeded())
    stub.set_default("gpt-4.1", ok(BACKUP_TEXT))
    router = make_router("gpt-4o-mini", "gpt-4", "gpt-4.1")

    async def run() -> str:
        response = await router.acompletion(messages=BIG_PROMPT, role="implement")
        return await atext_of(response)

    assert asyncio.run(run()) == BACKUP_TEXT
    assert stub.count("gpt-4o-mini") == 1
    assert stub.count("gpt-4") == 0


def test_context_overflow_tries_a_model_of_unknown_window(
    stub: StubProvider, make_router: RouterFactory
) -> None:
    stub.set_default("primary", context_length_exceeded())
    stub.set_default("backup", ok(BACKUP_TEXT))
    router = make_router()  # "backup" is not in LiteLLM's map: let it decide for itself

    assert ask(router) == BACKUP_TEXT
    assert stub.count("primary") == 1


# ------------------------------------------------------------- 12. content policy


@pytest.mark.parametrize(
    ("stream", "use_async"),
    [(False, False), (True, False), (False, True)],
    ids=["plain", "stream", "async"],
)
def test_content_policy_rejection_raises_with_the_reason(
    stub: StubProvider, make_router: RouterFactory, stream: bool, use_async: bool
) -> None:
    stub.set_default("primary", content_policy_violation("Reason: violence/graphic."))
    stub.set_default("backup", ok(BACKUP_TEXT))
    router = make_router(num_retries=3)

    with pytest.raises(litellm.ContentPolicyViolationError) as caught:
        (aask if use_async else ask)(router, stream)
    assert "violence/graphic" in str(caught.value)
    assert stub.count("primary") == 1
    assert stub.count("backup") == 0


# ------------------------------------------------------------ 13. 401 / 403 / 400 / 404


CLIENT_ERRORS = [
    (unauthorized(), litellm.AuthenticationError, "Incorrect API key provided"),
    (
        error(403, "Project is not allowed to use this model."),
        litellm.PermissionDeniedError,
        "not allowed to use this model",
    ),
    (
        bad_request("temperature must be at most 2."),
        litellm.BadRequestError,
        "temperature must be at most 2",
    ),
    (not_found(), litellm.NotFoundError, "does not exist"),
]


@pytest.mark.parametrize(
    ("reply", "exc_type", "message"), CLIENT_ERRORS, ids=["401", "403", "400", "404"]
)
@MODES
def test_client_errors_raise_at_once_with_litellm_type(
    stub: StubProvider,
    make_router: RouterFactory,
    reply: Any,
    exc_type: type,
    message: str,
    stream: bool,
) -> None:
    stub.set_default("primary", reply)
    stub.set_default("backup", ok(BACKUP_TEXT))
    router = make_router(num_retries=3)

    with pytest.raises(exc_type) as caught:
        ask(router, stream)
    assert message in str(caught.value)
    assert stub.count("primary") == 1
    assert stub.count("backup") == 0


def test_client_error_async(stub: StubProvider, make_router: RouterFactory) -> None:
    stub.set_default("primary", unauthorized())
    router = make_router()

    with pytest.raises(litellm.AuthenticationError):
        aask(router)
    assert stub.count("primary") == 1
    assert stub.count("backup") == 0


@pytest.mark.parametrize(
    "reply", [unauthorized(), error(403, "Forbidden for this key.")], ids=["401", "403"]
)
def test_auth_errors_fall_over_when_allowed(
    stub: StubProvider, make_router: RouterFactory, reply: Any
) -> None:
    stub.set_default("primary", reply)
    stub.set_default("backup", ok(BACKUP_TEXT))
    router = make_router(fallback_on_auth_error=True, num_retries=3)

    assert ask(router) == BACKUP_TEXT
    assert ask(router, stream=True, fallback_on_auth_error=True) == BACKUP_TEXT
    assert stub.count("primary") == 2  # once per call, never retried
    assert stub.count("backup") == 2


def test_auth_fallback_as_a_call_option(stub: StubProvider, make_router: RouterFactory) -> None:
    stub.set_default("primary", unauthorized())
    stub.set_default("backup", ok(BACKUP_TEXT))
    router = make_router()

    assert ask(router, fallback_on_auth_error=True) == BACKUP_TEXT
    with pytest.raises(litellm.AuthenticationError):
        ask(router)
    assert stub.count("backup") == 1


# ---------------------------------------------------------- 14. cool-down and recovery


def test_failing_primary_is_skipped_during_cooldown_then_probed(
    stub: StubProvider, make_router: RouterFactory, events: Callable[[str], list[dict]]
) -> None:
    stub.set_default("primary", server_error())
    stub.set_default("backup", ok(BACKUP_TEXT))
    router = make_router(num_retries=0, cooldown_failures=2, cooldown=0.8)

    assert ask(router) == BACKUP_TEXT  # failure 1
    assert ask(router) == BACKUP_TEXT  # failure 2: the circuit opens
    assert stub.count("primary") == 2
    for _ in range(3):
        assert ask(router, stream=True) == BACKUP_TEXT
    assert stub.count("primary") == 2  # skipped while cooling down
    assert stub.count("backup") == 5
    assert len(events("route.cooldown_skip")) == 3

    time.sleep(0.85)
    stub.set_default("primary", ok(PRIMARY_TEXT))  # the primary is healthy again
    assert ask(router) == PRIMARY_TEXT  # probed after the cool-down
    assert ask(router) == PRIMARY_TEXT  # and traffic stays there
    assert stub.count("primary") == 4
    assert stub.count("backup") == 5


def test_a_failed_probe_opens_the_circuit_again(
    stub: StubProvider, make_router: RouterFactory
) -> None:
    stub.set_default("primary", server_error())
    stub.set_default("backup", ok(BACKUP_TEXT))
    router = make_router(num_retries=0, cooldown_failures=2, cooldown=0.5)

    ask(router)
    ask(router)
    assert stub.count("primary") == 2
    time.sleep(0.6)
    assert ask(router) == BACKUP_TEXT  # the probe fails...
    assert stub.count("primary") == 3
    assert ask(router) == BACKUP_TEXT  # ...and the primary is skipped again at once
    assert stub.count("primary") == 3


def test_cooldown_async(stub: StubProvider, make_router: RouterFactory) -> None:
    stub.set_default("primary", server_error())
    stub.set_default("backup", ok(BACKUP_TEXT))
    router = make_router(num_retries=0, cooldown_failures=1, cooldown=0.5)

    assert aask(router) == BACKUP_TEXT
    assert aask(router) == BACKUP_TEXT
    assert stub.count("primary") == 1
    time.sleep(0.6)
    stub.set_default("primary", ok(PRIMARY_TEXT))
    assert aask(router) == PRIMARY_TEXT
    assert stub.count("primary") == 2


# ------------------------------------------------------------------- 15. accounting


@MODES
def test_response_and_cost_row_name_the_model_that_answered(
    stub: StubProvider,
    make_router: RouterFactory,
    cost_log: Path,
    events: Callable[[str], list[dict]],
    stream: bool,
) -> None:
    stub.set_default("primary", server_error(502))
    stub.set_default("backup", ok(BACKUP_TEXT, prompt_tokens=21, completion_tokens=7))
    router = make_router(num_retries=1)

    response = router.completion(messages=MESSAGES, role="implement", stream=stream)
    written = rows(cost_log)  # read right after the call returns
    assert "backup" in response.model
    assert "primary" not in response.model
    if stream:
        assert response.routing["model"] == "openai/backup"
        assert response.routing["fallback_from"] == "openai/primary"
        chunks = list(response)
        assert chunks and all(chunk.model.endswith("backup") for chunk in chunks)
        assert text_of(chunks) == BACKUP_TEXT
    else:
        assert response._hidden_params["draht_router"]["model"] == "openai/backup"
        assert text_of(response) == BACKUP_TEXT

    # Failed attempts are not billed: one row, for the model that answered.
    assert len(written) == 1
    [row] = written
    assert (row["provider"], row["model"], row["role"]) == ("openai", "backup", "implement")
    assert (row["inputTokens"], row["outputTokens"]) == (21, 7)
    assert row["attempts"] == 3
    assert row["fallbackFrom"] == "openai/primary"
    assert stub.count("primary") == 2

    [event] = events("route.fallback")
    assert event["from"] == "openai/primary"
    assert event["to"] == "openai/backup"
    assert event["status"] == 502
    assert event["reason"]
    time.sleep(0.2)  # LiteLLM's own success callback runs late: it must not add a row
    assert len(rows(cost_log)) == 1


def test_one_fallback_event_per_fall_over_with_reason(
    stub: StubProvider, make_router: RouterFactory, events: Callable[[str], list[dict]]
) -> None:
    stub.set_default("primary", hang(10))
    stub.set_default("middle", cut(after_chunks=1))
    stub.set_default("backup", ok(BACKUP_TEXT))
    router = make_router("primary", "middle", "backup", timeout=0.5)

    assert ask(router, stream=True) == BACKUP_TEXT
    hops = events("route.fallback")
    assert [(e["from"], e["to"]) for e in hops] == [
        ("openai/primary", "openai/middle"),
        ("openai/middle", "openai/backup"),
    ]
    assert hops[0]["error"] == "Timeout"
    assert "stream" in hops[1]["reason"]


def test_successful_calls_write_exactly_one_row_each(
    stub: StubProvider, make_router: RouterFactory, cost_log: Path
) -> None:
    stub.script("primary", server_error())
    stub.set_default("primary", ok(PRIMARY_TEXT))
    router = make_router()

    assert ask(router) == PRIMARY_TEXT
    assert ask(router, stream=True) == PRIMARY_TEXT
    assert aask(router) == PRIMARY_TEXT
    time.sleep(0.2)
    written = rows(cost_log)
    assert [row["model"] for row in written] == ["primary"] * 3
    assert [row["attempts"] for row in written] == [2, 1, 1]


def test_failed_call_is_not_billed(
    stub: StubProvider, make_router: RouterFactory, cost_log: Path
) -> None:
    stub.set_default("primary", server_error())
    stub.set_default("backup", rate_limited())
    router = make_router(num_retries=1)

    with pytest.raises(litellm.RateLimitError):
        ask(router, stream=True)
    assert stub.count("primary") == 2
    assert stub.count("backup") == 2
    assert rows(cost_log) == []


# ------------------------------------------------- is_retryable_error on real exceptions


def _raise_from_stub(stub: StubProvider, reply: Any, *, stream: bool = False) -> BaseException:
    stub.script("probe", reply)
    try:
        response = litellm.completion(
            model="openai/probe",
            api_base=stub.base_url,
            api_key="sk-test",
            messages=MESSAGES,
            stream=stream,
            timeout=0.5,
            max_retries=0,
        )
        if stream:
            for _ in response:
                pass
    except Exception as exc:  # noqa: BLE001 - the exception is what the test looks at
        return exc
    raise AssertionError(f"{reply.kind} did not raise")


@pytest.mark.parametrize(
    ("reply", "stream", "retryable"),
    [
        (rate_limited(), False, True),
        (rate_limited(retry_after=3), False, True),
        (server_error(500), False, True),
        (server_error(502), False, True),
        (server_error(503), False, True),
        (reset_connection(), False, True),
        (hang(5), False, True),
        (cut(after_chunks=2), True, True),
        (unauthorized(), False, False),
        (error(403), False, False),
        (bad_request(), False, False),
        (not_found(), False, False),
        (content_policy_violation(), False, False),
    ],
    ids=[
        "429",
        "429-retry-after",
        "500",
        "502",
        "503",
        "reset",
        "timeout",
        "mid-stream-cut",
        "401",
        "403",
        "400",
        "404",
        "content-policy",
    ],
)
def test_is_retryable_error_on_real_litellm_exceptions(
    stub: StubProvider, reply: Any, stream: bool, retryable: bool
) -> None:
    exc = _raise_from_stub(stub, reply, stream=stream)
    assert type(exc).__module__.startswith("litellm"), type(exc)
    assert is_retryable_error(exc) is retryable, type(exc)


def test_context_overflow_is_a_fit_decision_not_a_retry(stub: StubProvider) -> None:
    exc = _raise_from_stub(stub, context_length_exceeded())
    assert isinstance(exc, litellm.ContextWindowExceededError)
    assert classify(exc) is Action.FIT_CONTEXT
    assert is_retryable_error(exc) is False  # the same model will refuse it again


# ------------------------------------------------------------ the caller's exception


@pytest.mark.parametrize(
    ("reply", "stream", "exc_type"),
    [
        (server_error(), False, litellm.InternalServerError),
        (hang(5), False, litellm.Timeout),
        (cut(after_chunks=2), True, litellm.ServiceUnavailableError),
        (unauthorized(), False, litellm.AuthenticationError),
    ],
    ids=["500", "timeout", "cut-stream", "401"],
)
def test_final_exception_has_no_cause_loop(
    stub: StubProvider, make_router: RouterFactory, reply: Any, stream: bool, exc_type: type
) -> None:
    stub.set_default("primary", reply)
    router = make_router("primary", num_retries=0, timeout=0.5)

    with pytest.raises(exc_type) as caught:
        ask(router, stream)
    seen: list[BaseException] = []
    exc: BaseException | None = caught.value
    while exc is not None:  # code that walks __cause__ (loggers, error trackers) must end
        assert all(exc is not earlier for earlier in seen), "__cause__ chain loops"
        seen.append(exc)
        exc = exc.__cause__
    assert len(seen) <= 3
