"""``covalent._shared_files.defaults``: the names Covalent gives generated nodes."""

from __future__ import annotations

from covalent._wire.manifest import DEFAULT_EXECUTOR

parameter_prefix = ":parameter:"
electron_list_prefix = ":electron_list:"
electron_dict_prefix = ":electron_dict:"
sublattice_prefix = ":sublattice:"
prefix_separator = ":"
WAIT_EDGE_NAME = "!waiting_edge"
DEFAULT_EXECUTOR_NAME = DEFAULT_EXECUTOR

__all__ = [
    "DEFAULT_EXECUTOR_NAME",
    "WAIT_EDGE_NAME",
    "electron_dict_prefix",
    "electron_list_prefix",
    "parameter_prefix",
    "prefix_separator",
    "sublattice_prefix",
]
