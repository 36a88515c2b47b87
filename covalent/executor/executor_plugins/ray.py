"""``RayExecutor``: runs electrons as tasks on a Ray cluster.

Where: with ``address`` (``"host:6379"``, ``"ray://host:10001"``, ``"auto"``) the executor
uses that existing cluster and never stops it. Without one it uses the server's own local
Ray instance on 127.0.0.1, started on first use, shared by every RayExecutor without an
address in the server (one per event loop), and stopped when the last of them is torn
down, at server stop.

How: the server never imports ``ray``. Each cluster is served by a Ray driver process of
its own (:mod:`covalent.executor._ray_driver`, whose docstring says why), shared by the
executors that use that address and started on first use: a :class:`RayDriver` here is
the server's handle on it. One electron is one Ray task; its function and input blobs go
to the driver still pickled, and the runner's reply comes back as MessagePack that the
server reads with ``task.load_reply`` (plain values only; the output inside stays pickled).

The local instance listens on 127.0.0.1 only (``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0`` in
its driver's environment: without it Ray picks the machine's network address and
listens on every interface), uses a session folder of its own under the system's
temporary folder, and has token authentication on, with a token of its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import os
import pickle
import secrets
import shutil
import signal
import socket
import sys
import tempfile
import time
from dataclasses import dataclass
from numbers import Real
from typing import Any

from covalent._errors import ExecutorError, ExecutorSettingError
from covalent._results.status import Status
from covalent.executor import _ray_driver as _driver
from covalent.executor import messages
from covalent.executor import settings as check
from covalent.executor._ray_driver import PUT_BYTES, read_frame, write_frame
from covalent.executor.base import BaseExecutor, Report
from covalent.executor.task import (
    Cancellable,
    Outcome,
    Task,
    load_reply,
    outcome_from_reply,
    workdir_options,
)

EXECUTOR_PLUGIN_NAME = "RayExecutor"

_EXECUTOR_PLUGIN_DEFAULTS: dict[str, Any] = {
    "address": "",
    "num_cpus": 1,
    "num_gpus": 0,
    "memory": 0,
    "infeasible_timeout": 60.0,
    "pack": True,
    "local_num_cpus": 0,
    "local_object_store_memory": 0,
    "workdir": "",
    "create_unique_workdir": False,
    "log_stdout": "",
    "log_stderr": "",
}

CONNECT_TIMEOUT = 60.0
CONNECT_ATTEMPTS = 3
"""Tries of a Ray Client connection whose proxy fails to start its server."""
"""Seconds a driver may take to connect to an existing cluster (Ray itself retries an
address that does not answer for much longer)."""
START_TIMEOUT = 180.0
"""Seconds the local instance may take to start (a loaded machine is slow: ``ray.init``
alone takes 4-8 s on two cores)."""
STOP_TIMEOUT = 60.0
"""Seconds a driver may take to stop (``ray.shutdown``) before it is killed."""
START_CHUNK = 128
"""Tasks whose requests are made (in a thread) and sent together on the fast path."""
RESERVED_RESOURCES = ("CPU", "GPU", "memory")
"""Ray's own resource names, which go in ``num_cpus``, ``num_gpus`` and ``memory``."""

log = logging.getLogger("covalent.executor.ray")


def _is_loopback(address: str) -> bool:
    """Whether a cluster address names this machine's loopback (where Ray, unless told
    otherwise, would use the machine's network address instead)."""
    host = address.split("://", 1)[-1].rsplit(":", 1)[0].strip("[]")
    return host in ("localhost", "::1") or host.startswith("127.")


class RayDriver:
    """The server's handle on one Ray driver process (local instance or existing cluster).

    Shared by the RayExecutors of one address on one event loop (:meth:`acquire` /
    :meth:`release` count them); the process starts on the first :meth:`submit` and is
    stopped after the last :meth:`release`. If it dies, its running tasks fail and the
    next task starts a new one.
    """

    _shared: dict[tuple[asyncio.AbstractEventLoop, str], RayDriver] = {}

    def __init__(self, address: str, num_cpus: int = 0, object_store_memory: int = 0) -> None:
        self.address = address
        self.num_cpus = num_cpus
        self.object_store_memory = object_store_memory
        self.users = 0
        self.pid = 0
        self._process: asyncio.subprocess.Process | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._reading: asyncio.Future[None] | None = None
        self._ending: asyncio.Future[None] | None = None  # what is left of a lost driver
        self._outbox: list[dict[str, Any]] = []
        self._flushing: asyncio.Future[None] | None = None
        self._waiting: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._ids = itertools.count(1)
        self._lock = asyncio.Lock()
        self._temp_dir = ""

    @classmethod
    def acquire(cls, address: str, num_cpus: int = 0, object_store_memory: int = 0) -> RayDriver:
        """The running loop's driver for ``address`` (made, not started, if there is
        none), counted as used once more; the local settings apply when it is made."""
        key = (asyncio.get_running_loop(), address)
        driver = cls._shared.get(key)
        if driver is None:
            driver = cls._shared[key] = cls(address, num_cpus, object_store_memory)
        driver.users += 1
        return driver

    async def release(self) -> None:
        """Count one user less; stop the driver (and the local instance) after the last."""
        self.users -= 1
        if self.users > 0:
            return
        key = (asyncio.get_running_loop(), self.address)
        if self._shared.get(key) is self:
            del self._shared[key]
        await self.close()

    @property
    def running(self) -> bool:
        """Whether the driver process runs and its answers are being read (once the
        reader has seen it go, a task must start a new one, not wait on this one)."""
        reading = self._reading
        return self._process is not None and reading is not None and not reading.done()

    @property
    def where(self) -> str:
        return f"the Ray cluster at {self.address}" if self.address else "the local Ray instance"

    # tasks

    async def submit(
        self, messages: list[dict[str, Any]]
    ) -> list[tuple[int, asyncio.Future[dict[str, Any]]]]:
        """Send ``run`` requests (in one frame); each one's answer (``{"reply"}`` or
        ``{"error"}``) comes in its future."""
        await self._started()
        loop = asyncio.get_running_loop()
        sent = []
        for message in messages:
            request_id = next(self._ids)
            answer: asyncio.Future[dict[str, Any]] = loop.create_future()
            self._waiting[request_id] = answer
            self._send({"op": "run", "id": request_id, **message})
            sent.append((request_id, answer))
        return sent

    def cancel(self, request_id: int) -> None:
        """Ask the driver to stop a task (``ray.cancel(force=True)``); no answer is awaited."""
        if self._waiting.pop(request_id, None) is not None:
            self._send({"op": "cancel", "id": request_id})

    def _send(self, message: dict[str, Any]) -> None:
        """Queue a request; the requests queued meanwhile go in one frame."""
        self._outbox.append(message)
        if self._flushing is None:
            self._flushing = asyncio.ensure_future(self._flush())

    async def _flush(self) -> None:
        try:
            while self._outbox and self._writer is not None:
                batch, self._outbox = self._outbox, []
                await write_frame(self._writer, pickle.dumps(batch, protocol=5))
        except (ConnectionError, RuntimeError):
            pass  # the reader fails the tasks of a driver that is gone
        finally:
            self._flushing = None

    # the process

    async def _started(self) -> None:
        if self.running:
            return
        async with self._lock:
            for attempt in range(1, CONNECT_ATTEMPTS + 1):
                if self.running:
                    return
                try:
                    await self._start()
                    return
                except ExecutorError as e:
                    # Ray Client's proxy sometimes fails to start the server of a new
                    # client ("Initialization failure from server"); a second try works.
                    if attempt == CONNECT_ATTEMPTS or "Initialization failure" not in str(e):
                        raise
                    log.warning("Connecting to %s failed once, trying again: %s", self.where, e)

    async def _start(self) -> None:
        await self._stop_process()
        config: dict[str, Any] = {"address": self.address, "pack_seconds": _driver.PACK_SECONDS}
        if not self.address:
            self._temp_dir = tempfile.mkdtemp(prefix="covalent-ray-")
            config.update(
                temp_dir=self._temp_dir,
                num_cpus=self.num_cpus,
                object_store_memory=self.object_store_memory,
            )
        ours, theirs = socket.socketpair()
        try:
            self._process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "covalent.executor._ray_driver",
                str(theirs.fileno()),
                json.dumps(config),
                pass_fds=(theirs.fileno(),),
                env=self._environment(),
                stdin=asyncio.subprocess.DEVNULL,
                start_new_session=True,  # it stops when the socket closes, not on ^C
            )
        finally:
            theirs.close()
        reader, self._writer = await asyncio.open_connection(sock=ours)
        ready = await self._handshake(reader)
        self.pid = int(ready.get("pid") or self._process.pid)
        self._reading = asyncio.ensure_future(self._read(reader, self._process))
        log.info("Connected to %s (%s nodes)", self.where, ready.get("nodes"))

    def _environment(self) -> dict[str, str]:
        env = {**os.environ}
        env.setdefault("RAY_USAGE_STATS_ENABLED", "0")
        if not self.address or _is_loopback(self.address):
            env["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"  # 127.0.0.1, not eth0's address
        if not self.address:  # the local instance: token authentication, our own token
            token = os.path.join(self._temp_dir, "auth_token")
            with open(os.open(token, os.O_WRONLY | os.O_CREAT, 0o600), "w") as f:
                f.write(secrets.token_hex(32))
            env.pop("RAY_AUTH_TOKEN", None)
            env.update(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN_PATH=token)
        return env

    async def _handshake(self, reader: asyncio.StreamReader) -> dict[str, Any]:
        timeout = CONNECT_TIMEOUT if self.address else START_TIMEOUT
        try:
            frame = await asyncio.wait_for(read_frame(reader), timeout)
        except asyncio.TimeoutError:
            await self._stop_process(kill=True)  # still in ray.init: it would not hear "stop"
            raise ExecutorError(
                f"Could not connect to {self._named()} within {timeout:.0f} s; "
                "check that it runs and that the address is right."
            ) from None
        message = messages.decode_plain(frame) if frame is not None else {}
        if message.get("op") != "ready":
            await self._stop_process()
            reason = message.get("error") or "its Ray driver process exited; see the server log"
            raise ExecutorError(f"Could not connect to {self._named()} ({reason}).")
        return message

    def _named(self) -> str:
        if self.address:
            return f"the Ray cluster at '{self.address}'"
        return "the local Ray instance (it did not start)"

    async def _read(
        self, reader: asyncio.StreamReader, process: asyncio.subprocess.Process
    ) -> None:
        """Hand each answer to its task; when the driver is gone, fail the rest and end
        what is left of its processes."""
        try:
            while (frame := await read_frame(reader)) is not None:
                for answer in messages.decode_plain(frame)["replies"]:
                    waiting = self._waiting.pop(answer["id"], None)
                    if waiting is not None and not waiting.done():
                        waiting.set_result(answer)
        except Exception as e:
            log.error("Unreadable message from the Ray driver for %s: %s", self.where, e)
        lost = {
            "error": f"the connection to {self.where} was lost (its Ray driver process "
            "ended; see the server log)"
        }
        left, self._waiting = self._waiting, {}
        for future in left.values():
            if not future.done():
                future.set_result(lost)
        if self._writer is not None:
            self._writer.close()
        self._ending = asyncio.ensure_future(_end_group(process, STOP_TIMEOUT))

    async def close(self) -> None:
        async with self._lock:
            await self._stop_process()

    async def _stop_process(self, kill: bool = False) -> None:
        """Stop the driver: ``stop``, then its socket closes; killed if it lingers (or
        at once with ``kill``)."""
        process, writer, reading = self._process, self._writer, self._reading
        self._process, self._writer, self._reading = None, None, None
        self._outbox = []
        if writer is not None:  # (a frame is written whole before any await: no mix-up)
            with contextlib.suppress(ConnectionError, RuntimeError, asyncio.TimeoutError):
                stop = pickle.dumps([{"op": "stop"}])
                await asyncio.wait_for(write_frame(writer, stop), 0 if kill else STOP_TIMEOUT)
            writer.close()
        if process is not None:
            await _end_group(process, 0 if kill else STOP_TIMEOUT)
        if reading is not None:
            await reading
        if self._ending is not None:
            ending, self._ending = self._ending, None
            await ending
        if self._temp_dir:
            shutil.rmtree(self._temp_dir, ignore_errors=True)
            self._temp_dir = ""


async def _end_group(process: asyncio.subprocess.Process, timeout: float) -> None:
    """Wait up to ``timeout`` s for a driver process to exit, then kill its process group:
    the driver, if it lingers, and whatever of the local instance outlived it (Ray's
    agents outlive a driver that Ray ended itself, as when its cluster went away)."""
    with contextlib.suppress(asyncio.TimeoutError):
        await asyncio.wait_for(process.wait(), timeout)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)
    await process.wait()


def _check_amount(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, Real) or value < 0:
        raise ExecutorSettingError(
            f"RayExecutor's {name} must be a number of 0 or more, not {value!r}."
        )
    return float(value)


def _check_resources(resources: Any) -> dict[str, float]:
    if not isinstance(resources, dict):
        raise ExecutorSettingError(
            f"RayExecutor's resources must be a dict of resource names to amounts, not "
            f"{type(resources).__name__}."
        )
    for name in resources:
        if not isinstance(name, str) or name in RESERVED_RESOURCES:
            raise ExecutorSettingError(
                f"RayExecutor's resources cannot name {name!r}; use num_cpus, num_gpus and "
                "memory for Ray's own resources."
            )
    return {name: _check_amount(f"resources[{name!r}]", v) for name, v in resources.items()}


def _check_runtime_env(runtime_env: Any) -> dict[str, Any]:
    if not isinstance(runtime_env, dict):
        raise ExecutorSettingError(
            f"RayExecutor's runtime_env must be a dict (pip, env_vars, working_dir, ...), "
            f"not {type(runtime_env).__name__}."
        )
    try:
        json.dumps(runtime_env)
    except (TypeError, ValueError) as e:
        raise ExecutorSettingError(
            f"RayExecutor's runtime_env must be plain JSON data: {e}."
        ) from e
    return dict(runtime_env)


class RayExecutor(BaseExecutor):
    """Run each electron as a task on a Ray cluster.

    Args:
        address: an existing cluster, as ``ray.init`` takes it: ``"host:6379"`` (its GCS,
            this machine joining as a driver), ``"ray://host:10001"`` (Ray Client) or
            ``"auto"``; empty: the server's own local Ray instance.
        num_cpus: CPUs each electron asks Ray for (Ray's ``num_cpus``).
        num_gpus: GPUs each electron asks Ray for.
        memory: bytes of memory each electron asks Ray for (0: no request).
        resources: custom resources each electron asks for, like ``{"node_a": 1}``.
        runtime_env: Ray's runtime environment for the electron (``pip``, ``env_vars``,
            ``working_dir``, ...); Ray sets it up on the worker, and a failure to do so
            fails the electron with Ray's reason.
        infeasible_timeout: seconds an electron that no node of the cluster can ever
            run (it asks for more than any node has) may wait for such a node to join
            before it fails with Ray's reason; Ray itself would wait forever.
        pack: let electrons that are ready together, alike and ask for CPUs only share
            a Ray task, several run one after the other (see the driver's
            :class:`~covalent.executor._ray_driver.Driver`); False: one Ray task each,
            always.
        local_num_cpus: CPUs of the local instance (0: Ray's default, the CPU count).
        local_object_store_memory: bytes of the local instance's object store (0: Ray's
            default, 30% of the memory).
        workdir: folder the electron runs in, on the worker's machine.
        create_unique_workdir: run in ``workdir/<dispatch_id>/node_<id>`` instead.
        log_stdout: file (on the worker's machine) to append each electron's stdout to.
        log_stderr: file (on the worker's machine) to append each electron's stderr to.
        env: environment variables set while the electron runs.

        cache_dir, time_limit, retries: the original's, accepted and kept (see
            :class:`~covalent.executor.base.BaseExecutor`).

    Raises:
        ExecutorSettingError: a setting has the wrong type or a negative amount.

    The local instance's settings (``local_num_cpus``, ``local_object_store_memory``)
    are those of the first executor that starts it.
    """

    def __init__(
        self,
        address: str = "",
        num_cpus: float = 1,
        num_gpus: float = 0,
        memory: int = 0,
        resources: dict[str, float] | None = None,
        runtime_env: dict[str, Any] | None = None,
        infeasible_timeout: float = 60.0,
        pack: bool = True,
        local_num_cpus: int = 0,
        local_object_store_memory: int = 0,
        workdir: str = "",
        create_unique_workdir: bool = False,
        log_stdout: str = "",
        log_stderr: str = "",
        env: dict[str, str] | None = None,
        cache_dir: str = "",
        time_limit: float = -1,
        retries: int = 0,
    ) -> None:
        super().__init__(log_stdout, log_stderr, cache_dir, time_limit, retries)
        owner = type(self).__name__
        self.address = check.text(owner, "address", address)
        self.num_cpus = _check_amount("num_cpus", num_cpus)
        self.num_gpus = _check_amount("num_gpus", num_gpus)
        self.memory = int(_check_amount("memory", memory))
        self.resources = _check_resources(resources or {})
        self.runtime_env = _check_runtime_env(runtime_env or {})
        self.infeasible_timeout = _check_amount("infeasible_timeout", infeasible_timeout)
        self.pack = check.flag(owner, "pack", pack)
        self.local_num_cpus = int(_check_amount("local_num_cpus", local_num_cpus))
        self.local_object_store_memory = int(
            _check_amount("local_object_store_memory", local_object_store_memory)
        )
        self.workdir = check.path(owner, "workdir", workdir)
        self.create_unique_workdir = check.flag(
            owner, "create_unique_workdir", create_unique_workdir
        )
        self.env = check.environment(owner, "env", env)
        self._driver: RayDriver | None = None
        self._starting: set[asyncio.Future[None]] = set()

    def driver(self) -> RayDriver:
        """The driver of this executor's cluster, shared with the other executors of
        the same address (not started until a task needs it)."""
        if self._driver is None:
            self._driver = RayDriver.acquire(
                self.address, self.local_num_cpus, self.local_object_store_memory
            )
        return self._driver

    async def teardown(self) -> None:
        if self._starting:  # fast-path tasks whose requests are being made
            await asyncio.wait(list(self._starting))
        driver, self._driver = self._driver, None
        if driver is not None:
            await driver.release()
        await super().teardown()

    # tasks

    def ray_options(self, task: Task) -> dict[str, Any]:
        """The options of the electron's Ray task (``remote_function.options``)."""
        options: dict[str, Any] = {
            "name": task.name,
            "num_cpus": self.num_cpus,
            "num_gpus": self.num_gpus,
            "max_retries": 0,  # covalent retries electrons itself (retries=)
        }
        if self.memory:
            options["memory"] = self.memory
        if self.resources:
            options["resources"] = self.resources
        if self.runtime_env:
            options["runtime_env"] = self.runtime_env
        return options

    def task_options(self, task: Task) -> dict[str, Any]:
        """The runner's options: working directory, environment, logs and, on the local
        instance (this machine), the blob store that large outputs are written to."""
        options = workdir_options(
            task,
            self.workdir,
            self.create_unique_workdir,
            self.log_stdout,
            self.log_stderr,
            self.env,
        )
        if not self.address:
            options["blobs_dir"] = task.blobs_dir
        return options

    def request(self, task: Task) -> dict[str, Any]:
        """The driver's ``run`` request: the task with its small blobs packed in one
        pickle, its large blobs apart (as bytes or, stored as a file, its path: the
        driver puts them in Ray's object store once), and its Ray options."""
        small: dict[str, bytes] = {}
        large: list[tuple[str, bytes | None, str | None]] = []
        for name in [task.function, *task.value_names()]:
            path = task.blob_file(name)
            data = None if path else task.load_blob(name)
            if data is not None and len(data) < PUT_BYTES:
                small[name] = data
            elif name not in small:
                large.append((name, data, path))
        payload = task.payload(self.task_options(task))
        return {
            "packed": pickle.dumps({"task": payload, "blobs": small}, protocol=5),
            "large": list(dict.fromkeys(large)),
            "options": self.ray_options(task),
            "infeasible_timeout": self.infeasible_timeout,
            "pack": self.pack,
        }

    async def execute(self, task: Task) -> Outcome:
        driver = self.driver()
        request = await asyncio.to_thread(self.request, task)
        [(request_id, answer)] = await driver.submit([request])
        del request
        try:
            return _outcome(task, await answer)
        except asyncio.CancelledError:
            driver.cancel(request_id)
            raise

    def start_many(self, tasks: list[tuple[Task, Report]]) -> list[Cancellable] | None:
        """The dispatcher's fast path: the tasks' requests are made in one thread and
        sent in one frame; each reports its outcome when its answer comes."""
        if type(self).execute is not RayExecutor.execute:
            return None
        jobs = [RayJob(task, report) for task, report in tasks]
        starting = asyncio.ensure_future(self._start_jobs(jobs))
        self._starting.add(starting)
        starting.add_done_callback(self._starting.discard)
        return list(jobs)

    async def _start_jobs(self, jobs: list[RayJob]) -> None:
        """Make and send the jobs' requests, ``START_CHUNK`` at a time, so that the
        first run on Ray while the next are made."""
        driver = self.driver()
        for first in range(0, len(jobs), START_CHUNK):
            chunk = jobs[first : first + START_CHUNK]
            try:
                requests = await asyncio.to_thread(self._requests, chunk)
                sent = await driver.submit(requests)
            except Exception as e:
                error = str(e) if isinstance(e, ExecutorError) else f"{type(e).__name__}: {e}"
                for job in jobs[first:]:
                    job.finish(Outcome.failure(error))
                return
            del requests
            for job, (request_id, answer) in zip(chunk, sent, strict=True):
                job.started(driver, request_id, answer)

    def _requests(self, jobs: list[RayJob]) -> list[dict[str, Any]]:
        return [self.request(job.task) for job in jobs]


@dataclass(eq=False)
class RayJob:
    """A task started on the fast path: its handle for the dispatcher (``cancel``)."""

    task: Task
    report: Report
    driver: RayDriver | None = None
    request_id: int = 0
    done: bool = False

    def started(
        self, driver: RayDriver, request_id: int, answer: asyncio.Future[dict[str, Any]]
    ) -> None:
        self.driver, self.request_id = driver, request_id
        if self.done:  # cancelled while its request was made
            driver.cancel(request_id)
            return
        answer.add_done_callback(lambda done: self.finish(_outcome(self.task, done.result())))

    def cancel(self) -> None:
        """Stop it (``ray.cancel(force=True)`` if it was sent) and report it cancelled."""
        if self.driver is not None and not self.done:
            self.driver.cancel(self.request_id)
        now = time.time()
        self.finish(Outcome(Status.CANCELLED, error="Cancelled.", start_time=now, end_time=now))

    def finish(self, outcome: Outcome) -> None:
        if not self.done:
            self.done = True
            self.report(outcome)


def _outcome(task: Task, answer: dict[str, Any]) -> Outcome:
    """The Outcome of the driver's answer to one task."""
    if "error" in answer:
        return Outcome.failure(
            f"Ray did not run electron {task.name}({task.node_id}) to the end: {answer['error']}."
        )
    try:
        return outcome_from_reply(load_reply(answer["reply"]))
    except Exception as e:
        return Outcome.failure(f"The Ray worker's reply to this electron is unreadable ({e}).")
