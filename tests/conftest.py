"""Shared pytest fixtures."""

from __future__ import annotations

import os

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

from collections.abc import Iterator  # noqa: E402

import pytest  # noqa: E402

from draht_router.stub import StubProvider  # noqa: E402


@pytest.fixture
def stub() -> Iterator[StubProvider]:
    """A started loopback stub provider, closed after the test."""
    with StubProvider() as provider:
        yield provider


@pytest.fixture(autouse=True)
def _isolated_env(tmp_path, monkeypatch):
    """Every test gets its own cost log and home; no real API keys or sessions leak in."""
    home = tmp_path / ".isolated-home"  # tests that build their own home/ keep that name
    home.mkdir(exist_ok=True)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("DRAHT_COST_LOG", str(tmp_path / "cost-log.jsonl"))
    monkeypatch.delenv("DRAHT_SESSION_ID", raising=False)
    monkeypatch.delenv("DRAHT_ROUTER_CONFIG", raising=False)
    for name in list(os.environ):
        if name.endswith("_API_KEY"):
            monkeypatch.delenv(name, raising=False)


@pytest.fixture
def cost_log(tmp_path):
    """Path of the cost log the tests' routers write to."""
    return tmp_path / "cost-log.jsonl"


def stub_entry(stub: StubProvider, model: str, **params) -> dict:
    """A chain entry that reaches ``model`` on the stub (unknown to LiteLLM, so priced here)."""
    return {"model": f"openai/{model}", "api_base": stub.base_url, "api_key": "sk-test", **params}


def stub_config(stub: StubProvider, chain=("primary", "backup"), role="implement", **settings):
    """A router config whose ``role`` walks ``chain`` on the stub."""
    entries = [stub_entry(stub, name) for name in chain]
    return {
        "roles": {role: {"primary": entries[0], "fallbacks": entries[1:]}},
        "settings": settings,
    }


def read_rows(path) -> list[dict]:
    """The cost log's rows as dicts (empty when the file does not exist)."""
    import json

    if not os.path.exists(path):
        return []
    with open(path, encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]
