"""structlog configuration, in one place.

Quiet by default: warnings and up, to stderr. ``DRAHT_LOG_LEVEL`` (debug, info, warning, error)
and ``DRAHT_LOG_FORMAT=json`` change that. Events never carry API keys or message content: the
router only logs model names, roles, error classes and statuses, and :func:`redact` scrubs
anything that looks like a key from error text before it is logged.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import sys
import threading
from collections.abc import Callable, Iterator
from typing import Any

import structlog

_LEVELS = {"debug": 10, "info": 20, "warning": 30, "warn": 30, "error": 40, "critical": 50}
_pipeline: dict[str, Any] | None = None
_lock = threading.Lock()

# Secrets as providers print them: sk-..., sk-ant-..., AIza..., Bearer tokens, key=... pairs.
_SECRET = re.compile(
    r"(sk-[A-Za-z0-9_\-]{6,}|AIza[0-9A-Za-z_\-]{20,}|(?i:bearer)\s+[A-Za-z0-9._\-]{8,}"
    r"|(?i:api[_-]?key)[\"']?\s*[:=]\s*[\"']?[A-Za-z0-9._\-]{6,})"
)


def redact(text: str) -> str:
    """``text`` with anything shaped like an API key replaced by ``[redacted]``."""
    return _SECRET.sub("[redacted]", text)


def _drop_secrets(_logger: Any, _name: str, event: dict[str, Any]) -> dict[str, Any]:
    for key, value in list(event.items()):
        if key in ("api_key", "messages", "prompt", "content"):
            event[key] = "[redacted]"
        elif isinstance(value, str):
            event[key] = redact(value)
    return event


_listeners: list[Callable[[dict[str, Any]], None]] = []
_output_level = 30


def _notify_listeners(_logger: Any, _name: str, event: dict[str, Any]) -> dict[str, Any]:
    """Hand every event to in-process listeners, then drop it if the output level says so."""
    for listener in list(_listeners):
        listener(dict(event))
    if _LEVELS.get(str(event.get("level")), 20) < _output_level:
        raise structlog.DropEvent
    return event


def configure_logging(level: str | None = None, fmt: str | None = None) -> None:
    """(Re)build draht_router's structlog pipeline from arguments or the environment.

    The pipeline is private to draht_router (``structlog.wrap_logger``), so an application's
    own ``structlog.configure`` is left alone.
    """
    global _pipeline, _output_level
    level_name = (level or os.environ.get("DRAHT_LOG_LEVEL") or "warning").lower()
    fmt = (fmt or os.environ.get("DRAHT_LOG_FORMAT") or "console").lower()
    _output_level = _LEVELS.get(level_name, 30)
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if fmt == "json"
        else structlog.dev.ConsoleRenderer(colors=False)
    )
    # Listeners see info events even when the output shows only warnings.
    floor = min(_output_level, 20) if _listeners else _output_level
    _pipeline = {
        "processors": [
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            _drop_secrets,
            _notify_listeners,
            renderer,
        ],
        "wrapper_class": structlog.make_filtering_bound_logger(floor),
        "_config": (level, fmt),
    }


@contextlib.contextmanager
def capture_events(prefix: str = "route.") -> Iterator[list[dict[str, Any]]]:
    """Collect the events whose name starts with ``prefix`` (info and up) while active.

    What reaches stderr is unchanged. Used by the CLI to say why an attempt failed.
    """
    events: list[dict[str, Any]] = []

    def keep(event: dict[str, Any]) -> None:
        if str(event.get("event", "")).startswith(prefix):
            events.append(event)

    with _lock:
        config = _pipeline["_config"] if _pipeline else (None, None)
        _listeners.append(keep)
        configure_logging(*config)
    try:
        yield events
    finally:
        with _lock:
            _listeners.remove(keep)
            configure_logging(*config)


def get_logger(name: str = "draht_router") -> Any:
    """A structlog logger on draht_router's pipeline (stderr), built on first use."""
    if _pipeline is None:
        with _lock:
            if _pipeline is None:
                configure_logging()
    assert _pipeline is not None
    return structlog.wrap_logger(
        structlog.PrintLogger(file=sys.stderr),
        logger_name=name,
        processors=_pipeline["processors"],
        wrapper_class=_pipeline["wrapper_class"],
    )


def quiet_litellm() -> None:
    """Stop LiteLLM printing its own banners and debug hints on every error."""
    import litellm

    litellm.suppress_debug_info = True
    logging.getLogger("LiteLLM").setLevel(logging.CRITICAL)
    logging.getLogger("LiteLLM Router").setLevel(logging.CRITICAL)
    logging.getLogger("LiteLLM Proxy").setLevel(logging.CRITICAL)
