"""The executor interface: what a plugin implements, and what the dispatcher calls.

Plugin authors subclass :class:`BaseExecutor` (a synchronous ``run``) or
:class:`AsyncBaseExecutor` (an ``async`` ``run``); ``run`` gets the electron's function
and its deserialized arguments. Public attributes set in ``__init__`` are the executor's
settings: they travel as JSON and the server rebuilds the executor from its class with
them (``cls(**attributes)``).

The dispatcher talks to executors through :meth:`BaseExecutor.execute`, which takes a
:class:`Task` (blob digests, never unpickled values: the server does not unpickle user
data) and returns an :class:`Outcome`. Built-in executors implement ``execute``
directly; the default runs ``run`` in a worker process.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from covalent._results.status import Status


@dataclass
class Task:
    """One node to run: its function and inputs as blob digests, and where it belongs."""

    dispatch_id: str
    node_id: int
    name: str
    function: str
    args: list[str]
    kwargs: dict[str, str]
    load_blob: Callable[[str], bytes]
    results_dir: str = ""
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> tuple[str, int]:
        return (self.dispatch_id, self.node_id)

    def task_metadata(self) -> dict[str, Any]:
        return {
            "dispatch_id": self.dispatch_id,
            "node_id": self.node_id,
            "results_dir": self.results_dir,
        }


@dataclass
class Outcome:
    """What became of a task: its pickled output, or its error with the traceback."""

    status: Status
    output: bytes | None = None
    output_repr: str = ""
    error: str = ""
    stdout: str = ""
    stderr: str = ""
    start_time: float = field(default_factory=time.time)
    end_time: float = field(default_factory=time.time)

    @classmethod
    def failure(cls, error: str, start_time: float | None = None) -> Outcome:
        now = time.time()
        return cls(Status.FAILED, error=error, start_time=start_time or now, end_time=now)


class BaseExecutor:
    """Base class of every executor; subclass it and implement :meth:`run`."""

    _plugin_short_name: str | None = None

    def short_name(self) -> str:
        """The plugin's short name: the name of the module that defines the class."""
        return self._plugin_short_name or type(self).__module__.rsplit(".", 1)[-1]

    def to_dict(self) -> dict[str, Any]:
        """The executor's settings: its public attributes."""
        return {k: v for k, v in vars(self).items() if not k.startswith("_")}

    def run(
        self,
        function: Callable[..., Any],
        args: list[Any],
        kwargs: dict[str, Any],
        task_metadata: dict[str, Any],
    ) -> Any:
        """Run ``function(*args, **kwargs)`` and return its result (plugins implement this)."""
        raise NotImplementedError(f"{type(self).__name__} does not implement run().")

    async def setup(self) -> None:
        """Prepare resources before the first task (optional)."""

    async def teardown(self) -> None:
        """Release resources when the server stops (optional)."""

    async def cancel(self, task: Task) -> bool:
        """Stop a running task; return whether it was stopped (optional)."""
        return False

    async def execute(self, task: Task) -> Outcome:
        """Run one task for the dispatcher; built-in executors override this."""
        return Outcome.failure(
            f"{type(self).__name__} cannot run tasks on this server yet: running plugin "
            "executors' run() on the server is not built yet."
        )

    def __repr__(self) -> str:
        settings = ", ".join(f"{k}={v!r}" for k, v in self.to_dict().items())
        return f"{type(self).__name__}({settings})"


class AsyncBaseExecutor(BaseExecutor):
    """Base class of executors whose ``run`` is a coroutine."""

    async def run(
        self,
        function: Callable[..., Any],
        args: list[Any],
        kwargs: dict[str, Any],
        task_metadata: dict[str, Any],
    ) -> Any:
        raise NotImplementedError(f"{type(self).__name__} does not implement run().")
