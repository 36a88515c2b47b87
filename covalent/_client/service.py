"""Starting, stopping and finding the local dispatcher server.

The server runs detached (its own session), logs to ``server.log`` and is recorded in
``server.pid`` (JSON: pid, url, port) in the cache dir. ``start`` returns only once the
server answers its health check.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from covalent import _config
from covalent._client.http import Client
from covalent._errors import CovalentError, ServerUnavailableError

START_TIMEOUT = 60.0
STOP_TIMEOUT = 30.0


def _read_pid_file() -> dict[str, Any] | None:
    try:
        return json.loads(_config.paths().pid_file.read_text())
    except (FileNotFoundError, ValueError):
        return None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie (exited, not reaped) is not alive
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True
    return state != "Z"


def _answers(url: str) -> bool:
    client = Client(url, _config.get_value("dispatcher").get("token"))
    try:
        return client.health().get("status") == "ok"
    except CovalentError:
        return False
    finally:
        client.close()


def _port_in_use(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((socket.gethostbyname(host), port))
        except OSError:
            return True
    return False


def running() -> dict[str, Any] | None:
    """The pid file's record if the server it names is alive and answers, else None."""
    record = _read_pid_file()
    if record and _alive(int(record["pid"])) and _answers(record["url"]):
        return record
    return None


def local_url(port: int | None = None) -> str:
    section = _config.get_value("dispatcher")
    return f"http://{section['address']}:{port or section['port']}"


def start(port: int | None = None, develop: bool = False) -> tuple[str, bool]:
    """Start the server in the background; return its URL once it answers, and whether
    this call started it (False: it was running already)."""
    record = running()
    if record:
        return str(record["url"]), False
    if port is not None and port != _config.get_value("dispatcher.port"):
        _config.set_values("dispatcher.port", int(port))
    section = _config.get_value("dispatcher")
    host, port = section["address"], int(section["port"])
    url = local_url(port)
    if _port_in_use(host, port):
        raise ServerUnavailableError(
            f"Port {port} is in use by another program, so the covalent server cannot start "
            "there; choose another port with `covalent start --port N`."
        )
    process = _spawn(host, port, develop)
    _write_pid_file({"pid": process.pid, "url": url, "port": port, "started_at": time.time()})
    _wait_until_up(process, url)
    return url, True


def _spawn(host: str, port: int, develop: bool) -> subprocess.Popen[bytes]:
    log_file = Path(_config.get_value("dispatcher.log_file"))
    log_file.parent.mkdir(parents=True, exist_ok=True, mode=0o700)  # the log names dispatches
    if not log_file.exists():
        os.close(os.open(log_file, os.O_CREAT | os.O_WRONLY, 0o600))
    command = [
        sys.executable,
        "-m",
        "covalent._server",
        "--host",
        host,
        "--port",
        str(port),
        *(["--log-level", "debug"] if develop else []),  # else sdk.log_level
    ]
    with open(log_file, "ab") as log:
        return subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            cwd=os.getcwd(),
        )


def _write_pid_file(record: dict[str, Any]) -> None:
    path = _config.paths().pid_file
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(record))
    os.replace(tmp, path)


def _wait_until_up(process: subprocess.Popen[bytes], url: str) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    delay = 0.02
    while time.monotonic() < deadline:
        if process.poll() is not None:
            _config.paths().pid_file.unlink(missing_ok=True)
            raise ServerUnavailableError(
                f"The covalent server exited with code {process.returncode} while starting "
                f"({_last_log_line() or 'no log'}); see `covalent logs` for its whole log."
            )
        if _answers(url):
            return
        time.sleep(delay)
        delay = min(delay * 2, 0.25)
    raise ServerUnavailableError(
        f"The covalent server did not answer at {url} within {START_TIMEOUT:.0f} s; see "
        f"`covalent logs`."
    )


def _last_log_line() -> str:
    """The last line of the server log that is not blank, cut to 300 characters."""
    try:
        text = Path(_config.get_value("dispatcher.log_file")).read_text(errors="replace")
    except OSError:
        return ""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1][:300] if lines else ""


def stop() -> bool:
    """Stop the server named in the pid file; return whether one was running."""
    record = _read_pid_file()
    pid_file = _config.paths().pid_file
    if not record or not _alive(int(record["pid"])):
        pid_file.unlink(missing_ok=True)
        return False
    pid = int(record["pid"])
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    if _alive(pid):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        while _alive(pid):
            time.sleep(0.05)
    pid_file.unlink(missing_ok=True)
    return True
