"""The worker process of the local pool: receives task batches, runs them, reports.

Started as ``python -m covalent.executor._worker FD MEMORY_LIMIT STACKS RUNNING`` (the
last two: files of the pool's, see :func:`main` and :class:`Running`) with one end of a
socket pair, in a session of its own: it leads a process group, so that killing the
group ends every process an electron started (a fork, ``os.system("... &")``, a
multiprocessing child), and the socket is closed in every child (not inherited by an
``exec``, closed after a ``fork``), so a child never keeps the server waiting. A
watchdog thread kills the whole group if the server dies.

Messages are MessagePack in ``multiprocessing.connection`` frames. A request is a dict
of ``tasks`` (runner payloads) and the blobs they need (``functions`` are kept for the
life of the worker, ``values`` only for the batch, large ones named by their ``files``).
A request that comes while a batch runs (a chain's next step) waits its turn in a
backlog; a task with ``after`` takes the output of the task this worker ran just before
from memory, or is answered NOT_RUN if that is not the task it follows.
The worker answers with lists of events (covalent.executor.messages): ``Started`` when
a task starts, ``Output`` for what it writes meanwhile, ``Reply`` when it ends; the
server decodes them without unpickling anything.

Events go out as soon as the socket is free: a sending thread takes every event made
meanwhile, so a batch of quick tasks costs a few messages, not one each, and an event
never waits for the next task to end (the sender runs whenever the task thread waits or
its GIL turn ends). The batch's last reply is sent by the task thread itself, without a
hand-off, so a chain of tasks pays no thread switch.
"""

from __future__ import annotations

import array
import codecs
import contextlib
import faulthandler
import fcntl
import functools
import gc
import io
import mmap
import os
import resource
import select
import signal
import sys
import termios
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from multiprocessing.connection import Connection
from typing import Any

from covalent._wire import blobs
from covalent.executor import messages
from covalent.executor.payload import OUTPUT_BEFORE
from covalent.executor.runner import append_log, run_task

WATCHDOG_INTERVAL = 0.2
"""Seconds between the watchdog's looks at whether the server is still there."""

OUTPUT_INTERVAL = 0.25
"""Seconds between two sends of a running task's output (what it wrote meanwhile)."""

GATHER = 0.002
"""Seconds between the sending thread's looks at whether the batch's tasks are quick."""

GATHER_MAX = 0.02
"""Seconds a reply in the middle of a batch of quick tasks waits at most for others."""


class FileValues(dict[str, bytes]):
    """Value blobs sent in the message, plus large ones read from the blob store's files."""

    def __init__(self, values: dict[str, bytes], files: dict[str, str]) -> None:
        super().__init__(values)
        self.files = files

    def __missing__(self, name: str) -> bytes:
        """A large blob's file, mapped rather than read: unpickling copies it once from
        the page cache instead of twice (a read buffer, then the value)."""
        with open(self.files[name], "rb") as f:
            try:
                return mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)  # type: ignore[return-value]
            except (ValueError, OSError):  # empty, or a file system that cannot map
                return f.read()


class Events:
    """Events on their way to the server, sent in order, several per message; with a
    :class:`Capture`, also the running task's output, every :data:`OUTPUT_INTERVAL`.

    The main thread sends a batch's last reply itself. A reply in the middle of a batch
    wakes the sending thread, which lets the next replies join it while the tasks after it
    are quick (each one ends within :data:`GATHER`), for at most :data:`GATHER_MAX`: a
    batch of quick tasks goes in a message or two, and a reply that a slow task follows
    leaves within about :data:`GATHER`. (One message per reply made the server decode and
    turn once per task, and the worker's two threads trade the GIL at each of the task's
    system calls.)
    """

    def __init__(self, conn: Connection, capture: Capture | None = None) -> None:
        self.conn = conn
        self.capture = capture
        self._pending: list[messages.Event] = []
        self._woken = False
        self.started = 0  # tasks begun so far: the sending thread sees them go by
        self._cond = threading.Condition()
        self._send_lock = threading.Lock()
        threading.Thread(target=self._sender, name="events", daemon=True).start()

    def add(self, event: messages.Event, last: bool = False, wake: bool = True) -> None:
        """Queue ``event``; ``last`` sends it (and all before it) now, from this thread;
        ``wake=False`` lets it wait for the next send or the sender's next tick (a start:
        a quick task's start goes with its reply, in one message)."""
        with self._cond:
            pending = self._pending
            if (
                type(event) is messages.Reply
                and pending
                and type(pending[-1]) is messages.Started
                and pending[-1].key == event.key
            ):  # started and ended, neither sent yet: the reply carries its start
                pending[-1] = event
            else:
                pending.append(event)
                # Its start went out alone (a slow or timed task): the reply leaves now,
                # before the next task starts. So a task the pool saw start and not end
                # is the one running should the process die (it must not run again).
                last = last or type(event) is messages.Reply
            if wake and not last and not self._woken:
                self._woken = True
                self._cond.notify()
        if last:
            self._flush()

    def _sender(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._woken, OUTPUT_INTERVAL)
                woken = self._woken
            if woken:  # a reply: let the batch's next ones join it while they are quick
                self._gather()
            with self._cond:
                self._woken = False
            self._flush(hold=woken)

    def _gather(self) -> None:
        deadline = time.monotonic() + GATHER_MAX
        seen = self.started
        while True:
            time.sleep(GATHER)
            if not self._pending or self.started == seen or time.monotonic() >= deadline:
                return  # sent by the main thread, or a task that takes a while, or enough
            seen = self.started

    def _flush(self, hold: bool = False) -> None:
        """Send what is pending. ``hold``: the start of the task running now stays
        pending (for its reply, or the next tick), unless it wrote output meanwhile: a
        quick task's start then goes with its reply, which need not leave at once (see
        :meth:`add`)."""
        with self._send_lock:
            held = None
            with self._cond:
                events, self._pending = self._pending, []
                if hold and events and type(events[-1]) is messages.Started:
                    held = events.pop()
            output = self.capture.pending() if self.capture is not None else []
            if held is not None:
                if output:  # its output goes after it
                    events.append(held)
                else:
                    with self._cond:
                        self._pending.insert(0, held)
            if output:  # output first: a reply is the task's last word
                replies: list[messages.Event] = [e for e in events if isinstance(e, messages.Reply)]
                others = [e for e in events if not isinstance(e, messages.Reply)]
                events = others + output + replies
            if events:  # if the server is gone, the main loop notices and exits
                with contextlib.suppress(OSError):
                    self.conn.send_bytes(messages.encode(events))


class Running:
    """A small file shared with the pool, naming the task this worker started last: should
    the process die (``os._exit``, a signal, a crash in C), the pool reads there which
    task was running (the replies of the tasks before it may not have left yet) and fails
    that one alone. A write to a shared mapping per task: no system call."""

    def __init__(self, fd: int) -> None:
        self._map = mmap.mmap(fd, messages.RUNNING_SIZE)

    def started(self, key: tuple[str, int]) -> None:
        record = messages.running_record(key)
        self._map[0:4] = b"\0\0\0\0"
        self._map[4 : 4 + len(record)] = record
        self._map[0:4] = len(record).to_bytes(4, "little")  # (read by _pool._running)


class Capture:
    """The process's stdout and stderr (file descriptors 1 and 2) as pipes this worker
    reads, so that whatever an electron writes (print, a C extension, a subprocess) is
    the task's output, sent while it runs.

    A reader thread waits on both pipes and reads, under ``lock``, into the current
    task's buffers; :meth:`pending` turns what has come since into Output events
    (the sending thread asks every :data:`OUTPUT_INTERVAL` seconds); :meth:`finish`
    drains what is left in the pipes when the task ends and returns it, so that every
    byte a task wrote before it ended is its own.

    A task that leaves processes running (``os.system("... &")``) leaves them holding
    its pipes: :meth:`renew` gives the next task new ones, and what the leftovers write
    into the old ones is read and dropped (each old pipe is closed once its last writer
    has exited), so it never becomes another task's output.
    """

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.key: tuple[str, int] | None = None
        self.options: dict[str, Any] = {}
        self.buffers: dict[str, list[str]] = {"stdout": [], "stderr": []}
        self.decoders = {name: _decoder() for name in self.buffers}
        self.pipes: dict[int, str] = {}
        self.orphans: set[int] = set()  # read ends of earlier tasks' pipes, drained to nothing
        self._wake_read, self._wake_write = os.pipe()  # the reader's select takes new pipes
        os.set_blocking(self._wake_read, False)
        self._open_pipes()
        for stream in (sys.stdout, sys.stderr):
            if isinstance(stream, io.TextIOWrapper):  # a print reaches the pipe at its newline
                stream.reconfigure(line_buffering=True)
        threading.Thread(target=self._reader, name="capture", daemon=True).start()

    def _open_pipes(self) -> None:
        for fd, name in ((1, "stdout"), (2, "stderr")):
            read_end, write_end = os.pipe()
            os.dup2(write_end, fd)
            os.close(write_end)
            os.set_blocking(read_end, False)
            self.pipes[read_end] = name

    def renew(self) -> None:
        """New pipes behind descriptors 1 and 2 (after :meth:`finish`); the old ones
        become orphans, drained without being anyone's output."""
        with self.lock:
            self.orphans.update(self.pipes)
            self.pipes = {}
            self._open_pipes()
        os.write(self._wake_write, b"x")

    def begin(self, key: tuple[str, int], options: dict[str, Any]) -> None:
        with self.lock:
            self.key, self.options = key, options
            for parts in self.buffers.values():  # written between tasks: nobody's
                parts.clear()

    def pending(self) -> list[messages.Event]:
        """What the current task wrote since last asked, as Output events."""
        with self.lock:
            if self.key is None:
                return []
            return [
                messages.Output(self.key, name, text)
                for name in self.buffers
                if (text := self._take(name))
            ]

    def finish(self) -> dict[str, str]:
        """The task ended: flush Python's streams, read the pipes dry, and return the
        rest of its stdout and stderr (what no Output event carried)."""
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()
        with self.lock:
            for fd in self.pipes:
                if _unread(fd):  # an ioctl, not a select: no GIL hand-off when idle
                    self._read(fd)
            rest = {name: self._take(name, final=True) for name in self.buffers}
            self.key = None
        return rest

    def _take(self, name: str, final: bool = False) -> str:
        parts = self.buffers[name]
        decoder = self.decoders[name]
        if final and decoder.getstate()[0]:  # a character cut short at the end
            parts.append(decoder.decode(b"", final=True))
            self.decoders[name] = _decoder()
        if not parts:
            return ""
        text = "".join(parts)
        parts.clear()
        append_log(self.options, name, text)
        return text

    def _reader(self) -> None:
        while True:
            with self.lock:
                fds = [self._wake_read, *self.pipes, *self.orphans]
            readable, _, _ = select.select(fds, [], [])
            with self.lock:
                for fd in readable:
                    if fd in self.pipes:
                        self._read(fd)
                    elif fd in self.orphans:
                        self._drop(fd)
                    elif fd == self._wake_read:
                        with contextlib.suppress(BlockingIOError):
                            os.read(fd, 4096)

    def _drop(self, fd: int) -> None:
        """Read an orphan pipe to nothing; close it at its end (its last writer is gone)."""
        if _read_now(fd, lambda _data: None):
            self.orphans.discard(fd)
            os.close(fd)

    def _read(self, fd: int) -> None:
        """Read what is in one pipe now (under ``lock``)."""
        name = self.pipes[fd]
        parts, decoder = self.buffers[name], self.decoders[name]
        _read_now(fd, lambda data: parts.append(decoder.decode(data)))


def _read_now(fd: int, take: Callable[[bytes], None]) -> bool:
    """Hand ``take`` what is in non-blocking pipe ``fd`` now; True if it has ended (all
    its writers closed it)."""
    while True:
        try:
            data = os.read(fd, 65536)
        except BlockingIOError:
            return False
        if not data:
            return True
        take(data)


_UTF8 = codecs.getincrementaldecoder("utf-8")
_COUNT = array.array("i", [0])


def _unread(fd: int) -> int:
    """How many bytes wait in a pipe (FIONREAD)."""
    fcntl.ioctl(fd, termios.FIONREAD, _COUNT)
    return _COUNT[0]


def _decoder() -> codecs.IncrementalDecoder:
    return _UTF8(errors="replace")


class Baseline:
    """What an electron may change in its worker process that the next task, perhaps of
    another dispatch, must not see: the working directory, the environment, the standard
    streams (``sys.stdout`` replaced or closed, descriptors 1 and 2 closed or redirected),
    the resource limits (a lowered hard limit only where the worker may raise it again).
    Taken when the worker starts serving; :meth:`restore` puts it back after each task.

    The check costs a few system calls per task; anything else a task changes in its
    process (``sys.modules``, signal handlers) stays for the worker's life. The working
    directory and the limits (seven system calls, a fifth of a trivial task's time in
    the worker) are looked at only when the caller says the task may have changed them
    (``thorough``, see :meth:`Worker._tidy`).
    """

    def __init__(self) -> None:
        self.cwd = os.getcwd()
        self.environ = dict(os.environ)
        self.encoded = dict(_encoded_environ())
        self.streams = {1: sys.stdout, 2: sys.stderr}
        self.copies = {fd: os.dup(fd) for fd in self.streams}  # not inherited by a child
        self.files = {fd: _identity(fd) for fd in self.streams}
        self.limits = {kind: resource.getrlimit(kind) for kind in LIMITS}

    def restore(self, thorough: bool = True) -> None:
        if _encoded_environ() != self.encoded:
            for name in set(os.environ) - set(self.environ):
                del os.environ[name]
            os.environ.update(self.environ)
        for fd, copy in self.copies.items():
            if _identity(fd) != self.files[fd]:
                os.dup2(copy, fd)
            self._restore_stream(fd)
        if not thorough:
            return
        try:
            moved = os.getcwd() != self.cwd
        except OSError:  # the folder it moved to was deleted
            moved = True
        if moved:
            os.chdir(self.cwd)
        for kind, limits in self.limits.items():
            if resource.getrlimit(kind) != limits:
                with contextlib.suppress(ValueError, OSError):  # a hard limit it lowered
                    resource.setrlimit(kind, limits)

    def retake_streams(self) -> None:
        """Descriptors 1 and 2 as they are now are the ones to restore (new pipes)."""
        for copy in self.copies.values():
            os.close(copy)
        self.copies = {fd: os.dup(fd) for fd in self.streams}
        self.files = {fd: _identity(fd) for fd in self.streams}

    def _restore_stream(self, fd: int) -> None:
        stream = self.streams[fd]
        if stream.closed:
            stream = io.TextIOWrapper(
                io.FileIO(fd, "w", closefd=False),
                encoding=getattr(stream, "encoding", None) or "utf-8",
                errors="backslashreplace",
                line_buffering=True,
            )
            self.streams[fd] = stream
        if fd == 1:
            sys.stdout = stream
        else:
            sys.stderr = stream


LIMITS = (
    resource.RLIMIT_AS,
    resource.RLIMIT_CPU,
    resource.RLIMIT_DATA,
    resource.RLIMIT_FSIZE,
    resource.RLIMIT_NOFILE,
    resource.RLIMIT_STACK,
)
"""The resource limits a task may change that would hurt the tasks after it."""

THOROUGH_AFTER = 0.001
"""Seconds from a task's start to the check after it (its reply sent) after which the
thorough checks run whatever the task did: for such a task they cost under 1% of its
time. The wait for a task is not counted: counted from the check before, it made most of
a chain's steps, each handed over as the step before it ended, look long."""

OUTSIDE_EVENTS = frozenset(
    {
        "os.chdir",
        "os.rmdir",
        "os.rename",
        "shutil.rmtree",
        "resource.setrlimit",
        "resource.prlimit",
        "ctypes.dlsym",
        "ctypes.call_function",
        "os.system",
        "os.exec",
        "os.fork",
        "os.forkpty",
        "os.posix_spawn",
        "os.spawn",
        "subprocess.Popen",
    }
)
"""Audit events (PEP 578; https://docs.python.org/3/library/audit_events.html) after
which a task may have changed what only the thorough checks see: this process's
working directory (moved, or deleted), its resource limits (through ``resource``,
through C it reached with ctypes, or through a process it started: ``prlimit --pid``)
and its child processes."""

STICKY_EVENTS = frozenset({"cpython.PyInterpreterState_New"})
"""Audit events after which every task is checked thoroughly, for the rest of the
worker's life: a subinterpreter's code raises its events to its own hooks, not this
interpreter's, and changes the same process."""


class _Seen:
    """What this process's audit hook has seen."""

    outside = False  # an OUTSIDE_EVENTS event, or a process started, since the last check
    always = False  # a STICKY_EVENTS event, ever


def _audit(event: str, _args: tuple[Any, ...]) -> None:
    if event in OUTSIDE_EVENTS:
        _Seen.outside = True
    elif event in STICKY_EVENTS:
        _Seen.always = _Seen.outside = True


def _noted_fork_exec(fork_exec: Callable[..., int]) -> Callable[..., int]:
    """``_posixsubprocess.fork_exec``, which starts a process without an audit event of
    its own (``multiprocessing``'s spawn and forkserver call it directly), noting that
    it did."""

    def noted(*args: Any, **kwargs: Any) -> int:
        _Seen.outside = True
        return fork_exec(*args, **kwargs)

    return noted


@functools.cache  # once: an audit hook stays for the life of the process
def watch_outside() -> None:
    """Note every :data:`OUTSIDE_EVENTS` event of this process from now on, and every
    process started through ``_posixsubprocess``, in :class:`_Seen`."""
    sys.addaudithook(_audit)
    with contextlib.suppress(ImportError):  # (not on every platform)
        import _posixsubprocess

        _posixsubprocess.fork_exec = _noted_fork_exec(_posixsubprocess.fork_exec)


def _encoded_environ() -> Mapping[Any, Any]:
    """The environment as ``os.environ`` keeps it (encoded): comparing it is 20 times
    quicker than comparing ``os.environ``, which decodes every name and value."""
    return getattr(os.environ, "_data", os.environ)


def _identity(fd: int) -> tuple[int, int] | None:
    """Which open file a descriptor is (device and inode), or None if it is closed."""
    try:
        info = os.fstat(fd)
    except OSError:
        return None
    return info.st_dev, info.st_ino


class Worker:
    def __init__(
        self, conn: Connection, capture: Capture | None = None, running: Running | None = None
    ) -> None:
        self.conn = conn
        self.running = running
        self.functions: dict[str, bytes] = {}
        self.loaded: dict[str, Any] = {}
        self.capture = capture
        self.events = Events(conn, capture)
        self.baseline: Baseline | None = None
        self.backlog: deque[dict[str, Any]] = deque()  # requests read while a batch ran
        self.cancelled: set[tuple[str, int]] = set()  # tasks the pool cancelled, not run yet
        self.last: tuple[tuple[str, int], messages.Reply] | None = None  # a chain's input
        self.children = False  # the last thorough check found child processes left
        self.began = 0.0  # time.monotonic() as the last task began
        self.threads = threading.active_count()  # the worker's own: more are a task's

    def serve(self) -> None:
        self.baseline = Baseline()  # after main's memory limit: the limit is the baseline
        watch_outside()
        while True:
            if self.backlog:
                request = self.backlog.popleft()
            else:
                self.cancelled.clear()  # every cancel read so far was of a task done
                try:
                    request = messages.decode_plain(self.conn.recv_bytes())
                except (EOFError, OSError):
                    return
            if "cancel" in request:  # of a task this worker has already done
                continue
            self.functions.update(request["functions"])
            values = FileValues(request["values"], request.get("files", {}))
            tasks = request["tasks"]
            for position, task in enumerate(tasks):
                if _unread(self.conn.fileno()):  # cancels, and a chain's next task
                    self._read_waiting()
                last = position == len(tasks) - 1
                key = (str(task["key"][0]), int(task["key"][1]))
                before, self.last = self.last, None
                if key in self.cancelled:
                    self.cancelled.discard(key)
                    self.events.add(_skipped(key), last=last)
                    continue
                if task.get("after") is not None and not _take_output(task, before, values):
                    self.events.add(_input_elsewhere(key, task["after"]), last=last)
                    continue
                reply = self.run(task, values)
                if reply.status == "COMPLETED":
                    self.last = (key, reply)
                self.events.add(reply, last=last)
                self._tidy()  # after the reply is on its way: off a chain's critical path

    def _read_waiting(self) -> None:
        """Read what the pool sent while a batch ran: cancels of the tasks it sent, and
        requests (a chain's next task), which wait their turn in :attr:`backlog`."""
        while self.conn.poll():
            message = messages.decode_plain(self.conn.recv_bytes())
            if "cancel" in message:
                self.cancelled.update((str(k[0]), int(k[1])) for k in message["cancel"])
            else:
                self.backlog.append(message)

    def run(self, task: dict[str, Any], values: FileValues) -> messages.Reply:
        key = (str(task["key"][0]), int(task["key"][1]))
        self.began = time.monotonic()
        # A quick task's start goes with its reply; a timed one's now, as its timeout
        # counts from it and the task may keep this process's other threads from running.
        timed = bool(task.get("timed"))
        if self.running is not None:
            self.running.started(key)
        self.events.started += 1
        self.events.add(messages.Started(key, time.time()), last=timed, wake=False)
        function_bytes = self.functions.__getitem__
        if self.capture is None:
            return messages.reply(run_task(task, self.function, values, function_bytes))
        self.capture.begin(key, task.get("options") or {})
        fields = run_task(task, self.function, values, function_bytes, capture=False)
        for stream, rest in self.capture.finish().items():  # what the descriptors got
            fields[stream] = fields.get(stream, "") + rest
        return messages.reply(fields)

    def _tidy(self) -> None:
        """Between two tasks: put back what the last one changed in this process (the
        :class:`Baseline`), and if it left processes running, which hold its pipes,
        give the next task new ones.

        The working directory, the resource limits and the children (eight system calls,
        a third of a trivial task's time here) are looked at only after a task that may
        have changed them: one that raised an audit event of :data:`OUTSIDE_EVENTS` or
        started a process, or took :data:`THOROUGH_AFTER` seconds or more from its start
        whatever it did; and after every task while children or threads a task started
        are left, or once a subinterpreter was made (:data:`STICKY_EVENTS`). A task that
        changes a limit or the working directory, or forks, from C code of its own
        without such an event and in less time is the one case this does not see.
        """
        now = time.monotonic()
        thorough = (
            _Seen.outside
            or _Seen.always
            or self.children
            or now - self.began >= THOROUGH_AFTER
            or threading.active_count() > self.threads  # a task's thread may act later
        )
        _Seen.outside = False
        if self.baseline is not None:
            self.baseline.restore(thorough)
        if self.capture is not None and thorough:
            self.children = left_children()
            if self.children:
                self.capture.renew()
                if self.baseline is not None:
                    self.baseline.retake_streams()

    def function(self, name: str) -> Any:
        if name not in self.loaded:
            self.loaded[name] = blobs.loads(self.functions[name])
        return self.loaded[name]


def _skipped(key: tuple[str, int]) -> messages.Reply:
    now = time.time()
    return messages.Reply(key, "CANCELLED", now, now, error="Cancelled before it started.")


def _take_output(
    task: dict[str, Any],
    before: tuple[tuple[str, int], messages.Reply] | None,
    values: FileValues,
) -> bool:
    """Put the output of the task this worker ran just before (``before``) where a
    chained task's inputs name it (``OUTPUT_BEFORE``); False if that task is not the one
    ``task`` follows, or did not complete."""
    wanted = (str(task["after"][0]), int(task["after"][1]))
    values.pop(OUTPUT_BEFORE, None)
    values.files.pop(OUTPUT_BEFORE, None)
    if before is None or before[0] != wanted:
        return False
    reply = before[1]
    if reply.output is not None:
        values[OUTPUT_BEFORE] = reply.output
    elif reply.output_file is not None:
        values.files[OUTPUT_BEFORE] = reply.output_file.path
    else:
        return False
    return True


def _input_elsewhere(key: tuple[str, int], after: list[Any]) -> messages.Reply:
    """A chained task whose input this worker does not have: it did not run (NOT_RUN),
    and its node waits for the input's stored output as any other."""
    now = time.time()
    error = f"The output of node {after[1]} was not in this worker; the task did not run."
    return messages.Reply(key, "NOT_RUN", now, now, error=error)


def left_children() -> bool:
    """Whether this worker has child processes (a task's leftovers: with the worker a
    subreaper, also the ones they started and left). Those that have exited are reaped
    first. One system call when there are none."""
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return False
        if pid == 0:  # children, none of them exited
            return True


def become_subreaper() -> None:
    """Orphans among this worker's descendants (``sh -c "sleep 60 &"``: the shell exits,
    its ``sleep`` stays) become this worker's children rather than init's, so that
    :func:`left_children` sees them (Linux's ``PR_SET_CHILD_SUBREAPER``)."""
    if sys.platform.startswith("linux"):
        import ctypes

        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)


PR_SET_CHILD_SUBREAPER = 36
"""From ``<linux/prctl.h>``."""


def limit_memory(limit: int) -> None:
    """Cap the process's data segment (heap and anonymous mappings) at ``limit`` bytes,
    so an electron that exhausts memory gets a MemoryError instead of the OOM killer."""
    if limit > 0:
        resource.setrlimit(resource.RLIMIT_DATA, (limit, limit))


def keep_channel_private(fd: int) -> None:
    """No process an electron starts holds the server's socket: it is not inherited
    across ``exec`` and is closed in the child of every ``fork``."""
    os.set_inheritable(fd, False)

    def close_in_child() -> None:
        with contextlib.suppress(OSError):
            os.close(fd)

    os.register_at_fork(after_in_child=close_in_child)


def watch_server(server_pid: int) -> None:
    """Kill this worker's whole process group as soon as the server is gone (the worker
    is reparented), so that no task goes on running for a server that died."""

    def watch() -> None:
        while os.getppid() == server_pid:
            time.sleep(WATCHDOG_INTERVAL)
        os.killpg(os.getpgid(0), signal.SIGKILL)

    threading.Thread(target=watch, name="watchdog", daemon=True).start()


def main() -> None:
    server_pid = os.getppid()
    fd = int(sys.argv[1])
    keep_channel_private(fd)
    watch_server(server_pid)
    become_subreaper()
    capture = Capture()
    # Its threads' stacks, when the pool asks before it stops a timed-out task: into a
    # file of the pool's (written by the signal handler itself; stderr would need this
    # process's threads to run to reach the pool), or to stderr.
    stacks = int(sys.argv[3]) if len(sys.argv) > 3 else sys.stderr.fileno()
    if stacks != sys.stderr.fileno():
        os.set_inheritable(stacks, False)
    faulthandler.register(signal.SIGUSR1, file=stacks, all_threads=True)
    running = None
    if len(sys.argv) > 4:
        os.set_inheritable(int(sys.argv[4]), False)
        running = Running(int(sys.argv[4]))
    worker = Worker(Connection(fd), capture, running)  # its threads' stacks are not capped
    limit_memory(int(sys.argv[2]) if len(sys.argv) > 2 else 0)
    sys.stdin.close()
    # What was imported to get here lives as long as the worker: out of the cyclic
    # collector's sight, so that a collection walks only what tasks made.
    gc.freeze()
    worker.serve()


if __name__ == "__main__":
    main()
