"""The server's log: one structured line per record.

Each line reads ``<time> <LEVEL> <logger> dispatch=<id> node=<id> event=<name> <message>``
(UTC time; ``-`` for a field the record does not have), so one dispatch's or one node's
history is a ``grep`` away. Records carry the fields as ``extra={"dispatch_id": ...,
"node_id": ..., "event": ...}``. Passwords in URLs (a database URL) are masked in
every line.

The level is ``sdk.log_level`` (``COVALENT_LOG_LEVEL``), ``info`` by default, which
shows each dispatch's start and end and each failed node; ``covalent start -d`` gives
``debug`` (every node's state changes). The server's own start and stop lines
(uvicorn's) are kept at every level, so the log always says when the server ran.

Libraries' loggers (Dask's ``distributed``, ``asyncssh``, uvicorn's access log, ...)
are held at ``warning`` or the configured level, whichever is higher: their INFO lines
would bury the dispatches'. The local Dask cluster's worker processes, which log on
their own, get the same level through ``DASK_LOGGING__DISTRIBUTED``.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from typing import TextIO

from covalent._config import LOG_LEVELS, mask_secrets
from covalent._errors import ConfigError

LEVELS = LOG_LEVELS
FIELDS = ("dispatch_id", "node_id", "event")
LIFECYCLE_LOGGERS = ("uvicorn", "uvicorn.error")
LIBRARY_LOGGERS = (
    "distributed",
    "dask",
    "tornado",
    "bokeh",
    "asyncssh",
    "uvicorn.access",
    "httpx",
    "httpcore",
    "watchdog",
    "alembic",
    "sqlalchemy",
    "asyncio",
)
"""Loggers of libraries, held at ``warning`` or the configured level if higher."""


LINE_LIMIT = 64 * 1024
"""Characters of a log record (its message and traceback) written; the rest is counted.
An electron's error or a name sent by a client can be megabytes: written whole, on the
event loop, it held every dispatch up for seconds."""


class StructuredFormatter(logging.Formatter):
    """``time LEVEL logger dispatch=.. node=.. event=.. message`` (+ traceback lines)."""

    def format(self, record: logging.LogRecord) -> str:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        stamp += f".{int(record.msecs):03d}Z"
        dispatch_id, node_id, event = (getattr(record, name, None) for name in FIELDS)
        line = (
            f"{stamp} {record.levelname} {record.name} dispatch={dispatch_id or '-'} "
            f"node={'-' if node_id is None else node_id} event={event or '-'} "
            f"{record.getMessage()}"
        )
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        if len(line) > LINE_LIMIT:  # a 5 MB lattice name, a 50 MB error message
            line = f"{line[:LINE_LIMIT]}... ({len(line) - LINE_LIMIT:,} more characters)"
        return mask_secrets(line)  # a database URL's password never reaches the log


def parse_level(name: str) -> int:
    """The logging level called ``name`` (any case), or a ConfigError naming the choices."""
    if str(name).lower() not in LEVELS:
        raise ConfigError(
            f"The log level '{name}' (sdk.log_level or COVALENT_LOG_LEVEL) is not one of "
            f"{', '.join(LEVELS)}; set one of those."
        )
    return int(logging.getLevelName(str(name).upper()))


def setup(level: str, stream: TextIO | None = None) -> int:
    """Send every record at ``level`` or above to ``stream`` (stderr: the server's log
    file) as structured lines; return the level. Python warnings become log records."""
    number = parse_level(level)
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(StructuredFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    set_level(number)
    logging.captureWarnings(True)
    return number


def set_level(number: int) -> None:
    """Log records at ``number`` or above (the lifecycle lines at INFO whatever it is),
    libraries' at ``warning`` or ``number`` if higher."""
    logging.getLogger().setLevel(number)
    for name in LIFECYCLE_LOGGERS:
        logging.getLogger(name).setLevel(min(number, logging.INFO))
    hold_libraries(number)


def hold_libraries(level: int) -> None:
    """Hold libraries' loggers at ``warning`` or ``level`` if higher, here and in the
    processes this server starts that configure their own logging (Dask's workers)."""
    held = max(level, logging.WARNING)
    for name in LIBRARY_LOGGERS:
        logging.getLogger(name).setLevel(held)
    os.environ["DASK_LOGGING__DISTRIBUTED"] = logging.getLevelName(held).lower()
