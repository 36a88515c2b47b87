"""``covalent.executor.executor_plugins.remote_executor``: ``RemoteExecutor``."""

from __future__ import annotations

from covalent.executor.remote import RemoteExecutor

__all__ = ["RemoteExecutor"]
