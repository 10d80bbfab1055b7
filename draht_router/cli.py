"""The ``draht-router`` command line (also ``python -m draht_router``).

Commands that send no request (show, set, test, validate, cost, export, --help) never import
LiteLLM, so they answer in a fraction of a second; ``run`` and ``demo`` import it when they
need it. Rich is imported only to draw a table on a terminal.

Exit codes: 0 success, 1 a model call or file I/O failed, 2 a usage or config error.
"""

from __future__ import annotations

import json
import os
import re
import sys
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:  # pragma: no cover
    from .config import RouterConfig

SESSION_ENV = "DRAHT_SESSION_ID"


class _State:
    """Process-wide CLI flags, read by the error handler in :func:`main`."""

    debug = False


def _echo(text: str = "", *, err: bool = False) -> None:
    click.echo(text, err=err)


def _stdout_is_terminal() -> bool:
    try:
        return sys.stdout.isatty()
    except (AttributeError, ValueError):
        return False


def _print_table(
    headers: Sequence[str],
    rows: Sequence[Sequence[str]],
    *,
    right: Sequence[int] = (),
    total: Sequence[str] | None = None,
    title: str | None = None,
) -> None:
    """A rich table on a terminal (the only place rich is imported)."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title, title_justify="left", header_style="bold")
    for index, header in enumerate(headers):
        if index in right:
            table.add_column(header, justify="right", no_wrap=True)
        else:  # a model name cut to "claude-sonnet-…" is useless: wrap it instead
            table.add_column(header, overflow="fold")
    for number, row in enumerate(rows):
        table.add_row(*row, end_section=total is not None and number == len(rows) - 1)
    if total is not None:
        table.add_row(*total, style="bold")
    Console().print(table)


# --------------------------------------------------------------------------- the group


class _Commands(click.Group):
    """The command group; ``batch`` is imported only when it is used or listed, so the
    other commands do not pay for its imports (asyncio, signal handling)."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), "batch"})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name == "batch":
            from .batch_cli import batch_command

            return batch_command
        return super().get_command(ctx, cmd_name)


@click.group(
    cls=_Commands,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
@click.option("--debug", is_flag=True, help="Show the full traceback when a command fails.")
@click.version_option(version=None, package_name="draht-router", prog_name="draht-router")
def cli(debug: bool) -> None:
    """Route LLM calls by role (architect, implement, review, ...) with fall-over chains.

    \b
    Exit codes: 0 ok, 1 a model call or file I/O failed, 2 usage or config error.
    Output is a table on a terminal, plain aligned text when piped, JSON with --json.
    Config: .draht/router.yaml (project) over ~/.draht/router.yaml (global) over the
    built-in defaults; $DRAHT_ROUTER_CONFIG names a file that replaces the project file.
    """
    _State.debug = _State.debug or debug


# --------------------------------------------------------------------------- show


@cli.command()
@click.option("--json", "json_output", is_flag=True, help="Print JSON (shape below).")
def show(json_output: bool) -> None:
    """Show the merged config: each role's primary, fallbacks and where it came from.

    SOURCE is default (built in), global (~/.draht/router.yaml), project
    (.draht/router.yaml) or env (the file named by $DRAHT_ROUTER_CONFIG).

    \b
    --json prints:
      {"roles": {ROLE: {"primary": "provider/model", "fallbacks": ["provider/model", ...],
                        "source": "default|global|project|env"}},
       "task_types": {TASK_TYPE: ROLE},
       "sources": [{"scope": "global|project|env", "path": FILE}]}
    """
    from .report import show_data, show_table, show_text

    if json_output or not _stdout_is_terminal():
        _echo(show_text(json_output=json_output))
        return
    headers, rows, notes = show_table(show_data())
    _print_table(headers, rows, title="draht-router roles")
    for note in notes:
        _echo(note)


# --------------------------------------------------------------------------- set


def _split_models(value: str | None) -> list[str] | None:
    if value is None:
        return None
    return [part.strip() for part in value.split(",") if part.strip()]


def _entry_name(entry: Any) -> str:
    """``provider/model`` of a chain entry as a config file holds it (string or mapping)."""
    if not isinstance(entry, dict):
        return str(entry).strip()
    model = str(entry.get("model", "")).strip()
    provider = entry.get("provider")
    return f"{provider}/{model}" if isinstance(provider, str) else model


def _same_model(entry: Any, name: str) -> bool:
    return _entry_name(entry) == name


@cli.command(name="set")
@click.argument("role")
@click.argument("model", metavar="PROVIDER/MODEL")
@click.option(
    "--fallback",
    "fallbacks",
    metavar="A/B,C/D",
    help="Comma-separated fallback chain, in order. --fallback '' clears it.",
)
@click.option(
    "--global", "global_scope", is_flag=True, help="Write ~/.draht/router.yaml instead."
)
def set_role(role: str, model: str, fallbacks: str | None, global_scope: bool) -> None:
    """Set ROLE's primary model (and optionally its fallbacks) in a config file.

    Writes the project file .draht/router.yaml (with --global: ~/.draht/router.yaml)
    atomically, keeping every other role, task type and setting that file already had.
    The result is validated before anything is written.

    Without --fallback, ROLE keeps the fallbacks it had in that same file (minus the new
    primary, if it was one of them); a role the file did not define gets none, even if the
    defaults or another file give it some. A model that was already in the role's chain in
    that file keeps its parameters (api_base, api_key: os.environ/NAME, prices).

    \b
    Example: draht-router set implement anthropic/claude-sonnet-4-6 \\
                 --fallback openai/gpt-5.2,deepseek/deepseek-v3.2
    """
    from .config import CONFIG_ENV_VAR, config_paths, read_config_file, save_config

    scope = "global" if global_scope else "project"
    existing = config_paths().get(scope)
    data = read_config_file(existing) if existing is not None else {}
    roles = data.setdefault("roles", {})
    if not isinstance(roles, dict):
        raise click.UsageError(f"{existing}: 'roles' is not a mapping; fix the file first")
    old = roles.get(role) if isinstance(roles.get(role), dict) else {}
    old_chain = [old.get("primary"), *(old.get("fallbacks") or [])]
    old_chain = [entry for entry in old_chain if entry is not None]

    def entry_for(name: str) -> Any:
        for entry in old_chain:
            if _same_model(entry, name):
                return entry
        return name

    wanted = _split_models(fallbacks)
    if wanted is None:
        kept = [e for e in (old.get("fallbacks") or []) if not _same_model(e, model.strip())]
    else:
        kept = [entry_for(name) for name in wanted]
    roles[role] = {"primary": entry_for(model.strip()), "fallbacks": kept}
    written = save_config(data, scope=scope)

    chain = " -> ".join(_entry_name(entry) for entry in [roles[role]["primary"], *kept])
    _echo(f"set {role}: {chain}")
    _echo(f"wrote {written}")
    if existing is not None and existing.resolve() != written.resolve():
        _echo(f"note: {existing} is no longer read; {written.name} takes precedence", err=True)
    if scope == "project" and os.environ.get(CONFIG_ENV_VAR):
        _echo(
            f"note: ${CONFIG_ENV_VAR} is set, so the project file is not read "
            f"(it reads {os.environ[CONFIG_ENV_VAR]})",
            err=True,
        )


# --------------------------------------------------------------------------- test


@cli.command(name="test")
@click.argument("role", required=False)
@click.option("--task", metavar="TEXT", help="A task type or free-text description to map.")
def test_roles(role: str | None, task: str | None) -> None:
    """Dry run: what each role (or ROLE) resolves to, with no request sent.

    For every model in the chain it says whether the API key is in the environment:
    the provider's variable (ANTHROPIC_API_KEY, OPENAI_API_KEY, GEMINI_API_KEY or
    GOOGLE_API_KEY, ...), the variable an entry's api_key: os.environ/NAME names, or
    "local endpoint" for an entry with its own api_base. Missing keys are warnings:
    the exit code is still 0.

    --task shows which role a task type (e.g. pr-review) or a free-text description
    (e.g. "explain this stack trace") maps to, and why.
    """
    from .report import dry_run_text

    if role is not None and task is not None:
        raise click.UsageError("give ROLE or --task, not both")
    text, _warnings = dry_run_text(role=role, task=task)
    _echo(text)


# --------------------------------------------------------------------------- validate


def _validation_lines(exc: Any, path: str | None = None) -> list[str]:
    where = path or getattr(exc, "path", None)
    prefix = f"{where}: " if where else ""
    return [f"{prefix}{message}" for message in exc.errors]


@cli.command()
@click.argument("file", required=False, type=click.Path(exists=True, dir_okay=False))
def validate(file: str | None) -> None:
    """Check a config file (or, without FILE, the merged config from the usual files).

    Prints "valid: FILE" and exits 0, or prints every problem on its own line to stderr
    and exits 2. A YAML or JSON syntax error is one line naming the file and line.
    """
    from .config import config_from_dict, load_config, read_config_file
    from .errors import ConfigError, ConfigValidationError

    try:
        if file is not None:
            config_from_dict(read_config_file(file), source="file")
            _echo(f"valid: {file}")
            return
        config = load_config()
    except ConfigValidationError as exc:
        for line in _validation_lines(exc, file):
            _echo(line, err=True)
        raise click.exceptions.Exit(2) from None
    except ConfigError as exc:
        _echo(str(exc), err=True)
        raise click.exceptions.Exit(2) from None
    _echo(f"valid: {', '.join(config.sources) or 'built-in defaults (no config file)'}")


# --------------------------------------------------------------------------- cost


def _time_bound(_ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    if value is None:
        return None
    from .cost import parse_time_bound

    try:
        parse_time_bound(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param=param) from None
    return value


@cli.command()
@click.option("--role", help="Only this role's calls.")
@click.option("--session", help="Only this session's calls.")
@click.option("--current", is_flag=True, help=f"Only the current session (${SESSION_ENV}).")
@click.option(
    "--by",
    type=click.Choice(["role", "model", "session", "day"]),
    default="role",
    show_default=True,
    help="Group rows by this key (day is the UTC date).",
)
@click.option("--since", callback=_time_bound, metavar="7d|DATE", help="From this time on.")
@click.option("--until", callback=_time_bound, metavar="DATE", help="Up to this date (incl.).")
@click.option("--log", "log_path", type=click.Path(dir_okay=False), help="Cost log to read.")
@click.option("--json", "json_output", is_flag=True, help="Print JSON (shape below).")
def cost(
    role: str | None,
    session: str | None,
    current: bool,
    by: str,
    since: str | None,
    until: str | None,
    log_path: str | None,
    json_output: bool,
) -> None:
    """Spend from the cost log: calls, tokens and USD per group, and a total.

    The log is --log, else $DRAHT_COST_LOG, else the config's settings.cost_log
    (.draht/cost-log.jsonl). --since takes a time ago (30m, 24h, 7d, 2w), a date or an
    ISO time; --until DATE includes that whole day. Lines that are not cost rows are
    skipped and counted. A missing or empty log is reported plainly (exit 0).

    \b
    --json prints:
      {"by": "role", "log": PATH, "exists": true,
       "filters": {"role": null, "session": null, "since": null, "until": null},
       "groups": [{"key": K, "calls": N, "input_tokens": N, "output_tokens": N,
                   "reasoning_tokens": N, "cost_usd": X}, ...],
       "total": {"calls": N, "input_tokens": N, "output_tokens": N,
                 "reasoning_tokens": N, "cost_usd": X},
       "skipped": N, "skipped_lines": [LINE, ...]}
    """
    from .report import cost_data, cost_table, cost_text

    if current:
        if session is not None:
            raise click.UsageError("give --session or --current, not both")
        session = os.environ.get(SESSION_ENV)
        if not session:
            raise click.UsageError(f"--current needs ${SESSION_ENV} to be set")
    options: dict[str, Any] = {
        "role": role, "session": session, "by": by, "since": since, "until": until
    }
    if json_output or not _stdout_is_terminal():
        _echo(cost_text(log_path, json_output=json_output, **options))
        return
    headers, rows, total, before, after = cost_table(cost_data(log_path, **options))
    for line in before:
        _echo(line)
    if rows:
        _print_table(headers, rows, right=(1, 2, 3, 4), total=total)
    for line in after:
        _echo(line)


# --------------------------------------------------------------------------- run


def _read_prompt(prompt: str | None) -> str:
    if prompt == "-" or (prompt is None and not sys.stdin.isatty()):
        text = sys.stdin.read()
    elif prompt is None:
        raise click.UsageError("give a PROMPT, or pipe one on stdin")
    else:
        text = prompt
    if not text.strip():
        raise click.UsageError("the prompt is empty")
    return text


def _provider_error_line(exc: BaseException, role: str | None) -> str:
    """One line for a provider failure: role, model, status, message (keys redacted)."""
    from .log import redact

    provider = getattr(exc, "llm_provider", None) or ""
    model = getattr(exc, "model", None) or ""
    if provider and model and not str(model).startswith(f"{provider}/"):
        model = f"{provider}/{model}"
    status = getattr(exc, "status_code", None)
    message = str(getattr(exc, "message", None) or exc)
    # LiteLLM prefixes "litellm.RateLimitError: RateLimitError: OpenAIException - ".
    message = re.sub(r"^(?:litellm\.\w+:\s*)?(?:\w+Error:\s*)?(?:\w+Exception\s*-\s*)?", "",
                     message)
    message = redact(" ".join(message.split()))
    if len(message) > 300:
        message = message[:297] + "..."
    parts = []
    if role:
        parts.append(f"role {role}")
    if model:
        parts.append(f"model {model}")
    status_text = f"provider status {status}" if isinstance(status, int) else "no provider status"
    parts.append(f"{status_text} ({type(exc).__name__})")
    return ", ".join(parts) + f": {message}"


def _is_provider_error(exc: BaseException) -> bool:
    return any(hasattr(exc, name) for name in ("status_code", "llm_provider")) or (
        type(exc).__module__.startswith("litellm")
    )


def _cost_row(log_path: Path, offset: int, routing: dict[str, Any]) -> dict[str, Any] | None:
    """The row this call appended to the cost log (found after ``offset``), if any."""
    try:
        with open(log_path, "rb") as fh:
            fh.seek(offset)
            data = fh.read()
    except OSError:
        return None
    found = None
    for line in data.decode("utf-8", "replace").splitlines():
        try:
            row = json.loads(line)
        except ValueError:
            continue
        if (
            isinstance(row, dict)
            and row.get("sessionId") == routing.get("session_id")
            and row.get("role") == routing.get("role")
        ):
            found = row
    return found


def _file_size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


@cli.command()
@click.option("--task", metavar="TYPE", help="Task type or description that picks the role.")
@click.option("--role", help="Role whose chain answers.")
@click.option("--model", metavar="PROVIDER/MODEL", help="Call this one model, no chain.")
@click.option("--no-stream", is_flag=True, help="Wait for the whole answer, then print it.")
@click.argument("prompt", required=False)
def run(
    task: str | None, role: str | None, model: str | None, no_stream: bool, prompt: str | None
) -> None:
    """Send PROMPT through the router and print the answer (PROMPT - reads stdin).

    The role is --role, or the one --task maps to, or (with neither) the one the prompt's
    own words suggest (see `draht-router test --task`). --model calls one model directly,
    bypassing the chains (logged as role "direct").

    The answer streams to stdout. With settings.stream_fallback: buffer (the default) only a
    complete answer is shown, so a fall-over never mixes two models' text; live shows the
    first token sooner but can fall over only before it. Which model answered, any retries
    and fall-overs, tokens and cost go to stderr. Exit 1 when the call fails, with one line:
    role, model, provider status and message.
    """
    from .config import load_config
    from .roles import explain_role

    chosen = [name for name, value in (("--task", task), ("--role", role), ("--model", model))
              if value is not None]
    if len(chosen) > 1:
        raise click.UsageError(f"give only one of --task, --role, --model (got {chosen})")
    text = _read_prompt(prompt)
    config = load_config()
    call: dict[str, Any] = {"messages": [{"role": "user", "content": text}]}
    if model is not None:
        from .model_map import canonical_provider, known_providers

        provider = canonical_provider(model.split("/", 1)[0]) if "/" in model else ""
        providers = known_providers()
        if provider and providers and provider not in providers:
            raise click.BadParameter(f"unknown provider '{provider}'", param_hint="--model")
        label = "direct"
        _echo(f"model: {model} (direct call, no chain)", err=True)
        call["model"] = model
    else:
        if role is not None:
            config.role(role)  # UnknownRoleError (exit 2) before LiteLLM is loaded
            label, reason = role, "--role"
        else:
            choice = explain_role(task if task is not None else text, config.task_types,
                                  roles=config.roles)
            label, reason = choice.role, choice.reason
            if task is not None:
                call["task_type"] = task
        _echo(f"role: {label} ({reason})", err=True)
        call["role"] = label
    _call_and_print(config, call, label, stream=not no_stream)


def _call_and_print(config: RouterConfig, call: dict[str, Any], role: str, *, stream: bool) -> None:
    from .demo import answer_pieces, describe_route_events
    from .log import capture_events
    from .router import ModelRouter

    router = ModelRouter(config)
    offset = _file_size(router.log_path)
    last = ""
    try:
        events: list[dict[str, Any]] = []
        try:
            with capture_events() as events:
                response = router.completion(stream=stream, **call)
        finally:
            # Retries and fall-overs happen before the answer is handed out: report them first.
            for line in describe_route_events(events):
                _echo(line, err=True)
        if stream:
            routing = dict(response.routing)
            for piece in answer_pieces(response):
                sys.stdout.write(piece)
                sys.stdout.flush()
                last = piece
        else:
            routing = dict(getattr(response, "_hidden_params", {}).get("draht_router") or {})
            last = response.choices[0].message.content or ""
            sys.stdout.write(last)
    except Exception as exc:
        if not _is_provider_error(exc):
            raise
        if _State.debug:
            traceback.print_exc()
        _echo(f"error: {_provider_error_line(exc, role)}", err=True)
        raise click.exceptions.Exit(1) from None
    finally:
        if last and not last.endswith("\n"):
            sys.stdout.write("\n")
        sys.stdout.flush()
    _report_call(routing, router.log_path, offset)


def _report_call(routing: dict[str, Any], log_path: Path, offset: int) -> None:
    from .report import format_usd

    attempts = routing.get("attempts") or 1
    model = routing.get("model") or "?"
    line = f"answered by {model}"
    if routing.get("role") and routing.get("role") != "direct":
        line += f" (role {routing['role']}, {attempts} attempt{'s' if attempts != 1 else ''}"
        if routing.get("fallback_from"):
            line += f", fell over from {routing['fallback_from']}"
        line += ")"
    _echo(line, err=True)
    row = _cost_row(log_path, offset, routing)
    if row is None:
        _echo(f"tokens and cost: no cost row was written to {log_path}", err=True)
        return
    tokens_in = row.get("inputTokens", 0)
    tokens_out = row.get("outputTokens", 0)
    cost_usd = float(row.get("estimatedCostUsd") or 0.0)
    _echo(f"tokens: {tokens_in} in, {tokens_out} out; cost ${format_usd(cost_usd)} "
          f"(logged to {log_path})", err=True)


# --------------------------------------------------------------------------- demo


@cli.command()
def demo() -> None:
    """Watch role routing and fall-over with simulated providers: no key, no network.

    A local stub server plays a primary and a backup model per role; three primaries fail
    (a 429, a stream cut mid-answer, a 503) so the router falls over to their backups. Five
    tasks are routed, their answers streamed, and the cost table printed from a temporary log
    (your own cost log is not touched). Takes a few seconds, most of it loading LiteLLM.
    """
    from .demo import run_demo

    terminal = _stdout_is_terminal()

    def print_cost(log_path: Path) -> None:
        # Only on a terminal: piped, run_demo prints the same table as plain text.
        from .report import cost_data, cost_table

        headers, rows, total, before, after = cost_table(cost_data(log_path, by="model"))
        if rows:
            _print_table(headers, rows, right=(1, 2, 3, 4), total=total)
        for line in [*(before if not rows else []), *after]:
            _echo(line)

    # On a terminal the replayed answers trickle out, so the stream is visible.
    code = run_demo(
        chunk_delay=0.01 if terminal else 0.0, print_cost=print_cost if terminal else None
    )
    if code:
        raise click.exceptions.Exit(code)


# --------------------------------------------------------------------------- export


@cli.group()
def export() -> None:
    """Write the routing config in another tool's format."""


@export.command(name="litellm-proxy")
@click.option(
    "-o", "--output", type=click.Path(dir_okay=False), help="Write to FILE instead of stdout."
)
def export_litellm_proxy(output: str | None) -> None:
    """A LiteLLM Proxy config.yaml with the same chains.

    model_list has one model_name per chain entry: ROLE for the primary and
    ROLE/fallback-N after it; router_settings.fallbacks walks them in order; num_retries
    and timeout come from settings; litellm_settings.drop_params is true. Secrets stay
    os.environ/NAME references; an entry with no api_key (and no api_base of its own)
    gets api_key: os.environ/<PROVIDER>_API_KEY.
    """
    from .config import load_config
    from .export import proxy_config_yaml

    text = proxy_config_yaml(load_config())
    if output is None:
        click.echo(text, nl=False)
        return
    Path(output).write_text(text, encoding="utf-8")
    _echo(f"wrote {output}", err=True)


# --------------------------------------------------------------------------- batch



# --------------------------------------------------------------------------- entry point


def _error_lines(exc: BaseException) -> tuple[int, list[str]]:
    """(exit code, lines) for an error that ended a command."""
    from .errors import (
        BudgetExceededError,
        ConfigError,
        ConfigValidationError,
        DrahtRouterError,
        UnknownRoleError,
        UnsafePathError,
    )

    if isinstance(exc, ConfigValidationError):
        return 2, _validation_lines(exc)
    if isinstance(exc, (ConfigError, UnknownRoleError, UnsafePathError)):
        return 2, [str(exc)]
    if isinstance(exc, BudgetExceededError):
        return 1, [str(exc)]
    if isinstance(exc, DrahtRouterError):
        return 1, [str(exc)]
    if _is_provider_error(exc):
        return 1, [_provider_error_line(exc, None)]
    if isinstance(exc, OSError):
        where = f"{exc.filename}: " if getattr(exc, "filename", None) else ""
        return 1, [f"{where}{exc.strerror or exc}"]
    hint = "" if _State.debug else " (run with --debug for the traceback)"
    return 1, [f"{type(exc).__name__}: {exc}{hint}"]


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI with ``argv`` (default: ``sys.argv[1:]``); returns the exit code."""
    args = list(sys.argv[1:] if argv is None else argv)
    # Set before parsing, so an error raised while parsing already honours --debug.
    _State.debug = "--debug" in args
    try:
        result = cli.main(args=args, prog_name="draht-router", standalone_mode=False)
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except click.Abort:
        _echo("aborted", err=True)
        return 130
    except KeyboardInterrupt:
        _echo("interrupted", err=True)
        return 130
    except BrokenPipeError:
        # The reader went away (`| head`): nothing left to say, and nowhere to say it.
        try:
            sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - silence the exit-time flush
        except OSError:
            pass
        return 1
    except Exception as exc:  # noqa: BLE001 - every failure becomes one line
        code, lines = _error_lines(exc)
        if _State.debug:
            traceback.print_exc()
        for line in lines:
            _echo(f"error: {line}", err=True)
        return code
    return result if isinstance(result, int) else 0
