"""The Ray driver: a process of its own between the covalent server and one Ray cluster.

Why a process: Ray allows one driver per process (``ray.init`` is global), so a server
that uses its own local instance and an existing cluster needs two; a driver that loses
its cluster may end its process; and Ray's import, threads and signal handlers stay out
of the server. ``RayExecutor`` (``executor_plugins/ray.py``) starts it as
``python -m covalent.executor._ray_driver FD CONFIG`` with one end of a socket pair (file
descriptor FD) and a JSON config (the address, or the local instance's settings, and
``pack_seconds``). The driver connects (``ray.init``), says ``{"op": "ready", ...}`` or
``{"op": "failed", "error": ...}``, serves requests until the socket closes or ``stop``
comes, and then calls ``ray.shutdown()``, which also stops the local instance when it
started one (Ray ties that instance's processes to this one, so they die with it in any
case).

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
shared by the tasks that run with them meanwhile. Or, when many alike electrons come
together, several are one task of :func:`run_pack_on_ray` (a pack: see :class:`Driver`).
``ray`` is imported only in the driver
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
PACK_MAX = 32
"""Electrons one Ray task runs at most, one after the other (a pack)."""
PACK_SECONDS = 0.1
"""Seconds after its first electron after which a pack's worker starts no further one: it
returns the replies it has, and the driver submits the rest one Ray task each (the
server passes it in the driver's config)."""
SLOW_FORGET = 60.0
"""Seconds for which electrons of which one (not a pack's first) alone ran past
``PACK_SECONDS`` are not packed."""

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


def run_pack_on_ray(packed: list[bytes], budget: float) -> list[bytes]:
    """Run a pack of electrons one after the other on a Ray worker; return their replies
    in order: all of them, or fewer once ``budget`` seconds have passed since the first
    ended (the driver runs the rest apart; the first's time may be a cold start, an
    import the others share). Each is :func:`run_on_ray`'s, with its own output, stdout,
    stderr, context and times."""
    replies = [run_on_ray(packed[0], [])]
    start = time.monotonic()
    for message in packed[1:]:
        replies.append(run_on_ray(message, []))
        if time.monotonic() - start >= budget:
            break
    return replies


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


def slots(request: dict[str, float], nodes: list[dict[str, float]]) -> int:
    """How many tasks asking for ``request`` (not empty) the nodes run at once (1 at least)."""
    at_once = sum(int(min(node.get(k, 0.0) / v for k, v in request.items())) for node in nodes)
    return max(at_once, 1)


def pack_size(ready: int, at_once: int) -> int:
    """Electrons per pack when ``ready`` alike ones come together and the cluster runs
    ``at_once`` of them at a time: only what the other slots could not take anyway (as
    the local pool batches), at most ``PACK_MAX``."""
    return 1 + min(PACK_MAX - 1, (ready - 1) // max(at_once, 1))


def packable(options: dict[str, Any]) -> bool:
    """Whether electrons with these Ray options may share a Ray task: they ask for CPUs
    (and memory) only: no GPUs, custom resources or runtime_env."""
    return (
        not options.get("num_gpus")
        and not options.get("resources")
        and not options.get("runtime_env")
        and request_of(options).get("CPU", 0.0) > 0
    )


@dataclass(eq=False)
class Running:
    """A Ray task on the cluster: its object ref, the ``run`` requests it runs (one, or
    a pack's), the stored blobs it uses, what it asks for."""

    ref: Any
    members: list[dict[str, Any]]
    held: list[str]
    request: dict[str, float]
    infeasible_timeout: float
    since: float = field(default_factory=time.monotonic)
    active: bool = True  # False once its end no longer matters (a pack cancelled)

    @property
    def packed(self) -> bool:
        return len(self.members) > 1


class Driver:
    """Serves the server's requests on one connected Ray driver.

    Only the event loop's thread changes its state; Ray's threads, which see tasks end,
    only queue them (``_ended``) and wake the loop once for all that end meanwhile.

    Packs: ``run`` requests that come together with the same Ray options, which ask
    only for CPUs (:func:`packable`), and that the server lets be packed (``pack``),
    run ``pack_size`` to a Ray task (:func:`run_pack_on_ray`), as many as the cluster
    could not start at once anyway. Each keeps its own answer. Cancelling one ends its
    pack's Ray task (``ray.cancel(force=True)``) and submits the others not answered
    yet one Ray task each; a pack that fails (its worker died) does the same, so that
    only the electron that killed it fails; a pack that runs past ``PACK_SECONDS``
    after its first electron returns early, its rest submitted one Ray task each; if
    its second electron alone took that long, those options are not packed for
    ``SLOW_FORGET`` seconds.
    """

    def __init__(
        self, ray: ModuleType, writer: asyncio.StreamWriter, pack_seconds: float = PACK_SECONDS
    ) -> None:
        self.ray = ray
        self.pack_seconds = pack_seconds
        self.writer = writer
        self.loop = asyncio.get_running_loop()
        # Through its module's name: run as ``python -m``, this module is ``__main__``,
        # whose functions cloudpickle would send by value, not by reference.
        module = importlib.import_module(MODULE)
        self.remote = ray.remote(module.run_on_ray)
        self.pack_remote = ray.remote(module.run_pack_on_ray)
        self.remotes: dict[tuple[str, bool], tuple[Any, dict[str, float]]] = {}
        self.running: dict[int, Running] = {}  # by request id (a pack's under each)
        self.open: set[int] = set()  # request ids not answered yet
        self.stored: dict[str, list[Any]] = {}  # digest -> [object ref, tasks using it]
        self.slow: dict[str, float] = {}  # options' JSON -> when a pack of them ran long
        self.nodes: list[dict[str, float]] = []  # each node's resources, as last seen
        self.outbox: list[dict[str, Any]] = []
        self.flushing: asyncio.Future[None] | None = None
        self.tasks: set[asyncio.Future[None]] = set()
        self._ended: deque[tuple[Running, Any]] = deque()
        self._woken = False
        self._watching: asyncio.Future[None] | None = None

    async def serve(self, reader: asyncio.StreamReader) -> None:
        with contextlib.suppress(Exception):  # unknown: packs as if one slot
            self.nodes = await asyncio.to_thread(_alive_nodes, self.ray)
        while True:
            frame = await read_frame(reader)
            if frame is None:
                return
            runs: list[dict[str, Any]] = []
            for message in pickle.loads(frame):
                if message["op"] == "stop":
                    return
                if message["op"] == "cancel":
                    self._start(runs)  # a cancel after its run in the same frame
                    runs = []
                    self.cancel(message["id"])
                else:
                    self.open.add(message["id"])
                    runs.append(message)
            self._start(runs)

    def _start(self, runs: list[dict[str, Any]]) -> None:
        """Submit ``run`` requests that came together: alike packable ones in packs."""
        alike: dict[str, list[dict[str, Any]]] = {}
        for message in runs:
            key = self._pack_key(message)
            if key is not None:
                alike.setdefault(key, []).append(message)
            elif message["large"] or self._to_upload(message["options"]):
                self._spawn(self._run_prepared(message))
            else:
                self._submit(message, [], [])
        for members in alike.values():
            size = pack_size(len(members), slots(request_of(members[0]["options"]), self.nodes))
            for first in range(0, len(members), size):
                chunk = members[first : first + size]
                if len(chunk) == 1:
                    self._submit(chunk[0], [], [])
                else:
                    self._submit_pack(chunk)

    def _pack_key(self, message: dict[str, Any]) -> str | None:
        """The options' JSON if this request may go in a pack, else None."""
        if not message.get("pack") or message["large"] or not packable(message["options"]):
            return None
        key = json.dumps(message["options"], sort_keys=True)
        since = self.slow.get(key)
        if since is not None:
            if time.monotonic() - since < SLOW_FORGET:
                return None
            del self.slow[key]
        return key

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
        self._track(Running(ref, [message], held, request, message["infeasible_timeout"]))

    def _submit_pack(self, members: list[dict[str, Any]]) -> None:
        first = members[0]
        try:
            remote, request = self._remote(first["options"], pack=True)
            ref = remote.remote([m["packed"] for m in members], self.pack_seconds)
        except Exception:
            log.exception("A pack of %d electrons was not accepted by Ray", len(members))
            self._apart(members)  # each then fails (or not) on its own
            return
        self._track(Running(ref, members, [], request, first["infeasible_timeout"]))

    def _apart(self, members: list[dict[str, Any]]) -> None:
        """Submit the members of a pack not answered yet one Ray task each."""
        for message in members:
            self._submit(message, [], [])

    def _track(self, running: Running) -> None:
        for message in running.members:
            self.running[message["id"]] = running
        running.ref.future().add_done_callback(lambda future: self._end(running, future))
        if self._watching is None:
            self._watching = asyncio.ensure_future(self._watch())

    def _untrack(self, running: Running) -> None:
        running.active = False
        for message in running.members:
            if self.running.get(message["id"]) is running:
                del self.running[message["id"]]
        self._release(running.held)

    def _remote(
        self, options: dict[str, Any], runtime_env: dict[str, Any] | None = None, pack: bool = False
    ) -> tuple[Any, dict[str, float]]:
        """``run_on_ray`` (``run_pack_on_ray`` with ``pack``) with these Ray options, and
        the resources they ask for (made once per options: a fan-out's tasks share
        them); ``runtime_env``, if given, is the options' own with its local folders
        uploaded."""
        key = (json.dumps(options, sort_keys=True), pack)
        made = self.remotes.get(key)
        if made is None:
            if len(self.remotes) >= REMOTES:
                self.remotes.clear()
            ready = {**options, "runtime_env": runtime_env} if runtime_env else options
            function = self.pack_remote if pack else self.remote
            made = (function.options(**ready), request_of(options))
            self.remotes[key] = made
        return made

    def _to_upload(self, options: dict[str, Any]) -> bool:
        """Whether these options' runtime_env names local folders not uploaded yet."""
        runtime_env = options.get("runtime_env") or {}
        return bool(local_folders(runtime_env)) and (
            (json.dumps(options, sort_keys=True), False) not in self.remotes
        )

    def _end(self, running: Running, future: Any) -> None:
        """In a Ray thread: queue the ended task; wake the loop once for all that end."""
        self._ended.append((running, future))
        if not self._woken:
            self._woken = True
            self.loop.call_soon_threadsafe(self._settle_ended)

    def _settle_ended(self) -> None:
        self._woken = False
        while self._ended:
            running, future = self._ended.popleft()
            if not running.active:
                continue
            self._untrack(running)
            error = future.exception()
            if not running.packed:
                request_id = running.members[0]["id"]
                if error is None:
                    self.answer(request_id, reply=future.result())
                else:
                    self.answer(request_id, error=self._failure(error))
            elif error is not None:  # its worker died: run each apart, the culprit fails alone
                log.info("A pack of %d electrons failed (%s)", len(running.members), error)
                self._apart(running.members)
            else:
                self._settle_pack(running, future.result())

    def _settle_pack(self, running: Running, replies: list[bytes]) -> None:
        for message, reply in zip(running.members, replies, strict=False):
            self.answer(message["id"], reply=reply)
        rest = running.members[len(replies) :]
        if rest and len(replies) == 2:  # its second alone ran past the budget: not brief
            self.slow[json.dumps(rest[0]["options"], sort_keys=True)] = time.monotonic()
        self._apart(rest)

    def cancel(self, request_id: int) -> None:
        """Stop the task: ``ray.cancel(force=True)`` ends the worker process running it
        (and, for a pack, its other members, which go on one Ray task each)."""
        running = self.running.get(request_id)
        self.answer(request_id, error="Cancelled.")
        if running is None:
            return
        if running.packed:
            self._untrack(running)
            # Once this frame's other cancels are answered (a whole dispatch's, perhaps):
            # the members left then, not this one, go on one Ray task each.
            self.loop.call_soon(self._apart, running.members)
        with contextlib.suppress(Exception):
            self.ray.cancel(running.ref, force=True)

    def stop_all(self) -> None:
        """Cancel every task on the cluster (the server is gone)."""
        for running in {id(r): r for r in self.running.values()}.values():
            self._untrack(running)
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
                self.nodes = nodes = await asyncio.to_thread(_alive_nodes, self.ray)
                now, fits = time.monotonic(), {}
                for running in {id(r): r for r in self.running.values()}.values():
                    key = tuple(sorted(running.request.items()))
                    if key not in fits:  # once per distinct request, not per task
                        fits[key] = feasible(running.request, nodes)
                    if fits[key]:
                        running.since = now
                    elif now - running.since >= running.infeasible_timeout:
                        self._infeasible(running, nodes)
        except Exception as e:  # the node list is unknown: let the tasks wait
            log.warning("Could not list the Ray cluster's nodes: %s", e)
        finally:
            self._watching = None

    def _infeasible(self, running: Running, nodes: list[dict[str, float]]) -> None:
        offer = "; ".join(json.dumps(node, sort_keys=True) for node in nodes) or "nothing"
        for message in running.members:
            self.answer(
                message["id"],
                error=(
                    f"no node of the Ray cluster can run it: it asks for "
                    f"{json.dumps(running.request, sort_keys=True)}, and the nodes have "
                    f"{offer} in total, so Ray keeps it pending as infeasible; it was "
                    f"cancelled after {running.infeasible_timeout:g} s (the executor's "
                    "infeasible_timeout)"
                ),
            )
        self._untrack(running)
        with contextlib.suppress(Exception):
            self.ray.cancel(running.ref, force=True)


def _read(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


async def _serve(sock: socket.socket, ray: ModuleType, pack_seconds: float) -> None:
    reader, writer = await asyncio.open_connection(sock=sock)
    driver = Driver(ray, writer, pack_seconds)
    try:
        await driver.serve(reader)
    finally:
        driver.stop_all()
        writer.close()


def main(argv: list[str] | None = None) -> int:
    """Connect to Ray as ``CONFIG`` says, then serve the socket with file descriptor ``FD``."""
    fd, config = (sys.argv[1:] if argv is None else argv)[:2]
    sock = socket.socket(fileno=int(fd))
    settings = json.loads(config)
    try:
        ready = {"op": "ready", **connect(settings)}
    except BaseException as e:  # also SystemExit: ray.init may exit the process
        send_frame(sock, messages.encode({"op": "failed", "error": f"{type(e).__name__}: {e}"}))
        return 1
    ray = _ray()
    try:
        send_frame(sock, messages.encode(ready))
        asyncio.run(_serve(sock, ray, settings.get("pack_seconds", PACK_SECONDS)))
    except (ConnectionError, KeyboardInterrupt):
        pass
    finally:
        ray.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
