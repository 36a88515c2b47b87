"""The executor's end of a long-lived runner on a host, over one SSH channel.

:class:`RunnerChannel` starts ``python -m covalent.executor.host_runner`` (see that
module for the far side) with a command the executor gives, and then carries every task
sent to it: a ``Run`` request written on the channel's stdin, and the runner's events
read from its stdout (MessagePack objects split by msgpack's streaming Unpacker, checked
as the typed records of :mod:`covalent.executor.messages`; nothing is unpickled here).
Each task is a :class:`RunnerJob`: its start and output go to its callbacks as they
come, and its ``Ended`` (the encoded reply, or how its process died) resolves its
future. If the channel ends, every task still on it fails with :class:`RunnerLost`,
and the executor starts a new runner for the next one.

The remote command prints :data:`READY_MARKER` on a line of its own just before it
starts Python, so that whatever a login script prints first is skipped, not misread.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import msgpack

from covalent.executor import messages
from covalent.executor.hosts import HostError, asyncssh_module, describe

if TYPE_CHECKING:
    import asyncssh

READY_MARKER = b"covalent-runner-starts"
START_TIMEOUT = 300.0
"""Seconds a runner may take from its command to its Hello (imports on a busy host)."""
READ_SIZE = 1024 * 1024
STDERR_TAIL = 8000
MAX_MESSAGE = 2**31 - 1


class RunnerStartError(HostError):
    """The runner's command ended (or never said hello) before the runner was ready."""

    def __init__(
        self, message: str, exit_status: int | None, exit_signal: str | None, stderr: str
    ) -> None:
        super().__init__(message)
        self.exit_status = exit_status
        self.exit_signal = exit_signal
        self.stderr = stderr


class RunnerLost(HostError):
    """The runner's channel ended while a task was on it."""


@dataclass
class RunnerJob:
    """One task on a runner: where its start and output go, and its end."""

    on_began: Callable[[], None]
    on_output: Callable[[str, str], None]
    ended: asyncio.Future[messages.Ended] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )
    id: int = 0
    stderr: str = ""
    """The tail of what the task wrote to stderr, for a failure's message."""

    def wrote(self, stream: str, text: str) -> None:
        if stream == "stderr":
            self.stderr = (self.stderr + text)[-STDERR_TAIL:]
        self.on_output(stream, text)


class RunnerChannel:
    """A started runner: tasks in, events out, until the channel ends."""

    def __init__(
        self, process: asyncssh.SSHClientProcess[bytes], hello: messages.Hello, stderr: _Tail
    ) -> None:
        self.process = process
        self.hello = hello
        self.stderr = stderr
        self.jobs: dict[int, RunnerJob] = {}
        self.lost: str | None = None
        self._ids = itertools.count(1)
        self._unpacker = msgpack.Unpacker(raw=False, max_buffer_size=MAX_MESSAGE)
        self._reader = asyncio.create_task(self._read_events())

    @classmethod
    async def start(
        cls, conn: asyncssh.SSHClientConnection, command: str, where: str
    ) -> RunnerChannel:
        """Run ``command`` (which ends by starting the host runner) and wait for its Hello;
        RunnerStartError if it ends first, or speaks another protocol."""
        process = await conn.create_process(command, encoding=None)
        stderr = _Tail(process)
        try:
            hello = await _greeted(process, stderr, where)
        except BaseException:
            process.close()
            stderr.cancel()
            raise
        return cls(process, hello, stderr)

    @property
    def alive(self) -> bool:
        return self.lost is None

    async def run(self, request: messages.Run, job: RunnerJob) -> messages.Ended:
        """Send one task; its Ended once its process is gone. RunnerLost if the channel
        ends first. The request is on the channel as soon as this coroutine starts, so a
        Signal for ``job`` sent after that comes after it."""
        if self.lost is not None:
            raise RunnerLost(self.lost)
        job.id = request.id = next(self._ids)
        self.jobs[job.id] = job
        try:
            await self._send(request)
            return await job.ended
        finally:
            self.jobs.pop(job.id, None)

    async def signal(self, job: RunnerJob, name: str) -> None:
        """Send SIGUSR1 (``"USR1"``) to the task's process or SIGKILL (``"KILL"``) to its
        group; nothing if the channel has ended."""
        with contextlib.suppress(Exception):
            await self._send(messages.Signal(job.id, name))

    async def _send(self, request: messages.RunnerRequest) -> None:
        """Write ``request`` at once (writes never interleave), then wait for the
        channel's buffer to drain."""
        ssh = asyncssh_module("The SSH executor")
        try:
            self.process.stdin.write(messages.encode(request))
            await self.process.stdin.drain()
        except (OSError, ssh.Error) as e:
            reason = self.lost or f"the channel to the runner failed: {describe(e)}"
            raise RunnerLost(reason) from e

    async def close(self) -> None:
        """End the stream: the runner kills what still runs there and exits."""
        with contextlib.suppress(Exception):
            self.process.stdin.write_eof()
        self.process.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(asyncio.shield(self._reader), 10.0)
        self._reader.cancel()
        self.stderr.cancel()

    # events

    async def _read_events(self) -> None:
        ssh = asyncssh_module("The SSH executor")
        reason = "the executor closed the runner"
        try:
            while data := await self.process.stdout.read(READ_SIZE):
                self._unpacker.feed(data)
                for message in self._unpacker:
                    self._handle(messages.runner_event(message))
            reason = await self._ending()
        except (OSError, ssh.Error, messages.MessageError, ValueError) as e:
            reason = f"the runner's stream broke: {describe(e)}"
        finally:
            self._lose(reason)

    def _handle(self, event: messages.RunnerEvent) -> None:
        job = self.jobs.get(getattr(event, "id", -1))
        if job is None or job.ended.done():
            return
        if isinstance(event, messages.Began):
            job.on_began()
        elif isinstance(event, messages.Wrote):
            job.wrote(event.stream, event.text)
        elif isinstance(event, messages.Ended):
            job.ended.set_result(event)

    async def _ending(self) -> str:
        """How the runner ended, once its stream has."""
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.process.wait_closed(), 10.0)
        process = self.process
        if process.exit_signal:
            how = f"was killed by signal {process.exit_signal[0]}"
        elif process.exit_status is not None:
            how = f"exited with status {process.exit_status}"
        else:
            how = "stopped"
        await self.stderr.ended()
        tail = self.stderr.text.strip()
        said = f"; its stderr:\n{tail}" if tail else ""
        return f"the runner (pid {self.hello.pid}) {how}{said}"

    def _lose(self, reason: str) -> None:
        self.lost = reason
        for job in self.jobs.values():
            if not job.ended.done():
                job.ended.set_exception(RunnerLost(reason))


class _Tail:
    """The last :data:`STDERR_TAIL` characters of a process's stderr, read as it comes."""

    def __init__(self, process: asyncssh.SSHClientProcess[bytes]) -> None:
        self.process = process
        self.text = ""
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        with contextlib.suppress(Exception):
            while chunk := await self.process.stderr.read(READ_SIZE):
                self.text = (self.text + chunk.decode(errors="replace"))[-STDERR_TAIL:]

    async def ended(self, timeout: float = 10.0) -> None:
        """Wait (a while) until the stderr has been read to its end."""
        with contextlib.suppress(Exception):
            await asyncio.wait_for(asyncio.shield(self._reader), timeout)

    def cancel(self) -> None:
        self._reader.cancel()


async def _greeted(
    process: asyncssh.SSHClientProcess[bytes], stderr: _Tail, where: str
) -> messages.Hello:
    """The runner's Hello; RunnerStartError if it does not come, or names another
    protocol."""
    try:
        hello = await asyncio.wait_for(_read_hello(process), START_TIMEOUT)
    except asyncio.TimeoutError:
        raise RunnerStartError(
            f"The covalent runner on {where} did not answer within {START_TIMEOUT:g} s of "
            f"its start. Its stderr:\n{stderr.text or '(nothing)'}",
            None,
            None,
            "",
        ) from None
    if hello is None:
        await stderr.ended()
        with contextlib.suppress(Exception):  # for its exit status
            await asyncio.wait_for(process.wait_closed(), 10.0)
        signal = process.exit_signal[0] if process.exit_signal else None
        message = f"The covalent runner on {where} did not start."
        raise RunnerStartError(message, process.exit_status, signal, stderr.text)
    if hello.protocol != messages.RUNNER_PROTOCOL:
        raise RunnerStartError(
            f"The covalent runner on {where} speaks protocol {hello.protocol}, this server "
            f"{messages.RUNNER_PROTOCOL}: install the server's covalent there.",
            None,
            None,
            "",
        )
    return hello


async def _read_hello(process: asyncssh.SSHClientProcess[bytes]) -> messages.Hello | None:
    """Skip to the ready marker, then read the first message; None if the stream ends."""
    ssh = asyncssh_module("The SSH executor")
    try:
        while True:
            line = await process.stdout.readline()
            if not line:
                return None
            if line.rstrip(b"\r\n") == READY_MARKER:
                break
        unpacker = msgpack.Unpacker(raw=False, max_buffer_size=MAX_MESSAGE)
        while True:
            for message in unpacker:
                event = messages.runner_event(message)
                if not isinstance(event, messages.Hello):
                    raise messages.MessageError(f"the runner began with {event!r}, not hello")
                return event
            data = await process.stdout.read(1)  # byte by byte: nothing after it is taken
            if not data:
                return None
            unpacker.feed(data)
    except (OSError, ssh.Error) as e:
        raise HostError(f"the runner's channel failed as it started: {describe(e)}") from e
