"""The schema of a dispatch on the wire, and the server's checks of it at the door.

A bundle's header (the manifest with its ``blobs`` list, see :mod:`bundle`) is decoded
and checked against the typed records below in one pass (pydantic-core's JSON parser and
validators), or, from ``LARGE_HEADER`` bytes, in pieces of its long lists (msgspec's
typed decoders with the same rules, pydantic's where they refuse, for the error): a
header nested deeper than pydantic's limit (200 levels), a number out of range, a
string that is not valid UTF-8, a field of the wrong type or out of its bounds is
refused before the manifest is made of it. :func:`check_structure` then checks
what a schema cannot say: node ids in order, edges between nodes that exist, argument
slots, acyclicity, and that every named blob was sent or is stored.

The records are TypedDicts, so a checked manifest is plain dicts and lists (edges are
tuples) that the dispatcher reads as before. Unknown keys are kept unchecked (the format
is open to additions; a new field that the server reads must be added here); known keys
must fit. Nothing is unpickled.

Errors: :class:`BadRequestError` (400) for a body that is not a bundle or whose header
is not JSON, :class:`InvalidFieldError` (422) naming the first field that does not fit.
"""

from __future__ import annotations

import json
import math
import operator
import re
from collections.abc import Callable, Iterable, Iterator
from itertools import compress
from typing import Annotated, Any, Literal, cast

import msgspec
import pydantic_core
from pydantic import (
    ConfigDict,
    Field,
    StringConstraints,
    TypeAdapter,
    ValidationError,
    with_config,
)
from pydantic_core import ErrorDetails
from typing_extensions import NotRequired, Required, TypedDict

from covalent._errors import BadRequestError, InvalidFieldError
from covalent._wire import bundle
from covalent._wire.manifest import share_alike, topological_order

MAX_INT = 2**63 - 1
"""The largest integer a database column takes (SQLite's and PostgreSQL's BIGINT)."""
MAX_SECONDS = 1e9
"""The longest timeout or retry delay (about 31 years): any longer is a mistake."""
MAX_RETRIES = 10_000

_CONFIG = ConfigDict(extra="allow", strict=True)

Digest = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]
"""A blob's name: the SHA-256 of its bytes, 64 lowercase hex digits."""
Count = Annotated[int, Field(ge=0, le=MAX_INT)]
Seconds = Annotated[float, Field(ge=0, le=MAX_SECONDS, allow_inf_nan=False)]
Retries = Annotated[int, Field(ge=0, le=MAX_RETRIES)]
NodeKindName = Literal["parameter", "electron", "collection", "operation", "sublattice"]


@with_config(_CONFIG)
class TaskPolicy(TypedDict, total=False):
    """Settings of a task the dispatcher applies (an electron's, or its executor's)."""

    retries: Retries
    retry_delay: Seconds
    timeout: Seconds


_ExecutorClass = TypedDict(
    "_ExecutorClass", {"class": str, "class_blob": Digest}, total=False
)  # "class" is a keyword: these two keys need the functional form


@with_config(_CONFIG)
class ExecutorSpec(_ExecutorClass):
    """An executor as it travels: a plugin's short name and its settings (JSON); an
    executor class the worker imports as ``class`` (``module:qualname``), or unpickles
    from ``class_blob`` when it is the user's own."""

    name: str
    attributes: NotRequired[TaskPolicy]


@with_config(_CONFIG)
class CollectionShape(TypedDict):
    """How a collection node's items make its value; a dict's keys in item order."""

    type: Literal["list", "tuple", "set", "dict"]
    keys: NotRequired[list[str]]


@with_config(_CONFIG)
class NodeMetadata(TaskPolicy, total=False):
    """A node's JSON settings; ``extras`` is the digest of its pickled deps and hooks."""

    cache: bool
    collection: CollectionShape
    extras: Digest


@with_config(_CONFIG)
class ManifestNode(TypedDict, total=False):
    """One node of a manifest. Parameters have ``value`` (and ``value_repr``); the other
    kinds have ``function``, ``executor`` and ``metadata``."""

    id: Required[Count]
    name: Required[str]
    kind: Required[NodeKindName]
    value: Digest
    value_repr: str
    function: Digest
    executor: ExecutorSpec
    metadata: NodeMetadata
    fingerprint: Digest  # what the node is and calls, for reuse and the cache


@with_config(_CONFIG)
class Inputs(TypedDict):
    """The lattice's own arguments, as blobs, with short reprs for listings."""

    args: list[Digest]
    kwargs: dict[str, Digest]
    args_repr: NotRequired[list[str]]
    kwargs_repr: NotRequired[dict[str, str]]


@with_config(_CONFIG)
class LatticeEntry(TypedDict):
    name: str
    doc: NotRequired[str]
    source: NotRequired[str]
    function: NotRequired[Digest]


@with_config(_CONFIG)
class ResultEntry(TypedDict, total=False):
    """The dispatch's result: a node's output, or a value the lattice returned as is."""

    node: Count
    value: Digest


@with_config(_CONFIG)
class FunctionSource(TypedDict):
    name: str
    source: str


@with_config(_CONFIG)
class ReuseEntry(TypedDict):
    """A redispatch that takes unchanged nodes' outputs from an earlier dispatch."""

    dispatch_id: str


EdgeList = tuple[Count, Count, Count | None, str | None]
"""``[source, target, position, name]``; :class:`covalent._wire.manifest.Edge` reads one."""


@with_config(_CONFIG)
class Manifest(TypedDict, total=False):
    """A dispatch as it travels (see docs/architecture.md, "The wire")."""

    format: Required[Literal[1]]
    lattice: Required[LatticeEntry]
    inputs: Required[Inputs]
    nodes: Required[list[ManifestNode]]
    edges: Required[list[EdgeList]]
    result: Required[ResultEntry]
    functions: dict[str, FunctionSource]
    triggers: list[dict[str, Any]]  # judged by covalent._wire.triggers.check
    reuse: ReuseEntry
    blobs: list[tuple[Digest, Count]]  # in a bundle's header: what follows it


MANIFEST: TypeAdapter[Manifest] = TypeAdapter(Manifest)
NODES: TypeAdapter[list[ManifestNode]] = TypeAdapter(list[ManifestNode])
EDGES: TypeAdapter[list[EdgeList]] = TypeAdapter(list[EdgeList])
BLOB_LIST: TypeAdapter[list[tuple[Digest, Count]]] = TypeAdapter(list[tuple[Digest, Count]])

LARGE_HEADER = 1 << 20
"""Bytes of a header from which it is checked in pieces (:func:`_parse_large`): about
2,000 nodes. pydantic's one-pass ``validate_json`` holds a parsed copy of the whole
JSON besides the Python objects it builds (about 430 MB of peak memory for a fan-out of
100,000, against about 135 MB in pieces, the header's 53 MB included); and from about
this size, msgspec's pieces of nodes (:func:`_fast_nodes`) are also the quicker: at
10,000 nodes 49–55 ms against 60–63 ms, at 1,000 3.9 against 3.7 ms."""
CHUNK = 5_000
"""Items of a long list (nodes, edges, blobs) parsed and checked at a time by
:func:`_parse_large`."""
_LISTS: dict[str, TypeAdapter[Any]] = {"nodes": NODES, "edges": EDGES, "blobs": BLOB_LIST}

_MsgCount = Annotated[int, msgspec.Meta(ge=0, le=MAX_INT)]
_MsgDigest = Annotated[str, msgspec.Meta(pattern=r"\A[0-9a-f]{64}\Z")]
_FAST_TUPLES: dict[str, msgspec.json.Decoder[Any]] = {
    "edges": msgspec.json.Decoder(list[tuple[_MsgCount, _MsgCount, _MsgCount | None, str | None]]),
    "blobs": msgspec.json.Decoder(list[tuple[_MsgDigest, _MsgCount]]),
}
"""msgspec's typed decoders of the long lists of tuples (:data:`EdgeList`, the blobs),
with the rules of their TypeAdapters (``\\A…\\Z``: Python's ``$`` would let a final
newline through). They parse, check and make the tuples in one pass, where the lists
were parsed, copied into tuples and checked: reading a fan-out of 100,000 took 2.0–2.2 s
and takes 1.5–1.7 s. What they refuse goes the TypeAdapter's way, which says what is
wrong and where."""


_Hex64 = Annotated[str, msgspec.Meta(min_length=64, max_length=64)]
"""A digest's length, checked by msgspec; its digits are checked for a whole piece of
nodes at once (:data:`_HEX`): a pattern per string cost two thirds of the decode."""
_HEX = re.compile(r"[0-9a-f]*")


class _FastNode(msgspec.Struct, forbid_unknown_fields=True):
    """:class:`ManifestNode` for msgspec, its fields in the same order, its settings
    (``executor``, ``metadata``) left as JSON text (empty where absent) to be checked
    once per distinct text by :data:`_SETTINGS`. A node with a key this does not know
    (the format is open to additions) goes the TypeAdapter's way, which keeps it."""

    id: _MsgCount
    name: str
    kind: NodeKindName
    value: _Hex64 | msgspec.UnsetType = msgspec.UNSET
    value_repr: str | msgspec.UnsetType = msgspec.UNSET
    function: _Hex64 | msgspec.UnsetType = msgspec.UNSET
    executor: msgspec.Raw = msgspec.Raw()
    metadata: msgspec.Raw = msgspec.Raw()
    fingerprint: _Hex64 | msgspec.UnsetType = msgspec.UNSET


_FAST_NODES = msgspec.json.Decoder(list[_FastNode])
_SETTINGS: dict[str, TypeAdapter[Any]] = {
    "executor": TypeAdapter(ExecutorSpec),
    "metadata": TypeAdapter(NodeMetadata),
}
"""The checks of a node's settings, each applied to a setting's JSON text alone."""
_SETTINGS_NESTING = 100
"""Brackets in a setting's text from which :func:`_fast_nodes` leaves its piece to the
TypeAdapter: checked alone, a setting would pass pydantic's nesting limit a few levels
deeper than in the whole header, where it is refused."""
_SETTINGS_KEPT = 4096
"""Distinct settings texts a manifest's :func:`_fast_nodes` remembers (and shares)."""


def json_schema() -> dict[str, Any]:
    """The manifest's JSON Schema (for documentation and other clients)."""
    return MANIFEST.json_schema()


# reading


def read_bundle(body: bytes | memoryview) -> tuple[dict[str, Any], dict[str, bytes]]:
    """The checked manifest (plain dicts that fit :class:`Manifest`) and the verified
    blobs of a dispatch's bundle.

    Raises BadRequestError (400) for a body that is not a bundle, InvalidFieldError
    (422) naming the first field of the manifest that does not fit the schema.
    """
    header, offset = bundle.split(body)
    manifest = cast(dict[str, Any], parse(header))
    listed = manifest.pop("blobs", [])
    return manifest, bundle.read_blobs(body, listed, offset)


def read_received(received: bundle.Receiver) -> tuple[dict[str, Any], dict[str, bytes]]:
    """As :func:`read_bundle`, for a bundle received in chunks (:class:`bundle.Receiver`).
    Its header's bytes are taken from it and let go of as soon as they are parsed: a
    large header (53 MB for a fan-out of 100,000) is not held while the manifest is
    checked, and is not copied out of a body first."""
    if received.header_size() > LARGE_HEADER:
        manifest = cast(dict[str, Any], _parse_large(received.take_header()))
    else:
        manifest = cast(dict[str, Any], parse(received.take_header()))
    listed = manifest.pop("blobs", [])
    return manifest, bundle.read_blobs(received.blobs, listed, 0)


def parse(header: bytes | bytearray | memoryview) -> Manifest:
    """A manifest from its JSON, checked against the schema in the same pass (in pieces
    for a header over ``LARGE_HEADER`` bytes: the same checks and errors, less memory)."""
    if len(header) > LARGE_HEADER:
        return _parse_large(header)
    try:
        return MANIFEST.validate_json(bytes(header), strict=True)
    except ValidationError as e:
        raise _refusal(e) from None


def _parse_large(header: bytes | bytearray | memoryview) -> Manifest:
    """A large manifest: parsed (:func:`_split_json`), then checked
    (:func:`_checked_large`)."""
    text = header if isinstance(header, bytes | bytearray) else bytes(header)
    return _checked_large(_split_json(text), text)


def _split_json(header: bytes | bytearray) -> Any:
    """``header`` parsed as :func:`_from_json` parses it, except that its long lists
    (nodes, edges, blobs) stay lists of their items' JSON (``msgspec.Raw``, views of
    ``header``) for :func:`_checked_in_chunks` to parse ``CHUNK`` at a time: a fan-out
    of 100,000's 200,000 parsed nodes are never all held raw (each with its own copy of
    its settings, about 45 MB more than the checked ones). Where msgspec cannot split
    it (it is not a JSON object), or the rest is not JSON to pydantic-core, it is
    parsed whole, as before, with its own error."""
    try:
        top = msgspec.json.decode(header, type=dict[str, msgspec.Raw])
        lists = {
            key: msgspec.json.decode(value, type=list[msgspec.Raw])
            for key, value in top.items()
            if key in _LISTS and bytes(memoryview(value)[:1]) == b"["
        }
    except (msgspec.DecodeError, msgspec.ValidationError, RecursionError):
        return _from_json(header)
    rest = b",".join(
        msgspec.json.encode(key) + b":" + (b"[]" if key in lists else bytes(value))
        for key, value in top.items()
    )
    try:  # the same nesting as in the whole header
        raw = pydantic_core.from_json(b"{" + rest + b"}", cache_strings="keys")
    except ValueError:
        return _from_json(header)
    raw.update(lists)  # in their places: the keys are there
    return raw


def _parsed_items(key: str, items: list[Any], header: bytes | bytearray) -> list[Any]:
    """A piece of a long list of the header, as :func:`_split_json` left it (JSON text
    per item), parsed; its items as plain values already are returned as they are.
    Only dict keys go through pydantic-core's string cache: a cached value outlives
    the manifest and holds the memory around it (it is freed by whole arenas)."""
    if not items or type(items[0]) is not msgspec.Raw:
        return items
    text = b'{"' + key.encode() + b'":[' + b",".join(items) + b"]}"  # the same nesting
    try:
        return cast(list[Any], pydantic_core.from_json(text, cache_strings="keys")[key])
    except ValueError as e:
        _from_json(header)  # the whole header's error, where it is in the header
        raise BadRequestError(f"The bundle's header is not valid JSON: {e}.") from None


def _from_json(header: bytes | bytearray) -> Any:
    """``header`` parsed by pydantic-core's JSON parser (with the same nesting limit as
    ``validate_json``); BadRequestError if it is not JSON. (Given bytes, the parser
    reads them in place; a bytearray it copies first: a large header comes here whole
    only when :func:`_split_json` cannot split it.)"""
    try:
        return pydantic_core.from_json(header, cache_strings=True)
    except ValueError as e:
        raise BadRequestError(f"The bundle's header is not valid JSON: {e}.") from None


def _checked_large(raw: Any, header: bytes | bytearray) -> Manifest:
    """A large manifest's parsed JSON, checked: the manifest without its long lists in
    one go, and those lists (nodes, edges, blobs) ``CHUNK`` items at a time, each piece
    replaced by its checked copy, so only one piece is ever held twice. JSON arrays
    become tuples where the schema has tuples, as ``validate_json`` makes them. Equal
    settings of nodes become one object (see :func:`_checked_in_chunks`)."""
    long_lists: dict[str, list[Any]] = {}
    if isinstance(raw, dict):
        for key in _LISTS:
            if isinstance(raw.get(key), list):
                long_lists[key] = raw[key]
                raw[key] = []
    try:
        manifest = cast(dict[str, Any], MANIFEST.validate_python(raw, strict=True))
    except ValidationError as e:
        # as in one pass, a wrong value comes before a missing field
        if any(problem["type"] != "missing" for problem in e.errors(include_url=False)):
            raise _refusal(e) from None
        for key, items in long_lists.items():
            _checked_in_chunks(key, items, header)
        raise _refusal(e) from None
    for key, items in long_lists.items():
        manifest[key] = _checked_in_chunks(key, items, header)
    return cast(Manifest, manifest)


def _checked_in_chunks(key: str, items: list[Any], header: bytes | bytearray) -> list[Any]:
    """``items`` (the manifest's list ``key``, its items' JSON text or parsed) parsed
    and checked piece by piece, in place: by msgspec (:func:`_fast_tuples`,
    :func:`_fast_nodes`), or by the TypeAdapter where msgspec refuses a piece. Nodes
    alike share their settings and their equal strings (in msgspec's pieces by their
    text, in the others :func:`share_alike` and :func:`_shared_strings`)."""
    adapter = _LISTS[key]
    tuples = key != "nodes"  # edges and blobs are lists of tuples
    seen: dict[str, str] = {}
    settings: dict[tuple[str, bytes], Any] = {}
    for start in range(0, len(items), CHUNK):
        piece = items[start : start + CHUNK]
        fast = _fast_tuples(key, piece) if tuples else _fast_nodes(piece, settings, seen)
        if fast is not None:
            items[start : start + CHUNK] = fast
            continue
        piece = _parsed_items(key, piece, header)
        if tuples:
            piece = [tuple(item) if type(item) is list else item for item in piece]
        try:
            checked = adapter.validate_python(piece, strict=True)
        except ValidationError as e:
            raise _refusal(e, (key,), start) from None
        if not tuples:
            share_alike(checked)
            _shared_strings(checked, seen)
        items[start : start + CHUNK] = checked
    return items


def _fast_tuples(key: str, items: list[Any]) -> list[tuple[Any, ...]] | None:
    """A piece of the list ``key`` (edges, blobs: its items' JSON text) parsed and
    checked by :data:`_FAST_TUPLES`; None where the items are parsed already or it
    refuses them."""
    text = _raw_array(items)
    if text is None:
        return None
    try:
        return cast(list[tuple[Any, ...]], _FAST_TUPLES[key].decode(text))
    except (msgspec.DecodeError, RecursionError):  # and its ValidationError
        return None


def _raw_array(items: list[Any]) -> bytes | None:
    """A JSON array of ``items``, a piece that :func:`_split_json` left as JSON text;
    None where it is parsed already (a header it could not split)."""
    if not items or type(items[0]) is not msgspec.Raw:
        return None
    return b"[" + b",".join(items) + b"]"


def _fast_nodes(
    items: list[Any], settings: dict[tuple[str, bytes], Any], seen: dict[str, str]
) -> list[Any] | None:
    """A piece of the nodes (their JSON text) parsed and checked by msgspec
    (:class:`_FastNode`), each distinct settings text checked once by its TypeAdapter
    and its checked value shared by the nodes that have it (``settings``, by field and
    text), equal names, functions and fingerprints one string (``seen``): the nodes
    :func:`_checked_in_chunks` makes of the same text, in about a third of the time.
    None where the items are parsed already, or where any of them is not plain to
    msgspec (an unknown key, a value that does not fit, a deep setting): the
    TypeAdapter then checks the piece and says what is wrong and where."""
    text = _raw_array(items)
    if text is None:
        return None
    try:
        parsed = _FAST_NODES.decode(text)
    except (msgspec.DecodeError, RecursionError):  # and its ValidationError; msgspec's
        return None  # depth limit, reached where the piece is nested one level deeper
    unset = msgspec.UNSET
    nodes: list[Any] = []
    digests: list[str] = []
    digest = digests.append
    for item in parsed:
        name = seen.setdefault(item.name, item.name)
        node: dict[str, Any] = {"id": item.id, "name": name, "kind": item.kind}
        if item.value is not unset:
            node["value"] = item.value
            digest(item.value)
        if item.value_repr is not unset:
            node["value_repr"] = item.value_repr
        if item.function is not unset:
            node["function"] = seen.setdefault(item.function, item.function)
            digest(item.function)
        for field in ("executor", "metadata"):
            raw = getattr(item, field)
            if not raw:
                continue
            key = (field, bytes(raw))
            value = settings.get(key)
            if value is None:
                if key[1].count(b"[") + key[1].count(b"{") >= _SETTINGS_NESTING:
                    return None
                try:
                    value = _SETTINGS[field].validate_json(key[1], strict=True)
                except ValidationError:
                    return None
                if len(settings) < _SETTINGS_KEPT:
                    settings[key] = value
            node[field] = value
        if item.fingerprint is not unset:
            node["fingerprint"] = seen.setdefault(item.fingerprint, item.fingerprint)
            digest(item.fingerprint)
        nodes.append(node)
    if _HEX.fullmatch("".join(digests)) is None:  # each is 64 characters long
        return None
    return nodes


_SHARED_STRINGS = ("name", "fingerprint")


def _shared_strings(nodes: list[dict[str, Any]], seen: dict[str, str]) -> None:
    """Equal names and fingerprints of ``nodes`` made one string object, the one in
    ``seen`` (in place; ``seen`` gains the new ones): the parser makes one per node,
    and a fan-out's electrons share theirs."""
    for node in nodes:
        for field in _SHARED_STRINGS:
            value = node.get(field)
            if type(value) is str:
                node[field] = seen.setdefault(value, value)


def validate(manifest: Any, available: Callable[[str], bool]) -> Manifest:
    """``manifest`` (Python objects) checked as if it came over the wire: against the
    schema and for its structure; the checked copy. Raises BadRequestError or
    InvalidFieldError naming what is wrong."""
    try:
        text = json.dumps(manifest, allow_nan=False).encode()
    except (TypeError, ValueError) as e:
        raise BadRequestError(f"The manifest is not JSON: {e}.") from None
    checked = parse(text)
    check_structure(checked, available)
    return checked


def dumps(manifest: Manifest | dict[str, Any]) -> bytes:
    """The manifest as stored: JSON (UTF-8) with finite numbers only. A NaN or an
    infinity in a free-form setting (an executor's attributes) is refused, naming where
    it is (InvalidFieldError).

    pydantic-core's encoder writes a non-finite number as ``NaN`` or ``Infinity``; text
    without those words holds none, and is the answer (about a tenth of the cost of
    :func:`json.dumps`). Any other text goes through :func:`json.dumps`, which refuses
    such numbers or, when the words were only inside strings, writes JSON of the same
    value (ASCII, escaped)."""
    try:
        fast = pydantic_core.to_json(manifest, inf_nan_mode="constants")
    except pydantic_core.PydanticSerializationError:
        fast = None  # e.g. a lone surrogate, which UTF-8 cannot hold: json.dumps escapes it
    if fast is not None and b"NaN" not in fast and b"Infinity" not in fast:
        return fast
    try:
        return json.dumps(manifest, separators=(",", ":"), allow_nan=False).encode()
    except ValueError:
        field = _non_finite(manifest, "") or "?"
        raise InvalidFieldError(
            field, f"The manifest's field {field} holds a number that is not finite."
        ) from None


class NotFast(Exception):
    """A piece of a manifest's JSON that :func:`dumps` would not take from the fast
    encoder (a non-finite number, a lone surrogate): use :func:`dumps` instead."""


def dumps_in_pieces(manifest: Manifest | dict[str, Any]) -> Iterator[bytes]:
    """The bytes of :func:`dumps` of ``manifest`` in pieces that join to the same text,
    its long lists (nodes, edges) ``CHUNK`` items at a time: a large manifest's JSON
    (46 MB for 100,000 nodes, and as much again while the encoder writes it) is never
    whole in memory. Raises :class:`NotFast` where :func:`dumps` would leave the fast
    encoder for :func:`json.dumps`, which then has the whole manifest to write."""

    def fast(value: Any) -> bytes:
        try:
            text = pydantic_core.to_json(value, inf_nan_mode="constants")
        except pydantic_core.PydanticSerializationError:
            raise NotFast from None
        if b"NaN" in text or b"Infinity" in text:
            raise NotFast
        return text

    yield b"{"
    for i, (key, value) in enumerate(manifest.items()):
        yield (b"," if i else b"") + fast(key) + b":"
        if key not in ("nodes", "edges") or type(value) is not list:
            yield fast(value)
            continue
        yield b"["
        for start in range(0, len(value), CHUNK):
            yield (b"," if start else b"") + fast(value[start : start + CHUNK])[1:-1]
        yield b"]"
    yield b"}"


def _non_finite(value: Any, path: str) -> str | None:
    """Where in ``value`` a NaN or infinity is (only called on the error path)."""
    if isinstance(value, float) and not math.isfinite(value):
        return path
    if isinstance(value, dict):
        items: Iterable[tuple[Any, Any]] = value.items()
    elif isinstance(value, (list, tuple)):
        items = enumerate(value)
    else:
        return None
    for key, item in items:
        found = _non_finite(item, _join(path, key))
        if found is not None:
            return found
    return None


# errors

_JSON_TYPES = {
    dict: "an object",
    list: "an array",
    str: "a string",
    bool: "a boolean",
    int: "a number",
    float: "a number",
    type(None): "null",
}


def _refusal(
    error: ValidationError, within: tuple[str, ...] = (), offset: int = 0
) -> BadRequestError:
    """The error for the first problem; ``within`` and ``offset`` place a problem found
    in a piece of a long list (its location starts with the index in the piece)."""
    problems = error.errors(include_url=False)
    # a wrong value says more than a missing field (a field of the wrong type is often
    # why its neighbours seem missing)
    first = next((p for p in problems if p["type"] != "missing"), problems[0])
    if first["type"] == "json_invalid":
        reason = first["msg"].removeprefix("Invalid JSON: ")
        return BadRequestError(f"The bundle's header is not valid JSON: {reason}.")
    loc = list(first["loc"])
    if within:
        loc = [*within, cast(int, loc[0]) + offset, *loc[1:]] if loc else list(within)
    field = describe(loc)
    more = error.error_count() - 1
    return InvalidFieldError(
        field,
        f"The manifest's field {field} {_problem(first)}"
        + (f"; {more} more field(s) are wrong too." if more else "."),
    )


def _problem(error: ErrorDetails) -> str:
    """What is wrong with one field, in words: "is missing", "is not valid: ..."."""
    kind = error["type"]
    if kind == "missing":
        return "is missing"
    if kind == "string_pattern_mismatch":  # the one pattern: a digest
        return "is not a blob digest (64 lowercase hex digits)"
    got = _JSON_TYPES.get(type(error.get("input")), "")
    return f"is not valid: {error['msg']}" + (f" (it is {got})" if kind.endswith("_type") else "")


def describe(loc: tuple[int | str, ...] | list[int | str]) -> str:
    """A field's place as a path: ``nodes[3].metadata.timeout``."""
    path = ""
    for key in loc:
        path = _join(path, key)
    return path or "(the whole manifest)"


def _join(path: str, key: Any) -> str:
    return f"{path}[{key}]" if isinstance(key, int) else f"{path}.{key}" if path else str(key)


# structure


def check_structure(manifest: Manifest | dict[str, Any], available: Callable[[str], bool]) -> None:
    """Raise BadRequestError naming the first thing the schema cannot catch: ids out of
    order, a node without the fields of its kind, an edge to a node that is not there,
    argument slots given twice or skipped, a cycle, a blob that was not sent."""
    nodes = manifest["nodes"]
    dicts = _check_nodes(nodes, available)
    positional = _check_edges(manifest["edges"], len(nodes))
    for node in dicts:
        shape = node["metadata"]["collection"]
        _check_shape(node, shape, len(positional.get(node["id"], ())))
    result = manifest["result"]
    if "node" in result:
        if result["node"] >= len(nodes):
            raise BadRequestError(
                f"The manifest's result names node {result['node']}, which is not there."
            )
    else:
        _need_blob(result.get("value"), "the result value", available)
    inputs = manifest["inputs"]
    for position, name in enumerate(inputs["args"]):
        _need_blob(name, f"lattice argument {position}", available)
    for key, name in inputs["kwargs"].items():
        _need_blob(name, f"lattice argument '{key}'", available)


def _need_blob(name: str | None, what: str, available: Callable[[str], bool]) -> None:
    if name is None:
        raise BadRequestError(f"The manifest's {what} is missing (a blob digest).")
    if not available(name):
        raise BadRequestError(f"The manifest's {what} refers to blob {name}, which was not sent.")


def _check_nodes(nodes: list[ManifestNode], available: Callable[[str], bool]) -> list[ManifestNode]:
    """Each node's id is its position and the blobs of its kind are there; the nodes
    that are dict collections (whose shapes need the edges). (One loop with the checks
    inline: about a microsecond a node; the words of an error are made only when there
    is one.)"""
    dicts: list[ManifestNode] = []
    for position, node in enumerate(nodes):
        if node["id"] != position:
            raise BadRequestError(f"Node {position} of the manifest must have id {position}.")
        metadata = node.get("metadata", {})
        shape = metadata.get("collection")
        if shape is not None and shape["type"] == "dict":  # (of any kind, as it says)
            dicts.append(node)
        if node["kind"] == "parameter":
            value = node.get("value")
            if value is None or not available(value):
                _need_blob(value, f"node {position}'s value", available)
            continue
        function = node.get("function")
        if function is None or not available(function):
            _need_blob(function, f"node {position}'s function", available)
        executor = node.get("executor")
        if executor is None:
            raise BadRequestError(f"Node {position} of the manifest has no executor.")
        if "class_blob" in executor:
            _need_blob(executor["class_blob"], f"node {position}'s executor class", available)
        extras = metadata.get("extras")
        if extras is not None and not available(extras):
            _need_blob(extras, f"node {position}'s settings", available)
    return dicts


def _check_shape(node: ManifestNode, shape: CollectionShape, items: int) -> None:
    keys = shape.get("keys")
    if keys is None or len(keys) != items:
        raise BadRequestError(
            f"Node {node['id']} of the manifest is a dict of {items} items whose shape "
            f"names {'no' if keys is None else len(keys)} keys."
        )


def _check_edges(edges: list[Any], count: int) -> dict[int, list[int]]:
    """Check the edges; each target's positional argument indices. A graph that
    :func:`_plainly_acyclic` cannot vouch for is sorted (Kahn's algorithm) to find out
    whether it has a cycle."""
    sources = list(map(_SOURCE, edges))
    targets = list(map(_TARGET, edges))
    if edges and max(max(sources), max(targets)) >= count:
        for source, target, _index, _name in edges:
            if source >= count or target >= count:
                raise BadRequestError(
                    f"The manifest's edge {[source, target, _index, _name]!r} names a node "
                    f"that is not there (it has {count}); an edge is [source, target, index, "
                    "name]."
                )
    positional = _check_slots(edges)
    if not _plainly_acyclic(sources, targets) and len(topological_order(count, edges)) != count:
        raise BadRequestError("The manifest's edges form a cycle; a workflow must be acyclic.")
    return positional


PEELS = 4
"""Rounds of :func:`_plainly_acyclic` before it leaves a graph to Kahn's algorithm."""


def _plainly_acyclic(sources: list[int], targets: list[int]) -> bool:
    """True if the edges (``sources[i]`` to ``targets[i]``) can be seen to form no cycle
    in a few rounds of C-level passes; False if not (there may be one: ask Kahn).

    Each round: if every edge goes from a lower id to a higher one, the ids are a
    topological order; else the edges from nodes without inputs, which are on no cycle,
    are dropped and the rest looked at again. A traced fan-out is seen to be acyclic in
    three rounds (its parameters' edges go to lower ids, and a collection is made after
    the electron it feeds), a chain in one: ~30 ms at 200,000 nodes against ~0.17 s."""
    for _ in range(PEELS):
        if all(map(operator.lt, sources, targets)):
            return True
        fed = set(targets)
        keep = list(map(fed.__contains__, sources))
        if all(keep):
            return False
        sources, targets = list(compress(sources, keep)), list(compress(targets, keep))
    return False


_SOURCE, _TARGET = operator.itemgetter(0), operator.itemgetter(1)


def _check_slots(edges: list[Any]) -> dict[int, list[int]]:
    """Each node's inputs fill positions 0..n-1 once each, and each keyword once."""
    positions: dict[int, list[int]] = {}
    names: dict[int, set[str]] = {}
    for _source, target, index, name in edges:
        if name is not None:
            if name in names.setdefault(target, set()):
                raise BadRequestError(
                    f"Node {target} of the manifest gets keyword argument '{name}' twice."
                )
            names[target].add(name)
        elif index is not None:  # (neither: a wait edge, order only, no argument)
            found = positions.get(target)
            if found is None:
                positions[target] = [index]
            else:
                found.append(index)
    for target, indices in positions.items():
        if indices != [0] and sorted(indices) != list(range(len(indices))):
            raise BadRequestError(
                f"Node {target} of the manifest has positional arguments {sorted(indices)}; "
                "they must be 0, 1, 2, ... once each."
            )
    return positions
