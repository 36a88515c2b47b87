"""Which settings an electron takes from its lattice, and a sublattice from its node.

The rule (Covalent's, applied to every setting below): an electron that leaves a
setting unset takes its lattice's; a lattice that leaves it unset takes, when it runs as
a sublattice, its sublattice node's, which itself follows the same rule in the parent
lattice. So a setting comes from the nearest of: the electron, its lattice, the
sublattice node that runs that lattice, the lattice around that node, and so on up;
``executor`` ends at ``"local"``, the others at nothing (or the executor's config
defaults for ``retries``, ``retry_delay`` and ``timeout``).
"""

from __future__ import annotations

from typing import Any

INHERITED = (
    "executor",
    "deps_bash",
    "deps_pip",
    "call_before",
    "call_after",
    "retries",
    "retry_delay",
    "timeout",
)
"""The settings that follow the rule; ``files``, ``cache`` and ``triggers`` do not."""


def unset(value: Any) -> bool:
    """Whether a setting was left unset (None, or no hooks at all)."""
    return value is None or (isinstance(value, list) and not value)


def resolve(own: dict[str, Any], defaults: dict[str, Any]) -> dict[str, Any]:
    """Each inherited setting: ``own``'s, or where that is unset, ``defaults``'."""
    resolved = {}
    for key in INHERITED:
        value = own.get(key)
        if value is None or (value.__class__ is list and not value):  # unset (inlined: hot)
            value = defaults.get(key)
        resolved[key] = value
    return resolved
