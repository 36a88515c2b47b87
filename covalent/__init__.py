"""covalent: a Python workflow orchestrator (``import covalent as ct``).

Decorate functions as electrons, compose them in a lattice, choose per electron where
it runs, dispatch, and query the result. This module only re-exports the public API.
"""

from __future__ import annotations

__version__ = "0.300.0"

from covalent import _compat as _compat  # the original's module paths (see _compat)
from covalent import executor, fs, fs_strategies, leptons, triggers
from covalent._api import (
    covalent_start,
    covalent_stop,
    get_config,
    is_covalent_running,
    reload_config,
    set_config,
)
from covalent._client.dispatch import cancel, dispatch, dispatch_sync, get_result
from covalent._client.redispatch import redispatch
from covalent._errors import CovalentError
from covalent._results.result import Result
from covalent._results.status import Status
from covalent._wire.transport import TransportableObject
from covalent._workflow.context import get_context
from covalent._workflow.deps import DepsBash, DepsCall, DepsModule, DepsPip
from covalent._workflow.electron import Electron, electron
from covalent._workflow.lattice import Lattice, lattice
from covalent._workflow.lepton import Lepton
from covalent._workflow.tracing import wait
from covalent.triggers import stop_triggers

status = Status

__all__ = [
    "CovalentError",
    "DepsBash",
    "DepsCall",
    "DepsModule",
    "DepsPip",
    "Electron",
    "Lattice",
    "Lepton",
    "Result",
    "Status",
    "TransportableObject",
    "__version__",
    "cancel",
    "covalent_start",
    "covalent_stop",
    "dispatch",
    "dispatch_sync",
    "electron",
    "executor",
    "fs",
    "fs_strategies",
    "get_config",
    "get_context",
    "get_result",
    "leptons",
    "is_covalent_running",
    "lattice",
    "redispatch",
    "reload_config",
    "set_config",
    "status",
    "stop_triggers",
    "triggers",
    "wait",
]
