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
