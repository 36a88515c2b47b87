"""How a dispatch's manifest is kept in its row: JSON, compressed when it is large.

A large manifest repeats itself node after node: a fan-out of 100,000 is 46 MB of JSON
and 7 MB after zlib at its fastest level, which takes about 0.2 s of CPU, about what
SQLite spends writing the difference (and the write-ahead log then holds 39 MB less).
A small dispatch's manifest is compressed too: at about 1.5 KB of JSON (the seed's), its
row took over half of a 4 KB database page and so filled a page alone (0.7 KB compressed:
three rows to a page). A manifest under :data:`PACK_FROM` bytes stays plain JSON,
readable in the database by hand. Either reads back the same: JSON starts with ``{``,
a zlib stream never does, so rows stored before compression read as they were.

Since revision 0005 the stream starts from a preset dictionary (:data:`DICTIONARY`,
RFC 1950's FDICT: the stream names it by its Adler-32), the JSON that every manifest
repeats: the seed's manifest compresses to 489 bytes rather than 680, and its row fits
five to a page rather than four. Streams without one (stored before) read as they were.
"""

from __future__ import annotations

import functools
import json
import logging
import zlib
from collections.abc import Iterable
from typing import Any

from covalent._wire import manifest as manifestmod

log = logging.getLogger("covalent.store")

PACK_FROM = 1024
"""Bytes of JSON from which a stored manifest is compressed."""
LEVEL = 1
"""zlib's fastest level: 46 → 7.1 MB in 0.18 s (level 6: 6.4 MB in 0.54 s)."""


DICTIONARY = (
    b'"retry_delay":"retries":"timeout":"cache":true,"extras":"'
    b'"class":"covalent.executor.executor_plugins.'
    b'"executor":{"name":"dask","attributes":{"scheduler_address":"tcp://127.0.0.1:'
    b'"executor":{"name":"slurm","attributes":{"executor":{"name":"ssh","attributes":{"hostname":"'
    b'"reuse":{"dispatch_id":"","triggers":[{'
    b'"metadata":{"collection":{"type":"dict","keys":["'
    b'"metadata":{"collection":{"type":"list"}}},"kind":"collection","name":":electron_list:",'
    b'"kind":"sublattice","name":":sublattice:'
    b'"doc":null,"source":"@ct.lattice\\ndef (","function":"'
    b'{"format":1,"lattice":{"name":"'
    b'"inputs":{"args":[],"kwargs":{},"args_repr":[],"kwargs_repr":{}},"nodes":['
    b'"result":{"node":'
    b'"functions":{"":{"name":"","source":"def (x: Any) -> Any:\\n    return x\\n"},'
    b'"edges":[[0,1,null,"x"],[1,2,0,null],'
    b'{"id":1,"name":":parameter:","kind":"parameter","value":"","value_repr":"'
    b'{"id":0,"name":"","kind":"electron","executor":{"name":"local","attributes":{}},'
    b'"metadata":{},"fingerprint":"","function":"'
)
"""zlib's preset dictionary for manifests: what their JSON repeats, the commonest last
(nearest the data). Never change it: a stored stream names its dictionary by its
Adler-32, and a new one goes into :data:`_DICTIONARIES` beside it."""
_DICTIONARIES = {zlib.adler32(DICTIONARY): DICTIONARY}
"""Every dictionary a stored manifest may name, by Adler-32."""


def packed(text: bytes) -> bytes:
    """A manifest's JSON as it is stored (given as stored already, it is the answer:
    JSON starts with ``{``, a zlib stream never does)."""
    if text[:1] != b"{":
        return text
    if len(text) < PACK_FROM:
        return text
    packer = zlib.compressobj(LEVEL, zdict=DICTIONARY)
    return packer.compress(text) + packer.flush()


def packed_pieces(pieces: Iterable[bytes]) -> bytes:
    """:func:`packed` of the JSON that ``pieces`` join to, compressed as they come: the
    whole JSON is never held (the same bytes as :func:`packed` of it)."""
    head: list[bytes] = []
    size = 0
    pieces = iter(pieces)
    for piece in pieces:  # up to PACK_FROM bytes: it may stay plain JSON
        head.append(piece)
        size += len(piece)
        if size >= PACK_FROM:
            break
    else:
        return b"".join(head)
    packer = zlib.compressobj(LEVEL, zdict=DICTIONARY)
    out = [packer.compress(b"".join(head))]
    out.extend(packer.compress(piece) for piece in pieces)
    out.append(packer.flush())
    return b"".join(out)


SUMMARY_APART_FROM = 2048
"""Bytes of stored manifest from which a dispatch's row keeps its summary (the lattice's
name, doc and function, the inputs and the result: what a Result needs) apart, as JSON
in its ``summary`` column. Under it, and with a summary of under
:data:`SUMMARY_READ_UNDER` bytes, the column is empty and the summary is read from the
manifest, which holds all of it: the seed's row was 1.28 KB with its 326-byte summary,
three to a 4 KB page, and is under 1 KB without it."""
SUMMARY_READ_UNDER = 1024
"""Bytes of a summary's JSON under which it may be read from the manifest: what a read
remembers (:data:`SUMMARIES_KEPT`) stays small, though a small stored manifest may hold
a long input repr that compresses well (440 KB in 2 KB)."""


def stored_summary(summary: dict[str, Any], manifest: bytes) -> str:
    """The ``summary`` column for a row whose stored manifest is ``manifest``: empty
    where :func:`summary_of` can read it from the manifest (see
    :data:`SUMMARY_APART_FROM`), else compact JSON."""
    text = json.dumps(summary, separators=(",", ":"))
    if len(manifest) < SUMMARY_APART_FROM and len(text) < SUMMARY_READ_UNDER:
        return ""
    return text


def summary_of(column: str, manifest: bytes | None, name: str) -> dict[str, Any]:
    """A dispatch's summary from its row: the ``summary`` column's JSON, or where that is
    empty, :func:`covalent._wire.manifest.summary` of the stored ``manifest`` (which the
    query must then give). A manifest that cannot be read (a damaged row: the dispatch
    fails on resume, saying so) gives the lattice's ``name`` and no inputs, so that the
    row can still be read and shown. A summary read from a manifest is remembered
    (:data:`SUMMARIES_KEPT`) and shared between reads: callers must not change it."""
    if column:
        summary: dict[str, Any] = json.loads(column)
        return summary
    return _summary_in(bytes(manifest or b""), name)


SUMMARIES_KEPT = 1024
"""Summaries read from small manifests that are remembered, by the manifest's bytes: a
client waiting on a dispatch reads its row again and again, and inflating and parsing
its manifest each time took a row's read from 41 to 65 µs."""


@functools.lru_cache(maxsize=SUMMARIES_KEPT)
def _summary_in(manifest: bytes, name: str) -> dict[str, Any]:
    try:
        return manifestmod.summary(loaded(manifest))
    except (ValueError, TypeError, KeyError, AttributeError, RecursionError, zlib.error):
        log.warning("the stored manifest of lattice %r cannot be read", name, exc_info=True)
        return {
            "lattice": {"name": name, "doc": None, "function": None},
            "inputs": {"args": [], "kwargs": {}, "args_repr": [], "kwargs_repr": {}},
            "result": {},
        }


def from_dictionary(raw: bytes) -> bool:
    """Whether stored manifest ``raw`` is a zlib stream from a preset dictionary (its
    FDICT flag, RFC 1950 2.2; its Adler-32 follows)."""
    return raw[:1] != b"{" and len(raw) >= 6 and bool(raw[1] & 0x20)


def unpacked(raw: bytes) -> bytes:
    """A stored manifest's JSON. Raises zlib.error for a stream that is damaged, or
    names a dictionary this covalent does not know, or (one from a dictionary) is cut
    short or followed by other bytes (a stream without one is read as zlib reads it)."""
    raw = bytes(raw)  # PostgreSQL's driver may give a memoryview
    if raw[:1] == b"{":
        return raw
    if not from_dictionary(raw):
        return zlib.decompress(raw)
    zdict = _DICTIONARIES.get(int.from_bytes(raw[2:6], "big"))
    if zdict is None:
        raise zlib.error("the stored manifest names a compression dictionary not known here")
    inflater = zlib.decompressobj(zdict=zdict)
    text = inflater.decompress(raw)
    if not inflater.eof or inflater.unused_data:
        raise zlib.error("the stored manifest is cut short or has bytes after its end")
    return text


def loaded(raw: bytes) -> dict[str, Any]:
    """A stored manifest (plain dicts and lists)."""
    manifest: dict[str, Any] = json.loads(unpacked(raw))
    return manifest
