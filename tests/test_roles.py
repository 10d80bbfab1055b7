"""Task type and free-text routing to roles."""

from __future__ import annotations

import dataclasses

import pytest

from draht_router.config import BUILT_IN_ROLES
from draht_router.roles import TASK_TYPES, RoleChoice, explain_role, role_for_task

TABLE = {
    "planning": "architect",
    "architecture": "architect",
    "design": "architect",
    "implementation": "implement",
    "coding": "implement",
    "feature": "implement",
    "bugfix": "implement",
    "scaffold": "boilerplate",
    "boilerplate": "boilerplate",
    "crud": "boilerplate",
    "template": "boilerplate",
    "question": "quick",
    "quick": "quick",
    "explain": "quick",
    "review": "review",
    "pr-review": "review",
    "code-review": "review",
    "documentation": "docs",
    "readme": "docs",
    "comments": "docs",
}


@pytest.mark.parametrize(("task_type", "role"), sorted(TABLE.items()))
def test_every_table_entry(task_type: str, role: str) -> None:
    assert TASK_TYPES[task_type] == role
    assert role_for_task(task_type) == role
    choice = explain_role(task_type)
    assert choice == RoleChoice(role, f"task type '{task_type}' maps to {role}", task_type)


@pytest.mark.parametrize("text", ["CODING", "  Coding  ", "Pr-Review"])
def test_task_types_are_case_insensitive_and_stripped(text: str) -> None:
    assert role_for_task(text) == TABLE[text.strip().lower()]


@pytest.mark.parametrize("role", BUILT_IN_ROLES)
def test_built_in_role_names_map_to_themselves(role: str) -> None:
    assert role_for_task(role) == role
    assert role_for_task(role.upper()) == role


def test_config_task_types_extend_and_override() -> None:
    task_types = {"Migration": "architect", "coding": "boilerplate", "pentest": "security"}
    assert role_for_task("migration", task_types) == "architect"
    assert role_for_task("MIGRATION", task_types) == "architect"
    assert role_for_task("coding", task_types) == "boilerplate"
    assert role_for_task("pentest", task_types) == "security"
    # a role named in task_types values maps to itself
    assert explain_role("security", task_types) == RoleChoice(
        "security", "task type 'security' maps to security", "security"
    )
    # untouched entries still come from the table
    assert role_for_task("readme", task_types) == "docs"


def test_extra_roles_map_to_themselves() -> None:
    assert role_for_task("security", roles=["security"]) == "security"
    # without the roles argument, "security" is free text with no keyword
    assert role_for_task("security") == "implement"


@pytest.mark.parametrize(
    ("text", "role", "keyword"),
    [
        ("Design the plugin system", "architect", "design"),
        ("plan the database migration", "architect", "plan"),
        ("we need an architect view of auth", "architect", "architect"),
        ("please review my diff", "review", "review"),
        ("check the tests for flakiness", "review", "check"),
        ("audit dependencies", "review", "audit"),
        ("document the public API", "docs", "document"),
        ("update the README", "docs", "readme"),
        ("add a comment to parse()", "docs", "comment"),
        ("scaffold a new service", "boilerplate", "scaffold"),
        ("CRUD endpoints for users", "boilerplate", "crud"),
        ("write a template for emails", "boilerplate", "template"),
        ("what does this regex do?", "quick", "what"),
        ("How do I rebase", "quick", "how"),
        ("why is CI red", "quick", "why"),
        ("explain the retry loop", "quick", "explain"),
    ],
)
def test_free_text_keywords(text: str, role: str, keyword: str) -> None:
    choice = explain_role(text)
    assert choice.role == role
    assert choice.matched == keyword
    assert choice.reason == f"free text: keyword '{keyword}' suggests {role}"


def test_free_text_groups_are_checked_in_order() -> None:
    # architect beats review, review beats docs, docs beat boilerplate, boilerplate beats quick
    assert role_for_task("review the design") == "architect"
    assert role_for_task("check the readme") == "review"
    assert role_for_task("document the crud layer") == "docs"
    assert role_for_task("how to scaffold this") == "boilerplate"


def test_free_text_without_keyword_defaults_to_implement() -> None:
    choice = explain_role("add retries to the HTTP client")
    assert choice == RoleChoice(
        "implement", "free text: no keyword matched; defaulting to implement", None
    )


@pytest.mark.parametrize(
    "text",
    [
        "land the planet renderer",  # plan
        "fix checkout flow",  # check
        "rename documentation_url field",  # document (underscore is a word character)
        "reviewer assignment bot",  # review
        "add plans endpoint",  # plural is not the keyword
        "templates folder cleanup",  # plural
        "somehow broken",  # how
        "whatever",  # what
    ],
)
def test_keywords_match_whole_words_only(text: str) -> None:
    assert role_for_task(text) == "implement"


def test_keywords_match_next_to_punctuation() -> None:
    assert role_for_task("(review) this: now") == "review"
    assert role_for_task("re-design the API") == "architect"


@pytest.mark.parametrize("text", ["", "   ", "\n\t"])
def test_empty_text_defaults_to_implement(text: str) -> None:
    choice = explain_role(text)
    assert choice.role == "implement"
    assert choice.matched is None
    assert "defaulting to implement" in choice.reason


def test_role_choice_is_frozen() -> None:
    choice = explain_role("coding")
    with pytest.raises(dataclasses.FrozenInstanceError):
        choice.role = "docs"  # type: ignore[misc]
