"""``ct.TransportableObject``: a value kept pickled, as Covalent hands node values around.

Covalent's transport graph gives node functions, parameter values and outputs as
TransportableObjects, and workflows written for it call ``get_deserialized()`` on them;
``result.lattice.transport_graph.get_node_value(node_id, "output")`` gives one here too.
"""

from __future__ import annotations

import base64
import platform
from typing import Any

from covalent._wire import blobs


class TransportableObject:
    """A value and its pickle (cloudpickle, with the user's own modules' code).

    ``TransportableObject(value)`` pickles ``value`` at once (an error if it cannot be),
    with the source of the user's modules it needs (so any process can read it back);
    ``get_deserialized()`` gives a new copy of it each time.
    """

    def __init__(self, obj: Any) -> None:
        self._data = blobs.dumps_shipping(obj)
        self.object_string = blobs.short_repr(obj)
        self.python_version = platform.python_version()
        self.type_name = type(obj).__name__

    @classmethod
    def from_pickled(cls, data: bytes, object_string: str = "") -> TransportableObject:
        """One around bytes pickled already (a stored blob), without unpickling them."""
        made = cls.__new__(cls)
        made._data = bytes(data)
        made.object_string = object_string
        made.python_version = platform.python_version()
        made.type_name = ""
        return made

    @staticmethod
    def make_transportable(obj: Any) -> TransportableObject:
        """``obj`` if it is one already, else a new TransportableObject of it."""
        return obj if isinstance(obj, TransportableObject) else TransportableObject(obj)

    def get_deserialized(self) -> Any:
        """The value, unpickled (a new copy each call)."""
        return blobs.loads(self._data)

    def get_serialized(self) -> str:
        """The pickle, base64-encoded (as Covalent gives it)."""
        return base64.b64encode(self._data).decode()

    def serialize(self) -> bytes:
        """The pickle's bytes; :meth:`deserialize` makes the object again from them."""
        return self._data

    @classmethod
    def deserialize(cls, data: bytes) -> TransportableObject:
        return cls.from_pickled(data)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, TransportableObject):
            return NotImplemented
        return self._data == other._data

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"TransportableObject({self.object_string})"
