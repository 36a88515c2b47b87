"""``lattice.draw(*args, **kwargs)``: show a lattice's graph in the web UI without running it.

The lattice is built and submitted like a dispatch, but with ``disable_run=True``: the
server stores it as NEW_OBJECT and never starts it, and its page in the UI shows it as a
preview. The page's URL is printed.
"""

from __future__ import annotations

from typing import Any

from covalent import _config
from covalent._client.dispatch import dispatch
from covalent._workflow.lattice import Lattice


def preview_url(dispatch_id: str, dispatcher_addr: str | None = None) -> str:
    """The UI page of a dispatch (or preview) on the server the SDK talks to."""
    return f"{_config.server_url(dispatcher_addr)}/dispatches/{dispatch_id}"


def draw(
    lattice: Lattice,
    args: tuple[Any, ...] = (),
    kwargs: dict[str, Any] | None = None,
    dispatcher_addr: str | None = None,
) -> str:
    """Store ``lattice`` built with these arguments as a preview; print and return its URL."""
    dispatch_id = dispatch(lattice, dispatcher_addr, disable_run=True)(*args, **(kwargs or {}))
    url = preview_url(dispatch_id, dispatcher_addr)
    print(f"Preview of lattice '{lattice.name}': {url}")
    return url
