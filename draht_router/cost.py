"""The cost log: one JSON line per model call, the estimates that fill it, summaries, budgets.

The log is JSON Lines shared with draht's TypeScript tools (camelCase keys). Rows are appended
as single whole lines, so any number of threads and processes may write to one file. Reading
streams the file and skips, counts and reports lines that are not rows.

This module never imports LiteLLM: prices come from :mod:`draht_router.model_map`, which reads
LiteLLM's price map file directly.
"""

from __future__ import annotations

import functools
import json
import os
import re
import sys
import threading
import time
from collections import deque
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from math import isfinite
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from draht_router import model_map
from draht_router.errors import BudgetExceededError

if TYPE_CHECKING:
    import subprocess

    from draht_router.config import BudgetSettings

try:
    import fcntl as _fcntl
except ImportError:  # pragma: no cover - Windows: O_APPEND alone keeps each row whole
    _fcntl = None  # type: ignore[assignment]

__all__ = [
    "COST_PER_MILLION_TOKENS",
    "DEFAULT_LOG_PATH",
    "DEFAULT_RATES",
    "SUMMARY_KEYS",
    "BudgetTracker",
    "CostEntry",
    "CostLog",
    "CostSummary",
    "default_log_path",
    "estimate_cost",
    "get_role_costs",
    "get_session_costs",
    "log_cost",
    "now_timestamp",
    "parse_time_bound",
    "read_cost_log",
    "safe_log_cost",
    "summarize",
    "write_failures",
]

DEFAULT_LOG_PATH = ".draht/cost-log.jsonl"
LOG_PATH_ENV = "DRAHT_COST_LOG"

# Groupings accepted by summarize().
SUMMARY_KEYS: tuple[str, ...] = ("role", "model", "session", "day")

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

_UTC = timezone.utc
_BLOCK_SIZE = 1 << 20  # bytes read per system call while streaming the log
_MAX_LINE = 1 << 20  # longer lines are counted as corrupt without being held in memory
_MAX_SKIPPED_LINES = 20  # skipped line numbers remembered per pass
_OVERSIZE = "\x00oversize"  # stands in for a line longer than _MAX_LINE (never valid JSON)
_DEDUPE_WINDOW = 1024  # rows a BudgetTracker remembers for matching record() calls
# summarize() splits a log at least this large among processes (below it, starting one costs
# more than it saves); at most this many, the calling process being one of them.
_PARALLEL_MIN_BYTES = 64 << 20
_MAX_PROCESSES = 4
# Overrides _PARALLEL_MIN_BYTES (a number of bytes), read at each call: a tuning knob, and how
# tests make summarize() split small logs.
PARALLEL_MIN_BYTES_ENV = "DRAHT_SUMMARY_PARALLEL_MIN_BYTES"
_WORKER_MODULE = "draht_router._summary_worker"
# How long summarize() waits for its workers after reading its own range, at least.
_WORKER_WAIT_SECONDS = 30.0

_REQUIRED = ("timestamp", "role", "provider", "model", "inputTokens", "outputTokens",
             "estimatedCostUsd", "sessionId")
# (attribute, camelCase key, snake_case key) of every CostEntry field.
_FIELDS: tuple[tuple[str, str, str], ...] = (
    ("timestamp", "timestamp", "timestamp"),
    ("role", "role", "role"),
    ("provider", "provider", "provider"),
    ("model", "model", "model"),
    ("input_tokens", "inputTokens", "input_tokens"),
    ("output_tokens", "outputTokens", "output_tokens"),
    ("estimated_cost_usd", "estimatedCostUsd", "estimated_cost_usd"),
    ("session_id", "sessionId", "session_id"),
    ("reasoning_tokens", "reasoningTokens", "reasoning_tokens"),
    ("task_type", "taskType", "task_type"),
    ("cache_read_tokens", "cacheReadTokens", "cache_read_tokens"),
    ("cache_write_tokens", "cacheWriteTokens", "cache_write_tokens"),
    ("latency_ms", "latencyMs", "latency_ms"),
    ("attempts", "attempts", "attempts"),
    ("fallback_from", "fallbackFrom", "fallback_from"),
)
_EXTRAS = _FIELDS[9:]

_write_failures = 0
_write_failures_lock = threading.Lock()


# --------------------------------------------------------------------------- rows


def now_timestamp() -> str:
    """The current UTC time as the log writes it: ``2026-12-03T18:12:42.123Z``."""
    return _format_timestamp(datetime.now(_UTC))


def _format_timestamp(moment: datetime) -> str:
    moment = _as_utc(moment)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


@dataclass
class CostEntry:
    """One model call in the cost log.

    ``output_tokens`` includes ``reasoning_tokens`` (OpenAI's convention);
    ``cache_read_tokens`` and ``cache_write_tokens`` are parts of ``input_tokens``.
    """

    timestamp: str
    role: str
    provider: str
    model: str
    input_tokens: int
    output_tokens: int
    estimated_cost_usd: float
    session_id: str
    reasoning_tokens: int = 0
    task_type: str | None = None
    cache_read_tokens: int | None = None
    cache_write_tokens: int | None = None
    latency_ms: float | None = None
    attempts: int | None = None
    fallback_from: str | None = None

    def to_json_dict(self) -> dict[str, Any]:
        """The log row: camelCase keys; zero reasoning tokens and unset extras left out."""
        row: dict[str, Any] = {
            "timestamp": self.timestamp,
            "role": self.role,
            "provider": self.provider,
            "model": self.model,
            "inputTokens": self.input_tokens,
            "outputTokens": self.output_tokens,
        }
        if self.reasoning_tokens > 0:
            row["reasoningTokens"] = self.reasoning_tokens
        row["estimatedCostUsd"] = self.estimated_cost_usd
        row["sessionId"] = self.session_id
        for attr, camel, _snake in _EXTRAS:
            value = getattr(self, attr)
            if value is not None:
                row[camel] = value
        return row

    @classmethod
    def from_json_dict(cls, data: Mapping[str, Any]) -> CostEntry:
        """The entry for a log row with camelCase or snake_case keys.

        Unknown keys are ignored and optional ones may be missing; raises ValueError when a
        required field is missing or has the wrong type.
        """
        core = _core(data)
        if core is None:
            raise ValueError(_core_problem(data))
        ts, role, provider, model, inp, out, reasoning, cost, session = core
        extras: dict[str, Any] = {}
        for attr, camel, snake in _EXTRAS:
            value = data.get(camel)
            if value is None and snake != camel:
                value = data.get(snake)
            extras[attr] = _extra_value(attr, value)
        return cls(ts, role, provider, model, inp, out, cost, session, reasoning, **extras)


def _extra_value(attr: str, value: Any) -> Any:
    """An optional field's value, or None when it is missing or unusable."""
    if value is None:
        return None
    if attr in ("task_type", "fallback_from"):
        return value if isinstance(value, str) else None
    if attr == "latency_ms":
        return value if type(value) in (int, float) else None
    try:
        return _as_int(value, attr)
    except ValueError:
        return None


def _core_problem(data: Mapping[str, Any]) -> str:
    """Why :func:`_core` rejects a row."""
    for attr, camel, snake in _FIELDS[:9]:
        value = data.get(camel)
        if value is None:
            value = data.get(snake)
        if value is None:
            if attr != "reasoning_tokens":
                return f"cost row has no {camel!r}"
        elif attr in ("timestamp", "role", "provider", "model", "session_id"):
            if not isinstance(value, str):
                return f"cost row field {camel!r} is not a string"
        elif attr == "estimated_cost_usd":
            if type(value) not in (int, float):
                return f"cost row field {camel!r} is not a number"
            try:
                finite = isfinite(value)
            except OverflowError:
                finite = False
            if not finite:
                return f"cost row field {camel!r} is not a finite number"
        else:
            try:
                _as_int(value, camel)
            except ValueError as exc:
                return str(exc)
    return "not a cost row"


def _as_int(value: Any, name: str) -> int:
    if isinstance(value, bool):
        raise ValueError(f"cost row field {name!r} is not an integer")
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    raise ValueError(f"cost row field {name!r} is not an integer")


def _row_line(entry: CostEntry) -> str:
    return json.dumps(entry.to_json_dict(), separators=(",", ":"))


# --------------------------------------------------------------------------- writing


def default_log_path(settings_cost_log: str | None = None) -> Path:
    """Where the cost log lives.

    ``$DRAHT_COST_LOG`` wins, then ``settings_cost_log`` (the config's ``settings.cost_log``),
    then ``.draht/cost-log.jsonl``; a relative path is under the current working directory.
    """
    raw = os.environ.get(LOG_PATH_ENV) or settings_cost_log or DEFAULT_LOG_PATH
    path = Path(raw).expanduser()
    return path if path.is_absolute() else Path.cwd() / path


def _resolve(log_path: str | os.PathLike[str] | None) -> Path:
    return Path(log_path) if log_path is not None else default_log_path()


def log_cost(entry: CostEntry, log_path: str | os.PathLike[str] | None = None) -> None:
    """Append ``entry`` to the cost log as one whole line, creating directories as needed.

    Safe to call from any number of threads and processes at once. Raises OSError when the
    row cannot be written.
    """
    path = _resolve(log_path)
    data = (_row_line(entry) + "\n").encode("utf-8")
    path.parent.mkdir(parents=True, exist_ok=True)
    flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT
    flags |= getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0)
    fd = os.open(path, flags, 0o644)
    try:
        if _fcntl is not None:
            _fcntl.flock(fd, _fcntl.LOCK_EX)
        written = os.write(fd, data)
        if written != len(data):
            # End the partial row so the next one starts on a line of its own.
            os.write(fd, b"\n")
            raise OSError(f"short write to {path}: {written} of {len(data)} bytes")
    finally:
        os.close(fd)  # also releases the lock


def safe_log_cost(entry: CostEntry, log_path: str | os.PathLike[str] | None = None) -> bool:
    """Like :func:`log_cost` but never raises: True when the row was written.

    A failure is logged as the structlog error event ``cost.write_failed`` (with the row, so
    the cost is not lost) and counted by :func:`write_failures`.
    """
    global _write_failures
    try:
        log_cost(entry, log_path)
        return True
    except Exception as exc:  # noqa: BLE001 - the contract is to never raise
        with _write_failures_lock:
            _write_failures += 1
        try:
            import structlog  # imported here: it is slow to import and only needed on failure

            structlog.get_logger("draht_router.cost").error(
                "cost.write_failed",
                path=str(log_path if log_path is not None else _resolve(None)),
                error=f"{type(exc).__name__}: {exc}",
                row=entry.to_json_dict(),
            )
        except Exception:  # noqa: BLE001 - a broken logger must not break the call
            pass
        return False


def write_failures() -> int:
    """How many rows :func:`safe_log_cost` failed to write in this process."""
    return _write_failures


# --------------------------------------------------------------------------- reading


class _PassStats:
    """Counters of one pass over the log (or over a range of its lines)."""

    __slots__ = ("lines", "rows", "skipped", "skipped_lines")

    def __init__(self) -> None:
        self.lines = 0  # lines read so far (kept by _iter_rows only)
        self.rows = 0
        self.skipped = 0
        self.skipped_lines: list[int] = []

    def skip(self, lineno: int) -> None:
        self.skipped += 1
        if len(self.skipped_lines) < _MAX_SKIPPED_LINES:
            self.skipped_lines.append(lineno)


def _iter_blocks(fh: IO[bytes], start: int = 0, end: int | None = None) -> Iterator[str]:
    """The text of bytes ``[start, end)`` of ``fh`` (to its end when ``end`` is None) in runs
    of whole lines (about 1 MiB each, no final newline).

    Bytes that are not UTF-8 are replaced; a line longer than 1 MiB is replaced by a marker
    that is never a row. ``start`` should be the start of a line and ``end`` that of another.
    """
    fh.seek(start)
    left = None if end is None else max(end - start, 0)
    tail = b""
    oversize = False  # inside a line too long to keep
    while True:
        if left is None:
            block = fh.read(_BLOCK_SIZE)
        else:
            block = fh.read(min(_BLOCK_SIZE, left)) if left else b""
            left -= len(block)
        if not block:
            break
        if oversize:
            first = block.find(b"\n")
            if first < 0:
                continue
            oversize = False
            yield _OVERSIZE
            block = block[first + 1 :]
        cut = block.rfind(b"\n")
        if cut < 0:
            tail += block
            if len(tail) > _MAX_LINE:
                tail, oversize = b"", True
            continue
        if tail:
            block = tail + block
            cut += len(tail)
        tail = block[cut + 1 :]
        yield block[:cut].decode("utf-8", "replace")
    if oversize:
        yield _OVERSIZE
    elif tail:
        yield tail.decode("utf-8", "replace")


def _iter_lines(path: Path) -> Iterator[str]:
    """Every line of the file at ``path`` (none when it is missing), without its newline."""
    try:
        fh = open(path, "rb")
    except FileNotFoundError:
        return
    with fh:
        for text in _iter_blocks(fh):
            yield from text.split("\n")


def _scan(
    lines: Iterator[str], stats: _PassStats, first_lineno: int = 1
) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, object) for every line that holds a JSON object.

    Other lines that are not blank are counted in ``stats`` as skipped.
    """
    loads = json.loads
    lineno = first_lineno - 1
    for line in lines:
        lineno += 1
        try:
            obj = loads(line)
        except (ValueError, RecursionError):
            if line and not line.isspace():
                stats.skip(lineno)
            continue
        if type(obj) is not dict:
            stats.skip(lineno)
            continue
        yield lineno, obj


# A row exactly as log_cost and draht's TypeScript tools write it: compact JSON, keys in this
# order, strings without escapes. A line that matches is a valid row with the captured field
# values; every other line goes through json.loads. Its fields by index: timestamp, role,
# provider, model, inputTokens, outputTokens, reasoningTokens ("" when absent),
# estimatedCostUsd, sessionId; a pattern captures a chosen subset of them, in that order.
_ALL_FIELDS = (0, 1, 2, 3, 4, 5, 6, 7, 8)
_ROLE_FIELDS = (1, 4, 5, 6, 7)  # what summarize(by="role") needs
_BUDGET_FIELDS = (0, 1, 7, 8)  # what BudgetTracker needs
_STR_BODY = r'[^"\\\x00-\x1f]*'
# Token counts and costs are kept short enough to convert without overflow (longer numbers are
# left to json.loads and _core); extras may hold any JSON number.
_INT_BODY = r"-?(?:0|[1-9][0-9]{0,17})"
_COST_BODY = r"-?(?:0|[1-9][0-9]{0,17})(?:\.[0-9]+)?(?:[eE][-+]?[0-9]{1,2})?"
_NUM_BODY = r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][-+]?[0-9]+)?"
_EXTRA_KEYS = "taskType|cacheReadTokens|cacheWriteTokens|latencyMs|attempts|fallbackFrom"


@functools.cache
def _row_regex(fields: tuple[int, ...]) -> re.Pattern[str]:
    """The pattern of a canonical row line capturing ``fields`` (at least two)."""

    def part(index: int, body: str) -> str:
        return f"({body})" if index in fields else f"(?:{body})"

    def text(index: int) -> str:
        return '"' + part(index, _STR_BODY) + '"'

    return re.compile(
        r'^\{"timestamp":' + text(0) + ',"role":' + text(1) + ',"provider":' + text(2)
        + ',"model":' + text(3) + ',"inputTokens":' + part(4, _INT_BODY)
        + ',"outputTokens":' + part(5, _INT_BODY)
        + '(?:,"reasoningTokens":' + part(6, _INT_BODY) + ")?"
        + ',"estimatedCostUsd":' + part(7, _COST_BODY) + ',"sessionId":' + text(8)
        + f'(?:,"(?:{_EXTRA_KEYS})":(?:"{_STR_BODY}"|{_NUM_BODY}|true|false|null))*' + r"\}$",
        re.M,
    )


# A row's chosen fields as text, as captured by _row_regex (rows read by json.loads are put in
# the same form, so one loop serves both).
_RawRow = tuple[str, ...]


def _parse_block(
    text: str, first_lineno: int, stats: _PassStats, fields: tuple[int, ...]
) -> list[_RawRow]:
    """The rows of a run of lines (see :func:`_iter_blocks`); the rest is counted in ``stats``."""
    pattern = _row_regex(fields)
    lines = text.count("\n") + 1
    rows: list[_RawRow] = pattern.findall(text)
    if len(rows) == lines:  # each match is one whole line: every line is a row
        stats.rows += lines
        return rows
    rows = []
    pos = 0
    lineno = first_lineno
    for match in pattern.finditer(text):
        start = match.start()
        if start > pos:
            gap = text[pos : start - 1].split("\n")
            _parse_lines(gap, lineno, stats, fields, rows)
            lineno += len(gap)
        rows.append(match.groups(""))
        stats.rows += 1
        lineno += 1
        pos = match.end() + 1
    if pos <= len(text):
        _parse_lines(text[pos:].split("\n"), lineno, stats, fields, rows)
    return rows


def _parse_lines(
    lines: list[str],
    first_lineno: int,
    stats: _PassStats,
    fields: tuple[int, ...],
    rows: list[_RawRow],
) -> None:
    """Append the rows among ``lines`` to ``rows`` as text fields, counting the rest."""
    for lineno, obj in _scan(iter(lines), stats, first_lineno):
        core = _core(obj)
        if core is None:
            stats.skip(lineno)
            continue
        stats.rows += 1
        ts, role, provider, model, inp, out, reasoning, cost, session = core
        full = (ts, role, provider, model, str(inp), str(out),
                str(reasoning) if reasoning else "", repr(cost), session)
        rows.append(tuple(full[i] for i in fields))


def _iter_rows(
    fh: IO[bytes],
    stats: _PassStats,
    fields: tuple[int, ...] = _ALL_FIELDS,
    start: int = 0,
    end: int | None = None,
) -> Iterator[list[_RawRow]]:
    """The rows in bytes ``[start, end)`` of the log open as ``fh`` as text ``fields``, a
    block at a time; line numbers count from ``start`` and ``stats.lines`` counts the lines."""
    for text in _iter_blocks(fh, start, end):
        lines = text.count("\n") + 1
        yield _parse_block(text, stats.lines + 1, stats, fields)
        stats.lines += lines


def _core(row: Mapping[str, Any]) -> tuple[str, str, str, str, int, int, int, float, str] | None:
    """(timestamp, role, provider, model, input, output, reasoning, cost, session) of a row.

    None when the row is not valid by the rules of :meth:`CostEntry.from_json_dict`.
    """
    get = row.get
    ts = get("timestamp")
    role = get("role")
    provider = get("provider")
    model = get("model")
    inp = get("inputTokens")
    if inp is None:
        inp = get("input_tokens")
    out = get("outputTokens")
    if out is None:
        out = get("output_tokens")
    cost = get("estimatedCostUsd")
    if cost is None:
        cost = get("estimated_cost_usd")
    session = get("sessionId")
    if session is None:
        session = get("session_id")
    reasoning = get("reasoningTokens")
    if reasoning is None:
        reasoning = get("reasoning_tokens")
        if reasoning is None:
            reasoning = 0
    if (type(ts) is not str or type(role) is not str or type(provider) is not str
            or type(model) is not str or type(session) is not str):
        return None
    if type(inp) is not int or type(out) is not int or type(reasoning) is not int:
        try:
            inp = _as_int(inp, "inputTokens")
            out = _as_int(out, "outputTokens")
            reasoning = _as_int(reasoning, "reasoningTokens")
        except ValueError:
            return None
    if type(cost) is not float:
        if type(cost) is not int:
            return None
        try:
            cost = float(cost)
        except OverflowError:
            return None
    if not isfinite(cost):  # NaN or Infinity would poison every total
        return None
    return ts, role, provider, model, inp, out, reasoning, cost, session


class CostLog:
    """The rows of a cost log, streamed from the file each time it is iterated.

    After (or during) a pass, ``rows`` counts the rows read, ``skipped`` the lines that were
    neither rows nor blank, and ``skipped_lines`` holds the first 20 of their line numbers.
    """

    def __init__(self, path: str | os.PathLike[str]):
        self.path = Path(path)
        self._stats = _PassStats()

    @property
    def exists(self) -> bool:
        """Whether the log file exists."""
        return self.path.is_file()

    @property
    def rows(self) -> int:
        return self._stats.rows

    @property
    def skipped(self) -> int:
        return self._stats.skipped

    @property
    def skipped_lines(self) -> list[int]:
        return list(self._stats.skipped_lines)

    def __iter__(self) -> Iterator[CostEntry]:
        stats = self._stats = _PassStats()
        from_json = CostEntry.from_json_dict
        for lineno, obj in _scan(_iter_lines(self.path), stats):
            try:
                entry = from_json(obj)
            except (ValueError, TypeError):
                stats.skip(lineno)
                continue
            stats.rows += 1
            yield entry

    def __repr__(self) -> str:
        return f"CostLog({str(self.path)!r})"


def read_cost_log(log_path: str | os.PathLike[str] | None = None) -> CostLog:
    """The cost log at ``log_path`` (default: :func:`default_log_path`) as a re-iterable."""
    return CostLog(_resolve(log_path))


def get_session_costs(
    session_id: str, log_path: str | os.PathLike[str] | None = None
) -> list[CostEntry]:
    """Every row of one session, in log order."""
    # Without escapes a row's session id is in its line verbatim: other lines need no parsing.
    lines = (
        line for line in _iter_lines(_resolve(log_path)) if session_id in line or "\\" in line
    )
    found: list[CostEntry] = []
    for _lineno, obj in _scan(lines, _PassStats()):
        try:
            entry = CostEntry.from_json_dict(obj)
        except ValueError:
            continue
        if entry.session_id == session_id:
            found.append(entry)
    return found


def get_role_costs(role: str, log_path: str | os.PathLike[str] | None = None) -> dict[str, Any]:
    """Spend of one role over the whole log.

    Keys: ``total_cost`` (USD), ``total_input_tokens``, ``total_output_tokens``, ``calls``.
    """
    totals = summarize("role", log_path=log_path).get(role)
    return {
        "total_cost": totals["total_cost"] if totals else 0.0,
        "total_input_tokens": totals["total_input_tokens"] if totals else 0,
        "total_output_tokens": totals["total_output_tokens"] if totals else 0,
        "calls": totals["calls"] if totals else 0,
    }


# --------------------------------------------------------------------------- summaries


_RELATIVE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$", re.I)
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_DATE_ONLY = re.compile(r"^\s*\d{4}-\d{2}-\d{2}\s*$")


def _as_utc(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        return moment.replace(tzinfo=_UTC)
    return moment.astimezone(_UTC)


def _parse_iso(text: str) -> datetime | None:
    text = text.strip()
    if text[-1:] in ("Z", "z"):
        text = text[:-1] + "+00:00"
    try:
        return _as_utc(datetime.fromisoformat(text))
    except ValueError:
        return None


def parse_time_bound(value: datetime | date | str, *, now: datetime | None = None) -> datetime:
    """A summary bound as an aware UTC datetime.

    Accepts a datetime (naive means UTC), a date (its UTC midnight), an ISO 8601 string, a
    time ago such as ``30m``, ``24h``, ``7d`` or ``2w`` (``now`` minus that), or ``now``,
    ``today`` and ``yesterday``. Raises ValueError for anything else.
    """
    if isinstance(value, datetime):
        return _as_utc(value)
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day, tzinfo=_UTC)
    if not isinstance(value, str):
        raise TypeError(f"time bound must be a datetime, date or string, not {type(value)}")
    current = _as_utc(now) if now is not None else datetime.now(_UTC)
    word = value.strip().lower()
    if word == "now":
        return current
    if word in ("today", "yesterday"):
        midnight = current.replace(hour=0, minute=0, second=0, microsecond=0)
        return midnight if word == "today" else midnight - timedelta(days=1)
    match = _RELATIVE.match(value)
    if match:
        seconds = float(match.group(1)) * _UNIT_SECONDS[match.group(2).lower()]
        return current - timedelta(seconds=seconds)
    parsed = _parse_iso(value) if value.strip() else None
    if parsed is None:
        raise ValueError(
            f"invalid time {value!r}: use an ISO date or time (2026-12-03, "
            "2026-12-03T18:00:00Z) or a time ago such as 30m, 24h, 7d"
        )
    return parsed


def _until_bound(value: datetime | date | str, now: datetime | None) -> datetime:
    """``until`` as a datetime; a bare date means the end of that day."""
    bound = parse_time_bound(value, now=now)
    bare_date = isinstance(value, date) and not isinstance(value, datetime)
    if bare_date or (isinstance(value, str) and _DATE_ONLY.match(value)):
        bound += timedelta(days=1)
    return bound


def _is_canonical_ts(ts: str) -> bool:
    return len(ts) == 24 and ts[23] == "Z" and ts[10] == "T"


def _within(
    ts: str,
    low: datetime | None,
    high: datetime | None,
    low_s: str | None,
    high_s: str | None,
) -> bool:
    """Whether a row timestamp is in [low, high); ``*_s`` are the bounds as log timestamps."""
    if _is_canonical_ts(ts):  # compares as text
        return (low_s is None or ts >= low_s) and (high_s is None or ts < high_s)
    moment = _parse_iso(ts) if ts else None
    if moment is None:
        return False
    return (low is None or moment >= low) and (high is None or moment < high)


def _row_day(ts: str) -> str | None:
    """UTC date ``YYYY-MM-DD`` of a row timestamp, None when it cannot be read."""
    if len(ts) >= 20 and ts[-1] == "Z" and ts[10] == "T":
        return ts[:10]
    moment = _parse_iso(ts) if ts else None
    return moment.date().isoformat() if moment else None


class CostSummary(dict[str, dict[str, Any]]):
    """Spend per group: group key -> totals, iterated from the most expensive group down.

    Each value (and ``total``, over every group) has ``total_cost`` (USD),
    ``total_input_tokens``, ``total_output_tokens``, ``total_reasoning_tokens`` and
    ``calls``. ``rows`` counts the rows read (including those the filters left out),
    ``skipped`` the lines that were neither rows nor blank (``skipped_lines``: the first 20
    line numbers), and ``by`` names the grouping.
    """

    def __init__(
        self,
        groups: Mapping[str, dict[str, Any]] | None = None,
        *,
        by: str = "role",
        total: dict[str, Any] | None = None,
        rows: int = 0,
        skipped: int = 0,
        skipped_lines: list[int] | None = None,
    ):
        super().__init__(groups or {})
        self.by = by
        self.total = total if total is not None else _totals(0.0, 0, 0, 0, 0)
        self.rows = rows
        self.skipped = skipped
        self.skipped_lines = skipped_lines or []


def _totals(cost: float, inp: int, out: int, reasoning: int, calls: int) -> dict[str, Any]:
    return {
        "total_cost": round(cost, 10),
        "total_input_tokens": inp,
        "total_output_tokens": out,
        "total_reasoning_tokens": reasoning,
        "calls": calls,
    }


def summarize(
    by: str = "role",
    since: datetime | date | str | None = None,
    until: datetime | date | str | None = None,
    log_path: str | os.PathLike[str] | None = None,
    *,
    role: str | None = None,
    session: str | None = None,
) -> CostSummary:
    """Spend grouped by ``role``, ``model`` (``provider/model``), ``session`` or ``day`` (UTC).

    Only rows with ``since <= timestamp < until`` count when bounds are given (see
    :func:`parse_time_bound`; an ``until`` that is a bare date includes that day). Rows whose
    timestamp cannot be read fall in day ``unknown`` and outside any bound. ``role`` and
    ``session`` keep only that role's or session's rows. Raises ValueError for another ``by``.

    A log of 64 MiB or more (``$DRAHT_SUMMARY_PARALLEL_MIN_BYTES`` sets another size) is split
    among up to 4 processes when there are CPUs for them: the calling one and workers that run
    ``python -m draht_router._summary_worker`` with this interpreter. Workers import nothing
    of the calling program, so a script needs no ``if __name__ == "__main__":`` guard. A part
    no worker reads (none can start, one fails or is too slow) is read by the calling process;
    the result is the same either way.
    """
    if by not in SUMMARY_KEYS:
        raise ValueError(f"cannot summarize by {by!r}; choose one of: {', '.join(SUMMARY_KEYS)}")
    now = datetime.now(_UTC)
    low = parse_time_bound(since, now=now) if since is not None else None
    high = _until_bound(until, now) if until is not None else None
    kind = SUMMARY_KEYS.index(by)
    path = _resolve(log_path)
    try:
        fh = open(path, "rb")
    except FileNotFoundError:
        parts: list[_Part] = []
    else:
        with fh:
            parts = _summarize_parallel(fh, path, kind, role, session, low, high) or [
                _summarize_range(fh, 0, None, kind, role, session, low, high)
            ]

    groups: dict[str, list[Any]] = {}
    rows = skipped = 0
    skipped_lines: list[int] = []
    first_line = 0  # lines before the range being merged
    for part_groups, part_rows, part_skipped, part_skipped_lines, part_lines in parts:
        for key, acc in part_groups.items():
            merged = groups.get(key)
            if merged is None:
                groups[key] = acc
            else:
                for i in range(5):
                    merged[i] += acc[i]
        rows += part_rows
        skipped += part_skipped
        skipped_lines.extend(first_line + lineno for lineno in part_skipped_lines)
        first_line += part_lines

    ordered = sorted(groups.items(), key=lambda item: (-item[1][0], item[0]))
    result = {key: _totals(*acc) for key, acc in ordered}
    grand = [sum(acc[i] for acc in groups.values()) for i in range(5)]
    return CostSummary(
        result,
        by=by,
        total=_totals(float(grand[0]), *grand[1:]),
        rows=rows,
        skipped=skipped,
        skipped_lines=skipped_lines[:_MAX_SKIPPED_LINES],
    )


# What one range of the log adds up to: (group key -> [cost, input, output, reasoning, calls],
# rows, skipped lines, the first 20 skipped line numbers counted from the range's first line,
# lines in the range).
_Part = tuple[dict[str, list[Any]], int, int, list[int], int]


def _summarize_range(
    fh: IO[bytes],
    start: int,
    end: int | None,
    kind: int,
    role: str | None,
    session: str | None,
    low: datetime | None,
    high: datetime | None,
) -> _Part:
    """The totals of bytes ``[start, end)`` of the log open as ``fh`` for :func:`summarize`.

    ``kind`` indexes :data:`SUMMARY_KEYS`; ``role``, ``session``, ``low`` and ``high`` are
    summarize's filters (None: no filter).
    """
    low_s = _format_timestamp(low) if low else None
    high_s = _format_timestamp(high) if high else None
    bounded = low is not None or high is not None
    filtered = bounded or role is not None or session is not None
    stats = _PassStats()
    groups: dict[str, list[Any]] = {}
    if kind == 0 and not filtered:  # the common case, with fewer fields to capture
        for rows in _iter_rows(fh, stats, _ROLE_FIELDS, start, end):
            for key, inp, out, reasoning, cost in rows:
                acc = groups.get(key)
                if acc is None:
                    acc = groups[key] = [0.0, 0, 0, 0, 0]
                acc[0] += float(cost)
                acc[1] += int(inp)
                acc[2] += int(out)
                if reasoning:
                    acc[3] += int(reasoning)
                acc[4] += 1
    else:
        for rows in _iter_rows(fh, stats, _ALL_FIELDS, start, end):
            for ts, row_role, provider, model, inp, out, reasoning, cost, row_session in rows:
                if filtered and (
                    (role is not None and row_role != role)
                    or (session is not None and row_session != session)
                    or (bounded and not _within(ts, low, high, low_s, high_s))
                ):
                    continue
                if kind == 0:
                    key = row_role
                elif kind == 1:
                    key = f"{provider}/{model}"
                elif kind == 2:
                    key = row_session
                else:
                    key = _row_day(ts) or "unknown"
                acc = groups.get(key)
                if acc is None:
                    acc = groups[key] = [0.0, 0, 0, 0, 0]
                acc[0] += float(cost)
                acc[1] += int(inp)
                acc[2] += int(out)
                if reasoning:
                    acc[3] += int(reasoning)
                acc[4] += 1
    return groups, stats.rows, stats.skipped, stats.skipped_lines, stats.lines


class _ReplacedLogError(Exception):
    """The log a worker opened is not the file the caller opened."""


class _WorkerMismatchError(Exception):
    """A worker process imported another copy of this module than its caller."""


def _summarize_range_worker(
    path: str,
    identity: tuple[int, int],
    start: int,
    end: int | None,
    kind: int,
    role: str | None,
    session: str | None,
    low: datetime | None,
    high: datetime | None,
) -> _Part:
    """:func:`_summarize_range` run in a worker process on the log at ``path``.

    Raises _ReplacedLogError when that file's (device, inode) is not ``identity``.
    """
    with open(path, "rb") as fh:
        info = os.fstat(fh.fileno())
        if (info.st_dev, info.st_ino) != identity:  # rotated or replaced since the caller read it
            raise _ReplacedLogError(path)
        return _summarize_range(fh, start, end, kind, role, session, low, high)


def _cpu_count() -> int:
    """The CPUs this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        return os.cpu_count() or 1


def _parallel_min_bytes() -> int:
    """The size from which summarize() splits a log: ``$DRAHT_SUMMARY_PARALLEL_MIN_BYTES``
    when it is a whole number of bytes (0 or more), else :data:`_PARALLEL_MIN_BYTES`."""
    raw = os.environ.get(PARALLEL_MIN_BYTES_ENV, "").strip()
    if raw.isdigit():
        return int(raw)
    return _PARALLEL_MIN_BYTES


def _split_ranges(fh: IO[bytes], size: int, count: int) -> list[tuple[int, int | None]]:
    """At most ``count`` byte ranges of about equal size covering the file ``fh`` of ``size``
    bytes, each made of whole lines; the last one ends at the end of the file (None)."""
    starts = [0]
    for i in range(1, count):
        point = max(size * i // count, starts[-1] + 1)
        # The next line starts after the first newline at or after byte point - 1.
        fh.seek(point - 1)
        offset = point - 1
        while True:
            block = fh.read(_BLOCK_SIZE)
            if not block:
                offset = size  # no newline to the end: the last range takes the rest
                break
            newline = block.find(b"\n")
            if newline >= 0:
                offset += newline + 1
                break
            offset += len(block)
        if offset >= size:
            break
        starts.append(offset)
    ends: list[int | None] = [*starts[1:], None]
    return list(zip(starts, ends, strict=True))


def _summarize_parallel(
    fh: IO[bytes],
    path: Path,
    kind: int,
    role: str | None,
    session: str | None,
    low: datetime | None,
    high: datetime | None,
) -> list[_Part] | None:
    """The parts of a large log summarised by this process and worker processes, in file
    order; None when the log is small, there is one CPU or no worker process can start.

    A range whose worker fails in any way (it does not start, exits with an error, writes no
    result or takes too long) is read by this process instead.
    """
    info = os.fstat(fh.fileno())
    if info.st_size < _parallel_min_bytes():
        return None
    count = min(_cpu_count(), _MAX_PROCESSES)
    if count < 2:
        return None
    command = _worker_command()
    if command is None:
        return None
    ranges = _split_ranges(fh, info.st_size, count)
    if len(ranges) < 2:
        return None
    filters = (kind, role, session, low, high)
    # Absolute: a worker runs in another directory.
    where = os.path.abspath(path)
    identity = (info.st_dev, info.st_ino)
    workers: list[subprocess.Popen[bytes] | None] = []
    try:
        for start, end in ranges[1:]:
            job = _job_line(where, identity, start, end, *filters)
            workers.append(_start_worker(command, job))
        # This process takes the first range while the workers start and read the others.
        began = time.monotonic()
        parts = [_summarize_range(fh, ranges[0][0], ranges[0][1], *filters)]
        # The workers' ranges are as large as this one: one that takes several times as long
        # is stuck, and this process reads its range sooner than it would finish.
        done = time.monotonic()
        deadline = done + max(_WORKER_WAIT_SECONDS, 3 * (done - began))
        for worker, (start, end) in zip(workers, ranges[1:], strict=True):
            part = _worker_result(worker, deadline) if worker is not None else None
            parts.append(part or _summarize_range(fh, start, end, *filters))
        return parts
    finally:
        for worker in workers:
            if worker is not None:
                _stop_worker(worker)


def _worker_command() -> list[str] | None:
    """The command that starts a worker process (``python -m draht_router._summary_worker``
    with this interpreter and its isolation flags); None where no worker can start."""
    if getattr(sys, "frozen", False):
        return None  # a frozen application's executable is the application, not Python
    executable = sys.executable
    name = os.path.basename(executable or "").lower()
    # Embedded interpreters (uWSGI, mod_wsgi, ...) name their host program here: running that
    # would start the host again, not Python.
    if "python" not in name and "pypy" not in name:
        return None
    flags = sys.flags
    options: list[str] = []
    if flags.isolated:
        options.append("-I")
    else:
        # The worker finds this package as the caller did: same environment, same site
        # settings. No -I here: it would also drop PYTHONPATH and the user site directory,
        # where the package may be installed.
        if flags.ignore_environment:
            options.append("-E")
        if flags.no_user_site:
            options.append("-s")
        if sys.version_info >= (3, 11):
            # -m would put the working directory first on sys.path, so a file there named
            # like a module the worker imports (json.py, ...) would run in it.
            options.append("-P")
    if flags.no_site:
        options.append("-S")
    return [executable, *options, "-m", _WORKER_MODULE]


def _start_worker(command: list[str], job: bytes) -> subprocess.Popen[bytes] | None:
    """A worker process started with ``command`` and given ``job``; None when it cannot be."""
    import subprocess  # here: most summaries start no process

    try:
        worker = subprocess.Popen(
            command,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            # Before Python 3.11 there is no -P: this package's own folder is the one whose
            # modules -m may put first on sys.path without shadowing anything the worker uses.
            cwd=os.path.dirname(os.path.abspath(__file__)),
        )
    except Exception:  # noqa: BLE001 - no executable, no permission, no processes left, ...
        return None
    try:
        # Left open: the worker reads one line, and communicate() closes it later.
        worker.stdin.write(job)  # type: ignore[union-attr]
        worker.stdin.flush()  # type: ignore[union-attr]
    except OSError:  # the worker exited already
        _stop_worker(worker)
        return None
    return worker


def _worker_result(worker: subprocess.Popen[bytes], deadline: float) -> _Part | None:
    """What ``worker`` found, waiting for it until ``deadline`` (time.monotonic()); None when
    it failed, refused its job or did not finish in time."""
    import subprocess

    try:
        out, _err = worker.communicate(timeout=max(deadline - time.monotonic(), 0.05))
    except (subprocess.TimeoutExpired, OSError, ValueError):
        _stop_worker(worker)  # now: its CPU is better spent on this process reading its range
        return None
    if worker.returncode != 0:
        return None
    return _part_from_output(out)


def _stop_worker(worker: subprocess.Popen[bytes]) -> None:
    """End ``worker`` if it still runs, close its pipes and reap it."""
    try:
        if worker.poll() is None:
            worker.kill()
        worker.communicate()
    except Exception:  # noqa: BLE001 - cleanup must not hide the summary or the real error
        pass


def _module_file() -> str:
    return os.path.realpath(__file__)


def _job_line(
    path: str,
    identity: tuple[int, int],
    start: int,
    end: int | None,
    kind: int,
    role: str | None,
    session: str | None,
    low: datetime | None,
    high: datetime | None,
) -> bytes:
    """A worker's job: what :func:`_summarize_range_worker` takes, as one line of JSON."""
    job = {
        "path": path,
        "device": identity[0],
        "inode": identity[1],
        "start": start,
        "end": end,
        "by": SUMMARY_KEYS[kind],
        "role": role,
        "session": session,
        "since": low.isoformat() if low is not None else None,
        "until": high.isoformat() if high is not None else None,
        "module": _module_file(),
    }
    return json.dumps(job).encode("ascii") + b"\n"


def _run_job(line: bytes) -> bytes:
    """In a worker process: the result line of the job ``line`` (see :func:`_job_line`).

    Raises _ReplacedLogError when the log is not the caller's file any more, and
    _WorkerMismatchError when the caller imported another copy of this module (whose reading
    rules may differ).
    """
    job = json.loads(line)
    if job["module"] != _module_file():
        raise _WorkerMismatchError(job["module"])
    low = datetime.fromisoformat(job["since"]) if job["since"] is not None else None
    high = datetime.fromisoformat(job["until"]) if job["until"] is not None else None
    groups, rows, skipped, skipped_lines, lines = _summarize_range_worker(
        job["path"], (job["device"], job["inode"]), job["start"], job["end"],
        SUMMARY_KEYS.index(job["by"]), job["role"], job["session"], low, high,
    )
    # json writes a float as its repr, which reads back as the very same float.
    result = {"groups": groups, "rows": rows, "skipped": skipped,
              "skipped_lines": skipped_lines, "lines": lines}
    return json.dumps(result, separators=(",", ":")).encode("ascii") + b"\n"


def _part_from_output(out: bytes) -> _Part | None:
    """The part in the last line a worker wrote (see :func:`_run_job`); None when that line
    is not one."""
    try:
        result = json.loads(out.rstrip().rpartition(b"\n")[2])
        groups = result["groups"]
        skipped_lines = result["skipped_lines"]
        counts = (result["rows"], result["skipped"], result["lines"])
    except (ValueError, RecursionError, TypeError, KeyError):
        return None
    if type(groups) is not dict or type(skipped_lines) is not list:
        return None
    if any(type(n) is not int for n in (*counts, *skipped_lines)):
        return None
    for acc in groups.values():
        if (type(acc) is not list or len(acc) != 5 or type(acc[0]) is not float
                or any(type(n) is not int for n in acc[1:])):
            return None
    return groups, counts[0], counts[1], skipped_lines, counts[2]


# --------------------------------------------------------------------------- prices


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


# --------------------------------------------------------------------------- budgets


def _money(amount: float) -> str:
    text = f"{amount:.2f}"
    return text if abs(float(text) - amount) < 1e-9 else f"{amount:.4f}"


class BudgetTracker:
    """Running spend per session, per UTC day and per (role, UTC day) from one cost log.

    The first use reads the whole log; later uses read only what was appended since, so rows
    written by other processes are counted without re-reading the file. A log that shrank or
    was replaced is read again from the start. Thread-safe.
    """

    def __init__(self, log_path: str | os.PathLike[str] | None = None):
        self.path = _resolve(log_path)
        self._lock = threading.RLock()
        self._offset = 0
        self._identity: tuple[int, int] | None = None
        self._session: dict[str, float] = {}
        self._day: dict[str, float] = {}
        self._role_day: dict[tuple[str, str], float] = {}
        # Rows given to record() but not yet read from the file, and rows read from the file
        # recently that no record() call has claimed: a row counts once whichever comes first.
        self._recorded: dict[str, int] = {}
        self._recent: deque[str] = deque(maxlen=_DEDUPE_WINDOW)

    def record(self, entry: CostEntry) -> None:
        """Count a row this process has just written (or failed to write) to the log.

        The row is counted once even when it is also read from the log's new lines, as long
        as fewer than 1024 rows were appended between its write and this call.
        """
        line = _row_line(entry)
        with self._lock:
            if line in self._recent:
                self._recent.remove(line)
                return
            self._recorded[line] = self._recorded.get(line, 0) + 1
            self._add(entry.timestamp, entry.role, entry.session_id, entry.estimated_cost_usd)

    def refresh(self) -> None:
        """Count the rows appended to the log since the last read."""
        with self._lock:
            self._read_new()

    def session_spend(self, session_id: str) -> float:
        """USD spent so far by one session."""
        with self._lock:
            self._read_new()
            return self._session.get(session_id, 0.0)

    def daily_spend(self, day: date | None = None) -> float:
        """USD spent on a UTC day (default: today)."""
        with self._lock:
            self._read_new()
            return self._day.get(_day_key(day), 0.0)

    def role_daily_spend(self, role: str, day: date | None = None) -> float:
        """USD spent by one role on a UTC day (default: today)."""
        with self._lock:
            self._read_new()
            return self._role_day.get((role, _day_key(day)), 0.0)

    def check(
        self,
        role: str,
        session_id: str,
        budget: BudgetSettings,
        now: datetime | None = None,
    ) -> None:
        """Raise BudgetExceededError when a cap of ``budget`` is already reached.

        Checked in order: the session cap, the daily cap, the role's daily cap; "today" is
        the UTC day of ``now`` (default: the current time).
        """
        day = _as_utc(now or datetime.now(_UTC)).date().isoformat()
        with self._lock:
            self._read_new()
            session_spent = self._session.get(session_id, 0.0)
            day_spent = self._day.get(day, 0.0)
            role_spent = self._role_day.get((role, day), 0.0)
        cap = budget.session_usd
        if cap is not None and session_spent >= cap:
            raise BudgetExceededError(
                f"Budget exceeded: session {session_id!r} has spent ${session_spent:.4f} of "
                f"its ${_money(cap)} cap (settings.budget.session_usd)",
                scope="session", spent=session_spent, cap=cap,
            )
        cap = budget.daily_usd
        if cap is not None and day_spent >= cap:
            raise BudgetExceededError(
                f"Budget exceeded: ${day_spent:.4f} spent today ({day} UTC) of the "
                f"${_money(cap)} daily cap (settings.budget.daily_usd)",
                scope="daily", spent=day_spent, cap=cap,
            )
        role_cap = (budget.role_daily_usd or {}).get(role)
        if role_cap is not None and role_spent >= role_cap:
            raise BudgetExceededError(
                f"Budget exceeded: role {role!r} has spent ${role_spent:.4f} today ({day} UTC) "
                f"of its ${_money(role_cap)} daily cap "
                f"(settings.budget.role_daily_usd.{role})",
                scope="role", spent=role_spent, cap=role_cap,
            )

    # -- internals (called with the lock held)

    def _add(self, ts: str, role: str, session_id: str, cost: float) -> None:
        self._session[session_id] = self._session.get(session_id, 0.0) + cost
        day = _row_day(ts)
        if day is not None:
            self._day[day] = self._day.get(day, 0.0) + cost
            key = (role, day)
            self._role_day[key] = self._role_day.get(key, 0.0) + cost

    def _reset(self) -> None:
        self._offset = 0
        self._identity = None
        self._session.clear()
        self._day.clear()
        self._role_day.clear()
        self._recorded.clear()
        self._recent.clear()

    def _read_new(self) -> None:
        try:
            fh = open(self.path, "rb")
        except FileNotFoundError:
            if self._identity is not None:
                self._reset()  # the log was removed: what it held is gone
            return
        with fh:
            info = os.fstat(fh.fileno())
            identity = (info.st_dev, info.st_ino)
            if self._identity is not None and (
                identity != self._identity or info.st_size < self._offset
            ):
                self._reset()
            self._identity = identity
            if info.st_size == self._offset:
                return
            fh.seek(self._offset)
            pending = b""
            while True:
                block = fh.read(_BLOCK_SIZE)
                if not block:
                    break
                data = pending + block if pending else block
                end = data.rfind(b"\n")
                if end < 0:
                    pending = data
                    if len(pending) > _MAX_LINE:  # never a row: step over it
                        self._offset += len(pending)
                        pending = b""
                    continue
                self._take_text(data[:end].decode("utf-8", "replace"))
                self._offset += end + 1
                pending = data[end + 1 :]
            # An unterminated last line may still be being written: it is read next time.

    def _take_text(self, text: str) -> None:
        if self._recorded:  # some rows may be ones record() counted already: line by line
            for line in text.split("\n"):
                self._take(line)
            return
        for ts, role, cost, session in _parse_block(text, 1, _PassStats(), _BUDGET_FIELDS):
            self._add(ts, role, session, float(cost))
        self._recent.extend(text.rsplit("\n", _DEDUPE_WINDOW)[-_DEDUPE_WINDOW:])

    def _take(self, line: str) -> None:
        count = self._recorded.get(line)
        if count:
            if count == 1:
                del self._recorded[line]
            else:
                self._recorded[line] = count - 1
            return
        try:
            obj = json.loads(line)
        except (ValueError, RecursionError):
            return
        core = _core(obj) if type(obj) is dict else None
        if core is None:
            return
        self._recent.append(line)
        self._add(core[0], core[1], core[8], core[7])


def _day_key(day: date | None) -> str:
    if day is None:
        return datetime.now(_UTC).date().isoformat()
    if isinstance(day, datetime):
        return _as_utc(day).date().isoformat()
    return day.isoformat()
