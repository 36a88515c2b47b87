"""The small functions behind collection and operation nodes.

They are importable module-level functions, so they travel by reference, not by value.
"""

from __future__ import annotations

from typing import Any


def make_list(*items: Any) -> list[Any]:
    return list(items)


def make_tuple(*items: Any) -> tuple[Any, ...]:
    return tuple(items)


def make_set(*items: Any) -> set[Any]:
    return set(items)


def make_dict(keys: tuple[Any, ...], *values: Any) -> dict[Any, Any]:
    return dict(zip(keys, values, strict=True))


def getitem(key: Any, obj: Any) -> Any:
    return obj[key]


def getattribute(name: str, obj: Any) -> Any:
    return getattr(obj, name)


def call(function: Any, *args: Any, **kwargs: Any) -> Any:
    """An output that is a function, called (``out(1)`` in a lattice)."""
    return function(*args, **kwargs)


def call_method(name: str, receiver: Any, *args: Any, **kwargs: Any) -> tuple[Any, Any]:
    """``receiver.name(*args, **kwargs)``: its return value, and the receiver as the call
    left it (so that ``y.append(x)`` in a lattice changes what ``y`` is afterwards)."""
    return getattr(receiver, name)(*args, **kwargs), receiver
