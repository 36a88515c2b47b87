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
import re
import sys
import tempfile
import warnings
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
            "cache_dir": str(where.cache_dir),
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


OPTIONAL_KEYS = {"dispatcher": {"token", "db_url"}}
"""Keys this covalent reads that have no default."""
ORIGINAL_SECTIONS = ("user_interface", "dask", "workflow_data")
"""Sections only a config file written by the original Covalent has."""


def _adopt(data: dict[str, Any], where: Paths, path: Path) -> dict[str, Any]:
    """The file's settings, as this covalent takes them. A file the original Covalent
    wrote (it has sections only that one writes) holds many settings this covalent does
    not use: they stay readable (``get_config``) but do nothing, and one warning names
    them. Its ``dispatcher.db_path`` is dropped: a database of another schema, which this
    covalent must not open.
    """
    if not any(section in data for section in ORIGINAL_SECTIONS):
        return data
    known = defaults(where)
    unused: list[str] = []
    for section, values in data.items():
        if section not in known or not isinstance(values, dict):
            unused.append(section)
        elif section != "executors":
            allowed = set(known[section]) | OPTIONAL_KEYS.get(section, set())
            unused += [f"{section}.{k}" for k in values if k not in allowed]
    kept = copy.deepcopy(data)
    if "db_path" in kept.get("dispatcher", {}):
        del kept["dispatcher"]["db_path"]
        unused.append("dispatcher.db_path (the original Covalent's database)")
    if unused:
        warnings.warn(
            f"{path} was written by the original Covalent; these settings are not used "
            f"here and are ignored: {', '.join(unused)}.",
            stacklevel=4,
        )
    return kept


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
        from_file = _adopt(_read_file(where.config_file), where, where.config_file)
        merged = _merge(_merge(defaults(where), from_file), _env_overrides())
        _loaded.clear()
        _loaded[key] = merged
    return merged


_loaded: dict[tuple[Any, ...], dict[str, Any]] = {}


def get_value(key: str | None = None, base: dict[str, Any] | None = None) -> Any:
    """A value by dotted key (``"dispatcher.port"``), a section, or everything; with
    ``base``, over those defaults (a key in the configuration wins)."""
    config = _merged() if base is None else _merge(base, _merged())
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


def _unset_dotted(tree: dict[str, Any], key: str) -> bool:
    """Remove ``key`` from ``tree`` (and sections it leaves empty); whether it was there."""
    parts = key.split(".")
    trail = [tree]
    for part in parts[:-1]:
        node = trail[-1].get(part)
        if not isinstance(node, dict):
            return False
        trail.append(node)
    if parts[-1] not in trail[-1]:
        return False
    del trail[-1][parts[-1]]
    for depth in range(len(parts) - 1, 0, -1):
        if trail[depth]:
            break
        del trail[depth - 1][parts[depth - 1]]
    return True


def set_values(new_config: dict[str, Any] | str, new_value: Any = None) -> None:
    """Update the file: ``set_values({"sdk.port": 1})`` or ``set_values("sdk.port", 1)``.

    A value of None removes the key from the file (its default applies again).
    """
    updates = {new_config: new_value} if isinstance(new_config, str) else dict(new_config)
    where = paths()
    tree = copy.deepcopy(_read_file(where.config_file))
    for key, value in updates.items():
        if isinstance(value, dict):
            for sub, subvalue in _flatten(value, key):
                _set_dotted(tree, sub, subvalue)
        elif value is None:
            _unset_dotted(tree, key)
        else:
            _set_dotted(tree, key, value)
    write(where.config_file, tree)


def unset_value(key: str) -> bool:
    """Remove ``key`` from the file (its default applies again); whether it was set there."""
    where = paths()
    tree = copy.deepcopy(_read_file(where.config_file))
    found = _unset_dotted(tree, key)
    if found:
        write(where.config_file, tree)
    return found


def file_values() -> dict[str, Any]:
    """What the config file itself holds (no defaults, no environment)."""
    return copy.deepcopy(_read_file(paths().config_file))


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


LIVE_KEYS = frozenset({"sdk.log_level", "sdk.auto_start"})
"""Keys that take effect without restarting the server (the SDK reads them at each use;
the server applies a new ``sdk.log_level`` set through its Settings page at once)."""

EXTRA_KEYS: dict[str, type] = {"dispatcher.db_url": str, "dispatcher.token": str}
"""Keys with no default that may be set."""

LOG_LEVELS = ("debug", "info", "warning", "error", "critical")
"""The values ``sdk.log_level`` takes (any case)."""


def needs_restart(key: str) -> bool:
    """Whether a change of ``key`` takes effect only when the server restarts."""
    return key not in LIVE_KEYS


def parse_value(text: str) -> Any:
    """A value typed on a command line: a TOML literal (``8``, ``true``, ``"a b"``,
    ``[1, 2]``) if it is one, else the text itself."""
    try:
        return tomllib.loads(f"value = {text}")["value"]
    except tomllib.TOMLDecodeError:
        return text


def check_value(key: str, value: Any) -> Any:
    """``value`` fit for ``key``, or a ConfigError saying what the key takes. Keys under
    ``executors.`` take any value (each plugin has its own settings)."""
    parts = key.split(".")
    if len(parts) < 2 or parts[0] not in ("sdk", "dispatcher", "executors"):
        raise ConfigError(
            f"There is no config key '{key}'; keys start with sdk., dispatcher. or "
            "executors.<name>. (`covalent config` prints them)."
        )
    if parts[0] == "executors":
        return value
    known = _known_type(key)
    if known is bool and not isinstance(value, bool):
        raise ConfigError(f"{key} takes true or false, not {value!r}.")
    if known is int and (isinstance(value, bool) or not isinstance(value, int)):
        raise ConfigError(f"{key} takes a whole number, not {value!r}.")
    if known is str and not isinstance(value, str):
        value = str(value)
    if key == "sdk.log_level" and value.lower() not in LOG_LEVELS:
        raise ConfigError(f"sdk.log_level takes one of {', '.join(LOG_LEVELS)}, not {value!r}.")
    if key == "dispatcher.port" and not 1 <= value <= 65535:
        raise ConfigError(f"dispatcher.port takes a port number from 1 to 65535, not {value}.")
    return value


def _known_type(key: str) -> type:
    if key in EXTRA_KEYS:
        return EXTRA_KEYS[key]
    section, _, name = key.partition(".")
    base = defaults().get(section, {})
    if name not in base:
        extra = [k.split(".", 1)[1] for k in EXTRA_KEYS if k.startswith(section + ".")]
        choices = ", ".join(sorted([*base, *extra]))
        raise ConfigError(f"There is no config key '{key}'; the [{section}] keys are: {choices}.")
    return type(base[name])


SECRET_WORDS = ("token", "password", "secret")
_URL_PASSWORD = re.compile(r"([A-Za-z][A-Za-z0-9+.-]{0,63}://[^:/@\s]{0,256}:)([^@\s]{1,512})@")
"""A URL's ``scheme://user:password@``. Every repeat is bounded, so a long text costs
linear time: the unbounded form took 7.8 s on 100,000 letters (each starting point ran to
the run's end and back), and every server log line goes through it."""


def mask_secrets(text: str) -> str:
    """``text`` with the password of every URL in it replaced by ``***``
    (``postgresql://user:***@host/db``); a password over 512 characters is not found."""
    if "://" not in text:
        return text
    return _URL_PASSWORD.sub(r"\1***@", text)


def masked(tree: Any, key: str = "") -> Any:
    """A copy of a config tree fit to show: values of keys that name a secret (token,
    password) hidden, and passwords in URLs masked."""
    if isinstance(tree, dict):
        return {k: masked(v, k) for k, v in tree.items()}
    if any(word in key.lower() for word in SECRET_WORDS):
        return "(set, hidden)" if tree else ""
    if isinstance(tree, str):
        return mask_secrets(tree)
    return tree


def server_url(dispatcher_addr: str | None = None) -> str:
    """The base URL of the server the SDK talks to."""
    addr = dispatcher_addr or os.environ.get("COVALENT_SERVER_URL")
    if not addr:
        section = get_value("dispatcher")
        addr = f"{section['address']}:{section['port']}"
    if "://" not in addr:
        addr = f"http://{addr}"
    return addr.rstrip("/")
