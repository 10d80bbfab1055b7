"""Cost summaries split across processes: how :func:`draht_router.cost.summarize` reads a
large log with worker processes, and those workers.

Parent side (:func:`summarize_parallel`, in the process that called summarize()): cut the log
into byte ranges of whole lines, start a worker per range but the first, read the first range
itself, then merge in what each worker writes back, reading any range whose worker failed.

Child side (:func:`main`, run as ``python -m draht_router.cost_workers``): read one job line
(JSON) on standard input, sum that byte range of the log with
:func:`draht_router.cost._summarize_range`, the very code the parent uses, and write the result
as one JSON line on standard output. Exit status: 0 done, 2 no job, 3 the log was replaced
since the caller opened it, 1 any other failure. A worker imports only this module and
:mod:`draht_router.cost` (never LiteLLM) and nothing of the program that called summarize().
"""

from __future__ import annotations

import json
import os
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import IO, TYPE_CHECKING

from draht_router import cost

if TYPE_CHECKING:
    import subprocess

__all__ = [
    "PARALLEL_MIN_BYTES_ENV",
    "ReplacedLogError",
    "WorkerMismatchError",
    "cpu_count",
    "job_line",
    "main",
    "parallel_min_bytes",
    "part_from_output",
    "run_job",
    "split_ranges",
    "start_worker",
    "stop_worker",
    "summarize_parallel",
    "summarize_range_worker",
    "worker_command",
    "worker_result",
]

# summarize() splits a log at least this large among processes (below it, starting one costs
# more than it saves); at most this many, the calling process being one of them.
_PARALLEL_MIN_BYTES = 64 << 20
_MAX_PROCESSES = 4
# Overrides _PARALLEL_MIN_BYTES (a number of bytes), read at each call: a tuning knob, and how
# tests make summarize() split small logs.
PARALLEL_MIN_BYTES_ENV = "DRAHT_SUMMARY_PARALLEL_MIN_BYTES"
_WORKER_MODULE = "draht_router.cost_workers"
# How long summarize() waits for its workers after reading its own range, at least.
_WORKER_WAIT_SECONDS = 30.0


# --------------------------------------------------------------------------- parent side


def parallel_min_bytes() -> int:
    """The size from which summarize() splits a log: ``$DRAHT_SUMMARY_PARALLEL_MIN_BYTES``
    when it is a whole number of bytes (0 or more), else :data:`_PARALLEL_MIN_BYTES`."""
    raw = os.environ.get(PARALLEL_MIN_BYTES_ENV, "").strip()
    if raw.isdigit():
        return int(raw)
    return _PARALLEL_MIN_BYTES


def cpu_count() -> int:
    """The CPUs this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        return os.cpu_count() or 1


def split_ranges(fh: IO[bytes], size: int, count: int) -> list[tuple[int, int | None]]:
    """At most ``count`` byte ranges of about equal size covering the file ``fh`` of ``size``
    bytes, each made of whole lines; the last one ends at the end of the file (None)."""
    starts = [0]
    for i in range(1, count):
        point = max(size * i // count, starts[-1] + 1)
        # The next line starts after the first newline at or after byte point - 1.
        fh.seek(point - 1)
        offset = point - 1
        while True:
            block = fh.read(cost._BLOCK_SIZE)
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


def summarize_parallel(
    fh: IO[bytes], path: Path, query: cost.RowFilter
) -> list[cost._Part] | None:
    """The parts of a large log summarised by this process and worker processes, in file
    order; None when the log is small, there is one CPU or no worker process can start.

    A range whose worker fails in any way (it does not start, exits with an error, writes no
    result or takes too long) is read by this process instead.
    """
    info = os.fstat(fh.fileno())
    if info.st_size < parallel_min_bytes():
        return None
    count = min(cpu_count(), _MAX_PROCESSES)
    if count < 2:
        return None
    command = worker_command()
    if command is None:
        return None
    ranges = split_ranges(fh, info.st_size, count)
    if len(ranges) < 2:
        return None
    # Absolute: a worker runs in another directory.
    where = os.path.abspath(path)
    identity = (info.st_dev, info.st_ino)
    workers: list[subprocess.Popen[bytes] | None] = []
    try:
        for start, end in ranges[1:]:
            job = job_line(where, identity, start, end, query)
            workers.append(start_worker(command, job))
        # This process takes the first range while the workers start and read the others.
        began = time.monotonic()
        parts = [cost._summarize_range(fh, ranges[0][0], ranges[0][1], query)]
        # The workers' ranges are as large as this one: one that takes several times as long
        # is stuck, and this process reads its range sooner than it would finish.
        done = time.monotonic()
        deadline = done + max(_WORKER_WAIT_SECONDS, 3 * (done - began))
        for worker, (start, end) in zip(workers, ranges[1:], strict=True):
            part = worker_result(worker, deadline) if worker is not None else None
            parts.append(part or cost._summarize_range(fh, start, end, query))
        return parts
    finally:
        for worker in workers:
            if worker is not None:
                stop_worker(worker)


def worker_command() -> list[str] | None:
    """The command that starts a worker process (``python -m draht_router.cost_workers``
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


def start_worker(command: list[str], job: bytes) -> subprocess.Popen[bytes] | None:
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
        stop_worker(worker)
        return None
    return worker


def worker_result(worker: subprocess.Popen[bytes], deadline: float) -> cost._Part | None:
    """What ``worker`` found, waiting for it until ``deadline`` (time.monotonic()); None when
    it failed, refused its job or did not finish in time."""
    import subprocess

    try:
        out, _err = worker.communicate(timeout=max(deadline - time.monotonic(), 0.05))
    except (subprocess.TimeoutExpired, OSError, ValueError):
        stop_worker(worker)  # now: its CPU is better spent on this process reading its range
        return None
    if worker.returncode != 0:
        return None
    return part_from_output(out)


def stop_worker(worker: subprocess.Popen[bytes]) -> None:
    """End ``worker`` if it still runs, close its pipes and reap it."""
    try:
        if worker.poll() is None:
            worker.kill()
        worker.communicate()
    except Exception:  # noqa: BLE001 - cleanup must not hide the summary or the real error
        pass


def _module_file() -> str:
    """The file of the :mod:`draht_router.cost` this process imported."""
    # That module's file, not this one's: it holds the reading rules a worker applies.
    return os.path.realpath(cost.__file__)


def job_line(
    path: str, identity: tuple[int, int], start: int, end: int | None, query: cost.RowFilter
) -> bytes:
    """A worker's job: what :func:`summarize_range_worker` takes, as one line of JSON."""
    job = {
        "path": path,
        "device": identity[0],
        "inode": identity[1],
        "start": start,
        "end": end,
        "by": cost.SUMMARY_KEYS[query.kind],
        "role": query.role,
        "session": query.session,
        "since": query.low.isoformat() if query.low is not None else None,
        "until": query.high.isoformat() if query.high is not None else None,
        "module": _module_file(),
    }
    return json.dumps(job).encode("ascii") + b"\n"


def part_from_output(out: bytes) -> cost._Part | None:
    """The part in the last line a worker wrote (see :func:`run_job`); None when that line
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


# --------------------------------------------------------------------------- child side


class ReplacedLogError(Exception):
    """The log a worker opened is not the file the caller opened."""


class WorkerMismatchError(Exception):
    """A worker process imported another copy of :mod:`draht_router.cost` than its caller."""


def run_job(line: bytes) -> bytes:
    """In a worker process: the result line of the job ``line`` (see :func:`job_line`).

    Raises ReplacedLogError when the log is not the caller's file any more, and
    WorkerMismatchError when the caller imported another copy of :mod:`draht_router.cost`
    (whose reading rules may differ).
    """
    job = json.loads(line)
    if job["module"] != _module_file():
        raise WorkerMismatchError(job["module"])
    low = datetime.fromisoformat(job["since"]) if job["since"] is not None else None
    high = datetime.fromisoformat(job["until"]) if job["until"] is not None else None
    query = cost.RowFilter(
        cost.SUMMARY_KEYS.index(job["by"]), job["role"], job["session"], low, high
    )
    groups, rows, skipped, skipped_lines, lines = summarize_range_worker(
        job["path"], (job["device"], job["inode"]), job["start"], job["end"], query
    )
    # json writes a float as its repr, which reads back as the very same float.
    result = {"groups": groups, "rows": rows, "skipped": skipped,
              "skipped_lines": skipped_lines, "lines": lines}
    return json.dumps(result, separators=(",", ":")).encode("ascii") + b"\n"


def summarize_range_worker(
    path: str, identity: tuple[int, int], start: int, end: int | None, query: cost.RowFilter
) -> cost._Part:
    """:func:`draht_router.cost._summarize_range` run in a worker process on the log at
    ``path``.

    Raises ReplacedLogError when that file's (device, inode) is not ``identity``.
    """
    with open(path, "rb") as fh:
        info = os.fstat(fh.fileno())
        if (info.st_dev, info.st_ino) != identity:  # rotated or replaced since the caller read it
            raise ReplacedLogError(path)
        return cost._summarize_range(fh, start, end, query)


def main() -> int:
    """Run the job on standard input; the exit status."""
    line = sys.stdin.buffer.readline()
    if not line.strip():
        return 2
    try:
        result = run_job(line)
    except ReplacedLogError:
        return 3
    sys.stdout.buffer.write(result)
    sys.stdout.buffer.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
