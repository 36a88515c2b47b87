"""``covalent._file_transfer.enums``: ``Order`` (BEFORE, AFTER)."""

from __future__ import annotations

from covalent._workflow.transfer import Order

__all__ = ["Order"]
