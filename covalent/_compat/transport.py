"""``covalent._workflow.transport``: ``TransportableObject``."""

from __future__ import annotations

from covalent._wire.transport import TransportableObject

__all__ = ["TransportableObject"]
