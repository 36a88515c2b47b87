"""``python -m covalent._server``: run the dispatcher server in the foreground."""

from __future__ import annotations

import argparse
import gc
import ipaddress
import logging
import sys
from types import FrameType
from typing import Any

import uvicorn
from fastapi import FastAPI

from covalent import _config
from covalent._errors import ConfigError, CovalentError, ExecutorError, StoreUnavailableError
from covalent._server import logs
from covalent._server.app import create_app
from covalent._server.database import Guard
from covalent._store.store import Store
from covalent.executor import plugins

log = logging.getLogger("covalent.server")

GC_YOUNG = 500_000
"""The cyclic collector's first threshold in the server (see :func:`main`)."""


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def main(argv: list[str] | None = None) -> None:
    # Hand the GIL between the event loop and the pool's threads every 0.5 ms instead of
    # 5 ms: a finished task's reply reaches the loop sooner while the loop is busy.
    sys.setswitchinterval(0.0005)
    # A dispatch of 10,000 nodes keeps ~10^5 containers alive while it runs; at the
    # default thresholds the cyclic collector walks them all every few thousand tasks
    # (a third of the dispatcher's time in a large fan-out). The server makes little
    # cyclic garbage, so collect young objects rarely and old ones more rarely still:
    # only once 500,000 more containers are alive than at the last collection. At
    # 50,000, W2 N=10,000 (~300,000 more at its peak) paid ~7 young collections of
    # 5-40 ms and a 75 ms older one every third run: ~0.1 s of its ~0.85 s.
    gc.set_threshold(GC_YOUNG, 20, 100)
    config = _config.get_value("dispatcher")
    parser = argparse.ArgumentParser(prog="python -m covalent._server")
    parser.add_argument("--host", default=config["address"])
    parser.add_argument("--port", type=int, default=config["port"])
    parser.add_argument("--log-level", default=_config.get_value("sdk.log_level"))
    args = parser.parse_args(argv)
    token = config.get("token") or ""
    if token and not token.strip():
        parser.exit(
            2,
            "dispatcher.token (or COVALENT_TOKEN) is blank: a token of only whitespace is no "
            "token. Set a real one (for instance: python -c 'import secrets; "
            "print(secrets.token_urlsafe())'), or unset it.\n",
        )
    if not token and not is_loopback(args.host):
        parser.exit(
            2,
            f"Refusing to serve on {args.host} without a token: anyone who can reach it could "
            "run code on this machine. Set dispatcher.token (or COVALENT_TOKEN), or bind to "
            "localhost.\n",
        )
    try:
        logs.setup(args.log_level)
    except ConfigError as e:
        parser.exit(2, f"{e}\n")
    try:
        check_executor_settings()
    except ConfigError as e:
        parser.exit(2, f"covalent server: {e}\n")
    try:
        store, guard = open_store(config)
    except CovalentError as e:
        parser.exit(3, f"covalent server: {e}\n")
    settings = {
        "db_path": config.get("db_url") or config["db_path"],
        "results_dir": config["results_dir"],
        "max_upload_bytes": int(config["max_upload_bytes"]),
        "token": token,
        "executors": _executors(),
    }
    app = create_app(store, config["results_dir"], settings, guard)
    server = Server(
        app,
        uvicorn.Config(
            app,
            host=args.host,
            port=args.port,
            log_config=None,  # uvicorn's records go through logs.setup's handler
            access_log=False,
            timeout_graceful_shutdown=10,
        ),
    )
    server.run()


def check_executor_settings() -> None:
    """Make each built-in executor that has a config section from its settings, so that
    a bad value (``[executors.local] workers = "many"``) stops the server at its start,
    not each electron that uses it. (Installed plugins are made when first used: their
    constructors may reach for their cloud.) Raises ConfigError naming the section."""
    found = plugins.discover()
    for name in sorted(_config.get_value("executors") or {}):
        plugin = found.get(name)
        if plugin is None or plugin.source != "built-in":
            continue
        try:
            plugins.instantiate(plugin.cls, name, plugin.defaults)
        except ExecutorError as e:
            raise ConfigError(f"Config section [executors.{name}]: {e}") from e


def _executors() -> dict[str, str]:
    """Which class serves each executor short name (logged, and shown by ``covalent status``)."""
    found = plugins.discover()
    served = plugins.describe(found)
    for name, text in served.items():  # a replaced built-in is worth a line at any level
        level = logging.WARNING if found[name].replaced else logging.INFO
        log.log(level, "Executor '%s' is %s", name, text)
    for name in sorted(set(_config.get_value("executors") or {}) - set(found)):
        log.warning(
            "Config section [executors.%s] names no installed executor, so its settings "
            "are not used (a misspelling? installed: %s)",
            name,
            ", ".join(sorted(found)),
        )
    return served


def open_store(config: dict[str, Any]) -> tuple[Store, Guard]:
    """The configured store, its schema up to date, with its dispatch lock held; a
    CovalentError (password masked) if the driver is missing, the database does not
    answer, or another server already runs its dispatches."""
    if config.get("db_url"):
        store = Store(config["db_url"], config["blobs_dir"])
    else:
        try:
            store = Store.sqlite(config["db_path"], config["blobs_dir"])
        except OSError as e:  # a data dir that cannot be made or written
            raise StoreUnavailableError(
                f"Cannot create the database file {config['db_path']}: {e.strerror or e}"
                f"{f' ({e.filename})' if e.filename else ''}. Choose a folder this user can "
                "write (`covalent config set dispatcher.db_path PATH`, or COVALENT_DATA_DIR)."
            ) from None
    guard = Guard(store)
    try:
        if store.is_sqlite:  # before the schema's migrations: another server's file is let be
            guard.acquire()
        store.create_schema()
        guard.acquire()
    except BaseException:
        store.close()
        raise
    return store, guard


class Server(uvicorn.Server):
    """uvicorn's server, telling the dispatcher first when a stop is asked for, so that
    requests waiting for a dispatch to finish return at once instead of delaying it."""

    def __init__(self, app: FastAPI, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.app = app

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        state = getattr(self.app.state, "covalent", None)
        if state is not None:
            state.dispatcher.begin_shutdown()
        super().handle_exit(sig, frame)


if __name__ == "__main__":
    main()
