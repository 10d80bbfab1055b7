"""Budgets: running spend per session, per UTC day and per (role, UTC day), read from the cost
log, and the caps of ``settings.budget`` checked against it."""

from __future__ import annotations

import json
import os
import threading
from collections import deque
from datetime import date, datetime
from typing import TYPE_CHECKING

from draht_router.cost import (
    _BLOCK_SIZE,
    _MAX_LINE,
    _UTC,
    CostEntry,
    _as_utc,
    _core,
    _parse_block,
    _PassStats,
    _resolve,
    _row_day,
    _row_line,
)
from draht_router.errors import BudgetExceededError

if TYPE_CHECKING:
    from draht_router.config import BudgetSettings

__all__ = ["BudgetTracker"]

_DEDUPE_WINDOW = 1024  # rows a BudgetTracker remembers for matching record() calls
# The fields of a row BudgetTracker reads, as indexes of cost._row_regex's fields: timestamp,
# role, estimatedCostUsd, sessionId.
_BUDGET_FIELDS = (0, 1, 7, 8)


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
