"""Throughput of ``abatch_completion`` against plain ``litellm.acompletion`` calls.

Run: ``python benchmarks/bench_batch.py [--requests 2000] [--concurrency 32] [--rounds 3]``.

A stub provider runs in another process (``python -m draht_router.stub``) and answers every
request at once, so the figures measure client-side overhead. Both sides send the same
request (same model, ``api_base``, ``max_retries=0``) at the same concurrency:

* baseline: ``asyncio.gather`` of ``litellm.acompletion`` under ``asyncio.Semaphore(N)``;
* batch: ``abatch_completion`` through a ``ModelRouter`` (fall-over chain, cost row per call).

Each side is warmed up, then measured ``--rounds`` times, taking turns (the first side
alternates, as a shared machine's load drifts). Requests per second are reported (best and
median round) with the ratio of the medians, batch / baseline (goal: >= 0.9). The baseline
runs in a child process, so it does not pay for the router's LiteLLM cost callback (which
is registered process-wide once a router is built). Cost rows go to a temporary file.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

GOAL_RATIO = 0.9
MODEL = "bench-model"
MESSAGES = [{"role": "user", "content": "Say hello."}]


def start_stub() -> tuple[subprocess.Popen[str], str]:
    """The stub in its own process, and its base URL."""
    process = subprocess.Popen(
        [sys.executable, "-m", "draht_router.stub", "--max-recorded", "10"],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    url = process.stdout.readline().strip()
    if not url.startswith("http"):
        process.kill()
        raise SystemExit(f"the stub did not start (printed {url!r})")
    return process, url


async def baseline(url: str, count: int, concurrency: int) -> float:
    """Seconds for ``count`` plain ``litellm.acompletion`` calls, ``concurrency`` at a time."""
    import litellm

    slots = asyncio.Semaphore(concurrency)

    async def one() -> None:
        async with slots:
            await litellm.acompletion(
                model=f"openai/{MODEL}",
                api_base=url,
                api_key="sk-test",
                messages=MESSAGES,
                max_retries=0,
            )

    started = time.perf_counter()
    await asyncio.gather(*(one() for _ in range(count)))
    return time.perf_counter() - started


async def batch(router: object, count: int, concurrency: int) -> float:
    """Seconds for ``count`` requests through ``abatch_completion``."""
    from draht_router.batch import abatch_completion

    requests = [{"id": str(i), "role": "quick", "messages": MESSAGES} for i in range(count)]
    started = time.perf_counter()
    failed = 0
    async for result in abatch_completion(requests, concurrency=concurrency, router=router):
        failed += result.error is not None
    elapsed = time.perf_counter() - started
    if failed:
        raise SystemExit(f"{failed} batch request(s) failed")
    return elapsed


def child_baseline(url: str, concurrency: int, warmup: int) -> None:
    """Body of the baseline process: for each request count read on stdin, print seconds."""
    import litellm

    litellm.suppress_debug_info = True
    asyncio.run(baseline(url, warmup, concurrency))
    print("ready", flush=True)
    for line in sys.stdin:
        count = int(line)
        print(asyncio.run(baseline(url, count, concurrency)), flush=True)


class BaselineProcess:
    """The baseline in a child process without draht_router's callback, driven round by round."""

    def __init__(self, url: str, concurrency: int, warmup: int):
        argv = [sys.executable, __file__, "--child-baseline", url]
        argv += ["--concurrency", str(concurrency), "--warmup", str(warmup)]
        self.process = subprocess.Popen(
            argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        if self._read() != "ready":
            raise SystemExit("the baseline process did not start")

    def _read(self) -> str:
        assert self.process.stdout is not None
        return self.process.stdout.readline().strip()

    def run(self, count: int) -> float:
        assert self.process.stdin is not None
        self.process.stdin.write(f"{count}\n")
        self.process.stdin.flush()
        return float(self._read())

    def close(self) -> None:
        if self.process.stdin is not None:
            self.process.stdin.close()
        self.process.wait(timeout=30)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=200)
    parser.add_argument("--child-baseline", metavar="URL", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child_baseline:
        child_baseline(args.child_baseline, args.concurrency, args.warmup)
        return 0

    stub, url = start_stub()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            log = Path(tmp) / "cost-log.jsonl"
            os.environ["DRAHT_COST_LOG"] = str(log)
            base = BaselineProcess(url, args.concurrency, args.warmup)

            from draht_router.router import ModelRouter

            entry = {"model": f"openai/{MODEL}", "api_base": url, "api_key": "sk-test"}
            router = ModelRouter(
                {"roles": {"quick": {"primary": entry}}, "settings": {"num_retries": 0}},
                session_id="bench-batch",
            )
            asyncio.run(batch(router, args.warmup, args.concurrency))
            base_times: list[float] = []
            batch_times: list[float] = []
            for round_no in range(args.rounds):
                # Alternate which side goes first: the machine's load drifts between rounds.
                sides = [
                    lambda: base_times.append(base.run(args.requests)),
                    lambda: batch_times.append(
                        asyncio.run(batch(router, args.requests, args.concurrency))
                    ),
                ]
                for side in sides if round_no % 2 == 0 else reversed(sides):
                    side()
            base.close()
            rows = sum(1 for _ in log.open())
    finally:
        stub.terminate()
        stub.wait(timeout=10)

    def rates(times: list[float]) -> tuple[float, float]:
        per_second = sorted(args.requests / t for t in times)
        return per_second[-1], statistics.median(per_second)

    base_best, base_median = rates(base_times)
    batch_best, batch_median = rates(batch_times)
    ratio = batch_median / base_median
    print(f"requests={args.requests} concurrency={args.concurrency} rounds={args.rounds}")
    print(
        f"baseline gather(litellm.acompletion): best {base_best:7.1f}  median "
        f"{base_median:7.1f} req/s"
    )
    print(
        f"abatch_completion via ModelRouter:    best {batch_best:7.1f}  median "
        f"{batch_median:7.1f} req/s"
    )
    verdict = "met" if ratio >= GOAL_RATIO else "MISSED"
    print(
        f"ratio of medians: {ratio:.2f}x (best: {batch_best / base_best:.2f}x); "
        f"goal >= {GOAL_RATIO}x {verdict}"
    )
    expected = args.warmup + args.requests * args.rounds
    print(f"cost rows written by the batch side: {rows} (expected {expected})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
