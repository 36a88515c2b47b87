"""Blob files: where a blob store keeps a large blob, and writing one whole or not at all.

A blob over the store's inline limit is a file named by its digest,
``<blobs_dir>/<first two hex digits>/<digest>``. Both the server (uploaded inputs) and
executor workers (large outputs, streamed as they are pickled) write such files; both
go through :class:`PartialFile`, so a blob file is either complete or absent:

- On Linux the bytes go to an unnamed file (``O_TMPFILE``) that gets its name only
  once complete (``linkat`` through ``/proc/self/fd``). If the writer fails, is killed
  or the disk fills up, the kernel frees the file: nothing is left behind.
- Elsewhere a hidden ``.tmp-*`` file is renamed when complete and removed on any error;
  one left by a killed writer is removed by :func:`sweep` when the server starts.

:func:`storage_error` turns a failed write into the error a client gets: a full disk
(or quota) is a StorageFullError (HTTP 507) that says where, others pass unchanged.
"""

from __future__ import annotations

import contextlib
import errno
import os
import tempfile
from pathlib import Path
from typing import Any

from covalent._errors import StorageFullError

TMP_PREFIX = ".tmp-"
PRIVATE_DIR = 0o700
"""Blob folders are their owner's only (blob files are 0600: O_TMPFILE and mkstemp)."""
FULL = (errno.ENOSPC, errno.EDQUOT)
_PROC_FD = "/proc/self/fd"


def path_of(blobs_dir: str | Path, name: str) -> str:
    """Where blob ``name`` lives in the blob store at ``blobs_dir``."""
    return os.path.join(blobs_dir, name[:2], name)


class PartialFile:
    """A file being written in ``folder``: it appears under a name only in
    :meth:`publish`, complete; :meth:`discard` (or any failure) leaves nothing."""

    def __init__(self, folder: str | Path) -> None:
        os.makedirs(folder, mode=PRIVATE_DIR, exist_ok=True)
        self.tmp: str | None = None
        fd = _unnamed(str(folder))
        if fd is None:
            fd, self.tmp = tempfile.mkstemp(dir=folder, prefix=TMP_PREFIX)
        self.fd = fd
        self.file: Any = os.fdopen(fd, "wb")

    def write(self, data: Any) -> None:
        try:
            self.file.write(data)
        except BaseException:
            self.discard()
            raise

    def publish(self, path: str) -> None:
        """Give the complete file the name ``path`` (kept as it is if that exists: blob
        files are named by their content)."""
        try:
            self.file.flush()
            os.makedirs(os.path.dirname(path), mode=PRIVATE_DIR, exist_ok=True)
            if self.tmp is None:
                with contextlib.suppress(FileExistsError):
                    _name_unnamed(self.fd, path)
            elif os.path.exists(path):
                os.unlink(self.tmp)
            else:
                os.replace(self.tmp, path)
            self.tmp = None
            self.file.close()
        except BaseException:
            self.discard()
            raise

    def discard(self) -> None:
        """Close and drop the file, whatever state it is in."""
        with contextlib.suppress(OSError):
            self.file.close()
        if self.tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(self.tmp)
            self.tmp = None


def _unnamed(folder: str) -> int | None:
    """A descriptor of a new unnamed file in ``folder`` (None where that cannot be)."""
    flag = getattr(os, "O_TMPFILE", 0)
    if not flag or not os.path.isdir(_PROC_FD):
        return None
    try:
        return os.open(folder, flag | os.O_WRONLY, 0o600)
    except OSError as e:
        if e.errno in FULL:
            raise
        return None  # a file system without O_TMPFILE (EOPNOTSUPP, EISDIR, EINVAL)


def _name_unnamed(fd: int, path: str) -> None:
    """``linkat(/proc/self/fd/N, path, AT_SYMLINK_FOLLOW)``: a dir fd makes os.link use
    linkat (plain link() would link the /proc symlink itself and fail with EXDEV)."""
    proc = os.open(_PROC_FD, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.link(str(fd), path, src_dir_fd=proc, follow_symlinks=True)
    finally:
        os.close(proc)


def write(path: str, data: bytes) -> None:
    """Write blob file ``path`` whole, or leave nothing."""
    partial = PartialFile(os.path.dirname(path))
    partial.write(data)
    partial.publish(path)


def sweep(blobs_dir: str | Path) -> int:
    """Remove ``.tmp-*`` files that killed writers left in the blob store; how many.
    (Only where O_TMPFILE is missing can there be any.)"""
    removed = 0
    for pattern in (f"{TMP_PREFIX}*", f"*/{TMP_PREFIX}*"):
        for leftover in Path(blobs_dir).glob(pattern):
            with contextlib.suppress(OSError):
                leftover.unlink()
                removed += 1
    return removed


def is_full(error: BaseException) -> bool:
    return isinstance(error, OSError) and error.errno in FULL


def storage_error(error: OSError, what: str, where: str | Path) -> Exception:
    """A StorageFullError naming ``what`` could not be stored ``where``, for a full disk;
    ``error`` itself otherwise."""
    if not is_full(error):
        return error
    return StorageFullError(
        f"The server's disk is full: {what} could not be stored in {where} "
        f"({error.strerror}). Nothing was stored; free space there and try again."
    )
