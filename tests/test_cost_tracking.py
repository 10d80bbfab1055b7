"""Cost rows written for real LiteLLM calls to the stub (issue 3: the callback and budgets)."""

from __future__ import annotations

import asyncio
import json
import time

import litellm
import pytest
from conftest import read_rows, stub_config, stub_entry

from draht_router import BudgetExceededError, CostEntry, ModelRouter, callbacks, cost, log_cost
from draht_router.model_map import token_prices
from draht_router.stub import cut, ok, rate_limited, server_error, unauthorized

MESSAGES = [{"role": "user", "content": "count to three"}]


def make_router(stub, session_id="sess-1", **settings):
    settings.setdefault("num_retries", 0)
    return ModelRouter(stub_config(stub, **settings), session_id=session_id)


def test_one_row_per_call_written_before_return(stub, cost_log):
    router = make_router(stub)
    stub.script("primary", ok(text="one two three", prompt_tokens=21, completion_tokens=3))
    router.completion(role="implement", messages=MESSAGES)
    rows = read_rows(cost_log)  # read-your-writes: no waiting
    assert len(rows) == 1
    row = rows[0]
    assert row["role"] == "implement"
    assert (row["provider"], row["model"]) == ("openai", "primary")
    assert (row["inputTokens"], row["outputTokens"]) == (21, 3)
    assert row["sessionId"] == "sess-1"
    assert "reasoningTokens" not in row
    assert row["timestamp"].endswith("Z") and len(row["timestamp"]) == 24
    time.sleep(0.3)  # LiteLLM's own callback runs later on its pool: it must not add a row
    assert len(read_rows(cost_log)) == 1


def test_rows_keys_are_the_typescript_camel_case(stub, cost_log):
    make_router(stub).completion(role="implement", messages=MESSAGES)
    row = read_rows(cost_log)[0]
    required = {"timestamp", "role", "provider", "model", "inputTokens", "outputTokens",
                "estimatedCostUsd", "sessionId"}
    assert required <= set(row)


def test_failed_attempts_write_no_row_and_fallover_row_names_fallback(stub, cost_log):
    router = make_router(stub)
    stub.script("primary", server_error(503))
    router.completion(role="implement", messages=MESSAGES)
    rows = read_rows(cost_log)
    assert len(rows) == 1
    assert rows[0]["model"] == "backup"
    assert rows[0]["fallbackFrom"] == "openai/primary"
    assert rows[0]["attempts"] == 2


def test_failed_call_writes_nothing(stub, cost_log):
    stub.script("primary", unauthorized())
    with pytest.raises(litellm.AuthenticationError):
        make_router(stub).completion(role="implement", messages=MESSAGES)
    time.sleep(0.2)
    assert read_rows(cost_log) == []


@pytest.mark.parametrize("mode", ["buffer", "live"])
def test_streaming_row_when_stream_consumed(stub, cost_log, mode):
    router = make_router(stub, stream_fallback=mode)
    stub.script("primary", ok(text="a streamed answer", prompt_tokens=12, completion_tokens=3))
    stream = router.completion(role="implement", messages=MESSAGES, stream=True)
    text = "".join(chunk.choices[0].delta.content or "" for chunk in stream)
    assert text == "a streamed answer"
    rows = read_rows(cost_log)
    assert len(rows) == 1
    assert (rows[0]["inputTokens"], rows[0]["outputTokens"]) == (12, 3)
    time.sleep(0.3)
    assert len(read_rows(cost_log)) == 1


def test_stream_cut_then_fallback_bills_only_the_fallback(stub, cost_log):
    router = make_router(stub)
    stub.script("primary", cut(after_chunks=2))
    list(router.completion(role="implement", messages=MESSAGES, stream=True))
    rows = read_rows(cost_log)
    assert [row["model"] for row in rows] == ["backup"]


def test_async_rows(stub, cost_log):
    router = make_router(stub)

    async def scenario():
        await router.acompletion(role="implement", messages=MESSAGES, session_id="async-s")
        assert len(read_rows(cost_log)) == 1
        stream = await router.acompletion(role="implement", messages=MESSAGES, stream=True)
        async for _ in stream:
            pass
        assert len(read_rows(cost_log)) == 2

    asyncio.run(scenario())
    rows = read_rows(cost_log)
    assert rows[0]["sessionId"] == "async-s" and rows[1]["sessionId"] == "sess-1"


def test_litellm_priced_cost_for_known_model(stub, cost_log):
    entry = {"model": "openai/gpt-4o-mini", "api_base": stub.base_url, "api_key": "sk-test"}
    router = ModelRouter({"roles": {"quick": {"primary": entry}}})
    stub.script("gpt-4o-mini", ok(prompt_tokens=1000, completion_tokens=500))
    router.completion(role="quick", messages=MESSAGES)
    row = read_rows(cost_log)[0]
    price_in, price_out = token_prices("openai", "gpt-4o-mini")
    expected = 1000 * price_in + 500 * price_out
    assert row["estimatedCostUsd"] == pytest.approx(expected, rel=0.01)


def test_price_override_to_zero(stub, cost_log):
    entry = stub_entry(stub, "gpt-4o-mini", input_cost_per_token=0, output_cost_per_token=0)
    router = ModelRouter({"roles": {"quick": {"primary": entry}}})
    router.completion(role="quick", messages=MESSAGES)
    assert read_rows(cost_log)[0]["estimatedCostUsd"] == 0


def test_price_override_applies(stub, cost_log):
    entry = stub_entry(stub, "local", input_cost_per_token=0.001, output_cost_per_token=0.002)
    router = ModelRouter({"roles": {"quick": {"primary": entry}}})
    stub.script("local", ok(prompt_tokens=10, completion_tokens=5))
    router.completion(role="quick", messages=MESSAGES)
    assert read_rows(cost_log)[0]["estimatedCostUsd"] == pytest.approx(0.02)


def test_reasoning_tokens_recorded_and_billed_once(stub, cost_log):
    entry = {"model": "openai/gpt-4o-mini", "api_base": stub.base_url, "api_key": "sk-test"}
    router = ModelRouter({"roles": {"quick": {"primary": entry}}})
    stub.script("gpt-4o-mini", ok(prompt_tokens=100, completion_tokens=50, reasoning_tokens=30))
    router.completion(role="quick", messages=MESSAGES)
    row = read_rows(cost_log)[0]
    assert row["reasoningTokens"] == 30
    assert row["outputTokens"] == 50
    price_in, price_out = token_prices("openai", "gpt-4o-mini")
    assert row["estimatedCostUsd"] == pytest.approx(100 * price_in + 50 * price_out, rel=0.01)


def test_session_id_precedence(stub, cost_log, monkeypatch):
    router = make_router(stub, session_id="router-session")
    router.completion(role="implement", messages=MESSAGES, session_id="call-session")
    router.completion(role="implement", messages=MESSAGES)
    monkeypatch.setenv("DRAHT_SESSION_ID", "env-session")
    make_router(stub, session_id=None).completion(role="implement", messages=MESSAGES)
    monkeypatch.delenv("DRAHT_SESSION_ID")
    make_router(stub, session_id=None).completion(role="implement", messages=MESSAGES)
    sessions = [row["sessionId"] for row in read_rows(cost_log)]
    assert sessions[:3] == ["call-session", "router-session", "env-session"]
    assert sessions[3] == callbacks.process_session_id()


def test_cost_log_setting_and_env_override(stub, tmp_path, monkeypatch):
    monkeypatch.delenv("DRAHT_COST_LOG")
    monkeypatch.chdir(tmp_path)
    make_router(stub).completion(role="implement", messages=MESSAGES)
    assert len(read_rows(tmp_path / ".draht" / "cost-log.jsonl")) == 1
    make_router(stub, cost_log="logs/nested/costs.jsonl").completion(
        role="implement", messages=MESSAGES
    )
    assert len(read_rows(tmp_path / "logs" / "nested" / "costs.jsonl")) == 1


def test_callback_registered_once_and_logs_plain_litellm_calls(stub, cost_log):
    for _ in range(3):
        make_router(stub)
    loggers = [cb for cb in litellm.callbacks if type(cb).__name__ == "DrahtCostLogger"]
    assert len(loggers) == 1
    litellm.completion(model="openai/plain", api_base=stub.base_url, api_key="sk-test",
                       messages=MESSAGES)
    deadline = time.monotonic() + 5
    while not read_rows(cost_log) and time.monotonic() < deadline:
        time.sleep(0.05)  # LiteLLM runs sync callbacks later, on its thread pool
    rows = read_rows(cost_log)
    assert len(rows) == 1 and rows[0]["role"] == "direct" and rows[0]["model"] == "plain"


def test_litellm_router_path_is_logged_with_its_role(stub, cost_log):
    make_router(stub)
    lrouter = litellm.Router(model_list=[{
        "model_name": "review",
        "litellm_params": {"model": "openai/rev", "api_base": stub.base_url, "api_key": "sk-x"},
    }])
    lrouter.completion(model="review", messages=MESSAGES)
    deadline = time.monotonic() + 5
    while not read_rows(cost_log) and time.monotonic() < deadline:
        time.sleep(0.05)
    rows = read_rows(cost_log)
    assert len(rows) == 1 and rows[0]["role"] == "review" and rows[0]["model"] == "rev"


def test_write_failure_never_breaks_the_completion(stub, tmp_path, monkeypatch):
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("x")
    monkeypatch.setenv("DRAHT_COST_LOG", str(blocker / "cost.jsonl"))
    before = cost.write_failures()
    response = make_router(stub).completion(role="implement", messages=MESSAGES)
    assert response.choices[0].message.content
    assert cost.write_failures() == before + 1


def _spent(cost_log, usd, session="sess-1", role="implement"):
    log_cost(CostEntry(timestamp=cost.now_timestamp(), role=role, provider="openai",
                       model="primary", input_tokens=1, output_tokens=1,
                       estimated_cost_usd=usd, session_id=session), cost_log)


@pytest.mark.parametrize(
    "budget, session, role",
    [
        ({"session_usd": 1.0}, "sess-1", "implement"),
        ({"daily_usd": 1.0}, "other-session", "implement"),
        ({"role_daily_usd": {"implement": 1.0}}, "other-session", "implement"),
    ],
    ids=["session", "daily", "role-daily"],
)
def test_budget_refuses_before_any_request(stub, cost_log, budget, session, role):
    _spent(cost_log, 1.25, session=session, role=role)
    router = make_router(stub, budget=budget)
    with pytest.raises(BudgetExceededError) as info:
        router.completion(role="implement", messages=MESSAGES)
    assert stub.count() == 0
    message = str(info.value)
    assert "1.25" in message and "settings.budget" in message


def test_budget_counts_spend_of_this_process_without_rereading(stub, cost_log):
    entry = stub_entry(stub, "pricey", input_cost_per_token=0.01, output_cost_per_token=0.01)
    router = ModelRouter({"roles": {"implement": {"primary": entry}},
                          "settings": {"budget": {"session_usd": 0.5}}}, session_id="b")
    stub.script("pricey", ok(prompt_tokens=40, completion_tokens=20))
    router.completion(role="implement", messages=MESSAGES)  # $0.60 spent: cap reached
    with pytest.raises(BudgetExceededError):
        router.completion(role="implement", messages=MESSAGES)
    assert stub.count("pricey") == 1


def test_budget_downgrade_uses_cheapest_model(stub, cost_log):
    config = {
        "roles": {"implement": {
            "primary": stub_entry(stub, "dear", input_cost_per_token=1e-4,
                                  output_cost_per_token=1e-4),
            "fallbacks": [stub_entry(stub, "cheap", input_cost_per_token=1e-7,
                                     output_cost_per_token=1e-7)],
        }},
        "settings": {"budget": {"session_usd": 0.5}, "on_budget": "downgrade"},
    }
    _spent(cost_log, 0.75)
    response = ModelRouter(config, session_id="sess-1").completion(
        role="implement", messages=MESSAGES
    )
    assert response.model == "cheap" and stub.count("dear") == 0


def test_track_cost_for_callers_own_requests(stub, cost_log):
    router = make_router(stub)
    entry = router.track_cost("review", "anthropic", "claude-sonnet-4-6", 1000, 200)
    row = read_rows(cost_log)[0]
    assert row["role"] == "review" and row["inputTokens"] == 1000
    assert row["estimatedCostUsd"] == pytest.approx(entry.estimated_cost_usd)
    assert json.dumps(row)  # plain JSON


def test_rate_limited_then_fallback_row_has_session(stub, cost_log):
    router = make_router(stub, session_id="rl")
    stub.script("primary", rate_limited())
    router.completion(role="implement", messages=MESSAGES)
    rows = read_rows(cost_log)
    assert len(rows) == 1 and rows[0]["sessionId"] == "rl" and rows[0]["model"] == "backup"


def test_log_path_is_resolved_when_the_call_is_made(stub, tmp_path, monkeypatch):
    router = make_router(stub)  # built before the environment changes, like a default router
    first, second = tmp_path / "first.jsonl", tmp_path / "second.jsonl"
    monkeypatch.setenv("DRAHT_COST_LOG", str(first))
    router.completion(role="implement", messages=MESSAGES)
    monkeypatch.setenv("DRAHT_COST_LOG", str(second))
    router.completion(role="implement", messages=MESSAGES)
    assert len(read_rows(first)) == 1 and len(read_rows(second)) == 1
