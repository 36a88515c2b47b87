"""The Ray driver: a process of its own between the covalent server and one Ray cluster.

Why a process: Ray allows one driver per process (``ray.init`` is global), so a server
that uses its own local instance and an existing cluster needs two; a driver that loses
its cluster may end its process; and Ray's import, threads and signal handlers stay out
of the server. ``RayExecutor`` (``executor_plugins/ray.py``) starts it as
``python -m covalent.executor._ray_driver FD CONFIG`` with one end of a socket pair (file
descriptor FD) and a JSON config (the address, or the local instance's settings). The
driver connects (``ray.init``), says ``{"op": "ready", ...}`` or ``{"op": "failed",
"error": ...}``, serves requests until the socket closes or ``stop`` comes, and then
calls ``ray.shutdown()``, which also stops the local instance when it started one (Ray
ties that instance's processes to this one, so they die with it in any case).

The wire: frames of an 8-byte big-endian length and a payload. The server sends requests
(``run``, ``cancel``, ``stop``) pickled (the driver runs user code anyway); the driver
answers in MessagePack, plain values only, which the server decodes without unpickling
(covalent.executor.messages): ``{"replies": [...]}``, each ``{"id": n, "reply": bytes}``
(the runner's MessagePack reply, unread until ``task.load_reply``) or
``{"id": n, "error": text}`` (Ray's own failure: the worker died, the runtime
env could not be set up, no node can ever run it, ...).

On Ray, an electron is one task of :func:`run_on_ray`, whose arguments are the runner's
task with the small blobs (function and inputs) packed in one pickle, then the large
ones: blobs of ``PUT_BYTES`` or more go to Ray's object store once (``ray.put``) and are
shared by the tasks that run with them meanwhile. ``ray`` is imported only in the driver
(and on Ray's own workers), never at module level: the plugin, which discovery imports at
every server start, reads this module's wire functions.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import importlib
import json
import logging
import os
import pickle
import socket
import struct
import sys
import tempfile
import time
from collections import deque
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

from covalent._wire import blobs
from covalent.executor import messages
from covalent.executor.runner import run_task

PUT_BYTES = 1 << 20
"""Blobs this large or larger go to the object store once, not inside each task (the
server decides: it sends them apart from the task)."""
REMOTES = 1000
"""Ray options kept ready (``remote_function.options(...)``), by the options' JSON."""
NODES_EVERY = 1.0
"""Seconds between two looks at the cluster's nodes, while tasks run."""

MODULE = "covalent.executor._ray_driver"
_HEADER = struct.Struct("!Q")
log = logging.getLogger("covalent.executor.ray")


# the wire (used by the server side too)


async def read_frame(reader: asyncio.StreamReader) -> bytes | None:
    """The next frame's bytes, or None at the end of the stream."""
    try:
        (size,) = _HEADER.unpack(await reader.readexactly(_HEADER.size))
        return await reader.readexactly(size)
    except (asyncio.IncompleteReadError, ConnectionError):
        return None


async def write_frame(writer: asyncio.StreamWriter, data: bytes) -> None:
    writer.write(_HEADER.pack(len(data)))
    writer.write(data)
    await writer.drain()


def send_frame(sock: socket.socket, data: bytes) -> None:
    """:func:`write_frame` on a blocking socket (before the event loop runs)."""
    sock.sendall(_HEADER.pack(len(data)) + data)


# on a Ray worker


def run_on_ray(packed: bytes, names: list[str], *large: bytes) -> bytes:
    """Run one electron on a Ray worker; return the runner's pickled reply.

    ``packed`` is the pickled ``{"task": payload, "blobs": {digest: bytes}}`` with the
    small blobs; ``large`` are the large ones (Ray has fetched them from the object
    store), named by ``names``.
    """
    message = pickle.loads(packed)
    found: dict[str, bytes] = {**message["blobs"], **dict(zip(names, large, strict=True))}
    reply = run_task(message["task"], lambda name: _function(name, found[name]), found)
    return messages.encode(messages.reply(reply))


@functools.lru_cache(maxsize=64)
def _function(digest: str, data: bytes) -> Any:
    """An electron's function, unpickled once per worker process (a fan-out's tasks
    share it; the digest names the bytes, which only join the key for correctness)."""
    return blobs.loads(data)


# in the driver process


def _ray() -> ModuleType:
    import ray  # not at module level: the server imports this module for the wire

    return ray


def connect(config: dict[str, Any]) -> dict[str, Any]:
    """``ray.init`` for ``config``: the cluster at its address, or a new local instance."""
    ray = _ray()
    common: dict[str, Any] = {"log_to_driver": False, "logging_level": logging.WARNING}
    if config["address"]:
        ray.init(address=config["address"], **common)
    else:
        ray.init(
            num_cpus=config.get("num_cpus") or None,
            object_store_memory=config.get("object_store_memory") or None,
            include_dashboard=False,
            _temp_dir=config["temp_dir"],
            **common,
        )
    return {"nodes": len(_alive_nodes(ray)), "pid": os.getpid()}


def _alive_nodes(ray: ModuleType) -> list[dict[str, float]]:
    """Each living node's total resources."""
    return [dict(n.get("Resources", {})) for n in ray.nodes() if n.get("Alive")]


def local_folders(runtime_env: dict[str, Any]) -> list[str]:
    """The local paths among a runtime_env's ``working_dir`` and ``py_modules``."""
    modules = runtime_env.get("py_modules") or []
    paths = [runtime_env.get("working_dir"), *(modules if isinstance(modules, list) else [])]
    return [p for p in paths if isinstance(p, str) and "://" not in p]


def upload(runtime_env: dict[str, Any]) -> dict[str, Any]:
    """``runtime_env`` with its local folders uploaded to the cluster and named by URI.

    Ray takes local folders only for a whole job (``ray.init``); for one task they must
    be URIs. So they are uploaded the way ``ray.init`` and Ray Client upload a job's
    (with Ray's own functions for it: content-addressed, so each folder is sent once).
    """
    if not local_folders(runtime_env):
        return runtime_env
    working_dir = importlib.import_module("ray._private.runtime_env.working_dir")
    py_modules = importlib.import_module("ray._private.runtime_env.py_modules")
    with tempfile.TemporaryDirectory(prefix="covalent-ray-upload-") as scratch:
        options = {"include_gitignore": True, "scratch_dir": scratch, "logger": log}
        runtime_env = py_modules.upload_py_modules_if_needed(dict(runtime_env), **options)
        runtime_env = working_dir.upload_working_dir_if_needed(runtime_env, **options)
    runtime_env.pop("excludes", None)
    return runtime_env


def request_of(options: dict[str, Any]) -> dict[str, float]:
    """The resources a task with Ray ``options`` asks a node for (Ray's default: 1 CPU)."""
    num_cpus = options.get("num_cpus")
    request = {
        "CPU": 1.0 if num_cpus is None else float(num_cpus),
        "GPU": float(options.get("num_gpus") or 0),
        "memory": float(options.get("memory") or 0),
        **{k: float(v) for k, v in (options.get("resources") or {}).items()},
    }
    return {k: v for k, v in request.items() if v > 0}


def feasible(request: dict[str, float], nodes: list[dict[str, float]]) -> bool:
    """Whether some node has at least ``request`` in total (Ray's "feasible")."""
    return any(all(node.get(k, 0.0) >= v for k, v in request.items()) for node in nodes)


@dataclass
class Running:
    """A task on the cluster: its object ref, the stored blobs it uses, what it asks for."""

    ref: Any
    held: list[str]
    request: dict[str, float]
    infeasible_timeout: float
    since: float = field(default_factory=time.monotonic)


class Driver:
    """Serves the server's requests on one connected Ray driver.

    Only the event loop's thread changes its state; Ray's threads, which see tasks end,
    only queue them (``_ended``) and wake the loop once for all that end meanwhile.
    """

    def __init__(self, ray: ModuleType, writer: asyncio.StreamWriter) -> None:
        self.ray = ray
        self.writer = writer
        self.loop = asyncio.get_running_loop()
        # Through its module's name: run as ``python -m``, this module is ``__main__``,
        # whose functions cloudpickle would send by value, not by reference.
        self.remote = ray.remote(importlib.import_module(MODULE).run_on_ray)
        self.remotes: dict[str, tuple[Any, dict[str, float]]] = {}
        self.running: dict[int, Running] = {}
        self.open: set[int] = set()  # request ids not answered yet
        self.stored: dict[str, list[Any]] = {}  # digest -> [object ref, tasks using it]
        self.outbox: list[dict[str, Any]] = []
        self.flushing: asyncio.Future[None] | None = None
        self.tasks: set[asyncio.Future[None]] = set()
        self._ended: deque[tuple[int, Any]] = deque()
        self._woken = False
        self._watching: asyncio.Future[None] | None = None

    async def serve(self, reader: asyncio.StreamReader) -> None:
        while True:
            frame = await read_frame(reader)
            if frame is None:
                return
            for message in pickle.loads(frame):
                if message["op"] == "stop":
                    return
                if message["op"] == "cancel":
                    self.cancel(message["id"])
                elif message["large"] or self._to_upload(message["options"]):
                    self.open.add(message["id"])
                    self._spawn(self._run_prepared(message))
                else:
                    self.open.add(message["id"])
                    self._submit(message, [], [])

    def _spawn(self, work: Any) -> None:
        task = asyncio.ensure_future(work)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    # answers

    def answer(self, request_id: int, **fields: Any) -> None:
        """Send the one answer to request ``request_id`` (later ones are dropped)."""
        if request_id not in self.open:
            return
        self.open.discard(request_id)
        self.outbox.append({"id": request_id, **fields})
        if self.flushing is None:  # answers that end meanwhile share one frame
            self.flushing = asyncio.ensure_future(self._flush())

    async def _flush(self) -> None:
        try:
            while self.outbox:
                batch, self.outbox = self.outbox, []
                await write_frame(self.writer, messages.encode({"replies": batch}))
        except ConnectionError:
            pass  # the server is gone; serve() sees the end of the stream
        finally:
            self.flushing = None

    # tasks

    async def _run_prepared(self, message: dict[str, Any]) -> None:
        """Submit a task once its large blobs are in the object store and the local
        folders of its runtime_env are uploaded."""
        held: list[str] = []  # digests of the stored blobs this task uses
        try:
            data = [await self._stored(d, b, p, held) for d, b, p in message["large"]]
        except Exception as e:
            self._release(held)
            self.answer(message["id"], error=f"its input could not be stored in Ray ({e})")
            return
        options = message["options"]
        if self._to_upload(options):
            try:  # Ray's uploader in a thread; only the loop's thread keeps its result
                runtime_env = await asyncio.to_thread(upload, options["runtime_env"])
            except Exception as e:
                self._release(held)
                self.answer(
                    message["id"],
                    error=f"its runtime_env's local folders could not be uploaded to Ray "
                    f"({type(e).__name__}: {e})",
                )
                return
            message = {**message, "uploaded": runtime_env}
        self._submit(message, data, held)

    def _submit(self, message: dict[str, Any], large: list[Any], held: list[str]) -> None:
        request_id = message["id"]
        if request_id not in self.open:  # cancelled meanwhile
            self._release(held)
            return
        names = [digest for digest, _data, _path in message["large"]]
        try:
            remote, request = self._remote(message["options"], message.get("uploaded"))
            ref = remote.remote(message["packed"], names, *large)
        except Exception as e:
            self._release(held)
            self.answer(request_id, error=f"Ray did not accept the task ({type(e).__name__}: {e})")
            return
        self.running[request_id] = Running(ref, held, request, message["infeasible_timeout"])
        ref.future().add_done_callback(lambda future: self._end(request_id, future))
        if self._watching is None:
            self._watching = asyncio.ensure_future(self._watch())

    def _remote(
        self, options: dict[str, Any], runtime_env: dict[str, Any] | None = None
    ) -> tuple[Any, dict[str, float]]:
        """``run_on_ray`` with these Ray options, and the resources they ask for (made
        once per options: a fan-out's tasks share them); ``runtime_env``, if given, is
        the options' own with its local folders uploaded."""
        key = json.dumps(options, sort_keys=True)
        made = self.remotes.get(key)
        if made is None:
            if len(self.remotes) >= REMOTES:
                self.remotes.clear()
            ready = {**options, "runtime_env": runtime_env} if runtime_env else options
            made = (self.remote.options(**ready), request_of(options))
            self.remotes[key] = made
        return made

    def _to_upload(self, options: dict[str, Any]) -> bool:
        """Whether these options' runtime_env names local folders not uploaded yet."""
        runtime_env = options.get("runtime_env") or {}
        return bool(local_folders(runtime_env)) and (
            json.dumps(options, sort_keys=True) not in self.remotes
        )

    def _end(self, request_id: int, future: Any) -> None:
        """In a Ray thread: queue the ended task; wake the loop once for all that end."""
        self._ended.append((request_id, future))
        if not self._woken:
            self._woken = True
            self.loop.call_soon_threadsafe(self._settle_ended)

    def _settle_ended(self) -> None:
        self._woken = False
        while self._ended:
            request_id, future = self._ended.popleft()
            running = self.running.pop(request_id, None)
            if running is not None:
                self._release(running.held)
            error = future.exception()
            if error is None:
                self.answer(request_id, reply=future.result())
            else:
                self.answer(request_id, error=self._failure(error))

    def cancel(self, request_id: int) -> None:
        """Stop the task: ``ray.cancel(force=True)`` ends the worker process running it."""
        running = self.running.get(request_id)
        self.answer(request_id, error="Cancelled.")
        if running is not None:
            with contextlib.suppress(Exception):
                self.ray.cancel(running.ref, force=True)

    def _failure(self, error: BaseException) -> str:
        exceptions = self.ray.exceptions
        if isinstance(error, exceptions.WorkerCrashedError):
            return f"the Ray worker process running it died ({error})"
        if isinstance(error, exceptions.RuntimeEnvSetupError):
            return f"Ray could not set up its runtime_env ({error})"
        return f"{type(error).__name__}: {error}"

    async def _stored(
        self, digest: str, data: bytes | None, path: str | None, held: list[str]
    ) -> Any:
        """The object ref of a large blob, put in the object store once while tasks use
        it (its digest goes into ``held``, to be released when the task ends)."""
        stored = self.stored.get(digest)
        if stored is None:
            if data is None:
                assert path is not None
                data = await asyncio.to_thread(_read, path)
            ref = await asyncio.to_thread(self.ray.put, data)
            stored = self.stored.setdefault(digest, [ref, 0])  # another task may have put it
        stored[1] += 1
        held.append(digest)
        return stored[0]

    def _release(self, names: list[str]) -> None:
        for digest in names:
            stored = self.stored.get(digest)
            if stored is not None:
                stored[1] -= 1
                if stored[1] <= 0:
                    del self.stored[digest]

    # tasks no node can run

    async def _watch(self) -> None:
        """While tasks run: fail each task that no node of the cluster can ever run
        (Ray would keep it pending as infeasible forever) once it has waited its
        ``infeasible_timeout`` for such a node to join (an autoscaler's)."""
        try:
            while self.running:
                await asyncio.sleep(NODES_EVERY)
                if not any(r.request for r in self.running.values()):
                    continue
                nodes = await asyncio.to_thread(_alive_nodes, self.ray)
                now, fits = time.monotonic(), {}
                for request_id, running in list(self.running.items()):
                    key = tuple(sorted(running.request.items()))
                    if key not in fits:  # once per distinct request, not per task
                        fits[key] = feasible(running.request, nodes)
                    if fits[key]:
                        running.since = now
                    elif now - running.since >= running.infeasible_timeout:
                        self._infeasible(request_id, running, nodes)
        except Exception as e:  # the node list is unknown: let the tasks wait
            log.warning("Could not list the Ray cluster's nodes: %s", e)
        finally:
            self._watching = None

    def _infeasible(self, request_id: int, running: Running, nodes: list[dict[str, float]]) -> None:
        offer = "; ".join(json.dumps(node, sort_keys=True) for node in nodes) or "nothing"
        self.answer(
            request_id,
            error=(
                f"no node of the Ray cluster can run it: it asks for "
                f"{json.dumps(running.request, sort_keys=True)}, and the nodes have {offer} "
                f"in total, so Ray keeps it pending as infeasible; it was cancelled after "
                f"{running.infeasible_timeout:g} s (the executor's infeasible_timeout)"
            ),
        )
        self.cancel(request_id)


def _read(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


async def _serve(sock: socket.socket, ray: ModuleType) -> None:
    reader, writer = await asyncio.open_connection(sock=sock)
    driver = Driver(ray, writer)
    try:
        await driver.serve(reader)
    finally:
        for request_id in list(driver.running):
            driver.cancel(request_id)
        writer.close()


def main(argv: list[str] | None = None) -> int:
    """Connect to Ray as ``CONFIG`` says, then serve the socket with file descriptor ``FD``."""
    fd, config = (sys.argv[1:] if argv is None else argv)[:2]
    sock = socket.socket(fileno=int(fd))
    try:
        ready = {"op": "ready", **connect(json.loads(config))}
    except BaseException as e:  # also SystemExit: ray.init may exit the process
        send_frame(sock, messages.encode({"op": "failed", "error": f"{type(e).__name__}: {e}"}))
        return 1
    ray = _ray()
    try:
        send_frame(sock, messages.encode(ready))
        asyncio.run(_serve(sock, ray))
    except (ConnectionError, KeyboardInterrupt):
        pass
    finally:
        ray.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
