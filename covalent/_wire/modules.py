"""The user's own modules travel with a dispatch, as source, and import on the worker.

A workflow's electrons often call code from the user's own modules: a ``helpers.py``
beside the script, a project package that is not installed. A worker may not be able to
import them, so they travel with the dispatch:

- **Client.** While pickling, :class:`~covalent._wire.blobs` notes every module whose
  functions, classes or module objects it meets. Functions and classes of the user's
  own modules are pickled *by reference* (``helpers.Point``), as those of installed
  packages are; :func:`closure` adds the modules they import (their import statements,
  also inside functions, and the names their namespace holds), and their parent
  packages. Every function blob of a dispatch ends with a *trailer* holding the source of
  every such module the dispatch touches (:func:`trailer`).
- **Worker.** Loading a blob with a trailer hands its sources to a meta-path finder
  (:func:`provide`), so ``import helpers`` works on the worker however deep it is used:
  in the electron, in a function it calls, in a module that module imports, at run
  time. In a worker (:func:`prefer_shipped`) the shipped source wins over a module of
  that name found there, and a newer source replaces an older one.
- **Client again.** Values come back pickled by reference too, so an object of
  ``helpers.Point`` is an instance of the client's own ``helpers.Point``. Only when the
  client cannot import the module itself does the shipped source serve it.

``__main__`` (the script, a notebook) still travels by value, as cloudpickle does it.
A module of the user's without source (only ``.pyc``) is pickled by value instead.
"""

from __future__ import annotations

import ast
import functools
import hashlib
import importlib.abc
import importlib.machinery
import importlib.util
import os
import pickle
import struct
import sys
import sysconfig
import threading
import zlib
from collections.abc import Iterable, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any, NamedTuple

TRAILER_MAGIC = b"CVM1"
"""Ends a blob that carries module sources: ``pickle, zlib(pickle(sources)), 8-byte
length, magic``.

A pickle ends with its STOP opcode, and ``pickle.loads`` ignores what follows, so a
blob with a trailer is still an ordinary pickle to any reader that needs no sources.
"""

_INSTALLED = tuple(
    str(Path(p).resolve())
    for p in {sysconfig.get_paths()[k] for k in ("stdlib", "platstdlib", "purelib", "platlib")}
)


class Source(NamedTuple):
    """One module's source as it travels: ``filename`` is where it was on the client."""

    name: str
    filename: str
    package: bool
    source: bytes
    digest: str


_lock = threading.RLock()
_shipped: dict[str, Source] = {}  # the process's finder table: import system state is global
_versions: dict[str, Source] = {}  # every source provided, by digest (a module keeps its own)
_files: dict[str, tuple[tuple[int, int], Source]] = {}
_imports: dict[str, set[str]] = {}  # source digest -> names its import statements name
_found: dict[tuple[str, tuple[str, ...]], tuple[str, bool] | None] = {}  # not imported yet
_trailers: dict[tuple[str, ...], bytes] = {}  # closure digests -> its trailer
_prefer_shipped = False


# which modules travel


def _never(name: str) -> bool:
    """The standard library and covalent never travel (every worker has its own)."""
    top = name.split(".")[0]
    return top == "covalent" or top in sys.stdlib_module_names


@functools.lru_cache(maxsize=4096)
def _installed(path: str) -> bool:
    return str(Path(path).resolve()).startswith(_INSTALLED)


def is_users(module: ModuleType) -> bool:
    """Whether ``module`` is the user's own: not ``__main__``, covalent, built in, or
    installed (under the standard library or site-packages)."""
    name = getattr(module, "__name__", "")
    if not isinstance(name, str) or name == "__main__" or name.split(".")[0] == "covalent":
        return False
    if getattr(module, "__covalent_digest__", None) in _versions:
        return True
    path = getattr(module, "__file__", None)
    if path:
        return not _installed(path)
    locations = list(getattr(module, "__path__", []) or [])  # a namespace package
    return bool(locations) and not any(_installed(p) for p in locations)


def source_of(module: ModuleType) -> Source | None:
    """The source ``module`` travels as, or None if it has none to send."""
    name = module.__name__
    shipped = _versions.get(getattr(module, "__covalent_digest__", None) or "")
    if shipped is not None and shipped.name == name:  # imported from a shipped source
        return shipped
    path = getattr(module, "__file__", None)
    if not path:
        if getattr(module, "__path__", None) is not None:  # a namespace package
            return Source(name, "", True, b"", _digest(b""))
        return None
    if not path.endswith(".py"):
        return None
    return _read(name, path, os.path.basename(path) == "__init__.py")


def _read(name: str, path: str, package: bool) -> Source | None:
    try:
        stat = os.stat(path)
    except OSError:
        return None
    stamp = (stat.st_mtime_ns, stat.st_size)
    hit = _files.get(path)
    if hit is not None and hit[0] == stamp and hit[1].name == name:
        return hit[1]
    try:
        data = Path(path).read_bytes()
    except OSError:
        return None
    source = Source(name, path, package, data, _digest(data))
    _files[path] = (stamp, source)
    return source


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def closure(names: Iterable[str], forced: Iterable[str] = ()) -> list[Source]:
    """The sources of the user's modules ``names``, of the modules they import (their
    import statements and the modules their namespace refers to), and of their parent
    packages, in a stable order. ``forced`` modules travel even if installed
    (``ct.DepsModule``)."""
    force = set(forced)
    found: dict[str, Source] = {}
    waiting = [*names, *force]
    while waiting:
        name = waiting.pop()
        if name in found or _never(name):
            continue
        module = sys.modules.get(name)
        if module is None:  # imported later (inside a function): found without importing
            source = _unimported(name)
            if source is not None:
                found[name] = source
                waiting.extend(_parents(name))
                waiting.extend(_imported_names(source, _package_of(source)))
            continue
        if not (is_users(module) or _under(name, force)):
            continue
        source = source_of(module)
        if source is None:
            continue
        found[name] = source
        waiting.extend(_parents(name))
        waiting.extend(_dependencies(module, source))
    return [found[name] for name in sorted(found)]


def _under(name: str, packages: set[str]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in packages)


def _package_of(source: Source) -> str:
    return source.name if source.package else source.name.rpartition(".")[0]


def _unimported(name: str) -> Source | None:
    """The source of a user module ``name`` not imported yet, found the way ``import``
    would find it (for a submodule, only once its package is imported)."""
    shipped = _shipped.get(name)
    if shipped is not None:  # a worker building a sublattice: what it was sent
        return shipped
    parent, _, _ = name.rpartition(".")
    if parent and parent not in sys.modules:
        return None
    search = getattr(sys.modules[parent], "__path__", None) if parent else None
    if parent and search is None:
        return None
    key = (name, tuple(search or sys.path))
    if key not in _found:
        try:
            spec = importlib.machinery.PathFinder.find_spec(name, search)
        except (ImportError, ValueError):
            spec = None
        origin = (spec.origin if spec is not None else None) or ""
        usable = spec is not None and origin.endswith(".py") and not _installed(origin)
        package = spec is not None and spec.submodule_search_locations is not None
        _found[key] = (origin, package) if usable else None
    where = _found[key]
    return None if where is None else _read(name, *where)


def _parents(name: str) -> list[str]:
    parts = name.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts))]


def _dependencies(module: ModuleType, source: Source) -> list[str]:
    names = set(_imported_names(source, getattr(module, "__package__", None) or ""))
    children = module.__name__ + "."  # a package holds its imported submodules: not needs
    for value in list(vars(module).values()):
        if isinstance(value, ModuleType):
            if not value.__name__.startswith(children):
                names.add(value.__name__)
        elif isinstance(value, type) or callable(value):
            owner = getattr(value, "__module__", None)
            if isinstance(owner, str):
                names.add(owner)
    names.discard(module.__name__)
    return sorted(names)


def _imported_names(source: Source, package: str) -> set[str]:
    """Every module an import statement of ``source`` may name (also inside functions)."""
    key = f"{source.digest}:{package}"
    cached = _imports.get(key)
    if cached is not None:
        return cached
    names: set[str] = set()
    try:
        tree = ast.parse(source.source, filename=source.filename or source.name)
    except (SyntaxError, ValueError):
        tree = ast.Module(body=[], type_ignores=[])
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = _absolute(node.module or "", node.level, package)
            if base:
                names.add(base)
                names.update(f"{base}.{alias.name}" for alias in node.names)
    _imports[key] = names
    return names


def _absolute(name: str, level: int, package: str) -> str:
    if not level:
        return name
    try:
        return importlib.util.resolve_name("." * level + name, package)
    except (ImportError, ValueError):
        return ""


# the trailer


def trailer(sources: Sequence[Source]) -> bytes:
    """What a blob ends with to carry ``sources`` (empty for none); compressed, as
    source text shrinks to about a third and every function blob of a dispatch has it."""
    if not sources:
        return b""
    key = tuple(s.digest for s in sources)
    made = _trailers.get(key)
    if made is None:
        data = zlib.compress(pickle.dumps([tuple(s) for s in sources], protocol=5))
        made = data + struct.pack(">Q", len(data)) + TRAILER_MAGIC
        if len(_trailers) > 64:
            _trailers.clear()
        _trailers[key] = made
    return made


def read_trailer(data: Any) -> list[Source]:
    """The sources a blob carries (none for a blob without a trailer)."""
    end = len(data)
    if end < 12 or bytes(data[end - 4 : end]) != TRAILER_MAGIC:
        return []
    (size,) = struct.unpack(">Q", bytes(data[end - 12 : end - 4]))
    packed = zlib.decompress(bytes(data[end - 12 - size : end - 12]))
    return [Source(*entry) for entry in pickle.loads(packed)]


# the receiving side


def prefer_shipped() -> None:
    """Make shipped sources win over modules of the same name (in a worker process)."""
    global _prefer_shipped
    if _prefer_shipped and sys.meta_path and sys.meta_path[0] is _FINDER:
        return  # done already (a worker calls this before every task)
    with _lock:
        _prefer_shipped = True
        _install_finder()


def provide(sources: Sequence[Source]) -> None:
    """Let ``import`` find these modules. In a worker a source replaces a different
    version of that module already imported; in a client the client's own modules win."""
    with _lock:
        for source in sources:
            if _never(source.name):
                continue
            known = _shipped.get(source.name)
            if known is not None and known.digest == source.digest:
                continue
            _shipped[source.name] = source
            _versions[source.digest] = source
            if _prefer_shipped:
                _evict_other_version(source)
        _install_finder()


def _evict_other_version(source: Source) -> None:
    loaded = sys.modules.get(source.name)
    if loaded is None or not is_users(loaded):
        return
    current = source_of(loaded)
    if current is not None and current.digest == source.digest:
        return
    prefix = source.name + "."
    for name in [n for n in sys.modules if n == source.name or n.startswith(prefix)]:
        module = sys.modules.get(name)
        if module is not None and is_users(module):
            del sys.modules[name]


def _install_finder() -> None:
    if _FINDER in sys.meta_path:
        if not _prefer_shipped or sys.meta_path[0] is _FINDER:
            return
        sys.meta_path.remove(_FINDER)
    if _prefer_shipped:
        sys.meta_path.insert(0, _FINDER)
    else:
        sys.meta_path.append(_FINDER)


class _Finder(importlib.abc.MetaPathFinder):
    """Finds the modules whose source was shipped (:func:`provide`)."""

    def find_spec(
        self, fullname: str, path: Sequence[str] | None = None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        source = _shipped.get(fullname)
        if source is None:
            return None
        spec = importlib.util.spec_from_loader(
            fullname, _Loader(source), origin=source.filename or None, is_package=source.package
        )
        if spec is not None and source.package and source.filename:
            spec.submodule_search_locations = [os.path.dirname(source.filename)]
        if spec is not None:
            spec.has_location = bool(source.filename)
        return spec


class _Loader(importlib.abc.InspectLoader):
    """Runs a shipped source as its module; tracebacks show its lines (``get_source``)."""

    def __init__(self, source: Source) -> None:
        self.source = source

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        return None

    def exec_module(self, module: ModuleType) -> None:
        source = self.source
        if source.filename:
            module.__file__ = source.filename
        module.__covalent_digest__ = source.digest  # type: ignore[attr-defined]
        code = compile(source.source, source.filename or f"<{source.name}>", "exec")
        exec(code, module.__dict__)

    def get_source(self, fullname: str) -> str:
        return importlib.util.decode_source(self.source.source)


_FINDER = _Finder()


# functions that wrap others


def wrapped_function(module_name: str, qualname: str, attribute: str) -> Any:
    """The function an electron or lattice of a module wraps (``helpers.f.function``).

    An electron's plain function is not reachable by its own name (the name holds the
    electron), so it travels as this path instead of by value.
    """
    value: Any = importlib.import_module(module_name)
    for part in qualname.split("."):
        value = getattr(value, part)
    return getattr(value, attribute)


def wrapper_path(function: Any, module: ModuleType) -> tuple[str, str, str] | None:
    """``(module, qualname, attribute)`` if ``function`` is the function of an electron or
    lattice that ``module`` holds under the function's own name, else None."""
    qualname = getattr(function, "__qualname__", "")
    if not qualname or "<" in qualname:
        return None
    holder: Any = module
    try:
        for part in qualname.split("."):
            holder = getattr(holder, part)
    except AttributeError:
        return None
    for attribute in ("function", "workflow_function"):
        if getattr(holder, attribute, None) is function:
            return module.__name__, qualname, attribute
    return None
