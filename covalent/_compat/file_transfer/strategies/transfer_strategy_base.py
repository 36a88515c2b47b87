"""``covalent._file_transfer.strategies.transfer_strategy_base``: ``FileTransferStrategy``."""

from __future__ import annotations

from covalent._workflow.strategies import FileTransferStrategy

__all__ = ["FileTransferStrategy"]
