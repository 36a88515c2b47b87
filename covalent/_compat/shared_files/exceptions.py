"""``covalent._shared_files.exceptions``: the exceptions Covalent's plugins raise."""

from __future__ import annotations

from covalent._errors import CovalentError
from covalent._workflow.transfer import FileTransferError


class TaskCancelledError(CovalentError):
    """A plugin found its task cancelled (raised from its ``run``)."""


class TaskRuntimeError(CovalentError):
    """A plugin's task failed on its backend (raised from its ``run``)."""


class TaskInvalidStateError(CovalentError):
    """A task was found in a state it cannot be in."""


FileTransferFailedException = FileTransferError

__all__ = [
    "FileTransferFailedException",
    "TaskCancelledError",
    "TaskInvalidStateError",
    "TaskRuntimeError",
]
