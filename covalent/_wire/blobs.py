"""Blobs: cloudpickled values named by the SHA-256 of their bytes.

The same bytes always get the same digest, so a function used by 10,000 nodes is one
blob. Only clients and executor workers call :func:`loads`; the server never does.
"""

from __future__ import annotations

import hashlib
import reprlib
from typing import Any

import cloudpickle

REPR_LIMIT = 1000

_repr = reprlib.Repr()
_repr.maxstring = REPR_LIMIT
_repr.maxother = REPR_LIMIT
_repr.maxlist = _repr.maxtuple = _repr.maxdict = _repr.maxset = 50


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def dumps(value: Any) -> bytes:
    return cloudpickle.dumps(value, protocol=5)


def loads(data: bytes) -> Any:
    return cloudpickle.loads(data)


def short_repr(value: Any) -> str:
    """A repr of ``value`` shortened for listings and the UI; never raises."""
    try:
        text = _repr.repr(value)
    except Exception as e:  # a broken __repr__ must not fail the task
        text = f"<{type(value).__name__} object (repr failed: {e})>"
    return text if len(text) <= REPR_LIMIT else text[: REPR_LIMIT - 3] + "..."


def is_digest(text: str) -> bool:
    return len(text) == 64 and all(c in "0123456789abcdef" for c in text)
