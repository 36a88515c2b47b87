"""``ct.TransportableObject``: a value kept pickled, as Covalent hands values around.

Covalent's transport graph gives node functions, parameter values and outputs as
TransportableObjects, and workflows written for it call ``get_deserialized()`` on them
(``result.lattice.transport_graph.get_node_value(node_id, "output")`` gives one here
too). Covalent's executor plugins receive the electron's function as a callable whose
first bound argument is one of these, and read its ``python_version`` to choose (or
check) the interpreter on the far side before anything is unpickled there; arguments
travel as these too, so a plugin that ships ``(function, args, kwargs)`` elsewhere moves
the bytes the client made, never values re-pickled on the way.

The pickle is a blob (see :mod:`covalent._wire.blobs`) with the source of the user's
own modules it needs, so any process can read it back.
"""

from __future__ import annotations

import base64
import platform
from typing import Any

from covalent._wire import blobs


class TransportableObject:
    """A value's pickle, its short repr, and the Python version that pickled it.

    ``TransportableObject(value)`` pickles ``value`` at once (an error if it cannot be);
    :meth:`from_bytes` wraps bytes pickled already. :meth:`get_deserialized` unpickles
    (only where user code may run: a client or an executor's worker, never the server),
    a new copy each call.
    """

    def __init__(self, obj: Any = None) -> None:
        self._data = blobs.dumps_shipping(obj)
        self.python_version = platform.python_version()
        self.object_string = blobs.short_repr(obj)
        self.type_name = type(obj).__name__
        self.attrs: dict[str, Any] = {"name": getattr(obj, "__name__", ""), "doc": ""}

    @classmethod
    def from_bytes(cls, data: bytes, object_string: str = "") -> TransportableObject:
        """One around ``data`` (a pickled value, a stored blob), without unpickling it."""
        made = cls.__new__(cls)
        made._data = bytes(data)
        made.python_version = platform.python_version()
        made.object_string = object_string
        made.type_name = ""
        made.attrs = {"name": "", "doc": ""}
        return made

    from_pickled = from_bytes

    @classmethod
    def make_transportable(cls, obj: Any) -> TransportableObject:
        """``obj`` itself if it is one already, else ``obj`` wrapped."""
        return obj if isinstance(obj, TransportableObject) else cls(obj)

    def get_deserialized(self) -> Any:
        """The value, unpickled (a new copy each call)."""
        return blobs.loads(self._data)

    def get_serialized(self) -> str:
        """The value's pickle, base64-encoded (as Covalent gives it)."""
        return base64.b64encode(self._data).decode()

    def pickled(self) -> bytes:
        """The value's pickle, as made by :func:`covalent._wire.blobs.dumps_shipping`."""
        return self._data

    def serialize(self) -> bytes:
        """This object, pickled whole (to store or send it); see :meth:`deserialize`."""
        return blobs.dumps(self)

    @staticmethod
    def deserialize(data: bytes) -> TransportableObject:
        """The inverse of :meth:`serialize`; TypeError if ``data`` holds something else."""
        made = blobs.loads(data)
        if not isinstance(made, TransportableObject):
            raise TypeError(f"Expected a pickled TransportableObject, got {type(made).__name__}.")
        return made

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, TransportableObject):
            return NotImplemented
        return self._data == other._data

    def __hash__(self) -> int:
        return hash(self._data)

    def __repr__(self) -> str:
        return f"TransportableObject({self.object_string})"
