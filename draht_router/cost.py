"""The cost log: one JSON line per model call, how it is written and read, and summaries of it.

The log is JSON Lines shared with draht's TypeScript tools (camelCase keys). Rows are appended
as single whole lines, so any number of threads and processes may write to one file. Reading
streams the file and skips, counts and reports lines that are not rows.

Prices live in :mod:`draht_router.pricing`, budgets in :mod:`draht_router.budget` and the
worker processes that summarise large logs in :mod:`draht_router.cost_workers`; the public
names of the first two are still importable from here. This module never imports LiteLLM.
"""

from __future__ import annotations

import functools
import json
import os
import re
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from math import isfinite
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, NamedTuple

# Re-exported: these lived here before pricing.py existed, and callers import them from here.
from draht_router.pricing import COST_PER_MILLION_TOKENS, DEFAULT_RATES, estimate_cost

if TYPE_CHECKING:
    from draht_router.budget import BudgetTracker

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

_UTC = timezone.utc
_BLOCK_SIZE = 1 << 20  # bytes read per system call while streaming the log
_MAX_LINE = 1 << 20  # longer lines are counted as corrupt without being held in memory
_MAX_SKIPPED_LINES = 20  # skipped line numbers remembered per pass
_OVERSIZE = "\x00oversize"  # stands in for a line longer than _MAX_LINE (never valid JSON)

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


def __getattr__(name: str) -> Any:
    """``BudgetTracker``, from :mod:`draht_router.budget`, for code that imports it from here."""
    # Looked up on first use: budget imports this module, so importing it above would be a cycle.
    if name == "BudgetTracker":
        from draht_router.budget import BudgetTracker

        return BudgetTracker
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


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


def _either(get: Callable[[str], Any], camel: str, snake: str) -> Any:
    """A row's value under its camelCase key, else under its snake_case key."""
    value = get(camel)
    return get(snake) if value is None else value


def _core(row: Mapping[str, Any]) -> tuple[str, str, str, str, int, int, int, float, str] | None:
    """(timestamp, role, provider, model, input, output, reasoning, cost, session) of a row.

    None when the row is not valid by the rules of :meth:`CostEntry.from_json_dict`.
    """
    get = row.get
    ts = get("timestamp")
    role = get("role")
    provider = get("provider")
    model = get("model")
    inp = _either(get, "inputTokens", "input_tokens")
    out = _either(get, "outputTokens", "output_tokens")
    cost = _either(get, "estimatedCostUsd", "estimated_cost_usd")
    session = _either(get, "sessionId", "session_id")
    reasoning = _either(get, "reasoningTokens", "reasoning_tokens")
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
    ``python -m draht_router.cost_workers`` with this interpreter. Workers import nothing
    of the calling program, so a script needs no ``if __name__ == "__main__":`` guard. A part
    no worker reads (none can start, one fails or is too slow) is read by the calling process;
    the result is the same either way.
    """
    if by not in SUMMARY_KEYS:
        raise ValueError(f"cannot summarize by {by!r}; choose one of: {', '.join(SUMMARY_KEYS)}")
    now = datetime.now(_UTC)
    low = parse_time_bound(since, now=now) if since is not None else None
    high = _until_bound(until, now) if until is not None else None
    query = RowFilter(SUMMARY_KEYS.index(by), role, session, low, high)
    path = _resolve(log_path)
    try:
        fh = open(path, "rb")
    except FileNotFoundError:
        parts: list[_Part] = []
    else:
        # Imported here, not at the top: it imports this module, and the many callers that
        # only write rows need none of it.
        from draht_router import cost_workers

        with fh:
            parts = cost_workers.summarize_parallel(fh, path, query) or [
                _summarize_range(fh, 0, None, query)
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


class RowFilter(NamedTuple):
    """What :func:`summarize` groups by (``kind`` indexes :data:`SUMMARY_KEYS`) and which rows
    it keeps (None: no filter)."""

    kind: int
    role: str | None = None
    session: str | None = None
    low: datetime | None = None
    high: datetime | None = None


# What one range of the log adds up to: (group key -> [cost, input, output, reasoning, calls],
# rows, skipped lines, the first 20 skipped line numbers counted from the range's first line,
# lines in the range).
_Part = tuple[dict[str, list[Any]], int, int, list[int], int]


def _summarize_range(fh: IO[bytes], start: int, end: int | None, query: RowFilter) -> _Part:
    """The totals of bytes ``[start, end)`` of the log open as ``fh`` for :func:`summarize`."""
    kind, role, session, low, high = query
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
