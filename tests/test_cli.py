"""The ``draht-router`` command line, run as a real subprocess of the installed script."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from draht_router.cli import cli
from draht_router.stub import StubProvider, ok, rate_limited, unauthorized

_SCRIPT = shutil.which("draht-router", path=os.path.dirname(sys.executable)) or shutil.which(
    "draht-router"
)
CLI = [_SCRIPT] if _SCRIPT else [sys.executable, "-m", "draht_router"]

COMMANDS = ["show", "set", "test", "validate", "cost", "run", "demo", "export",
            "export litellm-proxy"]


def clean_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """The environment a first-time user has: own HOME, no API keys, no draht settings."""
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.endswith("_API_KEY") and not name.startswith("DRAHT_")
    }
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    env["HOME"] = str(home)
    env["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"
    env.update(extra)
    return env


def draht(
    tmp_path: Path, *args: str, env: dict[str, str] | None = None, input: str | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLI, *args],
        cwd=tmp_path,
        env=env if env is not None else clean_env(tmp_path),
        input=input,
        capture_output=True,
        text=True,
        timeout=60,
    )


def write_project(tmp_path: Path, data: dict[str, Any]) -> Path:
    path = tmp_path / ".draht" / "router.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def row(role: str, model: str, cost: float, session: str = "s1", *, day: str = "2026-11-02",
        inp: int = 100, out: int = 10, provider: str = "openai") -> str:
    return json.dumps(
        {"timestamp": f"{day}T10:00:00.000Z", "role": role, "provider": provider,
         "model": model, "inputTokens": inp, "outputTokens": out, "estimatedCostUsd": cost,
         "sessionId": session},
        separators=(",", ":"),
    )


# --------------------------------------------------------------------------- help, speed


def test_help_for_every_command() -> None:
    runner = CliRunner()
    for command in COMMANDS:
        result = runner.invoke(cli, [*command.split(), "--help"])
        assert result.exit_code == 0, (command, result.output)
        assert "Usage:" in result.output


def test_top_level_help_and_module_entry(tmp_path: Path) -> None:
    result = draht(tmp_path, "--help")
    assert result.returncode == 0
    for command in ("show", "set", "test", "validate", "cost", "run", "demo", "export"):
        assert command in result.stdout
    module = subprocess.run(
        [sys.executable, "-m", "draht_router", "show", "--json"],
        cwd=tmp_path, env=clean_env(tmp_path), capture_output=True, text=True, timeout=60,
    )
    assert module.returncode == 0
    assert set(json.loads(module.stdout)["roles"]) >= {"architect", "implement", "review"}


def test_commands_without_a_call_never_import_litellm_or_rich(tmp_path: Path) -> None:
    (tmp_path / "log.jsonl").write_text(row("implement", "gpt-5.2", 0.5) + "\n")
    script = """
import sys
from draht_router.cli import main
for args in (["--help"], ["show"], ["show", "--json"], ["validate"], ["test"],
             ["cost", "--log", "log.jsonl"], ["cost", "--json", "--log", "log.jsonl"],
             ["export", "litellm-proxy"], ["set", "quick", "gemini/gemini-2.5-flash"]):
    code = main(args)
    assert code == 0, (args, code)
    for heavy in ("litellm", "rich"):
        assert heavy not in sys.modules, (args, heavy)
print("clean")
"""
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=tmp_path, env=clean_env(tmp_path),
        capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().endswith("clean")


def test_show_is_fast(tmp_path: Path) -> None:
    draht(tmp_path, "show")  # warm the file cache
    started = time.perf_counter()
    result = draht(tmp_path, "show")
    elapsed = time.perf_counter() - started
    assert result.returncode == 0
    # The goal is 0.5 s (see benchmarks/bench_cli.py); the margin absorbs a busy CI machine.
    assert elapsed < 1.5, elapsed


# --------------------------------------------------------------------------- show / set


def test_show_json_shape(tmp_path: Path) -> None:
    result = draht(tmp_path, "show", "--json")
    assert result.returncode == 0
    data = json.loads(result.stdout)
    assert set(data) == {"roles", "task_types", "sources"}
    implement = data["roles"]["implement"]
    assert set(implement) == {"primary", "fallbacks", "source"}
    assert implement["source"] == "default"
    assert "/" in implement["primary"]
    assert data["sources"] == []


def test_show_plain_text_when_piped(tmp_path: Path) -> None:
    result = draht(tmp_path, "show")
    assert result.returncode == 0
    first = result.stdout.splitlines()[0].split()
    assert first == ["ROLE", "PRIMARY", "FALLBACKS", "SOURCE"]
    assert "\x1b[" not in result.stdout  # no terminal styling in a pipe


def test_set_round_trip_keeps_the_rest_of_the_file(tmp_path: Path) -> None:
    path = write_project(tmp_path, {
        "roles": {
            "docs": {"primary": {"model": "openai/gpt-5.2", "api_key": "os.environ/MY_KEY"},
                     "fallbacks": []},
            "implement": {"primary": "anthropic/claude-sonnet-4-6",
                          "fallbacks": ["openai/gpt-5.2"]},
        },
        "task_types": {"design-doc": "architect"},
        "settings": {"num_retries": 2},
    })
    result = draht(tmp_path, "set", "implement", "openai/gpt-5.2",
                   "--fallback", "deepseek/deepseek-v3.2,gemini/gemini-2.5-flash")
    assert result.returncode == 0, result.stderr

    shown = json.loads(draht(tmp_path, "show", "--json").stdout)
    assert shown["roles"]["implement"] == {
        "primary": "openai/gpt-5.2",
        "fallbacks": ["deepseek/deepseek-v3.2", "gemini/gemini-2.5-flash"],
        "source": "project",
    }
    assert shown["roles"]["docs"]["source"] == "project"
    assert shown["roles"]["architect"]["source"] == "default"
    assert shown["task_types"] == {"design-doc": "architect"}
    saved = yaml.safe_load(path.read_text())
    assert saved["roles"]["docs"]["primary"]["api_key"] == "os.environ/MY_KEY"
    assert saved["settings"] == {"num_retries": 2}

    # Without --fallback the role keeps the fallbacks the file had (minus the new primary).
    result = draht(tmp_path, "set", "implement", "deepseek/deepseek-v3.2")
    assert result.returncode == 0, result.stderr
    saved = yaml.safe_load(path.read_text())
    assert saved["roles"]["implement"] == {
        "primary": "deepseek/deepseek-v3.2", "fallbacks": ["gemini/gemini-2.5-flash"],
    }
    # --fallback '' clears them.
    assert draht(tmp_path, "set", "implement", "deepseek/deepseek-v3.2", "--fallback", "")\
        .returncode == 0
    assert yaml.safe_load(path.read_text())["roles"]["implement"]["fallbacks"] == []


def test_set_global_writes_the_home_file(tmp_path: Path) -> None:
    result = draht(tmp_path, "set", "quick", "deepseek/deepseek-v3.2", "--global")
    assert result.returncode == 0, result.stderr
    home_file = tmp_path / "home" / ".draht" / "router.yaml"
    assert yaml.safe_load(home_file.read_text())["roles"]["quick"]["primary"] == (
        "deepseek/deepseek-v3.2"
    )
    assert not (tmp_path / ".draht").exists()
    shown = json.loads(draht(tmp_path, "show", "--json").stdout)
    assert shown["roles"]["quick"]["source"] == "global"


def test_set_rejects_an_invalid_model_and_leaves_the_file(tmp_path: Path) -> None:
    path = write_project(tmp_path, {"roles": {"quick": "gemini/gemini-2.5-flash"}})
    before = path.read_text()
    result = draht(tmp_path, "set", "quick", "nosuchprovider/model-x")
    assert result.returncode == 2
    assert result.stderr.startswith("error: ")
    assert "nosuchprovider" in result.stderr
    assert "Traceback" not in result.stderr
    assert path.read_text() == before


# --------------------------------------------------------------------------- validate


def test_validate_valid_file_and_merged_config(tmp_path: Path) -> None:
    good = tmp_path / "good.yaml"
    good.write_text("roles:\n  quick: gemini/gemini-2.5-flash\n")
    result = draht(tmp_path, "validate", str(good))
    assert result.returncode == 0
    assert result.stdout.strip() == f"valid: {good}"
    result = draht(tmp_path, "validate")
    assert result.returncode == 0
    assert result.stdout.startswith("valid: ")


def test_validate_lists_every_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "roles:\n"
        "  implement:\n"
        "    primary: nosuchprovider/foo\n"
        "  review:\n"
        "    primary: openai/gpt-5.2\n"
        "    fallbacks: [openai/gpt-5.2]\n"
        "settings:\n"
        "  timeout: -1\n"
    )
    result = draht(tmp_path, "validate", str(bad))
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 3, lines
    assert any("unknown provider 'nosuchprovider'" in line for line in lines)
    assert any("duplicate model" in line for line in lines)
    assert any("settings.timeout" in line for line in lines)
    assert result.stdout == ""

    # The merged config from the usual sources reports the same problems.
    merged = draht(tmp_path, "validate", env=clean_env(tmp_path, DRAHT_ROUTER_CONFIG=str(bad)))
    assert merged.returncode == 2
    assert len(merged.stderr.strip().splitlines()) == 3


def test_yaml_syntax_error_is_one_line_with_file_and_line(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text("roles:\n  implement: [a\n  b: c\n")
    result = draht(tmp_path, "validate", str(broken))
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert f"{broken}:3" in lines[0]
    # Any command reading that config fails the same way, without a traceback...
    env = clean_env(tmp_path, DRAHT_ROUTER_CONFIG=str(broken))
    result = draht(tmp_path, "show", env=env)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [f"error: {lines[0]}"]
    # ...unless --debug asks for one.
    result = draht(tmp_path, "--debug", "show", env=env)
    assert result.returncode == 2
    assert "Traceback" in result.stderr


# --------------------------------------------------------------------------- test


def test_test_reports_missing_keys_as_warnings(tmp_path: Path) -> None:
    write_project(tmp_path, {"roles": {
        "docs": {"primary": {"model": "openai/gpt-5.2", "api_key": "os.environ/MY_DOCS_KEY"},
                 "fallbacks": [{"model": "openai/local-llama", "api_base": "http://127.0.0.1:9/v1"}]},
    }})
    result = draht(tmp_path, "test")
    assert result.returncode == 0
    assert "ANTHROPIC_API_KEY is not set" in result.stdout
    assert "warning:" in result.stdout
    assert "MY_DOCS_KEY is not set" in result.stdout
    assert "local endpoint http://127.0.0.1:9/v1" in result.stdout

    env = clean_env(tmp_path, ANTHROPIC_API_KEY="sk-ant-secret-value", MY_DOCS_KEY="x")
    result = draht(tmp_path, "test", "docs", env=env)
    assert result.returncode == 0
    assert "MY_DOCS_KEY is set" in result.stdout
    assert "architect" not in result.stdout
    assert "sk-ant-secret-value" not in result.stdout


def test_test_task_explains_the_role(tmp_path: Path) -> None:
    result = draht(tmp_path, "test", "--task", "pr-review")
    assert result.returncode == 0
    assert "role review" in result.stdout
    result = draht(tmp_path, "test", "--task", "please explain this stack trace")
    assert "role quick" in result.stdout and "keyword 'explain'" in result.stdout
    assert draht(tmp_path, "test", "nosuchrole").returncode == 2


# --------------------------------------------------------------------------- cost


@pytest.fixture
def prepared_log(tmp_path: Path) -> Path:
    path = tmp_path / "costs.jsonl"
    path.write_text(
        "\n".join([
            row("implement", "gpt-5.2", 0.5, "s1", day="2026-11-01", inp=1000, out=200),
            row("review", "claude-sonnet-4-6", 1.25, "s2", inp=3000, out=100,
                provider="anthropic"),
            "{this line is corrupt",
            row("implement", "gpt-5.2", 0.25, "s2", inp=500, out=50),
        ]) + "\n"
    )
    return path


def test_cost_totals_json(tmp_path: Path, prepared_log: Path) -> None:
    result = draht(tmp_path, "cost", "--log", str(prepared_log), "--json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["log"] == str(prepared_log)
    assert data["skipped"] == 1
    assert data["total"] == {"calls": 3, "input_tokens": 4500, "output_tokens": 350,
                             "reasoning_tokens": 0, "cost_usd": 2.0}
    groups = {group["key"]: group for group in data["groups"]}
    assert groups["implement"]["calls"] == 2
    assert groups["implement"]["cost_usd"] == pytest.approx(0.75)
    assert set(groups["review"]) == {"key", "calls", "input_tokens", "output_tokens",
                                     "reasoning_tokens", "cost_usd"}


def test_cost_plain_text_filters_and_corrupt_lines(tmp_path: Path, prepared_log: Path) -> None:
    result = draht(tmp_path, "cost", "--log", str(prepared_log))
    assert result.returncode == 0
    lines = result.stdout.splitlines()
    assert lines[1].split()[:2] == ["ROLE", "CALLS"]
    total = next(line for line in lines if line.startswith("TOTAL")).split()
    assert total == ["TOTAL", "3", "4,500", "350", "2.0000"]
    assert "skipped 1 corrupt line" in result.stdout

    by_model = draht(tmp_path, "cost", "--log", str(prepared_log), "--by", "model",
                     "--session", "s2", "--json")
    data = json.loads(by_model.stdout)
    assert {group["key"] for group in data["groups"]} == {
        "anthropic/claude-sonnet-4-6", "openai/gpt-5.2"}
    assert data["total"]["calls"] == 2

    role = json.loads(draht(tmp_path, "cost", "--log", str(prepared_log), "--role", "review",
                            "--json").stdout)
    assert role["total"]["calls"] == 1

    since = json.loads(draht(tmp_path, "cost", "--log", str(prepared_log), "--since",
                             "2026-11-02", "--json").stdout)
    assert since["total"]["calls"] == 2
    until = json.loads(draht(tmp_path, "cost", "--log", str(prepared_log), "--until",
                             "2026-11-01", "--json").stdout)
    assert until["total"]["calls"] == 1


def test_cost_current_session(tmp_path: Path, prepared_log: Path) -> None:
    result = draht(tmp_path, "cost", "--log", str(prepared_log), "--current")
    assert result.returncode == 2
    assert "DRAHT_SESSION_ID" in result.stderr
    env = clean_env(tmp_path, DRAHT_SESSION_ID="s1", DRAHT_COST_LOG=str(prepared_log))
    data = json.loads(draht(tmp_path, "cost", "--current", "--json", env=env).stdout)
    assert data["filters"]["session"] == "s1"
    assert data["total"]["calls"] == 1


def test_cost_missing_and_empty_log(tmp_path: Path) -> None:
    result = draht(tmp_path, "cost")
    assert result.returncode == 0
    assert result.stdout.strip() == f"No cost log at {tmp_path / '.draht' / 'cost-log.jsonl'}"
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    result = draht(tmp_path, "cost", "--log", str(empty))
    assert result.returncode == 0
    assert result.stdout.strip() == f"No calls logged in {empty}"
    assert draht(tmp_path, "cost", "--since", "last tuesday").returncode == 2


def test_cost_log_from_config_settings(tmp_path: Path, prepared_log: Path) -> None:
    write_project(tmp_path, {"settings": {"cost_log": prepared_log.name}})
    data = json.loads(draht(tmp_path, "cost", "--json").stdout)
    assert data["log"] == str(prepared_log)
    assert data["total"]["calls"] == 3


# --------------------------------------------------------------------------- run / demo
# The commands that load LiteLLM take seconds each; they start together (module fixture) so
# their imports overlap, and each test below checks one of them.


def stub_project(directory: Path, stub: StubProvider, prefix: str) -> None:
    def entry(name: str) -> dict[str, Any]:
        return {"model": f"openai/{prefix}-{name}", "api_base": stub.base_url,
                "api_key": "sk-test-123456",
                "input_cost_per_token": 1e-6, "output_cost_per_token": 2e-6}

    write_project(directory, {
        "roles": {"implement": {"primary": entry("primary"), "fallbacks": [entry("backup")]}},
        "settings": {"num_retries": 0, "cost_log": "costs.jsonl"},
    })


_ROUTER_CHECK = """
import sys, yaml, litellm
from draht_router.config import load_config
from draht_router.export import proxy_model_list
from draht_router.router import ModelRouter
data = yaml.safe_load(open(sys.argv[1], encoding="utf-8"))
router = litellm.Router(model_list=data["model_list"],
                        fallbacks=data["router_settings"]["fallbacks"])
config = load_config()
assert ModelRouter(config).model_list() == proxy_model_list(config)
print(len(router.get_model_list()))
"""


class Background:
    """Background runs of the LiteLLM-loading commands, and their results."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.stub: StubProvider | None = None
        self.dirs: dict[str, Path] = {}
        self.procs: dict[str, subprocess.Popen[str]] = {}
        self.started: dict[str, float] = {}
        self.results: dict[str, tuple[int, str, str, float]] = {}

    def directory(self, name: str) -> Path:
        path = self.dirs.setdefault(name, self.base / name)
        path.mkdir(exist_ok=True)
        return path

    def start(self, name: str, args: list[str], *, stdin: str | None = None) -> None:
        directory = self.directory(name)
        self.started[name] = time.perf_counter()
        proc = subprocess.Popen(
            args, cwd=directory, env=clean_env(directory), text=True,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )
        assert proc.stdin is not None
        if stdin:
            proc.stdin.write(stdin)
        proc.stdin.close()
        proc.stdin = None  # communicate() would flush the closed pipe otherwise
        self.procs[name] = proc

    def result(self, name: str) -> tuple[int, str, str, float]:
        """(exit code, stdout, stderr, seconds) of a background run."""
        if name not in self.results:
            proc = self.procs[name]
            out, err = proc.communicate(timeout=90)
            elapsed = time.perf_counter() - self.started[name]
            self.results[name] = (proc.returncode, out, err, elapsed)
        return self.results[name]

    def stop(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.communicate()


@pytest.fixture(scope="module", autouse=True)
def background(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Any:
    """Starts the demo as the module starts: it runs beside the quick tests (one subprocess
    at a time), not beside the other LiteLLM imports, so its wall time means something."""
    runs = Background(tmp_path_factory.mktemp("background"))
    selected = [item for item in request.session.items if item.module is request.module]
    if any(item.name == "test_demo_runs_without_keys_or_network" for item in selected):
        runs.start("demo", [*CLI, "demo"])
    yield runs
    runs.stop()


@pytest.fixture(scope="module")
def heavy(background: Background) -> Any:
    """The run and export checks, started together once the demo is done."""
    runs = background
    if "demo" in runs.procs:
        runs.result("demo")
    with StubProvider() as stub:
        runs.stub = stub
        stub_project(runs.directory("fallover"), stub, "fo")
        stub.script("fo-primary", rate_limited(retry_after=0))
        stub.script("fo-backup", ok("The backup model answered."))
        runs.start("fallover", [*CLI, "run", "--role", "implement", "Say hello"])

        stub_project(runs.directory("auth"), stub, "auth")
        stub.script("auth-primary", unauthorized())
        runs.start("auth", [*CLI, "run", "--task", "coding", "-"], stdin="Write a function")

        export_dir = runs.directory("router")
        write_project(export_dir, {"roles": {
            "docs": {"primary": {"model": "openai/gpt-5.2", "api_key": "os.environ/MY_DOCS_KEY"},
                     "fallbacks": ["anthropic/claude-sonnet-4-6"]},
        }})
        exported = draht(export_dir, "export", "litellm-proxy")
        assert exported.returncode == 0, exported.stderr
        (export_dir / "proxy.yaml").write_text(exported.stdout, encoding="utf-8")
        runs.start("router", [sys.executable, "-c", _ROUTER_CHECK, str(export_dir / "proxy.yaml")])
        yield runs
        runs.stop()


@pytest.mark.slow
def test_run_falls_over_and_prints_only_the_answer(heavy: Background) -> None:
    code, out, err, _ = heavy.result("fallover")
    assert code == 0, err
    assert out == "The backup model answered.\n"
    assert "answered by openai/fo-backup" in err
    assert "openai/fo-primary failed: 429" in err
    assert "tokens: 10 in, 4 out" in err
    assert heavy.stub is not None and heavy.stub.count("fo-primary") == 1
    log = heavy.dirs["fallover"] / "costs.jsonl"
    rows = [json.loads(line) for line in log.read_text().splitlines()]
    assert [(r["model"], r["fallbackFrom"]) for r in rows] == [("fo-backup", "openai/fo-primary")]


@pytest.mark.slow
def test_run_auth_failure_is_one_line_exit_1(heavy: Background) -> None:
    code, out, err, _ = heavy.result("auth")
    assert code == 1
    assert out == ""
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1
    assert err.splitlines()[-1] == errors[0]
    assert "role implement" in errors[0]
    assert "openai/auth-primary" in errors[0]
    assert "401" in errors[0]
    assert "sk-test-123456" not in err
    assert "Traceback" not in err
    assert heavy.stub is not None
    assert heavy.stub.count("auth-backup") == 0  # a 401 is no reason to try another model


def test_run_usage_errors_exit_2(tmp_path: Path) -> None:
    assert draht(tmp_path, "run", "--role", "nosuchrole", "hi").returncode == 2
    assert draht(tmp_path, "run", "--role", "implement", "--task", "coding", "hi").returncode == 2
    assert draht(tmp_path, "run", "--role", "implement", "", input="").returncode == 2


@pytest.mark.slow
def test_demo_runs_without_keys_or_network(background: Background) -> None:
    code, out, err, elapsed = background.result("demo")
    assert code == 0, err
    assert "simulation" in out.lower()
    assert "no api key" in out.lower()
    assert ("→ openai/demo-architect-primary failed: 429 rate limited; "
            "fell over to openai/demo-architect-backup") in out
    assert "fell over to openai/demo-implement-backup" in out
    assert "TOTAL" in out and "COST (USD)" in out
    print(f"demo took {elapsed:.1f} s")
    assert elapsed < 30, elapsed
    assert not (background.dirs["demo"] / ".draht").exists()  # the user's cost log untouched


# --------------------------------------------------------------------------- export


def test_export_litellm_proxy_shape(tmp_path: Path) -> None:
    write_project(tmp_path, {"roles": {
        "docs": {"primary": {"model": "openai/gpt-5.2", "api_key": "os.environ/MY_DOCS_KEY"},
                 "fallbacks": ["anthropic/claude-sonnet-4-6"]},
        "quick": {"primary": {"model": "ollama/llama3", "api_base": "http://localhost:11434"}},
    }})
    result = draht(tmp_path, "export", "litellm-proxy")
    assert result.returncode == 0, result.stderr
    data = yaml.safe_load(result.stdout)
    names = [entry["model_name"] for entry in data["model_list"]]
    assert {"implement", "implement/fallback-1", "implement/fallback-2", "docs"} <= set(names)
    params = {entry["model_name"]: entry["litellm_params"] for entry in data["model_list"]}
    assert params["docs"]["api_key"] == "os.environ/MY_DOCS_KEY"
    assert params["docs/fallback-1"]["api_key"] == "os.environ/ANTHROPIC_API_KEY"
    assert "api_key" not in params["quick"]  # its own endpoint: no provider key sent there
    settings = data["router_settings"]
    assert {"implement": ["implement/fallback-1", "implement/fallback-2"]} in settings["fallbacks"]
    assert settings["num_retries"] == 1 and settings["timeout"] == 60.0
    assert data["litellm_settings"] == {"drop_params": True}

    out_file = tmp_path / "proxy.yaml"
    assert draht(tmp_path, "export", "litellm-proxy", "-o", str(out_file)).returncode == 0
    assert yaml.safe_load(out_file.read_text()) == data


@pytest.mark.slow
def test_export_loads_into_a_litellm_router(heavy: Background) -> None:
    code, out, err, _ = heavy.result("router")
    assert code == 0, err
    exported = yaml.safe_load((heavy.dirs["router"] / "proxy.yaml").read_text())
    assert int(out.strip().splitlines()[-1]) == len(exported["model_list"])
