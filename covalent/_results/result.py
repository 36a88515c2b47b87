"""``Result``: what ``ct.get_result`` returns, and its printout.

A Result is made from the server's description of a dispatch. Values (the result,
inputs, node outputs) are blobs fetched and unpickled only when first asked for, all
missing ones in one request, so that ``get_result`` does not download outputs nobody
reads.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime, timezone
from functools import partial
from typing import Any

from covalent._errors import CovalentError, ValueUnavailableError
from covalent._results import html
from covalent._results.graph import DispatchGraph
from covalent._results.status import Status
from covalent._wire import blobs as blobmod

Fetch = Callable[[list[str]], dict[str, bytes]]


def _time(value: float | None) -> datetime | None:
    return None if value is None else datetime.fromtimestamp(value, tz=timezone.utc)


def _format_time(value: datetime | None) -> str:
    return "None" if value is None else value.strftime("%Y-%m-%d %H:%M:%S.%f")


PRINT_LIMIT = 2_000
"""Characters of one value that ``print(result)`` (and ``covalent show``) shows."""


def printable(value: Any) -> str:
    """``str(value)``, cut after :data:`PRINT_LIMIT` characters with how long it was (a
    50 MB output printed in full flooded the terminal); long text and bytes are cut
    before they are turned into text."""
    if isinstance(value, (str, bytes, bytearray)) and len(value) > PRINT_LIMIT:
        unit = "characters" if isinstance(value, str) else "bytes"
        return f"{value[:PRINT_LIMIT]!s}... ({len(value):,} {unit} in all)"
    text = str(value)
    if len(text) > PRINT_LIMIT:
        return f"{text[:PRINT_LIMIT]}... ({len(text):,} characters in all)"
    return text


def _shown(get: Callable[[], Any]) -> str:
    """:func:`printable` of what ``get`` returns; for a value that cannot be unpickled
    here, why (one such value does not keep a Result from printing)."""
    try:
        return printable(get())
    except ValueUnavailableError as e:
        error = e.__cause__
        return f"<cannot be unpickled here: {type(error).__name__}: {error}>"


class _Unavailable:
    """A value whose unpickling raised: the error is raised, with the value's name, when
    the value itself is asked for (other values of the same fetch stay readable)."""

    def __init__(self, error: Exception) -> None:
        self.error = error


class Result:
    """The state and outputs of one dispatch."""

    NEW_OBJECT = Status.NEW_OBJECT
    NEW_OBJ = Status.NEW_OBJECT  # Covalent's other name for it (plugins use it)
    PENDING_REUSE = Status.PENDING_REUSE
    RUNNING = Status.RUNNING
    POSTPROCESSING = Status.POSTPROCESSING
    COMPLETED = Status.COMPLETED
    FAILED = Status.FAILED
    CANCELLED = Status.CANCELLED
    NOT_RUN = Status.NOT_RUN

    def __init__(
        self,
        detail: dict[str, Any],
        fetch: Fetch,
        load: Callable[[str], Result] | None = None,
        fetch_nodes: Callable[[], dict[str, Any]] | None = None,
        fetch_manifest: Callable[[], dict[str, Any]] | None = None,
    ) -> None:
        """``detail`` is the server's description of the dispatch. Without its ``nodes``,
        ``fetch_nodes`` returns the description with them, on first use (a dispatch of
        10,000 nodes is megabytes that printing the result alone does not need);
        ``fetch_manifest`` gives the stored manifest, for ``lattice.transport_graph``."""
        self._fetch_manifest = fetch_manifest
        self._load_dispatch = load
        self._fetch_nodes = fetch_nodes
        self._detail = detail
        self._manifest: dict[str, Any] = detail["summary"]
        self._fetch = fetch
        self._values: dict[str, Any] = {}
        self._raw: dict[str, bytes] = {}
        self.dispatch_id: str = detail["dispatch_id"]
        self.root_dispatch_id: str = detail.get("root_dispatch_id") or self.dispatch_id
        self.status = Status(detail["status"])
        self.error: str | None = detail.get("error")
        self.start_time = _time(detail.get("start_time"))
        self.end_time = _time(detail.get("end_time"))
        self.results_dir: str = detail.get("results_dir", "")
        self._node_rows: list[dict[str, Any]] | None = None
        self._attempts: dict[int, list[dict[str, Any]]] = {}
        if "nodes" in detail or fetch_nodes is None:
            self._take_nodes(detail)

    def _take_nodes(self, detail: dict[str, Any]) -> None:
        self._node_rows = detail.get("nodes", [])
        for attempt in detail.get("retried", []):
            self._attempts.setdefault(attempt["node_id"], []).append(attempt)

    @property
    def _nodes(self) -> list[dict[str, Any]]:
        """The node rows, fetched on first use if the description came without them."""
        if self._node_rows is None:
            assert self._fetch_nodes is not None
            self._take_nodes(self._fetch_nodes())
        assert self._node_rows is not None
        return self._node_rows

    # values, fetched on first use

    def _load(self, digests: Iterable[str | None]) -> None:
        """Fetch (in as few requests as composites allow) and unpickle these values."""
        needed = [d for d in dict.fromkeys(digests) if d and d not in self._values]
        wanted = [d for d in needed if d not in self._raw]
        while wanted:
            for name, data in self._fetch(wanted).items():
                self._raw[name] = data
            wanted = [
                item
                for name in wanted
                for item in blobmod.composite_items(self._raw[name])
                if item not in self._raw
            ]
        for name in needed:
            try:
                self._values[name] = self._unpickle(name)
            except CovalentError:  # fetching the lattice's sources failed: not the value
                raise
            except Exception as e:  # anything the value's own unpickling raises
                self._values[name] = _Unavailable(e)

    def _unpickle(self, name: str) -> Any:
        """A value; if it needs a module of the user's that this process cannot import,
        that module's source as the dispatch shipped it (in the lattice's blob)."""
        try:
            return blobmod.load_value(name, self._raw.__getitem__)
        except ImportError:
            lattice = self._manifest["lattice"].get("function")
            if not lattice or lattice in self._raw:  # no sources to add, or added already
                raise
            self._raw.update(self._fetch([lattice]))
            if not blobmod.provide_sources(self._raw[lattice]):
                raise
            return blobmod.load_value(name, self._raw.__getitem__)

    def _value(self, digest: str | None, what: str = "A value") -> Any:
        """The value of blob ``digest``. Raises ValueUnavailableError, naming ``what``,
        if it cannot be unpickled here."""
        if not digest:
            return None
        self._load([digest])
        return self._checked(self._values[digest], what)

    def _checked(self, value: Any, what: str) -> Any:
        if isinstance(value, _Unavailable):
            error = value.error
            raise ValueUnavailableError(
                f"{what} of dispatch {self.dispatch_id} cannot be unpickled in this Python: "
                f"{type(error).__name__}: {error}"
            ) from error
        return value

    @property
    def result(self) -> Any:
        """The lattice's return value once COMPLETED, else None."""
        if self.status != Status.COMPLETED:
            return None
        return self._value(self._detail.get("result_digest"), "The result")

    @property
    def inputs(self) -> dict[str, Any]:
        """The arguments the lattice was dispatched with: ``{"args": [...], "kwargs": {...}}``."""
        inputs = self._manifest["inputs"]
        self._load([*inputs["args"], *inputs["kwargs"].values()])
        kwargs = inputs["kwargs"].items()
        return {
            "args": [self._checked(self._values[d], "An input") for d in inputs["args"]],
            "kwargs": {k: self._checked(self._values[d], f"Input {k!r}") for k, d in kwargs},
        }

    @property
    def lattice(self) -> Any:
        """The dispatched lattice (unpickled on first use), or None if it was not sent.
        Its ``transport_graph`` is this dispatch's graph, with each node's values."""
        lattice = self._value(self._manifest["lattice"].get("function"))
        fetch = self._fetch_manifest
        fresh = getattr(lattice, "_load_graph", True) is None  # a Lattice not given one yet
        if fetch is not None and fresh:
            lattice.graph_from(lambda: DispatchGraph(fetch(), self))
        return lattice

    # nodes

    def _node_dict(self, row: dict[str, Any]) -> dict[str, Any]:
        return {
            "node_id": row["node_id"],
            "node_name": row["name"],
            "start_time": _time(row.get("start_time")),
            "end_time": _time(row.get("end_time")),
            "status": Status(row["status"]),
            "output": self._value(
                row.get("output_digest"), f"The output of node {row['name']}({row['node_id']})"
            ),
            "error": row.get("error") or None,
            "stdout": row.get("stdout") or "",
            "stderr": row.get("stderr") or "",
            "sublattice_result": self._sublattice(row.get("sub_dispatch_id")),
            "reused_from": row.get("reused_from"),
            "executor": row.get("executor"),
            "attempts": int(row.get("attempts") or 0),
            "retried": [
                {**a, "start_time": _time(a["start_time"]), "end_time": _time(a["end_time"])}
                for a in self._attempts.get(row["node_id"], [])
            ],
        }

    def _sublattice(self, dispatch_id: str | None) -> Result | None:
        """The Result of a sublattice node's own dispatch (fetched when asked for)."""
        if not dispatch_id or self._load_dispatch is None:
            return None
        return self._load_dispatch(dispatch_id)

    def _row(self, node_id: int) -> dict[str, Any]:
        for row in self._nodes:
            if row["node_id"] == node_id:
                return row
        raise KeyError(f"Dispatch {self.dispatch_id} has no node {node_id}.")

    def get_node_result(self, node_id: int) -> dict[str, Any]:
        """Everything about one node: status, times, output, error, stdout, stderr."""
        return self._node_dict(self._row(node_id))

    def get_all_node_results(self) -> list[dict[str, Any]]:
        self._load(row.get("output_digest") for row in self._nodes)
        return [self._node_dict(row) for row in self._nodes]

    def get_all_node_outputs(self) -> dict[str, Any]:
        """``{"name(id)": output}`` for every node, in id order."""
        self._load(row.get("output_digest") for row in self._nodes)
        return {
            f"{row['name']}({row['node_id']})": self._value(
                row.get("output_digest"), f"The output of node {row['name']}({row['node_id']})"
            )
            for row in self._nodes
        }

    def __str__(self) -> str:
        self._load(row.get("output_digest") for row in self._nodes)
        outputs = {
            f"{r['name']}({r['node_id']})": _shown(partial(self._value, r.get("output_digest")))
            for r in self._nodes
        }
        lines = [
            "",
            "Lattice Result",
            "==============",
            f"status: {self.status}",
            f"result: {_shown(lambda: self.result)}",
            f"input args: {_shown(lambda: self.inputs['args'])}",
            f"input kwargs: {_shown(lambda: self.inputs['kwargs'])}",
            f"error: {self.error}",
            "",
            f"start_time: {_format_time(self.start_time)}",
            f"end_time: {_format_time(self.end_time)}",
            "",
            f"results_dir: {self.results_dir}",
            f"dispatch_id: {self.dispatch_id}",
            "",
            "Node Outputs",
            "------------",
            *(f"{name}: {text}" for name, text in outputs.items()),
        ]
        return "\n".join(lines)

    def __repr__(self) -> str:
        return f"<Result {self.dispatch_id} {self.status}>"

    def _repr_html_(self) -> str:
        """The Result in a notebook: status, result, times, nodes, error (see html.py)."""
        return html.result_html(self, self._nodes, self._detail.get("lattice_name") or "")
