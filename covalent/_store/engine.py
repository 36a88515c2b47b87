"""The SQLAlchemy engine of a database URL, and how its outages are reported.

SQLite needs only its pragmas. PostgreSQL needs its driver (``pip install
'covalent[postgres]'`` brings psycopg 3); without it the error says so. Every failure to
reach PostgreSQL (refused, reset, shut down mid-query) becomes a
:class:`~covalent._errors.StoreUnavailableError` in one place, an engine event, so the
server answers 503 and says the database is down, whatever the query was. The pool
tests a connection before lending it (``pool_pre_ping``), so the first request after
the database comes back works: recovery needs nothing but time.
"""

from __future__ import annotations

import importlib
import os
import socket
from typing import Any

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.engine.interfaces import ExceptionContext
from sqlalchemy.exc import ArgumentError, NoSuchModuleError

from covalent._config import mask_secrets
from covalent._errors import ConfigError, StoreUnavailableError

WAL_LIMIT = 64 * 1024 * 1024
CONNECT_TIMEOUT = 5
"""Seconds to wait for a PostgreSQL connection before calling the database unavailable."""

DRIVERS = {"postgresql": "psycopg", "postgresql+psycopg": "psycopg"}


def sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=60000")
    # After a checkpoint the write-ahead log is cut back to this size: one large
    # dispatch must not leave a WAL file of its size behind for good.
    cursor.execute(f"PRAGMA journal_size_limit={WAL_LIMIT}")
    cursor.close()


def normalized(url: str) -> str:
    """``postgresql://`` and ``postgres://`` URLs select psycopg 3, the driver covalent
    ships an extra for (SQLAlchemy would pick psycopg2 otherwise)."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def make_engine(url: str) -> Engine:
    """The engine of ``url``; a ConfigError names what is wrong with the URL or what to
    install."""
    if url.startswith("sqlite"):
        _require_folder(url)
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 60})
        event.listen(engine, "connect", sqlite_pragmas)
        return engine
    url = normalized(url)
    try:
        parsed = make_url(url)
    except ArgumentError as e:
        raise ConfigError(
            f"The database URL {mask_secrets(url)} is not valid ({e}); write it like "
            "postgresql://user:password@host:5432/dbname."
        ) from None
    _require_driver(parsed.drivername, url)
    try:
        engine = create_engine(
            url, pool_pre_ping=True, pool_size=10, connect_args=_connect_args(parsed.drivername)
        )
    except (ImportError, NoSuchModuleError) as e:  # a database covalent does not name
        raise ConfigError(
            f"The database URL {mask_secrets(url)} cannot be used here ({type(e).__name__}: "
            f"{e}); install the driver of that database, or use PostgreSQL or SQLite."
        ) from None
    event.listen(engine, "handle_error", _outage_handler(url))
    return engine


def _require_folder(url: str) -> None:
    """A ConfigError if the folder of a SQLite database file does not exist (SQLite
    would fail later with "unable to open database file", naming nothing)."""
    try:
        path = make_url(url).database
    except ArgumentError:
        return  # SQLAlchemy says what is wrong
    if not path or path == ":memory:" or path.startswith("file:"):
        return
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise ConfigError(
            f"The SQLite database {path} cannot be made: its folder {folder} does not "
            "exist; create it, or correct the database URL."
        )


def _require_driver(drivername: str, url: str) -> None:
    module = DRIVERS.get(drivername)
    if module is None:
        return  # another database: SQLAlchemy says what it lacks
    try:
        importlib.import_module(module)
    except ImportError:
        raise ConfigError(
            f"The database URL {mask_secrets(url)} needs the PostgreSQL driver psycopg, "
            "which is not installed: pip install 'covalent[postgres]'."
        ) from None


def _connect_args(drivername: str) -> dict[str, Any]:
    if not drivername.startswith("postgresql"):
        return {}
    name = f"covalent-server {socket.gethostname()} pid {os.getpid()}"
    return {"connect_timeout": CONNECT_TIMEOUT, "application_name": name[:63]}


def _outage_handler(url: str) -> Any:
    """An engine ``handle_error`` hook: a lost or refused connection becomes a
    StoreUnavailableError that names the database (password masked) and the cause."""
    shown = mask_secrets(url)

    def handle(context: ExceptionContext) -> None:
        lost = context.is_disconnect or context.connection is None
        if not lost or context.is_pre_ping:
            return
        cause = " ".join(str(context.original_exception).split())[:300]
        raise StoreUnavailableError(
            f"The database {shown} is unavailable ({cause}); the server reconnects by "
            "itself when it is back, try again then (`covalent status` shows its health)."
        ) from context.original_exception

    return handle


def ping(engine: Engine) -> str | None:
    """None if the database answers a query, else why not (one line, no secrets)."""
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except StoreUnavailableError as e:
        return str(e)
    except Exception as e:  # any other reason it cannot answer
        return mask_secrets(" ".join(f"{type(e).__name__}: {e}".split())[:300])
    return None
