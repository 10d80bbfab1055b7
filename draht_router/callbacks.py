"""The LiteLLM success callback that turns every successful call into one cost row.

Two writers can see the same call: the router, right after LiteLLM returns (so the row is in
the file before ``completion()`` returns), and LiteLLM's callback, which runs later on a thread
pool (or as an asyncio task) and also sees calls made with plain ``litellm`` or
``litellm.Router``. Whichever comes first *claims* the call id and writes; the other skips. The
claim and the write happen under one lock, so the loser never returns before the row exists.
"""

from __future__ import annotations

import collections
import os
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .budget import BudgetTracker
from .config import ModelRef
from .cost import CostEntry, default_log_path, now_timestamp
from .cost import safe_log_cost as _safe_log_cost
from .model_map import canonical_provider
from .pricing import estimate_cost

_PROCESS_SESSION_ID = uuid.uuid4().hex[:12]
_CLAIMS_KEPT = 10_000  # call ids remembered so a late callback does not log twice


def process_session_id() -> str:
    """The session id used when neither the call, the router nor DRAHT_SESSION_ID sets one."""
    return os.environ.get("DRAHT_SESSION_ID") or _PROCESS_SESSION_ID


@dataclass
class CallContext:
    """What the router knows about one attempt before it is sent."""

    role: str
    session_id: str
    log_path: Path
    ref: ModelRef | None = None
    task_type: str | None = None
    attempts: int | None = None
    fallback_from: str | None = None
    budget: BudgetTracker | None = None
    started: float = 0.0


class _Ledger:
    """Call ids in flight (with their context) and call ids already written."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.pending: dict[str, CallContext] = {}
        self.written: collections.OrderedDict[str, None] = collections.OrderedDict()
        # settings.cost_log of the newest router, for calls made outside any router
        self.cost_log_setting: str | None = None

    def expect(self, call_id: str, context: CallContext) -> None:
        with self.lock:
            self.pending[call_id] = context

    def forget(self, call_id: str) -> None:
        with self.lock:
            self.pending.pop(call_id, None)

    def write_once(self, call_id: str, build: Any) -> CostEntry | None:
        """Build and write the row for ``call_id`` unless it was already written."""
        with self.lock:
            if call_id in self.written:
                # Kept (not popped): LiteLLM may report one call through both its sync and
                # async hooks, and each later report must still find the claim.
                return None
            context = self.pending.pop(call_id, None)
            entry, log_path, budget = build(context)
            if entry is None:
                return None
            self.written[call_id] = None
            while len(self.written) > _CLAIMS_KEPT:
                self.written.popitem(last=False)
            if _safe_log_cost(entry, log_path) and budget is not None:
                budget.record(entry)
            return entry


LEDGER = _Ledger()


def _field(obj: Any, name: str) -> Any:
    """``obj[name]`` or ``obj.name``: LiteLLM hands usage over as objects or as dicts."""
    return obj.get(name) if isinstance(obj, dict) else getattr(obj, name, None)


def _usage_numbers(usage: Any) -> dict[str, int]:
    def num(obj: Any, name: str) -> int:
        value = _field(obj, name) if obj is not None else None
        return int(value) if isinstance(value, (int, float)) else 0

    details_in = _field(usage, "prompt_tokens_details") if usage is not None else None
    details_out = _field(usage, "completion_tokens_details") if usage is not None else None
    return {
        "input": num(usage, "prompt_tokens"),
        "output": num(usage, "completion_tokens"),
        "reasoning": num(details_out, "reasoning_tokens"),
        "cache_read": num(usage, "cache_read_input_tokens") or num(details_in, "cached_tokens"),
        "cache_write": num(usage, "cache_creation_input_tokens"),
    }


def build_entry(
    response: Any,
    context: CallContext,
    *,
    provider: str,
    model: str,
    litellm_cost: float | None,
    latency_ms: int | None,
) -> CostEntry:
    """The cost row for a successful call."""
    tokens = _usage_numbers(_field(response, "usage"))
    ref = context.ref
    own_prices = ref.params if ref is not None and ref.has_own_prices else None
    if own_prices is None and litellm_cost is not None:
        cost = float(litellm_cost)
    else:  # the entry's own prices win; a model LiteLLM does not price: our tables
        cost = estimate_cost(
            provider,
            model,
            tokens["input"],
            tokens["output"],
            tokens["reasoning"],
            cache_read_tokens=tokens["cache_read"],
            cache_write_tokens=tokens["cache_write"],
            input_cost_per_token=own_prices.get("input_cost_per_token") if own_prices else None,
            output_cost_per_token=own_prices.get("output_cost_per_token") if own_prices else None,
        )
    return CostEntry(
        timestamp=now_timestamp(),
        role=context.role,
        provider=provider,
        model=model,
        input_tokens=tokens["input"],
        output_tokens=tokens["output"],
        reasoning_tokens=tokens["reasoning"],
        estimated_cost_usd=round(cost, 10),
        session_id=context.session_id,
        task_type=context.task_type,
        cache_read_tokens=tokens["cache_read"] or None,
        cache_write_tokens=tokens["cache_write"] or None,
        latency_ms=latency_ms,
        attempts=context.attempts,
        fallback_from=context.fallback_from,
    )


def record_response(call_id: str, response: Any, context: CallContext) -> CostEntry | None:
    """Write the row for a call the router just completed (no-op if the callback won)."""

    def build(_pending: CallContext | None) -> tuple[CostEntry | None, Path, Any]:
        ref = context.ref
        provider = ref.provider if ref else _hidden(response, "custom_llm_provider") or "unknown"
        model = ref.model if ref else str(getattr(response, "model", "") or "unknown")
        latency = int((time.monotonic() - context.started) * 1000) if context.started else None
        entry = build_entry(
            response,
            context,
            provider=provider,
            model=model,
            litellm_cost=_hidden(response, "response_cost"),
            latency_ms=latency,
        )
        return entry, context.log_path, context.budget

    return LEDGER.write_once(call_id, build)


def _hidden(response: Any, key: str) -> Any:
    hidden = getattr(response, "_hidden_params", None)
    return hidden.get(key) if isinstance(hidden, dict) else None


def _split_model(model: str, provider: str | None) -> tuple[str, str]:
    if provider and model.startswith(provider + "/"):
        return provider, model[len(provider) + 1 :]
    if provider:
        return provider, model
    if "/" in model:
        head, tail = model.split("/", 1)
        return head, tail
    return "unknown", model


def _context_for_foreign_call(kwargs: dict[str, Any]) -> CallContext:
    """Context for a call that did not go through ModelRouter (plain litellm or Router)."""
    from .config import BUILT_IN_ROLES

    params = kwargs.get("litellm_params") or {}
    metadata = params.get("metadata") or kwargs.get("metadata") or {}
    group = metadata.get("model_group") if isinstance(metadata, dict) else None
    role = group if isinstance(group, str) and group in BUILT_IN_ROLES else "direct"
    session = metadata.get("session_id") if isinstance(metadata, dict) else None
    log_path = default_log_path(LEDGER.cost_log_setting)
    return CallContext(role=role, session_id=session or process_session_id(), log_path=log_path)


def _record_from_callback(
    kwargs: dict[str, Any], response_obj: Any, start_time: Any, end_time: Any
) -> None:
    call_id = kwargs.get("litellm_call_id")
    if not call_id:
        return
    response = kwargs.get("complete_streaming_response") or response_obj
    if response is None:
        return

    def build(pending: CallContext | None) -> tuple[CostEntry | None, Path, Any]:
        context = pending or _context_for_foreign_call(kwargs)
        if context.ref is not None:
            provider, model = context.ref.provider, context.ref.model
        else:
            params = kwargs.get("litellm_params") or {}
            provider_hint = kwargs.get("custom_llm_provider") or params.get("custom_llm_provider")
            provider, model = _split_model(str(kwargs.get("model") or ""), provider_hint)
        try:
            latency = int((end_time - start_time).total_seconds() * 1000)
        except (TypeError, AttributeError):
            latency = None
        cost = kwargs.get("response_cost")
        entry = build_entry(
            response,
            context,
            provider=canonical_provider(provider),
            model=model,
            litellm_cost=cost if isinstance(cost, (int, float)) else None,
            latency_ms=latency,
        )
        return entry, context.log_path, context.budget

    LEDGER.write_once(call_id, build)


_registered: Any = None
_register_lock = threading.Lock()


def register_cost_callback() -> Any:
    """Register the cost callback with LiteLLM once per process and return it."""
    global _registered
    with _register_lock:
        if _registered is not None:
            return _registered
        import litellm
        from litellm.integrations.custom_logger import CustomLogger

        class DrahtCostLogger(CustomLogger):
            """Writes one CostEntry row per successful LiteLLM call."""

            # LiteLLM calls these by keyword: the parameter names must stay exactly these.
            def log_success_event(self, kwargs, response_obj, start_time, end_time):
                _record_from_callback(kwargs, response_obj, start_time, end_time)

            async def async_log_success_event(self, kwargs, response_obj, start_time, end_time):
                _record_from_callback(kwargs, response_obj, start_time, end_time)

        _registered = DrahtCostLogger()
        litellm.callbacks.append(_registered)
        return _registered
