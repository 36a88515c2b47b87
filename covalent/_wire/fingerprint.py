"""Fingerprints: when two electrons are equal, for redispatch reuse and ``cache=True``.

A node's function blob is a pickle, and pickles of the same code are not the same bytes
from one process to the next, nor after a round trip: cloudpickle names each class it
sends by value with a random id, a set's order follows string hashing (random per
process, so a ``x in {"a", "b"}`` in a function changes its pickle), and a function
unpickled and pickled again (a redispatch re-traces the stored lattice) shares its
strings differently. Equal digests were therefore a matter of luck.

A fingerprint is a SHA-256 computed from what a value *is*, the same in every process:

- a function of the user's (by value, or from the user's own modules): its code
  (bytecode, constants, names; not line numbers or the file name), defaults, closure,
  attributes, and the fingerprint of every global it uses, recursively; so an electron's
  fingerprint changes when anything it calls changes, however deep;
- a class of the user's: its name, bases and attributes, the same way;
- a module of the user's: its source; installed functions, classes and modules: their
  names (a new version of a library does not count as a change);
- data: its contents (sets and dicts in sorted order); other objects: their class and
  what their ``__reduce_ex__`` gives; anything else: its pickle.
"""

from __future__ import annotations

import collections
import functools
import hashlib
import pickle
import sys
import types
from collections.abc import Iterable
from typing import Any

from covalent._wire import blobs, modules

_ATOMS = (bool, int, float, complex, str, bytes, type(None))
_CONTAINERS = (tuple, list, dict, set, frozenset)
_CLASS_SKIP = ("__dict__", "__weakref__", "__module__", "__qualname__", "__doc__")
_BUILTIN = (
    types.BuiltinFunctionType,
    types.MethodDescriptorType,
    types.WrapperDescriptorType,
    types.MethodWrapperType,
    types.ClassMethodDescriptorType,
    types.GetSetDescriptorType,
    types.MemberDescriptorType,
)


def _hash(tag: str, *parts: bytes) -> bytes:
    h = hashlib.sha256(tag.encode())
    for part in parts:
        h.update(len(part).to_bytes(8, "big"))
        h.update(part)
    return h.digest()


class Fingerprints:
    """Computes fingerprints, remembering those of objects seen (one per manifest)."""

    def __init__(self) -> None:
        self._memo: dict[int, bytes] = {}
        self._keep: list[Any] = []  # objects fingerprinted stay alive: their ids stay theirs
        self._active: set[int] = set()

    def of(self, *values: Any) -> str:
        """The fingerprint of ``values`` together, as hex."""
        return _hash("values", *(self._of(v) for v in values)).hex()

    def _of(self, value: Any) -> bytes:
        kind = type(value)
        if kind in _ATOMS:
            return _hash(kind.__name__, repr(value).encode())
        key = id(value)
        if key in self._active:  # a cycle (a recursive function): named, not followed
            return _hash("cycle", _name(value).encode())
        if kind in _CONTAINERS:  # not remembered: cheaper to hash again than to keep
            self._active.add(key)
            try:
                return self._container(value)
            finally:
                self._active.discard(key)
        known = self._memo.get(key)
        if known is not None:
            return known
        self._active.add(key)
        try:
            digest = self._compute(value)
        finally:
            self._active.discard(key)
        self._memo[key] = digest
        self._keep.append(value)
        return digest

    def _all(self, values: Iterable[Any]) -> list[bytes]:
        return [self._of(v) for v in values]

    def _container(self, value: Any) -> bytes:
        """Lists, tuples, dicts and sets by content; sets and dicts in sorted order.
        Those holding only numbers, strings and bytes are hashed from one pickle."""
        kind = type(value)
        name = kind.__name__
        if kind is dict:
            if all(type(k) is str for k in value) and _atoms(value.values()):
                return _hash(name, pickle.dumps(sorted(value.items()), protocol=5))
            return _hash(name, *sorted(self._of(k) + self._of(v) for k, v in value.items()))
        if kind in (set, frozenset):
            return _hash(name, *sorted(self._all(value)))
        if _atoms(value):
            return _hash(name, pickle.dumps(value, protocol=5))
        return _hash(name, *self._all(value))

    def _compute(self, value: Any) -> bytes:
        if isinstance(value, types.CodeType):
            return self._code(value)
        if isinstance(value, types.FunctionType):
            return self._function(value)
        if isinstance(value, types.ModuleType):
            return self._module(value)
        if isinstance(value, type):
            return self._class(value)
        if isinstance(value, _BUILTIN):
            return _hash("builtin", _name(value).encode())
        if isinstance(value, types.MethodType):
            return _hash("method", self._of(value.__func__), self._of(value.__self__))
        if isinstance(value, functools.partial):
            parts = (value.func, value.args, value.keywords)
            return _hash("partial", *self._all(parts))
        return self._object(value)

    def _code(self, code: types.CodeType) -> bytes:
        numbers = (
            code.co_argcount,
            code.co_posonlyargcount,
            code.co_kwonlyargcount,
            code.co_flags,
        )
        return _hash(
            "code",
            code.co_code,
            repr(numbers).encode(),
            repr((code.co_names, code.co_varnames, code.co_freevars, code.co_cellvars)).encode(),
            *self._all(code.co_consts),
        )

    def _function(self, function: types.FunctionType) -> bytes:
        reference = _installed_reference(function)
        if reference is not None:
            return _hash("ref", reference.encode())
        used = sorted(n for n in _global_names(function.__code__) if n in function.__globals__)
        cells = [c.cell_contents for c in function.__closure__ or () if _filled(c)]
        return _hash(
            "function",
            function.__qualname__.encode(),
            self._of(function.__code__),
            *(self._of(name) + self._of(function.__globals__[name]) for name in used),
            self._of(function.__defaults__),
            self._of(function.__kwdefaults__),
            self._of(cells),
            self._of({k: v for k, v in vars(function).items() if k != "__wrapped__"}),
        )

    def _module(self, module: types.ModuleType) -> bytes:
        source = modules.source_of(module) if modules.is_users(module) else None
        digest = source.digest if source is not None else ""
        return _hash("module", module.__name__.encode(), digest.encode())

    def _class(self, cls: type) -> bytes:
        reference = _installed_reference(cls)
        if reference is not None:
            return _hash("ref", reference.encode())
        attributes = {k: v for k, v in vars(cls).items() if k not in _CLASS_SKIP}
        return _hash(
            "class",
            cls.__qualname__.encode(),
            self._of(cls.__bases__),
            self._of(type(cls)),
            self._of(attributes),
        )

    def _object(self, value: Any) -> bytes:
        try:
            reduced = value.__reduce_ex__(4)
        except Exception:
            reduced = None
        if isinstance(reduced, tuple):
            parts = [list(p) if _iterator(p) else p for p in reduced]  # dict items, ...
            return _hash("object", self._of(type(value)), *self._all(parts))
        try:
            return _hash("pickle", blobs.dumps(value))
        except Exception:
            return _hash("repr", repr(value).encode())


def pickle_may_vary(value: Any, budget: int = 10_000) -> bool:
    """Whether equal copies of ``value`` may pickle to different bytes: it holds a set,
    or an object other than numbers, strings, bytes, lists, tuples and dicts (a class
    sent by value gets a random id). Looks at ``budget`` items at most and answers False
    beyond them: a digest that differs only costs a reuse, never gives a wrong one."""
    if type(value) in _ATOMS:  # most parameters: no queue needed
        return False
    waiting = collections.deque([value])
    while waiting and budget > 0:
        item = waiting.popleft()  # in order, so that the budget is the first items
        budget -= 1
        kind = type(item)
        if kind in (list, tuple):
            waiting.extend(item)
        elif kind is dict:
            waiting.extend(item.keys())
            waiting.extend(item.values())
        elif kind not in _ATOMS:
            return True
    return False


def _atoms(values: Iterable[Any]) -> bool:
    return all(type(v) in _ATOMS for v in values)


def _name(value: Any) -> str:
    module = getattr(value, "__module__", None) or ""
    return f"{module}.{getattr(value, '__qualname__', type(value).__qualname__)}"


def _filled(cell: types.CellType) -> bool:
    try:
        cell.cell_contents  # noqa: B018 (an empty cell raises)
    except ValueError:
        return False
    return True


def _iterator(value: Any) -> bool:
    return hasattr(value, "__next__") and hasattr(value, "__iter__")


def _installed_reference(value: Any) -> str | None:
    """``module.qualname`` if ``value`` comes from an installed module (or covalent) and is
    found there by that name; None for the user's own (compared by content)."""
    module = sys.modules.get(getattr(value, "__module__", None) or "")
    qualname = getattr(value, "__qualname__", "")
    if module is None or module.__name__ == "__main__" or modules.is_users(module):
        return None
    holder: Any = module
    for part in qualname.split("."):
        holder = getattr(holder, part, None)
    return f"{module.__name__}.{qualname}" if holder is value else None


def _global_names(code: types.CodeType) -> set[str]:
    """The names a function's code (and the code nested in it) may read as globals."""
    names = set(code.co_names)
    for constant in code.co_consts:
        if isinstance(constant, types.CodeType):
            names |= _global_names(constant)
    return names
