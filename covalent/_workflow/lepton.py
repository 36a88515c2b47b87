"""Leptons: electrons whose work is a shell command, or a function named by its module.

``ct.Lepton(language="bash", command="wc -l {path}")`` is an :class:`Electron` like any
other (executor, files, deps, retries, ...); its function is a :class:`BashCommand` that,
on the executor, fills the command's ``{name}``/``{0}`` placeholders from the lepton's
arguments and runs it with bash. The command's stdout and stderr become the node's; its
return value is its stdout without trailing newlines (as ``$(command)`` gives it), or,
with ``named_outputs``, the values the command left in those shell variables (one value,
or a tuple of several). A non-zero exit status fails the node with the command's stderr.

With ``argtypes``, the named outputs come back typed: a named output that is also a
keyword argument is set as a shell variable before the command runs (so an
INPUT_OUTPUT value can be read back) and comes back as that argument's type; the other
named outputs take the types of the OUTPUT entries of ``argtypes``, in order.

``ct.Lepton(language="python", library_name="pkg.mod" or "path/to/file.py",
function_name="f")`` calls that function on the executor instead, and
``language="C"`` a function of a shared library (:mod:`covalent._workflow.clepton`).

``ct.leptons.bash`` makes bash leptons: ``ct.leptons.bash("make -C {dir}")``, or over a
function that returns the command, ``@ct.leptons.bash`` / ``@ct.leptons.bash(named_outputs=[...])``.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import os
import re
import shlex
import subprocess
import sys
import tempfile
import types
from collections.abc import Callable, Sequence
from typing import Any

from covalent._errors import CovalentError, WorkflowError
from covalent._workflow import clepton
from covalent._workflow.electron import Electron

BASH_LANGUAGES = ("bash", "shell")
C_LANGUAGES = ("c",)
LANGUAGES = (*BASH_LANGUAGES, "python", "C")
_READ_BACK = (int, float, str)  # an untyped INPUT_OUTPUT comes back as its value's type
_PLACEHOLDER = re.compile(r"\{(\w+)\}")
_SHELL_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
STDERR_TAIL = 4000


class LeptonError(CovalentError):
    """A lepton's command exited with a non-zero status."""


def fill(command: str, args: Sequence[Any], kwargs: dict[str, Any]) -> str:
    """Replace ``{name}`` by the keyword argument ``name`` and ``{0}`` by the first positional.

    Braces that name no argument (``awk '{print $1}'``, ``${HOME}``) are left as they are.
    """

    def value(match: re.Match[str]) -> str:
        key = match[1]
        if key.isdigit() and int(key) < len(args):
            return str(args[int(key)])
        return str(kwargs[key]) if key in kwargs else match[0]

    return _PLACEHOLDER.sub(value, command)


def _script(command: str, named_outputs: Sequence[str], outputs_path: str) -> str:
    """``command``, with an EXIT trap that writes the named variables NUL-separated."""
    if not named_outputs:
        return command
    values = " ".join(f'"${{{name}-}}"' for name in named_outputs)
    trap = (
        f"__covalent_status=$?; printf '%s\\0' {values} > {shlex.quote(outputs_path)}; "
        "exit $__covalent_status"
    )
    return f"trap {shlex.quote(trap)} EXIT\n{command}"


def run_bash(command: str, named_outputs: Sequence[str] = (), name: str = "bash") -> Any:
    """Run ``command`` with bash; pass its output on; return what the lepton returns."""
    with tempfile.TemporaryDirectory(prefix="covalent-lepton-") as folder:
        outputs_path = os.path.join(folder, "outputs")
        done = subprocess.run(
            ["bash", "-c", _script(command, named_outputs, outputs_path)],
            capture_output=True,
            text=True,
            stdin=subprocess.DEVNULL,
        )
        if done.stdout:
            print(done.stdout, end="")
        if done.stderr:
            print(done.stderr, end="", file=sys.stderr)
        if done.returncode != 0:
            raise LeptonError(
                f"The command of lepton {name} exited with status {done.returncode}: "
                f"{_shorten(command)}\n{done.stderr[-STDERR_TAIL:]}"
            )
        if not named_outputs:
            return done.stdout.rstrip("\n")
        return _named_values(outputs_path, named_outputs, name)


def _named_values(path: str, names: Sequence[str], lepton: str) -> Any:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            values = f.read().split("\0")[: len(names)]
    except FileNotFoundError:
        raise LeptonError(
            f"The command of lepton {lepton} replaced the EXIT trap that reports its named "
            f"outputs {list(names)}; remove its own `trap ... EXIT`."
        ) from None
    return values[0] if len(values) == 1 else tuple(values)


def _shorten(command: str, limit: int = 300) -> str:
    return command if len(command) <= limit else command[: limit - 3] + "..."


class BashCommand:
    """The function of a bash lepton (a command, or a function that returns one)."""

    def __init__(
        self,
        command: str | Callable[..., str],
        named_outputs: Sequence[str],
        name: str,
        argtypes: Sequence[tuple[Any, str]] = (),
    ) -> None:
        self.command = command
        self.named_outputs = list(named_outputs)
        self.argtypes = list(argtypes)
        self.__name__ = name
        if callable(command):
            self.__module__ = command.__module__  # so a user's module travels with it

    @property
    def __signature__(self) -> inspect.Signature:
        """The command function's signature (for the check of ``files``), returning a
        tuple of as many strings as there are named outputs (for unpacking)."""
        signature = inspect.signature(self.command if callable(self.command) else self.__call__)
        if len(self.named_outputs) > 1:
            signature = signature.replace(
                return_annotation=types.GenericAlias(tuple, (str,) * len(self.named_outputs))
            )
        return signature

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if callable(self.command):
            command = self.command(*args, **kwargs)
            if not isinstance(command, str):
                raise LeptonError(
                    f"Bash lepton {self.__name__} must return its command as a string, "
                    f"not {type(command).__name__}."
                )
        else:
            command = fill(self.command, args, kwargs)
        shared = {k: v for k, v in kwargs.items() if k in self.named_outputs}
        preamble = "".join(f"{k}={shlex.quote(str(v))}\n" for k, v in shared.items())
        values = run_bash(preamble + command, self.named_outputs, self.__name__)
        if not self.named_outputs:
            return values
        texts = [values] if len(self.named_outputs) == 1 else list(values)
        types = self._output_types(args, kwargs)
        typed = [
            self._typed(n, t, types[n]) for n, t in zip(self.named_outputs, texts, strict=True)
        ]
        return typed[0] if len(typed) == 1 else tuple(typed)

    def _typed(self, name: str, text: str, kind: Any) -> Any:
        """A named output's text as its type (see the module doc); untyped: the text."""
        if kind is None or kind is str:
            return text
        try:
            if kind is bool:
                return text.strip().lower() in ("1", "true", "yes", "on")
            return kind(text.strip())
        except (TypeError, ValueError) as e:
            raise LeptonError(
                f"Lepton {self.__name__}'s output {name}={text!r} cannot be read as "
                f"{getattr(kind, '__name__', kind)}: {e}"
            ) from None

    def _output_types(self, args: Sequence[Any], kwargs: dict[str, Any]) -> dict[str, Any]:
        inputs = [t for t, d in self.argtypes if d != clepton.OUTPUT]
        outputs = iter(t for t, d in self.argtypes if d == clepton.OUTPUT)
        given = [*[None] * len(args), *kwargs]  # the arguments in order; keywords by name
        types: dict[str, Any] = {}
        for position, key in enumerate(given):
            if key is not None and key in self.named_outputs:
                value = kwargs[key]
                fallback = type(value) if type(value) in _READ_BACK else None
                types[key] = inputs[position] if position < len(inputs) else fallback
        for name in self.named_outputs:
            if name not in types:
                types[name] = next(outputs, None)
        return types


class PythonFunction:
    """The function of a python lepton: ``function_name`` from module or file ``library_name``."""

    def __init__(self, library_name: str, function_name: str) -> None:
        self.library_name = library_name
        self.function_name = function_name
        self.__name__ = function_name

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return getattr(self._module(), self.function_name)(*args, **kwargs)

    def _module(self) -> Any:
        if not self.library_name.endswith(".py"):
            return importlib.import_module(self.library_name)
        name = os.path.splitext(os.path.basename(self.library_name))[0]
        spec = importlib.util.spec_from_file_location(name, self.library_name)
        if spec is None or spec.loader is None:
            raise ImportError(f"cannot load {self.library_name}")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module


class Lepton(Electron):
    """An electron that runs a bash command, a named Python function or a function of a
    C library (see the module doc).

    ``argtypes`` is a list of ``(type, direction)`` with direction ``Lepton.INPUT``,
    ``Lepton.OUTPUT`` or ``Lepton.INPUT_OUTPUT`` (a bare type is an INPUT): the C
    function's parameters, or for bash the types of the named outputs.
    ``display_name`` names the node (default: ``bash``, the command function's name, or
    ``function_name``). Other keyword options are the electron's (``retries``,
    ``timeout``, ...).
    """

    INPUT = clepton.INPUT
    OUTPUT = clepton.OUTPUT
    INPUT_OUTPUT = clepton.INPUT_OUTPUT

    def __init__(
        self,
        language: str = "python",
        library_name: str = "",
        function_name: str = "",
        executor: Any = None,
        files: list[Any] | None = None,
        deps_bash: Any = None,
        deps_pip: Any = None,
        call_before: list[Any] | None = None,
        call_after: list[Any] | None = None,
        argtypes: list[Any] | None = None,
        command: str | Callable[..., str] = "",
        named_outputs: Sequence[str] | None = None,
        display_name: str = "",
        **options: Any,
    ) -> None:
        self.language = language.lower()
        self.library_name = library_name
        self.function_name = function_name
        self.argtypes = clepton.directions(argtypes, function_name or "bash")
        self.named_outputs = _check_names(named_outputs or [])
        function = self._function(command, display_name)
        super().__init__(
            function,
            executor,
            files=files,
            deps_bash=deps_bash,
            deps_pip=deps_pip,
            call_before=call_before,
            call_after=call_after,
            **options,
        )

    def _function(self, command: str | Callable[..., str], display_name: str) -> Any:
        if self.language in BASH_LANGUAGES:
            if not command or not (isinstance(command, str) or callable(command)):
                raise WorkflowError(
                    "A bash lepton needs command='...' (or a function returning one)."
                )
            default = getattr(command, "__name__", "bash") if callable(command) else "bash"
            return BashCommand(command, self.named_outputs, display_name or default, self.argtypes)
        if self.language in C_LANGUAGES:
            if not (self.library_name and self.function_name):
                raise WorkflowError(
                    "A C lepton needs library_name (the shared library's path) and function_name."
                )
            cfunction = clepton.CFunction(self.library_name, self.function_name, self.argtypes)
            cfunction.__name__ = display_name or self.function_name
            return cfunction
        if self.language == "python":
            if not (self.library_name and self.function_name):
                raise WorkflowError(
                    "A python lepton needs library_name (a module or a .py file) and function_name."
                )
            function = PythonFunction(self.library_name, self.function_name)
            function.__name__ = display_name or self.function_name
            return function
        raise WorkflowError(
            f"Leptons run {', '.join(LANGUAGES)} here, not {self.language!r}; for other "
            "languages, run their program from a bash lepton."
        )

    def __repr__(self) -> str:
        return f"<lepton {self.name} ({self.language})>"


def _check_names(names: Sequence[str]) -> list[str]:
    names = [names] if isinstance(names, str) else list(names)
    for name in names:
        if not _SHELL_NAME.fullmatch(name):
            raise WorkflowError(
                f"A lepton's named output must be a shell variable name, not {name!r}."
            )
    return names


def bash(_command: str | Callable[..., str] | None = None, **options: Any) -> Any:
    """A bash lepton: ``bash("echo {x}")``, ``@bash`` or ``@bash(named_outputs=[...])``.

    Over a function, the function returns the command to run (it is called on the
    executor with the lepton's arguments).
    """
    if _command is None:
        return lambda command: Lepton("bash", command=command, **options)
    return Lepton("bash", command=_command, **options)
