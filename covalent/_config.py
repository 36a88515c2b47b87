"""Configuration: a TOML file plus environment overrides.

The file is ``~/.config/covalent/covalent.conf`` (``COVALENT_CONFIG_DIR`` moves the
folder). Values missing from the file come from :func:`defaults`. Every read goes
through :func:`load`, which re-reads the file only when it changed, so there is no
process-wide state to reset between tests. Writes replace the file atomically.
"""

from __future__ import annotations

import copy
import functools
import os
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import platformdirs
import tomli_w

from covalent._errors import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

APP = "covalent"
DEFAULT_PORT = 48008


@dataclass(frozen=True)
class Paths:
    """Where covalent keeps its files, derived from the environment."""

    config_dir: Path
    data_dir: Path
    cache_dir: Path

    @property
    def config_file(self) -> Path:
        return self.config_dir / "covalent.conf"

    @property
    def pid_file(self) -> Path:
        return self.cache_dir / "server.pid"

    @property
    def log_file(self) -> Path:
        return self.cache_dir / "server.log"


_ENV_KEYS = (
    "HOME",
    "XDG_CONFIG_HOME",
    "XDG_DATA_HOME",
    "XDG_CACHE_HOME",
    "COVALENT_CONFIG_DIR",
    "COVALENT_DATA_DIR",
    "COVALENT_CACHE_DIR",
    "COVALENT_LOG_LEVEL",
    "COVALENT_TOKEN",
    "COVALENT_DATABASE_URL",
)


def _environment() -> tuple[str | None, ...]:
    """The environment variables the configuration depends on."""
    return tuple(os.environ.get(k) for k in _ENV_KEYS)


def paths() -> Paths:
    """The folders for this process's environment (XDG, or COVALENT_*_DIR)."""
    return _paths(_environment())


@functools.lru_cache(maxsize=16)
def _paths(_environment: tuple[str | None, ...]) -> Paths:
    env = os.environ
    return Paths(
        config_dir=Path(env.get("COVALENT_CONFIG_DIR") or platformdirs.user_config_dir(APP)),
        data_dir=Path(env.get("COVALENT_DATA_DIR") or platformdirs.user_data_dir(APP)),
        cache_dir=Path(env.get("COVALENT_CACHE_DIR") or platformdirs.user_cache_dir(APP)),
    )


def defaults(where: Paths | None = None) -> dict[str, Any]:
    """The built-in configuration; the file and the environment override it."""
    where = where or paths()
    return {
        "sdk": {
            "log_level": "info",
            "auto_start": True,
        },
        "dispatcher": {
            "address": "localhost",
            "port": DEFAULT_PORT,
            "db_path": str(where.data_dir / "dispatcher.sqlite"),
            "results_dir": str(where.cache_dir / "results"),
            "blobs_dir": str(where.data_dir / "blobs"),
            "log_file": str(where.log_file),
            "max_upload_bytes": 4 * 1024**3,
        },
        "executors": {},
    }


_cache: dict[Path, tuple[float, dict[str, Any]]] = {}


def _read_file(path: Path) -> dict[str, Any]:
    try:
        mtime = path.stat().st_mtime
    except FileNotFoundError:
        return {}
    hit = _cache.get(path)
    if hit and hit[0] == mtime:
        return hit[1]
    try:
        data = tomllib.loads(path.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise ConfigError(
            f"The config file {path} is not valid TOML: {e}; fix or delete it."
        ) from e
    _cache[path] = (mtime, data)
    return data


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _env_overrides() -> dict[str, Any]:
    env = os.environ
    over: dict[str, Any] = {}
    if env.get("COVALENT_LOG_LEVEL"):
        over.setdefault("sdk", {})["log_level"] = env["COVALENT_LOG_LEVEL"]
    if env.get("COVALENT_TOKEN"):
        over.setdefault("dispatcher", {})["token"] = env["COVALENT_TOKEN"]
    if env.get("COVALENT_DATABASE_URL"):
        over.setdefault("dispatcher", {})["db_url"] = env["COVALENT_DATABASE_URL"]
    return over


def load() -> dict[str, Any]:
    """The whole configuration: defaults, then the file, then the environment (a copy)."""
    return copy.deepcopy(_merged())


def _merged() -> dict[str, Any]:
    """The configuration, merged once per (environment, file version); not to be changed."""
    environment = _environment()
    where = _paths(environment)
    try:
        version = where.config_file.stat().st_mtime_ns
    except FileNotFoundError:
        version = None
    key = (environment, version)
    merged = _loaded.get(key)
    if merged is None:
        merged = _merge(_merge(defaults(where), _read_file(where.config_file)), _env_overrides())
        _loaded.clear()
        _loaded[key] = merged
    return merged


_loaded: dict[tuple[Any, ...], dict[str, Any]] = {}


def get_value(key: str | None = None) -> Any:
    """A value by dotted key (``"dispatcher.port"``), a section, or everything."""
    config = _merged()
    if not key:
        return copy.deepcopy(config)
    node: Any = config
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            raise ConfigError(
                f"There is no config key '{key}' (no '{part}' in it); `covalent config` "
                "prints every key."
            )
        node = node[part]
    return copy.deepcopy(node)


def _set_dotted(tree: dict[str, Any], key: str, value: Any) -> None:
    parts = key.split(".")
    node = tree
    for part in parts[:-1]:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise ConfigError(f"Cannot set '{key}': '{part}' is a value, not a section.")
    node[parts[-1]] = value


def set_values(new_config: dict[str, Any] | str, new_value: Any = None) -> None:
    """Update the file: ``set_values({"sdk.port": 1})`` or ``set_values("sdk.port", 1)``."""
    updates = {new_config: new_value} if isinstance(new_config, str) else dict(new_config)
    where = paths()
    tree = copy.deepcopy(_read_file(where.config_file))
    for key, value in updates.items():
        if isinstance(value, dict):
            for sub, subvalue in _flatten(value, key):
                _set_dotted(tree, sub, subvalue)
        else:
            _set_dotted(tree, key, value)
    write(where.config_file, tree)


def _flatten(tree: dict[str, Any], prefix: str) -> list[tuple[str, Any]]:
    out: list[tuple[str, Any]] = []
    for key, value in tree.items():
        full = f"{prefix}.{key}"
        out.extend(_flatten(value, full) if isinstance(value, dict) else [(full, value)])
    return out


def write(path: Path, tree: dict[str, Any]) -> None:
    """Write ``tree`` as TOML to ``path`` atomically (temp file, fsync, rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        text = tomli_w.dumps(tree)
    except TypeError as e:
        raise ConfigError(f"Cannot write the config: {e}; values must be TOML types.") from e
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".covalent.conf.")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _cache.pop(path, None)
    _loaded.clear()


def reload() -> None:
    """Forget what was read, so the next read sees the file as it is now."""
    _cache.clear()
    _loaded.clear()


def server_url(dispatcher_addr: str | None = None) -> str:
    """The base URL of the server the SDK talks to."""
    addr = dispatcher_addr or os.environ.get("COVALENT_SERVER_URL")
    if not addr:
        section = get_value("dispatcher")
        addr = f"{section['address']}:{section['port']}"
    if "://" not in addr:
        addr = f"http://{addr}"
    return addr.rstrip("/")
