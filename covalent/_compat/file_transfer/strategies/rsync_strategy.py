"""``covalent._file_transfer.strategies.rsync_strategy``: ``Rsync``."""

from __future__ import annotations

from covalent._workflow.strategies import Rsync

__all__ = ["Rsync"]
