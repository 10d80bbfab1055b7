"""``draht-router batch``: run a JSONL file of requests through the router, resumably.

Only click and the standard library are imported with this module; the router (and LiteLLM)
are imported when the command runs, so other commands of the CLI stay quick.
"""

from __future__ import annotations

import asyncio
import json
import os
import shlex
import signal
import sys
import time
import uuid
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from .batch import BatchRequest, BatchResult, BatchRunner

EXIT_OK = 0
EXIT_FAILED = 1  # some requests failed, or some input lines were skipped
EXIT_INPUT = 2  # unreadable input or config, bad options, invalid lines with --strict
EXIT_SIGINT = 128 + signal.SIGINT  # 130, the shell's convention for a run ended by a signal
EXIT_SIGTERM = 128 + signal.SIGTERM  # 143

DEFAULT_CONCURRENCY = 8  # same as draht_router.batch.DEFAULT_CONCURRENCY, without importing it
PLAIN_PROGRESS_SECONDS = 5.0  # a progress line at least this often when stderr is not a tty


def _err(message: str) -> None:
    click.echo(message, err=True)


# --------------------------------------------------------------------------- input


@dataclass
class _Input:
    requests: list[BatchRequest]
    problems: list[tuple[int, str]]


def _parse_input(raw: bytes, roles: Collection[str]) -> _Input:
    """Every valid request of a JSONL file, and ``(line number, why)`` for every invalid line."""
    from .batch import InvalidBatchRequest, parse_request

    requests: list[BatchRequest] = []
    problems: list[tuple[int, str]] = []
    first_line: dict[str, int] = {}
    for lineno, line_bytes in enumerate(raw.split(b"\n"), 1):
        try:
            line = line_bytes.decode("utf-8").strip()
        except UnicodeDecodeError:
            problems.append((lineno, "not UTF-8 text"))
            continue
        if not line:
            continue
        try:
            data = json.loads(line)
        except json.JSONDecodeError as exc:
            problems.append((lineno, f"not valid JSON: {exc.msg} (column {exc.colno})"))
            continue
        try:
            request = parse_request(data, lineno - 1, default_id=f"line-{lineno}", roles=roles)
        except InvalidBatchRequest as exc:
            problems.append((lineno, str(exc)))
            continue
        if request.id in first_line:
            problems.append(
                (lineno, f"duplicate id '{request.id}' (first on line {first_line[request.id]})")
            )
            continue
        first_line[request.id] = lineno
        requests.append(request)
    return _Input(requests, problems)


def _answered_ids(output: Path) -> tuple[set[str], set[str]]:
    """Ids whose last line in ``output`` is a success, and ids whose last line is a failure."""
    from .batch import read_results

    answered, failed = set(), set()
    for request_id, data in read_results(output).items():
        if "error" in data and data["error"] is None:
            answered.add(request_id)
        else:
            failed.add(request_id)
    return answered, failed


# --------------------------------------------------------------------------- tallies


@dataclass
class _Tally:
    """Results of this run, overall and per (role, model)."""

    total: int
    started: float = field(default_factory=time.monotonic)
    done: int = 0
    failed: int = 0
    cost: float = 0.0
    groups: dict[tuple[str, str], list[float]] = field(default_factory=dict)

    def add(self, result: BatchResult) -> None:
        self.done += 1
        key = (result.role or "-", result.model or "-")
        group = self.groups.setdefault(key, [0, 0, 0, 0, 0.0])
        if result.error is not None:
            self.failed += 1
            group[1] += 1
            return
        usage = result.usage or {}
        group[0] += 1
        group[2] += usage.get("prompt_tokens", 0)
        group[3] += usage.get("completion_tokens", 0)
        group[4] += result.cost_usd
        self.cost += result.cost_usd

    @property
    def rate(self) -> float:
        elapsed = time.monotonic() - self.started
        return self.done / elapsed if elapsed > 0 else 0.0

    def line(self) -> str:
        return (
            f"batch: {self.done}/{self.total} done, {self.failed} failed, "
            f"${self.cost:.6f}, {self.rate:.1f} req/s"
        )


class _Progress:
    """Progress on stderr: a rich bar on a terminal, a plain line every few seconds or 10%."""

    def __init__(self, tally: _Tally, *, quiet: bool):
        self.tally = tally
        self.enabled = not quiet
        self.live = self.enabled and sys.stderr.isatty()
        self._bar: Any = None
        self._task: Any = None
        self._last_line = time.monotonic()
        self._last_tenth = 0

    def start(self) -> None:
        if not self.live:
            return
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
        )

        self._bar = Progress(
            TextColumn("batch"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("failed {task.fields[failed]}"),
            TextColumn("${task.fields[cost]:.6f}"),
            TextColumn("{task.fields[rate]:.1f} req/s"),
            TimeElapsedColumn(),
            console=Console(stderr=True),
        )
        self._task = self._bar.add_task(
            "batch", total=self.tally.total, failed=0, cost=0.0, rate=0.0
        )
        self._bar.start()

    def update(self) -> None:
        tally = self.tally
        if self._bar is not None:
            self._bar.update(
                self._task,
                completed=tally.done,
                failed=tally.failed,
                cost=tally.cost,
                rate=tally.rate,
            )
            return
        if not self.enabled:
            return
        tenth = tally.done * 10 // max(tally.total, 1)
        now = time.monotonic()
        if tenth > self._last_tenth or now - self._last_line >= PLAIN_PROGRESS_SECONDS:
            self._last_tenth, self._last_line = tenth, now
            _err(tally.line())

    def tick(self) -> None:
        """Called every few seconds, so a slow batch still reports."""
        if self._bar is None and self.enabled:
            if time.monotonic() - self._last_line >= PLAIN_PROGRESS_SECONDS:
                self._last_line = time.monotonic()
                _err(self.tally.line())

    def stop(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None


# --------------------------------------------------------------------------- running


async def _drive(
    runner: BatchRunner,
    write: Callable[[BatchResult], None],
    tally: _Tally,
    progress: _Progress,
) -> int | None:
    """Run the batch, writing each result; returns the signal that stopped it, if any."""
    loop = asyncio.get_running_loop()
    received: list[int] = []

    def on_signal(signum: int) -> None:
        received.append(signum)
        name = signal.Signals(signum).name
        if len(received) == 1:
            progress.stop()
            _err(
                f"\n{name}: sending nothing more; waiting up to {runner.grace:g} s for "
                f"{runner.in_flight} request(s) in flight ({name} again cancels them now)"
            )
            runner.stop()
        else:
            _err(f"{name}: cancelling the requests in flight")
            runner.stop(0.0)

    handled = []
    for signum in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(signum, on_signal, signum)
            handled.append(signum)
        except (NotImplementedError, RuntimeError, ValueError):
            pass  # not the main thread, or no signal support on this platform

    async def ticker() -> None:
        while True:
            await asyncio.sleep(1.0)
            progress.tick()

    ticking = asyncio.create_task(ticker())
    progress.start()
    try:
        async for result in runner.results():
            write(result)
            tally.add(result)
            progress.update()
    finally:
        ticking.cancel()
        progress.stop()
        for signum in handled:
            loop.remove_signal_handler(signum)
    return received[0] if received else None


def _new_session_id() -> str:
    return f"batch-{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:4]}"


def _resume_command(input_path: Path, output: Path, concurrency: int, rpm: float | None) -> str:
    words = ["draht-router", "batch", str(input_path), "-o", str(output)]
    if concurrency != DEFAULT_CONCURRENCY:
        words += ["-j", str(concurrency)]
    if rpm is not None:
        words += ["--rpm", f"{rpm:g}"]
    return shlex.join(words)


# --------------------------------------------------------------------------- reports


def _print_table(headers: list[str], rows: list[list[str]], *, numeric_from: int) -> None:
    """A table on stdout: rich on a terminal, plain aligned text when piped."""
    if sys.stdout.isatty():
        from rich.console import Console
        from rich.table import Table

        table = Table(show_edge=False)
        for index, header in enumerate(headers):
            numeric = index >= numeric_from
            table.add_column(header, justify="right" if numeric else "left", no_wrap=not numeric)
        for row in rows:
            table.add_row(*row)
        Console().print(table)
        return
    widths = [max(len(str(cell)) for cell in column) for column in zip(headers, *rows, strict=True)]

    def fmt(cells: list[str]) -> str:
        return "  ".join(
            cell.rjust(width) if index >= numeric_from else cell.ljust(width)
            for index, (cell, width) in enumerate(zip(cells, widths, strict=True))
        ).rstrip()

    click.echo(fmt(headers))
    for row in rows:
        click.echo(fmt(row))


def _summary_rows(tally: _Tally) -> list[list[str]]:
    rows = []
    ordered = sorted(tally.groups.items(), key=lambda item: (-item[1][4], item[0]))
    for (role, model), (calls, failed, inp, out, usd) in ordered:
        rows.append(
            [
                role,
                model,
                str(int(calls)),
                str(int(failed)),
                str(int(inp)),
                str(int(out)),
                f"{usd:.6f}",
            ]
        )
    sums = [sum(group[i] for group in tally.groups.values()) for i in range(5)]
    rows.append(
        [
            "total",
            "",
            str(int(sums[0])),
            str(int(sums[1])),
            str(int(sums[2])),
            str(int(sums[3])),
            f"{sums[4]:.6f}",
        ]
    )
    return rows


def _session_rows(session_id: str, log_path: Path) -> dict[str, Any]:
    from .cost import summarize

    totals = summarize("session", log_path=log_path).get(session_id)
    return {
        "rows": totals["calls"] if totals else 0,
        "cost_usd": totals["total_cost"] if totals else 0.0,
        "path": str(log_path),
    }


def _report_summary(
    tally: _Tally, session_id: str, log_path: Path, *, skipped: int, as_json: bool
) -> None:
    logged = _session_rows(session_id, log_path)
    if as_json:
        groups = [
            {
                "role": role,
                "model": model,
                "calls": int(calls),
                "failed": int(failed),
                "input_tokens": int(inp),
                "output_tokens": int(out),
                "cost_usd": usd,
            }
            for (role, model), (calls, failed, inp, out, usd) in tally.groups.items()
        ]
        click.echo(
            json.dumps(
                {
                    "session_id": session_id,
                    "requests": tally.done,
                    "answered": tally.done - tally.failed,
                    "failed": tally.failed,
                    "already_answered": skipped,
                    "cost_usd": tally.cost,
                    "by_role_model": groups,
                    "cost_log": logged,
                },
                indent=2,
            )
        )
        return
    click.echo(
        f"batch session {session_id}: {tally.done} request(s), "
        f"{tally.done - tally.failed} answered, {tally.failed} failed"
        + (f", {skipped} already answered before" if skipped else "")
    )
    if tally.groups:
        headers = ["role", "model", "calls", "failed", "in tokens", "out tokens", "USD"]
        _print_table(headers, _summary_rows(tally), numeric_from=2)
    click.echo(
        f"cost log {logged['path']}: {logged['rows']} row(s), ${logged['cost_usd']:.6f} "
        f"for session {session_id}"
    )


def _report_estimate(estimate: dict[str, Any], *, skipped: int, as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps({**estimate, "already_answered": skipped}, indent=2))
        return
    rows = [
        [
            role,
            row["model"],
            str(row["requests"]),
            str(row["input_tokens"]),
            str(row["output_tokens"]),
            f"{row['cost_usd']:.6f}",
        ]
        for role, row in sorted(estimate["roles"].items(), key=lambda i: -i[1]["cost_usd"])
    ]
    total = estimate["total"]
    rows.append(
        [
            "total",
            "",
            str(total["requests"]),
            str(total["input_tokens"]),
            str(total["output_tokens"]),
            f"{total['cost_usd']:.6f}",
        ]
    )
    click.echo("dry run: nothing sent; cost if each request is answered by its primary model")
    if skipped:
        click.echo(f"({skipped} request(s) already answered in the output are left out)")
    headers = ["role", "model", "requests", "in tokens", "out tokens (max)", "USD"]
    _print_table(headers, rows, numeric_from=2)
    click.echo(f"expected total: ${total['cost_usd']:.6f} for {total['requests']} request(s)")


# --------------------------------------------------------------------------- command


@click.command(
    "batch",
    context_settings={"help_option_names": ["-h", "--help"]},
    epilog=(
        "Exit status: 0 every request answered; 1 some failed or input lines were skipped; "
        "2 unreadable input or config, or invalid lines with --strict; 130/143 stopped by "
        "SIGINT/SIGTERM (run the same command again to resume)."
    ),
)
@click.argument("input_path", metavar="IN.jsonl", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "-o",
    "--output",
    "output",
    type=click.Path(dir_okay=False, path_type=Path),
    metavar="OUT.jsonl",
    help="Results, one JSON line per request (appended).",
)
@click.option(
    "-j",
    "--concurrency",
    type=click.IntRange(min=1),
    default=DEFAULT_CONCURRENCY,
    show_default=True,
    help="Requests in flight at once.",
)
@click.option(
    "--rpm",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    help="Most requests started per minute, per role.",
)
@click.option("--dry-run", is_flag=True, help="Send nothing; print the expected cost.")
@click.option(
    "--strict",
    is_flag=True,
    help="Stop before sending anything if any input line is invalid (exit 2).",
)
@click.option("-q", "--quiet", is_flag=True, help="No progress output.")
@click.option(
    "--session",
    "session_id",
    metavar="ID",
    help="Session id for the cost log (default: $DRAHT_SESSION_ID or batch-<time>).",
)
@click.option(
    "--json", "as_json", is_flag=True, help="Print the summary (or the --dry-run estimate) as JSON."
)
@click.option(
    "--grace",
    type=click.FloatRange(min=0),
    default=10.0,
    show_default=True,
    help="Seconds in-flight requests may finish after Ctrl-C or SIGTERM.",
)
@click.pass_context
def batch_command(
    ctx: click.Context,
    input_path: Path,
    output: Path | None,
    concurrency: int,
    rpm: float | None,
    dry_run: bool,
    strict: bool,
    quiet: bool,
    session_id: str | None,
    as_json: bool,
    grace: float,
) -> None:
    """Send every request in IN.jsonl through the router and append each result to OUT.jsonl.

    One request per line: {"id": ..., "role"|"task_type"|"model": ..., "messages"|"prompt":
    ..., plus any LiteLLM argument}. A line without an id is called line-<N>. Invalid lines
    are reported as "line N: why" and skipped.

    Resumable: run the same command again and every id already answered in OUT is skipped;
    failed ones are sent again (readers take the last line per id).
    """
    code = _run(
        input_path, output, concurrency, rpm, dry_run, strict, quiet, session_id, as_json, grace
    )
    ctx.exit(code)


def _run(
    input_path: Path,
    output: Path | None,
    concurrency: int,
    rpm: float | None,
    dry_run: bool,
    strict: bool,
    quiet: bool,
    session_id: str | None,
    as_json: bool,
    grace: float,
) -> int:
    if output is None and not dry_run:
        _err("error: -o/--output OUT.jsonl is required (except with --dry-run)")
        return EXIT_INPUT
    if output is not None and output.resolve() == input_path.resolve():
        _err("error: the output file must not be the input file")
        return EXIT_INPUT
    try:
        raw = input_path.read_bytes()
    except OSError as exc:
        _err(f"error: cannot read {input_path}: {exc.strerror or exc}")
        return EXIT_INPUT

    from .config import load_config
    from .cost import default_log_path
    from .errors import DrahtRouterError

    try:
        config = load_config()
    except DrahtRouterError as exc:
        _err(f"error: {exc}")
        return EXIT_INPUT

    parsed = _parse_input(raw, config.roles)
    for lineno, why in parsed.problems:
        _err(f"line {lineno}: {why}")
    if parsed.problems and strict:
        _err(f"{len(parsed.problems)} invalid line(s) in {input_path}; nothing sent (--strict)")
        return EXIT_INPUT

    answered: set[str] = set()
    failed_before: set[str] = set()
    if output is not None:
        try:
            answered, failed_before = _answered_ids(output)
        except OSError as exc:
            _err(f"error: cannot read {output}: {exc.strerror or exc}")
            return EXIT_INPUT
    todo = [request for request in parsed.requests if request.id not in answered]
    skipped = len(parsed.requests) - len(todo)
    input_code = EXIT_FAILED if parsed.problems else EXIT_OK

    if dry_run:
        from .batch import estimate_batch_cost

        _report_estimate(estimate_batch_cost(todo, config), skipped=skipped, as_json=as_json)
        return EXIT_OK
    assert output is not None

    session = session_id or os.environ.get("DRAHT_SESSION_ID") or _new_session_id()
    log_path = default_log_path(config.settings.cost_log)
    if not todo:
        _report_summary(_Tally(total=0), session, log_path, skipped=skipped, as_json=as_json)
        return input_code
    if not quiet:
        retrying = sum(1 for request in todo if request.id in failed_before)
        note = f" ({skipped} already answered in {output}" if skipped else ""
        if note and retrying:
            note += f", retrying {retrying} that failed"
        note += ")" if note else ""
        _err(f"batch: sending {len(todo)} request(s){note} as session {session}")

    from .log import configure_logging

    if not os.environ.get("DRAHT_LOG_LEVEL"):
        configure_logging(level="error")  # each failure is in OUT; warnings would flood stderr
    from .batch import BatchRunner, append_result, open_output
    from .router import ModelRouter

    router = ModelRouter(config, session_id=session)
    try:
        fd = open_output(output)
    except OSError as exc:
        _err(f"error: cannot write {output}: {exc.strerror or exc}")
        return EXIT_INPUT
    tally = _Tally(total=len(todo))
    progress = _Progress(tally, quiet=quiet)
    runner = BatchRunner(
        todo, concurrency=concurrency, router=router, rpm=rpm, session_id=session, grace=grace
    )
    try:
        stopped_by = asyncio.run(_drive(runner, lambda r: append_result(fd, r), tally, progress))
    finally:
        os.close(fd)

    _report_summary(tally, session, log_path, skipped=skipped, as_json=as_json)
    resume = _resume_command(input_path, output, concurrency, rpm)
    if stopped_by is not None:
        unsent = len(todo) - tally.done - len(runner.cancelled)
        _err(
            f"stopped by {signal.Signals(stopped_by).name}: {tally.done} finished, "
            f"{len(runner.cancelled)} cancelled in flight, {unsent} not sent"
        )
        _err(f"resume with: {resume}")
        return EXIT_SIGINT if stopped_by == signal.SIGINT else EXIT_SIGTERM
    if tally.failed:
        _err(f"{tally.failed} request(s) failed; to retry them run: {resume}")
        return EXIT_FAILED
    return input_code


def main() -> None:
    """Run the command on its own (``python -m draht_router.batch_cli``)."""
    batch_command(prog_name="draht-router batch")


if __name__ == "__main__":
    main()
