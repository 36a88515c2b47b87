"""The SDK's verbs: dispatch, dispatch_sync, get_result, cancel.

``dispatch`` traces the lattice, checks every executor name against the installed
plugins, packs the manifest and blobs into one request and returns the dispatch id.
With no server running at the configured local address (and ``sdk.auto_start`` on), it
starts one and says so on stderr.
"""

from __future__ import annotations

import base64
import contextlib
import functools
import gc
import os
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

from covalent import _config
from covalent._client import progress as progressmod
from covalent._client import service
from covalent._client import waiting as waitingmod
from covalent._client.http import Client, client_for
from covalent._errors import ExecutorError, ServerError, ServerUnavailableError, WorkflowError
from covalent._results.result import Result
from covalent._wire import manifest as manifestmod
from covalent._workflow.lattice import Lattice
from covalent.executor import plugins

YOUNG = 500_000
"""While a dispatch is traced and packed, allocations between two young collections
(the server's own threshold): tracing and packing W2 N=100,000 took 1.01 s at 50,000
and 0.88 s at 500,000."""
OLD_GENERATIONS = 1_000
"""While a dispatch is traced and packed, young collections between two collections of
an older generation: 500 million allocations, more than a dispatch makes."""
WAIT_SLICE = 25.0
RECONNECT_TIMEOUT = 120.0
"""Seconds a wait rides out a server that stopped answering (a restart)."""
ABSENT_TIMEOUT = 15.0
"""Seconds a wait tries a server that has not answered once since it began."""


@contextlib.contextmanager
def fewer_collections() -> Iterator[None]:
    """Run the cyclic GC's young collections less often, and the older generations'
    not at all, while a lattice is traced and packed: a wide lattice makes ~10 objects
    per node, all kept, and each collection walks them again for nothing (a full one
    over 100,000 nodes takes 0.15 s). Young cyclic garbage is still collected, every
    :data:`YOUNG` allocations. The caller's thresholds are restored after."""
    old = gc.get_threshold()
    if old[0]:  # 0: the caller turned automatic collection off
        gc.set_threshold(max(old[0], YOUNG), *(max(t, OLD_GENERATIONS) for t in old[1:]))
    try:
        yield
    finally:
        gc.set_threshold(*old)


def _connect(dispatcher_addr: str | None) -> Client:
    return client_for(_config.server_url(dispatcher_addr))


def _may_auto_start(dispatcher_addr: str | None) -> bool:
    explicit = dispatcher_addr or os.environ.get("COVALENT_SERVER_URL")
    return not explicit and bool(_config.get_value("sdk.auto_start"))


def _check_executors(manifest: dict[str, Any], lattice_name: str) -> None:
    """Every executor a node names must be an installed plugin (by class, or by short
    name) or a class of the user's own code that travels with the dispatch."""
    specs = _distinct_executors(manifest["nodes"])
    builtin = plugins.builtin_names()
    if all(spec["name"] in builtin and "class_blob" not in spec for _, spec in specs):
        return
    installed = plugins.discover()
    for node, spec in specs:
        if "class_blob" in spec or _installed(spec, installed):
            continue
        where = f"Electron {node['name']}({node['id']}) in lattice '{lattice_name}'"
        listed = ", ".join(sorted(installed))
        if spec.get("class"):
            raise ExecutorError(
                f"{where} uses executor class {spec['class']}, which is not an installed "
                "plugin: register its module under the entry-point group "
                f"'{plugins.ENTRY_POINT_GROUP}', or put it in the plugin folder; the "
                f"installed executors are: {listed}."
            )
        raise ExecutorError(
            f"{where} uses executor '{spec['name']}', which is not installed; the installed "
            f"executors are: {listed}."
        )


def _distinct_executors(nodes: list[dict[str, Any]]) -> list[tuple[dict[str, Any], Any]]:
    """``(node, spec)`` for the first node of each executor spec object, in node order:
    the nodes of a fan-out share one spec (covalent/_wire/manifest.py), so a check of
    each spec once meets the same node first as a check of every node would."""
    first: dict[int, tuple[dict[str, Any], Any]] = {}
    for node in nodes:
        spec = node.get("executor")
        if spec is not None and id(spec) not in first:
            first[id(spec)] = (node, spec)
    return list(first.values())


def _installed(spec: dict[str, Any], installed: dict[str, plugins.Plugin]) -> bool:
    if spec.get("class"):
        return plugins.by_class(spec["class"], installed) is not None
    return spec["name"] in installed


def _submit(
    client: Client,
    manifest: dict[str, Any],
    blobs: dict[str, bytes],
    disable_run: bool,
    auto_start: bool,
) -> str:
    try:
        return client.submit(manifest, blobs, disable_run)
    except ServerUnavailableError:
        if not auto_start:
            raise
    url, _ = service.start()
    print(f"Covalent server was not running; started it at {url}", file=sys.stderr)
    return client_for(url).submit(manifest, blobs, disable_run)


def dispatch(
    orig_lattice: Lattice, dispatcher_addr: str | None = None, *, disable_run: bool = False
) -> Callable[..., str]:
    """``ct.dispatch(lattice)(*args, **kwargs)``: build, upload and start; return the id."""
    if not isinstance(orig_lattice, Lattice):
        raise WorkflowError(
            "ct.dispatch needs a lattice (a function decorated with @ct.lattice), "
            f"got {orig_lattice!r}."
        )

    @functools.wraps(orig_lattice.workflow_function)
    def wrapper(*args: Any, **kwargs: Any) -> str:
        with fewer_collections():  # also while packing: it makes an object per blob
            graph = orig_lattice.build_graph(*args, **kwargs)
            manifest, blobs = manifestmod.from_graph(graph, args, kwargs, orig_lattice)
            return submit_manifest(manifest, blobs, orig_lattice.name, dispatcher_addr, disable_run)

    return wrapper


def submit_manifest(
    manifest: dict[str, Any],
    blobs: dict[str, bytes],
    lattice_name: str,
    dispatcher_addr: str | None = None,
    disable_run: bool = False,
) -> str:
    """Check the executors, then submit (starting a local server if needed)."""
    _check_executors(manifest, lattice_name)
    client = _connect(dispatcher_addr)
    return _submit(client, manifest, blobs, disable_run, _may_auto_start(dispatcher_addr))


def dispatch_sync(
    orig_lattice: Lattice, dispatcher_addr: str | None = None
) -> Callable[..., Result]:
    """``ct.dispatch_sync(lattice)(*args, **kwargs)``: dispatch and wait for the Result.

    Ctrl-C while it waits stops the wait, not the dispatch: the dispatch goes on on the
    server, and one line on stderr gives its id and the command that cancels it
    (``covalent cancel ID``); see :func:`get_result`.
    """

    @functools.wraps(orig_lattice.workflow_function)
    def wrapper(*args: Any, **kwargs: Any) -> Result:
        dispatch_id = dispatch(orig_lattice, dispatcher_addr)(*args, **kwargs)
        return get_result(dispatch_id, wait=True, dispatcher_addr=dispatcher_addr)

    return wrapper


NEVER_RUNS = "NEW_OBJECT"
"""The status of a dispatch stored with ``disable_run``: it never runs, so a wait for it
returns at once (the server answers its long poll at once, and the wait polled it in a
tight loop before)."""


def _poll(client: Client, dispatch_id: str, update: progressmod.Update | None) -> dict[str, Any]:
    """One long poll, or with progress shown a short one; node counts only, not nodes.
    The answer that says the dispatch finished brings a small result along."""
    if update is None:
        return client.dispatch(dispatch_id, wait=WAIT_SLICE, nodes=False, inline_result=True)
    detail = client.dispatch(dispatch_id, wait=progressmod.POLL, nodes=False, inline_result=True)
    if not detail["finished"]:
        update(detail)
    return detail


def _wait_detail(
    client: Client, dispatch_id: str, update: progressmod.Update | None = None
) -> dict[str, Any]:
    """The dispatch once finished. Rides out a server restart for a while, saying so on
    stderr; a server that never answered is given up on sooner."""
    notes = waitingmod.AbsenceNotes(client.url, dispatch_id)
    answered = False
    while True:
        try:
            detail = _poll(client, dispatch_id, update)
        except (ServerUnavailableError, ServerError):  # a server stopping or restarting
            patience = RECONNECT_TIMEOUT if answered else ABSENT_TIMEOUT
            if notes.lost(patience) > patience:
                raise
            time.sleep(0.5)
            continue
        if answered:
            notes.back()
        answered = True
        if detail["finished"] or detail["status"] == NEVER_RUNS:
            return detail


def get_result(
    dispatch_id: str,
    wait: bool = False,
    dispatcher_addr: str | None = None,
    status_only: bool = False,
    progress: bool | None = None,
) -> Any:
    """The Result of a dispatch (``wait=True`` blocks until it finishes).

    With ``status_only=True``, only ``{"id": ..., "status": ...}``. While waiting,
    ``progress`` shows a progress bar: None (auto) on a terminal or in a notebook, True
    even where no terminal is detected, False never.

    While waiting, a server that stops answering is waited for (a restart), with a note
    on stderr at once and every few seconds: up to two minutes once it had answered, 15
    seconds if it never did; then ServerUnavailableError. Ctrl-C stops the wait, not the
    dispatch: one line on stderr gives its id and the command that cancels it, and the
    KeyboardInterrupt goes on (without a traceback if nothing catches it), from the
    call's first line on.
    """
    if not wait:
        return _get_result(dispatch_id, False, dispatcher_addr, status_only, progress)
    with waitingmod.interrupt_note(dispatch_id):
        return _get_result(dispatch_id, True, dispatcher_addr, status_only, progress)


def _get_result(
    dispatch_id: str,
    wait: bool,
    dispatcher_addr: str | None,
    status_only: bool,
    progress: bool | None,
) -> Any:
    client = _connect(dispatcher_addr)
    if status_only:
        return client.status(dispatch_id)

    def manifest_of(of_id: str) -> Callable[[], dict[str, Any]]:
        return lambda: client.request("GET", f"/dispatches/{of_id}/manifest").json()

    def load(child_id: str) -> Result:
        detail = client.dispatch(child_id)
        return Result(detail, client.fetch_blobs, load, fetch_manifest=manifest_of(child_id))

    if not wait:
        return load(dispatch_id)
    with progressmod.showing(dispatch_id, progress) as update:
        detail = _wait_detail(client, dispatch_id, update)
    return Result(
        detail,
        _with_inline_result(detail, client.fetch_blobs),
        load,
        lambda: client.dispatch(dispatch_id),
        manifest_of(dispatch_id),
    )


def _with_inline_result(
    detail: dict[str, Any], fetch: Callable[[list[str]], dict[str, bytes]]
) -> Callable[[list[str]], dict[str, bytes]]:
    """``fetch``, answering the result blob that came with ``detail`` (``result_blob``)
    from it instead of asking the server again."""
    inline = detail.pop("result_blob", None)
    digest = detail.get("result_digest")
    if inline is None or not digest:
        return fetch
    kept = {digest: base64.b64decode(inline)}

    def fetch_with_inline(digests: list[str]) -> dict[str, bytes]:
        found = {d: kept[d] for d in digests if d in kept}
        rest = [d for d in digests if d not in found]
        if rest:
            found.update(fetch(rest))
        return found

    return fetch_with_inline


def cancel(
    dispatch_id: str, task_ids: list[int] | None = None, dispatcher_addr: str | None = None
) -> str:
    """Cancel a whole dispatch, or only the nodes ``task_ids`` (and what depends on them)."""
    if task_ids is not None and not isinstance(task_ids, list):
        task_ids = [task_ids]
    answer = _connect(dispatcher_addr).cancel(dispatch_id, task_ids)
    if answer.get("status") == "already finished":
        return (
            f"Dispatch {dispatch_id} has already finished ({answer.get('dispatch_status')}); "
            "nothing was cancelled."
        )
    which = f"nodes {task_ids} of dispatch" if task_ids else "dispatch"
    return f"Cancellation of {which} {dispatch_id} requested."
