"""The peers of ``python -m benchmarks --peers``: the same workloads on other engines.

Each peer lives in a module of its own (``on_dask``, ``on_ray``, ``on_parsl``,
``on_prefect``) with a :class:`~benchmarks.peers.base.Peer` named ``PEER``. A
:class:`PeerSpec` says where that module is, which package it needs and how to install
it. A peer's module is imported only when its turn comes, after covalent's runs, inside
:meth:`PeerSpec.environment`: so that no engine is loaded while covalent is measured, and
so that an engine that reads its settings as it is imported (Prefect's home, Ray's usage
stats) reads the benchmark's.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from unittest import mock

from benchmarks.peers.base import Peer
from benchmarks.runner import REPO

__all__ = ["PEERS", "Peer", "PeerSpec", "choose"]


@dataclass(frozen=True)
class PeerSpec:
    """Where a peer's code is, what it needs and the environment it runs in; ``{home}`` in
    a value of ``environ`` is the peer's temporary folder."""

    name: str
    module: str
    requires: str
    install: str
    environ: dict[str, str] = field(default_factory=dict)

    def installed(self) -> bool:
        return importlib.util.find_spec(self.requires) is not None

    def skip_note(self) -> str:
        return f"skipped: {self.name} not installed ({self.install})"

    @contextmanager
    def environment(self) -> Iterator[Path]:
        """A temporary home, and this process's environment with ``environ``, the checkout
        first on ``PYTHONPATH`` and this interpreter's scripts first on ``PATH`` (the
        engines' workers import the workloads and start helper scripts by name)."""
        home = Path(tempfile.mkdtemp(prefix=f"covalent-bench-{self.name}-"))
        scripts = str(Path(sys.executable).parent)
        env = {
            "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
            "PATH": os.pathsep.join(filter(None, [scripts, os.environ.get("PATH")])),
            **{key: value.format(home=home) for key, value in self.environ.items()},
        }
        try:
            with mock.patch.dict(os.environ, env):
                yield home
        finally:
            shutil.rmtree(home, ignore_errors=True)

    def load(self, home: Path) -> Peer:
        """The peer, not started; call inside :meth:`environment`."""
        peer_class: type[Peer] = importlib.import_module(self.module).PEER
        return peer_class(home)


PEERS: tuple[PeerSpec, ...] = (
    PeerSpec("dask", "benchmarks.peers.on_dask", "distributed", "pip install distributed"),
    PeerSpec(
        "ray",
        "benchmarks.peers.on_ray",
        "ray",
        "pip install 'ray[client]'",
        {"RAY_USAGE_STATS_ENABLED": "0", "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"},
    ),
    PeerSpec("parsl", "benchmarks.peers.on_parsl", "parsl", "pip install parsl"),
    PeerSpec(
        "prefect",
        "benchmarks.peers.on_prefect",
        "prefect",
        "pip install prefect",
        {
            "PREFECT_HOME": "{home}",
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "DO_NOT_TRACK": "1",
            "PREFECT_LOGGING_LEVEL": "WARNING",
            # Its temporary server answers 503 while SQLite is busy (the events of a large
            # fan-out): the client retries 5 times by default, which a loaded machine outlasts.
            "PREFECT_CLIENT_MAX_RETRIES": "10",
            "PREFECT_SERVER_DATABASE_TIMEOUT": "60",
            # Its one error: the task-run recorder's last flush, cancelled as the server stops.
            "PREFECT_SERVER_LOGGING_LEVEL": "CRITICAL",
        },
    ),
)


def choose(names: list[str], peers: tuple[PeerSpec, ...] = PEERS) -> list[PeerSpec]:
    """The peers named (all of them if ``names`` is empty), in ``peers``' order.

    Raises:
        ValueError: a name is not a peer's (the message lists the peers).
    """
    wanted = {name.strip().lower() for name in names if name.strip()}
    unknown = wanted - {spec.name for spec in peers}
    if unknown:
        known = ", ".join(spec.name for spec in peers)
        raise ValueError(f"unknown peer(s) {', '.join(sorted(unknown))}; the peers are {known}")
    return [spec for spec in peers if not wanted or spec.name in wanted]
