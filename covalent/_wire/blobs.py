"""Blobs: cloudpickled values named by the SHA-256 of their bytes.

The same bytes always get the same digest, so a function used by 10,000 nodes is one
blob. Only clients and executor workers call :func:`loads`; the server never does.
"""

from __future__ import annotations

import hashlib
import io
import json
import pickle
import re
import reprlib
import sys
import sysconfig
import types
from collections import ChainMap
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import cloudpickle

REPR_LIMIT = 1000


class _ShortRepr(reprlib.Repr):
    """reprlib's Repr, also cutting bytes before building their repr (reprlib would call
    the built-in repr on the whole object: 200 MB of text for 50 MB of bytes)."""

    def repr_bytes(self, value: bytes, level: int) -> str:
        return self._cut(value)

    def repr_bytearray(self, value: bytearray, level: int) -> str:
        return self._cut(value)

    def _cut(self, value: bytes | bytearray) -> str:
        if len(value) <= self.maxother:
            return repr(value)
        head = repr(value[: self.maxother // 4])
        return f"{head[:-1]}...{head[-1]} ({len(value)} bytes)"


_repr = _ShortRepr()
_repr.maxstring = REPR_LIMIT
_repr.maxother = REPR_LIMIT
_repr.maxlist = _repr.maxtuple = _repr.maxdict = _repr.maxset = 50


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


_INSTALLED = tuple(
    str(Path(p).resolve())
    for p in {sysconfig.get_paths()[k] for k in ("stdlib", "platstdlib", "purelib", "platlib")}
)
_by_value_checked: set[str] = set()


def _pickle_module_by_value(module: ModuleType) -> None:
    """Send ``module``'s code with the pickle when it is the user's own (not installed).

    A worker may not be able to import a module that lives only in the user's project
    (a test file, a script's helper module), so its functions and classes travel by value.
    """
    name = module.__name__
    if name in _by_value_checked:
        return
    _by_value_checked.add(name)
    if name != "__main__" and is_users_own(module):
        cloudpickle.register_pickle_by_value(module)


def is_users_own(module: ModuleType | None) -> bool:
    """Whether ``module`` is the user's own code (``__main__``, a script's helper, a
    notebook), not part of covalent nor installed: what a worker may not be able to import."""
    if module is None:
        return False
    name = module.__name__
    if name == "__main__":
        return True
    path = getattr(module, "__file__", None)
    if name.split(".")[0] == "covalent" or not path:
        return False
    return not str(Path(path).resolve()).startswith(_INSTALLED)


_PLAIN = (int, float, str, bytes, bool, type(None))
_SCALARS = (float, bool, type(None))  # short reprs; an int's may be long


def dumps(value: Any) -> bytes:
    """Pickle ``value``; functions and classes of the user's own modules go by value."""
    if type(value) in _PLAIN:  # nothing for cloudpickle to do (a fan-out's parameters)
        return pickle.dumps(value, protocol=5)
    buffer = io.BytesIO()
    dump(value, buffer)
    return buffer.getvalue()


def dump(value: Any, file: Any) -> None:
    """:func:`dumps` into ``file`` (anything with ``write``), byte for byte the same.

    Large buffers inside ``value`` (a 50 MB bytes object) reach ``file.write`` as they
    are, not copied into the pickle first.
    """
    if type(value) in _PLAIN:
        pickle.Pickler(file, protocol=5).dump(value)
        return
    for candidate in (value, type(value)):
        module = sys.modules.get(getattr(candidate, "__module__", None) or "")
        if module is not None:
            _pickle_module_by_value(module)
    _Pickler(file, protocol=5).dump(value)


def _reduce_code(code: types.CodeType) -> Any:
    """cloudpickle's reduction of a code object, with the real file name kept.

    cloudpickle replaces it with "<dynamic-code>", which leaves tracebacks of electrons
    without their source lines; the worker runs on a machine that usually has the file.
    """
    constructor, args = cloudpickle.cloudpickle._code_reduce(code)
    args = tuple(code.co_filename if a == "<dynamic-code>" else a for a in args)
    return constructor, args


class _Pickler(cloudpickle.Pickler):
    dispatch_table = ChainMap({types.CodeType: _reduce_code}, cloudpickle.Pickler.dispatch_table)


def loads(data: bytes) -> Any:
    return cloudpickle.loads(data)


COMPOSITE = b"CVC1"
"""A composite blob: a list, tuple, set or dict of other blobs, named by their digests.

The dispatcher makes one for a collection node instead of running it, so the items'
bytes are neither copied nor stored again; whoever loads the value assembles it.
"""


def composite(shape: dict[str, Any], items: list[str]) -> bytes:
    return COMPOSITE + json.dumps({**shape, "items": items}, separators=(",", ":")).encode()


def composite_items(data: bytes) -> list[str]:
    """The digests a composite blob names (none for an ordinary blob)."""
    if not data.startswith(COMPOSITE):
        return []
    return list(json.loads(data[len(COMPOSITE) :])["items"])


def load_value(name: str, get: Callable[[str], Any]) -> Any:
    """The value of blob ``name``, assembling composites from their items."""
    data = get(name)  # bytes, or any buffer (a worker maps large blob files)
    if data[: len(COMPOSITE)] != COMPOSITE:
        return loads(data)
    shape = json.loads(data[len(COMPOSITE) :])
    items = [load_value(item, get) for item in shape["items"]]
    kind = shape["type"]
    if kind == "dict":
        return dict(zip(shape["keys"], items, strict=True))
    return {"list": list, "tuple": tuple, "set": set}[kind](items)


def short_repr(value: Any) -> str:
    """A repr of ``value`` shortened for listings and the UI; never raises."""
    if type(value) in _SCALARS or (type(value) is int and -(10**30) < value < 10**30):
        return repr(value)
    try:
        text = _repr.repr(value)
    except Exception as e:  # a broken __repr__ must not fail the task
        text = f"<{type(value).__name__} object (repr failed: {e})>"
    return text if len(text) <= REPR_LIMIT else text[: REPR_LIMIT - 3] + "..."


_DIGEST = re.compile("[0-9a-f]{64}")


def is_digest(text: str) -> bool:
    return _DIGEST.fullmatch(text) is not None
