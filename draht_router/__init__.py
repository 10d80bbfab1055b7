"""draht_router: route LLM calls by the kind of work they do.

``from draht_router import completion`` is a drop-in for ``litellm.completion`` that also
takes ``role=``, ``task_type=`` and ``session_id=``, walks the role's fall-over chain under a
strict error policy, and writes one cost row per successful call.

Names are imported on first use, so ``import draht_router`` (and the CLI commands that make no
model call) never pay LiteLLM's multi-second import.
"""

from __future__ import annotations

import importlib
import os
from typing import TYPE_CHECKING, Any

# LiteLLM fetches a remote price map at import unless told not to; offline that is seconds of
# retries and warnings. The bundled map is used unless the user chose otherwise.
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

__version__ = "0.1.0"

_EXPORTS: dict[str, str] = {
    # configuration
    "BUILT_IN_ROLES": "config",
    "DEFAULT_CONFIG": "config",
    "ModelRef": "config",
    "RoleConfig": "config",
    "RouterConfig": "config",
    "Settings": "config",
    "load_config": "config",
    "merge_config": "config",
    "save_config": "config",
    "validate_config": "config",
    # task -> role
    "TASK_TYPES": "roles",
    "explain_role": "roles",
    "role_for_task": "roles",
    # routing
    "ModelRouter": "router",
    "acompletion": "router",
    "completion": "router",
    "configure": "router",
    "get_router": "router",
    "is_retryable_error": "policy",
    # cost
    "COST_PER_MILLION_TOKENS": "pricing",
    "DEFAULT_RATES": "pricing",
    "CostEntry": "cost",
    "estimate_cost": "pricing",
    "get_role_costs": "cost",
    "get_session_costs": "cost",
    "log_cost": "cost",
    "read_cost_log": "cost",
    "summarize": "cost",
    # batch
    "abatch_completion": "batch",
    "batch_completion": "batch",
    # coding-agent extension
    "create_router_extension": "extension",
    # errors
    "BudgetExceededError": "errors",
    "ConfigError": "errors",
    "ConfigValidationError": "errors",
    "DrahtRouterError": "errors",
    "UnknownRoleError": "errors",
    "UnsafePathError": "errors",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module_name = _EXPORTS.get(name)
    if module_name is None:
        raise AttributeError(f"module 'draht_router' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module_name}", __name__), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))


if TYPE_CHECKING:  # pragma: no cover - names for type checkers and IDEs
    from .batch import abatch_completion, batch_completion
    from .config import (
        BUILT_IN_ROLES,
        DEFAULT_CONFIG,
        ModelRef,
        RoleConfig,
        RouterConfig,
        Settings,
        load_config,
        merge_config,
        save_config,
        validate_config,
    )
    from .cost import (
        CostEntry,
        get_role_costs,
        get_session_costs,
        log_cost,
        read_cost_log,
        summarize,
    )
    from .errors import (
        BudgetExceededError,
        ConfigError,
        ConfigValidationError,
        DrahtRouterError,
        UnknownRoleError,
        UnsafePathError,
    )
    from .extension import create_router_extension
    from .policy import is_retryable_error
    from .pricing import COST_PER_MILLION_TOKENS, DEFAULT_RATES, estimate_cost
    from .roles import TASK_TYPES, explain_role, role_for_task
    from .router import ModelRouter, acompletion, completion, configure, get_router
