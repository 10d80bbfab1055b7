"""ModelRouter and the drop-in completion() through real LiteLLM HTTP calls to the stub."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys

import litellm
import pytest
from conftest import read_rows, stub_config, stub_entry

import draht_router
from draht_router import ModelRouter, UnknownRoleError, is_retryable_error
from draht_router.config import ModelRef
from draht_router.stub import (
    bad_request,
    cut,
    not_found,
    ok,
    rate_limited,
    server_error,
    unauthorized,
)

MESSAGES = [{"role": "user", "content": "say hello"}]


@pytest.fixture
def router(stub):
    return ModelRouter(stub_config(stub, num_retries=0), session_id="test-session")


# ------------------------------------------------------------------ resolution
def test_resolve_and_chain(router):
    ref = router.resolve("implement")
    assert isinstance(ref, ModelRef)
    assert (ref.provider, ref.model, str(ref)) == ("openai", "primary", "openai/primary")
    assert [str(r) for r in router.resolve_with_fallbacks("implement")] == [
        "openai/primary",
        "openai/backup",
    ]


def test_default_roles_resolve_to_the_documented_models():
    router = ModelRouter({})
    assert str(router.resolve("architect")) == "anthropic/claude-opus-4-6"
    assert [str(r) for r in router.resolve_with_fallbacks("implement")] == [
        "anthropic/claude-sonnet-4-6",
        "openai/gpt-5.2",
        "deepseek/deepseek-v3.2",
    ]
    assert router.resolve_with_fallbacks("review") == [router.resolve("review")]


def test_unknown_role_lists_available_roles(router):
    with pytest.raises(UnknownRoleError) as info:
        router.resolve("astrologer")
    message = str(info.value)
    assert "Unknown role" in message and "implement" in message and "architect" in message


# ------------------------------------------------------------------ routing
def test_role_routes_to_primary(router, stub):
    response = router.completion(role="implement", messages=MESSAGES)
    assert isinstance(response, litellm.ModelResponse)
    assert response.choices[0].message.content == "Hello from the stub."
    assert stub.count("primary") == 1 and stub.count("backup") == 0


def test_precedence_role_over_task_type_over_model(stub):
    config = stub_config(stub, num_retries=0)
    config["roles"]["review"] = {"primary": stub_entry(stub, "reviewer")}
    router = ModelRouter(config)
    router.completion(model="review", role="implement", task_type="pr-review", messages=MESSAGES)
    router.completion(model="implement", task_type="pr-review", messages=MESSAGES)
    router.completion(model="review", messages=MESSAGES)
    assert stub.count("primary") == 1
    assert stub.count("reviewer") == 2


def test_free_text_task_maps_to_a_role(stub):
    config = stub_config(stub, num_retries=0)
    config["roles"]["review"] = {"primary": stub_entry(stub, "reviewer")}
    router = ModelRouter(config)
    router.completion(task_type="please audit this diff for bugs", messages=MESSAGES)
    assert stub.count("reviewer") == 1


def test_direct_model_call_skips_the_chain(router, stub, cost_log):
    stub.script("someone", server_error(503))
    with pytest.raises(litellm.ServiceUnavailableError):
        router.completion(
            model="openai/someone",
            api_base=stub.base_url,
            api_key="sk-test",
            messages=MESSAGES,
            max_retries=0,
        )
    assert stub.count("someone") == 1 and stub.count("backup") == 0
    response = router.completion(
        model="openai/someone", api_base=stub.base_url, api_key="sk-test", messages=MESSAGES
    )
    assert response.choices[0].message.content
    rows = read_rows(cost_log)
    assert len(rows) == 1 and rows[0]["role"] == "direct" and rows[0]["model"] == "someone"


@pytest.mark.parametrize("reply", [rate_limited(), server_error(503)], ids=["429", "503"])
def test_falls_over_on_transient_errors(router, stub, reply):
    stub.script("primary", reply)
    response = router.completion(role="implement", messages=MESSAGES)
    assert response.model == "backup"
    assert stub.count("primary") == 1 and stub.count("backup") == 1


@pytest.mark.parametrize(
    "reply, exc_type",
    [
        (unauthorized(), litellm.AuthenticationError),
        (bad_request("messages[0] is malformed"), litellm.BadRequestError),
        (not_found(), litellm.NotFoundError),
    ],
    ids=["401", "400", "404"],
)
def test_client_errors_raise_after_one_attempt(router, stub, reply, exc_type):
    stub.script("primary", reply)
    with pytest.raises(exc_type) as info:
        router.completion(role="implement", messages=MESSAGES)
    assert stub.count("primary") == 1
    assert stub.count("backup") == 0, "the fallback must receive nothing"
    if reply.status == 400:
        assert "messages[0] is malformed" in str(info.value)


def test_exhausted_chain_raises_the_last_error(router, stub):
    stub.script("primary", server_error(503))
    stub.script("backup", rate_limited())
    with pytest.raises(litellm.RateLimitError):
        router.completion(role="implement", messages=MESSAGES)


def test_kwargs_pass_through_untouched(router, stub):
    tools = [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]
    router.completion(
        role="implement",
        messages=MESSAGES,
        temperature=0.25,
        max_tokens=42,
        tools=tools,
        response_format={"type": "json_object"},
    )
    body = stub.requests_for("primary")[0].body
    assert body["temperature"] == 0.25 and body["max_tokens"] == 42
    assert body["tools"][0]["function"]["name"] == "f"
    assert body["response_format"] == {"type": "json_object"}


def test_env_references_resolve_only_at_call_time(stub, monkeypatch):
    entry = stub_entry(stub, "keyed", api_key="os.environ/STUB_TEST_KEY")
    router = ModelRouter({"roles": {"implement": {"primary": entry}}})
    assert router.resolve("implement").params["api_key"] == "os.environ/STUB_TEST_KEY"
    monkeypatch.setenv("STUB_TEST_KEY", "sk-from-env-123")
    router.completion(role="implement", messages=MESSAGES)
    assert stub.requests_for("keyed")[0].headers["authorization"] == "<redacted>"


# ------------------------------------------------------------------ streaming
def test_stream_returns_litellm_stream_wrapper(router):
    stream = router.completion(role="implement", messages=MESSAGES, stream=True)
    assert isinstance(stream, litellm.CustomStreamWrapper)
    text = "".join(chunk.choices[0].delta.content or "" for chunk in stream)
    assert text == "Hello from the stub."


def test_cut_stream_yields_only_the_fallback_text(router, stub):
    stub.script("primary", cut(after_chunks=2, text="PARTIAL primary words that never end"))
    stub.script("backup", ok(text="complete answer from backup"))
    stream = router.completion(role="implement", messages=MESSAGES, stream=True)
    text = "".join(chunk.choices[0].delta.content or "" for chunk in stream)
    assert text == "complete answer from backup"
    assert "PARTIAL" not in text


def test_stream_usage_chunk_only_when_asked(router):
    chunks = list(router.completion(role="implement", messages=MESSAGES, stream=True))
    assert all(chunk.choices for chunk in chunks)
    chunks = list(
        router.completion(
            role="implement",
            messages=MESSAGES,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    assert getattr(chunks[-1], "usage", None) is not None


# ------------------------------------------------------------------ async
def test_async_paths(router, stub):
    stub.script("primary", rate_limited())
    stub.script("primary", unauthorized())

    async def scenario():
        response = await router.acompletion(role="implement", messages=MESSAGES)
        assert response.model == "backup"
        with pytest.raises(litellm.AuthenticationError):
            await router.acompletion(role="implement", messages=MESSAGES)
        stub.script("primary", cut(after_chunks=1, text="PARTIAL never finished"))
        stream = await router.acompletion(role="implement", messages=MESSAGES, stream=True)
        return "".join([chunk.choices[0].delta.content or "" async for chunk in stream])

    assert asyncio.run(scenario()) == "Hello from the stub."
    assert stub.count("backup") == 2


# ------------------------------------------------------------------ drop-in module API
def test_module_completion_uses_configured_router(stub, cost_log):
    draht_router.configure(stub_config(stub, num_retries=0))
    response = draht_router.completion(task_type="coding", messages=MESSAGES)
    assert response.choices[0].message.content == "Hello from the stub."
    assert draht_router.get_router() is draht_router.get_router()
    assert read_rows(cost_log)[0]["role"] == "implement"
    draht_router.configure({})


def test_async_module_acompletion(stub):
    draht_router.configure(stub_config(stub, num_retries=0))
    response = asyncio.run(draht_router.acompletion(role="implement", messages=MESSAGES))
    assert response.model == "primary"
    draht_router.configure({})


def test_route_runs_callers_function_down_the_chain(router):
    seen = []

    def call(ref):
        seen.append(str(ref))
        if ref.model == "primary":
            raise litellm.RateLimitError("slow down", llm_provider="openai", model="primary")
        return f"answered by {ref}"

    assert router.route("implement", call) == "answered by openai/backup"
    assert seen == ["openai/primary", "openai/backup"]

    def refuse(ref):
        raise litellm.AuthenticationError("bad key", llm_provider="openai", model=ref.model)

    with pytest.raises(litellm.AuthenticationError):
        router.route("implement", refuse)


def test_is_retryable_error_on_real_errors(router, stub):
    for reply, retryable in [(rate_limited(), True), (server_error(503), True),
                             (unauthorized(), False), (bad_request("no"), False),
                             (not_found(), False)]:
        stub.script("probe", reply)
        with pytest.raises(Exception) as info:
            litellm.completion(model="openai/probe", api_base=stub.base_url, api_key="sk-test",
                               messages=MESSAGES, max_retries=0)
        assert is_retryable_error(info.value) is retryable, reply


# ------------------------------------------------------------------ start-up
def test_import_is_offline_quiet_and_lazy():
    env = {k: v for k, v in os.environ.items() if k != "LITELLM_LOCAL_MODEL_COST_MAP"}
    code = (
        "import sys, draht_router, os;"
        "assert 'litellm' not in sys.modules;"
        "print(os.environ['LITELLM_LOCAL_MODEL_COST_MAP'])"
    )
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "True"
    assert done.stderr == ""
