"""The coding-agent extension: role routing for an agent session.

Registered under the ``draht.extensions`` entry-point group as ``model-router``; a host
loads it with::

    from importlib.metadata import entry_points
    (ep,) = entry_points(group="draht.extensions", name="model-router")
    ext = ep.load()(session_id="abc123")
    ext.on_session_start()
    ref = ext.select_model("pr-review")          # ModelRef of the review role's primary
    text = ext.commands["router.cost"](current=True)

Loading the config and choosing models never imports LiteLLM; only :meth:`get_router`
(the first model call) does.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING

from .config import ModelRef, RouterConfig, load_config
from .report import cost_text, show_text
from .roles import RoleChoice, explain_role

if TYPE_CHECKING:  # pragma: no cover - the router module imports LiteLLM
    from .router import ModelRouter

__all__ = ["RouterExtension", "create_router_extension"]


class RouterExtension:
    """Picks models by role for one agent session and exposes ``router.*`` commands.

    ``commands`` maps a command name to a callable returning the text the matching CLI
    command prints when piped:

    * ``router.show(json_output=False)``: like ``draht-router show``, for this session's
      config.
    * ``router.cost(role=None, session=None, current=False, by="role", since=None,
      until=None, log=None, json_output=False)``: like ``draht-router cost``;
      ``current=True`` means this session (its ``session_id``, else the id the router
      logs under: ``$DRAHT_SESSION_ID`` or the process's own).
    """

    name = "model-router"
    description = (
        "Routes each task to a role's model chain (architect, implement, review, ...) with "
        "fall-over, and reports spend from the cost log."
    )

    def __init__(
        self,
        session_id: str | None = None,
        *,
        project_root: str | os.PathLike[str] | None = None,
    ):
        self.session_id = session_id
        self.project_root = project_root
        self._config: RouterConfig | None = None
        self._router: ModelRouter | None = None
        self.commands: Mapping[str, Callable[..., str]] = MappingProxyType(
            {"router.show": self._show_command, "router.cost": self._cost_command}
        )

    # ------------------------------------------------------------------ lifecycle
    def on_session_start(self) -> None:
        """Load (or reload) the config; the router is built on first :meth:`get_router`."""
        self._config = load_config(self.project_root)
        self._router = None

    @property
    def config(self) -> RouterConfig:
        """The session's config (loaded now if :meth:`on_session_start` was not called)."""
        if self._config is None:
            self.on_session_start()
        assert self._config is not None
        return self._config

    def get_router(self) -> ModelRouter:
        """The session's :class:`~draht_router.router.ModelRouter` (imports LiteLLM once)."""
        if self._router is None:
            from .router import ModelRouter

            self._router = ModelRouter(self.config, session_id=self.session_id)
        return self._router

    # ------------------------------------------------------------------ selection
    def explain(self, task_type_or_description: str) -> RoleChoice:
        """The role a task type or free-text description maps to, and why."""
        config = self.config
        return explain_role(task_type_or_description, config.task_types, roles=config.roles)

    def select_model(self, task_type_or_description: str) -> ModelRef:
        """The primary model of the role the task maps to."""
        return self.config.role(self.explain(task_type_or_description).role).primary

    def select_model_with_fallbacks(self, task_type_or_description: str) -> list[ModelRef]:
        """The whole chain (primary first) of the role the task maps to."""
        return self.config.role(self.explain(task_type_or_description).role).chain

    def should_fallback(self, exc: BaseException) -> bool:
        """Whether another attempt may succeed after ``exc`` (429, 5xx, timeouts, broken
        streams), by the router's error policy; False for 400/401/403/404."""
        from .policy import is_retryable_error

        return is_retryable_error(exc)

    # ------------------------------------------------------------------ commands
    def _show_command(self, *, json_output: bool = False) -> str:
        return show_text(self.config, project_root=self.project_root, json_output=json_output)

    def _cost_command(
        self,
        *,
        role: str | None = None,
        session: str | None = None,
        current: bool = False,
        by: str = "role",
        since: str | None = None,
        until: str | None = None,
        log: str | os.PathLike[str] | None = None,
        json_output: bool = False,
    ) -> str:
        if current:
            from .callbacks import process_session_id

            # The id the router logs this session's calls under.
            session = self.session_id or process_session_id()
        return cost_text(
            log,
            role=role,
            session=session,
            by=by,
            since=since,
            until=until,
            json_output=json_output,
            config=self.config,
        )

    def __repr__(self) -> str:
        return f"RouterExtension(session_id={self.session_id!r})"


def create_router_extension(
    session_id: str | None = None,
    *,
    project_root: str | os.PathLike[str] | None = None,
) -> RouterExtension:
    """The extension for one agent session (the ``draht.extensions`` entry point)."""
    return RouterExtension(session_id, project_root=project_root)
