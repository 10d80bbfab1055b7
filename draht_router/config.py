"""Router configuration: the types, where config files live, how they merge and validate.

INTERFACE FIXED BY THE ROUTER (do not rename): ModelRef, RoleConfig, Settings, RouterConfig,
load_config, save_config, validate_config, merge_config, DEFAULT_CONFIG, BUILT_IN_ROLES.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

ENV_REF_PREFIX = "os.environ/"

BUILT_IN_ROLES: tuple[str, ...] = ("architect", "implement", "boilerplate", "quick", "review", "docs")

# LiteLLM call params that carry prices; an entry that sets them is priced by the config.
PRICE_PARAMS = ("input_cost_per_token", "output_cost_per_token")


@dataclass(frozen=True)
class ModelRef:
    """One model in a role's chain: ``provider/model`` plus any LiteLLM call params.

    ``params`` keeps ``os.environ/NAME`` references as written; they are resolved only by
    :meth:`call_params`, when a call is made.
    """

    provider: str
    model: str
    params: Mapping[str, Any] = field(default_factory=dict, hash=False)

    def __str__(self) -> str:
        return f"{self.provider}/{self.model}"

    @property
    def litellm_model(self) -> str:
        """The ``model=`` string LiteLLM expects."""
        return f"{self.provider}/{self.model}"

    @property
    def has_own_endpoint(self) -> bool:
        return bool(self.params.get("api_base") or self.params.get("base_url"))

    @property
    def has_own_prices(self) -> bool:
        return any(key in self.params for key in PRICE_PARAMS)

    def call_params(self) -> dict[str, Any]:
        """LiteLLM kwargs for this model with ``os.environ/NAME`` values resolved now.

        A reference to an unset variable is dropped, so LiteLLM falls back to its own
        environment lookup and the provider answers with its usual auth error.
        """
        params: dict[str, Any] = {"model": self.litellm_model}
        for key, value in self.params.items():
            if isinstance(value, str) and value.startswith(ENV_REF_PREFIX):
                resolved = os.environ.get(value[len(ENV_REF_PREFIX) :])
                if resolved is None:
                    continue
                value = resolved
            params[key] = value
        return params

    def to_entry(self) -> str | dict[str, Any]:
        """The YAML chain entry for this model (a string when it has no params)."""
        if not self.params:
            return str(self)
        return {"model": str(self), **dict(self.params)}


@dataclass(frozen=True)
class RoleConfig:
    """A role's ordered chain and where its definition came from."""

    name: str
    primary: ModelRef
    fallbacks: tuple[ModelRef, ...] = ()
    source: str = "default"  # default | global | project | env (DRAHT_ROUTER_CONFIG) | dict

    @property
    def chain(self) -> list[ModelRef]:
        return [self.primary, *self.fallbacks]


@dataclass(frozen=True)
class BudgetSettings:
    session_usd: float | None = None
    daily_usd: float | None = None
    role_daily_usd: Mapping[str, float] = field(default_factory=dict, hash=False)


@dataclass(frozen=True)
class Settings:
    """``settings:`` of the config; every field may also be overridden per call."""

    timeout: float = 60.0  # seconds per attempt
    num_retries: int = 1  # same-model retries for transient faults
    cost_log: str = ".draht/cost-log.jsonl"
    retry_after_max: float = 10.0  # longest Retry-After honoured, seconds
    first_token_timeout: float | None = None
    stream_idle_timeout: float | None = None
    cooldown: float = 30.0  # seconds a repeatedly failing model is skipped
    cooldown_failures: int = 3  # consecutive failed calls that put a model in cooldown
    fallback_on_auth_error: bool = False
    stream_fallback: str = "buffer"  # buffer | live
    budget: BudgetSettings | None = None
    on_budget: str = "refuse"  # refuse | downgrade
    batch_output_tokens: int = 256  # --dry-run output guess when a request sets no max_tokens


@dataclass
class RouterConfig:
    """A loaded, merged and validated configuration."""

    roles: dict[str, RoleConfig]
    task_types: dict[str, str] = field(default_factory=dict)
    settings: Settings = field(default_factory=Settings)
    sources: list[str] = field(default_factory=list)  # files read, lowest precedence first
    settings_data: dict[str, Any] = field(default_factory=dict)  # settings as written

    def role(self, name: str) -> RoleConfig:
        """The role's config; raises UnknownRoleError listing the available roles."""
        raise NotImplementedError

    def to_dict(self) -> dict[str, Any]:
        """The YAML shape (roles / task_types / settings), env references kept as written."""
        raise NotImplementedError
