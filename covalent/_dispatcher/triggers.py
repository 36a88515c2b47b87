"""The trigger manager: dispatches a lattice again on file-system events or on a clock.

A lattice dispatched with ``triggers=`` carries them in its manifest as JSON specs
(``covalent/_wire/triggers.py``). Once its dispatch is stored, :meth:`TriggerManager.add`
stores one row per trigger (``covalent/_store/triggers.py``) and arms it:

- a ``time`` trigger is an asyncio task on the dispatcher's loop that fires every
  ``time_gap`` seconds, the first time ``time_gap`` after it was added;
- a ``dir`` trigger is a watchdog observer on the folder; its thread hands each event
  whose type was asked for to the loop, which fires once per ``batch_size`` of them;
- a ``database`` trigger is an asyncio task that reads the matching rows every
  ``poll_interval`` seconds (in a thread: the driver blocks) and fires when they differ
  from the previous read (the first read, when armed, is the baseline).

Firing re-submits the original dispatch's stored manifest, whose blobs are all stored
already, as a new top-level dispatch, and records the firing. Everything but the
watchdog threads runs on the loop, so a trigger stopped by a request fires no more once
that request is answered. Active triggers are re-armed when the server starts: events
while it was down are lost, and a time trigger whose moment passed then fires at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, and_, create_engine, literal_column, select, table, text
from sqlalchemy.exc import NoSuchModuleError
from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer

from covalent._dispatcher.dispatcher import Dispatcher
from covalent._errors import CovalentError, DispatchNotFoundError, WorkflowError
from covalent._store import triggers as stored
from covalent._store.store import Store
from covalent._wire import triggers as specs

log = logging.getLogger("covalent.triggers")

JOIN_TIMEOUT = 5.0
LARGE_FIRING_NODES = 2_000
"""A trigger's dispatch of more electrons than this (a manifest of about 1 MB) is read
and submitted again in threads, not on the event loop."""


def _fields(dispatch_id: str, event: str) -> dict[str, Any]:
    """The structured fields of a log record (see covalent/_server/logs.py)."""
    return {"dispatch_id": dispatch_id, "node_id": None, "event": event}


@dataclass
class Armed:
    """One active trigger in memory: what fires it, and events counted toward a batch."""

    trigger_id: int
    dispatch_id: str
    spec: dict[str, Any]
    task: asyncio.Task[None] | None = None
    observer: Any = None  # a watchdog Observer
    pending: int = 0
    problem: str = ""
    polls: int = 0  # a database trigger's reads so far (the first is its baseline)


class _Forward(FileSystemEventHandler):
    """Runs in watchdog's thread: passes events of the asked-for types to the loop.

    The watched folder's own events are left out: its "modified" ones accompany every
    change inside it (a trigger on "modified" fires for what changed, not for the folder
    too), and its deletion leaves the trigger unarmed until the next server start.
    """

    def __init__(self, manager: TriggerManager, armed: Armed) -> None:
        self.manager, self.trigger_id = manager, armed.trigger_id
        self.names = frozenset(armed.spec["event_names"])
        self.root = os.path.normpath(armed.spec["dir_path"])

    def on_any_event(self, event: FileSystemEvent) -> None:
        if event.is_directory and os.path.normpath(os.fsdecode(event.src_path)) == self.root:
            if event.event_type == "deleted":
                self.manager.notify(self.trigger_id, self.manager.folder_gone)
        elif event.event_type in self.names:
            self.manager.notify(self.trigger_id, self.manager.event)


class TriggerManager:
    """Owns every armed trigger of one server; its methods run on the dispatcher's loop."""

    def __init__(self, store: Store, dispatcher: Dispatcher) -> None:
        self.store = store
        self.dispatcher = dispatcher
        self.armed: dict[int, Armed] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._firing: dict[asyncio.Future[None], int] = {}  # large firings: trigger ids
        self._stopping = False

    # lifecycle

    async def start(self) -> None:
        """Re-arm every active trigger in the store."""
        self._loop = asyncio.get_running_loop()
        for row in stored.listing(self.store, active=True):
            self._arm(Armed(row["trigger_id"], row["dispatch_id"], row["spec"]), row)

    async def stop(self) -> None:
        """Disarm everything (the store keeps them active for the next start); a large
        firing under way is stopped (a dispatch it was storing is stored whole or not)."""
        self._stopping = True
        for firing in list(self._firing):
            firing.cancel()
        observers = [self._disarm(trigger_id) for trigger_id in list(self.armed)]
        await asyncio.to_thread(_join, [o for o in observers if o is not None])

    # requests

    def check(self, manifest: Any) -> list[dict[str, Any]]:
        """The checked trigger specs of a submitted manifest; a WorkflowError if one is bad."""
        raw = manifest.get("triggers") if isinstance(manifest, dict) else None
        if raw is None:
            return []
        if not isinstance(raw, list):
            raise WorkflowError("The manifest's 'triggers' must be a list of trigger specs.")
        checked = [specs.check(spec) for spec in raw]
        for spec in checked:
            if spec["kind"] == "dir" and not os.path.isdir(spec["dir_path"]):
                raise WorkflowError(
                    f"DirTrigger cannot watch '{spec['dir_path']}': no such folder on the "
                    "server's machine; create it first or correct dir_path."
                )
            if spec["kind"] == "database":
                _engine(spec).dispose()
        return checked

    def add(self, dispatch_id: str, checked: list[dict[str, Any]]) -> list[int]:
        """Store and arm the triggers of a dispatch (just submitted, or registered to it
        later); return their ids."""
        if not checked:
            return []
        now = time.time()
        ids = stored.add(self.store, dispatch_id, checked, now)
        for trigger_id, spec in zip(ids, checked, strict=True):
            self._arm(Armed(trigger_id, dispatch_id, spec), {"created_at": now})
        return ids

    def stop_dispatches(self, dispatch_ids: list[str]) -> list[int]:
        """Stop every trigger of these dispatches; return the ids of those stopped."""
        for dispatch_id in dispatch_ids:
            if self.store.get_dispatch(dispatch_id) is None:
                raise DispatchNotFoundError(dispatch_id)
        stopped = stored.stop(self.store, dispatch_ids, time.time())
        for trigger_id in stopped:
            observer = self._disarm(trigger_id)
            if observer is not None:  # its thread ends on its own; no need to wait
                observer.stop()
        for firing, trigger_id in list(self._firing.items()):
            if trigger_id in stopped:  # a large firing under way makes no dispatch now
                firing.cancel()
        for dispatch_id in dispatch_ids:
            log.info("triggers stopped", extra=_fields(dispatch_id, "triggers.stopped"))
        return stopped

    def listing(self, dispatch_id: str | None = None, active: bool | None = None) -> list[Any]:
        """Stored triggers, with whether each is armed here and why not if it is not."""
        rows = stored.listing(self.store, dispatch_id, active)
        for row in rows:
            armed = self.armed.get(row["trigger_id"])
            row["armed"] = armed is not None and not armed.problem
            row["problem"] = armed.problem if armed is not None else ""
            row["polls"] = armed.polls if armed is not None else 0
            row["spec"] = specs.shown(row["spec"])
        return rows

    # arming

    def _arm(self, armed: Armed, row: dict[str, Any]) -> None:
        self.armed[armed.trigger_id] = armed
        try:
            if armed.spec["kind"] == "time":
                last = row.get("last_fired_at") or row["created_at"]
                armed.task = asyncio.create_task(self._tick(armed, last))
            elif armed.spec["kind"] == "database":
                armed.task = asyncio.create_task(self._poll(armed, _engine(armed.spec)))
            else:
                armed.observer = self._observe(armed)
        except Exception as e:  # a folder gone since, no inotify watches left, ...
            armed.problem = f"{type(e).__name__}: {e}"
            info = _fields(armed.dispatch_id, "trigger.unarmed")
            log.warning("trigger %d not armed: %s", armed.trigger_id, armed.problem, extra=info)
            return
        info = _fields(armed.dispatch_id, "trigger.armed")
        log.info("trigger %d armed: %s", armed.trigger_id, specs.shown(armed.spec), extra=info)

    def _observe(self, armed: Armed) -> Any:
        spec = armed.spec
        if not os.path.isdir(spec["dir_path"]):
            raise FileNotFoundError(f"no folder '{spec['dir_path']}'")
        observer = Observer()
        handler = _Forward(self, armed)
        observer.schedule(handler, spec["dir_path"], recursive=spec["recursive"])
        observer.start()
        return observer

    def _disarm(self, trigger_id: int) -> Any:
        """Forget a trigger; return its observer (still to be stopped), if it has one."""
        armed = self.armed.pop(trigger_id, None)
        if armed is None:
            return None
        if armed.task is not None:
            armed.task.cancel()
        return armed.observer

    async def _tick(self, armed: Armed, last: float) -> None:
        """Fire every ``time_gap`` seconds after ``last``; a missed moment fires once at once."""
        gap = float(armed.spec["time_gap"])
        next_at = last + gap
        while True:
            await asyncio.sleep(max(0.0, next_at - time.time()))
            self._fire_safely(armed.trigger_id)
            next_at += gap
            if next_at < time.time():  # the loop was held up: skip, do not catch up
                next_at = time.time() + gap

    async def _poll(self, armed: Armed, engine: Engine) -> None:
        """Read the rows every ``poll_interval`` seconds; fire when they changed."""
        spec = armed.spec
        last: tuple[int, str] | None = None
        try:
            while True:
                now = await self._read(armed, engine)
                if now is not None:
                    changed = last is not None and now != last
                    if changed and now[0] >= int(spec["trigger_after_n"]):
                        self._fire_safely(armed.trigger_id)
                    last = now
                armed.polls += 1
                await asyncio.sleep(float(spec["poll_interval"]))
        finally:
            await asyncio.to_thread(engine.dispose)

    async def _read(self, armed: Armed, engine: Engine) -> tuple[int, str] | None:
        """The rows' count and digest, or None (with the trigger's problem set) on error."""
        try:
            now = await asyncio.to_thread(_rows_state, engine, armed.spec)
        except Exception as e:  # a table gone, a database down: report, keep polling
            problem = f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
            if problem != armed.problem:
                info = _fields(armed.dispatch_id, "trigger.unarmed")
                log.warning("trigger %d cannot read: %s", armed.trigger_id, problem, extra=info)
            armed.problem = problem
            return None
        armed.problem = ""
        return now

    def notify(self, trigger_id: int, handle: Callable[[int], None]) -> None:
        """From watchdog's thread: have ``handle(trigger_id)`` run on the loop."""
        loop = self._loop
        if loop is None:
            return
        with contextlib.suppress(RuntimeError):  # the loop closed: the server is stopping
            loop.call_soon_threadsafe(handle, trigger_id)

    def event(self, trigger_id: int) -> None:
        """One event of an asked-for type happened: fire once per ``batch_size`` of them."""
        armed = self.armed.get(trigger_id)
        if armed is None:
            return
        armed.pending += 1
        if armed.pending >= int(armed.spec.get("batch_size", 1)):
            armed.pending = 0
            self._fire_safely(trigger_id)

    def folder_gone(self, trigger_id: int) -> None:
        armed = self.armed.get(trigger_id)
        if armed is None:
            return
        armed.problem = "its folder was deleted; it is armed again at the next server start"
        info = _fields(armed.dispatch_id, "trigger.unarmed")
        log.warning("trigger %d not armed: %s", trigger_id, armed.problem, extra=info)

    # firing

    def _fire_safely(self, trigger_id: int) -> None:
        try:
            self._fire(trigger_id)
        except Exception:  # a bug or a database error must not disarm the trigger
            log.exception("trigger %d failed to fire", trigger_id)

    def _fire(self, trigger_id: int) -> None:
        armed = self.armed.get(trigger_id)
        if armed is None:  # stopped while the event was on its way
            return
        row = self.store.get_dispatch(armed.dispatch_id)  # without its manifest
        if row is None:
            self._forget_deleted(armed)
            return
        if row["node_count"] > LARGE_FIRING_NODES:
            firing = asyncio.ensure_future(self._fire_large(trigger_id, armed))
            self._firing[firing] = trigger_id
            firing.add_done_callback(self._firing.pop)
            return
        source = self.store.get_dispatch(armed.dispatch_id, with_manifest=True)
        if source is None:
            self._forget_deleted(armed)
            return
        try:
            new_id = self.dispatcher.submit(source["manifest"], {})
            stored.record_firing(self.store, trigger_id, new_id, time.time())
        except CovalentError as e:
            self._failed(trigger_id, armed, e)
            return
        self._fired(trigger_id, armed, new_id)

    async def _fire_large(self, trigger_id: int, armed: Armed) -> None:
        """:meth:`_fire` for a large dispatch: its manifest read and the new dispatch
        stored in threads (``Dispatcher.submit_in_thread``), while the loop goes on.

        Stopping the trigger meanwhile cancels this: before the new dispatch is being
        stored, nothing is made; after, the new dispatch is cancelled as it joins. The
        firing is recorded once the dispatch is stored, even if this was cancelled (the
        server stopping: the dispatch resumes at the next start)."""
        try:
            source = await asyncio.to_thread(self.store.get_dispatch, armed.dispatch_id, True)
            if source is None:
                self._forget_deleted(armed)
                return
            if self.armed.get(trigger_id) is not armed:  # stopped while it was read
                return

            def made(new_id: str) -> None:
                stored.record_firing(self.store, trigger_id, new_id, time.time())
                if self.armed.get(trigger_id) is not armed and not self._stopping:
                    self.dispatcher.cancel(new_id)  # the trigger was stopped meanwhile
                self._fired(trigger_id, armed, new_id)

            await self.dispatcher.submit_in_thread(source["manifest"], {}, stored=made)
        except CovalentError as e:
            self._failed(trigger_id, armed, e)
        except Exception:  # a bug or a database error must not disarm the trigger
            log.exception("trigger %d failed to fire", trigger_id)

    @staticmethod
    def _failed(trigger_id: int, armed: Armed, error: CovalentError) -> None:
        info = _fields(armed.dispatch_id, "trigger.failed")
        log.warning("trigger %d could not dispatch: %s", trigger_id, error, extra=info)

    @staticmethod
    def _fired(trigger_id: int, armed: Armed, new_id: str) -> None:
        info = _fields(new_id, "trigger.fired")
        log.info("trigger %d of %s fired", trigger_id, armed.dispatch_id, extra=info)

    def _forget_deleted(self, armed: Armed) -> None:
        stored.stop(self.store, [armed.dispatch_id], time.time())
        observer = self._disarm(armed.trigger_id)
        if observer is not None:
            observer.stop()
        info = _fields(armed.dispatch_id, "triggers.stopped")
        log.warning("dispatch deleted: its triggers are stopped", extra=info)


def _engine(spec: dict[str, Any]) -> Engine:
    """The engine of a database trigger (made without connecting); a WorkflowError if
    SQLAlchemy knows no such database or its driver is not installed on this machine."""
    try:
        return create_engine(spec["db_url"])
    except (ImportError, NoSuchModuleError) as e:
        raise WorkflowError(
            f"DatabaseTrigger cannot read {specs.shown(spec)['db_url']} from the server's "
            f"machine ({type(e).__name__}: {e}); install that database's driver there, or "
            "correct db_path."
        ) from None


def _rows_state(engine: Engine, spec: dict[str, Any]) -> tuple[int, str]:
    """How many rows match a database trigger's spec, and a digest of them (in a stable
    order, whatever order the database returns them in)."""
    schema, _, name = spec["table_name"].rpartition(".")
    query: Any = select(literal_column("*")).select_from(table(name, schema=schema or None))
    if spec["where_clauses"]:
        query = query.where(and_(*(text(c) for c in spec["where_clauses"])))
    with engine.connect() as conn:
        rows = sorted(repr(tuple(row)) for row in conn.execute(query))
    digest = hashlib.sha256("\n".join(rows).encode()).hexdigest()
    return len(rows), digest


def _join(observers: list[Any]) -> None:
    for observer in observers:
        observer.stop()
    for observer in observers:
        observer.join(JOIN_TIMEOUT)
