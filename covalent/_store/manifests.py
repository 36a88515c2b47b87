"""How a dispatch's manifest is kept in its row: JSON, compressed when it is large.

A large manifest repeats itself node after node: a fan-out of 100,000 is 46 MB of JSON
and 7 MB after zlib at its fastest level, which takes about 0.2 s of CPU, about what
SQLite spends writing the difference (and the write-ahead log then holds 39 MB less).
A small dispatch's manifest is compressed too: at about 1.5 KB of JSON (the seed's), its
row took over half of a 4 KB database page and so filled a page alone (0.7 KB compressed:
three rows to a page). A manifest under :data:`PACK_FROM` bytes stays plain JSON,
readable in the database by hand. Either reads back the same: JSON starts with ``{``,
a zlib stream never does, so rows stored before compression read as they were.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Iterable
from typing import Any

PACK_FROM = 1024
"""Bytes of JSON from which a stored manifest is compressed."""
LEVEL = 1
"""zlib's fastest level: 46 → 7.1 MB in 0.18 s (level 6: 6.4 MB in 0.54 s)."""


def packed(text: bytes) -> bytes:
    """A manifest's JSON as it is stored (given as stored already, it is the answer:
    JSON starts with ``{``, a zlib stream never does)."""
    if text[:1] != b"{":
        return text
    return zlib.compress(text, LEVEL) if len(text) >= PACK_FROM else text


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
    packer = zlib.compressobj(LEVEL)
    out = [packer.compress(b"".join(head))]
    out.extend(packer.compress(piece) for piece in pieces)
    out.append(packer.flush())
    return b"".join(out)


def unpacked(raw: bytes) -> bytes:
    """A stored manifest's JSON."""
    raw = bytes(raw)  # PostgreSQL's driver may give a memoryview
    return raw if raw[:1] == b"{" else zlib.decompress(raw)


def loaded(raw: bytes) -> dict[str, Any]:
    """A stored manifest (plain dicts and lists)."""
    manifest: dict[str, Any] = json.loads(unpacked(raw))
    return manifest
