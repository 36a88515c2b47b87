"""``ct.get_context()``: where the running electron is (dispatch id, node id)."""

from __future__ import annotations

import contextvars
from dataclasses import dataclass


@dataclass(frozen=True)
class TaskContext:
    """What an electron can learn about itself while it runs."""

    dispatch_id: str | None = None
    node_id: int | None = None
    node_name: str | None = None
    results_dir: str | None = None


_task_context: contextvars.ContextVar[TaskContext] = contextvars.ContextVar(
    "covalent_task_context",
    default=TaskContext(),  # noqa: B039 - frozen, so immutable
)


def get_context() -> TaskContext:
    """The running electron's context; all fields are None outside an electron."""
    return _task_context.get()


def set_context(context: TaskContext) -> contextvars.Token[TaskContext]:
    return _task_context.set(context)


def reset_context(token: contextvars.Token[TaskContext]) -> None:
    _task_context.reset(token)
