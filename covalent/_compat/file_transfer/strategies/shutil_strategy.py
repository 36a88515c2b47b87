"""``covalent._file_transfer.strategies.shutil_strategy``: ``Shutil``."""

from __future__ import annotations

from covalent._workflow.strategies import Shutil

__all__ = ["Shutil"]
