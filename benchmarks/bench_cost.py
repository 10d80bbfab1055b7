"""Time ``summarize(by="role")`` on a large cost log and measure its peak memory.

Run: ``python benchmarks/bench_cost.py [--rows 1000000] [--small-rows 100000]``.

For each log size it prints one line ``rows=… seconds=… cpu_seconds=… peak_MB=…
processes=… workers=… worker_rss_MB=…``: seconds (wall clock) and cpu_seconds (this process
and its worker processes together) are the best of ``--repeat`` untraced runs; peak_MB is the
largest Python allocation in this process during one traced run (tracemalloc); processes is
how many processes read the log (1: summarize did not split it), workers how many of them it
started, and worker_rss_MB the largest resident size any worker process reached so far. Similar
peak_MB and worker_rss_MB for both sizes show that memory does not grow with the row count.
The goal is at most 3 s for 1,000,000 rows.
"""

from __future__ import annotations

import argparse
import gc
import os
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

from draht_router import cost_workers
from draht_router.cost import summarize

try:
    import resource
except ImportError:  # not Unix: worker memory is not reported
    resource = None  # type: ignore[assignment]

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


class _SplitProbe:
    """Records how many processes each summarize() call split the log among."""

    def __init__(self) -> None:
        self.processes: list[int] = []
        self._real = cost_workers.summarize_parallel

    def __call__(self, *args, **kwargs):
        parts = self._real(*args, **kwargs)
        self.processes.append(1 if parts is None else len(parts))
        return parts

    def __enter__(self) -> _SplitProbe:
        cost_workers.summarize_parallel = self
        return self

    def __exit__(self, *exc) -> None:
        cost_workers.summarize_parallel = self._real


def _worker_rss_mb() -> float:
    """The largest resident size (MB) any finished child process of this one has had."""
    if resource is None:
        return float("nan")
    kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return kib / 1e6 if sys.platform == "darwin" else kib * 1024 / 1e6  # bytes on macOS


def measure(path: Path, repeat: int) -> tuple[float, float, float, int, int]:
    """(best wall seconds, best CPU seconds of this process and its workers, peak MB, rows
    counted, processes used) of ``summarize(by="role")`` on ``path``."""
    best_wall = best_cpu = float("inf")
    rows = 0
    with _SplitProbe() as probe:
        for _ in range(repeat):
            gc.collect()
            wall, cpu = time.perf_counter(), os.times()
            summary = summarize("role", log_path=path)
            best_wall = min(best_wall, time.perf_counter() - wall)
            end = os.times()
            best_cpu = min(best_cpu, sum(end[:4]) - sum(cpu[:4]))
            rows = summary.total["calls"]
    if len(set(probe.processes)) != 1:
        raise SystemExit(f"summarize used {probe.processes} processes in runs of one log")
    gc.collect()
    tracemalloc.start()
    summarize("role", log_path=path)
    _current, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return best_wall, best_cpu, peak / 1e6, rows, probe.processes[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=GOAL_ROWS)
    parser.add_argument("--small-rows", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument(
        "--split-all", action="store_true",
        help="split every log among processes, however small (to compare worker memory)",
    )
    args = parser.parse_args()
    if args.split_all:
        os.environ[cost_workers.PARALLEL_MIN_BYTES_ENV] = "0"

    with tempfile.TemporaryDirectory() as tmp:
        results = []
        for rows in (args.small_rows, args.rows):
            path = Path(tmp) / f"cost-log-{rows}.jsonl"
            start = time.perf_counter()
            write_log(path, rows)
            written = time.perf_counter() - start
            size_mb = path.stat().st_size / 1e6
            print(f"# wrote {rows:,} rows ({size_mb:.0f} MB) in {written:.1f} s")
            seconds, cpu, peak_mb, counted, processes = measure(path, args.repeat)
            if counted != rows:
                raise SystemExit(f"summarize counted {counted} rows, expected {rows}")
            results.append((rows, seconds, peak_mb))
            print(
                f"rows={rows} seconds={seconds:.3f} cpu_seconds={cpu:.3f} peak_MB={peak_mb:.2f}"
                f" processes={processes} workers={processes - 1}"
                f" worker_rss_MB={_worker_rss_mb() if processes > 1 else float('nan'):.1f}",
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
