"""Which role a task goes to: a task type looked up in a table, or keywords in free text."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from draht_router.config import BUILT_IN_ROLES

DEFAULT_ROLE = "implement"

# Task type -> role. Keys are lower case; lookups lower-case and strip the text first.
TASK_TYPES: dict[str, str] = {
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
    # every built-in role name also selects itself
    **{role: role for role in BUILT_IN_ROLES},
}

# Free-text keywords, checked group by group in this order; the first group with a match wins.
# Keywords match whole words only (regex ``\b`` boundaries, case-insensitive) and exactly as
# listed: "planet" does not match "plan", "checkout" does not match "check", and plurals such as
# "plans" or "reviews" do not match either.
FREE_TEXT_KEYWORDS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("architect", ("architect", "design", "plan")),
    ("review", ("review", "check", "audit")),
    ("docs", ("document", "readme", "comment")),
    ("boilerplate", ("scaffold", "boilerplate", "crud", "template")),
    ("quick", ("what", "how", "why", "explain")),
)

_KEYWORD_PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = tuple(
    (role, re.compile(r"\b(" + "|".join(map(re.escape, words)) + r")\b"))
    for role, words in FREE_TEXT_KEYWORDS
)


@dataclass(frozen=True)
class RoleChoice:
    """The role chosen for a task, why, and the task type or keyword that decided it."""

    role: str
    reason: str
    matched: str | None = None


def explain_role(
    text: str,
    task_types: Mapping[str, str] | None = None,
    *,
    roles: Iterable[str] | None = None,
) -> RoleChoice:
    """The role for ``text`` (a task type or a free-text description) with the reason.

    Exact task types are tried first: the config's ``task_types`` (which override the built-in
    table), then role names (built-in roles, the roles that ``task_types`` maps to, and
    ``roles``), then :data:`TASK_TYPES`. Any other text is matched against
    :data:`FREE_TEXT_KEYWORDS`; with no match, or empty text, the role is ``implement``.
    """
    key = text.strip().lower()
    if not key:
        return RoleChoice(DEFAULT_ROLE, f"empty task description; defaulting to {DEFAULT_ROLE}")

    overrides = {k.strip().lower(): v for k, v in (task_types or {}).items()}
    role_names = {*BUILT_IN_ROLES, *overrides.values(), *(roles or ())}
    by_role_name = {name.lower(): name for name in role_names}

    role = overrides.get(key) or by_role_name.get(key) or TASK_TYPES.get(key)
    if role is not None:
        return RoleChoice(role, f"task type '{key}' maps to {role}", key)

    for role, pattern in _KEYWORD_PATTERNS:
        match = pattern.search(key)
        if match:
            word = match.group(1)
            return RoleChoice(role, f"free text: keyword '{word}' suggests {role}", word)
    return RoleChoice(DEFAULT_ROLE, f"free text: no keyword matched; defaulting to {DEFAULT_ROLE}")


def role_for_task(
    text: str,
    task_types: Mapping[str, str] | None = None,
    *,
    roles: Iterable[str] | None = None,
) -> str:
    """The role for ``text``; see :func:`explain_role` for the rules."""
    return explain_role(text, task_types, roles=roles).role
