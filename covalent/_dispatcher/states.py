"""The state machine of nodes and dispatches: which transitions are allowed.

Every status change goes through :func:`check`, which raises on an impossible one;
the dispatcher records each allowed change with its cause in the store.

Nodes: ``NEW_OBJECT -> RUNNING -> COMPLETED | FAILED | CANCELLED``; a node whose input
failed goes ``NEW_OBJECT -> NOT_RUN``; one cancelled before it started goes
``NEW_OBJECT -> CANCELLED``; one that was running when the server died goes
``RUNNING -> NEW_OBJECT`` and runs again. Parameter nodes are born ``COMPLETED``. A node
whose stored output is reused (redispatch, or an electron with ``cache=True``) goes
``PENDING_REUSE -> COMPLETED`` without running.

Dispatches: ``NEW_OBJECT -> RUNNING -> COMPLETED | FAILED | CANCELLED``.
"""

from __future__ import annotations

from collections.abc import Sequence

from covalent._errors import CovalentError
from covalent._results.status import Status

S = Status

NODE_TRANSITIONS: dict[Status | None, frozenset[Status]] = {
    None: frozenset({S.NEW_OBJECT, S.COMPLETED, S.PENDING_REUSE}),
    S.NEW_OBJECT: frozenset({S.RUNNING, S.NOT_RUN, S.CANCELLED, S.PENDING_REUSE}),
    S.PENDING_REUSE: frozenset({S.COMPLETED}),
    S.RUNNING: frozenset({S.COMPLETED, S.FAILED, S.CANCELLED, S.NEW_OBJECT}),
}

DISPATCH_TRANSITIONS: dict[Status | None, frozenset[Status]] = {
    None: frozenset({S.NEW_OBJECT, S.RUNNING}),
    S.NEW_OBJECT: frozenset({S.RUNNING, S.CANCELLED}),
    S.RUNNING: frozenset({S.COMPLETED, S.FAILED, S.CANCELLED}),
}


class InvalidTransition(CovalentError):
    """A status change the state machine does not allow (a bug in covalent).

    Carries what is needed to find the bug: ``what`` changed (a node's label, or a
    dispatch), the ``old`` and ``new`` status, and ``story``: the node's recent
    transitions, oldest first, as ``(old, new, cause)``.
    """

    def __init__(
        self,
        what: str,
        old: Status | None,
        new: Status,
        story: Sequence[tuple[str | None, str, str]] = (),
    ) -> None:
        message = f"{what} cannot go from {old} to {new}."
        if story:
            steps = "; ".join(f"{o} -> {n} ({c})" for o, n, c in story)
            message += f" Its recent transitions: {steps}."
        super().__init__(message)
        self.what, self.old, self.new, self.story = what, old, new, list(story)


def check(
    table: dict[Status | None, frozenset[Status]],
    old: Status | None,
    new: Status,
    what: str,
    story: Sequence[tuple[str | None, str, str]] = (),
) -> None:
    if new not in table.get(old, frozenset()):
        raise InvalidTransition(what, old, new, story)


def check_node(
    old: Status | None,
    new: Status,
    what: str = "A node",
    story: Sequence[tuple[str | None, str, str]] = (),
) -> None:
    check(NODE_TRANSITIONS, old, new, what, story)


def check_dispatch(old: Status | None, new: Status, what: str = "A dispatch") -> None:
    check(DISPATCH_TRANSITIONS, old, new, what)
