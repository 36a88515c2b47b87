"""``covalent._file_transfer``: file transfers (``ct.fs``) by Covalent's module paths."""

from __future__ import annotations

from covalent._compat.file_transfer import enums, file_transfer, strategies
from covalent._workflow.strategies import File
from covalent._workflow.transfer import (
    FileTransfer,
    Order,
    TransferFromRemote,
    TransferToRemote,
)

__all__ = [
    "File",
    "FileTransfer",
    "Order",
    "TransferFromRemote",
    "TransferToRemote",
    "enums",
    "file_transfer",
    "strategies",
]
