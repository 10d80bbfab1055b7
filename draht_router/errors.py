"""The exceptions draht_router raises itself.

Provider failures are re-raised as LiteLLM's own exception types (so ``except
litellm.RateLimitError`` keeps working); these classes cover what only the router knows.

    DrahtRouterError
    ├── ConfigError                 a config file cannot be read or parsed
    │   └── ConfigValidationError   the config parsed but is wrong (``.errors``: every problem)
    ├── UnknownRoleError            (also a KeyError) a role that is not configured
    ├── UnsafePathError             (also a ValueError) a project_root outside allowed places
    ├── BudgetExceededError         a spend cap reached before sending a request
    └── StreamInterruptedError      a stream cut or stalled and no model was left to finish it
"""

from __future__ import annotations

from collections.abc import Iterable


class DrahtRouterError(Exception):
    """Base class of every error draht_router raises itself."""


class ConfigError(DrahtRouterError):
    """A config file cannot be read or parsed (message names file and line)."""

    def __init__(self, message: str, *, path: str | None = None, line: int | None = None):
        super().__init__(message)
        self.path = path
        self.line = line


class ConfigValidationError(ConfigError):
    """The config is invalid; ``errors`` holds one line per problem."""

    def __init__(self, errors: Iterable[str], *, path: str | None = None):
        self.errors = list(errors)
        where = f"{path}: " if path else ""
        count = len(self.errors)
        head = f"{where}{count} config error{'s' if count != 1 else ''}"
        super().__init__(head + "".join(f"\n  {e}" for e in self.errors), path=path)


class UnknownRoleError(DrahtRouterError, KeyError):
    """A role name that the config does not define."""

    def __init__(self, role: str, available: Iterable[str]):
        self.role = role
        self.available = sorted(available)
        super().__init__(f"Unknown role {role!r}; available roles: {', '.join(self.available)}")

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


class UnsafePathError(DrahtRouterError, ValueError):
    """A ``project_root`` that escapes the working directory or points at a system path."""


class BudgetExceededError(DrahtRouterError):
    """A configured spend cap is already reached; no request was sent."""

    def __init__(self, message: str, *, scope: str, spent: float, cap: float):
        super().__init__(message)
        self.scope = scope
        self.spent = spent
        self.cap = cap


class StreamInterruptedError(DrahtRouterError):
    """A stream was cut or stalled and no model was left in the chain to finish it."""
