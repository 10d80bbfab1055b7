"""The routing config in LiteLLM's own shapes: ``model_list``/``fallbacks`` for
``litellm.Router`` and a LiteLLM Proxy ``config.yaml``.

Pure data from a :class:`~draht_router.config.RouterConfig`; LiteLLM is not imported.
"""

from __future__ import annotations

import copy
from typing import Any

import yaml

from .config import ENV_REF_PREFIX, ModelRef, RouterConfig
from .report import CREDENTIAL_ENV, LOCAL_PROVIDERS, key_env_names

__all__ = ["fallback_group", "proxy_config", "proxy_config_yaml", "proxy_model_list"]


def fallback_group(role: str, index: int) -> str:
    """The model group name of ``role``'s fallback number ``index`` (1-based)."""
    return f"{role}/fallback-{index}"


def proxy_model_list(
    config: RouterConfig,
) -> tuple[list[dict[str, Any]], list[dict[str, list[str]]]]:
    """LiteLLM ``model_list`` and ``fallbacks`` expressing every role's chain.

    Each chain entry is its own model group (``role`` for the primary, ``role/fallback-N``
    after it), so LiteLLM's fallbacks walk the chain in order. ``litellm_params`` are the
    entry's parameters as written (``os.environ/NAME`` references kept).
    """
    models: list[dict[str, Any]] = []
    fallbacks: list[dict[str, list[str]]] = []
    for name, role in config.roles.items():
        groups = [name] + [fallback_group(name, i + 1) for i in range(len(role.fallbacks))]
        for group, ref in zip(groups, role.chain, strict=True):
            params = {"model": ref.litellm_model, **copy.deepcopy(dict(ref.params))}
            models.append({"model_name": group, "litellm_params": params})
        if len(groups) > 1:
            fallbacks.append({name: groups[1:]})
    return models, fallbacks


def _key_reference(ref: ModelRef) -> str | None:
    """``os.environ/NAME`` for an entry that names no key, or None when it needs none.

    Entries with their own endpoint get none: the provider's key would be sent to that
    endpoint. Local providers and cloud-credential providers (bedrock, vertex_ai) get none.
    """
    if "api_key" in ref.params or ref.has_own_endpoint:
        return None
    if ref.provider in LOCAL_PROVIDERS or ref.provider in CREDENTIAL_ENV:
        return None
    names = key_env_names(ref.provider)
    name = names[0] if names else f"{ref.provider.upper().replace('-', '_')}_API_KEY"
    return ENV_REF_PREFIX + name


def proxy_config(config: RouterConfig) -> dict[str, Any]:
    """A LiteLLM Proxy config (``model_list``, ``router_settings``, ``litellm_settings``)."""
    models, fallbacks = proxy_model_list(config)
    chains = [ref for role in config.roles.values() for ref in role.chain]
    for entry, ref in zip(models, chains, strict=True):
        key = _key_reference(ref)
        if key is not None:
            entry["litellm_params"]["api_key"] = key
    return {
        "model_list": models,
        "router_settings": {
            "fallbacks": fallbacks,
            "num_retries": config.settings.num_retries,
            "timeout": config.settings.timeout,
        },
        "litellm_settings": {"drop_params": True},
    }


def proxy_config_yaml(config: RouterConfig) -> str:
    """:func:`proxy_config` as YAML, with a comment saying where it came from."""
    sources = ", ".join(config.sources) or "the built-in defaults"
    header = (
        "# LiteLLM Proxy config written by `draht-router export litellm-proxy`\n"
        f"# from {sources}.\n"
        "# Model groups: ROLE is the primary, ROLE/fallback-N the chain after it.\n"
        "# Run: litellm --config config.yaml\n"
    )
    body = yaml.safe_dump(
        proxy_config(config), sort_keys=False, default_flow_style=False, allow_unicode=True
    )
    return header + body
