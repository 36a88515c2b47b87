"""File transfers: files an electron's executor fetches before it runs or sends after.

``ct.fs.FileTransfer(from_file, to_file, order=ct.fs.Order.BEFORE, strategy=...)`` moves
one file or folder; ``TransferFromRemote`` (order BEFORE, the source is remote) and
``TransferToRemote`` (order AFTER, the destination is remote) say which side is remote,
so plain paths work there with a strategy that names the host. Without a strategy, one
is chosen from the locations (see :func:`~covalent._workflow.strategies.default_strategy`).

An electron given ``files=[...]`` travels with them in its pickled settings. On the
executor, :func:`apply_before` runs the BEFORE transfers and gives the electron the
keyword argument ``files=[(from_path, to_path), ...]`` (every transfer, in order);
:func:`apply_after` runs the AFTER transfers once the electron has returned. The task
runner calls them next to the other set-up (see :mod:`covalent._workflow.deps`).
"""

from __future__ import annotations

import enum
import inspect
import os
from collections.abc import Callable
from typing import Any

from covalent._errors import CovalentError, WorkflowError
from covalent._workflow.strategies import File, FileTransferStrategy, default_strategy

Location = str | os.PathLike[str] | File | None


class Order(str, enum.Enum):
    """When a transfer runs: before the electron, or after it returns."""

    BEFORE = "before"
    AFTER = "after"


class FileTransferError(CovalentError):
    """A file transfer failed on the executor, so the node fails."""


class FileTransfer:
    """Move ``from_file`` to ``to_file`` before or after the electron, with ``strategy``."""

    def __init__(
        self,
        from_file: Location = None,
        to_file: Location = None,
        order: Order | str = Order.BEFORE,
        strategy: FileTransferStrategy | None = None,
    ) -> None:
        self._init(File(from_file), File(to_file), order, strategy)

    def _init(
        self, source: File, dest: File, order: Order | str, strategy: FileTransferStrategy | None
    ) -> None:
        try:
            self.order = Order(order)
        except ValueError:
            raise WorkflowError(
                f"A file transfer's order is ct.fs.Order.BEFORE or AFTER, not {order!r}."
            ) from None
        if strategy is not None and not isinstance(strategy, FileTransferStrategy):
            raise WorkflowError(
                f"A file transfer's strategy comes from ct.fs_strategies (Shutil, Rsync, "
                f"HTTP), not {strategy!r}."
            )
        self.from_file, self.to_file = source, dest
        self.strategy = strategy or default_strategy(source, dest)
        self.strategy.check(source, dest)

    @property
    def paths(self) -> tuple[str, str]:
        """``(from_path, to_path)`` as the electron receives them."""
        return self.from_file.filepath, self.to_file.filepath

    def run(self) -> None:
        """Move the file now; raise a :class:`FileTransferError` naming it on failure."""
        try:
            self.strategy.transfer(self.from_file, self.to_file)
        except Exception as e:
            source, dest = (self.strategy.describe(f) for f in (self.from_file, self.to_file))
            raise FileTransferError(
                f"File transfer {source} -> {dest} with {self.strategy!r} failed: "
                f"{type(e).__name__}: {e}"
            ) from e

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({self.from_file.uri!r} -> {self.to_file.uri!r}, "
            f"{self.order.name}, {self.strategy!r})"
        )


class TransferFromRemote(FileTransfer):
    """Fetch a remote file before the electron runs (``from_file`` is the remote side)."""

    def __init__(
        self,
        from_file: Location,
        to_file: Location = None,
        strategy: FileTransferStrategy | None = None,
        order: Order | str = Order.BEFORE,
    ) -> None:
        self._init(File(from_file, remote=True), File(to_file), order, strategy)


class TransferToRemote(FileTransfer):
    """Send a local file to a remote place after the electron returns (``to_file`` is remote)."""

    def __init__(
        self,
        from_file: Location,
        to_file: Location = None,
        strategy: FileTransferStrategy | None = None,
        order: Order | str = Order.AFTER,
    ) -> None:
        self._init(File(from_file), File(to_file, remote=True), order, strategy)


def as_transfers(files: Any, function: Callable[..., Any], name: str) -> list[FileTransfer]:
    """Check an electron's ``files`` setting; its function must accept ``files=``."""
    if files is None:
        return []
    items = list(files) if isinstance(files, (list, tuple)) else [files]
    for item in items:
        if not isinstance(item, FileTransfer):
            raise WorkflowError(
                f"files= of electron {name} must hold ct.fs.FileTransfer objects, got {item!r}."
            )
    if items and not _accepts_files(function):
        raise WorkflowError(
            f"Electron {name} has files=[...], so it is called with files=[(from_path, "
            "to_path), ...]; add a `files` parameter to its function."
        )
    return items


def _accepts_files(function: Callable[..., Any]) -> bool:
    try:
        parameters = inspect.signature(function).parameters.values()
    except (TypeError, ValueError):  # no signature to read: let the call decide
        return True
    return any(p.name == "files" or p.kind is p.VAR_KEYWORD for p in parameters)


def apply_before(extras: dict[str, Any]) -> dict[str, Any]:
    """Run the BEFORE transfers; return ``{"files": [(from, to), ...]}`` for the electron."""
    transfers: list[FileTransfer] = extras.get("files") or []
    for transfer in transfers:
        if transfer.order is Order.BEFORE:
            transfer.run()
    return {"files": [t.paths for t in transfers]} if transfers else {}


def apply_after(extras: dict[str, Any]) -> None:
    """Run the AFTER transfers (the electron has returned)."""
    for transfer in extras.get("files") or []:
        if transfer.order is Order.AFTER:
            transfer.run()
