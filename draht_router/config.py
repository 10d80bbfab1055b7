"""Router configuration: the types, where config files live, how they merge and validate.

INTERFACE FIXED BY THE ROUTER (do not rename): ModelRef, RoleConfig, Settings, RouterConfig,
load_config, save_config, validate_config, merge_config, DEFAULT_CONFIG, BUILT_IN_ROLES.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import json
import math
import os
import re
import stat
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import yaml

from draht_router.errors import (
    ConfigError,
    ConfigValidationError,
    UnknownRoleError,
    UnsafePathError,
)
from draht_router.model_map import canonical_provider, known_providers, model_info, model_map

ENV_REF_PREFIX = "os.environ/"

BUILT_IN_ROLES: tuple[str, ...] = (
    "architect",
    "implement",
    "boilerplate",
    "quick",
    "review",
    "docs",
)

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
    params: Mapping[str, Any] = field(default_factory=dict, hash=False, repr=False)

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
        try:
            return self.roles[name]
        except KeyError:
            raise UnknownRoleError(name, self.roles) from None

    def to_dict(self) -> dict[str, Any]:
        """The YAML shape (roles / task_types / settings), env references kept as written."""
        settings = self.settings_data or _settings_to_data(self.settings)
        return {
            "roles": {name: _role_to_data(role) for name, role in self.roles.items()},
            "task_types": dict(self.task_types),
            "settings": copy.deepcopy(settings),
        }


# --------------------------------------------------------------------------------------------
# Defaults and file locations
# --------------------------------------------------------------------------------------------

CONFIG_ENV_VAR = "DRAHT_ROUTER_CONFIG"
CONFIG_DIR = ".draht"
# Looked up in this order in a config directory; the first that exists is used.
CONFIG_FILE_NAMES: tuple[str, ...] = ("router.yaml", "router.yml", "router.json")
SAVE_FILE_NAME = "router.yaml"

Scope = Literal["project", "global"]

DEFAULT_CONFIG: dict[str, Any] = {
    "roles": {
        "architect": {
            "primary": "anthropic/claude-opus-4-6",
            "fallbacks": ["gemini/gemini-2.5-pro"],
        },
        "implement": {
            "primary": "anthropic/claude-sonnet-4-6",
            "fallbacks": ["openai/gpt-5.2", "deepseek/deepseek-v3.2"],
        },
        "boilerplate": {
            "primary": "deepseek/deepseek-v3.2",
            "fallbacks": ["gemini/gemini-2.5-flash"],
        },
        "quick": {
            "primary": "gemini/gemini-2.5-flash",
            "fallbacks": ["deepseek/deepseek-v3.2"],
        },
        "review": {
            "primary": "anthropic/claude-sonnet-4-6",
            "fallbacks": [],
        },
        "docs": {
            "primary": "openai/gpt-5.2",
            "fallbacks": ["anthropic/claude-sonnet-4-6"],
        },
    },
    "task_types": {},
    "settings": {
        "timeout": 60.0,
        "num_retries": 1,
        "cost_log": ".draht/cost-log.jsonl",
        "retry_after_max": 10.0,
        "first_token_timeout": None,
        "stream_idle_timeout": None,
        "cooldown": 30.0,
        "cooldown_failures": 3,
        "fallback_on_auth_error": False,
        "stream_fallback": "buffer",
        "budget": None,
        "on_budget": "refuse",
        "batch_output_tokens": 256,
    },
}

# Servers that usually run on the user's machine and serve whatever was pulled or deployed
# there; they need no API key (the CLI's `test` and `export` rely on this too).
LOCAL_PROVIDERS: frozenset[str] = frozenset(
    {
        "ollama",
        "ollama_chat",
        "hosted_vllm",
        "vllm",
        "lm_studio",
        "llamafile",
        "xinference",
        "oobabooga",
        "lemonade",
        "docker_model_runner",
        "triton",
        "petals",
    }
)

# Providers whose model names are not checked against LiteLLM's model map. The map lists models
# of hosted APIs only, so a check would reject legitimate names for:
#   - local and self-hosted servers, which serve whatever the user pulled or deployed;
#   - gateways and proxies, which forward to catalogues the map does not list;
#   - deployment-named providers (azure, sagemaker), where the model part is a name the user chose.
# Any provider for which the map lists no model at all is treated the same way, because there is
# nothing to check against. Every other provider's models must be in the map, unless the entry
# sets its own endpoint (``api_base``/``base_url``) or its own prices, which marks it as a model
# the user runs or prices themselves.
OPEN_MODEL_PROVIDERS: frozenset[str] = LOCAL_PROVIDERS | {
    # other self-hosted endpoints
    "openai_like",
    "custom",
    "custom_openai",
    # gateways and proxies
    "openrouter",
    "litellm_proxy",
    "huggingface",
    # deployment-named
    "azure",
    "sagemaker",
    "sagemaker_chat",
}

_TOP_LEVEL_KEYS = ("roles", "task_types", "settings")
_ROLE_KEYS = ("primary", "fallbacks")
_BUDGET_KEYS = ("session_usd", "daily_usd", "role_daily_usd")
_ENDPOINT_PARAMS = ("api_base", "base_url")
_ROLE_NAME = re.compile(r"^[^\s/]+$")


# --------------------------------------------------------------------------------------------
# Public functions
# --------------------------------------------------------------------------------------------


def load_config(project_root: str | os.PathLike[str] | None = None) -> RouterConfig:
    """The merged, validated config for ``project_root`` (default: the working directory).

    Precedence, highest first: the file named by ``DRAHT_ROUTER_CONFIG`` (which replaces the
    project file) or ``<project_root>/.draht/router.yaml``; then ``~/.draht/router.yaml``; then
    :data:`DEFAULT_CONFIG`. A role defined in a higher source replaces that whole role;
    ``task_types`` and ``settings`` merge per key.
    """
    root = safe_project_root(project_root)
    paths = _config_paths(root)
    layers = [_default_layer()]
    global_path = paths["global"]
    if global_path is not None:
        layers.append(_file_layer(global_path, "global"))
    env_path = paths["env"]
    project_path = paths["project"]
    if env_path is not None:
        if not env_path.is_file():
            raise ConfigError(
                f"{env_path}: no such config file (named by {CONFIG_ENV_VAR})", path=str(env_path)
            )
        layers.append(_file_layer(env_path, "env"))
    elif project_path is not None and not _same_file(project_path, global_path):
        layers.append(_file_layer(project_path, "project"))
    return _assemble(layers)


def config_from_dict(data: Mapping[str, Any], source: str = "dict") -> RouterConfig:
    """A validated config from ``data`` (YAML or TypeScript shape) merged over the defaults."""
    return _assemble([_default_layer(), _parse_layer(data, source, None)])


def validate_config(config: RouterConfig | Mapping[str, Any]) -> RouterConfig:
    """The normalized config when valid; otherwise ConfigValidationError listing every problem.

    A mapping is validated as a config file would be, i.e. merged over the defaults; a
    RouterConfig is checked as it stands (it must define every built-in role).
    """
    if not isinstance(config, RouterConfig):
        return config_from_dict(config)
    layer = _parse_layer(config.to_dict(), "dict", None)
    for name, role in layer.roles.items():
        original = config.roles.get(name)
        if role is not None and original is not None:
            layer.roles[name] = replace(role, source=original.source)
    result = _assemble([layer])
    result.sources = list(config.sources)
    return result


def merge_config(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """``override`` over ``base`` (both YAML or TypeScript shape), in the YAML shape.

    Roles are replaced whole; ``task_types`` and ``settings`` merge per key (``budget`` as a
    whole). Neither argument is modified.
    """
    low, high = _normalize_shape(base), _normalize_shape(override)
    merged: dict[str, Any] = {}
    for key in dict.fromkeys([*low, *high]):
        if key not in high:
            merged[key] = copy.deepcopy(low[key])
        elif key in low and isinstance(low[key], Mapping) and isinstance(high[key], Mapping):
            merged[key] = {**copy.deepcopy(dict(low[key])), **copy.deepcopy(dict(high[key]))}
        else:
            merged[key] = copy.deepcopy(high[key])
    return merged


def read_config_file(path: str | os.PathLike[str]) -> dict[str, Any]:
    """One config file (YAML, or JSON for ``.json``) in the ``roles/task_types/settings`` shape.

    Syntax errors raise ConfigError naming the file and line; an empty file is an empty config.
    """
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise ConfigError(f"{file}: cannot read config file: {reason}", path=str(file)) from None
    data = _parse_json(text, file) if file.suffix.lower() == ".json" else _parse_yaml(text, file)
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise ConfigValidationError(
            [f"top level: expected a mapping, got {_type_name(data)}"], path=str(file)
        )
    return _normalize_shape(data)


def config_paths(project_root: str | os.PathLike[str] | None = None) -> dict[str, Path | None]:
    """The file each scope would read (``global``, ``project``, ``env``), None when absent.

    ``env`` is the path named by ``DRAHT_ROUTER_CONFIG`` (even if missing); when set, it is
    read instead of the project file.
    """
    return _config_paths(safe_project_root(project_root))


def save_config(
    config: RouterConfig | Mapping[str, Any],
    scope: Scope = "project",
    project_root: str | os.PathLike[str] | None = None,
) -> Path:
    """Validate ``config`` and write it as YAML for ``scope``; returns the file written.

    ``project`` writes ``<project_root>/.draht/router.yaml``, ``global`` writes
    ``~/.draht/router.yaml``. The file holds exactly the roles, task types and settings that
    ``config`` holds (a mapping is validated merged over the defaults but written as given,
    normalized to the YAML shape); ``os.environ/NAME`` references are written as they are.
    The write is atomic: the file is either the old one or the complete new one.
    """
    if scope == "project":
        target = safe_project_root(project_root) / CONFIG_DIR / SAVE_FILE_NAME
    elif scope == "global":
        target = Path.home() / CONFIG_DIR / SAVE_FILE_NAME
    else:
        raise ValueError(f"scope must be 'project' or 'global', not {scope!r}")
    if isinstance(config, RouterConfig):
        data = validate_config(config).to_dict()
    else:
        data = _data_for_save(config)
    text = yaml.safe_dump(data, sort_keys=False, default_flow_style=False, allow_unicode=True)
    _atomic_write(target, text)
    return target


def safe_project_root(project_root: str | os.PathLike[str] | None) -> Path:
    """``project_root`` resolved (symlinks included), or UnsafePathError if it is not allowed.

    None means the working directory. A relative path must stay inside the working directory;
    an absolute path must lie inside the working directory, the home directory or the temp
    directory. The filesystem root itself never counts as an allowed place.
    """
    cwd = Path.cwd().resolve()
    if project_root is None:
        return cwd
    raw = Path(project_root).expanduser()
    resolved = (raw if raw.is_absolute() else cwd / raw).resolve()
    if resolved == cwd:
        return resolved
    allowed = [root for root in _allowed_roots(cwd) if root != Path(root.anchor)]
    inside_allowed = any(resolved.is_relative_to(root) for root in allowed)
    if not raw.is_absolute() and not resolved.is_relative_to(cwd):
        raise UnsafePathError(
            f"project_root {os.fspath(project_root)!r} escapes the working directory ({resolved})"
        )
    if not inside_allowed:
        raise UnsafePathError(
            f"project_root {os.fspath(project_root)!r} resolves to {resolved}, outside the "
            "working directory, the home directory and the temp directory"
        )
    return resolved


# --------------------------------------------------------------------------------------------
# Internals: paths and files
# --------------------------------------------------------------------------------------------


def _allowed_roots(cwd: Path) -> list[Path]:
    roots = [cwd, Path(tempfile.gettempdir()).resolve(), Path("/tmp").resolve()]
    with contextlib.suppress(RuntimeError, KeyError):
        roots.append(Path.home().resolve())
    return roots


def _first_existing(directory: Path) -> Path | None:
    for name in CONFIG_FILE_NAMES:
        candidate = directory / name
        if candidate.is_file():
            return candidate
    return None


def _config_paths(root: Path) -> dict[str, Path | None]:
    try:
        global_path = _first_existing(Path.home() / CONFIG_DIR)
    except RuntimeError:  # no home directory to be found
        global_path = None
    env_value = os.environ.get(CONFIG_ENV_VAR, "").strip()
    return {
        "global": global_path,
        "project": _first_existing(root / CONFIG_DIR),
        "env": Path(env_value).expanduser().absolute() if env_value else None,
    }


def _same_file(a: Path, b: Path | None) -> bool:
    return b is not None and a.resolve() == b.resolve()


def _parse_yaml(text: str, file: Path) -> Any:
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        # Only the problem description is reported: the quoted source line could hold a secret.
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        line = mark.line + 1 if mark is not None else None
        problem = getattr(exc, "problem", None) or type(exc).__name__
        context = getattr(exc, "context", None)
        detail = f"{problem} ({context})" if context else str(problem)
        where = f"{file}:{line}" if line is not None else str(file)
        raise ConfigError(
            f"{where}: YAML syntax error: {detail}", path=str(file), line=line
        ) from None


def _parse_json(text: str, file: Path) -> Any:
    try:
        return json.loads(text) if text.strip() else None
    except json.JSONDecodeError as exc:
        raise ConfigError(
            f"{file}:{exc.lineno}: JSON syntax error: {exc.msg} (column {exc.colno})",
            path=str(file),
            line=exc.lineno,
        ) from None


def _atomic_write(target: Path, text: str) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        if target.exists():  # keep the mode of the file being replaced
            os.chmod(tmp_name, stat.S_IMODE(target.stat().st_mode))
        os.replace(tmp_name, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp_name)
        raise


def _data_for_save(data: Mapping[str, Any]) -> dict[str, Any]:
    config = config_from_dict(data)
    shaped = _normalize_shape(data)
    out: dict[str, Any] = {}
    roles = shaped.get("roles") or {}
    if roles:
        out["roles"] = {name: _role_to_data(config.roles[name]) for name in roles}
    if shaped.get("task_types"):
        out["task_types"] = dict(shaped["task_types"])
    if shaped.get("settings"):
        out["settings"] = copy.deepcopy(dict(shaped["settings"]))
    return out


# --------------------------------------------------------------------------------------------
# Internals: shape normalization
# --------------------------------------------------------------------------------------------


def _normalize_shape(data: Mapping[str, Any]) -> dict[str, Any]:
    """``data`` in the YAML shape; the flat TypeScript shape (roles at top level) is converted.

    Role values given as a string, list or single model mapping become ``{primary, fallbacks}``;
    ``task_types`` keys are lower-cased. Anything malformed is kept for validation to report.
    """
    if not isinstance(data, Mapping):
        raise TypeError(f"a config must be a mapping, not {_type_name(data)}")
    out: dict[str, Any] = {"roles": {}, "task_types": {}, "settings": {}}
    if "roles" in data:
        roles = data["roles"]
        extra = {k: v for k, v in data.items() if k not in _TOP_LEVEL_KEYS}
    else:  # flat TypeScript shape: every other top-level key is a role
        roles = {k: v for k, v in data.items() if k not in _TOP_LEVEL_KEYS}
        extra = {}
    if roles is None:
        roles = {}
    out["roles"] = (
        {name: _normalize_role(value) for name, value in roles.items()}
        if isinstance(roles, Mapping)
        else roles
    )
    task_types = data.get("task_types")
    if task_types is None:
        task_types = {}
    out["task_types"] = (
        {_task_key(k): v for k, v in task_types.items()}
        if isinstance(task_types, Mapping)
        else task_types
    )
    settings = data.get("settings")
    out["settings"] = copy.deepcopy(dict(settings) if isinstance(settings, Mapping) else settings)
    if out["settings"] is None:
        out["settings"] = {}
    out.update(extra)
    return out


def _task_key(key: Any) -> Any:
    return key.strip().lower() if isinstance(key, str) else key


def _normalize_role(value: Any) -> Any:
    if isinstance(value, str):
        return {"primary": value, "fallbacks": []}
    if isinstance(value, list) and value:
        return {"primary": value[0], "fallbacks": list(value[1:])}
    if isinstance(value, Mapping):
        if "model" in value and not any(key in value for key in _ROLE_KEYS):
            return {"primary": dict(value), "fallbacks": []}  # a single model as the role
        role = dict(value)
        if role.get("fallbacks", None) is None and "primary" in role:
            role["fallbacks"] = []
        return role
    return value


def _role_to_data(role: RoleConfig) -> dict[str, Any]:
    return {
        "primary": copy.deepcopy(role.primary.to_entry()),
        "fallbacks": [copy.deepcopy(ref.to_entry()) for ref in role.fallbacks],
    }


def _settings_to_data(settings: Settings) -> dict[str, Any]:
    data: dict[str, Any] = {}
    for name in DEFAULT_CONFIG["settings"]:
        value = getattr(settings, name)
        if isinstance(value, BudgetSettings):
            value = {
                "session_usd": value.session_usd,
                "daily_usd": value.daily_usd,
                "role_daily_usd": dict(value.role_daily_usd),
            }
        data[name] = value
    return data


# --------------------------------------------------------------------------------------------
# Internals: parsing and validation
# --------------------------------------------------------------------------------------------


@dataclass
class _Layer:
    """One source's parsed content: roles (None when invalid), task types, raw settings."""

    source: str
    path: str | None
    roles: dict[str, RoleConfig | None]
    task_types: dict[str, str]
    settings: dict[str, Any]
    errors: list[str]


@functools.lru_cache(maxsize=1)
def _default_layer_cached() -> _Layer:
    layer = _parse_layer(DEFAULT_CONFIG, "default", None, check_models=False)
    if layer.errors:  # a broken DEFAULT_CONFIG is a bug, not a user error
        raise AssertionError("DEFAULT_CONFIG is invalid: " + "; ".join(layer.errors))
    return layer


def _default_layer() -> _Layer:
    layer = _default_layer_cached()
    return replace(
        layer,
        roles=dict(layer.roles),
        task_types=dict(layer.task_types),
        settings=copy.deepcopy(layer.settings),
        errors=[],
    )


def _file_layer(path: Path, source: str) -> _Layer:
    return _parse_layer(read_config_file(path), source, str(path))


def _parse_layer(
    data: Mapping[str, Any], source: str, path: str | None, *, check_models: bool = True
) -> _Layer:
    errors: list[str] = []
    layer = _Layer(source, path, {}, {}, {}, errors)
    if not isinstance(data, Mapping):
        errors.append(f"top level: expected a mapping, got {_type_name(data)}")
        return layer
    shaped = _normalize_shape(data)
    for key in shaped:
        if key not in _TOP_LEVEL_KEYS:
            errors.append(f"unknown top-level key {key!r} (expected roles, task_types, settings)")

    roles = shaped["roles"]
    if not isinstance(roles, Mapping):
        errors.append(f"roles: expected a mapping, got {_type_name(roles)}")
    else:
        for name, raw in roles.items():
            if not isinstance(name, str) or not _ROLE_NAME.match(name):
                errors.append(f"roles: invalid role name {name!r}")
                continue
            layer.roles[name] = _parse_role(name, raw, source, errors, check_models)

    task_types = shaped["task_types"]
    if not isinstance(task_types, Mapping):
        errors.append(f"task_types: expected a mapping, got {_type_name(task_types)}")
    else:
        for key, role in task_types.items():
            if not isinstance(key, str) or not key:
                errors.append(f"task_types: invalid task type {key!r}")
            elif not isinstance(role, str) or not role.strip():
                errors.append(f"task_types.{key}: expected a role name, got {_type_name(role)}")
            else:
                layer.task_types[key] = role.strip()

    settings = shaped["settings"]
    if not isinstance(settings, Mapping):
        errors.append(f"settings: expected a mapping, got {_type_name(settings)}")
    else:
        _check_settings(settings, errors)
        layer.settings = copy.deepcopy(dict(settings))
    return layer


def _parse_role(
    name: str, raw: Any, source: str, errors: list[str], check_models: bool
) -> RoleConfig | None:
    where = f"roles.{name}"
    if isinstance(raw, list):  # only an empty list is left unnormalized
        errors.append(f"{where}: empty chain")
        return None
    if not isinstance(raw, Mapping):
        errors.append(f"{where}: expected a mapping, list or model string, got {_type_name(raw)}")
        return None
    for key in raw:
        if key not in _ROLE_KEYS:
            errors.append(f"{where}: unknown key {key!r} (expected primary, fallbacks)")
    before = len(errors)
    primary: ModelRef | None = None
    if raw.get("primary") is None:
        errors.append(f"{where}.primary: missing")
    else:
        primary = _parse_entry(raw["primary"], f"{where}.primary", errors, check_models)
    fallbacks: list[ModelRef] = []
    raw_fallbacks = raw.get("fallbacks", [])
    if raw_fallbacks is None:
        raw_fallbacks = []
    if not isinstance(raw_fallbacks, list):
        errors.append(f"{where}.fallbacks: expected a list, got {_type_name(raw_fallbacks)}")
        raw_fallbacks = []
    seen: dict[tuple[str, str], str] = {}
    if primary is not None:
        seen[_dedup_key(primary)] = "primary"
    for index, item in enumerate(raw_fallbacks):
        position = f"fallback[{index}]"
        ref = _parse_entry(item, f"{where}.{position}", errors, check_models)
        if ref is None:
            continue
        key = _dedup_key(ref)
        if key in seen:
            errors.append(f"{where}.{position}: duplicate model '{ref}' (already at {seen[key]})")
            continue
        seen[key] = position
        fallbacks.append(ref)
    if primary is None or len(errors) > before:
        return None
    return RoleConfig(name=name, primary=primary, fallbacks=tuple(fallbacks), source=source)


def _dedup_key(ref: ModelRef) -> tuple[str, str]:
    """Identity of a chain entry: the same model behind another endpoint is a real fallback."""
    endpoint = ref.params.get("api_base") or ref.params.get("base_url") or ""
    return ref.litellm_model, str(endpoint)


def _parse_entry(raw: Any, where: str, errors: list[str], check_models: bool) -> ModelRef | None:
    params: dict[str, Any] = {}
    if isinstance(raw, str):
        provider, model = _split_model(raw.strip())
    elif isinstance(raw, Mapping):
        bad_keys = [key for key in raw if not isinstance(key, str)]
        if bad_keys:
            errors.append(f"{where}: parameter names must be strings, got {bad_keys[0]!r}")
            return None
        model_value = raw.get("model")
        if not isinstance(model_value, str):
            problem = "missing 'model'" if model_value is None else "'model' must be a string"
            errors.append(f"{where}: {problem}")
            return None
        provider_value = raw.get("provider")
        if provider_value is None:
            provider, model = _split_model(model_value.strip())
        elif isinstance(provider_value, str):  # TypeScript shape: {provider, model}
            provider, model = provider_value.strip(), model_value.strip()
        else:
            errors.append(f"{where}: 'provider' must be a string")
            return None
        params = {k: copy.deepcopy(v) for k, v in raw.items() if k not in ("model", "provider")}
    else:
        errors.append(f"{where}: expected a model string or mapping, got {_type_name(raw)}")
        return None

    if provider is None:
        errors.append(
            f"{where}: model '{model}' has no provider and is not in LiteLLM's model map; "
            "write it as provider/model"
        )
        return None
    provider = canonical_provider(provider)
    ref = ModelRef(provider=provider, model=model, params=params)
    problems_before = len(errors)
    if not provider:
        errors.append(f"{where}: empty provider")
    if not model:
        errors.append(f"{where}: empty model")
    for key in PRICE_PARAMS:
        if key in params and not _is_number(params[key], minimum=0.0):
            errors.append(f"{where}: {key} must be a non-negative number")
    if len(errors) > problems_before:
        return None
    if check_models:
        problem = _model_problem(ref)
        if problem:
            errors.append(f"{where}: {problem}")
            return None
    return ref


def _split_model(text: str) -> tuple[str | None, str]:
    """(provider, model) of a model string; provider None for a bare model the map lacks."""
    if "/" in text:
        provider, model = text.split("/", 1)
        return provider.strip(), model.strip()
    if not text:
        return "", ""
    info = model_info("", text)
    listed = info.get("litellm_provider") if info else None
    if not isinstance(listed, str) or not listed:
        return None, text
    head = listed.split("-", 1)[0]  # e.g. "vertex_ai-language-models" -> "vertex_ai"
    if head != listed and head in known_providers():
        return head, text
    return listed, text


@functools.cache
def _provider_listed(provider: str) -> bool:
    """Whether LiteLLM's model map lists any model for ``provider``."""
    for info in model_map().values():
        listed = info.get("litellm_provider")
        if isinstance(listed, str) and (
            listed == provider
            or listed.startswith(provider + "-")
            or listed.startswith(provider + "_")
        ):
            return True
    return False


def _model_problem(ref: ModelRef) -> str | None:
    providers = known_providers()
    if not providers:  # LiteLLM's data files are missing: nothing to check against
        return None
    if ref.provider not in providers:
        return f"unknown provider '{ref.provider}'"
    if ref.has_own_endpoint or ref.has_own_prices:
        return None
    if ref.provider in OPEN_MODEL_PROVIDERS or not _provider_listed(ref.provider):
        return None
    if model_info(ref.provider, ref.model) is None:
        return (
            f"unknown model '{ref}' (not in LiteLLM's model map; "
            "set api_base or prices for a self-hosted model)"
        )
    return None


def _positive(value: Any) -> bool:
    return _is_number(value) and value > 0


def _non_negative(value: Any) -> bool:
    return _is_number(value, minimum=0.0)


def _optional_positive(value: Any) -> bool:
    return value is None or _positive(value)


def _int_at_least(minimum: int) -> Callable[[Any], bool]:
    def check(value: Any) -> bool:
        return isinstance(value, int) and not isinstance(value, bool) and value >= minimum

    return check


# settings key -> (check, what the error message says was expected)
_SETTINGS_CHECKS: dict[str, tuple[Callable[[Any], bool], str]] = {
    "timeout": (_positive, "a positive number of seconds"),
    "num_retries": (_int_at_least(0), "a non-negative integer"),
    "cost_log": (lambda v: isinstance(v, str) and bool(v.strip()), "a file path"),
    "retry_after_max": (_non_negative, "a non-negative number of seconds"),
    "first_token_timeout": (_optional_positive, "a positive number of seconds or null"),
    "stream_idle_timeout": (_optional_positive, "a positive number of seconds or null"),
    "cooldown": (_non_negative, "a non-negative number of seconds"),
    "cooldown_failures": (_int_at_least(1), "a positive integer"),
    "fallback_on_auth_error": (lambda v: isinstance(v, bool), "true or false"),
    "stream_fallback": (lambda v: v in ("buffer", "live"), "'buffer' or 'live'"),
    "budget": (lambda v: True, ""),  # checked by _check_budget
    "on_budget": (lambda v: v in ("refuse", "downgrade"), "'refuse' or 'downgrade'"),
    "batch_output_tokens": (_int_at_least(1), "a positive integer"),
}


def _check_settings(settings: Mapping[str, Any], errors: list[str]) -> None:
    for key, value in settings.items():
        if key not in _SETTINGS_CHECKS:
            errors.append(f"settings: unknown key {key!r}")
            continue
        if key == "budget":
            _check_budget(value, errors)
            continue
        check, expected = _SETTINGS_CHECKS[key]
        if not check(value):
            errors.append(f"settings.{key}: expected {expected}, got {_describe(value)}")


def _check_budget(value: Any, errors: list[str]) -> None:
    if value is None:
        return
    if not isinstance(value, Mapping):
        errors.append(f"settings.budget: expected a mapping, got {_type_name(value)}")
        return
    for key, amount in value.items():
        if key not in _BUDGET_KEYS:
            errors.append(f"settings.budget: unknown key {key!r}")
        elif key == "role_daily_usd":
            if amount is None:
                continue
            if not isinstance(amount, Mapping):
                errors.append(
                    f"settings.budget.role_daily_usd: expected a mapping of role to USD, "
                    f"got {_type_name(amount)}"
                )
                continue
            for role, cap in amount.items():
                if not _non_negative(cap):
                    errors.append(
                        f"settings.budget.role_daily_usd.{role}: expected a non-negative "
                        f"number of USD, got {_describe(cap)}"
                    )
        elif amount is not None and not _non_negative(amount):
            errors.append(
                f"settings.budget.{key}: expected a non-negative number of USD or null, "
                f"got {_describe(amount)}"
            )


def _build_settings(data: Mapping[str, Any]) -> Settings:
    values = {key: value for key, value in data.items() if key != "budget"}
    for key in (
        "timeout",
        "retry_after_max",
        "cooldown",
        "first_token_timeout",
        "stream_idle_timeout",
    ):
        if values.get(key) is not None:
            values[key] = float(values[key])
    budget = data.get("budget")
    budget_settings = None
    if isinstance(budget, Mapping):
        session, daily = budget.get("session_usd"), budget.get("daily_usd")
        budget_settings = BudgetSettings(
            session_usd=None if session is None else float(session),
            daily_usd=None if daily is None else float(daily),
            role_daily_usd={
                str(role): float(cap) for role, cap in (budget.get("role_daily_usd") or {}).items()
            },
        )
    return Settings(**values, budget=budget_settings)


def _assemble(layers: list[_Layer]) -> RouterConfig:
    """Merge parsed layers (lowest precedence first), cross-check, and build the config."""
    problems: list[tuple[str | None, str]] = []
    roles: dict[str, RoleConfig | None] = {}
    task_types: dict[str, str] = {}
    task_origin: dict[str, str | None] = {}
    settings: dict[str, Any] = {}
    budget_origin: str | None = None
    for layer in layers:
        problems.extend((layer.path, message) for message in layer.errors)
        roles.update(layer.roles)
        task_types.update(layer.task_types)
        task_origin.update(dict.fromkeys(layer.task_types, layer.path))
        settings.update(copy.deepcopy(layer.settings))
        if "budget" in layer.settings:
            budget_origin = layer.path

    for name in BUILT_IN_ROLES:
        if name not in roles:
            problems.append((None, f"roles.{name}: built-in role missing"))
    for key, role in task_types.items():
        if role not in roles:
            problems.append((task_origin[key], f"task_types.{key}: unknown role '{role}'"))
    budget = settings.get("budget")
    if isinstance(budget, Mapping) and isinstance(budget.get("role_daily_usd"), Mapping):
        for role in budget["role_daily_usd"]:
            if role not in roles:
                problems.append(
                    (budget_origin, f"settings.budget.role_daily_usd: unknown role {role!r}")
                )
    if problems:
        raise _validation_error(problems)

    valid_roles = {name: role for name, role in roles.items() if role is not None}
    return RouterConfig(
        roles=valid_roles,
        task_types=task_types,
        settings=_build_settings(settings),
        sources=[layer.path for layer in layers if layer.path is not None],
        settings_data=settings,
    )


def _validation_error(problems: list[tuple[str | None, str]]) -> ConfigValidationError:
    paths = {path for path, _ in problems}
    if len(paths) == 1:
        (path,) = paths
        return ConfigValidationError([message for _, message in problems], path=path)
    return ConfigValidationError(
        [f"{path}: {message}" if path else message for path, message in problems]
    )


def _is_number(value: Any, minimum: float | None = None) -> bool:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    if not math.isfinite(value):
        return False
    return minimum is None or value >= minimum


def _type_name(value: Any) -> str:
    if value is None:
        return "null"
    return {dict: "mapping", list: "list", str: "string", bool: "boolean"}.get(
        type(value), type(value).__name__
    )


def _describe(value: Any) -> str:
    if isinstance(value, (bool, int, float)) or value is None:
        return json.dumps(value)
    if isinstance(value, str):
        return repr(value)
    return _type_name(value)
