"""``covalent._results_manager.result``: ``Result``."""

from __future__ import annotations

from covalent._results.result import Result

__all__ = ["Result"]
