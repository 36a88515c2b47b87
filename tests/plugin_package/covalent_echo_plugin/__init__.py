"""Example covalent executor plugins, one module each (the module's name is the short name).

- ``echo``: :class:`~covalent_echo_plugin.echo.EchoExecutor`, a synchronous ``run``;
- ``async_echo``: :class:`~covalent_echo_plugin.async_echo.AsyncEchoExecutor`, an
  ``async`` ``run``.

Both run the electron where ``run`` is called and, given ``record_dir``, leave a JSON
note per task there (see :func:`record`), so that tests can see where and how it ran.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any


def record(record_dir: str, label: str, function_name: str, task_metadata: dict[str, Any]) -> None:
    """Write ``<record_dir>/<dispatch_id>-<node_id>.json``: who ran which task, in which process."""
    folder = Path(record_dir).expanduser()
    folder.mkdir(parents=True, exist_ok=True)
    note = {
        "label": label,
        "function": function_name,
        "pid": os.getpid(),
        "task_metadata": task_metadata,
    }
    name = f"{task_metadata['dispatch_id']}-{task_metadata['node_id']}.json"
    (folder / name).write_text(json.dumps(note))
