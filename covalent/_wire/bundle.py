"""A bundle: one JSON header and the blobs it lists, in one body.

Layout: ``b"CVB1"``, the header's length (8 bytes, big-endian), the header (UTF-8 JSON
with a ``"blobs"`` list of ``[digest, size]``), then the blobs' bytes back to back.
A dispatch travels as one bundle (manifest + blobs) in one request; several blobs come
back from the server the same way.
"""

from __future__ import annotations

import json
from typing import Any

from covalent._errors import BadRequestError
from covalent._wire.blobs import digest

MAGIC = b"CVB1"
MEDIA_TYPE = "application/x-covalent-bundle"


def pack(header: dict[str, Any], blobs: dict[str, bytes]) -> bytes:
    """Pack ``header`` and ``blobs`` (digest to bytes); the header gains the blob list."""
    header = {**header, "blobs": [[d, len(b)] for d, b in blobs.items()]}
    head = json.dumps(header, separators=(",", ":")).encode()
    return b"".join([MAGIC, len(head).to_bytes(8, "big"), head, *blobs.values()])


def unpack(body: bytes, verify: bool = True) -> tuple[dict[str, Any], dict[str, bytes]]:
    """The header and blobs of a bundle; raise BadRequestError naming what is wrong."""
    view = memoryview(body)
    if bytes(view[:4]) != MAGIC or len(body) < 12:
        raise BadRequestError("The body is not a covalent bundle (it does not start with CVB1).")
    size = int.from_bytes(view[4:12], "big")
    if 12 + size > len(body):
        raise BadRequestError("The bundle's header is longer than the body.")
    try:
        header = json.loads(bytes(view[12 : 12 + size]))
        if not isinstance(header, dict):
            raise TypeError("the header must be a JSON object")
        listed = [(str(d), int(n)) for d, n in header.get("blobs", [])]
    except (ValueError, TypeError) as e:
        raise BadRequestError(f"The bundle's header is not valid: {e}.") from None
    blobs: dict[str, bytes] = {}
    offset = 12 + size
    for name, length in listed:
        data = bytes(view[offset : offset + length])
        if len(data) != length or length < 0:
            raise BadRequestError(f"Blob {name} is cut short: the body ends early.")
        if verify and digest(data) != name:  # a digest's own hex: no format check needed
            raise BadRequestError(f"Blob {name} does not match its digest.")
        blobs[name] = data
        offset += length
    if offset != len(body):
        raise BadRequestError("The bundle has bytes after its last blob.")
    return header, blobs
