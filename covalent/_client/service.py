"""Starting, stopping and finding the local dispatcher server.

The server runs detached (its own session), logs to ``server.log`` and is recorded in
``server.pid`` (JSON: pid, url, port, and the database URL it uses; readable by its owner
only) in the cache dir. ``start`` returns only once the server answers its health check,
and only then saves a ``--port`` or ``--database-url`` it was given to the config: a
start that fails changes nothing. A database URL travels to the server in its
environment, never on its command line (where ``ps`` would show the password).

Every start compares its store with the one the last start used (``store.json`` in the
data dir keeps a digest of it and its URL with the password masked) and says so on
stderr when it changed: the dispatches of the other store are not listed any more.
``restart`` starts the server again on the store it was running on.

Starts and stops in one home take turns (an exclusive ``flock`` on ``server.start.lock``
in the cache dir, for up to :data:`START_TIMEOUT` and a little more): two ``covalent
start`` at once give one server, the second start finding it running. ``stop`` signals
only a live process whose command line is covalent's server, never whatever number a
stale or hand-edited pid file holds. The server itself also
refuses to run beside another on the same database (covalent/_store/lock.py).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from covalent import _config
from covalent._client.http import Client
from covalent._errors import ConfigError, CovalentError, ServerUnavailableError

START_TIMEOUT = 60.0
STOP_TIMEOUT = 30.0
START_TURN_WAIT = START_TIMEOUT + 30.0
"""Seconds a start waits for another start in the same home to finish."""


def _read_pid_file() -> dict[str, Any] | None:
    """The pid file's record, or None if there is none or it is not one this module
    wrote (a JSON object with an integer ``pid`` above 1 and a string ``url``): a file
    edited by hand or cut short never makes ``stop`` signal a process group or every
    process (``kill(0)``, ``kill(-1)``)."""
    try:
        record = json.loads(_config.paths().pid_file.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(record, dict):
        return None
    pid, url = record.get("pid"), record.get("url")
    if type(pid) is not int or not 1 < pid < 1 << 31 or not isinstance(url, str):
        return None
    return record


def _alive(pid: int) -> bool:
    if pid <= 1:
        return False
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


def _is_server(pid: int) -> bool:
    """Whether ``pid`` is alive and a covalent server (its command line runs
    ``covalent._server``, read from /proc where there is one): after a crash the pid
    file's number may have gone to another program, which ``stop`` must not signal."""
    if not _alive(pid):
        return False
    try:
        command = Path(f"/proc/{pid}/cmdline").read_bytes()
    except FileNotFoundError:
        return not Path("/proc/self").exists()  # no /proc here (macOS): trust the record
    except OSError:
        return False
    return b"covalent._server" in command.split(b"\0")


def _answers(url: str) -> bool:
    client = Client(url, _config.get_value("dispatcher").get("token"))
    try:
        return client.health().get("status") == "ok"
    except CovalentError:
        return False
    finally:
        client.close()


def _check_can_listen(host: str, port: int) -> None:
    """A ConfigError if ``host`` is not an address of this machine, a
    ServerUnavailableError if the port is taken (or needs privileges)."""
    try:
        address = socket.gethostbyname(host)
    except OSError as e:
        raise ConfigError(
            f"dispatcher.address '{host}' does not resolve here ({e.strerror or e}); set a "
            "name or address of this machine with `covalent config set dispatcher.address`."
        ) from None
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((address, port))
        except OSError as e:
            raise _bind_error(host, address, port, e) from None


def _bind_error(host: str, address: str, port: int, error: OSError) -> CovalentError:
    if error.errno == errno.EADDRNOTAVAIL:
        return ConfigError(
            f"dispatcher.address '{host}' ({address}) is not an address of this machine, so "
            "the server cannot listen there; set one of its own with `covalent config set "
            "dispatcher.address`."
        )
    if error.errno == errno.EACCES:
        return ServerUnavailableError(
            f"Port {port} needs privileges this user does not have; choose a port above "
            "1023 with `covalent start --port N`."
        )
    return ServerUnavailableError(
        f"Port {port} is in use by another program, so the covalent server cannot start "
        "there; choose another port with `covalent start --port N`."
    )


def running() -> dict[str, Any] | None:
    """The pid file's record if the server it names is alive and answers, else None."""
    record = _read_pid_file()
    if record and _is_server(record["pid"]) and _answers(record["url"]):
        return record
    return None


def local_url(port: int | None = None) -> str:
    section = _config.get_value("dispatcher")
    return f"http://{section['address']}:{port or section['port']}"


def start(
    port: int | None = None,
    develop: bool = False,
    database_url: str | None = None,
    save_database: bool = True,
) -> tuple[str, bool]:
    """Start the server in the background; return its URL once it answers, and whether
    this call started it (False: it was running already).

    ``port`` and ``database_url`` override the config for this start and are saved to it
    once the server answers (``database_url`` only with ``save_database``). Raises
    ServerUnavailableError if the port is taken or the server exits while starting (its
    last log line says why).
    """
    with _start_turn():
        return _start(port, develop, database_url, save_database)


@contextlib.contextmanager
def _start_turn() -> Iterator[None]:
    """This start's turn: an exclusive flock on ``server.start.lock`` in the cache dir,
    waited for up to START_TURN_WAIT seconds (then ServerUnavailableError)."""
    path = _config.paths().pid_file.with_name("server.start.lock")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        deadline = time.monotonic() + START_TURN_WAIT
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise ServerUnavailableError(
                        f"Another `covalent start` in this home has been starting the server "
                        f"for over {START_TURN_WAIT:.0f} s (it holds {path}); see `covalent "
                        "logs`, or stop that start and try again."
                    ) from None
                time.sleep(0.05)
        yield
    finally:
        os.close(fd)


def _start(
    port: int | None, develop: bool, database_url: str | None, save_database: bool
) -> tuple[str, bool]:
    record = running()
    if record:
        if database_url and record.get("db_url") != database_url:
            sys.stderr.write(
                "Warning: the server is already running on another database "
                f"({_config.mask_secrets(record.get('db_url') or 'SQLite')}); --database-url "
                "was not used. `covalent stop` first to start it on that database.\n"
            )
        return str(record["url"]), False
    section = _config.get_value("dispatcher")
    host = section["address"]
    port = _config.check_value("dispatcher.port", section["port"] if port is None else port)
    url = local_url(port)
    _check_can_listen(host, port)
    db_url = database_url or section.get("db_url") or None
    before = _read_pid_file()
    process = _spawn(host, port, develop, database_url)
    _write_pid_file(
        {"pid": process.pid, "url": url, "port": port, "started_at": time.time(), "db_url": db_url}
    )
    try:
        _wait_until_up(process, url)
    except ServerUnavailableError:
        exited = process.poll() is not None
        if exited and before and _is_server(before["pid"]):  # one this start found not answering
            _write_pid_file(before)
        raise
    _save_choices(port, database_url if save_database else None)
    _say_if_store_changed(db_url or f"sqlite:///{section['db_path']}")
    return url, True


def _save_choices(port: int, database_url: str | None) -> None:
    """Save what this start was told, now that the server answers."""
    updates: dict[str, Any] = {}
    if port != _config.get_value("dispatcher.port"):
        updates["dispatcher.port"] = port
    if database_url and database_url != _config.file_values().get("dispatcher", {}).get("db_url"):
        updates["dispatcher.db_url"] = database_url
    if updates:
        _config.set_values(updates)


def _say_if_store_changed(db_url: str) -> None:
    """Warn on stderr when this start's store is not the one the last start used."""
    path = _config.paths().data_dir / "store.json"
    digest = hashlib.sha256(db_url.encode()).hexdigest()
    shown = _config.mask_secrets(db_url)
    try:
        last = json.loads(path.read_text())
    except (FileNotFoundError, ValueError):
        last = None
    if last and last.get("digest") != digest:
        sys.stderr.write(
            f"Warning: the server now uses the database {shown}, not {last.get('shown')} as "
            "before: dispatches stored there are not listed. To go back, `covalent stop` then "
            "`covalent start --database-url URL` (saved for every start), or `covalent config "
            "unset dispatcher.db_url` for SQLite.\n"
        )
    if not last or last.get("digest") != digest:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"digest": digest, "shown": shown}))


def database_url_to_keep() -> str | None:
    """For a restart: the running server's database URL, if the configuration (file and
    environment) names none now; else None (the configuration decides)."""
    if _config.get_value("dispatcher").get("db_url"):
        return None
    record = _read_pid_file()
    if record and _is_server(record["pid"]):
        return record.get("db_url") or None
    return None


def _spawn(
    host: str, port: int, develop: bool, database_url: str | None
) -> subprocess.Popen[bytes]:
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
    env = dict(os.environ)
    if database_url:
        env["COVALENT_DATABASE_URL"] = database_url
    with open(log_file, "ab") as log:
        return subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            cwd=os.getcwd(),
            env=env,
        )


def _write_pid_file(record: dict[str, Any]) -> None:
    path = _config.paths().pid_file
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)  # it may hold a password
    with os.fdopen(fd, "w") as f:
        f.write(json.dumps(record))
    os.replace(tmp, path)


def _wait_until_up(process: subprocess.Popen[bytes], url: str) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    delay = 0.02
    while time.monotonic() < deadline:
        if process.poll() is not None:
            _config.paths().pid_file.unlink(missing_ok=True)
            raise ServerUnavailableError(
                f"The covalent server exited with code {process.returncode} while starting "
                f"({_config.mask_secrets(_last_log_line()) or 'no log'}); see `covalent logs` "
                "for its whole log."
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
    """Stop the server named in the pid file; return whether one was running. A record
    that names no live covalent server (it crashed, its number went to another program)
    is removed and nothing is signalled. Stops and starts in one home take turns."""
    with _start_turn():
        return _stop()


def _stop() -> bool:
    record = _read_pid_file()
    pid_file = _config.paths().pid_file
    if not record or not _is_server(record["pid"]):
        pid_file.unlink(missing_ok=True)
        return False
    pid = record["pid"]  # an int above 1 (_read_pid_file)
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
    after = _read_pid_file()
    if after is None or after["pid"] == pid:  # not a record a start wrote meanwhile
        pid_file.unlink(missing_ok=True)
    return True
