"""The batch runner (issue 5): Python API in-process, ``draht-router batch`` as a subprocess,
both against the loopback stub."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from conftest import read_rows, stub_entry

from draht_router.batch import (
    BatchResult,
    BatchRunner,
    InvalidBatchRequest,
    abatch_completion,
    batch_completion,
    parse_request,
    read_results,
)
from draht_router.batch_cli import batch_command
from draht_router.router import ModelRouter
from draht_router.stub import bad_request, ok, rate_limited, unauthorized

PRICES = {"input_cost_per_token": 1e-6, "output_cost_per_token": 2e-6}
BACKUP_PRICES = {"input_cost_per_token": 3e-6, "output_cost_per_token": 4e-6}
# The stub's default answer: 10 prompt tokens, 4 completion tokens ("Hello from the stub.").
PRIMARY_COST = 10 * 1e-6 + 4 * 2e-6
BACKUP_COST = 10 * 3e-6 + 4 * 4e-6


def batch_config(stub) -> dict:
    """quick: 429 primary -> backup; review: 400s; docs: 401s; implement: slow answers."""
    return {
        "roles": {
            "quick": {
                "primary": stub_entry(stub, "batch-primary", **PRICES),
                "fallbacks": [stub_entry(stub, "batch-backup", **BACKUP_PRICES)],
            },
            "review": {"primary": stub_entry(stub, "batch-review", **PRICES)},
            "docs": {"primary": stub_entry(stub, "batch-docs", **PRICES)},
            "implement": {"primary": stub_entry(stub, "batch-slow", **PRICES)},
        },
        # No same-model retries and no circuit breaker: every request walks the chain the same.
        "settings": {"num_retries": 0, "cooldown_failures": 1000},
    }


def script_failures(stub) -> None:
    stub.set_default("batch-primary", rate_limited())
    stub.set_default("batch-review", bad_request("the review request is malformed"))
    stub.set_default("batch-docs", unauthorized())


# =========================================================================== requests


def test_parse_request_forms_and_defaults():
    request = parse_request({"task_type": "question", "prompt": "hi", "max_tokens": 5}, 3)
    assert request.id == "req-3"
    assert request.messages == [{"role": "user", "content": "hi"}]
    assert request.kwargs == {"max_tokens": 5}
    assert parse_request({"id": 7, "model": "openai/x", "messages": "yo"}).id == "7"
    named = parse_request({"role": "quick", "prompt": "x"}, 0, default_id="line-9")
    assert named.id == "line-9" and named.role == "quick"


@pytest.mark.parametrize(
    "data, why",
    [
        ([1, 2], "expected a JSON object"),
        ({"role": "quick"}, "no messages or prompt"),
        ({"prompt": "x"}, "no role, task_type or model"),
        ({"role": "quick", "prompt": "x", "messages": "y"}, "not both"),
        ({"role": "quick", "messages": []}, "non-empty list"),
        ({"role": "quick", "messages": [{"content": "no role"}]}, "messages[0]"),
        ({"role": "quick", "prompt": "x", "stream": True}, "stream"),
        ({"role": "quick", "prompt": "x", "session_id": "s"}, "session_id"),
        ({"id": "", "role": "quick", "prompt": "x"}, "id must be"),
        ({"role": "astrologer", "prompt": "x"}, "unknown role 'astrologer'"),
    ],
)
def test_parse_request_rejects(data, why):
    with pytest.raises(InvalidBatchRequest, match=None) as info:
        parse_request(data, 0, roles={"quick", "review"})
    assert why in str(info.value)


def test_result_dict_access_and_round_trip():
    result = BatchResult(id="a", role="quick", content="hi", cost_usd=0.5)
    assert result["content"] == "hi" and result.get("nope", 1) == 1 and result.ok
    assert BatchResult.from_dict(result.to_dict()) == result
    with pytest.raises(KeyError):
        result["nope"]


def test_read_results_takes_last_line_per_id_and_skips_a_cut_line(tmp_path):
    path = tmp_path / "out.jsonl"
    failed = BatchResult(id="a", error={"type": "X", "message": "m", "status": 500})
    lines = [failed.to_dict(), BatchResult(id="b").to_dict(), BatchResult(id="a").to_dict()]
    path.write_text("".join(json.dumps(d) + "\n" for d in lines) + '{"id": "c", "err')
    results = read_results(path)
    assert set(results) == {"a", "b"}
    assert results["a"]["error"] is None
    assert read_results(tmp_path / "missing.jsonl") == {}


# =========================================================================== Python API


def test_batch_completion_gives_every_id_a_result(stub, cost_log):
    script_failures(stub)
    router = ModelRouter(batch_config(stub), session_id="api-run")
    requests = [
        {"id": "q1", "role": "quick", "prompt": "one"},
        {"id": "q2", "task_type": "question", "prompt": "two"},
        {"id": "r1", "role": "review", "prompt": "three"},
        {"id": "d1", "role": "docs", "messages": [{"role": "user", "content": "four"}]},
        {"role": "quick"},  # invalid: no messages; named by its position
        {"id": "q1", "role": "quick", "prompt": "duplicate"},
        {"model": "openai/plain", "api_base": stub.base_url, "api_key": "sk-test", "prompt": "5"},
    ]
    seen: list[str] = []
    results = list(
        batch_completion(
            requests, concurrency=3, router=router, on_result=lambda r: seen.append(r.id)
        )
    )
    assert sorted(seen) == sorted(r.id for r in results)
    by_id: dict[str, list[BatchResult]] = {}
    for result in results:
        by_id.setdefault(result.id, []).append(result)
    assert sorted(by_id) == ["d1", "q1", "q2", "r1", "req-4", "req-6"]

    q1 = next(r for r in by_id["q1"] if r.ok)
    assert (q1.role, q1.model, q1.fallback_from) == (
        "quick",
        "openai/batch-backup",
        "openai/batch-primary",
    )
    assert q1.content == "Hello from the stub." and q1.attempts == 2
    assert q1.usage == {"prompt_tokens": 10, "completion_tokens": 4, "total_tokens": 14}
    assert q1.cost_usd == pytest.approx(BACKUP_COST)
    assert by_id["q2"][0].role == "quick" and by_id["q2"][0].ok
    dup = next(r for r in by_id["q1"] if not r.ok)
    assert dup.error["type"] == "InvalidBatchRequest" and "duplicate" in dup.error["message"]
    assert by_id["req-4"][0].error["message"] == "no messages or prompt"

    r1, d1 = by_id["r1"][0], by_id["d1"][0]
    assert (r1.error["status"], r1.error["type"]) == (400, "BadRequestError")
    assert "the review request is malformed" in r1.error["message"]
    assert (d1.error["status"], d1.error["type"]) == (401, "AuthenticationError")
    assert r1.model == "openai/batch-review" and r1.cost_usd == 0.0

    direct = by_id["req-6"][0]
    assert direct.ok and direct.role == "direct" and direct.model == "openai/plain"

    rows = [row for row in read_rows(cost_log) if row["sessionId"] == "api-run"]
    assert len(rows) == 3  # q1, q2 and req-6; failures write no row
    assert sum(r.cost_usd for r in results) == pytest.approx(
        sum(row["estimatedCostUsd"] for row in rows)
    )
    assert stub.count("batch-review") == 1 and stub.count("batch-docs") == 1


def test_abatch_completion_yields_results_in_completion_order(stub):
    stub.set_default("batch-slow", ok(delay=1.0))
    router = ModelRouter(batch_config(stub))
    requests = [{"id": f"slow{i}", "role": "implement", "prompt": "x"} for i in range(2)]
    requests += [{"id": f"fast{i}", "role": "quick", "prompt": "x"} for i in range(4)]
    stub.set_default("batch-primary", ok())

    async def run() -> list[str]:
        return [r.id async for r in abatch_completion(requests, concurrency=3, router=router)]

    order = asyncio.run(run())
    assert set(order[-2:]) == {"slow0", "slow1"}, order
    assert stub.count() == 6


def test_concurrency_bounds_requests_in_flight(stub):
    stub.set_default("batch-slow", ok(delay=0.3))
    router = ModelRouter(batch_config(stub))
    requests = [{"role": "implement", "prompt": f"x{i}"} for i in range(6)]
    started = time.monotonic()
    results = list(batch_completion(requests, concurrency=3, router=router))
    elapsed = time.monotonic() - started
    assert len(results) == 6 and all(r.ok for r in results)
    assert elapsed >= 0.58, "six 0.3 s requests, three at a time, take two rounds"
    arrivals = sorted(r.received_at for r in stub.requests_for("batch-slow"))
    assert arrivals[3] - arrivals[0] >= 0.28, "the fourth waited for a free slot"


def test_rpm_spaces_starts_per_role(stub):
    router = ModelRouter(batch_config(stub))
    requests = [{"role": "implement", "prompt": f"x{i}"} for i in range(4)]
    requests += [{"role": "quick", "prompt": f"y{i}"} for i in range(4)]
    started = time.monotonic()
    results = list(batch_completion(requests, concurrency=8, router=router, rpm={"implement": 600}))
    elapsed = time.monotonic() - started
    assert all(r.ok for r in results)
    paced = sorted(r.received_at for r in stub.requests_for("batch-slow"))
    # 600 rpm: one start every 0.1 s (arrivals jitter a little, so allow some slack)
    assert paced[-1] - paced[0] >= 0.25, paced
    assert elapsed >= 0.3
    free = sorted(r.received_at for r in stub.requests_for("batch-primary"))
    assert free[-1] - free[0] < paced[-1] - paced[0], "an unpaced role is not held back"
    assert elapsed < 2.0


def test_stop_cancels_in_flight_requests_without_results_or_rows(stub, cost_log):
    stub.set_default("batch-slow", ok(delay=5.0))
    router = ModelRouter(batch_config(stub), session_id="stopped")
    requests = [{"id": f"s{i}", "role": "implement", "prompt": "x"} for i in range(5)]
    runner = BatchRunner(requests, concurrency=2, router=router, grace=0.2)

    async def run() -> list[BatchResult]:
        async def stop_soon() -> None:
            while stub.count("batch-slow") < 2:
                await asyncio.sleep(0.02)
            runner.stop()

        stopper = asyncio.create_task(stop_soon())
        results = [r async for r in runner.results()]
        await stopper
        return results

    started = time.monotonic()
    results = asyncio.run(run())
    assert results == []
    assert sorted(runner.cancelled) == ["s0", "s1"]
    assert time.monotonic() - started < 3.0
    assert stub.count("batch-slow") == 2, "nothing new is sent after stop()"
    assert read_rows(cost_log) == []


def test_stop_before_or_at_the_start_sends_nothing(stub):
    router = ModelRouter(batch_config(stub))
    requests = [{"role": "quick", "prompt": "x"}] * 3

    async def collect(runner: BatchRunner, stop_after_start: bool) -> list[BatchResult]:
        results = runner.results()
        if stop_after_start:
            asyncio.get_running_loop().call_soon(runner.stop)
        return [r async for r in results]

    early = BatchRunner(requests, router=router)
    early.stop()
    assert asyncio.run(collect(early, False)) == []
    at_start = BatchRunner(requests, router=router, concurrency=1, grace=5)
    assert len(asyncio.run(collect(at_start, True))) <= 1
    assert stub.count() <= 1


def test_a_failing_request_iterator_ends_the_batch(stub):
    router = ModelRouter(batch_config(stub))

    def requests():
        yield {"prompt": "invalid, so nothing is sent"}
        raise OSError("input went away")

    with pytest.raises(OSError, match="input went away"):
        list(batch_completion(requests(), router=router))


def test_leaving_batch_completion_early_cancels_the_rest(stub):
    stub.set_default("batch-slow", ok(delay=3.0))
    router = ModelRouter(batch_config(stub))
    requests = [{"id": "fast", "role": "quick", "prompt": "x"}]
    requests += [{"id": f"slow{i}", "role": "implement", "prompt": "x"} for i in range(3)]
    started = time.monotonic()
    for result in batch_completion(requests, concurrency=4, router=router):
        assert result.id == "fast"
        break
    assert time.monotonic() - started < 2.0


def test_on_result_error_ends_the_batch(stub):
    router = ModelRouter(batch_config(stub))

    def explode(result: BatchResult) -> None:
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        list(batch_completion([{"role": "quick", "prompt": "x"}], router=router, on_result=explode))


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="concurrency"):
        BatchRunner([], concurrency=0)
    with pytest.raises(ValueError, match="rpm"):
        BatchRunner([], rpm=-1)


def test_batch_cli_import_is_light():
    code = (
        "import sys, draht_router.batch_cli\n"
        "heavy = [m for m in sys.modules if m.split('.')[0] in ('litellm', 'rich')"
        " or m in ('draht_router.router', 'draht_router.batch')]\n"
        "assert not heavy, heavy"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=30)


# =========================================================================== CLI


def cli_env(tmp_path: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(HOME=str(tmp_path), DRAHT_COST_LOG=str(tmp_path / "cost.jsonl"))
    env.pop("DRAHT_SESSION_ID", None)
    return env


def write_config(tmp_path: Path, stub) -> None:
    (tmp_path / ".draht").mkdir(exist_ok=True)
    (tmp_path / ".draht" / "router.yaml").write_text(yaml.safe_dump(batch_config(stub)))


def run_cli(tmp_path: Path, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "draht_router", "batch", *args],
        cwd=tmp_path,
        env=cli_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def out_lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def session_of(stdout: str) -> str:
    line = next(line for line in stdout.splitlines() if line.startswith("batch session "))
    return line.split()[2].rstrip(":")


INPUT_LINES = [
    '{"id": "q1", "role": "quick", "prompt": "one"}',
    '{"id": "q2", "task_type": "question", "prompt": "two"}',
    '{"id": "r1", "role": "review", "prompt": "three"}',
    '{"id": "broken", "role": ',
    '{"id": "d1", "role": "docs", "messages": [{"role": "user", "content": "four"}]}',
    "",
    '{"role": "quick", "prompt": "no id", "max_tokens": 20}',
    '{"id": "x", "role": "astrologer", "prompt": "x"}',
    '{"id": "q1", "role": "quick", "prompt": "again"}',
]


def test_cli_fallovers_errors_bad_lines_and_resume(stub, tmp_path):
    write_config(tmp_path, stub)
    script_failures(stub)
    (tmp_path / "in.jsonl").write_text("\n".join(INPUT_LINES) + "\n")
    out, log = tmp_path / "out.jsonl", tmp_path / "cost.jsonl"

    first = run_cli(tmp_path, "in.jsonl", "-o", "out.jsonl", "-j", "4")
    assert first.returncode == 1, first.stderr
    assert "line 4: not valid JSON" in first.stderr
    assert "line 8: unknown role 'astrologer'" in first.stderr
    assert "line 9: duplicate id 'q1' (first on line 1)" in first.stderr
    lines = {line["id"]: line for line in out_lines(out)}
    assert len(out_lines(out)) == 5 and set(lines) == {"q1", "q2", "r1", "d1", "line-7"}
    assert lines["q1"]["model"] == "openai/batch-backup"
    assert lines["q1"]["fallback_from"] == "openai/batch-primary"
    assert lines["q1"]["cost_usd"] == pytest.approx(BACKUP_COST)
    assert lines["r1"]["error"]["status"] == 400 and lines["d1"]["error"]["status"] == 401
    assert lines["line-7"]["error"] is None
    session = session_of(first.stdout)
    assert session.startswith("batch-")
    rows = read_rows(log)
    assert len(rows) == 3 and {row["sessionId"] for row in rows} == {session}
    # The summary agrees with the session's rows in the cost log.
    assert f"3 row(s), ${sum(r['estimatedCostUsd'] for r in rows):.6f}" in first.stdout
    total = next(line for line in first.stdout.splitlines() if line.startswith("total"))
    assert total.split()[1:3] == ["3", "2"]  # calls, failed
    assert "to retry them run: draht-router batch in.jsonl -o out.jsonl -j 4" in first.stderr
    counts = {m: stub.count(m) for m in ("batch-primary", "batch-backup", "batch-review")}

    # Second run: answered ids are not sent again; the two failures are retried.
    stub.set_default("batch-review", ok())
    stub.set_default("batch-docs", ok())
    second = run_cli(tmp_path, "in.jsonl", "-o", "out.jsonl", "-q", "--session", "resume-1")
    assert second.returncode == 1  # the invalid lines are still there
    assert {m: stub.count(m) for m in counts} == {**counts, "batch-review": 2}
    assert stub.count("batch-docs") == 2
    rows = read_rows(log)
    assert len(rows) == 5 and sum(r["sessionId"] == "resume-1" for r in rows) == 2
    latest = read_results(out)
    assert len(out_lines(out)) == 7
    assert all(latest[i]["error"] is None for i in ("q1", "q2", "r1", "d1", "line-7"))

    # Third run: everything answered, so nothing is sent and no row is written.
    before = stub.count()
    third = run_cli(tmp_path, "in.jsonl", "-o", "out.jsonl", "-q")
    assert third.returncode == 1
    assert "5 already answered before" in third.stdout
    assert stub.count() == before and len(read_rows(log)) == 5 and len(out_lines(out)) == 7


def test_cli_sigterm_then_resume_answers_each_id_once(stub, tmp_path):
    write_config(tmp_path, stub)
    stub.set_default("batch-slow", ok(delay=0.2))
    count = 24
    requests = [{"id": f"s{i}", "role": "implement", "prompt": f"n{i}"} for i in range(count)]
    (tmp_path / "in.jsonl").write_text("".join(json.dumps(r) + "\n" for r in requests))
    out, log = tmp_path / "out.jsonl", tmp_path / "cost.jsonl"

    process = subprocess.Popen(
        [sys.executable, "-m", "draht_router", "batch", "in.jsonl", "-o", "out.jsonl", "-j", "2"],
        cwd=tmp_path,
        env=cli_env(tmp_path),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 40
    while time.monotonic() < deadline and (not out.exists() or len(out_lines_lenient(out)) < 4):
        time.sleep(0.05)
    process.send_signal(signal.SIGTERM)
    stdout, stderr = process.communicate(timeout=30)
    assert process.returncode == 143, stderr
    assert "resume with: draht-router batch in.jsonl -o out.jsonl -j 2" in stderr
    done = out_lines(out)
    assert 4 <= len(done) < count
    assert len(read_rows(log)) == len(done), "one row per finished request, none for others"
    assert stub.count("batch-slow") == len(done), "in-flight requests finished in the grace"

    with out.open("a") as fh:  # as if a run had been killed in the middle of a line
        fh.write('{"id": "s0", "role": "implement", "mod')
    resumed = run_cli(tmp_path, "in.jsonl", "-o", "out.jsonl", "-j", "8", "-q")
    assert resumed.returncode == 0, resumed.stderr
    answered = [line["id"] for line in out_lines_lenient(out) if line["error"] is None]
    assert sorted(answered) == sorted(r["id"] for r in requests)
    assert len(read_rows(log)) == count
    assert stub.count("batch-slow") == count


def out_lines_lenient(path: Path) -> list[dict]:
    lines = []
    for text in path.read_text().splitlines():
        try:
            lines.append(json.loads(text))
        except ValueError:
            continue
    return lines


# ----- in-process CLI checks that send nothing


@pytest.fixture
def cli_home(stub, tmp_path, monkeypatch):
    write_config(tmp_path, stub)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_cli_dry_run_sends_nothing_and_prices_with_the_primary(stub, cli_home):
    (cli_home / "in.jsonl").write_text(
        '{"role": "quick", "prompt": "hello there", "max_tokens": 100}\n'
        '{"role": "review", "prompt": "hello there"}\n'
    )
    result = CliRunner().invoke(batch_command, ["in.jsonl", "--dry-run", "--json"])
    assert result.exit_code == 0, result.output
    estimate = json.loads(result.stdout)
    quick, review = estimate["roles"]["quick"], estimate["roles"]["review"]
    assert quick["model"] == "openai/batch-primary" and quick["output_tokens"] == 100
    assert review["output_tokens"] == 256  # settings.batch_output_tokens
    tokens = quick["input_tokens"]
    assert tokens > 0
    assert quick["cost_usd"] == pytest.approx(tokens * 1e-6 + 100 * 2e-6)
    assert estimate["total"]["requests"] == 2
    assert stub.count() == 0

    plain = CliRunner().invoke(batch_command, ["in.jsonl", "--dry-run"])
    assert "expected total: $" in plain.stdout and stub.count() == 0


def test_cli_strict_stops_before_sending(stub, cli_home):
    (cli_home / "in.jsonl").write_text('{"role": "quick", "prompt": "x"}\n[1]\n')
    result = CliRunner().invoke(batch_command, ["in.jsonl", "-o", "out.jsonl", "--strict"])
    assert result.exit_code == 2
    assert "line 2: expected a JSON object, got array" in result.stderr
    assert stub.count() == 0 and not (cli_home / "out.jsonl").exists()


def test_cli_input_errors_exit_2(cli_home):
    runner = CliRunner()
    missing = runner.invoke(batch_command, ["nope.jsonl", "-o", "out.jsonl"])
    assert missing.exit_code == 2 and "cannot read nope.jsonl" in missing.stderr
    (cli_home / "in.jsonl").write_text('{"role": "quick", "prompt": "x"}\n')
    no_output = runner.invoke(batch_command, ["in.jsonl"])
    assert no_output.exit_code == 2 and "--output" in no_output.stderr
    same = runner.invoke(batch_command, ["in.jsonl", "-o", "in.jsonl"])
    assert same.exit_code == 2
