"""``covalent._results_manager.results_manager``: ``get_result`` and ``cancel``."""

from __future__ import annotations

from covalent._client.dispatch import cancel, get_result

__all__ = ["cancel", "get_result"]
