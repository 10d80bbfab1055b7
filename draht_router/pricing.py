"""Prices: what one model call costs, in USD.

Prices come from LiteLLM's price map, read by :mod:`draht_router.model_map` without importing
LiteLLM; models the map does not list are priced by the rough family table
:data:`COST_PER_MILLION_TOKENS`, else at :data:`DEFAULT_RATES`. This module imports neither
LiteLLM nor :mod:`draht_router.cost` (which re-exports its public names).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from draht_router import model_map

__all__ = ["COST_PER_MILLION_TOKENS", "DEFAULT_RATES", "estimate_cost"]

# Rough USD per million tokens by model family, for models LiteLLM's price map does not list.
# A family matches where its name starts a word of the model name; the longest match wins.
COST_PER_MILLION_TOKENS: dict[str, dict[str, float]] = {
    # Anthropic
    "claude-opus": {"input": 5.0, "output": 25.0},
    "claude-sonnet": {"input": 3.0, "output": 15.0},
    "claude-haiku": {"input": 1.0, "output": 5.0},
    "opus": {"input": 15.0, "output": 75.0},
    "sonnet": {"input": 3.0, "output": 15.0},
    "haiku": {"input": 0.8, "output": 4.0},
    "claude": {"input": 3.0, "output": 15.0},
    # OpenAI
    "gpt-5": {"input": 1.25, "output": 10.0},
    "gpt-5-mini": {"input": 0.25, "output": 2.0},
    "gpt-5-nano": {"input": 0.05, "output": 0.4},
    "gpt-4.1": {"input": 2.0, "output": 8.0},
    "gpt-4.1-mini": {"input": 0.4, "output": 1.6},
    "gpt-4.1-nano": {"input": 0.1, "output": 0.4},
    "gpt-4o": {"input": 2.5, "output": 10.0},
    "gpt-4o-mini": {"input": 0.15, "output": 0.6},
    "o1": {"input": 15.0, "output": 60.0},
    "o1-mini": {"input": 1.1, "output": 4.4},
    "o3": {"input": 2.0, "output": 8.0},
    "o3-mini": {"input": 1.1, "output": 4.4},
    "o4-mini": {"input": 1.1, "output": 4.4},
    # Google
    "gemini": {"input": 1.25, "output": 10.0},
    "gemini-2.5-pro": {"input": 1.25, "output": 10.0},
    "gemini-2.5-flash": {"input": 0.3, "output": 2.5},
    "gemini-2.5-flash-lite": {"input": 0.1, "output": 0.4},
    "gemini-2.0-flash": {"input": 0.1, "output": 0.4},
    "gemini-3-pro": {"input": 2.0, "output": 12.0},
    # Open-weight and other vendors
    "deepseek": {"input": 0.28, "output": 0.42},
    "deepseek-r1": {"input": 0.55, "output": 2.19},
    "llama": {"input": 0.2, "output": 0.6},
    "mistral": {"input": 0.5, "output": 1.5},
    "mistral-small": {"input": 0.1, "output": 0.3},
    "mixtral": {"input": 0.7, "output": 0.7},
    "codestral": {"input": 0.3, "output": 0.9},
    "qwen": {"input": 0.4, "output": 1.2},
    "qwen-max": {"input": 1.6, "output": 6.4},
    "grok": {"input": 3.0, "output": 15.0},
    "kimi": {"input": 0.6, "output": 2.5},
    "glm": {"input": 0.6, "output": 2.2},
}

# USD per million tokens for a model neither the price map nor the family table knows.
DEFAULT_RATES: dict[str, float] = {"input": 3.0, "output": 15.0}


@dataclass(frozen=True)
class _Rates:
    """USD per token; None means "bill at the input (or output) rate"."""

    input: float
    output: float
    cache_read: float | None = None
    cache_write: float | None = None
    reasoning: float | None = None


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


def _family_rates(model: str) -> dict[str, float] | None:
    name = model.lower()
    best: str | None = None
    for family in COST_PER_MILLION_TOKENS:
        start = name.find(family)
        while start >= 0:
            if start == 0 or not name[start - 1].isalnum():
                if best is None or len(family) > len(best):
                    best = family
                break
            start = name.find(family, start + 1)
    return COST_PER_MILLION_TOKENS[best] if best is not None else None


def _rates(provider: str, model: str) -> _Rates:
    provider = model_map.canonical_provider(provider)
    if provider and model.startswith(provider + "/"):
        model = model[len(provider) + 1 :]
    prices = model_map.token_prices(provider, model)
    if prices is not None:
        info = model_map.model_info(provider, model) or {}
        return _Rates(
            input=prices[0],
            output=prices[1],
            cache_read=_number(info.get("cache_read_input_token_cost")),
            cache_write=_number(info.get("cache_creation_input_token_cost")),
            reasoning=_number(info.get("output_cost_per_reasoning_token")),
        )
    per_million = _family_rates(model) or DEFAULT_RATES
    return _Rates(input=per_million["input"] / 1e6, output=per_million["output"] / 1e6)


def estimate_cost(
    provider: str,
    model: str,
    input_tokens: int,
    output_tokens: int,
    reasoning_tokens: int = 0,
    *,
    cache_read_tokens: int = 0,
    cache_write_tokens: int = 0,
    input_cost_per_token: float | None = None,
    output_cost_per_token: float | None = None,
) -> float:
    """Estimated USD cost of one call.

    Prices, first found wins: the ``*_cost_per_token`` overrides (0 is a valid price), then
    LiteLLM's price map (including its cache-read, cache-write and reasoning prices), then
    the rough family table :data:`COST_PER_MILLION_TOKENS`, then :data:`DEFAULT_RATES`.
    Provider ``google`` is LiteLLM's ``gemini``.

    Token counts follow OpenAI's convention and every token is billed once:

    * ``output_tokens`` already includes ``reasoning_tokens``; the reasoning part is billed
      at the reasoning price when the map has one, the rest at the output price.
    * ``cache_read_tokens`` and ``cache_write_tokens`` are parts of ``input_tokens``, billed
      at the map's cache-read and cache-creation prices when it has them.

    An input override also sets the price of cached tokens, an output override that of
    reasoning tokens. Negative counts are taken as 0.
    """
    rates = _rates(provider, model)
    in_rate = rates.input if input_cost_per_token is None else float(input_cost_per_token)
    out_rate = rates.output if output_cost_per_token is None else float(output_cost_per_token)
    cache_read_rate = in_rate if input_cost_per_token is not None else rates.cache_read
    cache_write_rate = in_rate if input_cost_per_token is not None else rates.cache_write
    reasoning_rate = out_rate if output_cost_per_token is not None else rates.reasoning

    inp = max(input_tokens, 0)
    out = max(output_tokens, 0)
    cached = max(cache_read_tokens, 0)
    written = max(cache_write_tokens, 0)
    thinking = max(reasoning_tokens, 0)
    uncached = max(inp - cached - written, 0)
    visible = max(out - thinking, 0)
    cost = (
        uncached * in_rate
        + cached * (in_rate if cache_read_rate is None else cache_read_rate)
        + written * (in_rate if cache_write_rate is None else cache_write_rate)
        + visible * out_rate
        + thinking * (out_rate if reasoning_rate is None else reasoning_rate)
    )
    return cost
