"""Set-up that runs on the executor before (or after) an electron.

``ct.DepsBash``, ``ct.DepsPip`` and ``ct.DepsCall`` travel pickled with the electron's
settings and are applied by the task runner in the electron's environment (its working
directory, its captured stdout/stderr), in this order: bash commands, pip packages
(:func:`install`), BEFORE file transfers (:mod:`covalent._workflow.transfer`),
``call_before`` hooks (:func:`apply_before`), the electron, ``call_after`` hooks
(:func:`apply_after`), AFTER file transfers. A ``DepsCall`` with ``retval_keyword``
passes its return value to the electron under that keyword; an electron with file
transfers gets ``files=[(from_path, to_path), ...]``.
"""

from __future__ import annotations

import importlib
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

from covalent._errors import CovalentError, WorkflowError


class DepsError(CovalentError):
    """A dependency or hook failed on the executor, so the electron did not run."""


def _texts(value: str | Sequence[str], what: str) -> list[str]:
    """One text or a list of texts as a list; a WorkflowError naming ``what`` otherwise."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, (list, tuple)):
        return [str(v) for v in value]
    raise WorkflowError(f"{what} takes a text or a list of texts, got {value!r}.")


def _echo(done: subprocess.CompletedProcess[str]) -> None:
    if done.stdout:
        print(done.stdout, end="")
    if done.stderr:
        print(done.stderr, end="", file=sys.stderr)


class DepsBash:
    """Shell commands run with bash before the electron; any failure fails the node."""

    def __init__(self, commands: str | Sequence[str] = "") -> None:
        self.commands = [c for c in _texts(commands, "DepsBash(commands)") if c]

    def apply(self) -> None:
        for command in self.commands:
            done = subprocess.run(["bash", "-c", command], capture_output=True, text=True)
            _echo(done)
            if done.returncode != 0:
                raise DepsError(
                    f"deps_bash command {command!r} failed with exit code {done.returncode}: "
                    f"{done.stderr.strip()[-2000:]}"
                )

    def __repr__(self) -> str:
        return f"DepsBash({self.commands!r})"


class DepsPip:
    """Packages pip-installs into the executor's Python before the electron runs.

    ``reqs_path`` is read where the electron is defined, so the file need not exist on
    the executor.
    """

    def __init__(self, packages: str | Sequence[str] = (), reqs_path: str = "") -> None:
        self.packages = _texts(packages, "DepsPip(packages)")
        self.reqs_path = reqs_path
        if reqs_path:
            try:
                lines = Path(reqs_path).read_text().splitlines()
            except OSError as e:
                raise WorkflowError(f"Cannot read the requirements file {reqs_path}: {e}.") from e
            self.packages += [ln.strip() for ln in lines if ln.strip() and not ln.startswith("#")]

    def apply(self) -> None:
        if not self.packages:
            return
        command = [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--disable-pip-version-check",
            "--quiet",
            *self.packages,
        ]
        done = subprocess.run(command, capture_output=True, text=True)
        _echo(done)
        if done.returncode != 0:
            raise DepsError(
                f"deps_pip could not install {self.packages}: {done.stderr.strip()[-2000:]}"
            )

    def __repr__(self) -> str:
        return f"DepsPip(packages={self.packages!r})"


class DepsCall:
    """A function called on the executor before or after the electron."""

    def __init__(
        self,
        func: Callable[..., Any],
        args: Sequence[Any] = (),
        kwargs: dict[str, Any] | None = None,
        retval_keyword: str = "",
    ) -> None:
        if not callable(func):
            raise WorkflowError(f"DepsCall needs a function, got {func!r}.")
        self.func = func
        self.args = list(args)
        self.kwargs = dict(kwargs or {})
        self.retval_keyword = retval_keyword

    def apply(self) -> Any:
        return self.func(*self.args, **self.kwargs)

    def __repr__(self) -> str:
        return f"DepsCall({getattr(self.func, '__name__', self.func)!r})"


class DepsModule(DepsCall):
    """A module the electron needs on the executor: its source travels with the dispatch
    (with the user's modules it imports) and it is imported there before the electron.

    The user's own modules that an electron's code refers to travel anyway; name a module
    here when nothing in the code names it (imported by name at run time, by a plugin
    system), or when it is installed here but not on the executor. Put it in
    ``call_before``: ``@ct.electron(call_before=[ct.DepsModule("pkg.mod")])``.
    """

    def __init__(self, module: str | ModuleType) -> None:
        name = module if isinstance(module, str) else module.__name__
        try:
            importlib.import_module(name)  # here, to find its source
        except ImportError as e:
            raise WorkflowError(f"DepsModule cannot import {name!r} here: {e}.") from e
        super().__init__(importlib.import_module, args=[name])
        self.module_name = name

    def covalent_modules(self) -> list[str]:
        """The modules whose source must travel (read by covalent/_wire/blobs.py)."""
        return [self.module_name]

    def __repr__(self) -> str:
        return f"DepsModule({self.module_name!r})"


def as_bash(value: Any) -> DepsBash | None:
    if value is None or isinstance(value, DepsBash):
        return value
    if isinstance(value, (str, list, tuple)):
        return DepsBash(value)
    raise WorkflowError(f"deps_bash must be a DepsBash, a command or a list, got {value!r}.")


def as_pip(value: Any) -> DepsPip | None:
    if value is None or isinstance(value, DepsPip):
        return value
    if isinstance(value, (str, list, tuple)):
        return DepsPip(packages=value)
    raise WorkflowError(f"deps_pip must be a DepsPip or a list of packages, got {value!r}.")


Hook = DepsCall | DepsBash | DepsPip
"""What ``call_before``/``call_after`` hold: calls, and bash or pip set-up run in place."""


def as_calls(value: Any, where: str) -> list[Hook]:
    if value is None:
        return []
    items = value if isinstance(value, (list, tuple)) else [value]
    calls: list[Hook] = []
    for item in items:
        if isinstance(item, (DepsCall, DepsBash, DepsPip)):
            calls.append(item)
        elif callable(item):
            calls.append(DepsCall(item))
        else:
            raise WorkflowError(
                f"{where} must hold DepsCall, DepsBash or DepsPip objects or functions, "
                f"got {item!r}."
            )
    return calls


def as_policy(
    retries: Any, retry_delay: Any, timeout: Any, where: str
) -> dict[str, int | float | None]:
    """``retries``, ``retry_delay`` and ``timeout`` checked (None: unset, inherited)."""
    checks = (
        ("retries", retries, int, "a whole number of 0 or more"),
        ("retry_delay", retry_delay, (int, float), "a number of seconds, 0 or more"),
        ("timeout", timeout, (int, float), "a number of seconds above 0"),
    )
    policy: dict[str, int | float | None] = {}
    for key, value, kinds, expected in checks:
        wrong = value is not None and (
            isinstance(value, bool)
            or not isinstance(value, kinds)
            or value < 0
            or (key == "timeout" and value == 0)
        )
        if wrong:
            raise WorkflowError(f"{key} of {where} must be {expected}, got {value!r}.")
        policy[key] = value if value is None or key == "retries" else float(value)
    return policy


def install(extras: dict[str, Any]) -> None:
    """Run deps_bash, then deps_pip."""
    for key in ("deps_bash", "deps_pip"):
        if extras.get(key) is not None:
            extras[key].apply()


def apply_before(extras: dict[str, Any]) -> dict[str, Any]:
    """Run the call_before hooks; return the keyword arguments they provide.

    A keyword that one DepsCall provides is its value; one that several provide is the
    list of their values, in order.
    """
    values: dict[str, list[Any]] = {}
    for call in extras.get("call_before") or []:
        value = call.apply()
        keyword = getattr(call, "retval_keyword", "")
        if keyword:
            values.setdefault(keyword, []).append(value)
    return {k: v[0] if len(v) == 1 else v for k, v in values.items()}


def apply_after(extras: dict[str, Any]) -> None:
    for call in extras.get("call_after") or []:
        call.apply()
