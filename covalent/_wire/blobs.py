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
import types
from collections import ChainMap
from collections.abc import Callable
from types import ModuleType
from typing import Any, NamedTuple

import cloudpickle

from covalent._wire import modules

REPR_LIMIT = 1000
"""Characters of a value's repr kept for listings and the UI (node rows, inputs)."""
BYTES_HEAD = 64
"""Bytes shown of a bytes value longer than REPR_LIMIT, with its length: binary data's
repr is up to four characters a byte (``\\x00``), so a 250-byte head filled a 1,000-character
repr in every node row that output it and said no more than 64 bytes do."""


class _ShortRepr(reprlib.Repr):
    """reprlib's Repr, also cutting bytes before building their repr (reprlib would call
    the built-in repr on the whole object: 200 MB of text for 50 MB of bytes) to their
    first :data:`BYTES_HEAD` bytes and their length."""

    def repr_bytes(self, value: bytes, level: int) -> str:
        return self._cut(value)

    def repr_bytearray(self, value: bytearray, level: int) -> str:
        return self._cut(value)

    def _cut(self, value: bytes | bytearray) -> str:
        if len(value) <= self.maxother:
            return repr(value)
        head = repr(value[:BYTES_HEAD])
        return f"{head[:-1]}...{head[-1]} ({len(value)} bytes)"


_repr = _ShortRepr()
_repr.maxstring = REPR_LIMIT
_repr.maxother = REPR_LIMIT
_repr.maxlist = _repr.maxtuple = _repr.maxdict = _repr.maxset = 50


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def is_users_own(module: ModuleType | None) -> bool:
    """Whether ``module`` is the user's own code (``__main__``, a script's helper module,
    a notebook), not covalent nor installed: what a worker may not be able to import, so
    what is defined there travels with the dispatch (``__main__`` by value, a module as
    its source: see :mod:`covalent._wire.modules`)."""
    if module is None:
        return False
    return module.__name__ == "__main__" or modules.is_users(module)


PLAIN = (int, float, str, bytes, bool, type(None))
"""Types pickled without cloudpickle: nothing in them refers to code."""
_SCALARS = (float, bool, type(None))  # short reprs; an int's may be long


class Pickled(NamedTuple):
    """A pickle, and the user's modules it refers to (see covalent/_wire/modules.py)."""

    data: bytes
    modules: frozenset[str] = frozenset()
    forced: frozenset[str] = frozenset()  # modules sent even if installed (DepsModule)


def pickled(value: Any) -> Pickled:
    """Pickle ``value``; note the user's own modules it refers to."""
    if type(value) in PLAIN:  # nothing for cloudpickle to do (a fan-out's parameters)
        return Pickled(pickle.dumps(value, protocol=5))
    buffer = io.BytesIO()
    pickler = _Pickler(buffer, protocol=5)
    pickler.dump(value)
    return Pickled(buffer.getvalue(), frozenset(pickler.modules), frozenset(pickler.forced))


def dumps(value: Any) -> bytes:
    """Pickle ``value``. Functions and classes of the user's own modules are referred to
    by name; the sources of those modules are not in these bytes (see
    :func:`dumps_shipping` and covalent/_wire/modules.py)."""
    return pickled(value).data


def dumps_shipping(value: Any) -> bytes:
    """Pickle ``value`` with the sources of the user's modules it needs, so that any
    process can load it (a function blob, a lattice)."""
    done = pickled(value)
    return done.data + modules.trailer(modules.closure(done.modules, done.forced))


def dump(value: Any, file: Any) -> None:
    """:func:`dumps` into ``file`` (anything with ``write``), byte for byte the same.

    Large buffers inside ``value`` (a 50 MB bytes object) reach ``file.write`` as they
    are, not copied into the pickle first.
    """
    if type(value) in PLAIN:
        pickle.Pickler(file, protocol=5).dump(value)
        return
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
    """cloudpickle's pickler, noting the user's modules that what it pickles refers to."""

    dispatch_table = ChainMap({types.CodeType: _reduce_code}, cloudpickle.Pickler.dispatch_table)

    def __init__(self, file: Any, protocol: int) -> None:
        super().__init__(file, protocol=protocol)
        self.modules: set[str] = set()
        self.forced: set[str] = set()
        self._seen: dict[str, bool] = {}

    def reducer_override(self, obj: Any) -> Any:
        if isinstance(obj, ModuleType):
            self._note(obj)
        elif isinstance(obj, (type, types.FunctionType)):
            module = sys.modules.get(getattr(obj, "__module__", None) or "")
            if module is not None and self._note(module) and isinstance(obj, types.FunctionType):
                path = modules.wrapper_path(obj, module)
                if path is not None:  # an electron's function: by name, through the electron
                    return modules.wrapped_function, path
        elif hasattr(type(obj), "covalent_modules"):
            self.forced.update(obj.covalent_modules())
        return super().reducer_override(obj)

    def _note(self, module: ModuleType) -> bool:
        """Note ``module`` if it travels as source; whether it does."""
        name = module.__name__
        known = self._seen.get(name)
        if known is None:
            known = self._seen[name] = _travels_as_source(module)
            if known:
                self.modules.add(name)
        return known


def _travels_as_source(module: ModuleType) -> bool:
    if not modules.is_users(module):
        return False
    if modules.source_of(module) is not None:
        return True
    if (getattr(module, "__file__", None) or "").endswith(".pyc"):  # no source: by value
        cloudpickle.register_pickle_by_value(module)
    return False


def loads(data: Any) -> Any:
    """Unpickle a blob, first making the module sources it carries importable."""
    provide_sources(data)
    return cloudpickle.loads(data)


def provide_sources(data: Any) -> bool:
    """Make the module sources a blob carries importable; whether it carries any."""
    sources = modules.read_trailer(data)
    if sources:
        modules.provide(sources)
    return bool(sources)


COMPOSITE = b"CVC1"
"""A composite blob: a list, tuple, set or dict of other blobs, named by their digests.

The dispatcher makes one for a collection node instead of running it, so the items'
bytes are neither copied nor stored again; whoever loads the value assembles it.
"""


def composite(shape: dict[str, Any], items: list[str]) -> bytes:
    return COMPOSITE + json.dumps({**shape, "items": items}, separators=(",", ":")).encode()


def composite_repr(kind: str, items: list[str]) -> str:
    """The short repr of a composite of ``kind`` (list, tuple, set, dict) from its
    items' reprs, shortened as :func:`short_repr`."""
    brackets = {"list": "[]", "tuple": "()", "set": "{}"}.get(kind, "{}")
    return _shortened(f"{brackets[0]}{', '.join(items)}{brackets[1]}")


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
    return _shortened(text)


def _shortened(text: str) -> str:
    """``text`` cut to REPR_LIMIT characters, ending in "..." where it was cut."""
    return text if len(text) <= REPR_LIMIT else text[: REPR_LIMIT - 3] + "..."


_DIGEST = re.compile("[0-9a-f]{64}")


def is_digest(text: str) -> bool:
    return _DIGEST.fullmatch(text) is not None
