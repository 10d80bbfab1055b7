"""The worker process of :func:`draht_router.cost.summarize` for large logs.

Run as ``python -m draht_router._summary_worker`` by summarize() itself: it reads one job
line (JSON) on standard input, sums that byte range of the cost log and writes the result as
one JSON line on standard output. Exit status: 0 done, 2 no job, 3 the log was replaced since
the caller opened it, 1 any other failure. It imports only :mod:`draht_router.cost` (never
LiteLLM) and nothing of the program that called summarize().
"""

from __future__ import annotations

import sys

from draht_router import cost


def main() -> int:
    """Run the job on standard input; the exit status."""
    line = sys.stdin.buffer.readline()
    if not line.strip():
        return 2
    try:
        result = cost._run_job(line)
    except cost._ReplacedLogError:
        return 3
    sys.stdout.buffer.write(result)
    sys.stdout.buffer.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
