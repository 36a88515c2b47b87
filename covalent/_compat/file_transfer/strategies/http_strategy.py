"""``covalent._file_transfer.strategies.http_strategy``: ``HTTP``."""

from __future__ import annotations

from covalent._workflow.strategies import HTTP

__all__ = ["HTTP"]
