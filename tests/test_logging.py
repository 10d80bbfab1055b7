"""The structlog pipeline: quiet by default, JSON on request, no secrets, in-process capture."""

from __future__ import annotations

import json

import pytest
from conftest import stub_config

from draht_router import ModelRouter
from draht_router.log import capture_events, configure_logging, get_logger, redact
from draht_router.stub import error, rate_limited

MESSAGES = [{"role": "user", "content": "a secret plan"}]


@pytest.fixture(autouse=True)
def _restore_logging():
    yield
    configure_logging()


def test_quiet_by_default_and_capture_sees_fallbacks(stub, capsys):
    configure_logging()
    router = ModelRouter(stub_config(stub, num_retries=0))
    stub.script("primary", rate_limited())
    with capture_events() as events:
        router.completion(role="implement", messages=MESSAGES)
    assert capsys.readouterr().err == ""  # fall-overs are info: not shown by default
    (fallback,) = [e for e in events if e["event"] == "route.fallback"]
    assert fallback["from"] == "openai/primary" and fallback["to"] == "openai/backup"
    assert fallback["status"] == 429 and fallback["error"] == "RateLimitError"


def test_json_lines_at_info_with_no_keys_or_content(stub, capsys, monkeypatch):
    monkeypatch.setenv("DRAHT_LOG_LEVEL", "info")
    monkeypatch.setenv("DRAHT_LOG_FORMAT", "json")
    configure_logging()
    router = ModelRouter(stub_config(stub, num_retries=0))
    stub.script("primary", error(503, "upstream rejected key sk-live-abcdef123456"))
    router.completion(role="implement", messages=MESSAGES)
    err = capsys.readouterr().err
    events = [json.loads(line) for line in err.splitlines() if line.startswith("{")]
    assert any(e["event"] == "route.fallback" for e in events)
    assert "sk-live-abcdef123456" not in err and "sk-test" not in err
    assert "a secret plan" not in err


def test_redact_and_secret_fields(capsys):
    assert redact("Bearer abcdefghijklmnop and sk-ant-api03-xyzxyz") == (
        "[redacted] and [redacted]"
    )
    configure_logging(level="warning")
    get_logger().warning("probe", api_key="sk-whatever-123", messages=["hi"])
    err = capsys.readouterr().err
    assert "sk-whatever-123" not in err and "'hi'" not in err
