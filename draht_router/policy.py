"""What the router does with a failed attempt: retry the same model, fall over, or raise.

The decision is made from LiteLLM's exception type and the provider's HTTP status, never from
message text alone, so every provider LiteLLM maps is handled the same way.
"""

from __future__ import annotations

import email.utils
import enum
import random
import time
from typing import Any


class Action(enum.Enum):
    RETRY = "retry"  # transient: same model again (bounded), then fall over
    FALL_OVER = "fall_over"  # next model at once: a silent route or a broken stream
    FIT_CONTEXT = "fit_context"  # next model whose context window fits the request
    AUTH = "auth"  # 401/403: raise, unless fallback_on_auth_error
    RAISE = "raise"  # the caller's request is wrong or refused: no other model will help


class StreamFault(Exception):
    """Raised inside an attempt when a stream broke after it started (cut, stall, slow start).

    It never reaches the caller: the router converts it into the final LiteLLM error when no
    model is left.
    """

    def __init__(self, reason: str, cause: BaseException | None = None):
        super().__init__(reason)
        self.reason = reason
        self.cause = cause


def status_of(exc: BaseException) -> int | None:
    """The provider's HTTP status for an error, when there was one."""
    status = getattr(exc, "status_code", None)
    if isinstance(status, int):
        return status
    response = getattr(exc, "response", None)
    status = getattr(response, "status_code", None)
    return status if isinstance(status, int) else None


def _litellm_exceptions() -> Any:
    import litellm  # imported only once an error exists, i.e. after a call was made

    return litellm


def classify(exc: BaseException) -> Action:
    """The action the error policy takes for ``exc``."""
    if isinstance(exc, StreamFault):
        return Action.FALL_OVER
    llm = _litellm_exceptions()
    if isinstance(exc, llm.ContextWindowExceededError):
        return Action.FIT_CONTEXT
    if isinstance(exc, llm.ContentPolicyViolationError):
        return Action.RAISE
    if isinstance(exc, llm.Timeout):
        return Action.FALL_OVER  # retrying a silent route only multiplies the wait
    if isinstance(exc, llm.APIConnectionError):
        return Action.RETRY
    status = status_of(exc)
    if status in (401, 403) or isinstance(
        exc, (llm.AuthenticationError, llm.PermissionDeniedError)
    ):
        return Action.AUTH
    if status is not None:
        if status == 408 or status == 429 or status >= 500:
            return Action.RETRY
        return Action.RAISE
    if isinstance(exc, (llm.RateLimitError, llm.ServiceUnavailableError, llm.InternalServerError)):
        return Action.RETRY
    if isinstance(exc, (ConnectionError, TimeoutError)):
        return Action.RETRY
    return Action.RAISE


def is_retryable_error(exc: BaseException) -> bool:
    """True when another attempt (same model or the next) may succeed: 429, 5xx, timeouts,
    connection errors and broken streams. False for 400/401/403/404 and other client errors."""
    return classify(exc) in (Action.RETRY, Action.FALL_OVER)


def retry_after_seconds(exc: BaseException, now: float | None = None) -> float | None:
    """Seconds the provider asked us to wait (``Retry-After`` / ``retry-after-ms``), if any."""
    headers = getattr(exc, "litellm_response_headers", None)
    if headers is None:
        headers = getattr(getattr(exc, "response", None), "headers", None)
    if not headers:
        return None
    try:
        millis = headers.get("retry-after-ms")
        if millis is not None:
            return max(0.0, float(millis) / 1000.0)
        value = headers.get("retry-after")
    except (AttributeError, TypeError, ValueError):
        return None
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        parsed = email.utils.parsedate_to_datetime(value) if value else None
        if parsed is None:
            return None
        return max(0.0, parsed.timestamp() - (now if now is not None else time.time()))


def backoff_delay(attempt: int, base: float = 0.5, cap: float = 8.0) -> float:
    """Exponential backoff with full jitter for same-model retry number ``attempt`` (1-based)."""
    ceiling = min(cap, base * (2 ** (attempt - 1)))
    return random.uniform(ceiling / 2, ceiling)
