"""Service and configuration verbs of the public API (``ct.covalent_start``, ...)."""

from __future__ import annotations

import contextvars
from typing import Any

from covalent import _config
from covalent._client import service
from covalent.executor import plugins


def covalent_start(port: int | None = None, develop: bool = False, quiet: bool = False) -> str:
    """Start the local server in the background (if it is not running); return its URL."""
    url, started = service.start(port=port, develop=develop)
    if not quiet:
        print(start_message(url, started))
    return url


def start_message(url: str, started: bool) -> str:
    if started:
        return f"Covalent server has started at {url}"
    return f"Covalent server is already running at {url}."


def covalent_stop(quiet: bool = False) -> None:
    """Stop the local server; unfinished dispatches resume on its next start."""
    stopped = service.stop()
    if not quiet:
        print("Covalent server has stopped." if stopped else "Covalent server is not running.")


def is_covalent_running() -> bool:
    """Whether the local server is running and answers."""
    return service.running() is not None


def get_config(entry: str | list[str] | None = None) -> Any:
    """A config value by dotted key (``"dispatcher.port"``), a section, or everything;
    for a list of keys, a dict of each key's value.

    As in Covalent, every installed executor plugin's ``_EXECUTOR_PLUGIN_DEFAULTS`` are
    part of it, under ``executors.<short name>``, below what the config file says.
    ConfigError for a key that is not there.
    """
    if isinstance(entry, (list, tuple)):
        return {key: get_config(key) for key in entry}
    if (entry and not entry.startswith("executors")) or _discovering.get():
        return _config.get_value(entry)  # (a plugin asking while imported: no defaults yet)
    return _config.get_value(entry, base={"executors": _plugin_defaults()})


_discovering: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "covalent_discovering", default=False
)


def _plugin_defaults() -> dict[str, Any]:
    token = _discovering.set(True)
    try:
        return plugins.default_settings(plugins.discover())
    finally:
        _discovering.reset(token)


def set_config(new_config: dict[str, Any] | str, new_value: Any = None) -> None:
    """Set values: ``set_config({"sdk.log_level": "debug"})`` or ``set_config(key, value)``."""
    _config.set_values(new_config, new_value)


def reload_config() -> None:
    """Re-read the config file on the next access."""
    _config.reload()
