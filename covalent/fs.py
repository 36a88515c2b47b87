"""``ct.fs``: file transfers an electron's executor runs before or after the electron.

See docs/file-transfers.md. Strategies are in :mod:`covalent.fs_strategies`.
"""

from __future__ import annotations

from covalent._workflow.strategies import File
from covalent._workflow.transfer import (
    FileTransfer,
    FileTransferError,
    Order,
    TransferFromRemote,
    TransferToRemote,
)

__all__ = [
    "File",
    "FileTransfer",
    "FileTransferError",
    "Order",
    "TransferFromRemote",
    "TransferToRemote",
]
