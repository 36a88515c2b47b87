"""The electron as a ``run``-path executor receives it: one callable that runs anywhere.

An executor that implements ``run(function, args, kwargs, task_metadata)`` (Covalent's
plugins do) gets ``function`` as ``functools.partial(wrapper_fn, TransportableObject
(the electron's function), extras, context)`` and ``args``/``kwargs`` as
:class:`~covalent._wire.transport.TransportableObject`s. Such a plugin usually pickles
``(function, args, kwargs)``, ships it to another machine and calls
``function(*args, **kwargs)`` there; it may read ``function.args[0].python_version``
first to pick the interpreter. The far side needs only covalent and cloudpickle.

There, :func:`wrapper_fn` does what a local worker does around an electron: the task
context (``ct.get_context()``), the electron's dependencies and hooks (``deps_bash``,
``deps_pip``, file transfers, ``call_before``/``call_after``), and the capture of its
stdout and stderr. It returns an :class:`ElectronOutput` (the output, still pickled, and
the captured streams), which the plugin hands back as ``run``'s result. An exception of
the electron is raised again with :data:`FAR_SIDE` set on it (its traceback as text and
the captured streams), which survives pickling on the way back.
"""

from __future__ import annotations

import contextlib
import functools
import io
import traceback
from dataclasses import dataclass
from typing import Any

from covalent._wire import blobs
from covalent._wire.transport import TransportableObject
from covalent._workflow import deps, transfer
from covalent._workflow.context import TaskContext, reset_context, set_context

FAR_SIDE = "covalent_far_side"
"""The attribute an electron's exception carries back: ``{"traceback", "stdout", "stderr"}``."""


@dataclass
class ElectronOutput:
    """What :func:`wrapper_fn` returns: the electron's output (pickled) and its streams."""

    output: TransportableObject
    stdout: str = ""
    stderr: str = ""


def wrapper_fn(
    function: TransportableObject,
    extras: TransportableObject | None,
    context: dict[str, Any],
    *args: Any,
    **kwargs: Any,
) -> ElectronOutput:
    """Run the electron ``function`` with ``args``/``kwargs`` (TransportableObjects or
    plain values), its ``extras`` (dependencies and hooks) and its task ``context``."""
    out, err = io.StringIO(), io.StringIO()
    token = set_context(TaskContext(**context))
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            result = _call(function, extras, args, kwargs)
    except (Exception, SystemExit) as e:
        with contextlib.suppress(Exception):  # an exception type without a __dict__
            setattr(e, FAR_SIDE, _far_side(e, out, err))
        raise
    finally:
        reset_context(token)
    return ElectronOutput(
        TransportableObject.from_bytes(blobs.dumps(result), blobs.short_repr(result)),
        out.getvalue(),
        err.getvalue(),
    )


def _call(
    function: TransportableObject,
    extras_object: TransportableObject | None,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
) -> Any:
    electron = function.get_deserialized()
    values = [_value(a) for a in args]
    named = {k: _value(v) for k, v in kwargs.items()}
    extras = extras_object.get_deserialized() if extras_object is not None else {}
    if extras:
        deps.install(extras)
        named.update(transfer.apply_before(extras))
        named.update(deps.apply_before(extras))
    result = electron(*values, **named)
    if extras:
        deps.apply_after(extras)
        transfer.apply_after(extras)
    return result


def _value(value: Any) -> Any:
    return value.get_deserialized() if isinstance(value, TransportableObject) else value


def _far_side(error: BaseException, out: io.StringIO, err: io.StringIO) -> dict[str, str]:
    tb = error.__traceback__
    while tb is not None and tb.tb_frame.f_code.co_filename == __file__:
        tb = tb.tb_next  # the electron's own frames only
    text = "".join(traceback.format_exception(type(error), error, tb))
    return {"traceback": text, "stdout": out.getvalue(), "stderr": err.getvalue()}


def electron_callable(
    function: bytes, extras: bytes | None, context: dict[str, Any], name: str = ""
) -> functools.partial[ElectronOutput]:
    """The ``function`` a ``run``-path executor gets, made of the task's pickled blobs."""
    wrapped = TransportableObject.from_bytes(function, name)
    wrapped.attrs["name"] = name
    extras_object = TransportableObject.from_bytes(extras) if extras else None
    made = functools.partial(wrapper_fn, wrapped, extras_object, dict(context))
    made.__name__ = made.__qualname__ = name or "electron"  # type: ignore[attr-defined]
    return made


def far_side_of(error: BaseException) -> dict[str, str] | None:
    """What :func:`wrapper_fn` attached to ``error``, also when a plugin wrapped it in an
    exception of its own (``RuntimeError(error)``, or raised ``from`` it)."""
    seen: set[int] = set()
    pending: list[Any] = [error]
    while pending:
        current = pending.pop()
        if not isinstance(current, BaseException) or id(current) in seen:
            continue
        seen.add(id(current))
        found = getattr(current, FAR_SIDE, None)
        if isinstance(found, dict):
            return found
        pending.extend([*current.args, current.__cause__, current.__context__])
    return None
