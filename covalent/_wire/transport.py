"""``TransportableObject``: a value kept pickled, with what a far side checks first.

Covalent's executor plugins receive the electron's function as a callable whose first
bound argument is one of these, and read its ``python_version`` to choose (or check)
the interpreter on the far side before anything is unpickled there. Arguments travel
as these too, so a plugin that ships ``(function, args, kwargs)`` elsewhere moves the
bytes the client made, never values re-pickled on the way.

The pickled form is a blob (see :mod:`covalent._wire.blobs`): functions and classes of
the user's own modules travel by value.
"""

from __future__ import annotations

import platform
from typing import Any

from covalent._wire import blobs


class TransportableObject:
    """A pickled value plus its short repr and the Python version that pickled it.

    ``TransportableObject(value)`` pickles ``value`` now; :meth:`from_bytes` wraps bytes
    pickled already. :meth:`get_deserialized` unpickles (only where user code may run:
    a client or an executor's worker, never the server).
    """

    def __init__(self, obj: Any = None) -> None:
        self._data = blobs.dumps(obj)
        self.python_version = platform.python_version()
        self.object_string = blobs.short_repr(obj)
        self.attrs: dict[str, Any] = {"name": getattr(obj, "__name__", ""), "doc": ""}

    @classmethod
    def from_bytes(cls, data: bytes, object_string: str = "") -> TransportableObject:
        """Wrap ``data`` (a pickled value) without unpickling it."""
        made = cls.__new__(cls)
        made._data = bytes(data)
        made.python_version = platform.python_version()
        made.object_string = object_string
        made.attrs = {"name": "", "doc": ""}
        return made

    @classmethod
    def make_transportable(cls, obj: Any) -> TransportableObject:
        """``obj`` itself if it is one already, else ``obj`` wrapped."""
        return obj if isinstance(obj, TransportableObject) else cls(obj)

    def get_deserialized(self) -> Any:
        """The value (unpickled on each call)."""
        return blobs.loads(self._data)

    def get_serialized(self) -> bytes:
        """The pickled value, as made by :func:`covalent._wire.blobs.dumps`."""
        return self._data

    def serialize(self) -> bytes:
        """This object, pickled (to store or send it whole)."""
        return blobs.dumps(self)

    @staticmethod
    def deserialize(data: bytes) -> TransportableObject:
        """The inverse of :meth:`serialize`; TypeError if ``data`` holds something else."""
        made = blobs.loads(data)
        if not isinstance(made, TransportableObject):
            raise TypeError(f"Expected a pickled TransportableObject, got {type(made).__name__}.")
        return made

    def __eq__(self, other: object) -> bool:
        return isinstance(other, TransportableObject) and other._data == self._data

    def __hash__(self) -> int:
        return hash(self._data)

    def __repr__(self) -> str:
        return f"TransportableObject({self.object_string})"
