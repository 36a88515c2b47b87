"""``ct.fs_strategies``: how a file transfer moves its file.

``Shutil`` copies between local paths, ``Rsync`` moves files to and from SSH hosts with
the ``rsync`` binary, ``HTTP`` downloads from and uploads to web servers. Subclass
``FileTransferStrategy`` (``check`` and ``transfer``) for another way. See
docs/file-transfers.md.
"""

from __future__ import annotations

from covalent._workflow.strategies import HTTP, FileTransferStrategy, Rsync, Shutil

__all__ = ["HTTP", "FileTransferStrategy", "Rsync", "Shutil"]
