"""``draht-router demo``: role routing and fall-over against simulated providers.

Everything runs in this process: a loopback :class:`~draht_router.stub.StubProvider` plays
five ``openai/demo-*`` models, some of which misbehave (a 429, a stream cut mid-answer, a
503), and the router's fall-over answers from the backups. No API key is read, no request
leaves the machine, and costs go to a temporary log that is deleted afterwards.

It also turns the router's ``route.*`` events into the ``→ ... fell over to ...`` lines that
``draht-router run`` prints as well.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

__all__ = [
    "DEMO_TASKS",
    "DemoTask",
    "answer_pieces",
    "demo_config",
    "describe_route_events",
    "run_demo",
]

_STATUS_WORDS = {
    401: "unauthorized",
    403: "forbidden",
    408: "request timeout",
    429: "rate limited",
    500: "internal server error",
    502: "bad gateway",
    503: "service unavailable",
    504: "gateway timeout",
}


# --------------------------------------------------------------------------- route events


def _why(event: dict[str, Any]) -> str:
    status = event.get("status")
    # A broken stream carries the status of the error LiteLLM raised while reading it
    # (often a made-up 500); the router's own reason says what actually happened.
    if isinstance(status, int) and event.get("error") != "StreamFault":
        return f"{status} {_STATUS_WORDS.get(status, event.get('error') or 'error')}"
    reason = str(event.get("reason") or event.get("error") or "error")
    for key in ("from", "model"):  # "stream from openai/x broke ..." says the model twice
        model = event.get(key)
        if model:
            reason = reason.replace(f" from {model}", "")
    if event.get("error") == "StreamFault" and "broke" in reason:
        reason += " (partial answer discarded)"  # buffered: none of it reached the caller
    return reason


def describe_route_events(events: list[dict[str, Any]]) -> list[str]:
    """One ``→ ...`` line per retry, fall-over, cooldown skip or budget downgrade."""
    lines: list[str] = []
    for event in events:
        name = event.get("event")
        if name == "route.fallback":
            lines.append(f"→ {event.get('from')} failed: {_why(event)}; "
                         f"fell over to {event.get('to')}")
        elif name == "route.retry":
            lines.append(f"→ {event.get('model')} failed: {_why(event)}; "
                         f"retrying in {event.get('wait_s')}s")
        elif name == "route.cooldown_skip":
            lines.append(f"→ {event.get('model')} skipped: cooling down after repeated failures")
        elif name == "route.budget_downgrade":
            lines.append(f"→ budget reached; downgraded to {event.get('model')}")
    return lines


# --------------------------------------------------------------------------- the demo


@dataclass(frozen=True)
class DemoTask:
    """One demo request: the task (type or free text), the prompt, and how the simulated
    primary behaves (``fault``: None answers at once)."""

    task: str
    prompt: str
    role: str
    answer: str
    fault: str | None = None  # "rate_limited" | "cut" | "server_error"
    prompt_tokens: int = 60


DEMO_TASKS: tuple[DemoTask, ...] = (
    DemoTask(
        task="design a plugin system",
        prompt="Design a plugin system for our CLI.",
        role="architect",
        fault="rate_limited",
        prompt_tokens=180,
        answer=(
            "Define a small Plugin protocol (name, api_version, register(registry)). Discover "
            "plugins through an entry-point group, load each one inside its own try block so "
            "a broken plugin cannot stop start-up, and let plugins add commands and hooks to "
            "a registry the core owns. Check api_version at load time so old plugins fail "
            "loudly instead of subtly."
        ),
    ),
    DemoTask(
        task="coding",
        prompt="Add retries with exponential backoff to fetch_json().",
        role="implement",
        fault="cut",
        prompt_tokens=240,
        answer=(
            "def fetch_json(url: str, attempts: int = 3) -> dict:\n"
            "    for attempt in range(attempts):\n"
            "        try:\n"
            "            return http_get(url).json()\n"
            "        except TransientError:\n"
            "            if attempt == attempts - 1:\n"
            "                raise\n"
            "            time.sleep(0.5 * 2 ** attempt)"
        ),
    ),
    DemoTask(
        task="pr-review",
        prompt="Review this pull request: add a user cache.",
        role="review",
        fault="server_error",
        prompt_tokens=900,
        answer=(
            "Two findings. The cache is never invalidated when a user is deleted, so reads "
            "can return stale users; evict on delete. parse_limit() accepts negative numbers; "
            "reject them with a 400. The tests cover only the happy path: add one for an "
            "expired entry."
        ),
    ),
    DemoTask(
        task="explain this error: KeyError: 'user_id'",
        prompt="Explain this error: KeyError: 'user_id'",
        role="quick",
        prompt_tokens=40,
        answer=(
            "The dict you index has no 'user_id' key: the request body or row you read does "
            "not contain it. Use data.get('user_id') and handle None, or fix the code that "
            "builds the dict."
        ),
    ),
    DemoTask(
        task="scaffold a CRUD API for notes",
        prompt="Scaffold a CRUD API for notes.",
        role="boilerplate",
        prompt_tokens=50,
        answer=(
            "Created GET /notes, POST /notes, GET /notes/{id}, PUT /notes/{id} and "
            "DELETE /notes/{id}; a Note model (id, title, body, created_at); and an "
            "in-memory repository behind a small interface, ready to swap for a database."
        ),
    ),
)

# USD per token (input, output) by role: the demo's own prices, so costs are deterministic.
_DEMO_PRICES: dict[str, tuple[float, float]] = {
    "architect": (15e-6, 75e-6),
    "implement": (3e-6, 15e-6),
    "review": (3e-6, 15e-6),
    "quick": (0.3e-6, 2.5e-6),
    "boilerplate": (0.28e-6, 0.42e-6),
    "docs": (1.25e-6, 10e-6),
}
_DEMO_KEY = "demo-local-stub-no-real-key"  # the stub accepts anything; no real key is used


def _entry(base_url: str, role: str, tier: str) -> dict[str, Any]:
    price_in, price_out = _DEMO_PRICES[role]
    return {
        "model": f"openai/demo-{role}-{tier}",
        "api_base": base_url,
        "api_key": _DEMO_KEY,
        "input_cost_per_token": price_in,
        "output_cost_per_token": price_out,
    }


def demo_config(base_url: str, cost_log: str) -> dict[str, Any]:
    """A config whose every role is a primary and a backup on the stub at ``base_url``."""
    roles = {
        role: {
            "primary": _entry(base_url, role, "primary"),
            "fallbacks": [_entry(base_url, role, "backup")],
        }
        for role in _DEMO_PRICES
    }
    settings = {
        "num_retries": 0,  # fall over at once: the demo is about the chain, not patience
        "retry_after_max": 1.0,
        "timeout": 10.0,
        "stream_fallback": "buffer",
        "cost_log": cost_log,
    }
    return {"roles": roles, "settings": settings}


def _script(stub: Any, task: DemoTask) -> None:
    from .stub import cut, ok, rate_limited, server_error

    primary, backup = f"demo-{task.role}-primary", f"demo-{task.role}-backup"
    answer = ok(task.answer, prompt_tokens=task.prompt_tokens)
    if task.fault is None:
        stub.script(primary, answer)
        return
    failure = {
        "rate_limited": lambda: rate_limited(retry_after=0),
        "cut": lambda: cut(after_chunks=6, text=task.answer),
        "server_error": lambda: server_error(503),
    }[task.fault]()
    stub.script(primary, failure)
    stub.script(backup, answer)


def answer_pieces(stream: Any) -> Iterator[str]:
    """The text pieces of a completion stream, in order (usage-only chunks skipped)."""
    for chunk in stream:
        choices = getattr(chunk, "choices", None) or []
        if choices:
            delta = getattr(choices[0], "delta", None)
            piece = getattr(delta, "content", None)
            if piece:
                yield piece


def run_demo(
    out: TextIO | None = None,
    *,
    chunk_delay: float = 0.0,
    print_cost: Callable[[Path], None] | None = None,
) -> int:
    """Run the demo, writing to ``out`` (default stdout); returns the exit code (0).

    ``chunk_delay`` seconds pass between streamed pieces (so a terminal shows the stream);
    ``print_cost(log_path)`` prints the cost table (default: the plain text of
    :func:`~draht_router.report.cost_text` by model).
    """
    out = out or sys.stdout

    def say(text: str = "") -> None:
        out.write(text + "\n")
        out.flush()

    say("draht-router demo")
    say("The providers below are LOCAL SIMULATIONS: a stub server on 127.0.0.1 plays the")
    say("openai/demo-* models. No API key is used and nothing is sent over the network.")
    say("Costs go to a temporary log (deleted afterwards); your own cost log is not touched.")
    say()
    started = time.monotonic()
    say("Loading LiteLLM ...")

    with tempfile.TemporaryDirectory(prefix="draht-demo-") as tmp:
        log_path = Path(tmp) / "demo-cost-log.jsonl"
        saved_log_env = os.environ.get("DRAHT_COST_LOG")
        # The router prefers $DRAHT_COST_LOG over the config; point both at the temp log.
        os.environ["DRAHT_COST_LOG"] = str(log_path)
        try:
            _run_tasks(say, out, log_path, chunk_delay, started)
        finally:
            if saved_log_env is None:
                os.environ.pop("DRAHT_COST_LOG", None)
            else:
                os.environ["DRAHT_COST_LOG"] = saved_log_env
        say()
        say("What the demo cost (temporary log, by model; demo prices):")
        if print_cost is not None:
            print_cost(log_path)
        else:
            from .report import cost_data, cost_table, format_table

            headers, rows, total, _before, after = cost_table(cost_data(log_path, by="model"))
            say(format_table(headers, rows, right=(1, 2, 3, 4), total=total))
            for line in after:
                say(line)
    say()
    say("Next: `draht-router show` for your own roles, `draht-router test` to check your keys.")
    return 0


def _run_tasks(
    say: Callable[[str], None], out: TextIO, log_path: Path, chunk_delay: float, started: float
) -> None:
    from .log import capture_events
    from .roles import explain_role
    from .router import ModelRouter
    from .stub import StubProvider

    with StubProvider() as stub:
        router = ModelRouter(demo_config(stub.base_url, str(log_path)), session_id="demo")
        say(f"LiteLLM ready ({time.monotonic() - started:.1f} s). Stub at {stub.base_url}")
        for number, task in enumerate(DEMO_TASKS, 1):
            _script(stub, task)
            choice = explain_role(task.task, router.config.task_types, roles=router.roles)
            say()
            say(f"[{number}/{len(DEMO_TASKS)}] task: {task.task}")
            say(f"    role: {choice.role} ({choice.reason})")
            with capture_events() as events:
                stream = router.completion(
                    role=choice.role,
                    task_type=task.task,
                    messages=[{"role": "user", "content": task.prompt}],
                    stream=True,
                )
            routing = stream.routing
            lines = describe_route_events(events)
            if not lines and routing.get("fallback_from"):
                lines = [f"→ {routing['fallback_from']} failed; fell over to {routing['model']}"]
            for line in lines:
                say(f"    {line}")
            say(f"    answer from {routing['model']}:")
            for piece in answer_pieces(stream):
                out.write(piece)
                out.flush()
                if chunk_delay:
                    time.sleep(chunk_delay)
            say()
