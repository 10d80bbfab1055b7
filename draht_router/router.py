"""ModelRouter: a role's ordered chain of LiteLLM models, walked under the project's own
error policy, with one cost row per successful call.

Data flows one way: config -> ModelRouter -> litellm.completion / acompletion (one attempt per
model) -> cost callback -> cost log. LiteLLM's ``Router`` is not used for the attempts because
its fallbacks fire on every error (401 and 400 included) and leak partial streams; the same
chains are available as a ``litellm.Router`` through :meth:`ModelRouter.litellm_router`.
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, NoReturn, TypeVar

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

import litellm  # noqa: E402 - must follow the cost-map default above

from . import model_map  # noqa: E402
from .budget import BudgetTracker  # noqa: E402
from .callbacks import (  # noqa: E402
    LEDGER,
    CallContext,
    process_session_id,
    record_response,
    register_cost_callback,
)
from .circuit import CircuitBreaker  # noqa: E402
from .config import (  # noqa: E402
    ModelRef,
    RouterConfig,
    Settings,
    config_from_dict,
    load_config,
    read_config_file,  # noqa: E402
)
from .cost import CostEntry, default_log_path, now_timestamp, safe_log_cost  # noqa: E402
from .errors import BudgetExceededError, UnknownRoleError  # noqa: E402
from .log import get_logger, quiet_litellm  # noqa: E402
from .policy import (  # noqa: E402
    Action,
    StreamFault,
    backoff_delay,
    classify,
    retry_after_seconds,
    status_of,  # noqa: E402
)
from .pricing import estimate_cost  # noqa: E402
from .roles import explain_role  # noqa: E402
from .streaming import (  # noqa: E402  # noqa: E402
    RoutedStream,
    StreamDeadlines,
    aiterate_with_deadlines,
    is_usage_only,
    iterate_with_deadlines,
)

T = TypeVar("T")

# Router settings a caller may override per call as keyword arguments.
CALL_OPTIONS = (
    "num_retries",
    "retry_after_max",
    "first_token_timeout",
    "stream_idle_timeout",
    "cooldown",
    "cooldown_failures",
    "fallback_on_auth_error",
    "stream_fallback",
)


def _model_key(ref: ModelRef) -> str:
    base = ref.params.get("api_base") or ref.params.get("base_url") or ""
    return f"{ref}@{base}" if base else str(ref)


def _coerce_config(config: RouterConfig | Mapping[str, Any] | str | Path | None) -> RouterConfig:
    if config is None:
        return load_config()
    if isinstance(config, RouterConfig):
        return config
    if isinstance(config, (str, Path)):
        return config_from_dict(read_config_file(Path(config)), source=str(config))
    return config_from_dict(dict(config))


@dataclass(frozen=True)
class _Target:
    role: str | None  # None: a direct call to ``model``, no chain
    task_type: str | None
    reason: str


class _ChainRun:
    """One walk down a role's chain: which model next, how long to wait, when to give up."""

    def __init__(
        self,
        router: ModelRouter,
        role: str,
        chain: list[ModelRef],
        settings: Settings,
        messages: Any,
    ):
        self.router = router
        self.role = role
        self.settings = settings
        self.messages = messages
        circuit = router.circuit
        healthy = [ref for ref in chain if not circuit.is_open(_model_key(ref))]
        for skipped in (ref for ref in chain if ref not in healthy):
            get_logger().info("route.cooldown_skip", role=role, model=str(skipped))
        self.chain = healthy or list(chain)  # all cooling down: still try, in order
        self.index = 0
        self.tries_here = 0
        self.attempts = 0
        self.wait = 0.0
        self.fallback_from: str | None = None
        self._prompt_tokens: int | None = None

    @property
    def current(self) -> ModelRef:
        return self.chain[self.index]

    def take_wait(self) -> float:
        wait, self.wait = self.wait, 0.0
        return wait

    def started(self) -> None:
        self.attempts += 1
        self.tries_here += 1

    def succeeded(self) -> None:
        self.router.circuit.record_success(_model_key(self.current))

    def failed(self, exc: BaseException) -> None:
        """Decide what follows a failed attempt; raises when the call is over."""
        ref, settings, log = self.current, self.settings, get_logger()
        action = classify(exc)
        status = status_of(exc)
        if action is Action.RAISE or (
            action is Action.AUTH and not settings.fallback_on_auth_error
        ):
            log.info("route.error", role=self.role, model=str(ref), error=type(exc).__name__,
                     status=status)
            _raise_final(exc, ref, self.role)
        if action is Action.FIT_CONTEXT:
            self._fall_over(exc, "context_length_exceeded", fits=self._fits_context)
            return
        key = _model_key(ref)
        opened = self.router.circuit.record_failure(
            key, threshold=settings.cooldown_failures, cooldown=settings.cooldown
        )
        delay = retry_after_seconds(exc)
        if action is Action.RETRY and not opened:
            if delay is not None and delay > settings.retry_after_max:
                self.router.circuit.open_for(key, delay)
                self._fall_over(exc, f"retry-after {delay:g}s exceeds retry_after_max")
                return
            if self.tries_here <= settings.num_retries:
                self.wait = delay if delay is not None else backoff_delay(self.tries_here)
                log.info("route.retry", role=self.role, model=str(ref),
                         error=type(exc).__name__, status=status, wait_s=round(self.wait, 3))
                return
        if delay:  # leaving this model: not back before the provider's Retry-After
            self.router.circuit.open_for(key, delay)
        reason = exc.reason if isinstance(exc, StreamFault) else type(exc).__name__
        if opened:
            reason += f"; skipped for {settings.cooldown:g}s after repeated failures"
        self._fall_over(exc, reason)

    def _fits_context(self, ref: ModelRef) -> bool:
        window = model_map.context_window(ref.provider, ref.model)
        if window is None:
            return True
        if self._prompt_tokens is None:
            try:
                self._prompt_tokens = litellm.token_counter(
                    model=self.current.litellm_model, messages=self.messages or []
                )
            except Exception:  # noqa: BLE001 - unknown tokenizer: let the next model decide
                self._prompt_tokens = 0
        return window > self._prompt_tokens

    def _fall_over(
        self, exc: BaseException, reason: str, fits: Callable[[ModelRef], bool] | None = None
    ) -> None:
        failed = self.current
        nxt = self.index + 1
        while nxt < len(self.chain) and fits is not None and not fits(self.chain[nxt]):
            nxt += 1
        status = status_of(exc.cause if isinstance(exc, StreamFault) and exc.cause else exc)
        if nxt >= len(self.chain):
            get_logger().warning(
                "route.exhausted", role=self.role, model=str(failed), attempts=self.attempts,
                error=type(exc).__name__, status=status, reason=reason,
            )
            _raise_final(exc, failed, self.role)
        self.index, self.tries_here = nxt, 0
        self.fallback_from = self.fallback_from or str(failed)
        get_logger().info(
            "route.fallback", role=self.role, **{"from": str(failed)}, to=str(self.current),
            error=type(exc).__name__, status=status, reason=reason,
        )


class _LiveTap:
    """What a live stream has passed on so far; bills it once the stream has ended."""

    def __init__(self, call_id: str, context: CallContext, ref: ModelRef, kwargs: dict[str, Any]):
        self.call_id, self.context, self.ref = call_id, context, ref
        self.messages = kwargs.get("messages")
        self.usage_wanted = _caller_wants_usage(kwargs)
        self.seen: list[Any] = []

    def take(self, chunk: Any) -> bool:
        """Record ``chunk``; True when the caller should see it."""
        self.seen.append(chunk)
        return self.usage_wanted or not is_usage_only(chunk)

    def broke(self, fault: StreamFault) -> NoReturn:
        LEDGER.forget(self.call_id)  # a broken answer is not billed
        _raise_final(fault, self.ref, self.context.role)

    def finished(self) -> None:
        record_response(self.call_id, _assemble(self.seen, self.messages), self.context)


@dataclass(frozen=True)
class _Plan:
    """A call's target, session, effective settings and chain walk (None: a direct call),
    and where its cost row goes."""

    target: _Target
    session: str
    settings: Settings
    run: _ChainRun | None
    log_path: Path
    budget: BudgetTracker | None


def _raise_final(exc: BaseException, ref: ModelRef, role: str) -> NoReturn:
    """Raise the caller's exception for ``exc`` without making its ``__cause__`` chain loop
    (``raise exc from exc``, or a fault's own cause raised from the fault, would)."""
    final = _final_error(exc, ref, role)
    if final is exc:
        raise exc
    if isinstance(exc, StreamFault) and final is exc.cause:
        raise final from None  # its message already names the fault
    raise final from exc


def _permission_denied(exc: BaseException) -> BaseException:
    """LiteLLM maps an OpenAI-compatible 403 to a bare ``APIError``; give callers the
    ``PermissionDeniedError`` LiteLLM raises for the providers it maps fully."""
    if not isinstance(exc, litellm.APIError) or status_of(exc) != 403:
        return exc
    import httpx

    response = getattr(exc, "response", None)
    if not isinstance(response, httpx.Response):
        response = httpx.Response(403, request=httpx.Request("POST", "https://provider.invalid"))
    message = str(getattr(exc, "message", exc)).removeprefix("litellm.APIError: ")
    denied = litellm.PermissionDeniedError(
        message=message.removeprefix("APIError: "),
        llm_provider=getattr(exc, "llm_provider", None),
        model=getattr(exc, "model", None),
        response=response,
        litellm_debug_info=getattr(exc, "litellm_debug_info", None),
    )
    denied.litellm_response_headers = getattr(exc, "litellm_response_headers", None)
    return denied


def _final_error(exc: BaseException, ref: ModelRef, role: str) -> BaseException:
    """The exception the caller sees when no model is left: LiteLLM's own type."""
    if not isinstance(exc, StreamFault):
        return _permission_denied(exc)
    if isinstance(exc.cause, Exception) and exc.cause.__class__.__module__.startswith("litellm"):
        cause = exc.cause
        try:
            cause.message = f"{exc.reason}; no model left in role '{role}'"  # type: ignore[attr-defined]
        except AttributeError:
            pass
        return cause
    message = f"{exc.reason}; no model left in role '{role}' to finish the answer"
    if exc.cause is None:
        return litellm.Timeout(message=message, model=ref.model, llm_provider=ref.provider)
    return litellm.APIConnectionError(message=message, llm_provider=ref.provider, model=ref.model)


class ModelRouter:
    """Routes LiteLLM calls by role: each role is an ordered chain of models."""

    def __init__(
        self,
        config: RouterConfig | Mapping[str, Any] | str | Path | None = None,
        session_id: str | None = None,
    ):
        self.config = _coerce_config(config)
        self.session_id = session_id
        self.circuit = CircuitBreaker()
        self._budgets: dict[Path, BudgetTracker] = {}
        quiet_litellm()
        register_cost_callback()
        LEDGER.cost_log_setting = self.config.settings.cost_log

    @property
    def log_path(self) -> Path:
        """Where this router's cost rows go. Read per call, so ``DRAHT_COST_LOG`` and the
        working directory apply as they are when the call is made."""
        return default_log_path(self.config.settings.cost_log)

    @property
    def budget(self) -> BudgetTracker | None:
        """Running spend totals of the current cost log; None when no budget is configured."""
        return self._budget_for(self.log_path)

    def _budget_for(self, path: Path) -> BudgetTracker | None:
        if not self.config.settings.budget:
            return None
        tracker = self._budgets.get(path)
        if tracker is None:
            tracker = self._budgets.setdefault(path, BudgetTracker(path))
        return tracker

    # ----------------------------------------------------------------- resolution
    @property
    def roles(self) -> list[str]:
        return list(self.config.roles)

    def resolve(self, role: str) -> ModelRef:
        """The primary model of ``role``."""
        return self.config.role(role).primary

    def resolve_with_fallbacks(self, role: str) -> list[ModelRef]:
        """``role``'s whole chain, primary first."""
        return self.config.role(role).chain

    def role_for(self, task: str) -> str:
        """The role a task type or free-text description maps to under this config."""
        return self._explain(task).role

    def _explain(self, task: str) -> Any:
        return explain_role(task, self.config.task_types, roles=self.config.roles)

    def _target(self, model: str | None, role: str | None, task_type: str | None) -> _Target:
        if role is not None:
            self.config.role(role)  # raises UnknownRoleError listing the roles
            return _Target(role, task_type, f"role={role}")
        if task_type is not None:
            choice = self._explain(task_type)
            return _Target(choice.role, task_type, choice.reason)
        if model is not None and model in self.config.roles:
            return _Target(model, None, f"model names role {model}")
        if not model:
            raise ValueError("completion() needs model=, role= or task_type=")
        return _Target(None, None, "direct model call")

    # ------------------------------------------------------------------- options
    def _settings_for_call(self, kwargs: dict[str, Any]) -> Settings:
        overrides = {name: kwargs.pop(name) for name in CALL_OPTIONS if name in kwargs}
        if "timeout" in kwargs and kwargs["timeout"] is not None:
            overrides["timeout"] = float(kwargs.pop("timeout"))
        return replace(self.config.settings, **overrides) if overrides else self.config.settings

    def _session(self, session_id: str | None) -> str:
        return session_id or self.session_id or process_session_id()

    def _chain_for(
        self, role: str, session: str, settings: Settings, budget: BudgetTracker | None
    ) -> list[ModelRef]:
        chain = self.resolve_with_fallbacks(role)
        if budget is None or settings.budget is None:
            return chain
        try:
            budget.check(role, session, settings.budget)
        except BudgetExceededError as exc:
            if settings.on_budget != "downgrade":
                raise
            cheapest = min(chain, key=_unit_price)
            get_logger().warning("route.budget_downgrade", role=role, model=str(cheapest),
                                 reason=str(exc))
            return [cheapest]
        return chain

    def _plan(
        self,
        model: str | None,
        messages: list[dict[str, Any]] | None,
        role: str | None,
        task_type: str | None,
        session_id: str | None,
        kwargs: dict[str, Any],
    ) -> _Plan:
        """Where a call goes; pops the router's own options out of ``kwargs``."""
        if messages is not None:
            kwargs["messages"] = messages
        target = self._target(model, role, task_type)
        session = self._session(session_id)
        log_path = self.log_path  # resolved once per call: env and cwd as they are now
        budget = self._budget_for(log_path)
        if target.role is None:
            settings = self.config.settings
            if budget is not None and settings.budget is not None:
                budget.check("direct", session, settings.budget)
            return _Plan(target, session, settings, None, log_path, budget)
        settings = self._settings_for_call(kwargs)
        chain = self._chain_for(target.role, session, settings, budget)
        get_logger().debug("route.selected", role=target.role, task_type=target.task_type,
                           chain=[str(r) for r in chain], reason=target.reason)
        run = _ChainRun(self, target.role, chain, settings, kwargs.get("messages"))
        return _Plan(target, session, settings, run, log_path, budget)

    def _begin_attempt(self, plan: _Plan) -> CallContext:
        """Count the next attempt of ``plan`` and describe it for its cost row."""
        run = plan.run
        assert run is not None and plan.target.role is not None
        run.started()
        return CallContext(
            role=plan.target.role,
            session_id=plan.session,
            log_path=plan.log_path,
            ref=run.current,
            task_type=plan.target.task_type,
            attempts=run.attempts,
            fallback_from=run.fallback_from,
            budget=plan.budget,
            started=time.monotonic(),
        )

    def _call_kwargs(
        self, ref: ModelRef, kwargs: dict[str, Any], settings: Settings, call_id: str
    ) -> dict[str, Any]:
        call = dict(kwargs)
        call.update(ref.call_params())  # the entry says how to reach its model
        call["timeout"] = settings.timeout
        call["max_retries"] = 0  # retries are the router's job, not the SDK's
        call["litellm_call_id"] = call_id
        if call.get("stream"):
            options = dict(call.get("stream_options") or {})
            options["include_usage"] = True  # the cost row needs the usage chunk
            call["stream_options"] = options
        return call

    # ---------------------------------------------------------------- completion
    def completion(
        self,
        model: str | None = None,
        messages: list[dict[str, Any]] | None = None,
        *,
        role: str | None = None,
        task_type: str | None = None,
        session_id: str | None = None,
        **kwargs: Any,
    ) -> Any:
        """``litellm.completion`` routed by role; returns LiteLLM's own response objects."""
        plan = self._plan(model, messages, role, task_type, session_id, kwargs)
        if plan.run is None:
            return self._direct(model or "", kwargs, plan)
        run = plan.run
        while True:
            wait = run.take_wait()
            if wait:
                time.sleep(wait)
            context = self._begin_attempt(plan)
            try:
                result = self._attempt(run.current, kwargs, plan.settings, context)
            except Exception as exc:  # noqa: BLE001 - the policy decides, and re-raises
                run.failed(exc)
                continue
            run.succeeded()
            return result

    def _attempt(
        self,
        ref: ModelRef,
        kwargs: dict[str, Any],
        settings: Settings,
        context: CallContext,
    ) -> Any:
        call_id = uuid.uuid4().hex
        LEDGER.expect(call_id, context)
        try:
            response = litellm.completion(**self._call_kwargs(ref, kwargs, settings, call_id))
            if not kwargs.get("stream"):
                _mark(response, context, ref)
                _mark_cost(response, record_response(call_id, response, context))
                return response
            deadlines = StreamDeadlines(settings.first_token_timeout, settings.stream_idle_timeout)
            chunks = iterate_with_deadlines(response, deadlines, str(ref))
            if settings.stream_fallback == "live":
                first = next(chunks, None)
                return self._live_stream(first, chunks, call_id, context, ref, kwargs)
            collected = list(chunks)
        except BaseException:
            LEDGER.forget(call_id)
            raise
        return self._replay(collected, call_id, context, ref, kwargs)

    def _replay(
        self,
        collected: list[Any],
        call_id: str,
        context: CallContext,
        ref: ModelRef,
        kwargs: dict[str, Any],
    ) -> RoutedStream:
        record_response(call_id, _assemble(collected, kwargs.get("messages")), context)
        wanted = _visible_chunks(collected, kwargs)
        return RoutedStream(iter(wanted), model=ref.model, provider=ref.provider,
                            routing=_routing(context, ref))

    def _live_stream(
        self,
        first: Any,
        rest: Any,
        call_id: str,
        context: CallContext,
        ref: ModelRef,
        kwargs: dict[str, Any],
    ) -> RoutedStream:
        tap = _LiveTap(call_id, context, ref, kwargs)

        def flow() -> Any:
            try:
                if first is not None and tap.take(first):
                    yield first
                for chunk in rest:
                    if tap.take(chunk):
                        yield chunk
            except StreamFault as fault:
                tap.broke(fault)
            tap.finished()

        return RoutedStream(flow(), model=ref.model, provider=ref.provider,
                            routing=_routing(context, ref))

    # --------------------------------------------------------------- acompletion
    async def acompletion(
        self,
        model: str | None = None,
        messages: list[dict[str, Any]] | None = None,
        *,
        role: str | None = None,
        task_type: str | None = None,
        session_id: str | None = None,
        **kwargs: Any,
    ) -> Any:
        """``litellm.acompletion`` routed by role; returns LiteLLM's own response objects."""
        plan = self._plan(model, messages, role, task_type, session_id, kwargs)
        if plan.run is None:
            return await self._adirect(model or "", kwargs, plan)
        run = plan.run
        while True:
            wait = run.take_wait()
            if wait:
                await asyncio.sleep(wait)
            context = self._begin_attempt(plan)
            try:
                result = await self._aattempt(run.current, kwargs, plan.settings, context)
            except Exception as exc:  # noqa: BLE001 - the policy decides, and re-raises
                run.failed(exc)
                continue
            run.succeeded()
            return result

    async def _aattempt(
        self, ref: ModelRef, kwargs: dict[str, Any], settings: Settings, context: CallContext
    ) -> Any:
        call_id = uuid.uuid4().hex
        LEDGER.expect(call_id, context)
        try:
            response = await litellm.acompletion(
                **self._call_kwargs(ref, kwargs, settings, call_id)
            )
            if not kwargs.get("stream"):
                _mark(response, context, ref)
                _mark_cost(response, record_response(call_id, response, context))
                return response
            deadlines = StreamDeadlines(settings.first_token_timeout, settings.stream_idle_timeout)
            chunks = aiterate_with_deadlines(response, deadlines, str(ref))
            if settings.stream_fallback == "live":
                first = await anext(chunks, None)
                return self._alive_stream(first, chunks, call_id, context, ref, kwargs)
            collected = [chunk async for chunk in chunks]
        except BaseException:
            LEDGER.forget(call_id)
            raise
        return self._replay(collected, call_id, context, ref, kwargs)

    def _alive_stream(
        self,
        first: Any,
        rest: Any,
        call_id: str,
        context: CallContext,
        ref: ModelRef,
        kwargs: dict[str, Any],
    ) -> RoutedStream:
        tap = _LiveTap(call_id, context, ref, kwargs)

        async def flow() -> Any:
            try:
                if first is not None and tap.take(first):
                    yield first
                async for chunk in rest:
                    if tap.take(chunk):
                        yield chunk
            except StreamFault as fault:
                tap.broke(fault)
            tap.finished()

        return RoutedStream(flow(), model=ref.model, provider=ref.provider,
                            routing=_routing(context, ref))

    # -------------------------------------------------------------- direct calls
    @staticmethod
    def _direct_context(plan: _Plan) -> CallContext:
        return CallContext(role="direct", session_id=plan.session, log_path=plan.log_path,
                           budget=plan.budget, started=time.monotonic())

    def _direct(self, model: str, kwargs: dict[str, Any], plan: _Plan) -> Any:
        """A plain ``litellm.completion`` (no chain), still logged with role ``direct``."""
        call_id = uuid.uuid4().hex
        context = self._direct_context(plan)
        LEDGER.expect(call_id, context)
        try:
            response = litellm.completion(model=model, litellm_call_id=call_id, **kwargs)
        except BaseException:
            LEDGER.forget(call_id)
            raise
        if not kwargs.get("stream"):
            record_response(call_id, response, context)
            return response
        ref = context.ref = _stream_ref(response, model)
        chunks = iterate_with_deadlines(response, StreamDeadlines(), str(ref))
        first = next(chunks, None)
        return self._live_stream(first, chunks, call_id, context, ref, kwargs)

    async def _adirect(self, model: str, kwargs: dict[str, Any], plan: _Plan) -> Any:
        call_id = uuid.uuid4().hex
        context = self._direct_context(plan)
        LEDGER.expect(call_id, context)
        try:
            response = await litellm.acompletion(model=model, litellm_call_id=call_id, **kwargs)
        except BaseException:
            LEDGER.forget(call_id)
            raise
        if not kwargs.get("stream"):
            record_response(call_id, response, context)
            return response
        ref = context.ref = _stream_ref(response, model)
        chunks = aiterate_with_deadlines(response, StreamDeadlines(), str(ref))
        first = await anext(chunks, None)
        return self._alive_stream(first, chunks, call_id, context, ref, kwargs)

    # ------------------------------------------------------ callers' own requests
    def route(self, role: str, fn: Callable[[ModelRef], T], *, messages: Any = None) -> T:
        """Run ``fn(model_ref)`` down ``role``'s chain under the same error policy.

        For callers that make their own requests; record their cost with :meth:`track_cost`.
        """
        settings = self.config.settings
        run = _ChainRun(self, role, self.resolve_with_fallbacks(role), settings, messages)
        while True:
            wait = run.take_wait()
            if wait:
                time.sleep(wait)
            run.started()
            try:
                result = fn(run.current)
            except Exception as exc:  # noqa: BLE001 - the policy decides, and re-raises
                run.failed(exc)
                continue
            run.succeeded()
            return result

    def track_cost(
        self,
        role: str,
        provider: str,
        model: str,
        input_tokens: int,
        output_tokens: int,
        reasoning_tokens: int = 0,
        *,
        session_id: str | None = None,
        cost_usd: float | None = None,
    ) -> CostEntry:
        """Log a cost row for a request the caller made itself (see :meth:`route`)."""
        cost = cost_usd if cost_usd is not None else estimate_cost(
            provider, model, input_tokens, output_tokens, reasoning_tokens
        )
        entry = CostEntry(
            timestamp=now_timestamp(),
            role=role,
            provider=provider,
            model=model,
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            reasoning_tokens=reasoning_tokens,
            estimated_cost_usd=cost,
            session_id=self._session(session_id),
        )
        tracker = self.budget
        if safe_log_cost(entry, self.log_path) and tracker is not None:
            tracker.record(entry)
        return entry

    # ------------------------------------------------------------ LiteLLM Router
    def model_list(self) -> tuple[list[dict[str, Any]], list[dict[str, list[str]]]]:
        """LiteLLM ``model_list`` and ``fallbacks`` expressing every role's chain.

        Each chain entry is its own model group (``role`` for the primary, ``role/fallback-N``
        after it) so LiteLLM's fallbacks walk the chain in order.
        """
        from .export import proxy_model_list  # the one copy, shared with `export litellm-proxy`

        return proxy_model_list(self.config)

    def litellm_router(self, **router_kwargs: Any) -> Any:
        """A ``litellm.Router`` with the same chains (LiteLLM's own fall-over policy applies)."""
        models, fallbacks = self.model_list()
        return litellm.Router(model_list=models, fallbacks=fallbacks, **router_kwargs)


# ----------------------------------------------------------------- helpers
def _unit_price(ref: ModelRef) -> float:
    return estimate_cost(
        ref.provider,
        ref.model,
        1_000_000,
        1_000_000,
        input_cost_per_token=ref.params.get("input_cost_per_token"),
        output_cost_per_token=ref.params.get("output_cost_per_token"),
    )


def _stream_ref(stream: Any, model: str) -> ModelRef:
    provider = getattr(stream, "custom_llm_provider", None) or ""
    if provider and model.startswith(provider + "/"):
        model = model[len(provider) + 1 :]
    return ModelRef(provider or "unknown", model)


def _routing(context: CallContext, ref: ModelRef) -> dict[str, Any]:
    return {
        "role": context.role,
        "model": str(ref),
        "attempts": context.attempts,
        "fallback_from": context.fallback_from,
        "session_id": context.session_id,
    }


def _mark(response: Any, context: CallContext, ref: ModelRef) -> None:
    hidden = getattr(response, "_hidden_params", None)
    if isinstance(hidden, dict):
        hidden["draht_router"] = _routing(context, ref)


def _mark_cost(response: Any, entry: CostEntry | None) -> None:
    """Add the cost of the call's row to the routing dict as ``cost_usd``.

    None when LiteLLM's own callback wrote the row first (the router never saw the entry).
    """
    hidden = getattr(response, "_hidden_params", None)
    routing = hidden.get("draht_router") if isinstance(hidden, dict) else None
    if isinstance(routing, dict):
        routing["cost_usd"] = entry.estimated_cost_usd if entry is not None else None


def _caller_wants_usage(kwargs: dict[str, Any]) -> bool:
    options = kwargs.get("stream_options") or {}
    return bool(options.get("include_usage"))


def _visible_chunks(collected: list[Any], kwargs: dict[str, Any]) -> list[Any]:
    if _caller_wants_usage(kwargs):
        return collected
    return [chunk for chunk in collected if not is_usage_only(chunk)]


def _assemble(chunks: list[Any], messages: Any) -> Any:
    """A complete response (with usage) built from a finished stream's chunks."""
    if not chunks:
        return None
    try:
        return litellm.stream_chunk_builder(chunks, messages=messages)
    except Exception:  # noqa: BLE001 - cost falls back to the usage chunk alone
        return chunks[-1]


# ------------------------------------------------------- module-level drop-ins
_default_router: ModelRouter | None = None
_default_lock = threading.Lock()


def get_router() -> ModelRouter:
    """The process-wide router behind :func:`completion`, built once on first use."""
    global _default_router
    router = _default_router
    if router is None:
        with _default_lock:
            if _default_router is None:
                _default_router = ModelRouter()
            router = _default_router
    return router


def configure(
    config: RouterConfig | Mapping[str, Any] | str | Path | None = None,
    *,
    session_id: str | None = None,
) -> ModelRouter:
    """Replace the process-wide router (``None`` reloads config files as usual)."""
    global _default_router
    router = ModelRouter(config, session_id=session_id)
    with _default_lock:
        _default_router = router
    return router


def completion(*args: Any, **kwargs: Any) -> Any:
    """Drop-in ``litellm.completion`` with ``role=``, ``task_type=`` and ``session_id=``."""
    return get_router().completion(*args, **kwargs)


async def acompletion(*args: Any, **kwargs: Any) -> Any:
    """Drop-in ``litellm.acompletion`` with ``role=``, ``task_type=`` and ``session_id=``."""
    return await get_router().acompletion(*args, **kwargs)


__all__ = [
    "ModelRouter",
    "UnknownRoleError",
    "acompletion",
    "completion",
    "configure",
    "get_router",
]
