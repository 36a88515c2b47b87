"""``covalent._file_transfer.file_transfer``: ``FileTransfer`` and its two shorthands."""

from __future__ import annotations

from covalent._workflow.transfer import FileTransfer, TransferFromRemote, TransferToRemote

__all__ = ["FileTransfer", "TransferFromRemote", "TransferToRemote"]
