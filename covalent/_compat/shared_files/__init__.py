"""``covalent._shared_files``: Covalent's shared helpers (config, logger, exceptions)."""

from __future__ import annotations

from covalent._compat.shared_files import config, defaults, exceptions, logger, util_classes
from covalent._compat.shared_files.exceptions import TaskCancelledError, TaskRuntimeError

__all__ = [
    "TaskCancelledError",
    "TaskRuntimeError",
    "config",
    "defaults",
    "exceptions",
    "logger",
    "util_classes",
]
