"""Time ``summarize(by="role")`` on a large cost log and measure its peak memory.

Run: ``python benchmarks/bench_cost.py [--rows 1000000] [--small-rows 100000]``.

For each log size it prints one line ``rows=… seconds=… cpu_seconds=… peak_MB=…``: seconds
(wall clock) and cpu_seconds are the best of ``--repeat`` untraced runs, peak_MB the largest
Python allocation during one traced run (tracemalloc). Similar peak_MB for both sizes shows
that memory does not grow with the row count. The goal is at most 3 s for 1,000,000 rows.
"""

from __future__ import annotations

import argparse
import gc
import os
import tempfile
import time
import tracemalloc
from pathlib import Path

from draht_router.cost import summarize

GOAL_SECONDS = 3.0
GOAL_ROWS = 1_000_000

_ROLES = ("architect", "implement", "boilerplate", "quick", "review", "docs")
_MODELS = (
    ("anthropic", "claude-sonnet-4-6"),
    ("anthropic", "claude-haiku-4-5"),
    ("openai", "gpt-5"),
    ("openai", "gpt-4o-mini"),
    ("google", "gemini-2.5-pro"),
    ("deepseek", "deepseek-chat"),
)


def write_log(path: Path, rows: int) -> None:
    """Write ``rows`` realistic cost-log lines to ``path``."""
    chunk: list[str] = []
    with open(path, "w", encoding="utf-8") as fh:
        for i in range(rows):
            provider, model = _MODELS[i % len(_MODELS)]
            day = 1 + (i // 40_000) % 28
            second = i % 86_400
            reasoning = f',"reasoningTokens":{i % 512}' if i % 4 == 0 else ""
            extras = ',"taskType":"code","latencyMs":1834' if i % 3 == 0 else ""
            chunk.append(
                f'{{"timestamp":"2026-11-{day:02d}T{second // 3600:02d}:'
                f'{second // 60 % 60:02d}:{second % 60:02d}.{i % 1000:03d}Z",'
                f'"role":"{_ROLES[i % len(_ROLES)]}","provider":"{provider}","model":"{model}",'
                f'"inputTokens":{800 + i % 9000},"outputTokens":{120 + i % 2000}{reasoning},'
                f'"estimatedCostUsd":{(i % 997) * 0.00013:.6f},"sessionId":"s{i % 5000}"'
                f"{extras}}}\n"
            )
            if len(chunk) >= 10_000:
                fh.write("".join(chunk))
                chunk.clear()
        fh.write("".join(chunk))


def measure(path: Path, repeat: int) -> tuple[float, float, float, int]:
    """(best wall seconds, best CPU seconds, peak MB, rows counted) of
    ``summarize(by="role")`` on ``path``."""
    best_wall = best_cpu = float("inf")
    rows = 0
    for _ in range(repeat):
        gc.collect()
        wall, cpu = time.perf_counter(), time.process_time()
        summary = summarize("role", log_path=path)
        best_cpu = min(best_cpu, time.process_time() - cpu)
        best_wall = min(best_wall, time.perf_counter() - wall)
        rows = summary.total["calls"]
    gc.collect()
    tracemalloc.start()
    summarize("role", log_path=path)
    _current, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return best_wall, best_cpu, peak / 1e6, rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=GOAL_ROWS)
    parser.add_argument("--small-rows", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        results = []
        for rows in (args.small_rows, args.rows):
            path = Path(tmp) / f"cost-log-{rows}.jsonl"
            start = time.perf_counter()
            write_log(path, rows)
            written = time.perf_counter() - start
            size_mb = path.stat().st_size / 1e6
            print(f"# wrote {rows:,} rows ({size_mb:.0f} MB) in {written:.1f} s")
            seconds, cpu, peak_mb, counted = measure(path, args.repeat)
            if counted != rows:
                raise SystemExit(f"summarize counted {counted} rows, expected {rows}")
            results.append((rows, seconds, peak_mb))
            print(
                f"rows={rows} seconds={seconds:.3f} cpu_seconds={cpu:.3f} peak_MB={peak_mb:.2f}",
                flush=True,
            )
            path.unlink()

    rows, seconds, _peak = results[-1]
    per_million = seconds * 1_000_000 / rows
    verdict = "met" if per_million <= GOAL_SECONDS else "NOT met"
    print(
        f"goal: summarize(by='role') on {GOAL_ROWS:,} rows in <= {GOAL_SECONDS:.0f} s; "
        f"measured {per_million:.2f} s per million rows: {verdict}"
    )
    if hasattr(os, "getloadavg"):
        print(f"# load average during the run: {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs")


if __name__ == "__main__":
    main()
