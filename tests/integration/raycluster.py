"""A real two-node Ray cluster on loopback for the Ray executor's tests.

``ray_cluster`` (module-scoped) starts a head node with ``ray start --head --block
--node-ip-address=127.0.0.1`` and a second node with ``ray start --block --address=...``,
each with one CPU, a capped object store, a session folder of its own and a custom
resource naming it (``node_a``, ``node_b``), so that a test can send electrons to either.
Token authentication is on, with a token file of the fixture's own; the nodes' workers
get ``PYTHONPATH`` set to this checkout. ``--block`` keeps each ``ray start`` in the
foreground as the parent of its node's processes, so stopping it (SIGTERM) stops them;
whatever is left of either process tree is killed by process id at the end. Each node's
Ray logs are kept in the fixture's temporary folder (``logs-cvray-*``).

Binding to loopback: the head gets ``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0`` (without it Ray
swaps 127.0.0.1 for the machine's network address and listens on every interface). That
setting also makes ``ray start`` refuse to join a second node, and without it Ray swaps
``127.0.0.1`` in ``--address`` for the network address too; so the second node joins
through a name that resolves to 127.0.0.1 (the machine's host name), from which Ray
derives 127.0.0.1 as its own address and listens there only. ``listeners`` and
``assert_loopback_only`` check what every process of a tree listens on (``ss -ltnp``).
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.conftest import REPO, free_port, wait_for

START_DEADLINE = 180.0
STOP_DEADLINE = 60.0
OBJECT_STORE_BYTES = 300 * 1024 * 1024  # the conformance kit sends and gets 100 MB
LOOPBACK = ("127.0.0.1", "[::ffff:127.0.0.1]")


def ray_command() -> str:
    beside = Path(sys.executable).with_name("ray")
    found = str(beside) if beside.exists() else shutil.which("ray")
    if not found:
        pytest.skip("the `ray` command is not installed (pip install 'covalent[ray]')")
    return found


def loopback_name() -> str:
    """A name of this machine that resolves to 127.0.0.1 and is not "localhost"."""
    for name in (socket.gethostname(), socket.getfqdn()):
        try:
            if name not in ("localhost", "127.0.0.1") and socket.gethostbyname(name) == (
                "127.0.0.1"
            ):
                return name
        except OSError:
            continue
    pytest.skip("no host name of this machine resolves to 127.0.0.1 (see /etc/hosts)")


def ray_environment(root: Path, token: Path) -> dict[str, str]:
    """The environment of the cluster's nodes and of a server that uses the cluster."""
    return {
        "HOME": str(root),
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
        "RAY_USAGE_STATS_ENABLED": "0",
        "RAY_AUTH_MODE": "token",
        "RAY_AUTH_TOKEN_PATH": str(token),
        # Ray Client starts a server process per connection, which gets 30 s by default
        "RAY_CLIENT_SERVER_CHECK_CHANNEL_TIMEOUT_S": "120",  # (a loaded machine is slower)
    }


def descendants(pid: int) -> set[int]:
    """``pid`` and every process below it (from /proc)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            children.setdefault(int(fields[1]), []).append(int(entry))
    found, todo = set(), [pid]
    while todo:
        current = todo.pop()
        found.add(current)
        todo.extend(children.get(current, []))
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def listeners(pids: set[int]) -> list[tuple[str, int]]:
    """The (address, pid) of every TCP socket that one of ``pids`` listens on."""
    done = subprocess.run(["ss", "-ltnpH"], capture_output=True, text=True, check=True)
    found = []
    for line in done.stdout.splitlines():
        columns = line.split()
        for pid in map(int, re.findall(r"pid=(\d+)", line)):
            if pid in pids:
                found.append((columns[3], pid))
    return found


def assert_loopback_only(pids: set[int]) -> list[tuple[str, int]]:
    """Every listener of ``pids`` is on 127.0.0.1 (there is at least one); returns them."""
    found = listeners(pids)
    assert found, f"no listening sockets among processes {sorted(pids)}"
    outside = [(address, pid) for address, pid in found if not address.startswith(LOOPBACK)]
    assert not outside, f"Ray listens beyond 127.0.0.1: {outside}"
    return found


def kill_all(pids: set[int]) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)


@dataclass
class RayCluster:
    """A running two-node cluster: its addresses, environment and processes."""

    address: str  # the head's GCS, "127.0.0.1:port"
    client_address: str  # its Ray Client server, "ray://127.0.0.1:port"
    env: dict[str, str]
    root: Path
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def node_pids(self, name: str) -> set[int]:
        """Every process of node ``name`` (``"head"`` or ``"node"``) now."""
        return descendants(self.processes[name].pid)

    def all_pids(self) -> set[int]:
        return set().union(*(descendants(p.pid) for p in self.processes.values()))


def _start(cluster: RayCluster, name: str, command: list[str], env: dict[str, str]) -> None:
    with open(cluster.root / f"{name}.log", "wb") as log:
        process = subprocess.Popen(
            command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env
        )
    cluster.processes[name] = process

    def started() -> bool:
        assert process.poll() is None, (
            f"`ray start` for the {name} exited ({process.returncode}); see "
            f"{cluster.root / f'{name}.log'}"
        )
        return "--block" in (cluster.root / f"{name}.log").read_text(errors="replace")

    wait_for(started, START_DEADLINE, f"the Ray {name} to start")


def _node_command(ray: str, name: str, resource: str) -> list[str]:
    session = tempfile.mkdtemp(prefix=f"cvray-{name}-")  # short: Ray's socket paths
    return [
        ray,
        "start",
        "--block",
        "--num-cpus=1",
        f'--resources={{"{resource}": 1}}',
        f"--object-store-memory={OBJECT_STORE_BYTES}",
        f"--temp-dir={session}",
        "--disable-usage-stats",
    ]


def stop(cluster: RayCluster) -> None:
    """Stop every node (SIGTERM to its ``ray start``), then kill what is left."""
    pids = cluster.all_pids()
    for name in ("node", "head"):
        process = cluster.processes.get(name)
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=STOP_DEADLINE)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
    deadline = time.monotonic() + STOP_DEADLINE
    while any(alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.2)
    kill_all({p for p in pids if alive(p)})


def _session_dirs(command: list[str]) -> list[str]:
    return [part.split("=", 1)[1] for part in command if part.startswith("--temp-dir=")]


@pytest.fixture(scope="module")
def ray_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RayCluster]:
    ray, root = ray_command(), tmp_path_factory.mktemp("ray-cluster")
    token = root / "auth_token"
    token.write_text(secrets.token_hex(32))
    token.chmod(0o600)
    env = {**os.environ, **ray_environment(root, token)}
    env.pop("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", None)
    port, client_port = free_port(), free_port()
    cluster = RayCluster(
        f"127.0.0.1:{port}", f"ray://127.0.0.1:{client_port}", ray_environment(root, token), root
    )
    head = [
        *_node_command(ray, "head", "node_a"),
        "--head",
        "--node-ip-address=127.0.0.1",
        f"--port={port}",
        f"--ray-client-server-port={client_port}",
        "--include-dashboard=false",
    ]
    node = [
        *_node_command(ray, "node", "node_b"),
        f"--address={loopback_name()}:{port}",
    ]
    try:
        _start(cluster, "head", head, {**env, "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"})
        _start(cluster, "node", node, env)
        yield cluster
    finally:
        stop(cluster)
        for folder in _session_dirs(head) + _session_dirs(node):  # keep the logs only
            logs = Path(folder) / "session_latest" / "logs"
            if logs.is_dir():
                shutil.copytree(logs, root / f"logs-{Path(folder).name}", dirs_exist_ok=True)
            shutil.rmtree(folder, ignore_errors=True)
