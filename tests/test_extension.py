"""The coding-agent extension: model selection, lazy router, and the router.* commands."""

from __future__ import annotations

import importlib.metadata
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from draht_router.config import ModelRef
from draht_router.extension import RouterExtension, create_router_extension

PROJECT = {
    "roles": {
        "review": {"primary": "openai/gpt-5.2", "fallbacks": ["anthropic/claude-sonnet-4-6"]},
    },
    "task_types": {"security-audit": "review"},
}


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A project directory (the working directory) with its own router.yaml."""
    path = tmp_path / ".draht" / "router.yaml"
    path.parent.mkdir(parents=True)
    path.write_text(yaml.safe_dump(PROJECT), encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def cli_stdout(cwd: Path, *args: str) -> str:
    """What the installed CLI prints, piped, with the test's environment."""
    result = subprocess.run(
        [sys.executable, "-m", "draht_router", *args],
        cwd=cwd, env=dict(os.environ), capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_entry_point_is_registered() -> None:
    points = importlib.metadata.entry_points(group="draht.extensions")
    (point,) = [p for p in points if p.name == "model-router"]
    assert point.value == "draht_router.extension:create_router_extension"
    assert point.load() is create_router_extension


def test_identity_and_session(project: Path) -> None:
    ext = create_router_extension(session_id="sess-1")
    assert isinstance(ext, RouterExtension)
    assert ext.name == "model-router"
    assert ext.description
    assert ext.session_id == "sess-1"
    assert set(ext.commands) == {"router.show", "router.cost"}


def test_select_model_uses_the_project_config(project: Path) -> None:
    ext = create_router_extension()
    ext.on_session_start()
    assert ext.select_model("pr-review") == ModelRef("openai", "gpt-5.2")
    assert ext.select_model("security-audit") == ModelRef("openai", "gpt-5.2")
    assert [str(ref) for ref in ext.select_model_with_fallbacks("pr-review")] == [
        "openai/gpt-5.2",
        "anthropic/claude-sonnet-4-6",
    ]
    assert ext.select_model("design a plugin system").model == "claude-opus-4-6"
    assert ext.explain("scaffold a CRUD API").role == "boilerplate"


def test_session_start_and_selection_do_not_import_litellm(project: Path) -> None:
    script = (
        "import sys\n"
        "from draht_router import create_router_extension\n"
        "ext = create_router_extension('s')\n"
        "ext.on_session_start()\n"
        "ext.select_model('coding'); ext.select_model_with_fallbacks('review')\n"
        "ext.commands['router.show'](); ext.commands['router.cost']()\n"
        "assert 'litellm' not in sys.modules, 'litellm imported'\n"
        "print('lazy')\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=project, env=dict(os.environ),
        capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "lazy"


def test_show_command_matches_the_cli(project: Path) -> None:
    ext = create_router_extension()
    ext.on_session_start()
    assert ext.commands["router.show"]() + "\n" == cli_stdout(project, "show")
    shown = ext.commands["router.show"](json_output=True)
    assert shown + "\n" == cli_stdout(project, "show", "--json")
    assert json.loads(shown)["roles"]["review"]["source"] == "project"


def test_cost_command_matches_the_cli(project: Path) -> None:
    log = project / "costs.jsonl"
    rows = [
        {"timestamp": "2026-11-02T10:00:00.000Z", "role": "review", "provider": "openai",
         "model": "gpt-5.2", "inputTokens": 1200, "outputTokens": 300,
         "estimatedCostUsd": 0.0045, "sessionId": "sess-1"},
        {"timestamp": "2026-11-02T11:00:00.000Z", "role": "implement", "provider": "openai",
         "model": "gpt-5.2", "inputTokens": 800, "outputTokens": 100,
         "estimatedCostUsd": 0.002, "sessionId": "other"},
    ]
    log.write_text("\n".join(json.dumps(r) for r in rows) + "\nnot json\n", encoding="utf-8")
    ext = create_router_extension(session_id="sess-1")
    ext.on_session_start()
    cost = ext.commands["router.cost"]
    assert cost(log=str(log)) + "\n" == cli_stdout(project, "cost", "--log", str(log))
    assert cost(log=str(log), by="model", json_output=True) + "\n" == cli_stdout(
        project, "cost", "--log", str(log), "--by", "model", "--json"
    )
    mine = json.loads(cost(log=str(log), current=True, json_output=True))
    assert mine["filters"]["session"] == "sess-1"
    assert mine["total"]["calls"] == 1
    assert "skipped 1 corrupt line" in cost(log=str(log))


def test_cost_command_default_log(project: Path) -> None:
    # conftest points DRAHT_COST_LOG at a file that does not exist yet.
    ext = create_router_extension()
    text = ext.commands["router.cost"]()
    assert text == f"No cost log at {os.environ['DRAHT_COST_LOG']}"


def test_get_router_is_built_once_with_the_session(project: Path) -> None:
    ext = create_router_extension(session_id="sess-9")
    ext.on_session_start()
    router = ext.get_router()
    assert router is ext.get_router()
    assert router.session_id == "sess-9"
    assert router.resolve("review") == ext.select_model("pr-review")


def test_should_fallback_follows_the_error_policy() -> None:
    import litellm

    ext = create_router_extension()
    assert ext.should_fallback(litellm.RateLimitError("slow down", "openai", "gpt-5.2"))
    assert ext.should_fallback(litellm.ServiceUnavailableError("down", "openai", "gpt-5.2"))
    assert not ext.should_fallback(litellm.AuthenticationError("bad key", "openai", "gpt-5.2"))
    assert not ext.should_fallback(
        litellm.BadRequestError("bad request", model="gpt-5.2", llm_provider="openai")
    )
