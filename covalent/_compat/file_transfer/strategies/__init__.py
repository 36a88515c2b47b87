"""``covalent._file_transfer.strategies``: how a file transfer moves its file."""

from __future__ import annotations

from covalent._compat.file_transfer.strategies import (
    http_strategy,
    rsync_strategy,
    shutil_strategy,
    transfer_strategy_base,
)
from covalent._workflow.strategies import HTTP, FileTransferStrategy, Rsync, Shutil

__all__ = [
    "HTTP",
    "FileTransferStrategy",
    "Rsync",
    "Shutil",
    "http_strategy",
    "rsync_strategy",
    "shutil_strategy",
    "transfer_strategy_base",
]
