"""``AsyncEchoExecutor``: the same as ``EchoExecutor``, with an ``async`` ``run``."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from covalent.executor import AsyncBaseExecutor
from covalent_echo_plugin import record

EXECUTOR_PLUGIN_NAME = "AsyncEchoExecutor"

_EXECUTOR_PLUGIN_DEFAULTS: dict[str, Any] = {
    "label": "async_echo",
    "record_dir": "",
}


class AsyncEchoExecutor(AsyncBaseExecutor):
    """Run the electron from a coroutine; note each task.

    Args:
        label: a name written into each note.
        record_dir: folder for one JSON note per task (empty: no notes).
    """

    def __init__(self, label: str = "async_echo", record_dir: str = "") -> None:
        self.label = str(label)
        self.record_dir = str(record_dir)

    async def run(
        self,
        function: Callable[..., Any],
        args: list[Any],
        kwargs: dict[str, Any],
        task_metadata: dict[str, Any],
    ) -> Any:
        await asyncio.sleep(0)  # a real plugin awaits its remote service here
        result = function(*args, **kwargs)
        if self.record_dir:
            record(self.record_dir, self.label, function.__name__, task_metadata)
        return result
