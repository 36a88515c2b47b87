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
    return frame(dumps(with_blob_list(header, blobs)), blobs)


def with_blob_list(header: dict[str, Any], blobs: dict[str, bytes]) -> dict[str, Any]:
    """A copy of ``header`` with the ``blobs`` list: ``[digest, size]`` in ``blobs``' order."""
    return {**header, "blobs": list(map(list, zip(blobs, map(len, blobs.values()), strict=True)))}


def dumps(header: dict[str, Any]) -> bytes:
    """``header`` as compact JSON (TypeError for what JSON cannot hold)."""
    return json.dumps(header, separators=(",", ":")).encode()


def frame(head: bytes, blobs: dict[str, bytes]) -> bytes:
    """The bundle of an encoded header (it lists ``blobs``) and the blobs' bytes."""
    return b"".join([MAGIC, len(head).to_bytes(8, "big"), head, *blobs.values()])


def split(body: bytes | memoryview) -> tuple[memoryview, int]:
    """The header's bytes and where the blobs start; BadRequestError if ``body`` is not
    framed as a bundle."""
    view = memoryview(body)
    if bytes(view[:4]) != MAGIC or len(view) < 12:
        raise BadRequestError("The body is not a covalent bundle (it does not start with CVB1).")
    size = int.from_bytes(view[4:12], "big")
    if 12 + size > len(view):
        raise BadRequestError("The bundle's header is longer than the body.")
    return view[12 : 12 + size], 12 + size


class Receiver:
    """A bundle that arrives in chunks (a request body), kept as its header's bytes and
    its blobs' bytes apart, each grown in place: the whole body is never held, nor its
    chunks and their join at once, nor copied to cut the header out of it.
    :meth:`take_header` hands the header over (53 MB for a fan-out of 100,000) so that
    its reader can let go of it once parsed."""

    def __init__(self) -> None:
        self._prefix = bytearray()  # MAGIC and the header's length
        self._size = -1  # the header's length, once the prefix is in
        self._header = bytearray()
        self._header_length = 0  # bytes of it received (it may have been taken since)
        self.blobs = bytearray()  # the bytes after the header
        self.size = 0  # bytes fed

    def feed(self, chunk: bytes) -> None:
        """Take the next ``chunk`` of the body."""
        self.size += len(chunk)
        view = memoryview(chunk)
        if self._size < 0:
            need = 12 - len(self._prefix)
            self._prefix += view[:need]
            view = view[need:]
            if len(self._prefix) < 12:
                return
            self._size = int.from_bytes(self._prefix[4:12], "big")
        need = self._size - self._header_length
        if need > 0:
            taken = view[:need]
            self._header += taken
            self._header_length += len(taken)
            view = view[need:]
        if view:
            self.blobs += view

    def header_size(self) -> int:
        """The header's length, once the whole body is in; raises BadRequestError as
        :func:`split` does for a body not framed as a bundle."""
        if bytes(self._prefix[:4]) != MAGIC or len(self._prefix) < 12:
            raise BadRequestError(
                "The body is not a covalent bundle (it does not start with CVB1)."
            )
        if self._header_length < self._size:
            raise BadRequestError("The bundle's header is longer than the body.")
        return self._size

    def take_header(self) -> bytearray:
        """The header's bytes, which this receiver no longer holds (raises as
        :meth:`header_size` does)."""
        self.header_size()
        header, self._header = self._header, bytearray()
        return header


def read_blobs(
    body: bytes | bytearray | memoryview,
    listed: list[tuple[str, int]],
    offset: int,
    verify: bool = True,
) -> dict[str, bytes]:
    """The blobs ``listed`` (digest, size) in ``body`` from ``offset`` on, which they
    must fill exactly; with ``verify``, each must match its digest."""
    view = memoryview(body)
    blobs: dict[str, bytes] = {}
    for name, length in listed:
        data = bytes(view[offset : offset + length])
        if len(data) != length or length < 0:
            raise BadRequestError(f"Blob {name} is cut short: the body ends early.")
        if verify and digest(data) != name:  # a digest's own hex: no format check needed
            raise BadRequestError(f"Blob {name} does not match its digest.")
        blobs[name] = data
        offset += length
    if offset != len(view):
        raise BadRequestError("The bundle has bytes after its last blob.")
    return blobs


def unpack(body: bytes, verify: bool = True) -> tuple[dict[str, Any], dict[str, bytes]]:
    """The header and blobs of a bundle; raise BadRequestError naming what is wrong.

    The header is read as plain JSON (the server checks a dispatch's header against its
    schema instead: covalent/_wire/schema.py).
    """
    head, offset = split(body)
    try:
        header = json.loads(bytes(head))
        if not isinstance(header, dict):
            raise TypeError("the header must be a JSON object")
        listed = [_listed(entry) for entry in header.get("blobs", [])]
    except (ValueError, TypeError, RecursionError) as e:
        raise BadRequestError(f"The bundle's header is not valid: {e}.") from None
    return header, read_blobs(body, listed, offset, verify)


def _listed(entry: Any) -> tuple[str, int]:
    name, size = entry
    if not isinstance(name, str) or type(size) is not int or size < 0:
        raise TypeError(f"a blob is listed as {entry!r}, not [digest, size]")
    return name, size
