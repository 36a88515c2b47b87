"""The manifest: a traced graph as JSON, with every function and value as a blob digest.

:func:`from_graph` runs in the client. The manifest's typed records and the server's
checks of it are in :mod:`covalent._wire.schema`; nothing there unpickles anything.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import inspect
import json
import math
import pickle
import sys
import types
from collections import Counter
from collections.abc import Callable, Sequence
from itertools import chain, repeat
from typing import TYPE_CHECKING, Any, NamedTuple

import msgspec

from covalent._errors import WorkflowError
from covalent._wire import blobs as blobmod
from covalent._wire import bundle, modules
from covalent._wire import triggers as triggermod
from covalent._wire.fingerprint import Fingerprints, pickle_may_vary
from covalent._workflow.graph import Graph, Node, NodeKind

if TYPE_CHECKING:  # the schema (pydantic) is the server's; a client need not import it
    from covalent._wire.schema import Manifest

FORMAT = 1
DEFAULT_EXECUTOR = "local"
JSON_METADATA = ("retries", "retry_delay", "timeout", "cache", "collection")
PICKLED_METADATA = ("files", "deps_bash", "deps_pip", "call_before", "call_after")


class Edge(NamedTuple):
    """An edge of the transport graph: ``source``'s output goes to ``target`` as
    positional argument ``position`` or keyword argument ``name``; with neither it is a
    wait edge (``ct.wait``), which orders the two nodes and passes no data."""

    source: int
    target: int
    position: int | None
    name: str | None

    @property
    def is_wait(self) -> bool:
        return self.position is None and self.name is None


def edges(manifest: Manifest | dict[str, Any]) -> list[Edge]:
    """A (validated) manifest's edges as :class:`Edge` records."""
    return [Edge(*edge) for edge in manifest["edges"]]


class BlobSet:
    """Blobs gathered while writing a manifest, deduplicated by digest.

    Value blobs are plain pickles. Function blobs (and the lattice's) also carry the
    sources of every user module the dispatch refers to (covalent/_wire/modules.py), so
    that whichever worker runs a node can import them; as those are known only once
    everything is pickled, function blobs are finished by :meth:`seal`, which writes
    their digests where :meth:`add_function` was asked to.
    """

    def __init__(self) -> None:
        self.blobs: dict[str, bytes] = {}
        self._bodies: dict[int, bytes] = {}
        self._sites: list[tuple[dict[str, Any], str, int]] = []
        self._keep: list[Any] = []  # functions pickled, alive until sealed (ids stay theirs)
        self.modules: set[str] = set()
        self.forced: set[str] = set()
        self.fingerprints = Fingerprints()
        self.plain_fingerprints: dict[int, str] = {}  # function id -> its node fingerprint

    def add_bytes(self, data: bytes) -> str:
        name = blobmod.digest(data)
        self.blobs.setdefault(name, data)
        return name

    def _pickle(self, value: Any, what: str | Callable[[], str]) -> bytes:
        try:
            done = blobmod.pickled(value)
        except Exception as e:
            where = what if isinstance(what, str) else what()
            raise WorkflowError(f"Cannot pickle {where}: {type(e).__name__}: {e}.") from e
        self.modules |= done.modules
        self.forced |= done.forced
        return done.data

    def add_object(self, value: Any, what: str | Callable[[], str]) -> str:
        """Pickle a value and return its digest."""
        if type(value) in blobmod.PLAIN:
            return self.add_plain(value)
        return self.add_bytes(self._pickle(value, what))

    def add_plain(self, value: Any) -> str:
        """:meth:`add_object` for a value of a type in ``blobmod.PLAIN`` (a fan-out's
        parameters): nothing that refers to code, no modules to note."""
        data = pickle.dumps(value, protocol=5)  # as blobmod.pickled does
        name = hashlib.sha256(data).hexdigest()  # blobmod.digest, inlined: hot
        self.blobs.setdefault(name, data)
        return name

    def add_function(
        self,
        value: Any,
        what: str | Callable[[], str],
        into: dict[str, Any],
        key: str = "function",
    ) -> None:
        """Pickle a function (once per object); :meth:`seal` sets ``into[key]`` to the
        digest of its blob."""
        if id(value) not in self._bodies:
            self._bodies[id(value)] = self._pickle(value, what)
            self._keep.append(value)
        self._sites.append((into, key, id(value)))

    def seal(self) -> None:
        """Finish the function blobs: each carries the sources the dispatch needs."""
        tail = modules.trailer(modules.closure(self.modules, self.forced))
        names = {key: self.add_bytes(body + tail) for key, body in self._bodies.items()}
        for into, key, function in self._sites:
            into[key] = names[function]
        self._sites, self._bodies, self._keep = [], {}, []


def executor_spec(executor: Any, where: str, blobset: BlobSet | None = None) -> dict[str, Any]:
    """``{"name", "attributes"}`` for an executor instance or short name; an instance's
    spec also names its class (``class``: ``module:qualname``), and a class of the
    user's own code travels with it, pickled by value (``class_blob``, added to
    ``blobset``), to run in a worker process where it is not installed."""
    if executor is None:
        return {"name": DEFAULT_EXECUTOR, "attributes": {}}
    if isinstance(executor, str):
        return {"name": executor, "attributes": {}}
    to_dict = getattr(executor, "to_dict", None)
    short_name = getattr(executor, "short_name", None)
    if not callable(to_dict) or not callable(short_name):
        raise WorkflowError(
            f"The executor of {where} is {executor!r}; use an executor instance "
            "(ct.executor.LocalExecutor()) or a short name such as 'local'."
        )
    described = to_dict()
    attributes = described.get("attributes", described) if isinstance(described, dict) else {}
    try:
        json.dumps(attributes)
    except TypeError as e:
        raise WorkflowError(f"The executor of {where} has settings that are not JSON: {e}.") from e
    cls = type(executor)
    spec = {"name": short_name(), "class": f"{cls.__module__}:{cls.__qualname__}"}
    if blobset is not None and blobmod.is_users_own(sys.modules.get(cls.__module__)):
        # pickled as a function is, with the sources of the user's modules it needs
        blobset.add_function(cls, f"the executor class of {where}", spec, "class_blob")
    spec["attributes"] = attributes
    return spec


def _source(function: Callable[..., Any]) -> str:
    """The source text of ``function`` (a lattice's: of its workflow function), or ""
    where Python has none (a builtin, a function typed at a plain REPL)."""
    target = getattr(function, "workflow_function", function)
    with contextlib.suppress(ValueError):  # a __wrapped__ cycle: inspect raises too
        code = getattr(inspect.unwrap(target), "__code__", None)
        if isinstance(code, types.CodeType):
            return _code_source(code)
    try:
        return inspect.getsource(target)
    except (OSError, TypeError):
        return ""


@functools.lru_cache(maxsize=1024)
def _code_source(code: types.CodeType) -> str:
    """The source of a function's code object, read once per code object: finding it
    (linecache, then tokenizing the file to the function's end) cost ~25 µs a function
    on every dispatch. A function defined again has a new code object, and its own
    text is read then; the cached text stays the text of the code that runs."""
    try:
        return inspect.getsource(code)
    except (OSError, TypeError):
        return ""


def describe_use(graph: Graph, node_id: int) -> str:
    """Where a value node is used, for errors: "argument 'x' of electron f(0)"."""
    parts: list[str] = []
    while True:
        edge = next((e for e in graph.edges if e.source == node_id), None)
        if edge is None:
            return " of ".join(parts) or f"node {graph.nodes[node_id].name}({node_id})"
        target = graph.nodes[edge.target]
        if target.kind == NodeKind.COLLECTION:
            parts.append(f"item {edge.index} of a {target.name.strip(':').split('_')[-1]}")
            node_id = target.id
            continue
        kind = "electron" if target.kind == NodeKind.ELECTRON else "operation"
        parts.append(f"argument '{edge.label}' of {kind} {target.name}({target.id})")
        return " of ".join(parts)


_CALLS_USERS = (NodeKind.ELECTRON, NodeKind.SUBLATTICE)
"""Node kinds whose function is the user's: the manifest lists its source."""


def _where(node: Node) -> str:
    """How errors name a node."""
    return f"node {node.name}({node.id})"


class _Settings(NamedTuple):
    """What the nodes of one function, executor and metadata object have alike."""

    executor: dict[str, Any]
    metadata: dict[str, Any]
    fingerprint: str


class _Writer:
    """Writes node entries, working out each node's settings once per distinct function,
    executor and metadata object: the 100,000 electrons of a fan-out share all three
    (covalent/_workflow/tracing.py shares an electron's metadata across its calls)."""

    def __init__(self, graph: Graph, blobset: BlobSet) -> None:
        self.graph = graph
        self.blobset = blobset
        self.sources: dict[int, tuple[str, Any, dict[str, Any]]] = {}
        self.specs: dict[int, dict[str, Any]] = {}
        self.settings: dict[tuple[str, int, int, int], _Settings] = {}

    def entry(self, node: Node) -> dict[str, Any]:
        kind = node.kind
        if kind == NodeKind.PARAMETER:
            return self._parameter(node)
        function = node.function
        assert function is not None
        entry: dict[str, Any] = {"id": node.id, "name": node.name, "kind": kind}
        self.blobset.add_function(function, lambda: f"the function of {_where(node)}", entry)
        if kind in _CALLS_USERS and id(function) not in self.sources:
            self.sources[id(function)] = (node.name, function, entry)
        executor = node.executor if kind == NodeKind.ELECTRON else None
        key = (kind, id(function), id(executor), id(node.metadata))
        settings = self.settings.get(key)
        if settings is None:  # the graph keeps the three objects alive: ids stay theirs
            settings = self.settings[key] = self._settings(node, executor, _where(node))
        entry["executor"], entry["metadata"], entry["fingerprint"] = settings
        return entry

    def _parameter(self, node: Node) -> dict[str, Any]:
        value = node.value
        blobset = self.blobset
        entry: dict[str, Any] = {"id": node.id, "name": node.name, "kind": node.kind}
        if type(value) in blobmod.PLAIN:  # pickles alike in every process: no fingerprint
            entry["value"] = blobset.add_plain(value)
            entry["value_repr"] = blobmod.short_repr(value)
            return entry
        entry["value"] = blobset.add_object(value, lambda: describe_use(self.graph, node.id))
        entry["value_repr"] = blobmod.short_repr(value)
        if pickle_may_vary(value):  # equal values, other bytes: compare fingerprints
            entry["fingerprint"] = blobset.fingerprints.of(value)
        return entry

    def _settings(self, node: Node, executor: Any, where: str) -> _Settings:
        """A node's executor spec, JSON metadata and fingerprint, shared (they are only
        read, then written as JSON) by the nodes with the same three objects."""
        blobset = self.blobset
        # An instance's settings are read (and checked to be JSON) once per dispatch.
        spec = self.specs.get(id(executor))
        if spec is None:
            spec = self.specs[id(executor)] = executor_spec(executor, where, blobset)
        given = node.metadata
        metadata = {k: v for k in JSON_METADATA if (v := given.get(k)) not in (None, False)}
        extras = {k: v for k in PICKLED_METADATA if (v := given.get(k))}
        if extras:
            metadata["extras"] = blobset.add_object(extras, lambda: f"the settings of {where}")
            return _Settings(spec, metadata, blobset.fingerprints.of(node.function, extras))
        function_id = id(node.function)  # a function's own fingerprint is made once
        found = blobset.plain_fingerprints.get(function_id)
        if found is None:
            found = blobset.fingerprints.of(node.function, {})
            blobset.plain_fingerprints[function_id] = found
        return _Settings(spec, metadata, found)


def from_graph(
    graph: Graph,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    lattice: Any = None,
) -> tuple[dict[str, Any], dict[str, bytes]]:
    """The manifest and the blobs (digest to bytes) that describe one dispatch.

    ``lattice`` (the Lattice object) travels too, so that a Result can give it back.
    """
    blobset = BlobSet()
    writer = _Writer(graph, blobset)
    nodes = [writer.entry(node) for node in graph.nodes]
    where = f"lattice '{graph.lattice_name}'"
    result: dict[str, Any] = (
        {"node": graph.result_node}
        if graph.result_node is not None
        else {"value": blobset.add_object(graph.result_value, f"the result of {where}")}
    )
    manifest = {
        "format": FORMAT,
        "lattice": _lattice_entry(graph, lattice, blobset),
        "inputs": {
            "args": [blobset.add_object(a, f"argument {i} of {where}") for i, a in enumerate(args)],
            "kwargs": {
                k: blobset.add_object(v, f"argument '{k}' of {where}") for k, v in kwargs.items()
            },
            "args_repr": [blobmod.short_repr(a) for a in args],
            "kwargs_repr": {k: blobmod.short_repr(v) for k, v in kwargs.items()},
        },
        "nodes": nodes,
        "edges": list(map(list, graph.edges)),  # [source, target, index, name]
        "result": result,
    }
    blobset.seal()
    manifest["functions"] = {
        entry["function"]: {"name": name, "source": _source(function)}
        for name, function, entry in writer.sources.values()
    }
    trigger_specs = triggermod.specs_of((getattr(lattice, "metadata", None) or {}).get("triggers"))
    if trigger_specs:  # plain JSON: the server arms them without unpickling anything
        manifest["triggers"] = trigger_specs
    return manifest, blobset.blobs


def _lattice_entry(graph: Graph, lattice: Any, blobset: BlobSet) -> dict[str, Any]:
    entry: dict[str, Any] = {"name": graph.lattice_name, "doc": "", "source": ""}
    if lattice is not None:
        function = getattr(lattice, "workflow_function", lattice)
        entry["doc"] = inspect.getdoc(function) or ""
        entry["source"] = _source(function)
        # The lattice is kept only for Result.lattice; the run does not need it.
        with contextlib.suppress(Exception):
            blobset.add_function(lattice, "the lattice", entry, "function")
    return entry


def summary(manifest: dict[str, Any]) -> dict[str, Any]:
    """The small part of a manifest a Result needs: the lattice and its inputs."""
    lattice = manifest["lattice"]
    return {
        "lattice": {k: lattice.get(k) for k in ("name", "doc", "function")},
        "inputs": manifest["inputs"],
        "result": manifest["result"],
    }


def named_blobs(manifest: Any) -> set[str]:
    """Every digest a manifest names, read leniently (before it is validated)."""
    found: list[Any] = []
    if not isinstance(manifest, dict):
        return set()
    for node in _items(manifest.get("nodes")):
        if isinstance(node, dict):
            metadata = node.get("metadata")
            extras = metadata.get("extras") if isinstance(metadata, dict) else None
            executor = node.get("executor")
            by_value = executor.get("class_blob") if isinstance(executor, dict) else None
            found += [node.get("function"), node.get("value"), extras, by_value]
    inputs = manifest.get("inputs")
    if isinstance(inputs, dict):
        found += _items(inputs.get("args"))
        kwargs = inputs.get("kwargs")
        found += list(kwargs.values()) if isinstance(kwargs, dict) else []
    result = manifest.get("result")
    if isinstance(result, dict):
        found.append(result.get("value"))
    return {n for n in found if isinstance(n, str)}  # the schema checks their format


def _items(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


SHARED_FIELDS = ("executor", "metadata", "function")
"""A node's fields that the nodes of a fan-out usually have alike."""


def share_alike(nodes: list[dict[str, Any]]) -> None:
    """Make nodes whose ``executor``, ``metadata`` or ``function`` is the same as the
    previous such node's hold one object for it (in place; nodes of one electron sit
    side by side). A parsed manifest has a copy per node: for a fan-out of 100,000 that
    is about 40 MB of equal dicts and strings. The same means the same JSON, not only
    ``==`` (which holds for ``1``, ``1.0`` and ``true``, and for dicts in another key
    order). The shared values must not be changed in place afterwards (nothing does:
    the dispatcher copies before it adds). About 1 µs a node: the server does it for
    the pieces of a large manifest that msgspec leaves to pydantic (see
    ``schema._checked_in_chunks``)."""
    for field in SHARED_FIELDS:
        last: Any = None
        for node in nodes:
            value = node.get(field)
            if value is None or value is last:
                continue
            if value == last and _same_json(value, last):
                node[field] = last
            else:
                last = value


def _same_json(a: Any, b: Any) -> bool:
    """Whether ``a`` and ``b`` (equal: a NaN, which msgspec writes as ``null``, never
    is) are written as the same JSON text."""
    try:
        return msgspec.json.encode(a) == msgspec.json.encode(b)
    except (TypeError, msgspec.EncodeError):
        return False


def topological_order(count: int, edges: Sequence[Sequence[Any]]) -> list[int]:
    """Node ids with every node after its inputs (Kahn); shorter than ``count`` on a cycle."""
    children: list[list[int]] = [[] for _ in range(count)]
    waiting = [0] * count
    for edge in edges:
        children[edge[0]].append(edge[1])
        waiting[edge[1]] += 1
    order = [n for n in range(count) if waiting[n] == 0]
    for node in order:
        for child in children[node]:
            waiting[child] -= 1
            if waiting[child] == 0:
                order.append(child)
    return order


def pack(manifest: dict[str, Any], blobs: dict[str, bytes]) -> bytes:
    """The bundle of a dispatch: :func:`bundle.pack` of ``manifest`` and ``blobs`` in
    meaning, several times faster for a large manifest (0.08 s, not 0.45 s, to write
    the JSON of 100,000 nodes). When every value in the header is plain JSON (see
    :func:`_plain_header`) msgspec writes it; else (a NaN, a set, a key that is not a
    string, ...) json does, as :func:`bundle.pack`, errors included."""
    header = bundle.with_blob_list(manifest, blobs)
    head = _fast_dumps(header) if _plain_header(header) else None
    return bundle.frame(head if head is not None else bundle.dumps(header), blobs)


def _fast_dumps(header: dict[str, Any]) -> bytes | None:
    try:
        return msgspec.json.encode(header)
    except (TypeError, ValueError, OverflowError):  # e.g. a lone surrogate: json's turn
        return None


_LEAVES = frozenset({str, int, bool, type(None)})
_ROWS = frozenset({list, tuple})
_BULK = ("nodes", "edges", "blobs")
_NESTING_LIMIT = 100


def _plain_header(header: dict[str, Any]) -> bool:
    """Whether msgspec writes ``header`` as json.dumps does, in meaning: it holds only
    dicts with string keys, lists, tuples, strings, ints, bools, None and finite floats
    (those exact types; json writes a NaN as ``NaN``, msgspec as ``null``). The bulk,
    100,000s of nodes and edges, is checked in C-speed passes, relying on the nodes'
    shape that :func:`from_graph` writes; another shape is simply not plain."""
    rest = [value for key, value in header.items() if key not in _BULK]
    return (
        all(type(key) is str for key in header)
        and _plain_nodes(header.get("nodes", []))
        and _plain_rows(header.get("edges", []))
        and _plain_rows(header.get("blobs", []))
        and all(_is_plain(value) for value in rest)
    )


def _plain_nodes(nodes: Any) -> bool:
    """Nodes whose values are leaves, but for ``executor`` and ``metadata`` dicts that
    many nodes share: each distinct one of those is checked once."""
    if type(nodes) is not list or not set(map(type, nodes)) <= {dict}:
        return False
    # the keys of each distinct key sequence (a few): ints are written by msgspec as
    # by json, bools and None make msgspec raise (then json writes the header)
    if not set(map(type, chain.from_iterable(set(map(tuple, nodes))))) <= _LEAVES:
        return False
    kinds = Counter(map(type, chain.from_iterable(map(dict.values, nodes))))
    if not set(kinds) <= _LEAVES | {dict}:
        return False
    shared = [*map(dict.get, nodes, repeat("executor")), *map(dict.get, nodes, repeat("metadata"))]
    distinct = dict(zip(map(id, shared), shared, strict=True)).values()
    if not set(map(type, distinct)) <= {dict, type(None)}:
        return False
    if kinds[dict] != len(shared) - shared.count(None):  # a dict under another key
        return False
    return all(map(_is_plain, distinct))


def _plain_rows(rows: Any) -> bool:
    """A list of flat lists of leaves (edges, the blob list)."""
    return (
        type(rows) is list
        and set(map(type, rows)) <= _ROWS
        and set(map(type, chain.from_iterable(rows))) <= _LEAVES
    )


def _is_plain(value: Any, depth: int = 0) -> bool:
    """The plain-JSON check of :func:`_plain_header` for a small value (a cycle or deep
    nesting is not plain: json then raises as before)."""
    kind = type(value)
    if kind in _LEAVES:
        return True
    if kind is float:
        return math.isfinite(value)
    if depth > _NESTING_LIMIT:
        return False
    if kind is dict:
        return all(type(k) is str and _is_plain(v, depth + 1) for k, v in value.items())
    if kind is list or kind is tuple:
        return all(_is_plain(v, depth + 1) for v in value)
    return False


def dumps(manifest: dict[str, Any]) -> bytes:
    return json.dumps(manifest, separators=(",", ":")).encode()
