"""``covalent._dispatcher_plugins``: Covalent's dispatcher front end."""

from __future__ import annotations

from covalent._compat.dispatcher_plugins.local import LocalDispatcher

__all__ = ["LocalDispatcher"]
