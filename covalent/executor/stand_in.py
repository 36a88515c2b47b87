"""``WorkerExecutor``: the server's stand-in for a run executor.

The server never makes (nor imports, for a class that came by value) the executor a
user chose when that executor implements ``run``: it keeps this stand-in, which sends
each task with the executor's spec (class, settings, and the class's blob if it came
by value) to a local worker process. The worker rebuilds the chosen executor there and
calls its ``setup(task_metadata)``, ``run`` and ``teardown(task_metadata)``.
"""

from __future__ import annotations

from typing import Any

from covalent.executor.base import BaseExecutor


class WorkerExecutor(BaseExecutor):
    """Runs a run executor's tasks in local worker processes, from its ``spec``
    (``{"name", "class", "attributes", "class_blob"}`` as a manifest names it)."""

    def __init__(self, spec: dict[str, Any]) -> None:  # no settings of its own
        kept = ("name", "class", "attributes", "class_blob", "blobs")
        self._spec = {k: spec[k] for k in kept if k in spec}

    def short_name(self) -> str:
        return str(self._spec.get("name", ""))

    def to_dict(self) -> dict[str, Any]:
        attributes = dict(self._spec.get("attributes") or {})
        return {
            "type": self._spec.get("class", ""),
            "short_name": self.short_name(),
            "attributes": attributes,
        }

    def worker_plugin(self) -> dict[str, Any]:
        return dict(self._spec)

    def __repr__(self) -> str:
        return f"WorkerExecutor({self._spec.get('class') or self.short_name()})"
