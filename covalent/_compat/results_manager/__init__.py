"""``covalent._results_manager``: the Result class and the calls that fetch one."""

from __future__ import annotations

from covalent._compat.results_manager.result import Result
from covalent._compat.results_manager.results_manager import cancel, get_result

__all__ = ["Result", "cancel", "get_result"]
