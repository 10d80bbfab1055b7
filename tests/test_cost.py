"""The cost log: row format, concurrent appends, reading, summaries, prices and budgets."""

from __future__ import annotations

import json
import multiprocessing
import os
import re
import subprocess
import sys
import threading
import time
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import pytest
import structlog

from draht_router import cost, cost_workers, model_map
from draht_router.budget import BudgetTracker
from draht_router.config import BudgetSettings
from draht_router.cost import (
    CostEntry,
    CostSummary,
    default_log_path,
    get_role_costs,
    get_session_costs,
    log_cost,
    now_timestamp,
    parse_time_bound,
    read_cost_log,
    safe_log_cost,
    summarize,
    write_failures,
)
from draht_router.errors import BudgetExceededError
from draht_router.pricing import COST_PER_MILLION_TOKENS, DEFAULT_RATES, estimate_cost

TS_ROW = (
    '{"timestamp":"2026-12-03T18:12:42.123Z","role":"implement","provider":"anthropic",'
    '"model":"claude-sonnet-4-6","inputTokens":1200,"outputTokens":340,'
    '"estimatedCostUsd":0.0087,"sessionId":"abc"}'
)
UTC = timezone.utc


def entry(**fields) -> CostEntry:
    values = {
        "timestamp": "2026-12-03T10:00:00.000Z",
        "role": "implement",
        "provider": "openai",
        "model": "gpt-5",
        "input_tokens": 100,
        "output_tokens": 50,
        "estimated_cost_usd": 0.01,
        "session_id": "s1",
    }
    values.update(fields)
    return CostEntry(**values)


def write_lines(path: Path, *lines: str) -> None:
    with open(path, "a", encoding="utf-8") as fh:
        fh.write("".join(line + "\n" for line in lines))


# --------------------------------------------------------------------------- row format


def test_row_has_exact_camel_case_keys_and_omits_zero_reasoning(tmp_path):
    row = entry().to_json_dict()
    assert list(row) == [
        "timestamp", "role", "provider", "model", "inputTokens", "outputTokens",
        "estimatedCostUsd", "sessionId",
    ]
    full = entry(
        reasoning_tokens=7, task_type="code", cache_read_tokens=3, cache_write_tokens=4,
        latency_ms=812.5, attempts=2, fallback_from="openai/gpt-4o",
    ).to_json_dict()
    assert list(full) == [
        "timestamp", "role", "provider", "model", "inputTokens", "outputTokens",
        "reasoningTokens", "estimatedCostUsd", "sessionId", "taskType", "cacheReadTokens",
        "cacheWriteTokens", "latencyMs", "attempts", "fallbackFrom",
    ]
    path = tmp_path / "log.jsonl"
    log_cost(entry(reasoning_tokens=7), path)
    text = path.read_text()
    assert text.endswith("\n") and text.count("\n") == 1
    compact = json.dumps(entry(reasoning_tokens=7).to_json_dict(), separators=(",", ":"))
    assert text == compact + "\n"
    assert '"reasoningTokens":7' in text


def test_now_timestamp_is_utc_with_milliseconds():
    stamp = now_timestamp()
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", stamp)
    moment = datetime.fromisoformat(stamp[:-1]).replace(tzinfo=UTC)
    assert abs(datetime.now(UTC) - moment) < timedelta(seconds=5)


def test_from_json_dict_reads_typescript_and_snake_case_rows():
    ts = CostEntry.from_json_dict(json.loads(TS_ROW))
    assert ts == CostEntry("2026-12-03T18:12:42.123Z", "implement", "anthropic",
                           "claude-sonnet-4-6", 1200, 340, 0.0087, "abc")
    snake = CostEntry.from_json_dict({
        "timestamp": "2026-12-03T18:12:42.123Z", "role": "quick", "provider": "google",
        "model": "gemini-2.5-flash", "input_tokens": 5, "output_tokens": 6,
        "reasoning_tokens": 2, "estimated_cost_usd": 1, "session_id": "x",
        "task_type": "lint", "future_field": [1, 2],
    })
    assert (snake.provider, snake.reasoning_tokens, snake.estimated_cost_usd) == ("google", 2, 1.0)
    assert snake.task_type == "lint" and snake.latency_ms is None
    round_trip = entry(reasoning_tokens=3, attempts=2, fallback_from="a/b")
    assert CostEntry.from_json_dict(round_trip.to_json_dict()) == round_trip
    with pytest.raises(ValueError, match="sessionId"):
        CostEntry.from_json_dict({k: v for k, v in json.loads(TS_ROW).items() if k != "sessionId"})
    with pytest.raises(ValueError):
        CostEntry.from_json_dict({**json.loads(TS_ROW), "inputTokens": "many"})


def test_default_log_path(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DRAHT_COST_LOG", raising=False)
    assert default_log_path() == tmp_path / ".draht" / "cost-log.jsonl"
    assert default_log_path("logs/c.jsonl") == tmp_path / "logs" / "c.jsonl"
    assert default_log_path("/var/x.jsonl") == Path("/var/x.jsonl")
    monkeypatch.setenv("DRAHT_COST_LOG", "env.jsonl")
    assert default_log_path("logs/c.jsonl") == tmp_path / "env.jsonl"


# --------------------------------------------------------------------------- writing


def _write_rows(path: str, proc: int, threads: int, rows: int) -> None:
    def work(thread: int) -> None:
        for i in range(rows):
            # Rows of several KB make torn or interleaved writes likely if appends were unsafe.
            log_cost(entry(session_id=f"{proc}-{thread}-{i}", fallback_from="x" * 5000), path)

    workers = [threading.Thread(target=work, args=(t,)) for t in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()


def test_concurrent_processes_and_threads_write_whole_lines(tmp_path):
    path = tmp_path / "deep" / "dir" / "log.jsonl"
    method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
    context = multiprocessing.get_context(method)
    procs = [context.Process(target=_write_rows, args=(str(path), p, 8, 25)) for p in range(4)]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(60)
        assert proc.exitcode == 0
    lines = path.read_text().split("\n")
    assert lines[-1] == ""
    rows = [json.loads(line) for line in lines[:-1]]
    assert len(rows) == 800
    expected = {f"{p}-{t}-{i}" for p in range(4) for t in range(8) for i in range(25)}
    assert {row["sessionId"] for row in rows} == expected
    log = read_cost_log(path)
    assert sum(1 for _ in log) == 800 and log.skipped == 0


def test_safe_log_cost_never_raises_and_counts_failures(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    with pytest.raises(OSError):
        log_cost(entry(), blocker / "log.jsonl")
    before = write_failures()
    with structlog.testing.capture_logs() as logs:
        assert safe_log_cost(entry(session_id="lost"), blocker / "log.jsonl") is False
    assert write_failures() == before + 1
    event = next(log for log in logs if log["event"] == "cost.write_failed")
    assert event["log_level"] == "error" and event["row"]["sessionId"] == "lost"
    assert safe_log_cost(entry(), tmp_path / "ok.jsonl") is True
    assert write_failures() == before + 1


# --------------------------------------------------------------------------- reading


def test_read_skips_and_counts_bad_lines_and_reads_typescript_rows(tmp_path):
    path = tmp_path / "log.jsonl"
    write_lines(
        path,
        TS_ROW,                                        # 1
        "",                                            # 2 blank: ignored, not counted
        "not json at all",                             # 3
        "   ",                                         # 4 blank
        '[1, 2, 3]',                                   # 5 not an object
        '{"timestamp":"2026-12-03T18:12:42.123Z","role":"impl',  # 6 truncated
        '{"role":"implement"}',                        # 7 an object but not a row
        TS_ROW.replace("anthropic", "google").replace('"abc"', '"def"'),  # 8
        TS_ROW + "}",                                  # 9 trailing garbage
    )
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(TS_ROW[:40])                          # 10 cut off, no newline
    log = read_cost_log(path)
    rows = list(log)
    assert [r.session_id for r in rows] == ["abc", "def"]
    assert rows[1].provider == "google"
    assert (log.rows, log.skipped, log.skipped_lines) == (2, 6, [3, 5, 6, 7, 9, 10])
    assert log.exists
    assert len(list(log)) == 2 and log.skipped == 6  # re-iterable, counters per pass
    summary = summarize("role", log_path=path)
    assert (summary.rows, summary.skipped, summary.skipped_lines) == (2, 6, [3, 5, 6, 7, 9, 10])


def test_missing_log_reads_as_empty(tmp_path):
    log = read_cost_log(tmp_path / "nope.jsonl")
    assert list(log) == [] and not log.exists and log.rows == 0 and log.skipped == 0
    summary = summarize("day", log_path=tmp_path / "nope.jsonl")
    assert summary == {} and summary.total["calls"] == 0


def test_non_canonical_rows_count_like_canonical_ones(tmp_path, monkeypatch):
    """Rows written with spaces, escapes, other key orders or snake_case are all read."""
    path = tmp_path / "log.jsonl"
    canonical = entry(role="r", estimated_cost_usd=0.5, reasoning_tokens=4, attempts=1)
    variants = [
        json.dumps(canonical.to_json_dict()),                              # spaces
        json.dumps(dict(reversed(list(canonical.to_json_dict().items())))),  # key order
        json.dumps({"timestamp": canonical.timestamp, "role": "r", "provider": "openai",
                    "model": "gpt-5", "input_tokens": 100, "output_tokens": 50,
                    "reasoning_tokens": 4, "estimated_cost_usd": 0.5, "session_id": "s1"}),
        json.dumps(canonical.to_json_dict(), separators=(",", ":")).replace('"r"', '"\\u0072"'),
        json.dumps({**canonical.to_json_dict(), "extra": {"nested": True}}, separators=(",", ":")),
    ]
    write_lines(path, *variants, json.dumps(canonical.to_json_dict(), separators=(",", ":")))
    # Tiny blocks put line ends at every position of the read buffer.
    monkeypatch.setattr(cost, "_BLOCK_SIZE", 7)
    summary = summarize("role", log_path=path)
    assert summary["r"] == {"total_cost": 3.0, "total_input_tokens": 600,
                            "total_output_tokens": 300, "total_reasoning_tokens": 24, "calls": 6}
    assert summary.skipped == 0
    assert [e.role for e in read_cost_log(path)] == ["r"] * 6
    tracker = BudgetTracker(path)
    assert tracker.session_spend("s1") == pytest.approx(3.0)


def test_overlong_line_is_skipped_without_being_held(tmp_path, monkeypatch):
    monkeypatch.setattr(cost, "_BLOCK_SIZE", 16)
    monkeypatch.setattr(cost, "_MAX_LINE", 400)
    path = tmp_path / "log.jsonl"
    write_lines(path, TS_ROW, '{"junk":"' + "x" * 5000 + '"}', TS_ROW)
    log = read_cost_log(path)
    assert len(list(log)) == 2 and log.skipped_lines == [2]


# --------------------------------------------------------------------------- summaries


@pytest.fixture
def history(tmp_path) -> Path:
    path = tmp_path / "history.jsonl"
    rows = [
        entry(timestamp="2026-12-01T09:00:00.000Z", role="architect", provider="anthropic",
              model="claude-opus-4-5", input_tokens=1000, output_tokens=500,
              estimated_cost_usd=0.5, session_id="a"),
        entry(timestamp="2026-12-01T23:59:59.999Z", role="implement", input_tokens=200,
              output_tokens=100, reasoning_tokens=40, estimated_cost_usd=0.2, session_id="a"),
        entry(timestamp="2026-12-02T00:00:00.000Z", role="implement", input_tokens=300,
              output_tokens=100, estimated_cost_usd=0.3, session_id="b"),
        entry(timestamp="2026-12-03T12:00:00.000Z", role="quick", provider="google",
              model="gemini-2.5-flash", input_tokens=10, output_tokens=5,
              estimated_cost_usd=0.01, session_id="b"),
    ]
    for row in rows:
        log_cost(row, path)
    write_lines(path, "garbage")
    return path


def test_summarize_by_each_key(history):
    by_role = summarize("role", log_path=history)
    assert isinstance(by_role, CostSummary) and by_role.by == "role"
    assert list(by_role) == ["architect", "implement", "quick"]  # most expensive first
    assert by_role["implement"] == {"total_cost": 0.5, "total_input_tokens": 500,
                                    "total_output_tokens": 200, "total_reasoning_tokens": 40,
                                    "calls": 2}
    assert by_role.total == {"total_cost": 1.01, "total_input_tokens": 1510,
                             "total_output_tokens": 705, "total_reasoning_tokens": 40,
                             "calls": 4}
    assert (by_role.rows, by_role.skipped) == (4, 1)
    by_model = summarize("model", log_path=history)
    assert set(by_model) == {"anthropic/claude-opus-4-5", "openai/gpt-5",
                             "google/gemini-2.5-flash"}
    assert by_model["openai/gpt-5"]["calls"] == 2
    by_session = summarize("session", log_path=history)
    assert {k: v["calls"] for k, v in by_session.items()} == {"a": 2, "b": 2}
    assert by_session["a"]["total_cost"] == pytest.approx(0.7)
    by_day = summarize("day", log_path=history)
    assert {k: v["calls"] for k, v in by_day.items()} == {
        "2026-12-01": 2, "2026-12-02": 1, "2026-12-03": 1}
    with pytest.raises(ValueError, match="role, model, session, day"):
        summarize("week", log_path=history)


def test_summarize_since_and_until(history):
    def calls(**bounds) -> int:
        return summarize("role", log_path=history, **bounds).total["calls"]

    assert calls(since="2026-12-02") == 2
    assert calls(since=date(2026, 12, 2)) == 2
    assert calls(since="2026-12-01T23:59:59.999Z") == 3
    assert calls(until="2026-12-01") == 2  # a bare date includes that whole day
    assert calls(until=datetime(2026, 12, 2, tzinfo=UTC)) == 2  # until is exclusive
    assert calls(since="2026-12-01T12:00:00+00:00", until="2026-12-02T12:00:00Z") == 2
    assert summarize("role", log_path=history, role="implement").total["calls"] == 2
    assert summarize("role", log_path=history, session="b").total["calls"] == 2


def test_summarize_relative_bounds(tmp_path):
    path = tmp_path / "log.jsonl"
    now = datetime.now(UTC)
    for ago in (timedelta(minutes=5), timedelta(hours=5), timedelta(days=3), timedelta(days=10)):
        stamp = (now - ago).strftime("%Y-%m-%dT%H:%M:%S.000Z")
        log_cost(entry(timestamp=stamp), path)

    def calls(since: str) -> int:
        return summarize("day", since=since, log_path=path).total["calls"]

    assert [calls(s) for s in ("30m", "24h", "1d", "7d", "30d")] == [1, 2, 2, 3, 4]


def test_parse_time_bound():
    now = datetime(2026, 12, 3, 18, 0, tzinfo=UTC)
    assert parse_time_bound("7d", now=now) == now - timedelta(days=7)
    assert parse_time_bound("24h", now=now) == now - timedelta(hours=24)
    assert parse_time_bound("30m", now=now) == now - timedelta(minutes=30)
    assert parse_time_bound("today", now=now) == datetime(2026, 12, 3, tzinfo=UTC)
    assert parse_time_bound("2026-12-03T18:12:42.123Z") == datetime(
        2026, 12, 3, 18, 12, 42, 123000, tzinfo=UTC)
    assert parse_time_bound("2026-12-03T20:00:00+02:00") == datetime(2026, 12, 3, 18, tzinfo=UTC)
    assert parse_time_bound(datetime(2026, 12, 3, 18)) == now  # naive means UTC
    assert parse_time_bound(date(2026, 12, 3)) == datetime(2026, 12, 3, tzinfo=UTC)
    for bad in ("yesterdayish", "7 parsecs", ""):
        with pytest.raises(ValueError):
            parse_time_bound(bad)


def test_session_and_role_costs(history):
    assert [e.timestamp for e in get_session_costs("a", history)] == [
        "2026-12-01T09:00:00.000Z", "2026-12-01T23:59:59.999Z"]
    assert get_session_costs("zzz", history) == []
    implement = get_role_costs("implement", history)
    assert implement == {"total_cost": 0.5, "total_input_tokens": 500,
                         "total_output_tokens": 200, "calls": 2}
    assert get_role_costs("nobody", history) == {
        "total_cost": 0.0, "total_input_tokens": 0, "total_output_tokens": 0, "calls": 0}


# --------------------------------------------------------------------------- prices


def test_estimate_uses_litellm_prices():
    info = model_map.model_info("anthropic", "claude-sonnet-4-5")
    assert info is not None
    inp, out = info["input_cost_per_token"], info["output_cost_per_token"]
    assert estimate_cost("anthropic", "claude-sonnet-4-5", 1000, 500) == pytest.approx(
        1000 * inp + 500 * out)
    cached = info["cache_read_input_token_cost"]
    written = info["cache_creation_input_token_cost"]
    assert estimate_cost("anthropic", "claude-sonnet-4-5", 1000, 500, cache_read_tokens=600,
                         cache_write_tokens=100) == pytest.approx(
        300 * inp + 600 * cached + 100 * written + 500 * out)
    gemini = model_map.model_info("gemini", "gemini-2.5-pro")
    assert gemini is not None
    assert estimate_cost("google", "gemini-2.5-pro", 1000, 100) == pytest.approx(
        1000 * gemini["input_cost_per_token"] + 100 * gemini["output_cost_per_token"])


def test_estimate_overrides_family_table_and_default_rates():
    assert estimate_cost("openai", "gpt-5", 1000, 1000, input_cost_per_token=0,
                         output_cost_per_token=0) == 0.0
    assert estimate_cost("openai", "gpt-5", 1000, 0, input_cost_per_token=0) == 0.0
    sonnet = COST_PER_MILLION_TOKENS["claude-sonnet"]
    assert model_map.model_info("anthropic", "claude-sonnet-9") is None
    assert estimate_cost("anthropic", "claude-sonnet-9", 1_000_000, 1_000_000) == pytest.approx(
        sonnet["input"] + sonnet["output"])
    assert estimate_cost("", "anthropic/claude-sonnet-9", 1_000_000, 0) == pytest.approx(
        sonnet["input"])
    mini = COST_PER_MILLION_TOKENS["gpt-4o-mini"]  # longest family wins over gpt-4o
    assert estimate_cost("acme", "gpt-4o-mini-2099", 1_000_000, 0) == pytest.approx(mini["input"])
    assert estimate_cost("acme", "totally-unknown", 1_000_000, 1_000_000) == pytest.approx(
        DEFAULT_RATES["input"] + DEFAULT_RATES["output"])


def test_reasoning_tokens_are_billed_once():
    # output_tokens already include reasoning: the same total whatever the split.
    plain = estimate_cost("x", "unknown-model", 100, 1000, input_cost_per_token=1e-6,
                          output_cost_per_token=2e-6)
    split = estimate_cost("x", "unknown-model", 100, 1000, reasoning_tokens=600,
                          input_cost_per_token=1e-6, output_cost_per_token=2e-6)
    assert plain == split == pytest.approx(100e-6 + 1000 * 2e-6)
    # A model the map gives a reasoning price: the reasoning part at that price, once.
    info = model_map.model_info("dashscope", "qwen-turbo")
    assert info is not None and "output_cost_per_reasoning_token" in info
    got = estimate_cost("dashscope", "qwen-turbo", 100, 1000, reasoning_tokens=600)
    assert got == pytest.approx(100 * info["input_cost_per_token"]
                                + 400 * info["output_cost_per_token"]
                                + 600 * info["output_cost_per_reasoning_token"])


# --------------------------------------------------------------------------- budgets


def test_budget_tracker_refuses_at_each_cap(tmp_path):
    path = tmp_path / "log.jsonl"
    now = datetime(2026, 12, 3, 18, 0, tzinfo=UTC)
    log_cost(entry(timestamp="2026-12-03T09:00:00.000Z", session_id="abc",
                   estimated_cost_usd=5.0123), path)
    log_cost(entry(timestamp="2026-12-02T09:00:00.000Z", session_id="old",
                   estimated_cost_usd=100.0), path)
    tracker = BudgetTracker(path)
    with pytest.raises(BudgetExceededError) as info:
        tracker.check("implement", "abc", BudgetSettings(session_usd=5.0), now=now)
    assert str(info.value) == ("Budget exceeded: session 'abc' has spent $5.0123 of its $5.00 "
                               "cap (settings.budget.session_usd)")
    assert (info.value.scope, info.value.spent, info.value.cap) == ("session", 5.0123, 5.0)
    tracker.check("implement", "new", BudgetSettings(session_usd=5.0), now=now)

    with pytest.raises(BudgetExceededError) as info:
        tracker.check("quick", "new", BudgetSettings(daily_usd=5.0), now=now)
    assert info.value.scope == "daily" and "settings.budget.daily_usd" in str(info.value)
    tracker.check("quick", "new", BudgetSettings(daily_usd=5.02), now=now)  # yesterday's $100

    caps = BudgetSettings(role_daily_usd={"implement": 5.0})
    with pytest.raises(BudgetExceededError) as info:
        tracker.check("implement", "new", caps, now=now)
    assert info.value.scope == "role" and info.value.spent == pytest.approx(5.0123)
    assert "settings.budget.role_daily_usd.implement" in str(info.value)
    tracker.check("quick", "new", caps, now=now)
    tracker.check("implement", "new", BudgetSettings(), now=now)


def test_budget_tracker_sees_other_writers_and_counts_own_rows_once(tmp_path):
    path = tmp_path / "log.jsonl"
    today = now_timestamp()
    tracker = BudgetTracker(path)
    assert tracker.session_spend("s1") == 0.0  # no file yet
    mine = entry(timestamp=today, estimated_cost_usd=1.0)
    log_cost(mine, path)
    tracker.record(mine)
    assert tracker.session_spend("s1") == 1.0
    # Another process appends; the tracker reads only the new bytes and counts its row once.
    log_cost(entry(timestamp=today, estimated_cost_usd=2.0, role="review"), path)
    assert tracker.session_spend("s1") == 3.0
    assert tracker.daily_spend() == 3.0 and tracker.role_daily_spend("review") == 2.0
    # A row read from the file before record() is called is not counted again either.
    second = entry(timestamp=today, estimated_cost_usd=4.0, attempts=2)
    log_cost(second, path)
    tracker.refresh()
    tracker.record(second)
    assert tracker.session_spend("s1") == 7.0
    # A row that could not be written still counts.
    tracker.record(entry(timestamp=today, estimated_cost_usd=0.5, session_id="unwritten"))
    assert tracker.session_spend("unwritten") == 0.5
    with pytest.raises(BudgetExceededError):
        tracker.check("implement", "s1", BudgetSettings(session_usd=7.0))


def test_budget_tracker_reads_only_appended_bytes_and_rereads_a_shrunk_log(tmp_path):
    path = tmp_path / "log.jsonl"
    log_cost(entry(estimated_cost_usd=1.0), path)
    tracker = BudgetTracker(path)
    assert tracker.session_spend("s1") == 1.0
    # Rewriting bytes already read (same size) goes unnoticed: nothing is read twice.
    data = path.read_bytes()
    path.write_bytes(data.replace(b'"estimatedCostUsd":1.0', b'"estimatedCostUsd":9.0'))
    log_cost(entry(estimated_cost_usd=2.0), path)
    assert tracker.session_spend("s1") == 3.0
    # A truncated (rotated) log is read again from the start.
    path.write_text("")
    log_cost(entry(estimated_cost_usd=0.25), path)
    assert tracker.session_spend("s1") == 0.25
    # A half-written last line waits until it is complete.
    line = json.dumps(entry(estimated_cost_usd=1.0).to_json_dict(), separators=(",", ":"))
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(line[:30])
    assert tracker.session_spend("s1") == 0.25
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(line[30:] + "\n")
    assert tracker.session_spend("s1") == 1.25


def test_budget_tracker_record_before_first_read(tmp_path):
    path = tmp_path / "log.jsonl"
    row = entry(timestamp=now_timestamp(), estimated_cost_usd=1.5)
    log_cost(row, path)
    tracker = BudgetTracker(path)
    tracker.record(row)  # the first read then finds the same row in the file
    assert tracker.session_spend("s1") == 1.5
    assert os.path.getsize(path) > 0


def test_rows_with_unusable_numbers_are_skipped(tmp_path):
    path = tmp_path / "log.jsonl"
    good = json.loads(TS_ROW)
    write_lines(
        path,
        json.dumps({**good, "estimatedCostUsd": float("nan")}),
        json.dumps({**good, "estimatedCostUsd": 10**400}),
        TS_ROW.replace("0.0087", "1e999"),
        TS_ROW.replace("1200", "9" * 5000),
        TS_ROW.replace("1200", "true"),
        TS_ROW,
    )
    summary = summarize("role", log_path=path)
    assert (summary.rows, summary.skipped, summary.skipped_lines) == (1, 5, [1, 2, 3, 4, 5])
    log = read_cost_log(path)
    assert len(list(log)) == 1 and log.skipped == 5
    with pytest.raises(ValueError, match="finite"):
        CostEntry.from_json_dict({**good, "estimatedCostUsd": float("inf")})


# --------------------------------------------------------------------------- parallel summaries


def _varied_lines(count: int) -> list[str]:
    """Cost-log lines of every shape the reader accepts, with corrupt lines among them."""
    roles = ("architect", "implement", "quick", "review")
    models = (("anthropic", "claude-sonnet-4-6"), ("openai", "gpt-5"), ("google", "gemini"))
    lines = []
    for i in range(count):
        provider, model = models[i % 3]
        row = entry(
            timestamp=f"2026-12-{1 + i % 5:02d}T{i % 24:02d}:{i % 60:02d}:00.000Z",
            role=roles[i % 4], provider=provider, model=model, input_tokens=100 + i,
            output_tokens=10 + i % 37, reasoning_tokens=i % 11 if i % 2 else 0,
            estimated_cost_usd=round((i * 7919 % 1000) / 1e4 + i / 1e6, 8),
            session_id=f"s{i % 7}", task_type="code" if i % 3 == 0 else None,
        ).to_json_dict()
        if i % 13 == 5:
            lines.append("not json" if i % 2 else '{"role":"implement"}')
        elif i % 17 == 3:
            lines.append(json.dumps(row))  # spaces: read by json.loads
        elif i % 29 == 7:
            lines.append(json.dumps({**row, "timestamp": f"2026-12-0{1 + i % 5}T10:00:00+00:00"}))
        elif i % 31 == 9:
            lines.append(json.dumps({**row, "timestamp": "sometime"}, separators=(",", ":")))
        elif i % 19 == 0:
            lines.append("")
        else:
            lines.append(json.dumps(row, separators=(",", ":")))
    return lines


def _single(monkeypatch, *args, **kwargs) -> CostSummary:
    """summarize() in this process alone."""
    with monkeypatch.context() as patch:
        patch.setattr(cost_workers, "_PARALLEL_MIN_BYTES", 1 << 62)
        patch.delenv(cost_workers.PARALLEL_MIN_BYTES_ENV, raising=False)
        return summarize(*args, **kwargs)


def assert_same_summary(got: CostSummary, want: CostSummary) -> None:
    """Equal summaries, costs up to the order they were added in."""
    assert list(got) == list(want) and got.by == want.by
    for key, totals in [*want.items(), ("(total)", want.total)]:
        other = got.total if key == "(total)" else got[key]
        assert other["total_cost"] == pytest.approx(totals["total_cost"], rel=1e-12, abs=1e-12)
        assert {**other, "total_cost": 0} == {**totals, "total_cost": 0}
    assert (got.rows, got.skipped, got.skipped_lines) == (
        want.rows, want.skipped, want.skipped_lines)


@pytest.fixture
def parallel(monkeypatch) -> list[int | None]:
    """Makes summarize() split every log among up to 4 processes; lists the ranges of each
    call (None: it read the log alone)."""
    used: list[int | None] = []
    real = cost_workers.summarize_parallel

    def spy(*args):
        parts = real(*args)
        used.append(None if parts is None else len(parts))
        return parts

    monkeypatch.setattr(cost_workers, "summarize_parallel", spy)
    monkeypatch.setenv(cost_workers.PARALLEL_MIN_BYTES_ENV, "0")
    monkeypatch.setattr(cost_workers, "cpu_count", lambda: 4)
    return used


def test_parallel_summary_equals_single_process_one(tmp_path, monkeypatch, parallel):
    path = tmp_path / "log.jsonl"
    lines = _varied_lines(480)
    write_lines(path, *lines)
    with open(path, "rb") as fh:
        ranges = cost_workers.split_ranges(fh, path.stat().st_size, 4)
    assert len(ranges) == 4
    # Corrupt the last line before and the first line after each range boundary, keeping
    # every byte offset (so the ranges) as it was.
    offsets = [0]
    for line in lines:
        offsets.append(offsets[-1] + len(line.encode()) + 1)
    boundary_lines = []
    for start, _end in ranges[1:]:
        index = offsets.index(start)  # line number index + 1 starts the range
        boundary_lines += [index, index + 1]
        for i in (index - 1, index):
            lines[i] = "#" * max(len(lines[i]), 1)
    path.write_text("".join(line + "\n" for line in lines) + TS_ROW[:50])  # a cut-off last row
    with open(path, "rb") as fh:
        assert cost_workers.split_ranges(fh, path.stat().st_size, 4) == ranges

    calls = [
        ("role", {}), ("model", {}), ("session", {}), ("day", {}),
        ("day", {"since": "2026-12-02", "until": "2026-12-04"}),
        ("model", {"role": "implement", "since": "2026-12-02T05:00:00.25Z"}),
        ("session", {"session": "s3", "until": date(2026, 12, 3)}),
    ]
    results = []
    for by, filters in calls:
        want = _single(monkeypatch, by, log_path=path, **filters)
        results.append(summarize(by, log_path=path, **filters))
        assert_same_summary(results[-1], want)
    assert parallel == [None, 4] * len(calls)

    bad = [n for n, line in enumerate(lines, 1)
           if line.startswith("#") or line in ("not json", '{"role":"implement"}')]
    bad.append(len(lines) + 1)  # the cut-off last row
    assert set(boundary_lines) <= set(bad)
    whole = results[0]
    assert whole.skipped == len(bad) > 20
    assert whole.skipped_lines == bad[:20] and bad[19] > offsets.index(ranges[1][0])
    assert whole.rows + whole.skipped == sum(1 for line in lines if line) + 1


def test_parallel_summary_of_fewer_lines_than_processes(tmp_path, monkeypatch, parallel):
    path = tmp_path / "log.jsonl"
    path.write_bytes(b"")
    assert summarize("role", log_path=path) == {}
    write_lines(path, TS_ROW)
    one_line = summarize("model", log_path=path)
    assert one_line.total["calls"] == 1
    write_lines(path, "junk")
    two_lines = summarize("model", log_path=path)
    assert_same_summary(two_lines, _single(monkeypatch, "model", log_path=path))
    assert (two_lines.rows, two_lines.skipped, two_lines.skipped_lines) == (1, 1, [2])
    assert parallel == [None, None, 2, None]  # a range per line at most


def test_worker_result_is_the_in_process_part_exactly(tmp_path):
    """A real worker process: same groups, counts and float bits as reading in-process."""
    path = tmp_path / "log.jsonl"
    write_lines(path, *_varied_lines(200), json.dumps({**json.loads(TS_ROW),
                "role": "r\u00e9le \ud83d\ude00", "estimatedCostUsd": 0.1 + 0.2}))
    info = path.stat()
    command = cost_workers.worker_command()
    assert command is not None and command[-2:] == ["-m", "draht_router.cost_workers"]
    query = cost.RowFilter(1, None, None, datetime(2026, 12, 2, 0, 0, 0, 250, tzinfo=UTC), None)
    with open(path, "rb") as fh:
        start = cost_workers.split_ranges(fh, info.st_size, 2)[1][0]
        want = cost._summarize_range(fh, start, None, query)
        whole = cost._summarize_range(fh, 0, None, cost.RowFilter(0))
    assert want[2] > 0  # some skipped lines, numbered from the range's first line
    jobs = [(start, None, query), (0, None, cost.RowFilter(0))]
    workers = [cost_workers.start_worker(command, cost_workers.job_line(
        str(path), (info.st_dev, info.st_ino), *job)) for job in jobs]
    got = [cost_workers.worker_result(worker, time.monotonic() + 30) for worker in workers]
    for worker in workers:
        cost_workers.stop_worker(worker)
    assert got == [want, whole]
    assert [acc[0].hex() for acc in got[1][0].values()] == [
        acc[0].hex() for acc in whole[0].values()]


@pytest.mark.parametrize("how", ["missing", "not-executable", "exit", "garbage", "shape", "slow"])
def test_parallel_summary_reads_a_failed_workers_range_itself(
    tmp_path, monkeypatch, parallel, how
):
    path = tmp_path / "log.jsonl"
    write_lines(path, *_varied_lines(60))
    want = _single(monkeypatch, "session", since="2026-12-02", log_path=path)
    drain = "import sys; sys.stdin.readline(); "
    good = json.dumps({"groups": {}, "rows": 0, "skipped": 0, "skipped_lines": [], "lines": 0})
    commands = {
        "missing": [str(tmp_path / "no-such-python")],
        "exit": [sys.executable, "-c", drain + f"print({good!r}); sys.exit(1)"],
        "garbage": [sys.executable, "-c", drain + "print('{\"groups\": not json')"],
        "shape": [sys.executable, "-c", drain + "print('{\"groups\": {\"x\": [1, 2]}}')"],
        "slow": [sys.executable, "-c", drain + "import time; time.sleep(30)"],
    }
    if how == "not-executable":
        python = tmp_path / "python3"
        python.write_text("")
        python.chmod(0o644)
        monkeypatch.setattr(sys, "executable", str(python))
    else:
        monkeypatch.setattr(cost_workers, "worker_command", lambda: commands[how])
    monkeypatch.setattr(cost_workers, "_WORKER_WAIT_SECONDS", 0.3)
    started, results = [], []
    start_worker, worker_result = cost_workers.start_worker, cost_workers.worker_result
    monkeypatch.setattr(cost_workers, "start_worker", lambda *a: started.append(start_worker(*a))
                        or started[-1])
    monkeypatch.setattr(cost_workers, "worker_result", lambda *a: results.append(worker_result(*a))
                        or results[-1])
    got = summarize("session", since="2026-12-02", log_path=path)
    assert_same_summary(got, want)
    if how in ("missing", "not-executable"):
        assert started == [None] * 3 and results == []
    else:
        assert None not in started and results == [None] * 3
        assert all(worker.returncode is not None for worker in started)  # reaped
    # Split (the first None is _single's call), this process reading what no worker did.
    assert parallel == [None, 4]


def test_parallel_summary_not_started_without_a_python_to_run(tmp_path, monkeypatch, parallel):
    path = tmp_path / "log.jsonl"
    write_lines(path, *_varied_lines(40))
    want = _single(monkeypatch, "day", log_path=path)
    python = sys.executable
    for executable in ("", "/usr/sbin/uwsgi"):  # none, or that of a program embedding Python
        monkeypatch.setattr(sys, "executable", executable)
        assert_same_summary(summarize("day", log_path=path), want)
    monkeypatch.setattr(sys, "executable", python)
    monkeypatch.setattr(sys, "frozen", True, raising=False)  # as PyInstaller sets it
    assert_same_summary(summarize("day", log_path=path), want)
    assert parallel == [None] * 4  # _single's call and three that did not split


def test_parallel_worker_refuses_a_replaced_log(tmp_path, monkeypatch, parallel):
    path = tmp_path / "log.jsonl"
    write_lines(path, *_varied_lines(40))
    info = path.stat()
    rows = cost_workers.summarize_range_worker(
        str(path), (info.st_dev, info.st_ino), 0, None, cost.RowFilter(0))
    assert rows == cost._summarize_range(open(path, "rb"), 0, None, cost.RowFilter(0))
    with pytest.raises(cost_workers.ReplacedLogError):
        cost_workers.summarize_range_worker(
            str(path), (info.st_dev, info.st_ino + 1), 0, None, cost.RowFilter(0))

    # A worker that finds another file at the path refuses its job, and summarize() reads
    # that range itself.
    real_job_line = cost_workers.job_line

    def replaced(path, identity, *rest):
        return real_job_line(path, (identity[0], identity[1] + 1), *rest)

    monkeypatch.setattr(cost_workers, "job_line", replaced)
    worker = cost_workers.start_worker(cost_workers.worker_command(), replaced(
        str(path), (info.st_dev, info.st_ino), 0, None, cost.RowFilter(0)))
    assert cost_workers.worker_result(worker, time.monotonic() + 30) is None
    assert worker.returncode == 3
    assert_same_summary(summarize("role", log_path=path), _single(monkeypatch, "role",
                                                                   log_path=path))
    assert parallel == [4, None]


def test_parallel_min_bytes_knob(monkeypatch):
    monkeypatch.delenv(cost_workers.PARALLEL_MIN_BYTES_ENV, raising=False)
    assert cost_workers.parallel_min_bytes() == 64 << 20
    for value, want in [("0", 0), (" 1048576 ", 1 << 20), ("-1", 64 << 20), ("1e6", 64 << 20),
                        ("", 64 << 20)]:
        monkeypatch.setenv(cost_workers.PARALLEL_MIN_BYTES_ENV, value)
        assert cost_workers.parallel_min_bytes() == want


_UNGUARDED_SCRIPT = """
import json, sys
from draht_router import cost, cost_workers

# Top-level code with no __main__ guard: a worker that imported this file would run it again.
with open(sys.argv[1], "a") as marker:
    marker.write("ran\\n")
cost_workers.cpu_count = lambda: 4
split = []
real = cost_workers.summarize_parallel
cost_workers.summarize_parallel = lambda *args: split.append(real(*args)) or split[-1]
summary = cost.summarize("model", log_path=sys.argv[2])
print(json.dumps([len(split[0]), dict(summary), summary.rows, summary.skipped_lines]))
"""


def test_parallel_summary_never_runs_the_callers_main_module_again(tmp_path, monkeypatch):
    log = tmp_path / "log.jsonl"
    write_lines(log, *_varied_lines(80))
    script = tmp_path / "unguarded.py"
    script.write_text(_UNGUARDED_SCRIPT)
    marker = tmp_path / "marker.txt"
    env = {**os.environ, cost_workers.PARALLEL_MIN_BYTES_ENV: "0"}
    done = subprocess.run([sys.executable, str(script), str(marker), str(log)], env=env,
                          cwd=tmp_path, capture_output=True, text=True, timeout=60, check=True)
    assert marker.read_text() == "ran\n"
    processes, groups, rows, skipped_lines = json.loads(done.stdout)
    want = _single(monkeypatch, "model", log_path=log)
    assert processes == 4
    assert (groups, rows, skipped_lines) == (dict(want), want.rows, want.skipped_lines)


def test_summary_worker_imports_neither_litellm_nor_structlog():
    code = ("import sys, draht_router.cost_workers; "
            "print(' '.join(sorted({name.split('.')[0] for name in sys.modules})))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60, check=True)
    loaded = done.stdout.split()
    assert "draht_router" in loaded
    assert not {"litellm", "structlog", "yaml", "multiprocessing", "concurrent"} & set(loaded)
