"""LiteLLM's model map (prices, context windows) and provider list, read without importing LiteLLM.

Importing LiteLLM takes seconds; the CLI commands that make no model call only need the data
files inside the installed package, so they read those directly.
"""

from __future__ import annotations

import functools
import importlib.util
import json
import re
from pathlib import Path
from typing import Any

_MODEL_MAP_FILE = "model_prices_and_context_window_backup.json"
_PROVIDER_ENUM = re.compile(r"^class LlmProviders\(str, Enum\):\n((?:[ \t]+.*\n|\n)+)", re.M)
_ENUM_VALUE = re.compile(r'^\s+[A-Z0-9_]+\s*=\s*"([^"]+)"', re.M)

# Providers that draht's TypeScript tools name differently from LiteLLM.
PROVIDER_ALIASES = {"google": "gemini"}


@functools.lru_cache(maxsize=1)
def litellm_package_dir() -> Path | None:
    """Directory of the installed ``litellm`` package, found without importing it."""
    spec = importlib.util.find_spec("litellm")
    if spec is None or spec.origin is None:
        return None
    return Path(spec.origin).parent


@functools.lru_cache(maxsize=1)
def model_map() -> dict[str, dict[str, Any]]:
    """LiteLLM's bundled model map: model key -> prices, context window, provider."""
    pkg = litellm_package_dir()
    if pkg is None:
        return {}
    try:
        with open(pkg / _MODEL_MAP_FILE, encoding="utf-8") as fh:
            data = json.load(fh)
    except (OSError, ValueError):
        return {}
    data.pop("sample_spec", None)
    return data


@functools.lru_cache(maxsize=1)
def known_providers() -> frozenset[str]:
    """Every provider name LiteLLM accepts as a ``provider/model`` prefix."""
    names: set[str] = set()
    pkg = litellm_package_dir()
    if pkg is not None:
        try:
            source = (pkg / "types" / "utils.py").read_text(encoding="utf-8")
        except OSError:
            source = ""
        match = _PROVIDER_ENUM.search(source)
        if match:
            names.update(_ENUM_VALUE.findall(match.group(1)))
    for info in model_map().values():
        provider = info.get("litellm_provider")
        if isinstance(provider, str):
            names.add(provider)
    return frozenset(names)


def canonical_provider(provider: str) -> str:
    """LiteLLM's name for a provider (``google`` -> ``gemini``)."""
    return PROVIDER_ALIASES.get(provider, provider)


def model_info(provider: str, model: str) -> dict[str, Any] | None:
    """The model map entry for ``provider/model``, or None when LiteLLM does not know it."""
    table = model_map()
    for key in (f"{provider}/{model}", model):
        info = table.get(key)
        if info is not None and _provider_matches(info, provider):
            return info
    return None


def _provider_matches(info: dict[str, Any], provider: str) -> bool:
    listed = info.get("litellm_provider")
    if not provider or not isinstance(listed, str):
        return True
    return listed == provider or listed.startswith(provider + "-") or listed.startswith(
        provider + "_"
    )


def context_window(provider: str, model: str) -> int | None:
    """Largest input the model accepts, in tokens, when the model map knows it."""
    info = model_info(provider, model)
    if not info:
        return None
    window = info.get("max_input_tokens") or info.get("max_tokens")
    return int(window) if isinstance(window, (int, float)) else None


def token_prices(provider: str, model: str) -> tuple[float, float] | None:
    """(input, output) USD per token from the model map, when it prices the model."""
    info = model_info(provider, model)
    if not info:
        return None
    inp, out = info.get("input_cost_per_token"), info.get("output_cost_per_token")
    if not isinstance(inp, (int, float)) or not isinstance(out, (int, float)):
        return None
    return float(inp), float(out)
