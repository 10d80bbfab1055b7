"""Wall time of the ``draht-router`` commands that send no request, against LiteLLM's import.

Run: ``python benchmarks/bench_cli.py [--rows 100000] [--repeat 5]``.

Prints the median wall time of ``draht-router show`` and ``draht-router cost`` (on a
generated cost log of ``--rows`` rows) over ``--repeat`` runs, and of
``python -c "import litellm"`` over 3 runs, each as a fresh process, with the ratios. The goal
for ``show`` is at most 0.5 s.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

GOAL_SHOW_SECONDS = 0.5

_ROLES = ("architect", "implement", "boilerplate", "quick", "review", "docs")
_MODELS = (
    ("anthropic", "claude-sonnet-4-6"),
    ("openai", "gpt-5.2"),
    ("gemini", "gemini-2.5-flash"),
    ("deepseek", "deepseek-v3.2"),
)


def write_log(path: Path, rows: int) -> None:
    """``rows`` cost-log lines spread over 28 days, roles, models and 1,000 sessions."""
    with open(path, "w", encoding="utf-8") as fh:
        batch: list[str] = []
        for i in range(rows):
            provider, model = _MODELS[i % len(_MODELS)]
            second = i % 86_400
            batch.append(
                f'{{"timestamp":"2026-11-{1 + i % 28:02d}T{second // 3600:02d}:'
                f'{second // 60 % 60:02d}:{second % 60:02d}.000Z","role":"{_ROLES[i % 6]}",'
                f'"provider":"{provider}","model":"{model}","inputTokens":{500 + i % 7000},'
                f'"outputTokens":{50 + i % 1500},"estimatedCostUsd":{(i % 991) * 1.7e-5:.6f},'
                f'"sessionId":"s{i % 1000}"}}\n'
            )
            if len(batch) == 10_000:
                fh.write("".join(batch))
                batch.clear()
        fh.write("".join(batch))


def median_seconds(command: list[str], runs: int, cwd: Path, env: dict[str, str]) -> float:
    """Median wall time of ``runs`` fresh runs of ``command`` (one untimed warm-up first)."""
    subprocess.run(command, cwd=cwd, env=env, capture_output=True, check=True)
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run(command, cwd=cwd, env=env, capture_output=True, check=True)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000, help="cost-log rows for `cost`")
    parser.add_argument("--repeat", type=int, default=5, help="timed runs per CLI command")
    args = parser.parse_args()

    script = shutil.which("draht-router", path=os.path.dirname(sys.executable))
    cli = [script] if script else [sys.executable, "-m", "draht_router"]
    with tempfile.TemporaryDirectory(prefix="draht-bench-cli-") as tmp:
        root = Path(tmp)
        (root / "home").mkdir()
        env = {k: v for k, v in os.environ.items() if not k.startswith("DRAHT_")}
        env.update(HOME=str(root / "home"), LITELLM_LOCAL_MODEL_COST_MAP="True")
        log = root / "cost-log.jsonl"
        write_log(log, args.rows)

        show = median_seconds([*cli, "show"], args.repeat, root, env)
        cost = median_seconds([*cli, "cost", "--log", str(log)], args.repeat, root, env)
        litellm = median_seconds([sys.executable, "-c", "import litellm"], 3, root, env)

    print(f"draht-router show                  median of {args.repeat}: {show:.3f} s")
    print(f"draht-router cost ({args.rows:,} rows)  median of {args.repeat}: {cost:.3f} s")
    print(f'python -c "import litellm"         median of 3: {litellm:.3f} s')
    print(f"show / import litellm = {show / litellm:.3f}; cost / import litellm = "
          f"{cost / litellm:.3f}")
    verdict = "met" if show <= GOAL_SHOW_SECONDS else "MISSED"
    print(f"goal: show <= {GOAL_SHOW_SECONDS} s -> {verdict}")


if __name__ == "__main__":
    main()
