"""C leptons: a function of a shared library, called through ctypes on the executor.

``ct.Lepton(language="C", library_name="/path/libtest.so", function_name="f",
argtypes=[(c_int32, ct.Lepton.INPUT), (POINTER(c_int32), ct.Lepton.INPUT_OUTPUT),
(POINTER(c_int32), ct.Lepton.OUTPUT)])`` calls ``void f(int x, int *y, int *z)``. The
lepton's arguments fill the INPUT and INPUT_OUTPUT entries in order; an OUTPUT entry gets
a fresh zeroed value. Pointer entries are passed by reference. The lepton returns the
INPUT_OUTPUT and OUTPUT values after the call, in order: one value alone, several as a
tuple, none as None.
"""

from __future__ import annotations

import ctypes
from collections.abc import Sequence
from typing import Any

from covalent._errors import CovalentError, WorkflowError

INPUT = "INPUT"
OUTPUT = "OUTPUT"
INPUT_OUTPUT = "INPUT_OUTPUT"
DIRECTIONS = (INPUT, OUTPUT, INPUT_OUTPUT)


class CLeptonError(CovalentError):
    """A C lepton's library or function could not be used, or got the wrong inputs."""


def directions(argtypes: Sequence[Any] | None, lepton: str) -> list[tuple[Any, str]]:
    """``argtypes`` as ``(type, direction)`` pairs; a bare type is an INPUT."""
    pairs: list[tuple[Any, str]] = []
    for entry in argtypes or []:
        kind, direction = entry if isinstance(entry, tuple) else (entry, INPUT)
        if direction not in DIRECTIONS:
            raise WorkflowError(
                f"argtypes of lepton {lepton}: {direction!r} is not one of Lepton.INPUT, "
                "Lepton.OUTPUT, Lepton.INPUT_OUTPUT."
            )
        pairs.append((kind, direction))
    return pairs


def _pointer(kind: Any) -> tuple[Any, bool]:
    """``(base type, is a pointer)``: POINTER(T) types are made on each side, not pickled."""
    if isinstance(kind, type) and issubclass(kind, ctypes._Pointer):
        return kind._type_, True
    return kind, False


class CFunction:
    """The function of a C lepton (see the module doc)."""

    def __init__(self, library_name: str, function_name: str, argtypes: list[tuple[Any, str]]):
        self.library_name = library_name
        self.function_name = function_name
        self.__name__ = function_name
        self.argtypes: list[tuple[Any, bool, str]] = []
        for kind, direction in argtypes:
            base, pointer = _pointer(kind)
            if direction != INPUT and not pointer:
                raise WorkflowError(
                    f"argtypes of C lepton {function_name}: a {direction} argument must be "
                    f"a POINTER type, not {getattr(kind, '__name__', kind)}."
                )
            self.argtypes.append((base, pointer, direction))

    def __call__(self, *args: Any) -> Any:
        function = self._function()
        inputs = sum(1 for _, _, direction in self.argtypes if direction != OUTPUT)
        if len(args) != inputs:
            raise CLeptonError(
                f"C lepton {self.function_name} takes {inputs} inputs (its INPUT and "
                f"INPUT_OUTPUT argtypes), got {len(args)}."
            )
        values = iter(args)
        call_args: list[Any] = []
        outputs: list[Any] = []
        for base, pointer, direction in self.argtypes:
            value = base() if direction == OUTPUT else _c_value(base, next(values))
            call_args.append(ctypes.byref(value) if pointer else value)
            if direction != INPUT:
                outputs.append(value)
        function(*call_args)
        results = [o.value if hasattr(o, "value") else o for o in outputs]
        return None if not results else results[0] if len(results) == 1 else tuple(results)

    def _function(self) -> Any:
        try:
            library = ctypes.CDLL(self.library_name)
        except OSError as e:
            raise CLeptonError(f"C lepton {self.function_name}: cannot load {e}") from None
        try:
            function = getattr(library, self.function_name)
        except AttributeError:
            raise CLeptonError(
                f"C lepton: {self.library_name} has no function {self.function_name!r}."
            ) from None
        function.restype = None
        function.argtypes = [ctypes.POINTER(b) if p else b for b, p, _ in self.argtypes]
        return function


def _c_value(base: Any, value: Any) -> Any:
    if isinstance(value, str) and base in (ctypes.c_char_p, ctypes.c_char):
        value = value.encode()
    try:
        return base(value)
    except TypeError as e:
        raise CLeptonError(f"Cannot pass {value!r} as {base.__name__}: {e}") from None
