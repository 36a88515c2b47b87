"""Calling a run executor in a worker process, as Covalent's plugins expect.

For a task whose payload names a plugin, the runner rebuilds that executor from its
settings (:func:`covalent.executor.plugins.for_worker`), and this module calls, on that
one instance, ``setup(task_metadata)``, ``run(function, args, kwargs, task_metadata)``
and ``teardown(task_metadata)`` (each awaited when it is a coroutine, in one event
loop). ``function`` is the electron wrapped for a far side
(:func:`covalent.executor.wrapper.electron_callable`) and the arguments are
TransportableObjects of the task's blobs. What ``run`` returns, usually the wrapper's
:class:`~covalent.executor.wrapper.ElectronOutput`, becomes the node's output, and an
exception the electron raised far away comes back with its own traceback.
"""

from __future__ import annotations

import asyncio
import inspect
import os
from collections.abc import Callable
from typing import Any

from covalent._wire import blobs
from covalent._wire.transport import TransportableObject
from covalent.executor.base import BaseExecutor
from covalent.executor.wrapper import ElectronOutput, electron_callable, far_side_of

Values = Callable[[str], Any]


def task_metadata(task: dict[str, Any]) -> dict[str, Any]:
    """``dispatch_id``, ``node_id`` and ``results_dir``: the root results folder, as in
    Covalent (the dispatch's own folder is ``results_dir/dispatch_id``)."""
    context = task["context"]
    folder = str(context.get("results_dir") or "")
    root = os.path.dirname(folder) if os.path.basename(folder) == context["dispatch_id"] else folder
    return {
        "dispatch_id": context["dispatch_id"],
        "node_id": context["node_id"],
        "node_name": context.get("node_name", ""),
        "results_dir": root,
    }


def arguments(
    task: dict[str, Any], values: dict[str, Any]
) -> tuple[list[TransportableObject], dict[str, TransportableObject]]:
    """The task's inputs as TransportableObjects of their blobs (composites assembled)."""

    def wrap(digest: str) -> TransportableObject:
        data = values[digest]
        if bytes(data[: len(blobs.COMPOSITE)]) == blobs.COMPOSITE:
            return TransportableObject(blobs.load_value(digest, values.__getitem__))
        return TransportableObject.from_bytes(bytes(data))

    return [wrap(d) for d in task["args"]], {k: wrap(d) for k, d in task["kwargs"].items()}


def callable_for(
    task: dict[str, Any], function_bytes: Callable[[str], bytes], values: dict[str, Any]
) -> Any:
    extras = bytes(values[task["extras"]]) if task.get("extras") else None
    context = {k: task["context"][k] for k in ("dispatch_id", "node_id", "node_name")}
    context["results_dir"] = task["context"].get("results_dir")
    name = str(task["context"].get("node_name", ""))
    return electron_callable(function_bytes(task["function"]), extras, context, name)


def call(
    executor: BaseExecutor,
    function: Any,
    args: list[Any],
    kwargs: dict[str, Any],
    metadata: dict[str, Any],
) -> Any:
    """``setup``, ``run`` and ``teardown`` (always, once ``setup`` succeeded)."""
    loop: asyncio.AbstractEventLoop | None = None

    def settle(value: Any) -> Any:
        nonlocal loop
        if not inspect.isawaitable(value):
            return value
        loop = loop or asyncio.new_event_loop()
        return loop.run_until_complete(_await(value))

    try:
        settle(_hook(executor, "setup", metadata))
        try:
            return settle(executor.run(function, args, kwargs, metadata))
        finally:
            settle(_hook(executor, "teardown", metadata))
    finally:
        if loop is not None:
            loop.close()


async def _await(awaitable: Any) -> Any:
    return await awaitable


def _hook(executor: BaseExecutor, name: str, metadata: dict[str, Any]) -> Any:
    """A per-task hook the executor's class defines (not the base's), with
    ``task_metadata`` if it takes an argument."""
    method = getattr(type(executor), name, None)
    if method is None or method is getattr(BaseExecutor, name):
        return None
    bound = getattr(executor, name)
    takes = [
        p
        for p in inspect.signature(bound).parameters.values()
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) and p.default is p.empty
    ]
    return bound(metadata) if takes else bound()


def output_of(result: Any) -> tuple[bytes | None, Any, str, str, str]:
    """``(pickled output or None, value, repr, stdout, stderr)`` of what ``run`` returned:
    the wrapper's ElectronOutput, a TransportableObject, or a plain value."""
    if isinstance(result, ElectronOutput):
        data = result.output.pickled()
        return data, None, result.output.object_string, result.stdout, result.stderr
    if isinstance(result, TransportableObject):
        return result.pickled(), None, result.object_string, "", ""
    return None, result, blobs.short_repr(result), "", ""


def error_of(error: BaseException, executor: Any) -> tuple[str, str, str] | None:
    """``(traceback text, stdout, stderr)`` of an electron that failed far away, from
    what the wrapper attached to its exception; None if there is none."""
    found = far_side_of(error)
    if found is None:
        return None
    far: dict[str, str] = found
    text = str(far.get("traceback", ""))
    if getattr(error, "covalent_far_side", None) is not found:  # the plugin wrapped it
        text += f"\n(reported by {type(executor).__name__} as {type(error).__name__})\n"
    return text, far.get("stdout", ""), far.get("stderr", "")
