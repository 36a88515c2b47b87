"""``RemoteExecutor``: the base of Covalent's plugins that run electrons on a remote
backend (a cloud batch service, a host over SSH), polling for their results.

It adds the settings such plugins share (``poll_freq``, ``remote_cache``,
``credentials_file``) to :class:`~covalent.executor.base.AsyncBaseExecutor`, and names
the steps a subclass implements. Only ``run`` is called by covalent; the steps are the
subclass's own structure. Importable as Covalent's
``covalent.executor.executor_plugins.remote_executor.RemoteExecutor``.
"""

from __future__ import annotations

from typing import Any

from covalent.executor import settings as check
from covalent.executor.base import AsyncBaseExecutor


class RemoteExecutor(AsyncBaseExecutor):
    """A run executor for a remote backend.

    Args:
        poll_freq: seconds between two status queries.
        remote_cache: where the backend keeps task files (a folder, a bucket).
        credentials_file: the backend's credentials.
        **kwargs: :class:`~covalent.executor.base.BaseExecutor`'s arguments.
    """

    def __init__(
        self,
        poll_freq: float = 15,
        remote_cache: str = "",
        credentials_file: str = "",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        owner = type(self).__name__
        self.poll_freq = check.number(owner, "poll_freq", poll_freq)
        self.remote_cache = check.path(owner, "remote_cache", remote_cache)
        self.credentials_file = credentials_file

    async def _validate_credentials(self) -> Any:
        """Check the credentials before anything is sent (a subclass implements it)."""
        raise NotImplementedError

    async def _upload_task(self, *args: Any, **kwargs: Any) -> Any:
        """Send the task's files to the backend (a subclass implements it)."""
        raise NotImplementedError

    async def submit_task(self, *args: Any, **kwargs: Any) -> Any:
        """Start the task on the backend; return its handle (a subclass implements it)."""
        raise NotImplementedError

    async def get_status(self, *args: Any, **kwargs: Any) -> Any:
        """The task's status on the backend (a subclass implements it)."""
        raise NotImplementedError

    async def _poll_task(self, *args: Any, **kwargs: Any) -> Any:
        """Wait until the task has ended (a subclass implements it)."""
        raise NotImplementedError

    async def query_result(self, *args: Any, **kwargs: Any) -> Any:
        """Fetch the task's result (a subclass implements it)."""
        raise NotImplementedError

    async def cancel(self, *args: Any, **kwargs: Any) -> bool:
        """Stop the task on the backend (a subclass may implement it)."""
        return False
