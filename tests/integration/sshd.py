"""A real OpenSSH server on loopback for the SSH executor's tests.

``sshd`` (session-scoped) starts ``/usr/sbin/sshd -D -e`` with a config, host key, client
key and known_hosts file of its own in a temporary folder, on 127.0.0.1 and a free port,
waits until it answers with an SSH banner, and stops it at the end. It logs at VERBOSE
to ``sshd.log``, one "Accepted publickey" line per connection, which the tests count.

The remote sessions get ``PYTHONPATH`` set to this checkout, so the host's Python runs
the covalent under test. ``scripts/services/sshd.sh install`` installs sshd.
"""

from __future__ import annotations

import contextlib
import getpass
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import REPO, free_port

SSHD = "/usr/sbin/sshd"
START_DEADLINE = 60.0


@dataclass
class Sshd:
    """A running sshd and what a client needs to log in to it."""

    folder: Path
    port: int
    username: str
    client_key: Path
    known_hosts: Path
    log: Path
    process: subprocess.Popen[bytes]

    def logins(self) -> int:
        """Connections accepted so far (one log line each)."""
        return self.log.read_text(errors="replace").count("Accepted publickey for ")

    def executor_settings(self, **overrides: Any) -> dict[str, Any]:
        """SSHExecutor settings that reach this sshd, as root's Python (or as overridden)."""
        settings: dict[str, Any] = {
            "hostname": "127.0.0.1",
            "port": self.port,
            "username": self.username,
            "ssh_key_file": str(self.client_key),
            "known_hosts": str(self.known_hosts),
            "python_path": sys.executable,  # has covalent's dependencies
            "remote_workdir": str(self.folder / "work"),
            "remote_cache": str(self.folder / "staging"),
            "retry_wait_time": 0.5,
        }
        settings.update(overrides)
        return settings


def _keygen(path: Path) -> None:
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "covalent-tests", "-f", str(path)],
        check=True,
        capture_output=True,
    )


def _config(folder: Path, port: int) -> str:
    return f"""\
Port {port}
ListenAddress 127.0.0.1
HostKey {folder / "host_key"}
PidFile {folder / "sshd.pid"}
AuthorizedKeysFile {folder / "authorized_keys"}
StrictModes no
PermitRootLogin prohibit-password
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
Subsystem sftp internal-sftp
LogLevel VERBOSE
SetEnv PYTHONPATH={REPO} CONDA_EXE={folder / "conda"}{_slurm_conf()}
"""


def _slurm_conf() -> str:
    """`` SLURM_CONF=...`` when a Slurm runs here: the sshd serves as its login node too."""
    conf = os.environ.get("SLURM_CONF") or "/tmp/covalent-slurm/slurm.conf"
    return f" SLURM_CONF={conf}" if os.path.exists(conf) else ""


def _fake_conda(path: Path) -> None:
    """A stand-in for conda whose shell hook 'activates' any environment but ``missing``."""
    hook = (
        'conda() { if [ "$1" = activate ] && [ "$2" != missing ]; then '
        "COVALENT_TEST_CONDA_ENV=$2; export COVALENT_TEST_CONDA_ENV; "
        'else echo "EnvironmentNameNotFound: $2" >&2; return 1; fi; }'
    )
    path.write_text(f"#!/bin/sh\ncat <<'EOF'\n{hook}\nEOF\n")
    path.chmod(0o755)


def _answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2) as sock:
            return sock.recv(64).startswith(b"SSH-")
    except OSError:
        return False


def _start(folder: Path) -> tuple[int, subprocess.Popen[bytes]]:
    """Start sshd on a free port; try another port if that one was taken meanwhile."""
    log = folder / "sshd.log"
    for _ in range(5):
        port = free_port()
        config = folder / "sshd_config"
        config.write_text(_config(folder, port))
        with log.open("ab") as out:
            process = subprocess.Popen(
                [SSHD, "-D", "-e", "-f", str(config)],
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        deadline = time.monotonic() + START_DEADLINE
        while time.monotonic() < deadline and process.poll() is None:
            if _answers(port):
                return port, process
            time.sleep(0.05)
        _stop(process)
        if "Address already in use" not in log.read_text(errors="replace"):
            break
    raise AssertionError(f"sshd did not start; its log:\n{log.read_text(errors='replace')}")


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def installed() -> bool:
    """Whether sshd and ssh-keygen are here (``scripts/services/sshd.sh install``)."""
    return os.access(SSHD, os.X_OK) and shutil.which("ssh-keygen") is not None


@contextlib.contextmanager
def running_sshd(folder: Path) -> Iterator[Sshd]:
    """An sshd on 127.0.0.1 with its keys and config in ``folder`` (which must exist);
    stopped at the end. Also used by ``benchmarks/ssh_throughput.py``."""
    folder.chmod(0o755)  # sshd reads authorized_keys as the user who logs in
    if os.geteuid() == 0:
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # privilege separation; no systemd
    _keygen(folder / "host_key")
    _keygen(folder / "client_key")
    (folder / "authorized_keys").write_text((folder / "client_key.pub").read_text())
    _fake_conda(folder / "conda")
    port, process = _start(folder)
    host_key = (folder / "host_key.pub").read_text().split()[:2]
    (folder / "known_hosts").write_text(f"[127.0.0.1]:{port} {' '.join(host_key)}\n")
    try:
        yield Sshd(
            folder,
            port,
            getpass.getuser(),
            folder / "client_key",
            folder / "known_hosts",
            folder / "sshd.log",
            process,
        )
    finally:
        _stop(process)


@pytest.fixture(scope="session")
def sshd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sshd]:
    if not installed():
        pytest.skip(f"{SSHD} is not installed; run `bash scripts/services/sshd.sh install`")
    with running_sshd(tmp_path_factory.mktemp("sshd")) as server:
        yield server
