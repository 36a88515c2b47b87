"""What a client says while it waits for a dispatch: when the server is away, and when
the user stops waiting with Ctrl-C.

Waiting never changes the dispatch: Ctrl-C stops the wait, not the dispatch, which goes
on on the server. The interrupt still propagates (as a ``KeyboardInterrupt``, so code
that catches it keeps working), but uncaught it prints one line instead of a traceback:
the dispatch id, that it goes on, and the command that cancels it.
"""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Iterator
from types import TracebackType
from typing import TextIO

NOTICE_EVERY = 5.0
"""Seconds between two notes that the server still does not answer."""

MARK = "_covalent_wait_note"
"""The attribute a KeyboardInterrupt gets once its one line is printed."""


def interrupted_line(dispatch_id: str) -> str:
    return (
        f"Stopped waiting for dispatch {dispatch_id}; it goes on running on the server. "
        f"To stop it: covalent cancel {dispatch_id}"
    )


@contextlib.contextmanager
def interrupt_note(dispatch_id: str, stream: TextIO | None = None) -> Iterator[None]:
    """On Ctrl-C inside the block: print :func:`interrupted_line` and re-raise the
    KeyboardInterrupt marked so that, if nothing catches it, no traceback follows."""
    try:
        yield
    except KeyboardInterrupt as interrupt:
        print(interrupted_line(dispatch_id), file=stream or sys.stderr, flush=True)
        setattr(interrupt, MARK, True)
        _quiet_uncaught_interrupts()
        raise interrupt.with_traceback(None) from None


def _quiet_uncaught_interrupts() -> None:
    """Chain ``sys.excepthook`` so that a marked KeyboardInterrupt prints nothing more
    (its line is out already); the interpreter still exits as killed by SIGINT."""
    previous = sys.excepthook
    if getattr(previous, MARK, False):
        return

    def hook(kind: type[BaseException], value: BaseException, tb: TracebackType | None) -> None:
        if isinstance(value, KeyboardInterrupt) and getattr(value, MARK, False):
            return
        previous(kind, value, tb)

    setattr(hook, MARK, True)
    sys.excepthook = hook


class AbsenceNotes:
    """Notes on stderr while the server does not answer: one at once, then one every
    :data:`NOTICE_EVERY` seconds, each saying how long the wait goes on."""

    def __init__(self, url: str, dispatch_id: str, stream: TextIO | None = None) -> None:
        self.url = url
        self.dispatch_id = dispatch_id
        self.stream = stream
        self.since: float | None = None
        self.last = 0.0

    def lost(self, patience: float) -> float:
        """The server did not answer: note it when due; return seconds since it went."""
        now = time.monotonic()
        if self.since is None:
            self.since = now
        away = now - self.since
        if self.last == 0.0 or now - self.last >= NOTICE_EVERY:
            self.last = now
            left = max(0, round(patience - away))
            print(
                f"covalent: no server answers at {self.url} (for {away:.0f} s); still waiting "
                f"for dispatch {self.dispatch_id}, giving up in {left} s.",
                file=self.stream or sys.stderr,
                flush=True,
            )
        return away

    def back(self) -> None:
        """The server answers again."""
        if self.since is not None:
            print(
                f"covalent: the server at {self.url} answers again.",
                file=self.stream or sys.stderr,
                flush=True,
            )
        self.since = None
        self.last = 0.0
