"""Plain-text and JSON reports of the config, the dry-run check and the cost log.

The CLI prints exactly these strings when its output is piped (and their ``*_data`` forms as
rich tables on a terminal); the coding-agent extension returns the same strings, so both say
the same thing. Nothing here imports LiteLLM, and nothing here sends a request.

JSON shapes (``json_output=True``)::

    show: {"roles": {role: {"primary": "p/m", "fallbacks": ["p/m", ...], "source": "default"}},
           "task_types": {task_type: role}, "sources": [{"scope": "global", "path": "..."}]}
    cost: {"by": "role", "log": path, "exists": true,
           "filters": {"role": null, "session": null, "since": null, "until": null},
           "groups": [{"key": ..., "calls": N, "input_tokens": N, "output_tokens": N,
                       "reasoning_tokens": N, "cost_usd": X}],
           "total": {"calls": N, "input_tokens": N, "output_tokens": N,
                     "reasoning_tokens": N, "cost_usd": X},
           "skipped": N, "skipped_lines": [line numbers, at most 20]}
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlparse

from .config import (
    ENV_REF_PREFIX,
    LOCAL_PROVIDERS,
    ModelRef,
    RouterConfig,
    config_paths,
    load_config,
)
from .cost import LOG_PATH_ENV, default_log_path, summarize
from .errors import UnsafePathError
from .roles import explain_role

__all__ = [
    "CREDENTIAL_ENV",
    "LOCAL_PROVIDERS",
    "PROVIDER_KEY_ENV",
    "KeyStatus",
    "cost_data",
    "cost_table",
    "cost_text",
    "dry_run_text",
    "format_table",
    "format_usd",
    "key_env_names",
    "key_status",
    "resolve_log_path",
    "show_data",
    "show_table",
    "show_text",
]

# Environment variables LiteLLM reads a provider's key from, the conventional name first.
PROVIDER_KEY_ENV: dict[str, tuple[str, ...]] = {
    "anthropic": ("ANTHROPIC_API_KEY",),
    "openai": ("OPENAI_API_KEY",),
    "text-completion-openai": ("OPENAI_API_KEY",),
    "gemini": ("GEMINI_API_KEY", "GOOGLE_API_KEY"),
    "deepseek": ("DEEPSEEK_API_KEY",),
    "mistral": ("MISTRAL_API_KEY",),
    "codestral": ("CODESTRAL_API_KEY",),
    "groq": ("GROQ_API_KEY",),
    "openrouter": ("OPENROUTER_API_KEY", "OR_API_KEY"),
    "xai": ("XAI_API_KEY",),
    "cohere": ("COHERE_API_KEY", "CO_API_KEY"),
    "cohere_chat": ("COHERE_API_KEY", "CO_API_KEY"),
    "together_ai": ("TOGETHERAI_API_KEY", "TOGETHER_API_KEY", "TOGETHER_AI_API_KEY"),
    "fireworks_ai": ("FIREWORKS_AI_API_KEY", "FIREWORKS_API_KEY", "FIREWORKSAI_API_KEY"),
    "perplexity": ("PERPLEXITYAI_API_KEY", "PERPLEXITY_API_KEY"),
    "deepinfra": ("DEEPINFRA_API_KEY",),
    "cerebras": ("CEREBRAS_API_KEY",),
    "sambanova": ("SAMBANOVA_API_KEY",),
    "nvidia_nim": ("NVIDIA_NIM_API_KEY",),
    "moonshot": ("MOONSHOT_API_KEY",),
    "dashscope": ("DASHSCOPE_API_KEY",),
    "huggingface": ("HUGGINGFACE_API_KEY", "HF_TOKEN"),
    "azure": ("AZURE_API_KEY", "AZURE_OPENAI_API_KEY"),
    "azure_ai": ("AZURE_AI_API_KEY",),
    "voyage": ("VOYAGE_API_KEY",),
    "nebius": ("NEBIUS_API_KEY",),
    "hyperbolic": ("HYPERBOLIC_API_KEY",),
    "minimax": ("MINIMAX_API_KEY",),
}

# Providers that authenticate with cloud credentials rather than one API key: `test` checks
# the usual variables, `export` adds no api_key reference for them.
CREDENTIAL_ENV: dict[str, tuple[str, ...]] = {
    "bedrock": ("AWS_ACCESS_KEY_ID", "AWS_PROFILE", "AWS_ROLE_NAME"),
    "sagemaker": ("AWS_ACCESS_KEY_ID", "AWS_PROFILE", "AWS_ROLE_NAME"),
    "vertex_ai": ("GOOGLE_APPLICATION_CREDENTIALS", "VERTEXAI_CREDENTIALS"),
}

_LOOPBACK_HOSTS = ("localhost", "127.0.0.1", "::1", "0.0.0.0", "host.docker.internal")


# --------------------------------------------------------------------------- tables


def format_table(
    headers: Sequence[str],
    rows: Sequence[Sequence[str]],
    *,
    right: Sequence[int] = (),
    total: Sequence[str] | None = None,
) -> str:
    """Columns aligned with two spaces between them; ``right`` lists right-aligned columns.

    A ``total`` row is set off from the others by a rule of dashes.
    """
    every = [list(headers), *map(list, rows), *([list(total)] if total is not None else [])]
    widths = [max(len(row[i]) for row in every) for i in range(len(headers))]

    def line(cells: Sequence[str]) -> str:
        parts = [
            cell.rjust(widths[i]) if i in right else cell.ljust(widths[i])
            for i, cell in enumerate(cells)
        ]
        return "  ".join(parts).rstrip()

    out = [line(headers), *(line(row) for row in rows)]
    if total is not None:
        out.append("-" * len(line(["-" * w for w in widths])))
        out.append(line(total))
    return "\n".join(out)


def _int(value: int) -> str:
    return f"{value:,}"


def format_usd(value: float, places: int | None = None) -> str:
    """A USD amount as the reports print it: ``places`` decimals (default: six below $1,
    else four)."""
    if places is None:
        # Calls to cheap models cost fractions of a cent: six places keep them visible.
        places = 4 if abs(value) >= 1 else 6
    return f"{value:,.{places}f}"


# --------------------------------------------------------------------------- show


def _file_scopes(
    config: RouterConfig, project_root: str | os.PathLike[str] | None
) -> list[dict[str, str]]:
    """The files ``config`` was read from, each with its scope (global, project, env)."""
    try:
        paths = config_paths(project_root)
    except (UnsafePathError, OSError, RuntimeError):  # scopes unknown: label files "file"
        paths = {}
    by_path: dict[str, str] = {}
    for scope, path in paths.items():
        if path is not None:
            by_path.setdefault(str(path), scope)
    return [{"scope": by_path.get(source, "file"), "path": source} for source in config.sources]


def show_data(
    config: RouterConfig | None = None,
    *,
    project_root: str | os.PathLike[str] | None = None,
) -> dict[str, Any]:
    """The merged config as plain data (the ``show --json`` shape; see the module docstring).

    ``config`` defaults to :func:`load_config` for ``project_root``.
    """
    if config is None:
        config = load_config(project_root)
    roles = {
        name: {
            "primary": str(role.primary),
            "fallbacks": [str(ref) for ref in role.fallbacks],
            "source": role.source,
        }
        for name, role in config.roles.items()
    }
    return {
        "roles": roles,
        "task_types": dict(config.task_types),
        "sources": _file_scopes(config, project_root),
    }


def show_table(data: Mapping[str, Any]) -> tuple[list[str], list[list[str]], list[str]]:
    """(headers, rows, notes) of the ``show`` table for :func:`show_data` output."""
    headers = ["ROLE", "PRIMARY", "FALLBACKS", "SOURCE"]
    rows = [
        [name, role["primary"], ", ".join(role["fallbacks"]) or "-", role["source"]]
        for name, role in data["roles"].items()
    ]
    notes: list[str] = []
    if data["task_types"]:
        pairs = ", ".join(f"{task} -> {role}" for task, role in sorted(data["task_types"].items()))
        notes.append(f"task types: {pairs}")
    if data["sources"]:
        notes.append("config files (lowest precedence first):")
        notes.extend(f"  {item['scope']}: {item['path']}" for item in data["sources"])
    else:
        notes.append("config files: none (built-in defaults)")
    return headers, rows, notes


def show_text(
    config: RouterConfig | None = None,
    *,
    project_root: str | os.PathLike[str] | None = None,
    json_output: bool = False,
) -> str:
    """What ``draht-router show`` prints when piped (``--json``: its JSON)."""
    data = show_data(config, project_root=project_root)
    if json_output:
        return json.dumps(data, indent=2)
    headers, rows, notes = show_table(data)
    return "\n".join([format_table(headers, rows), "", *notes])


# --------------------------------------------------------------------------- API keys


@dataclass(frozen=True)
class KeyStatus:
    """Whether a model's credentials are at hand, as ``test`` reports it.

    ``kind`` is ``set`` (found in the environment), ``missing`` (a warning), ``endpoint``
    (the entry has its own api_base and no key reference), ``config`` (a literal key in the
    config file), ``local`` (a local provider) or ``unknown`` (no known variable to check).
    """

    kind: Literal["set", "missing", "endpoint", "config", "local", "unknown"]
    detail: str

    @property
    def warning(self) -> bool:
        return self.kind == "missing"


def key_env_names(provider: str) -> tuple[str, ...]:
    """The environment variables LiteLLM reads ``provider``'s API key from (may be empty)."""
    return PROVIDER_KEY_ENV.get(provider, ())


def _endpoint_label(url: str) -> str:
    host = urlparse(url).hostname or ""
    local = host in _LOOPBACK_HOSTS or host.startswith("127.")
    return f"{'local' if local else 'own'} endpoint {url}"


def key_status(ref: ModelRef, environ: Mapping[str, str] | None = None) -> KeyStatus:
    """Whether ``ref`` has an API key in ``environ`` (default: ``os.environ``); never the key."""
    env = os.environ if environ is None else environ
    api_key = ref.params.get("api_key")
    endpoint = ref.params.get("api_base") or ref.params.get("base_url")
    if isinstance(api_key, str) and api_key.startswith(ENV_REF_PREFIX):
        name = api_key[len(ENV_REF_PREFIX) :]
        if env.get(name):
            return KeyStatus("set", f"{name} is set")
        return KeyStatus("missing", f"{name} is not set (the entry's api_key names it)")
    if endpoint:
        suffix = "; key written in the config" if api_key else ""
        return KeyStatus("endpoint", _endpoint_label(str(endpoint)) + suffix)
    if api_key is not None:
        return KeyStatus("config", "key written in the config file (os.environ/NAME is safer)")
    if ref.provider in LOCAL_PROVIDERS:
        return KeyStatus("local", "local provider; no key needed")
    names = key_env_names(ref.provider) or CREDENTIAL_ENV.get(ref.provider, ())
    if not names:
        return KeyStatus("unknown", f"no known key variable for provider '{ref.provider}'")
    for name in names:
        if env.get(name):
            return KeyStatus("set", f"{name} is set")
    return KeyStatus("missing", f"{' or '.join(names)} is not set")


def dry_run_text(
    config: RouterConfig | None = None,
    *,
    role: str | None = None,
    task: str | None = None,
    environ: Mapping[str, str] | None = None,
    project_root: str | os.PathLike[str] | None = None,
) -> tuple[str, int]:
    """What ``draht-router test`` prints, and how many models lack a key (warnings).

    Without ``role`` and ``task`` every role is listed; ``task`` (a task type or free text)
    first says which role it maps to and why, then lists that role. Raises UnknownRoleError
    for an unknown ``role``.
    """
    if config is None:
        config = load_config(project_root)
    lines = ["Dry run: no request is sent."]
    if task is not None:
        choice = explain_role(task, config.task_types, roles=config.roles)
        lines.append(f"task {task!r} -> role {choice.role} ({choice.reason})")
        names = [choice.role]
    elif role is not None:
        names = [role]
    else:
        names = list(config.roles)
    warnings = 0
    for name in names:
        chain = config.role(name).chain
        lines.append("")
        lines.append(f"{name}: chain of {len(chain)}")
        width = max(len(str(ref)) for ref in chain)
        for index, ref in enumerate(chain):
            position = "primary" if index == 0 else f"fallback {index}"
            status = key_status(ref, environ)
            mark = "warning:" if status.warning else "ok:"
            warnings += status.warning
            lines.append(f"  {position:<10}  {str(ref):<{width}}  {mark} {status.detail}")
    lines.append("")
    if warnings:
        plural = "s" if warnings != 1 else ""
        lines.append(
            f"{warnings} model{plural} without an API key in the environment; calls to "
            f"{'them' if warnings != 1 else 'it'} will fail over or fail."
        )
    else:
        lines.append("Every model has its credentials or needs none.")
    return "\n".join(lines), warnings


# --------------------------------------------------------------------------- cost


def resolve_log_path(
    log_path: str | os.PathLike[str] | None = None,
    *,
    config: RouterConfig | None = None,
    project_root: str | os.PathLike[str] | None = None,
) -> Path:
    """The cost log to read: ``log_path``, else ``$DRAHT_COST_LOG``, else the config's
    ``settings.cost_log`` (a relative path is under the working directory)."""
    if log_path is not None:
        path = Path(log_path).expanduser()
        return path if path.is_absolute() else Path.cwd() / path
    if os.environ.get(LOG_PATH_ENV):
        return default_log_path()
    if config is None:
        config = load_config(project_root)
    return default_log_path(config.settings.cost_log)


def _group(values: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "calls": values["calls"],
        "input_tokens": values["total_input_tokens"],
        "output_tokens": values["total_output_tokens"],
        "reasoning_tokens": values["total_reasoning_tokens"],
        "cost_usd": values["total_cost"],
    }


def cost_data(
    log_path: str | os.PathLike[str] | None = None,
    *,
    role: str | None = None,
    session: str | None = None,
    by: str = "role",
    since: str | None = None,
    until: str | None = None,
    config: RouterConfig | None = None,
) -> dict[str, Any]:
    """Spend from the cost log as plain data (the ``cost --json`` shape; see the module
    docstring). Raises ValueError for an unknown ``by`` or an unreadable time bound."""
    path = resolve_log_path(log_path, config=config)
    exists = path.is_file()
    summary = summarize(by, since=since, until=until, log_path=path, role=role, session=session)
    return {
        "by": by,
        "log": str(path),
        "exists": exists,
        "filters": {"role": role, "session": session, "since": since, "until": until},
        "groups": [{"key": key, **_group(values)} for key, values in summary.items()],
        "total": _group(summary.total),
        "skipped": summary.skipped,
        "skipped_lines": list(summary.skipped_lines),
    }


def _filter_words(filters: Mapping[str, Any]) -> str:
    words = [f"{name} {value!r}" for name, value in filters.items() if value is not None]
    return f" ({', '.join(words)})" if words else ""


def cost_table(
    data: Mapping[str, Any],
) -> tuple[list[str], list[list[str]], list[str] | None, list[str], list[str]]:
    """(headers, rows, total row, lines before, lines after) of the ``cost`` report for
    :func:`cost_data` output; no rows and no total when nothing was logged."""
    before: list[str] = []
    after: list[str] = []
    where = _filter_words(data["filters"])
    if not data["exists"]:
        return [], [], None, [f"No cost log at {data['log']}"], []
    if data["skipped"]:
        count = data["skipped"]
        shown = ", ".join(map(str, data["skipped_lines"]))
        more = ", ..." if count > len(data["skipped_lines"]) else ""
        after.append(
            f"skipped {count} corrupt line{'s' if count != 1 else ''} (line "
            f"{shown}{more}) in {data['log']}"
        )
    if not data["groups"]:
        before.append(f"No calls logged in {data['log']}{where}")
        return [], [], None, before, after
    before.append(f"Cost by {data['by']}{where}: {data['log']}")
    headers = [data["by"].upper(), "CALLS", "INPUT TOKENS", "OUTPUT TOKENS", "COST (USD)"]
    places = 4 if data["total"]["cost_usd"] >= 1 else 6  # one precision for the whole column

    def cells(label: str, group: Mapping[str, Any]) -> list[str]:
        return [
            label,
            _int(group["calls"]),
            _int(group["input_tokens"]),
            _int(group["output_tokens"]),
            format_usd(group["cost_usd"], places),
        ]

    rows = [cells(str(group["key"]), group) for group in data["groups"]]
    return headers, rows, cells("TOTAL", data["total"]), before, after


def cost_text(
    log_path: str | os.PathLike[str] | None = None,
    *,
    role: str | None = None,
    session: str | None = None,
    by: str = "role",
    since: str | None = None,
    until: str | None = None,
    json_output: bool = False,
    config: RouterConfig | None = None,
) -> str:
    """What ``draht-router cost`` prints when piped (``--json``: its JSON)."""
    data = cost_data(
        log_path, role=role, session=session, by=by, since=since, until=until, config=config
    )
    if json_output:
        return json.dumps(data, indent=2)
    headers, rows, total, before, after = cost_table(data)
    parts = list(before)
    if rows:
        parts.append(format_table(headers, rows, right=(1, 2, 3, 4), total=total))
    parts.extend(after)
    return "\n".join(parts)
