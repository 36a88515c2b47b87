"""``covalent._shared_files.logger``: ``app_log``, covalent's logger, and ``log_stack_info``."""

from __future__ import annotations

import logging

app_log = logging.getLogger("covalent")
"""The logger Covalent's plugins write to; in a worker its records reach the server log
through the task's stderr, in the server they go to its log."""

log_stack_info = False
"""Covalent's flag for stack information in log records (kept for plugins that pass it)."""

__all__ = ["app_log", "log_stack_info"]
