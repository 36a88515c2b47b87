"""``SSHExecutor``: runs electrons on another host over SSH.

On first use the executor logs in once (one SSH connection per host, port, user and
key, reused by every electron) and starts one long-lived runner there over one SSH
channel: the host's Python (``python_path``, in ``conda_env`` if set) running
``python -m covalent.executor.host_runner``, which imports covalent once. Each electron
is then packed (function, arguments and context as blobs) into one request sent over
that channel; the runner forks a process of its own for it (a session and process
group of its own: no fresh interpreter, yet one electron's crash, leak or kill touches
no other), and sends back, over the same channel, when it started (the node is RUNNING
from then), what it writes to its stdout and stderr as it runs (file descriptors, so
subprocesses and C extensions count; they go to the node every 0.25 s, see
covalent.executor.live) and its reply. The server never unpickles user data: the reply
is MessagePack (covalent.executor.messages), decoded into a typed record. A request
larger than :data:`INLINE_REQUEST` goes by SFTP into a 0600 file in ``remote_cache``
instead, which the electron's process reads and removes.

A timed-out electron is sent SIGUSR1 first, on which it writes its Python stacks to
stderr, and its process group is killed 0.5 s later; cancelling an electron kills its
process group. If the runner's channel ends (the runner was killed, the connection
dropped), every electron on it fails with an error saying so, and the next electron
starts a new runner (and a new connection if needed); a runner whose channel ends kills
the electrons it still runs.

Electrons whose ``env`` names a variable that Python, the loader or the C library read
only as a process starts (``PYTHON*``, ``LD_*``, ``MALLOC_*``, ``GLIBC_*``: see
:func:`needs_fresh_interpreter`) cannot be honoured by a forked process: they run as
before the runner existed, each with
``python -m covalent.executor.runner --stream REQUEST REPLY`` on a channel of its own,
the request and reply as files in ``remote_cache`` (0600) and ``env`` exported by the
shell first. The remote shell reports its pid and ``exec``s Python, so Python leads its
own process group (sshd starts every session in a new one); cancelling kills that group.
"""

from __future__ import annotations

import asyncio
import contextlib
import posixpath
import re
import shlex
import time
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from covalent._errors import ExecutorError
from covalent.executor import settings as check
from covalent.executor.base import BaseExecutor
from covalent.executor.hosts import (
    HostError,
    SSHConnection,
    SSHTarget,
    asyncssh_module,
    describe,
    runner_command,
    sh,
    shell_path,
)
from covalent.executor.live import LiveOutput
from covalent.executor.messages import Ended, MessageError, Run
from covalent.executor.runner_channel import (
    READY_MARKER,
    RunnerChannel,
    RunnerJob,
    RunnerLost,
    RunnerStartError,
)
from covalent.executor.task import Outcome, Task, load_reply, outcome_from_reply

if TYPE_CHECKING:
    import asyncssh

EXECUTOR_PLUGIN_NAME = "SSHExecutor"

DEFAULT_WORKDIR = "~/.cache/covalent/remote"
DEFAULT_CACHE = "~/.cache/covalent/staging"

_EXECUTOR_PLUGIN_DEFAULTS: dict[str, Any] = {
    "username": "",
    "hostname": "",
    "ssh_key_file": "",
    "python_path": "python3",
    "remote_workdir": DEFAULT_WORKDIR,
    "port": 22,
    "conda_env": "",
    "create_unique_workdir": False,
    "cert_file": "",
    "remote_cache": DEFAULT_CACHE,
    "env": {},
    "known_hosts": "",
    "verify_host_key": True,
    "do_cleanup": True,
    "retry_connect": True,
    "max_connection_attempts": 5,
    "retry_wait_time": 5.0,
    "max_tasks": 8,
}

KILL_TIMEOUT = 30.0
STDERR_TAIL = 8000
STACK_GRACE = 0.5
"""Seconds a timed-out electron has to write its Python stacks before it is killed."""
PID_MARKER = "covalent-remote-pid:"
INLINE_REQUEST = 4 * 1024 * 1024
"""Bytes of a packed request sent over the runner's channel; a larger one goes as a file."""
STARTUP_PREFIXES = ("PYTHON", "LD_", "MALLOC_", "GLIBC_")
"""Environment variables read as a process starts, which a forked process cannot honour."""
CONDA_FAILED = 97
CONDA_LOCATIONS = (
    '"${CONDA_EXE:-}" conda "$HOME/miniconda3/bin/conda" "$HOME/anaconda3/bin/conda" '
    '"$HOME/miniforge3/bin/conda" "$HOME/mambaforge/bin/conda" /opt/conda/bin/conda'
)


class SSHExecutor(BaseExecutor):
    """Run each electron on a host over SSH, with that host's Python.

    The host needs a POSIX ``/bin/sh`` and covalent installed for ``python_path``.

    Args:
        username: user to log in as (default: the server's user, or ``~/.ssh/config``).
        hostname: host name or address (a ``~/.ssh/config`` alias works too).
        ssh_key_file: private key file on the server's machine (default: asyncssh's
            defaults, ``~/.ssh/id_ed25519``, ``~/.ssh/id_rsa``, ... and the SSH agent).
        python_path: the host's Python: a command on its PATH or a path (``~`` allowed).
        remote_workdir: folder on the host the electron runs in.
        port: the host's SSH port.
        conda_env: conda environment to activate on the host before running Python.
        create_unique_workdir: run in ``remote_workdir/<dispatch_id>/node_<id>`` instead.
        cert_file: OpenSSH certificate for the key, if the host requires one.
        remote_cache: folder on the host for the request and reply files.
        env: environment variables set while the electron runs.
        known_hosts: file of trusted host keys (default ``~/.ssh/known_hosts``).
        verify_host_key: check the host's key against ``known_hosts``; turn it off only
            on a network you trust.
        do_cleanup: remove the request and reply files after each electron (those the
            runner reads are removed by it).
        retry_connect: retry a failed connection attempt.
        max_connection_attempts: connection attempts before the electron fails.
        retry_wait_time: seconds between connection attempts.
        max_tasks: electrons running at once on the connection (each a process forked
            by the runner; an electron on the fresh-interpreter path holds an SSH channel
            of its own, so keep it below the host's ``MaxSessions``, 10 by default, less two).
        log_stdout, log_stderr, cache_dir, time_limit, retries: the original's, accepted
            and kept.

    Every setting is checked here: a wrong one raises ExecutorSettingError (a
    ValueError) naming it, its value and what is expected.
    """

    def __init__(
        self,
        username: str = "",
        hostname: str = "",
        ssh_key_file: str = "",
        python_path: str = "python3",
        remote_workdir: str = DEFAULT_WORKDIR,
        port: int = 22,
        conda_env: str | None = "",
        create_unique_workdir: bool | None = False,
        cert_file: str | None = "",
        remote_cache: str = DEFAULT_CACHE,
        env: dict[str, str] | None = None,
        known_hosts: str = "",
        verify_host_key: bool = True,
        do_cleanup: bool = True,
        retry_connect: bool = True,
        max_connection_attempts: int = 5,
        retry_wait_time: float = 5.0,
        max_tasks: int = 8,
        log_stdout: str = "",
        log_stderr: str = "",
        cache_dir: str = "",
        time_limit: float = -1,
        retries: int = 0,
    ) -> None:
        super().__init__(log_stdout, log_stderr, cache_dir, time_limit, retries)
        owner = type(self).__name__
        self.username = check.text(owner, "username", username)
        self.hostname = check.text(owner, "hostname", hostname)
        self.ssh_key_file = check.path(owner, "ssh_key_file", ssh_key_file)
        self.python_path = check.path(owner, "python_path", python_path) or "python3"
        self.remote_workdir = check.path(owner, "remote_workdir", remote_workdir) or DEFAULT_WORKDIR
        self.port = check.integer(owner, "port", port, 1)
        self.conda_env = check.text(owner, "conda_env", conda_env)
        self.create_unique_workdir = check.flag(
            owner, "create_unique_workdir", bool(create_unique_workdir)
        )
        self.cert_file = check.path(owner, "cert_file", cert_file)
        self.remote_cache = check.path(owner, "remote_cache", remote_cache) or DEFAULT_CACHE
        self.env = check.environment(owner, "env", env)
        self.known_hosts = check.path(owner, "known_hosts", known_hosts)
        self.verify_host_key = check.flag(owner, "verify_host_key", verify_host_key)
        self.do_cleanup = check.flag(owner, "do_cleanup", do_cleanup)
        self.retry_connect = check.flag(owner, "retry_connect", retry_connect)
        self.max_connection_attempts = check.integer(
            owner, "max_connection_attempts", max_connection_attempts, 1
        )
        self.retry_wait_time = check.number(owner, "retry_wait_time", retry_wait_time)
        self.max_tasks = check.integer(owner, "max_tasks", max_tasks, 1)
        self._links: dict[tuple[str, int, str, str], SSHConnection] = {}
        self._connecting: dict[tuple[str, int, str, str], asyncio.Future[SSHConnection]] = {}
        self._runners: dict[SSHConnection, RunnerChannel] = {}
        self._starting: dict[SSHConnection, asyncio.Future[RunnerChannel]] = {}

    @property
    def target(self) -> SSHTarget:
        """Where and how this executor logs in."""
        return SSHTarget(
            hostname=self.hostname,
            port=self.port,
            username=self.username,
            key_file=self.ssh_key_file,
            cert_file=self.cert_file,
            known_hosts=self.known_hosts,
            verify_host_key=self.verify_host_key,
            who="SSHExecutor",
        )

    def reports_start(self) -> bool:
        """The node is RUNNING once its process on the host exists (``task.on_start``)."""
        return True

    async def execute(self, task: Task) -> Outcome:
        start = time.time()
        output = LiveOutput(task)
        try:
            link = await self._link()
            async with link.slots:
                if needs_fresh_interpreter(self.env):
                    return output.into(await self._run(link, task, start, output))
                return output.into(await self._run_on_runner(link, task, start, output))
        except (ExecutorError, HostError) as e:
            return output.into(Outcome.failure(str(e), start))
        finally:
            output.flush()  # what it wrote before it was cancelled, too

    async def teardown(self) -> None:
        """Close every runner and connection (the server calls this when it stops)."""
        pending: list[asyncio.Future[Any]] = [*self._connecting.values(), *self._starting.values()]
        self._connecting, self._starting = {}, {}
        for future in pending:
            future.cancel()
        runners, self._runners = list(self._runners.values()), {}
        for runner in runners:
            await runner.close()
        links, self._links = list(self._links.values()), {}
        for link in links:
            await link.close()
        await super().teardown()

    # connections

    def _key(self) -> tuple[str, int, str, str]:
        return (self.hostname, self.port, self.username, self.ssh_key_file)

    async def _link(self) -> SSHConnection:
        """The open connection to the host: reused, or opened once for all who wait."""
        key = self._key()
        link = self._links.get(key)
        if link is not None and not link.closed:
            return link
        pending = self._connecting.get(key)
        if pending is None:
            pending = asyncio.ensure_future(self._connect(stale=self._links.pop(key, None)))
            self._connecting[key] = pending
            pending.add_done_callback(lambda f: self._connected(key, f))
        return await asyncio.shield(pending)

    def _connected(
        self, key: tuple[str, int, str, str], future: asyncio.Future[SSHConnection]
    ) -> None:
        if self._connecting.get(key) is future:
            del self._connecting[key]
        if not future.cancelled() and future.exception() is None:
            self._links[key] = future.result()

    async def _connect(self, stale: SSHConnection | None = None) -> SSHConnection:
        """Open the connection and its SFTP session (closing a dropped one first)."""
        if stale is not None:
            await stale.close()
        attempts = self.max_connection_attempts if self.retry_connect else 1
        return await SSHConnection.open(
            self.target, self.max_tasks, attempts=attempts, wait=self.retry_wait_time
        )

    # the long-lived runner

    async def _runner(self, link: SSHConnection) -> RunnerChannel:
        """The runner on ``link``: reused while its channel lasts, else started once for
        all who wait."""
        runner = self._runners.get(link)
        if runner is not None and runner.alive:
            return runner
        pending = self._starting.get(link)
        if pending is None:
            for stale in [k for k, r in self._runners.items() if k.closed or not r.alive]:
                del self._runners[stale]
            pending = asyncio.ensure_future(self._start_runner(link))
            self._starting[link] = pending
            pending.add_done_callback(lambda f: self._runner_started(link, f))
        return await asyncio.shield(pending)

    def _runner_started(self, link: SSHConnection, future: asyncio.Future[RunnerChannel]) -> None:
        if self._starting.get(link) is future:
            del self._starting[link]
        if not future.cancelled() and future.exception() is None:
            self._runners[link] = future.result()

    async def _start_runner(self, link: SSHConnection) -> RunnerChannel:
        staging = link.path(self.remote_cache)
        await link.makedirs(staging)
        python = f"{shell_path(self.python_path)} -m covalent.executor.host_runner"
        command = self._shell(staging, python, last=f"echo {READY_MARKER.decode()}")
        try:
            return await RunnerChannel.start(link.conn, command, str(self.target))
        except RunnerStartError as e:
            if e.exit_status is None and e.exit_signal is None and not e.stderr:
                raise
            raise HostError(self._start_failure(e.exit_status, e.exit_signal, e.stderr)) from e

    async def _run_on_runner(
        self, link: SSHConnection, task: Task, start: float, output: LiveOutput
    ) -> Outcome:
        ssh = asyncssh_module("SSHExecutor")
        runner = await self._runner(link)
        options = {"workdir": self._workdir(link, task), "env": self.env}
        request_file = ""
        try:
            request = await asyncio.to_thread(task.packed, options)
            if len(request) > INLINE_REQUEST:
                request_file = self._staging_name(link, task) + ".request"
                await link.write(request_file, request)
                run = Run(0, request_file=request_file)
            else:
                run = Run(0, request=request)
            del request
            watch = _Watch(task, output)
            job = RunnerJob(watch.started, output.add)
            ended = await self._on_runner(runner, run, job, watch.stack_first)
            return self._ended(ended, job, start)
        except RunnerLost as e:
            return Outcome.failure(self._lost(link, task, str(e)), start)
        except (OSError, ssh.Error) as e:
            raise HostError(
                f"SSH to {self.target} failed while running {task.name}: {describe(e)}."
            ) from e
        finally:
            if request_file and self.do_cleanup:
                await link.remove(request_file)

    @staticmethod
    async def _on_runner(
        runner: RunnerChannel, run: Run, job: RunnerJob, stack_first: bool
    ) -> Ended:
        """Run on the runner; if cancelled, stop the electron's process (its stacks first
        if it has a timeout) and wait a while for its end, so that its last output is in."""
        running = asyncio.ensure_future(runner.run(run, job))
        try:
            return await asyncio.shield(running)
        except asyncio.CancelledError:
            if not job.id:  # not sent yet: it never will be
                running.cancel()
                raise
            if stack_first:
                await runner.signal(job, "USR1")
                await asyncio.sleep(STACK_GRACE)
            await runner.signal(job, "KILL")
            with contextlib.suppress(Exception):
                await asyncio.wait_for(running, KILL_TIMEOUT)
            raise

    def _ended(self, ended: Ended, job: RunnerJob, start: float) -> Outcome:
        """The electron's Outcome from its reply, or why its process gave none."""
        if ended.reply is None:
            return Outcome.failure(self._no_reply(ended, job.stderr), start)
        try:
            return outcome_from_reply(load_reply(ended.reply))
        except (MessageError, KeyError, ValueError, TypeError) as e:
            return Outcome.failure(f"The reply from {self.target} is not readable: {e}.", start)

    def _no_reply(self, ended: Ended, stderr: str) -> str:
        said = f"Its stderr:\n{stderr.strip() or '(nothing)'}"
        if ended.exit_signal is None and ended.exit_status is None:
            return f"The runner on {self.target} could not start the electron's process. {said}"
        if ended.exit_signal is not None:
            how = f"was killed by signal {ended.exit_signal}"
        else:
            how = f"exited with status {ended.exit_status}"
        return (
            f"The electron's process on {self.target} {how} before writing its reply: the "
            "electron ended it itself (os._exit, a crash), or something killed it (out of "
            f"memory?). {said}"
        )

    def _lost(self, link: SSHConnection, task: Task, reason: str) -> str:
        if link.closed:
            return (
                f"The SSH connection to {self.target} was lost while the electron ran; "
                "the runner there stops the electrons it ran once it sees that."
            )
        return (
            f"The covalent runner on {self.target} ended while {task.name} ran on it "
            f"({reason}); the electron failed, and the next one starts a new runner."
        )

    # one electron

    async def _run(
        self, link: SSHConnection, task: Task, start: float, output: LiveOutput
    ) -> Outcome:
        ssh = asyncssh_module("SSHExecutor")
        staging = link.path(self.remote_cache)
        name = self._staging_name(link, task)
        request_path, reply_path = f"{name}.request", f"{name}.reply"
        options = {"workdir": self._workdir(link, task), "env": self.env}
        try:
            request = await asyncio.to_thread(task.packed, options)
            await link.write(request_path, request)
            del request
            command = self._command(staging, request_path, reply_path)
            remote = await _Remote.run(link.conn, command, _Watch(task, output))
            return await self._outcome(link, remote, reply_path, start)
        except (OSError, ssh.Error) as e:
            raise HostError(
                f"SSH to {self.target} failed while running {task.name}: {describe(e)}."
            ) from e
        finally:
            if self.do_cleanup:
                await link.remove(request_path, reply_path, f"{reply_path}.part")

    def _staging_name(self, link: SSHConnection, task: Task) -> str:
        """A new path (without suffix) in the staging folder for one electron's files."""
        name = f"{_safe(task.dispatch_id)}-{task.node_id}-{uuid.uuid4().hex[:8]}"
        return posixpath.join(link.path(self.remote_cache), name)

    def _workdir(self, link: SSHConnection, task: Task) -> str:
        workdir = link.path(self.remote_workdir)
        if self.create_unique_workdir:
            workdir = posixpath.join(workdir, _safe(task.dispatch_id), f"node_{task.node_id}")
        return workdir

    def _command(self, staging: str, request_path: str, reply_path: str) -> str:
        """The per-electron command: report the shell's pid, export ``env``, run the runner."""
        exports = [f"export {k}={shlex.quote(v)}" for k, v in self.env.items()]
        runner = runner_command(self.python_path, request_path, reply_path)
        return self._shell(staging, runner, first=[f"echo {PID_MARKER}$$", *exports])

    def _shell(
        self, staging: str, command: str, first: list[str] | None = None, last: str = ""
    ) -> str:
        """A remote command: ``cd`` to the staging folder (so that ``python -m`` does not
        import a stray ``covalent`` folder from the login directory), the ``first`` steps,
        conda's activation (its stdout to stderr), the ``last`` step, ``exec command``."""
        steps = [f"cd {shlex.quote(staging)}", *(first or [])]
        if self.conda_env:
            steps.append(f"{{ {_conda_activation(self.conda_env)}; }} >&2")
        steps.extend([last] if last else [])
        return sh(" && ".join([*steps, f"exec {command}"]))

    async def _outcome(
        self, link: SSHConnection, remote: _Remote, reply_path: str, start: float
    ) -> Outcome:
        data = await link.read(reply_path) if remote.process.exit_status == 0 else None
        if data is None and link.closed:
            return Outcome.failure(
                f"The SSH connection to {self.target} was lost while the electron ran; "
                "it may still be running there.",
                start,
            )
        if data is None:
            process = remote.process
            signal = process.exit_signal[0] if process.exit_signal else None
            failure = self._start_failure(process.exit_status, signal, remote.stderr)
            return Outcome.failure(failure, start)
        try:
            return outcome_from_reply(load_reply(data))
        except (MessageError, KeyError, ValueError, TypeError) as e:
            return Outcome.failure(f"The reply from {self.target} is not readable: {e}.", start)

    def _start_failure(self, status: int | None, signal: int | str | None, stderr: str) -> str:
        """Why the remote Python ended before it could run the electron, and what to do."""
        how = f"was killed by signal {signal}" if signal else f"exited with status {status}"
        if status == CONDA_FAILED and self.conda_env:
            hint = f"the conda environment {self.conda_env!r} could not be activated"
        else:
            hint = (
                f"check python_path ({self.python_path!r}) and that covalent is installed for "
                "that Python; or the electron ended the process itself (os._exit, a crash)"
            )
        return (
            f"The remote Python on {self.target} {how} before it could run the electron: "
            f"{hint}. Its stderr:\n{stderr.strip() or '(nothing)'}"
        )


@dataclass
class _Watch:
    """What a remote command reports to: the task (its start, whether it has a timeout)
    and where its output goes."""

    task: Task
    output: LiveOutput

    def started(self) -> None:
        if self.task.on_start is not None:
            self.task.on_start(time.time())

    @property
    def stack_first(self) -> bool:
        """Whether a stop should ask for the Python stacks first (a task with a timeout)."""
        return bool(self.task.metadata.get("timeout"))


class _Remote:
    """A running remote command: its pid once the shell reports it, its output as it
    comes (to ``watch.output``), and the tail of its stderr."""

    def __init__(self, process: asyncssh.SSHClientProcess[str], watch: _Watch) -> None:
        self.process = process
        self.watch = watch
        self.pid: int | None = None
        self.started = asyncio.Event()
        self.stderr = ""
        self._readers = [
            asyncio.create_task(self._read_stdout()),
            asyncio.create_task(self._read_stderr()),
        ]

    @classmethod
    async def run(cls, conn: asyncssh.SSHClientConnection, command: str, watch: _Watch) -> _Remote:
        """Run ``command`` to its end; if cancelled, kill it (even while it starts)."""
        starting = asyncio.ensure_future(cls._start(conn, command, watch))
        try:
            remote = await asyncio.shield(starting)
            await remote.finished()
            return remote
        except asyncio.CancelledError:
            with contextlib.suppress(Exception):
                await (await starting).kill(conn)
            raise

    @classmethod
    async def _start(
        cls, conn: asyncssh.SSHClientConnection, command: str, watch: _Watch
    ) -> _Remote:
        process = await conn.create_process(command, encoding="utf-8", errors="replace")
        process.stdin.write_eof()
        return cls(process, watch)

    async def finished(self) -> None:
        """Wait until the command has exited and its output is read."""
        await asyncio.wait(self._readers)
        await self.process.wait_closed()

    async def kill(self, conn: asyncssh.SSHClientConnection) -> None:
        """Kill the remote process group, then close the channel."""
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self.started.wait(), KILL_TIMEOUT)
        if self.pid is not None and not self._exited() and self.watch.stack_first:
            await _run_quietly(conn, sh(f"kill -s USR1 {self.pid} 2>/dev/null"))
            await asyncio.sleep(STACK_GRACE)
        if self.pid is not None and not self._exited():  # once exited, its pid may be reused
            await self._kill_group(conn, self.pid)
        self.process.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.finished(), KILL_TIMEOUT)
        for reader in self._readers:
            reader.cancel()

    def _exited(self) -> bool:
        return self.process.exit_status is not None or self.process.exit_signal is not None

    async def _kill_group(self, conn: asyncssh.SSHClientConnection, pid: int) -> None:
        """Kill Python's process group (it leads one), or Python alone if it does not."""
        command = sh(f"kill -s KILL -- -{pid} 2>/dev/null || kill -s KILL {pid}")
        if not await _run_quietly(conn, command):
            with contextlib.suppress(Exception):  # no session to spare: signal Python itself
                self.process.send_signal("KILL")

    async def _read_stdout(self) -> None:
        with contextlib.suppress(OSError, ValueError, asyncssh_module("SSHExecutor").Error):
            try:
                while line := await self.process.stdout.readline():
                    if line.startswith(PID_MARKER):
                        self.pid = int(line[len(PID_MARKER) :])
                        self.watch.started()
                        break
            finally:
                self.started.set()
            while chunk := await self.process.stdout.read(65536):
                self.watch.output.add("stdout", chunk)

    async def _read_stderr(self) -> None:
        with contextlib.suppress(OSError, asyncssh_module("SSHExecutor").Error):
            while chunk := await self.process.stderr.read(65536):
                self.stderr = (self.stderr + chunk)[-STDERR_TAIL:]
                self.watch.output.add("stderr", chunk)


async def _run_quietly(conn: asyncssh.SSHClientConnection, command: str, tries: int = 3) -> bool:
    """Run a short command; retry while the host has no session to spare (MaxSessions)."""
    for attempt in range(tries):
        try:
            await asyncio.wait_for(conn.run(command, check=False), KILL_TIMEOUT)
            return True
        except asyncssh_module("SSHExecutor").ChannelOpenError:
            await asyncio.sleep(0.5 * (attempt + 1))
        except (OSError, asyncio.TimeoutError, asyncssh_module("SSHExecutor").Error):
            return False
    return False


def needs_fresh_interpreter(env: dict[str, str]) -> bool:
    """Whether ``env`` names a variable that Python, the dynamic loader or the C library
    read only as a process starts (``PYTHONPATH``, ``PYTHONHASHSEED``,
    ``LD_LIBRARY_PATH``, ``MALLOC_ARENA_MAX``, ``GLIBC_TUNABLES``, ...): a process forked
    by the runner would not see it, so such electrons start their own."""
    return any(name.startswith(STARTUP_PREFIXES) for name in env)


def _conda_activation(env_name: str) -> str:
    """Shell steps that find conda (PATH, usual install folders) and activate ``env_name``."""
    name = shlex.quote(env_name)
    fail = f"exit {CONDA_FAILED}"
    return (
        f'{{ conda_exe=""; for c in {CONDA_LOCATIONS}; do '
        'if [ -n "$c" ] && command -v "$c" >/dev/null 2>&1; then conda_exe=$c; break; fi; '
        'done; [ -n "$conda_exe" ] || { echo "covalent: conda was not found on PATH nor in '
        f'the usual install folders" >&2; {fail}; }}; '
        f'eval "$("$conda_exe" shell.posix hook)" && conda activate {name} || '
        f'{{ echo "covalent: could not activate the conda environment "{name} >&2; {fail}; }}; }}'
    )


def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", text) or "_"
