"""``EchoExecutor``: the smallest useful executor plugin, with a synchronous ``run``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from covalent.executor import BaseExecutor
from covalent_echo_plugin import record

EXECUTOR_PLUGIN_NAME = "EchoExecutor"

# Every setting, with its default: the base of config section [executors.echo].
_EXECUTOR_PLUGIN_DEFAULTS: dict[str, Any] = {
    "label": "echo",
    "record_dir": "",
}


class EchoExecutor(BaseExecutor):
    """Run the electron in the worker process that calls ``run``; note each task.

    Args:
        label: a name written into each note.
        record_dir: folder for one JSON note per task (empty: no notes).
    """

    def __init__(self, label: str = "echo", record_dir: str = "") -> None:
        # Public attributes are the settings: they travel as JSON, and the executor is
        # rebuilt on the far side with EchoExecutor(**attributes).
        self.label = str(label)
        self.record_dir = str(record_dir)

    def run(
        self,
        function: Callable[..., Any],
        args: list[Any],
        kwargs: dict[str, Any],
        task_metadata: dict[str, Any],
    ) -> Any:
        result = function(*args, **kwargs)
        if self.record_dir:
            record(self.record_dir, self.label, function.__name__, task_metadata)
        return result
