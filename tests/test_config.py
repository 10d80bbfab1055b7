"""Config files: sources and precedence, shapes, validation, saving, path safety."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import yaml

from draht_router.config import (
    BUILT_IN_ROLES,
    DEFAULT_CONFIG,
    BudgetSettings,
    ModelRef,
    RoleConfig,
    RouterConfig,
    Settings,
    config_from_dict,
    config_paths,
    load_config,
    merge_config,
    read_config_file,
    save_config,
    validate_config,
)
from draht_router.errors import (
    ConfigError,
    ConfigValidationError,
    UnknownRoleError,
    UnsafePathError,
)


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    """An isolated home and project directory; the project is the working directory."""
    home = tmp_path / "home"
    project = tmp_path / "project"
    home.mkdir()
    project.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("DRAHT_ROUTER_CONFIG", raising=False)
    monkeypatch.chdir(project)
    return {"home": home, "project": project, "tmp": tmp_path}


def write(path: Path, data: object) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(data, str):
        path.write_text(data, encoding="utf-8")
    elif path.suffix == ".json":
        path.write_text(json.dumps(data), encoding="utf-8")
    else:
        path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


def chain(config: RouterConfig, role: str) -> list[str]:
    return [str(ref) for ref in config.role(role).chain]


def errors_of(data: dict) -> list[str]:
    with pytest.raises(ConfigValidationError) as info:
        config_from_dict(data)
    return info.value.errors


# --- defaults -------------------------------------------------------------------------------


def test_defaults(env: dict[str, Path]) -> None:
    config = load_config()
    assert set(config.roles) == set(BUILT_IN_ROLES)
    assert chain(config, "architect") == ["anthropic/claude-opus-4-6", "gemini/gemini-2.5-pro"]
    assert chain(config, "implement") == [
        "anthropic/claude-sonnet-4-6",
        "openai/gpt-5.2",
        "deepseek/deepseek-v3.2",
    ]
    assert chain(config, "boilerplate") == ["deepseek/deepseek-v3.2", "gemini/gemini-2.5-flash"]
    assert chain(config, "quick") == ["gemini/gemini-2.5-flash", "deepseek/deepseek-v3.2"]
    assert chain(config, "review") == ["anthropic/claude-sonnet-4-6"]
    assert chain(config, "docs") == ["openai/gpt-5.2", "anthropic/claude-sonnet-4-6"]
    assert all(role.source == "default" for role in config.roles.values())
    assert config.settings == Settings()
    assert config.sources == []


def test_default_config_settings_match_settings_defaults() -> None:
    assert set(DEFAULT_CONFIG["roles"]) == set(BUILT_IN_ROLES)
    assert config_from_dict({}).settings == Settings()
    # the defaults pass the full model-map check too
    validate_config(config_from_dict({}))


def test_role_lookup_raises_unknown_role(env: dict[str, Path]) -> None:
    config = load_config()
    with pytest.raises(UnknownRoleError) as info:
        config.role("nope")
    assert info.value.available == sorted(BUILT_IN_ROLES)
    assert isinstance(info.value, KeyError)


# --- sources and merging --------------------------------------------------------------------


def test_project_over_global_over_defaults_per_role(env: dict[str, Path]) -> None:
    global_file = write(
        env["home"] / ".draht/router.yaml",
        {
            "roles": {
                "implement": {"primary": "openai/gpt-4o", "fallbacks": ["openai/gpt-4o-mini"]},
                "docs": "openai/gpt-4o-mini",
                "security": ["anthropic/claude-sonnet-4-6"],
            },
            "task_types": {"migration": "architect", "pentest": "security"},
            "settings": {"timeout": 30, "num_retries": 3, "budget": {"daily_usd": 5}},
        },
    )
    project_file = write(
        env["project"] / ".draht/router.yaml",
        {
            "roles": {"implement": {"primary": "anthropic/claude-sonnet-4-6"}},
            "task_types": {"migration": "implement"},
            "settings": {"timeout": 90, "budget": {"session_usd": 1}},
        },
    )
    config = load_config()
    # the project's implement replaces the global one entirely (no fallbacks inherited)
    assert chain(config, "implement") == ["anthropic/claude-sonnet-4-6"]
    assert config.role("implement").source == "project"
    assert chain(config, "docs") == ["openai/gpt-4o-mini"]
    assert config.role("docs").source == "global"
    assert config.role("security").source == "global"
    assert config.role("architect").source == "default"
    assert config.task_types == {"migration": "implement", "pentest": "security"}
    assert config.settings.timeout == 90.0
    assert config.settings.num_retries == 3
    # budget merges as a whole: the project's budget replaces the global one
    assert config.settings.budget == BudgetSettings(session_usd=1.0)
    assert config.sources == [str(global_file), str(project_file)]
    assert config.settings_data["timeout"] == 90


def test_env_file_replaces_project_file(
    env: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    write(env["home"] / ".draht/router.yaml", {"roles": {"docs": "openai/gpt-4o"}})
    write(env["project"] / ".draht/router.yaml", {"roles": {"review": "openai/gpt-4o"}})
    env_file = write(env["tmp"] / "elsewhere.yaml", {"roles": {"quick": "openai/gpt-4o-mini"}})
    monkeypatch.setenv("DRAHT_ROUTER_CONFIG", str(env_file))
    config = load_config()
    assert config.role("quick").source == "env"
    assert config.role("docs").source == "global"
    assert config.role("review").source == "default"  # the project file is not read
    assert config_paths()["env"] == env_file


def test_env_file_missing_is_an_error(
    env: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DRAHT_ROUTER_CONFIG", str(env["tmp"] / "missing.yaml"))
    with pytest.raises(ConfigError, match="missing.yaml"):
        load_config()


def test_file_lookup_order_yaml_yml_json(env: dict[str, Path]) -> None:
    draht = env["project"] / ".draht"
    write(draht / "router.json", {"docs": {"primary": {"provider": "openai", "model": "gpt-4o"}}})
    assert config_paths()["project"] == draht / "router.json"
    assert chain(load_config(), "docs") == ["openai/gpt-4o"]
    write(draht / "router.yml", {"roles": {"docs": "openai/gpt-4o-mini"}})
    assert config_paths()["project"] == draht / "router.yml"
    assert chain(load_config(), "docs") == ["openai/gpt-4o-mini"]
    write(draht / "router.yaml", {"roles": {"docs": "anthropic/claude-sonnet-4-6"}})
    assert config_paths()["project"] == draht / "router.yaml"
    assert chain(load_config(), "docs") == ["anthropic/claude-sonnet-4-6"]


def test_global_json_and_config_paths(env: dict[str, Path]) -> None:
    assert config_paths() == {"global": None, "project": None, "env": None}
    global_file = write(env["home"] / ".draht/router.json", {"quick": "openai/gpt-4o-mini"})
    assert config_paths()["global"] == global_file
    assert load_config().role("quick").source == "global"


def test_explicit_project_root(env: dict[str, Path]) -> None:
    other = env["tmp"] / "other"
    write(other / ".draht/router.yaml", {"roles": {"docs": "openai/gpt-4o"}})
    assert load_config(other).role("docs").source == "project"
    assert load_config(str(other)).role("docs").source == "project"
    assert load_config().role("docs").source == "default"


def test_merge_config_replaces_roles_and_merges_keys() -> None:
    base = {
        "roles": {"implement": {"primary": "openai/gpt-4o", "fallbacks": ["openai/gpt-4o-mini"]}},
        "task_types": {"a": "implement", "b": "docs"},
        "settings": {"timeout": 5, "budget": {"daily_usd": 3, "session_usd": 1}},
    }
    override = {
        "implement": {"primary": {"provider": "google", "model": "gemini-2.5-pro"}},
        "task_types": {"B": "review"},
        "settings": {"num_retries": 0, "budget": {"daily_usd": 9}},
    }
    merged = merge_config(base, override)
    assert merged["roles"]["implement"] == {
        "primary": {"provider": "google", "model": "gemini-2.5-pro"},
        "fallbacks": [],
    }
    assert merged["task_types"] == {"a": "implement", "b": "review"}
    assert merged["settings"] == {"timeout": 5, "num_retries": 0, "budget": {"daily_usd": 9}}
    assert base["settings"]["budget"] == {"daily_usd": 3, "session_usd": 1}  # not modified


# --- shapes -------------------------------------------------------------------------------


def test_typescript_flat_json_with_google_provider(env: dict[str, Path]) -> None:
    write(
        env["project"] / ".draht/router.json",
        {
            "architect": {
                "primary": {"provider": "anthropic", "model": "claude-opus-4-6"},
                "fallbacks": [{"provider": "google", "model": "gemini-2.5-pro"}],
            },
            "quick": {
                "primary": {"provider": "google", "model": "gemini-2.5-flash"},
                "fallbacks": ["deepseek/deepseek-v3", "google/gemini-2.5-flash-lite"],
            },
        },
    )
    config = load_config()
    assert chain(config, "architect") == ["anthropic/claude-opus-4-6", "gemini/gemini-2.5-pro"]
    assert chain(config, "quick") == [
        "gemini/gemini-2.5-flash",
        "deepseek/deepseek-v3",
        "gemini/gemini-2.5-flash-lite",
    ]
    assert config.role("quick").source == "project"


def test_entry_shapes() -> None:
    config = config_from_dict(
        {
            "roles": {
                "implement": {
                    "primary": "openrouter/anthropic/claude-x",
                    "fallbacks": [
                        "gpt-4o",
                        {
                            "model": "openai/my-local-coder",
                            "api_base": "http://127.0.0.1:8000/v1",
                            "api_key": "os.environ/LOCAL_API_KEY",
                            "input_cost_per_token": 0,
                            "output_cost_per_token": 0,
                        },
                        {"provider": "google", "model": "gemini-2.5-pro", "temperature": 0.2},
                    ],
                },
                "quick": "gemini/gemini-2.5-flash",
                "docs": ["openai/gpt-4o", "anthropic/claude-sonnet-4-6"],
            }
        }
    )
    implement = config.role("implement")
    assert implement.primary == ModelRef("openrouter", "anthropic/claude-x")
    assert implement.fallbacks[0] == ModelRef("openai", "gpt-4o")  # provider from the model map
    local = implement.fallbacks[1]
    assert (local.provider, local.model) == ("openai", "my-local-coder")
    assert local.params["api_key"] == "os.environ/LOCAL_API_KEY"
    assert local.has_own_endpoint and local.has_own_prices
    assert implement.fallbacks[2].provider == "gemini"
    assert implement.fallbacks[2].params == {"temperature": 0.2}
    assert chain(config, "quick") == ["gemini/gemini-2.5-flash"]
    assert chain(config, "docs") == ["openai/gpt-4o", "anthropic/claude-sonnet-4-6"]


def test_env_refs_resolved_only_at_call_time(monkeypatch: pytest.MonkeyPatch) -> None:
    config = config_from_dict(
        {
            "roles": {
                "implement": {
                    "model": "openai/coder",
                    "api_base": "http://localhost:9/v1",
                    "api_key": "os.environ/LOCAL_API_KEY",
                }
            }
        }
    )
    ref = config.role("implement").primary
    monkeypatch.setenv("LOCAL_API_KEY", "sk-test")
    assert ref.call_params()["api_key"] == "sk-test"
    assert ref.params["api_key"] == "os.environ/LOCAL_API_KEY"
    assert config.to_dict()["roles"]["implement"]["primary"]["api_key"] == (
        "os.environ/LOCAL_API_KEY"
    )


def test_unknown_models_allowed_for_open_providers_and_own_endpoints() -> None:
    config = config_from_dict(
        {
            "roles": {
                "implement": [
                    "ollama/my-finetune:7b",
                    "ollama_chat/qwen3-coder",
                    "hosted_vllm/org/model",
                    "lm_studio/whatever",
                    "openrouter/some/model",
                    {"model": "openai/unlisted", "base_url": "http://localhost:1/v1"},
                    {"model": "anthropic/unlisted", "input_cost_per_token": 1e-6},
                ]
            }
        }
    )
    assert len(config.role("implement").chain) == 7


def test_same_model_behind_another_endpoint_is_not_a_duplicate() -> None:
    config = config_from_dict(
        {
            "roles": {
                "implement": [
                    {"model": "openai/coder", "api_base": "http://a/v1"},
                    {"model": "openai/coder", "api_base": "http://b/v1"},
                ]
            }
        }
    )
    assert len(config.role("implement").chain) == 2


# --- validation -----------------------------------------------------------------------------


def test_every_problem_reported_at_once() -> None:
    errors = errors_of(
        {
            "roles": {
                "implement": {
                    "primary": "openai/gpt-4o",
                    "fallbacks": [
                        "anthropic/claude-sonnet-4-6",
                        "opnai/gpt-4o",
                        "/gpt-4o",
                        "openai/",
                        "openai/gpt-4o",
                        "openai/gpt-does-not-exist",
                        42,
                    ],
                },
                "review": {"fallbacks": ["openai/gpt-4o"]},
                "docs": {"primary": "openai/gpt-4o", "fallbacks": "openai/gpt-4o-mini"},
            },
            "task_types": {"migration": "architekt"},
            "settings": {
                "timeout": -5,
                "num_retries": "two",
                "stream_fallback": "sometimes",
                "on_budget": "panic",
                "colour": "blue",
            },
        }
    )
    assert errors == [
        "roles.implement.fallback[1]: unknown provider 'opnai'",
        "roles.implement.fallback[2]: empty provider",
        "roles.implement.fallback[3]: empty model",
        "roles.implement.fallback[4]: duplicate model 'openai/gpt-4o' (already at primary)",
        "roles.implement.fallback[5]: unknown model 'openai/gpt-does-not-exist' "
        "(not in LiteLLM's model map; set api_base or prices for a self-hosted model)",
        "roles.implement.fallback[6]: expected a model string or mapping, got int",
        "roles.review.primary: missing",
        "roles.docs.fallbacks: expected a list, got string",
        "settings.timeout: expected a positive number of seconds, got -5",
        "settings.num_retries: expected a non-negative integer, got 'two'",
        "settings.stream_fallback: expected 'buffer' or 'live', got 'sometimes'",
        "settings.on_budget: expected 'refuse' or 'downgrade', got 'panic'",
        "settings: unknown key 'colour'",
        "task_types.migration: unknown role 'architekt'",
    ]


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"timeout": "60"}, "settings.timeout: expected a positive number of seconds, got '60'"),
        ({"timeout": True}, "settings.timeout: expected a positive number of seconds, got true"),
        ({"cooldown": -1}, "settings.cooldown: expected a non-negative number of seconds, got -1"),
        (
            {"cooldown_failures": 0},
            "settings.cooldown_failures: expected a positive integer, got 0",
        ),
        (
            {"fallback_on_auth_error": "yes"},
            "settings.fallback_on_auth_error: expected true or false, got 'yes'",
        ),
        ({"budget": 5}, "settings.budget: expected a mapping, got int"),
        ({"budget": {"weekly_usd": 1}}, "settings.budget: unknown key 'weekly_usd'"),
        (
            {"budget": {"role_daily_usd": {"nope": 1}}},
            "settings.budget.role_daily_usd: unknown role 'nope'",
        ),
    ],
)
def test_bad_settings(settings: dict, message: str) -> None:
    assert errors_of({"settings": settings}) == [message]


def test_valid_settings_are_typed() -> None:
    config = config_from_dict(
        {
            "settings": {
                "timeout": 20,
                "first_token_timeout": 5,
                "stream_idle_timeout": None,
                "stream_fallback": "live",
                "on_budget": "downgrade",
                "fallback_on_auth_error": True,
                "budget": {"session_usd": 2, "daily_usd": 10, "role_daily_usd": {"review": 1}},
                "batch_output_tokens": 512,
            }
        }
    )
    settings = config.settings
    assert settings.timeout == 20.0 and isinstance(settings.timeout, float)
    assert settings.first_token_timeout == 5.0
    assert settings.stream_fallback == "live"
    assert settings.on_budget == "downgrade"
    assert settings.budget == BudgetSettings(2.0, 10.0, {"review": 1.0})
    assert settings.batch_output_tokens == 512


def test_wrong_top_level_and_role_types() -> None:
    errors = errors_of({"roles": {"implement": 3, "docs": []}, "extra": 1})
    assert errors == [
        "unknown top-level key 'extra' (expected roles, task_types, settings)",
        "roles.implement: expected a mapping, list or model string, got int",
        "roles.docs: empty chain",
    ]
    assert errors_of({"roles": ["implement"]}) == ["roles: expected a mapping, got list"]
    assert errors_of({"roles": {"docs": {"primary": "openai/gpt-4o", "fallback": []}}}) == [
        "roles.docs: unknown key 'fallback' (expected primary, fallbacks)"
    ]


def test_bare_model_unknown_to_the_map() -> None:
    assert errors_of({"roles": {"docs": "my-model"}}) == [
        "roles.docs.primary: model 'my-model' has no provider and is not in LiteLLM's model "
        "map; write it as provider/model"
    ]


def test_file_errors_name_the_file(env: dict[str, Path]) -> None:
    project_file = write(env["project"] / ".draht/router.yaml", {"roles": {"docs": "opnai/gpt-4o"}})
    with pytest.raises(ConfigValidationError) as info:
        load_config()
    assert info.value.path == str(project_file)
    assert info.value.errors == ["roles.docs.primary: unknown provider 'opnai'"]
    assert str(project_file) in str(info.value)


def test_errors_from_two_files_are_prefixed(env: dict[str, Path]) -> None:
    global_file = write(env["home"] / ".draht/router.yaml", {"settings": {"timeout": 0}})
    project_file = write(env["project"] / ".draht/router.yaml", {"task_types": {"x": "nowhere"}})
    with pytest.raises(ConfigValidationError) as info:
        load_config()
    assert info.value.path is None
    assert info.value.errors == [
        f"{global_file}: settings.timeout: expected a positive number of seconds, got 0",
        f"{project_file}: task_types.x: unknown role 'nowhere'",
    ]


def test_task_types_may_point_at_a_role_from_another_file(env: dict[str, Path]) -> None:
    write(env["home"] / ".draht/router.yaml", {"roles": {"security": "openai/gpt-4o"}})
    write(env["project"] / ".draht/router.yaml", {"task_types": {"Pentest": "security"}})
    assert load_config().task_types == {"pentest": "security"}


def test_yaml_syntax_error_names_file_and_line(env: dict[str, Path]) -> None:
    bad = write(
        env["project"] / ".draht/router.yaml",
        "roles:\n  implement:\n    primary: openai/gpt-4o\n    fallbacks: [a, b\nsettings: {}\n",
    )
    with pytest.raises(ConfigError) as info:
        load_config()
    assert not isinstance(info.value, ConfigValidationError)
    assert info.value.path == str(bad)
    assert info.value.line is not None and info.value.line >= 4
    assert str(info.value).startswith(f"{bad}:{info.value.line}: YAML syntax error: ")


def test_yaml_syntax_error_does_not_echo_the_line(tmp_path: Path) -> None:
    bad = write(tmp_path / "router.yaml", "roles:\n  api_key: sk-secret: [\n")
    with pytest.raises(ConfigError) as info:
        read_config_file(bad)
    assert "sk-secret" not in str(info.value)


def test_json_syntax_error_names_file_and_line(tmp_path: Path) -> None:
    bad = write(tmp_path / "router.json", '{\n  "docs": {\n    "primary": ,\n  }\n}\n')
    with pytest.raises(ConfigError) as info:
        read_config_file(bad)
    assert info.value.line == 3
    assert str(info.value).startswith(f"{bad}:3: JSON syntax error: ")


def test_read_config_file_normalizes(tmp_path: Path) -> None:
    assert read_config_file(write(tmp_path / "empty.yaml", "")) == {
        "roles": {},
        "task_types": {},
        "settings": {},
    }
    flat = write(tmp_path / "router.json", {"docs": "openai/gpt-4o"})
    assert read_config_file(flat)["roles"] == {
        "docs": {"primary": "openai/gpt-4o", "fallbacks": []}
    }
    with pytest.raises(ConfigValidationError, match="expected a mapping"):
        read_config_file(write(tmp_path / "list.yaml", "- a\n- b\n"))


def test_validate_config_accepts_dict_and_router_config() -> None:
    config = validate_config({"roles": {"docs": "openai/gpt-4o"}})
    assert config.role("docs").source == "dict"
    assert validate_config(config).role("docs").source == "dict"
    broken = RouterConfig(
        roles={"docs": RoleConfig("docs", ModelRef("opnai", "gpt-4o"), source="project")}
    )
    with pytest.raises(ConfigValidationError) as info:
        validate_config(broken)
    assert "roles.docs.primary: unknown provider 'opnai'" in info.value.errors
    assert "roles.implement: built-in role missing" in info.value.errors


def test_to_dict_round_trip() -> None:
    config = config_from_dict(
        {
            "roles": {
                "implement": [
                    "openrouter/anthropic/claude-x",
                    {"provider": "google", "model": "gemini-2.5-pro", "api_key": "os.environ/K"},
                ]
            },
            "task_types": {"migration": "architect"},
            "settings": {"timeout": 12},
        }
    )
    again = config_from_dict(config.to_dict())
    # every role now comes from the dict, so compare chains rather than sources
    assert {n: r.chain for n, r in again.roles.items()} == {
        n: r.chain for n, r in config.roles.items()
    }
    assert again.task_types == config.task_types
    assert again.settings == config.settings


# --- saving ---------------------------------------------------------------------------------


def test_save_project_round_trip_keeps_env_refs(
    env: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LOCAL_API_KEY", "sk-must-not-be-written")
    data = {
        "roles": {
            "implement": {
                "primary": "anthropic/claude-sonnet-4-6",
                "fallbacks": [
                    {"provider": "google", "model": "gemini-2.5-pro"},
                    {
                        "model": "openai/my-local-coder",
                        "api_base": "http://127.0.0.1:8000/v1",
                        "api_key": "os.environ/LOCAL_API_KEY",
                        "input_cost_per_token": 0,
                        "output_cost_per_token": 0,
                    },
                ],
            }
        },
        "task_types": {"Migration": "architect"},
        "settings": {"timeout": 45},
    }
    path = save_config(data)
    assert path == env["project"] / ".draht" / "router.yaml"
    text = path.read_text(encoding="utf-8")
    assert "os.environ/LOCAL_API_KEY" in text
    assert "sk-must-not-be-written" not in text
    assert yaml.safe_load(text) == {
        "roles": {
            "implement": {
                "primary": "anthropic/claude-sonnet-4-6",
                "fallbacks": [
                    "gemini/gemini-2.5-pro",
                    {
                        "model": "openai/my-local-coder",
                        "api_base": "http://127.0.0.1:8000/v1",
                        "api_key": "os.environ/LOCAL_API_KEY",
                        "input_cost_per_token": 0,
                        "output_cost_per_token": 0,
                    },
                ],
            }
        },
        "task_types": {"migration": "architect"},
        "settings": {"timeout": 45},
    }
    config = load_config()
    assert config.role("implement").source == "project"
    assert config.role("implement").fallbacks[1].params["api_key"] == "os.environ/LOCAL_API_KEY"
    assert config.settings.timeout == 45.0
    assert [p.name for p in path.parent.iterdir()] == ["router.yaml"]  # no temp files left


def test_save_router_config_and_global_scope(env: dict[str, Path]) -> None:
    config = config_from_dict({"roles": {"docs": "openai/gpt-4o"}})
    path = save_config(config, scope="global")
    assert path == env["home"] / ".draht" / "router.yaml"
    saved = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert set(saved["roles"]) == set(BUILT_IN_ROLES)
    assert saved["roles"]["docs"] == {"primary": "openai/gpt-4o", "fallbacks": []}
    assert load_config().role("docs").source == "global"


def test_save_validates_first_and_leaves_old_file(env: dict[str, Path]) -> None:
    path = save_config({"roles": {"docs": "openai/gpt-4o"}})
    before = path.read_bytes()
    with pytest.raises(ConfigValidationError):
        save_config({"roles": {"docs": "opnai/gpt-4o"}})
    assert path.read_bytes() == before
    assert sorted(os.listdir(path.parent)) == ["router.yaml"]


def test_save_keeps_file_mode_and_cleans_up_on_failure(
    env: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    path = save_config({"roles": {"docs": "openai/gpt-4o"}})
    path.chmod(0o640)
    save_config({"roles": {"docs": "openai/gpt-4o-mini"}})
    assert path.stat().st_mode & 0o777 == 0o640

    def broken_replace(src: str, dst: str) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OSError, match="disk full"):
        save_config({"roles": {"docs": "openai/gpt-4o"}})
    assert sorted(os.listdir(path.parent)) == ["router.yaml"]
    assert "gpt-4o-mini" in path.read_text(encoding="utf-8")


def test_save_rejects_unknown_scope(env: dict[str, Path]) -> None:
    with pytest.raises(ValueError, match="scope"):
        save_config({}, scope="team")  # type: ignore[arg-type]


# --- path safety ----------------------------------------------------------------------------


@pytest.mark.parametrize("root", ["../../x", "../outside", "sub/../../x"])
def test_relative_root_escaping_cwd_is_refused(env: dict[str, Path], root: str) -> None:
    with pytest.raises(UnsafePathError):
        load_config(root)
    with pytest.raises(UnsafePathError):
        save_config({}, project_root=root)


def test_system_paths_are_refused(env: dict[str, Path]) -> None:
    for root in ("/etc", "/usr/lib", "/"):
        with pytest.raises(UnsafePathError):
            load_config(root)
    with pytest.raises(UnsafePathError):
        config_paths("/etc")


def test_symlink_out_of_cwd_is_refused(env: dict[str, Path]) -> None:
    (env["project"] / "link").symlink_to("/etc")
    with pytest.raises(UnsafePathError):
        load_config("link")


def test_allowed_roots(env: dict[str, Path]) -> None:
    (env["project"] / "sub").mkdir()
    assert load_config("sub").sources == []
    assert load_config(".").sources == []
    assert load_config(env["home"] / "code").sources == []  # inside home
    assert load_config(env["tmp"] / "anywhere").sources == []  # inside the temp dir
