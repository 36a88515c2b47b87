"""Remote hosts behind one small layer: logging in, paths, files, commands, the runner.

The SSH executor runs electrons on a host over SSH; the Slurm executor submits jobs on a
login node over SSH, or on this machine. Both reach their host through this module, as
Parsl keeps its channels apart from its executors:

- :class:`SSHTarget`: where and how to log in, as ``asyncssh.connect`` options, with the
  errors a user can act on (an untrusted host key, a refused login, a missing key file);
- :class:`SSHConnection`: one connection, one SFTP session and the host's home folder,
  shared by every task; it runs commands with ``/bin/sh`` and moves files, writing them
  readable by their owner only (files 0600, folders 0700);
- :class:`Host`: what the Slurm executor needs of a machine (commands, files), as
  :class:`LocalHost` (this machine) or :class:`SSHHost` (over an SSHConnection, made
  again once if it drops);
- :func:`shell_path` and :func:`runner_command`: one way to name a path on a host (a
  leading ``~`` and relative paths start at the home folder) and to start the runner.

asyncssh is imported on first use (:func:`asyncssh_module`), so that executor discovery
stays cheap and works where covalent is installed without the ``ssh`` extra.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import posixpath
import shlex
import shutil
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from types import ModuleType
from typing import TYPE_CHECKING, Any

from covalent._errors import ExecutorError

if TYPE_CHECKING:
    import asyncssh

CONNECT_TIMEOUT = 30.0
KEEPALIVE_INTERVAL = 30.0
COMMAND_TIMEOUT = 120.0
"""Seconds a short command (sbatch, squeue, kill, ...) may take before it counts as failed."""
CLOSE_TIMEOUT = 30.0
PRIVATE_DIR = 0o700
PRIVATE_FILE = 0o600


class HostError(ExecutorError):
    """A remote host could not be reached or used; the message says which and why."""


def asyncssh_module(who: str) -> ModuleType:
    """The asyncssh module; HostError naming ``who`` needs it and how to install it."""
    try:
        import asyncssh
    except ImportError as e:
        raise HostError(
            f"{who} needs asyncssh on the server's machine: "
            "pip install 'covalent[ssh]' (or asyncssh>=2.14)."
        ) from e
    return asyncssh


def describe(error: BaseException) -> str:
    """An error as one line: its class and message."""
    text = str(error).strip()
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


# paths and commands


def shell_path(path: str) -> str:
    """``path`` as a shell word on the host: a leading ``~`` is the home folder, and a
    relative path with a folder in it starts there too (as a login shell does); a bare
    name (``python3``) is looked up on the PATH."""
    if path == "~" or path.startswith("~/"):
        return '"$HOME"' + (shlex.quote(path[1:]) if len(path) > 1 else "")
    if "/" in path and not path.startswith("/"):
        return '"$HOME"/' + shlex.quote(path)
    return shlex.quote(path)


def sh(script: str) -> str:
    """Run ``script`` with ``/bin/sh``, whatever the user's login shell is."""
    return f"exec /bin/sh -c {shlex.quote(script)}"


def runner_command(python: str, request: str, reply: str) -> str:
    """The shell words that run one packed task on a host: the public runner
    (covalent.executor.runner) with its output left on the process's file descriptors
    (``--stream``), reading ``request`` and writing ``reply``."""
    return (
        f"{shell_path(python)} -m covalent.executor.runner --stream "
        f"{shlex.quote(request)} {shlex.quote(reply)}"
    )


# logging in


@dataclass(frozen=True)
class SSHTarget:
    """Where and how to log in over SSH."""

    hostname: str
    port: int = 22
    username: str = ""
    key_file: str = ""
    cert_file: str = ""
    known_hosts: str = ""
    verify_host_key: bool = True
    who: str = "The SSH executor"
    """Who logs in, for messages (an executor's name)."""

    def __str__(self) -> str:
        user = f"{self.username}@" if self.username else ""
        return f"{user}{self.hostname}:{self.port}"

    def options(self) -> dict[str, Any]:
        """``asyncssh.connect``'s keyword arguments; HostError for a key file that is
        not there."""
        options: dict[str, Any] = {
            "port": self.port,
            "connect_timeout": CONNECT_TIMEOUT,
            "keepalive_interval": KEEPALIVE_INTERVAL,
        }
        if self.username:
            options["username"] = self.username
        if self.key_file:
            key = os.path.expanduser(self.key_file)
            if not os.path.isfile(key):
                raise HostError(
                    f"The SSH key file {self.key_file!r} of {self.who} does not exist on the "
                    "server's machine."
                )
            options["client_keys"] = [key]
        if self.cert_file:
            options["client_certs"] = [os.path.expanduser(self.cert_file)]
        if not self.verify_host_key:
            options["known_hosts"] = None
        elif self.known_hosts:
            options["known_hosts"] = os.path.expanduser(self.known_hosts)
        return options

    def refused(self, error: Exception) -> str:
        """What to do about a login the host refused."""
        ssh = asyncssh_module(self.who)
        if isinstance(error, ssh.HostKeyNotVerifiable):
            return (
                f"The host key of {self} is not trusted: {describe(error)}. Add it to "
                f"{self.known_hosts or '~/.ssh/known_hosts'} (ssh-keyscan -p {self.port} "
                f"{self.hostname} >> FILE, after checking it), or set known_hosts=FILE."
            )
        if isinstance(error, ssh.PermissionDenied):
            return (
                f"{self} refused the SSH login: {describe(error)}. Check username "
                f"({self.username or 'default'!r}) and ssh_key_file ({self.key_file!r})."
            )
        return f"Could not use the SSH key for {self}: {describe(error)}."


class SSHConnection:
    """One SSH connection, its SFTP session and the host's home folder; ``slots``
    bounds the channels open on it at once (sshd allows 10 sessions by default)."""

    def __init__(
        self,
        target: SSHTarget,
        conn: asyncssh.SSHClientConnection,
        sftp: asyncssh.SFTPClient,
        home: str,
        channels: int,
    ) -> None:
        self.target = target
        self.conn = conn
        self.sftp = sftp
        self.home = home
        self.slots = asyncio.Semaphore(max(1, channels))
        self._made: set[str] = set()

    @classmethod
    async def open(
        cls, target: SSHTarget, channels: int = 8, attempts: int = 1, wait: float = 5.0
    ) -> SSHConnection:
        """Log in (``attempts`` times, ``wait`` seconds apart) and start SFTP; HostError
        saying what to do if the host refuses, cannot be reached, or has no SFTP."""
        ssh = asyncssh_module(target.who)
        if not target.hostname:
            raise HostError(f"{target.who} needs a host name to log in to.")
        options = target.options()
        for attempt in range(1, max(1, attempts) + 1):
            try:
                conn = await ssh.connect(target.hostname, **options)
                break
            except (ssh.PermissionDenied, ssh.HostKeyNotVerifiable, ValueError) as e:
                raise HostError(target.refused(e)) from e
            except (OSError, ssh.Error, asyncio.TimeoutError) as e:
                if attempt >= attempts:
                    raise HostError(
                        f"Could not connect to {target} over SSH after {attempt} "
                        f"attempt(s): {describe(e)}."
                    ) from e
                await asyncio.sleep(wait)
        try:
            sftp = await conn.start_sftp_client()
            home = await sftp.realpath(".")
        except (OSError, ssh.Error) as e:
            conn.close()
            raise HostError(
                f"Connected to {target}, but it offers no SFTP: {describe(e)}. "
                f"{target.who} needs the host's sshd to have an sftp Subsystem."
            ) from e
        return cls(target, conn, sftp, home, channels)

    @property
    def closed(self) -> bool:
        return bool(self.conn.is_closed())

    def path(self, path: str) -> str:
        """``path`` on the host as an absolute path: ``~`` and relative ones from home."""
        if path == "~" or path.startswith("~/"):
            path = path[2:]
        return posixpath.normpath(posixpath.join(self.home, path))

    async def makedirs(self, path: str) -> None:
        """Make ``path`` and its parents (0700), once per connection."""
        if path not in self._made:
            attrs = asyncssh_module(self.target.who).SFTPAttrs(permissions=PRIVATE_DIR)
            await self.sftp.makedirs(path, attrs=attrs, exist_ok=True)
            self._made.add(path)

    async def write(self, path: str, data: bytes) -> None:
        """Write ``path`` (0600), making its folder first (again, if it was removed)."""
        ssh = asyncssh_module(self.target.who)
        folder = posixpath.dirname(path)
        await self.makedirs(folder)
        try:
            await self._write(path, data)
        except ssh.SFTPNoSuchFile:
            self._made.discard(folder)
            await self.makedirs(folder)
            await self._write(path, data)

    async def _write(self, path: str, data: bytes) -> None:
        attrs = asyncssh_module(self.target.who).SFTPAttrs(permissions=PRIVATE_FILE)
        async with self.sftp.open(path, "wb", attrs, encoding=None) as f:
            await f.write(data)

    async def read(self, path: str, offset: int = 0, limit: int = -1) -> bytes | None:
        """A file's bytes (``limit`` of them from ``offset``), or None if it is not there."""
        ssh = asyncssh_module(self.target.who)
        try:
            async with self.sftp.open(path, "rb", encoding=None) as f:
                data = await f.read(limit, offset)
        except ssh.SFTPNoSuchFile:
            return None
        return data if isinstance(data, bytes) else data.encode()

    async def size(self, path: str) -> int | None:
        ssh = asyncssh_module(self.target.who)
        try:
            return int((await self.sftp.stat(path)).size or 0)
        except ssh.SFTPNoSuchFile:
            return None

    async def remove(self, *paths: str) -> None:
        """Remove files; one that is not there is no error."""
        ssh = asyncssh_module(self.target.who)
        for path in paths:
            with contextlib.suppress(OSError, ssh.Error):
                await self.sftp.remove(path)

    async def remove_tree(self, path: str) -> None:
        await self.sftp.rmtree(path, ignore_errors=True)

    async def run(self, command: str, timeout: float = COMMAND_TIMEOUT) -> Completed:
        """Run a short command to its end; its exit code and output."""
        done = await asyncio.wait_for(self.conn.run(command, check=False), timeout)
        code = 255 if done.returncode is None else int(done.returncode)
        return Completed(code, str(done.stdout or ""), str(done.stderr or ""))

    async def close(self) -> None:
        self.sftp.exit()
        self.conn.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.conn.wait_closed(), CLOSE_TIMEOUT)


@dataclass
class Completed:
    """A finished command: its exit code and what it printed."""

    returncode: int
    stdout: str
    stderr: str


# machines for the Slurm executor


class Host:
    """Runs commands and moves files on the machine that talks to Slurm. Files are
    written readable by their owner only (0600), in folders made 0700."""

    def __init__(self, env: dict[str, str]) -> None:
        self.env = env
        self.loop = asyncio.get_running_loop()

    async def run(self, argv: list[str]) -> Completed:
        raise NotImplementedError

    async def resolve(self, path: str) -> str:
        """An absolute path; relative ones and ``~`` start at the home folder."""
        raise NotImplementedError

    async def makedirs(self, path: str) -> None:
        raise NotImplementedError

    async def write(self, path: str, data: bytes) -> None:
        raise NotImplementedError

    async def read(self, path: str) -> bytes | None:
        """The file's bytes, or None when it does not exist."""
        raise NotImplementedError

    async def read_from(self, path: str, offset: int, limit: int) -> bytes:
        """Up to ``limit`` bytes of a file from ``offset`` (b"" when it does not exist)."""
        raise NotImplementedError

    async def tail(self, path: str, limit: int) -> str:
        """The last ``limit`` bytes of a text file ("" when it does not exist)."""
        raise NotImplementedError

    async def remove_tree(self, path: str) -> None:
        raise NotImplementedError

    async def close(self) -> None:
        pass


class LocalHost(Host):
    """This machine: subprocesses, and file operations in a thread."""

    async def run(self, argv: list[str]) -> Completed:
        try:
            process = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.DEVNULL,
                env={**os.environ, **self.env},
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )
        except OSError as e:
            return Completed(127, "", f"cannot run {argv[0]}: {e}")
        try:
            out, err = await asyncio.wait_for(process.communicate(), COMMAND_TIMEOUT)
        except (asyncio.TimeoutError, asyncio.CancelledError) as e:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await process.wait()
            if isinstance(e, asyncio.CancelledError):
                raise
            return Completed(124, "", f"{argv[0]} took more than {COMMAND_TIMEOUT:g} s")
        return Completed(
            process.returncode or 0, out.decode(errors="replace"), err.decode(errors="replace")
        )

    async def resolve(self, path: str) -> str:
        return os.path.abspath(os.path.join(os.path.expanduser("~"), os.path.expanduser(path)))

    async def makedirs(self, path: str) -> None:
        await asyncio.to_thread(os.makedirs, path, PRIVATE_DIR, True)

    async def write(self, path: str, data: bytes) -> None:
        def _write() -> None:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, PRIVATE_FILE)
            with os.fdopen(fd, "wb") as f:
                f.write(data)

        await asyncio.to_thread(_write)

    async def read(self, path: str) -> bytes | None:
        def _read() -> bytes | None:
            try:
                with open(path, "rb") as f:
                    return f.read()
            except FileNotFoundError:
                return None

        return await asyncio.to_thread(_read)

    async def read_from(self, path: str, offset: int, limit: int) -> bytes:
        def _read() -> bytes:
            try:
                with open(path, "rb") as f:
                    f.seek(offset)
                    return f.read(limit)
            except FileNotFoundError:
                return b""

        return await asyncio.to_thread(_read)

    async def tail(self, path: str, limit: int) -> str:
        def _tail() -> bytes:
            try:
                with open(path, "rb") as f:
                    f.seek(max(0, os.fstat(f.fileno()).st_size - limit))
                    return f.read()
            except FileNotFoundError:
                return b""

        return (await asyncio.to_thread(_tail)).decode(errors="replace")

    async def remove_tree(self, path: str) -> None:
        await asyncio.to_thread(shutil.rmtree, path, True)


class SSHHost(Host):
    """A login node over one :class:`SSHConnection`, made again once if it drops."""

    def __init__(self, target: SSHTarget, env: dict[str, str], channels: int = 8) -> None:
        super().__init__(env)
        self.target = target
        self.channels = channels
        self._connection: SSHConnection | None = None
        self._lock = asyncio.Lock()

    async def _connected(self) -> SSHConnection:
        async with self._lock:
            if self._connection is None or self._connection.closed:
                self._connection = await SSHConnection.open(self.target, self.channels)
            return self._connection

    async def _use(self, action: Callable[[SSHConnection], Awaitable[Any]]) -> Any:
        """Run ``action(connection)``; a dropped connection is made again once."""
        ssh = asyncssh_module(self.target.who)
        for attempt in (1, 2):
            try:
                connection = await self._connected()
                async with connection.slots:
                    return await action(connection)
            except (ssh.DisconnectError, ssh.ConnectionLost, ConnectionError) as e:
                await self.close()
                if attempt == 2:
                    raise HostError(f"SSH to {self.target} failed: {describe(e)}") from e
            except (ssh.Error, OSError, asyncio.TimeoutError) as e:
                raise HostError(f"SSH to {self.target} failed: {describe(e)}") from e
        raise AssertionError("unreachable")

    async def run(self, argv: list[str]) -> Completed:
        command = shlex.join(["env", *(f"{k}={v}" for k, v in self.env.items()), *argv])
        result: Completed = await self._use(lambda c: c.run(command))
        return result

    async def resolve(self, path: str) -> str:
        connection = await self._connected()
        return connection.path(path)

    async def makedirs(self, path: str) -> None:
        await self._use(lambda c: c.makedirs(path))

    async def write(self, path: str, data: bytes) -> None:
        await self._use(lambda c: c.write(path, data))

    async def read(self, path: str) -> bytes | None:
        result: bytes | None = await self._use(lambda c: c.read(path))
        return result

    async def read_from(self, path: str, offset: int, limit: int) -> bytes:
        result: bytes | None = await self._use(lambda c: c.read(path, offset, limit))
        return result or b""

    async def tail(self, path: str, limit: int) -> str:
        async def _tail(connection: SSHConnection) -> bytes:
            size = await connection.size(path)
            if size is None:
                return b""
            return await connection.read(path, max(0, size - limit)) or b""

        result: bytes = await self._use(_tail)
        return result.decode(errors="replace")

    async def remove_tree(self, path: str) -> None:
        await self._use(lambda c: c.remove_tree(path))

    async def close(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            await connection.close()
