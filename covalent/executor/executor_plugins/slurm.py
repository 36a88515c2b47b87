"""``SlurmExecutor``: runs each electron as a Slurm batch job, here or over SSH.

How one task runs:

1. Its function and inputs (blobs, still pickled: the server unpickles no user data)
   are packed into one request file (:meth:`Task.packed`) in a folder of its own under
   ``remote_workdir``, beside a job script.
2. ``sbatch`` submits the script. The job runs the ``prerun_commands``, then
   ``python -m covalent.executor.runner --stream REQUEST REPLY``, then the
   ``postrun_commands``. The electron writes to the job's own output files.
3. One poller per executor asks ``squeue`` about all of its jobs at once, every
   ``poll_freq`` seconds, until each job reaches a final state. A job seen RUNNING
   makes its node RUNNING (``task.on_start``, at Slurm's start time when it is
   plausible); until then the node is queued.
4. While the job runs, its stdout and stderr files are read from where the last read
   stopped, every :data:`OUTPUT_INTERVAL` seconds, and what is new goes to the node
   (``task.on_output``); the rest is read when the job ends, so the Outcome carries no
   output twice.
5. The reply file becomes the :class:`Outcome`. A job that ended without one (killed,
   out of time, no Python) fails the node with its Slurm state and its stderr's tail.

Cancelling ``execute`` cancels the job (``scancel``); a task with a timeout is first
sent SIGUSR1 (``scancel --signal=USR1 --full``), on which the runner writes its Python
stacks to stderr, then cancelled :data:`STACK_GRACE` seconds later. With ``address``
empty every command runs on this machine; otherwise on that host over SSH (one
connection per executor, reused), for instance a cluster's login node.
"""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import shlex
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from covalent._errors import ExecutorSettingError
from covalent.executor import settings as check
from covalent.executor.base import BaseExecutor
from covalent.executor.hosts import (
    COMMAND_TIMEOUT,
    Host,
    HostError,
    LocalHost,
    SSHHost,
    SSHTarget,
    runner_command,
)
from covalent.executor.live import LiveOutput
from covalent.executor.messages import Reply
from covalent.executor.task import Outcome, Task, load_reply, outcome_from_reply

EXECUTOR_PLUGIN_NAME = "SlurmExecutor"

_EXECUTOR_PLUGIN_DEFAULTS: dict[str, Any] = {
    "username": "",
    "address": "",
    "ssh_key_file": "",
    "remote_workdir": "covalent-workdir",
    "options": {},
    "prerun_commands": [],
    "postrun_commands": [],
    "python_path": "",
    "poll_freq": 2.0,
    "cleanup": True,
    "env": {},
    "port": 22,
    "known_hosts": "",
    "verify_host_key": True,
}

FINAL_STATES = frozenset(
    {
        "BOOT_FAIL",
        "CANCELLED",
        "COMPLETED",
        "DEADLINE",
        "FAILED",
        "NODE_FAIL",
        "OUT_OF_MEMORY",
        "PREEMPTED",
        "REVOKED",
        "SPECIAL_EXIT",
        "TIMEOUT",
        "UNKNOWN",
    }
)
"""Slurm job states after which the job never runs again (UNKNOWN: Slurm forgot it)."""

"""Seconds a single sbatch/squeue/scancel may take before it counts as failed."""

POLL_ERROR_GRACE = 300.0
"""Seconds of failing ``squeue`` calls tolerated before the waiting tasks fail."""

REPLY_GRACE = 15.0
"""Seconds to wait for a COMPLETED job's reply to show up (shared file systems lag)."""

OUTPUT_INTERVAL = 1.0
"""Seconds between two reads of a running job's output files."""
READ_LIMIT = 1024 * 1024
"""Bytes of one output file read at once."""
STACK_GRACE = 0.5
"""Seconds a timed-out electron has to write its Python stacks before its job is cancelled."""
STARTED_STATES = frozenset({"RUNNING", "COMPLETING", "SUSPENDED", "STOPPED"})
"""Slurm job states that mean the job has started (and not ended)."""
STDERR_TAIL_LINES = 20
_RESERVED = {"output": "output", "o": "output", "error": "error", "e": "error"}


class SlurmError(HostError):
    """A Slurm command failed; the message says which and why."""


class SlurmExecutor(BaseExecutor):
    """Run each electron as a Slurm batch job.

    Args:
        username: the SSH login (default: the server's user, or ``~/.ssh/config``).
        address: the host that runs ``sbatch`` (a login node); empty to run Slurm's
            commands on this machine.
        ssh_key_file: private key for SSH (default: asyncssh's defaults and the agent).
        remote_workdir: folder, on a file system the compute nodes share, for the job
            files (one subfolder per task); the electron runs in it. Relative paths
            start at the user's home directory.
        options: ``#SBATCH`` settings, e.g. ``{"partition": "debug", "time": "10:00",
            "cpus-per-task": 2}``; a value of ``True`` or ``""`` gives a bare flag.
            ``output`` and ``error`` are the executor's own.
        prerun_commands: shell lines the job runs before the electron.
        postrun_commands: shell lines the job runs after it.
        python_path: the Python with covalent installed on the compute nodes (default:
            this interpreter without ``address``, else ``python3``).
        poll_freq: seconds between two ``squeue`` calls.
        cleanup: delete a task's job folder once its result has been read (the folder
            of a job that ended without a result is kept, to look into).
        env: environment variables for Slurm's commands (e.g. ``SLURM_CONF``) and the job.
        port: the SSH port of ``address``.
        known_hosts: file of trusted host keys (default ``~/.ssh/known_hosts``).
        verify_host_key: check the host's key against ``known_hosts``; turn it off only
            on a network you trust.
        log_stdout, log_stderr, cache_dir, time_limit, retries: the original's, accepted
            and kept.

    Every setting is checked here: a wrong one raises ExecutorSettingError (a
    ValueError) naming it, its value and what is expected.
    """

    def __init__(
        self,
        username: str = "",
        address: str = "",
        ssh_key_file: str = "",
        remote_workdir: str = "covalent-workdir",
        options: dict[str, Any] | None = None,
        prerun_commands: list[str] | None = None,
        postrun_commands: list[str] | None = None,
        python_path: str = "",
        poll_freq: float = 2.0,
        cleanup: bool = True,
        env: dict[str, str] | None = None,
        port: int = 22,
        known_hosts: str = "",
        verify_host_key: bool = True,
        log_stdout: str = "",
        log_stderr: str = "",
        cache_dir: str = "",
        time_limit: float = -1,
        retries: int = 0,
    ) -> None:
        super().__init__(log_stdout, log_stderr, cache_dir, time_limit, retries)
        owner = type(self).__name__
        self.username = check.text(owner, "username", username)
        self.address = check.text(owner, "address", address)
        self.ssh_key_file = check.path(owner, "ssh_key_file", ssh_key_file)
        self.remote_workdir = check.path(owner, "remote_workdir", remote_workdir)
        self.options = check.mapping(owner, "options", options)
        self.prerun_commands = check.strings(owner, "prerun_commands", prerun_commands)
        self.postrun_commands = check.strings(owner, "postrun_commands", postrun_commands)
        self.python_path = check.path(owner, "python_path", python_path)
        self.poll_freq = check.number(owner, "poll_freq", poll_freq)
        self.cleanup = check.flag(owner, "cleanup", cleanup)
        self.env = check.environment(owner, "env", env)
        self.port = check.integer(owner, "port", port, 1)
        self.known_hosts = check.path(owner, "known_hosts", known_hosts)
        self.verify_host_key = check.flag(owner, "verify_host_key", verify_host_key)
        self._check_options()
        self._host: Host | None = None
        self._poller: _Poller | None = None

    def _check_options(self) -> None:
        for key in self.options:
            reserved = _RESERVED.get(_option_name(key))
            if reserved:
                raise ExecutorSettingError(
                    f"SlurmExecutor sets the job's {reserved} file itself (it reads it back); "
                    f"remove {key!r} from options."
                )
        bad = [k for k in self.env if not k.isidentifier() or not k.isascii()]
        if bad:
            raise ExecutorSettingError(f"env names must be shell variable names, not {bad}.")
        if self.poll_freq <= 0:
            raise ExecutorSettingError(
                f"SlurmExecutor(poll_freq={self.poll_freq!r}): poll_freq must be more than 0 "
                "seconds."
            )

    # the dispatcher's side

    def reports_start(self) -> bool:
        """The node is RUNNING once squeue says its job runs (``task.on_start``)."""
        return True

    async def execute(self, task: Task) -> Outcome:
        host, poller = self._connection()
        try:
            job = await self._prepare(host, task)
            job_id = await _finish_even_if_cancelled(self._submit(host, job), host)
        except HostError as e:  # a SlurmError, or the login node failing
            return Outcome.failure(str(e))
        output = _JobOutput(host, job, LiveOutput(task))
        try:
            return output.live.into(await self._follow(host, poller, job, job_id, output))
        finally:
            output.live.flush()  # what it wrote before it was cancelled, too

    async def _follow(
        self, host: Host, poller: _Poller, job: _JobFiles, job_id: str, output: _JobOutput
    ) -> Outcome:
        """Wait for the job's end, reading its output meanwhile; its Outcome."""
        submitted = time.time()

        def started(at: float | None) -> None:
            output.started = True
            if job.task.on_start is not None:
                now = time.time()
                plausible = at is not None and submitted - 1.0 <= at <= now  # whole seconds
                job.task.on_start(max(at, submitted) if plausible and at is not None else now)

        reading = asyncio.create_task(output.follow())
        try:
            state = await poller.wait(job_id, started)
        except asyncio.CancelledError:
            await _stopped(reading)
            await self._stop(host, job, job_id, output)
            raise
        except HostError as e:  # a SlurmError, or the login node failing
            return Outcome.failure(f"Lost track of Slurm job {job_id}: {e}")
        finally:
            await _stopped(reading)
        await output.read_rest()
        try:
            return await self._outcome(host, job, job_id, state)
        except HostError as e:  # a SlurmError, or the login node failing
            return Outcome.failure(f"Could not read the result of Slurm job {job_id}: {e}")

    async def _stop(self, host: Host, job: _JobFiles, job_id: str, output: _JobOutput) -> None:
        """Cancel the job (a task with a timeout writes its stacks first); keep what it
        wrote. Shielded: a second cancellation does not interrupt it."""

        async def stop() -> None:
            if job.task.metadata.get("timeout") and output.started:
                await host.run(["scancel", "--signal=USR1", "--full", job_id])
                await asyncio.sleep(STACK_GRACE)
            await host.run(["scancel", job_id])
            with contextlib.suppress(Exception):
                await asyncio.wait_for(output.read_rest(), COMMAND_TIMEOUT)

        with contextlib.suppress(Exception):
            await asyncio.shield(stop())

    async def teardown(self) -> None:
        host, poller = self._host, self._poller
        self._host = self._poller = None
        if poller is not None:
            await poller.close()
        if host is not None:
            await host.close()
        await super().teardown()

    def _connection(self) -> tuple[Host, _Poller]:
        """This executor's host and poller, made for the running event loop."""
        loop = asyncio.get_running_loop()
        if self._host is None or self._host.loop is not loop:
            self._host = SSHHost(self._target(), self.env) if self.address else LocalHost(self.env)
            self._poller = _Poller(self._host, self.poll_freq)
        assert self._poller is not None
        return self._host, self._poller

    def _target(self) -> SSHTarget:
        """The login node, as the remote-host layer logs in to it."""
        return SSHTarget(
            hostname=self.address,
            port=self.port,
            username=self.username,
            key_file=self.ssh_key_file,
            known_hosts=self.known_hosts,
            verify_host_key=self.verify_host_key,
            who="SlurmExecutor",
        )

    # the job

    def _job_script(self, job: _JobFiles) -> str:
        """The batch script for one task."""
        settings = {
            "job-name": f"covalent-{job.task.dispatch_id[:8]}-{job.task.node_id}",
            "chdir": job.workdir,
        }
        settings.update({_option_name(k): v for k, v in self.options.items()})
        settings.update(output=job.stdout, error=job.stderr)
        python = self.python_path or (sys.executable if not self.address else "python3")
        exports = [f"export {k}={shlex.quote(v)}" for k, v in self.env.items()]
        lines = [
            "#!/bin/bash",
            *_directives(settings),
            "",
            *exports,
            "trap : USR1  # a timed-out electron's stack dump must not end this script",
            *self.prerun_commands,
            runner_command(python, job.request, job.reply),
            "covalent_status=$?",
            *self.postrun_commands,
            "exit $covalent_status",
            "",
        ]
        return "\n".join(lines)

    async def _prepare(self, host: Host, task: Task) -> _JobFiles:
        """Write the task's request and job script into a new folder."""
        job = _JobFiles(await host.resolve(self.remote_workdir), task)
        try:
            await host.makedirs(job.folder)
            await host.write(job.request, await asyncio.to_thread(task.packed))
            await host.write(job.script, self._job_script(job).encode())
        except OSError as e:
            raise SlurmError(f"Could not write the Slurm job's files in {job.folder}: {e}") from e
        return job

    async def _submit(self, host: Host, job: _JobFiles) -> str:
        done = await host.run(["sbatch", "--parsable", job.script])
        job_id = done.stdout.strip().split(";")[0]
        if done.returncode != 0 or not job_id.isdigit():
            raise SlurmError(
                f"sbatch refused the job for {job.task.name!r} (exit code {done.returncode}): "
                f"{(done.stderr or done.stdout).strip()}"
            )
        return job_id

    async def _outcome(self, host: Host, job: _JobFiles, job_id: str, state: str) -> Outcome:
        reply = await host.read(job.reply)
        deadline = time.monotonic() + REPLY_GRACE
        while reply is None and state == "COMPLETED" and time.monotonic() < deadline:
            await asyncio.sleep(0.5)
            reply = await host.read(job.reply)
        if reply is None:
            return Outcome.failure(await _death_report(host, job, job_id, state))
        outcome = outcome_from_reply(_load_reply(reply))  # its output came from the files
        if state != "COMPLETED":
            outcome.stderr += f"\ncovalent: Slurm job {job_id} ended in state {state}.\n"
        if self.cleanup:
            await host.remove_tree(job.folder)
        return outcome


# plain helpers


def _option_name(key: str) -> str:
    return str(key).lstrip("-").replace("_", "-")


def _directives(settings: dict[str, Any]) -> list[str]:
    """``#SBATCH`` lines; ``True``/``""``/``None`` give a bare flag, ``False`` nothing."""
    lines = []
    for name, value in settings.items():
        flag = f"-{name}" if len(name) == 1 else f"--{name}"
        if value is False:
            continue
        if value is True or value is None or value == "":
            lines.append(f"#SBATCH {flag}")
        elif len(name) == 1:
            lines.append(f"#SBATCH {flag} {shlex.quote(str(value))}")
        else:
            lines.append(f"#SBATCH {flag}={shlex.quote(str(value))}")
    return lines


def _load_reply(data: bytes) -> Reply:
    try:
        return load_reply(data)
    except Exception as e:
        raise SlurmError(f"its reply file is not a task reply: {e}") from e


class _JobOutput:
    """A job's stdout and stderr files, read from where the last read stopped."""

    def __init__(self, host: Host, job: _JobFiles, live: LiveOutput) -> None:
        self.host = host
        self.live = live
        self.paths = {"stdout": job.stdout, "stderr": job.stderr}
        self.offsets = {"stdout": 0, "stderr": 0}
        self.decoders = {name: _decoder() for name in self.paths}
        self.started = False

    async def follow(self) -> None:
        """Read what is new every :data:`OUTPUT_INTERVAL` seconds once the job started."""
        while True:
            await asyncio.sleep(OUTPUT_INTERVAL)
            if self.started:
                with contextlib.suppress(HostError, OSError):
                    await self.read()

    async def read(self) -> bool:
        """Read what is new in both files (up to READ_LIMIT bytes each); whether any was."""
        found = False
        for name, path in self.paths.items():
            data = await self.host.read_from(path, self.offsets[name], READ_LIMIT)
            self.offsets[name] += len(data)
            self.live.add(name, self.decoders[name].decode(data))
            found = found or bool(data)
        return found

    async def read_rest(self) -> None:
        """Read both files to their end (the job has ended)."""
        while await self.read():
            pass
        for name, decoder in self.decoders.items():
            self.live.add(name, decoder.decode(b"", final=True))
        self.live.flush()


async def _stopped(task: asyncio.Task[None]) -> None:
    """Cancel ``task`` and wait until it has stopped (whatever else is cancelled)."""
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


def _decoder() -> codecs.IncrementalDecoder:
    return codecs.getincrementaldecoder("utf-8")(errors="replace")


class _JobFiles:
    """Where one task's job files live: a fresh folder per attempt, so that a retry
    never reads an earlier attempt's reply."""

    def __init__(self, workdir: str, task: Task) -> None:
        self.task = task
        self.workdir = workdir
        token = uuid.uuid4().hex[:8]
        self.folder = f"{workdir}/{task.dispatch_id}-node{task.node_id}-{token}"
        self.script = f"{self.folder}/job.sh"
        self.request = f"{self.folder}/request.pkl"
        self.reply = f"{self.folder}/reply.pkl"
        self.stdout = f"{self.folder}/job.stdout"
        self.stderr = f"{self.folder}/job.stderr"


async def _finish_even_if_cancelled(submit: Awaitable[str], host: Host) -> str:
    """Await a submission; if cancelled meanwhile, let it finish and cancel its job."""
    pending = asyncio.ensure_future(submit)
    try:
        return await asyncio.shield(pending)
    except asyncio.CancelledError:
        with contextlib.suppress(Exception):
            await _scancel(host, await asyncio.wait_for(pending, COMMAND_TIMEOUT))
        raise


async def _scancel(host: Host, job_id: str) -> None:
    """Cancel a job; shielded, so that a second cancellation does not interrupt it."""
    with contextlib.suppress(Exception):
        await asyncio.shield(host.run(["scancel", job_id]))


async def _death_report(host: Host, job: _JobFiles, job_id: str, state: str) -> str:
    """Why a job left no reply: its Slurm state, exit code and the tail of its stderr."""
    details: dict[str, str] = {}
    with contextlib.suppress(HostError):
        details = await _job_details(host, job_id)
    extra = ", ".join(f"{k} {v}" for k, v in details.items() if v and v != "None")
    lines = [
        f"Slurm job {job_id} for {job.task.name!r} ended in state {state}"
        + (f" ({extra})" if extra else "")
        + " without a result."
    ]
    tail = (await host.tail(job.stderr, 16 * 1024)).splitlines()[-STDERR_TAIL_LINES:]
    lines.append(
        f"Its stderr ({job.stderr}) ends with:" if tail else f"Its stderr ({job.stderr}) is empty."
    )
    lines.extend(tail)
    return "\n".join(lines)


async def _job_details(host: Host, job_id: str) -> dict[str, str]:
    done = await host.run(["scontrol", "-o", "show", "job", job_id])
    fields = dict(part.split("=", 1) for part in done.stdout.split() if "=" in part)
    return {"reason": fields.get("Reason", ""), "exit code": fields.get("ExitCode", "")}


class _Poller:
    """Follows every job of one host with one ``squeue`` per ``poll_freq`` seconds."""

    def __init__(self, host: Host, poll_freq: float) -> None:
        self.host = host
        self.poll_freq = poll_freq
        self.waiting: dict[str, asyncio.Future[str]] = {}
        self.on_start: dict[str, Callable[[float | None], None]] = {}
        self.task: asyncio.Task[None] | None = None

    async def wait(
        self, job_id: str, on_start: Callable[[float | None], None] | None = None
    ) -> str:
        """The job's final state, once it has one; ``on_start(start time or None)`` is
        called once when the job is first seen running."""
        future = self.waiting[job_id] = asyncio.get_running_loop().create_future()
        if on_start is not None:
            self.on_start[job_id] = on_start
        if self.task is None or self.task.done():
            self.task = asyncio.create_task(self._run(), name="covalent-slurm-poller")
        try:
            return await future
        finally:
            self.waiting.pop(job_id, None)
            self.on_start.pop(job_id, None)

    async def _run(self) -> None:
        failing_since: float | None = None
        while self.waiting:
            await asyncio.sleep(self.poll_freq)
            try:
                states = await self._poll(list(self.waiting))
            except Exception as e:  # a flaky controller or connection: try again, a while
                failing_since = failing_since or time.monotonic()
                if time.monotonic() - failing_since > POLL_ERROR_GRACE:
                    self._settle_all(SlurmError(f"squeue kept failing: {e}"))
                continue
            failing_since = None
            for job_id, (state, start) in states.items():
                if state in STARTED_STATES and job_id in self.on_start:
                    self.on_start.pop(job_id)(start)
                future = self.waiting.get(job_id)
                if state in FINAL_STATES and future is not None and not future.done():
                    future.set_result(state)

    async def _poll(self, job_ids: list[str]) -> dict[str, tuple[str, float | None]]:
        states = await _states(self.host, job_ids)
        for job_id in job_ids:
            if job_id not in states:
                states[job_id] = (await _forgotten_state(self.host, job_id), None)
        return states

    def _settle_all(self, error: Exception) -> None:
        for future in self.waiting.values():
            if not future.done():
                future.set_exception(error)

    async def close(self) -> None:
        if self.task is not None:
            self.task.cancel()
            await asyncio.gather(self.task, return_exceptions=True)
        self._settle_all(SlurmError("the executor was shut down while the job ran"))


async def _states(host: Host, job_ids: list[str]) -> dict[str, tuple[str, float | None]]:
    """``{job id: (state, start time or None)}`` for the jobs Slurm still knows, from one
    ``squeue`` call."""
    command = [
        "squeue",
        "--noheader",
        "--states=all",
        "--jobs",
        ",".join(job_ids),
        "--format=%i|%T|%S",
    ]
    done = await host.run(command)
    if done.returncode != 0:
        if "Invalid job id" in done.stderr:
            return {}  # every job asked about is gone (squeue says so for one id alone)
        raise SlurmError(f"squeue failed (exit code {done.returncode}): {done.stderr.strip()}")
    found: dict[str, tuple[str, float | None]] = {}
    for line in done.stdout.splitlines():
        job_id, state, start = (line.split("|") + ["", ""])[:3]
        if state.strip():
            found[job_id.strip()] = (state.strip().split()[0], _slurm_time(start.strip()))
    return found


def _slurm_time(text: str) -> float | None:
    """A time squeue prints (``2026-11-30T12:30:01``, the host's local time), or None."""
    try:
        return time.mktime(time.strptime(text, "%Y-%m-%dT%H:%M:%S"))
    except ValueError:
        return None


async def _forgotten_state(host: Host, job_id: str) -> str:
    """The state of a job squeue no longer shows: from sacct, where accounting is on."""
    done = await host.run(
        ["sacct", "--noheader", "--parsable2", "--allocations", "--jobs", job_id, "--format=State"]
    )
    words = done.stdout.split() if done.returncode == 0 else []
    return words[0] if words else "UNKNOWN"


# where commands run
