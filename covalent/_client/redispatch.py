"""``ct.redispatch``: run a finished dispatch's lattice again, changed or not.

The lattice comes back from the stored dispatch (unpickled here, in the client). With
``replace_electrons={"name": new_electron}`` every call of the electron ``name`` in the
lattice's body calls the new one instead. With ``reuse_previous_results=True`` the server
completes every node whose function and inputs are unchanged with its stored output
(PENDING_REUSE, then COMPLETED) and runs only the rest.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from typing import Any

from covalent._client.dispatch import fewer_collections, get_result, submit_manifest
from covalent._errors import WorkflowError
from covalent._wire import manifest as manifestmod
from covalent._workflow.electron import Electron
from covalent._workflow.lattice import Lattice


def redispatch(
    dispatch_id: str,
    replace_electrons: dict[str, Any] | None = None,
    reuse_previous_results: bool = False,
    dispatcher_addr: str | None = None,
) -> Callable[..., str]:
    """``ct.redispatch(id, ...)(*new_args, **new_kwargs)``: the new dispatch's id.

    Without arguments, the lattice runs with the inputs it had.
    """
    replacements = _checked(replace_electrons or {})

    def wrapper(*args: Any, **kwargs: Any) -> str:
        previous = get_result(dispatch_id, dispatcher_addr=dispatcher_addr, progress=False)
        lattice = previous.lattice
        if not isinstance(lattice, Lattice):
            raise WorkflowError(
                f"Dispatch {dispatch_id} did not keep its lattice, so it cannot be redispatched."
            )
        if not args and not kwargs:
            args, kwargs = tuple(previous.inputs["args"]), previous.inputs["kwargs"]
        with fewer_collections():
            graph = lattice.build_graph_replacing(replacements, args, kwargs)
            manifest, blobs = manifestmod.from_graph(graph, args, kwargs, lattice)
            if reuse_previous_results:
                manifest["reuse"] = {"dispatch_id": dispatch_id}
            return submit_manifest(manifest, blobs, lattice.name, dispatcher_addr)

    return functools.wraps(redispatch)(wrapper)


def _checked(replacements: dict[str, Any]) -> dict[str, Electron]:
    if not isinstance(replacements, Mapping):
        raise WorkflowError(
            "replace_electrons must be a dict of electron names to electrons, "
            f"got {replacements!r}."
        )
    for name, replacement in replacements.items():
        if not isinstance(replacement, Electron):
            raise WorkflowError(
                f"replace_electrons['{name}'] must be an electron (@ct.electron), "
                f"got {replacement!r}."
            )
    return dict(replacements)
