"""Covalent's module paths, as thin aliases of this project's own modules, in one place.

Plugins and user code written for the original Covalent import from module paths that
this project's layout does not have (``covalent._shared_files.config``,
``covalent._results_manager.result``, ...). Each such path is served by a module of
this package: :data:`ALIASES` maps the original's package (or module) path to ours, and
a finder placed first on ``sys.meta_path`` hands out our module under the original's
name (the same module object, so a class has one identity whichever path it came by).

tests/test_compat.py imports every path and checks what it gives.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import sys
from types import ModuleType

ALIASES = {
    "covalent._shared_files": "covalent._compat.shared_files",
    "covalent._results_manager": "covalent._compat.results_manager",
    "covalent._file_transfer": "covalent._compat.file_transfer",
    "covalent._dispatcher_plugins": "covalent._compat.dispatcher_plugins",
    "covalent._workflow.transport": "covalent._compat.transport",
    "covalent.executor.executor_plugins.remote_executor": "covalent._compat.remote_executor",
}
"""The original's path (a package's submodules follow it) → the module here."""


def target(fullname: str) -> str | None:
    """The module here that serves the original's module path ``fullname``, if any."""
    for original, ours in ALIASES.items():
        if fullname == original:
            return ours
        if fullname.startswith(original + "."):
            return ours + fullname[len(original) :]
    return None


class _AliasLoader(importlib.abc.Loader):
    def __init__(self, name: str) -> None:
        self.name = name

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> None:
        return None  # a placeholder, replaced by the real module in exec_module

    def exec_module(self, module: ModuleType) -> None:
        # The import system returns whatever sys.modules holds under the name afterwards.
        sys.modules[module.__name__] = importlib.import_module(self.name)


class AliasFinder(importlib.abc.MetaPathFinder):
    """Finds the original's module paths (and only those)."""

    def find_spec(
        self, fullname: str, path: object = None, target_module: object = None
    ) -> importlib.machinery.ModuleSpec | None:
        if not fullname.startswith("covalent._") and not fullname.startswith("covalent.ex"):
            return None
        name = target(fullname)
        if name is None or importlib.util.find_spec(name) is None:
            return None
        return importlib.util.spec_from_loader(fullname, _AliasLoader(name))


def install() -> None:
    """Put the finder first on ``sys.meta_path`` (once)."""
    if not any(isinstance(f, AliasFinder) for f in sys.meta_path):
        sys.meta_path.insert(0, AliasFinder())


install()
