"""``covalent._dispatcher_plugins.local``: ``LocalDispatcher``, whose static methods
are ``ct.dispatch``, ``ct.dispatch_sync`` and ``ct.redispatch``."""

from __future__ import annotations

from covalent._client.dispatch import dispatch, dispatch_sync
from covalent._client.redispatch import redispatch


class LocalDispatcher:
    """Dispatches to the server (``LocalDispatcher.dispatch(lattice)(*args)``)."""

    dispatch = staticmethod(dispatch)
    dispatch_sync = staticmethod(dispatch_sync)
    redispatch = staticmethod(redispatch)


__all__ = ["LocalDispatcher"]
