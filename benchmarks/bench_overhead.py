"""Per-call overhead of draht_router against LiteLLM, measured in the same run.

Sequential non-streaming calls to the loopback stub (run in its own process so it does not
compete for this process's GIL) through:

* ``ModelRouter.completion`` (role routing, policy, cost row written before return)
* ``ModelRouter.completion`` with the cost row switched off (isolates the callback's cost)
* ``litellm.Router.completion`` (one model group)
* ``litellm.completion``

Prints milliseconds per call and ratios. Goals: draht_router <= 1.10x litellm.Router, and the
cost callback adds <= 5% to draht_router's per-call time. Usage::

    python benchmarks/bench_overhead.py [--calls 300] [--rounds 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

MESSAGES = [{"role": "user", "content": "ping"}]


def start_stub() -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "draht_router.stub"], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    return proc, proc.stdout.readline().strip()


def per_call_ms(fn, calls: int) -> float:
    start = time.perf_counter()
    for _ in range(calls):
        fn()
    return (time.perf_counter() - start) / calls * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="draht-bench-"))
    os.environ["DRAHT_COST_LOG"] = str(workdir / "cost.jsonl")
    proc, base = start_stub()
    try:
        import litellm

        from draht_router import ModelRouter
        from draht_router import router as router_module
        from draht_router.callbacks import register_cost_callback

        entry = {"model": "openai/bench", "api_base": base, "api_key": "sk-bench"}
        draht = ModelRouter({"roles": {"implement": {"primary": entry}}})
        lrouter = litellm.Router(
            model_list=[{"model_name": "implement", "litellm_params": dict(entry)}]
        )

        def via_draht():
            draht.completion(role="implement", messages=MESSAGES)

        def via_router():
            lrouter.completion(model="implement", messages=MESSAGES)

        def via_completion():
            litellm.completion(messages=MESSAGES, max_retries=0, **entry)

        real_record = router_module.record_response

        cost_logger = register_cost_callback()

        def via_draht_without_cost():
            # Both writers off: the synchronous row and LiteLLM's deferred callback.
            router_module.record_response = lambda *a, **k: None
            litellm.callbacks.remove(cost_logger)
            try:
                draht.completion(role="implement", messages=MESSAGES)
            finally:
                litellm.callbacks.append(cost_logger)
                router_module.record_response = real_record

        candidates = {
            "draht_router ModelRouter.completion": via_draht,
            "draht_router, cost row off": via_draht_without_cost,
            "litellm.Router.completion": via_router,
            "litellm.completion": via_completion,
        }
        for fn in candidates.values():  # warm up connections and lazy imports
            per_call_ms(fn, 20)
        results: dict[str, list[float]] = {name: [] for name in candidates}
        for _ in range(args.rounds):  # interleave rounds so machine noise hits all alike
            for name, fn in candidates.items():
                results[name].append(per_call_ms(fn, args.calls))
    finally:
        proc.terminate()
        proc.wait(timeout=10)

    medians = {name: statistics.median(times) for name, times in results.items()}
    print(f"{args.calls} sequential calls x {args.rounds} rounds (median ms/call)")
    for name, ms in medians.items():
        print(f"  {name:<40} {ms:7.2f} ms")
    draht_ms = medians["draht_router ModelRouter.completion"]
    router_ms = medians["litellm.Router.completion"]
    ratio = draht_ms / router_ms
    callback_share = draht_ms / medians["draht_router, cost row off"] - 1
    print(f"draht_router / litellm.Router     = {ratio:.2f}x (goal <= 1.10x)")
    print(f"draht_router / litellm.completion = {draht_ms / medians['litellm.completion']:.2f}x")
    print(f"cost row adds                     = {callback_share * 100:+.1f}% (goal <= 5%)")


if __name__ == "__main__":
    main()
