"""Checks of executor settings, made when an executor is made.

Each function takes the executor's class name (for the message), the setting's name and
the value given, and returns the value in its plain form, or raises
:class:`~covalent._errors.ExecutorSettingError` (also a ``ValueError``) naming the
executor, the setting, the value and what is expected::

    LocalExecutor(workdir=23): workdir must be a path (a string), not 23 (int).
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from typing import Any

from covalent._errors import ExecutorSettingError


def _fail(owner: str, name: str, value: Any, expected: str) -> ExecutorSettingError:
    shown = repr(value)
    if len(shown) > 80:
        shown = shown[:77] + "..."
    return ExecutorSettingError(
        f"{owner}({name}={shown}): {name} must be {expected}, not {shown} ({type(value).__name__})."
    )


def text(owner: str, name: str, value: Any, expected: str = "a string") -> str:
    """A string (None counts as empty, as the original's defaults use None for unset)."""
    if value is None:
        return ""
    if not isinstance(value, str):
        raise _fail(owner, name, value, expected)
    return value


def path(owner: str, name: str, value: Any) -> str:
    """A file or folder path: a string or ``os.PathLike`` (kept as a string)."""
    if isinstance(value, os.PathLike):
        value = os.fspath(value)
    return text(owner, name, value, "a path (a string)")


def flag(owner: str, name: str, value: Any) -> bool:
    """A boolean (the strings "true"/"false" of an original config file count too)."""
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    if not isinstance(value, bool):
        raise _fail(owner, name, value, "True or False")
    return value


def _from_text(value: Any) -> Any:
    """A number written as text (an environment variable, a config file) as that number."""
    if isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            try:
                return float(value.strip())
            except ValueError:
                return value
    return value


def integer(owner: str, name: str, value: Any, minimum: int | None = 0) -> int:
    """A whole number, at least ``minimum`` (None: any); ``"22"`` counts as 22."""
    given, value = value, _from_text(value)
    if isinstance(value, bool) or not isinstance(value, int):
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        else:
            raise _fail(owner, name, given, _at_least("a whole number", minimum))
    if minimum is not None and value < minimum:
        raise _fail(owner, name, given, _at_least("a whole number", minimum))
    return int(value)


def number(owner: str, name: str, value: Any, minimum: float | None = 0.0) -> float:
    """A finite number of (usually) seconds, at least ``minimum`` (None: any); ``"1.5"``
    counts as 1.5."""
    expected = _at_least("a number", minimum)
    given, value = value, _from_text(value)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _fail(owner, name, given, expected)
    if not math.isfinite(value) or (minimum is not None and value < minimum):
        raise _fail(owner, name, given, expected)
    return float(value)


def environment(owner: str, name: str, value: Any) -> dict[str, str]:
    """A mapping of environment variable names to values (None: empty)."""
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise _fail(owner, name, value, "a dict of environment variables")
    out: dict[str, str] = {}
    for key, item in value.items():
        if not isinstance(key, str) or not key or "=" in key or "\0" in key:
            raise _fail(owner, name, value, "a dict whose keys are variable names")
        if isinstance(item, (dict, list, tuple, set)):
            raise _fail(owner, name, value, "a dict of strings")
        out[key] = str(item)
    return out


def strings(owner: str, name: str, value: Any) -> list[str]:
    """A list of strings (None: empty; a single string is not a list)."""
    if value is None:
        return []
    if isinstance(value, str) or not isinstance(value, (list, tuple)):
        raise _fail(owner, name, value, "a list of strings")
    if not all(isinstance(item, str) for item in value):
        raise _fail(owner, name, value, "a list of strings")
    return list(value)


def mapping(owner: str, name: str, value: Any) -> dict[str, Any]:
    """A dict with string keys (None: empty)."""
    if value is None:
        return {}
    if not isinstance(value, Mapping) or not all(isinstance(k, str) for k in value):
        raise _fail(owner, name, value, "a dict with string keys")
    return dict(value)


def choice(owner: str, name: str, value: Any, allowed: tuple[Any, ...]) -> Any:
    if value not in allowed:
        raise _fail(owner, name, value, "one of " + ", ".join(repr(a) for a in allowed))
    return value


def _at_least(what: str, minimum: float | None) -> str:
    if minimum is None:
        return what
    return f"{what} of at least {minimum:g}" if minimum else f"{what}, 0 or more"
