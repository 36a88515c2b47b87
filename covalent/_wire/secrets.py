"""Executor settings that hold secrets, masked wherever settings are shown.

The server keeps an executor's settings as they were given (the executor needs them to
run), but every answer that shows them (a dispatch's manifest, the UI's node panel) and
every log line passes them through :func:`mask_settings` first: the values of ``env``
(environment variables often carry keys), of every setting whose name says it is a
secret (:data:`SECRET_WORDS`), and of the names a plugin lists in its class attribute
``SECRET_SETTINGS``, become :data:`MASK`.
"""

from __future__ import annotations

import copy
from collections.abc import Collection, Mapping
from typing import Any

MASK = "********"
SECRET_WORDS = (
    "password",
    "passwd",
    "passphrase",
    "secret",
    "token",
    "credential",
    "api_key",
    "apikey",
    "access_key",
    "private_key",
)
"""Parts of a setting's name that mark it secret (``aws_secret_access_key``,
``api_token``, ``db_password``, ...). A setting naming a file (``..._file``,
``..._path``) is a path, not a secret, and is shown."""


def is_secret(name: str, declared: Collection[str] = ()) -> bool:
    """Whether the setting called ``name`` holds a secret."""
    lowered = name.lower()
    if name in declared:
        return True
    if lowered.endswith(("_file", "_path", "_dir")):
        return False
    return any(word in lowered for word in SECRET_WORDS)


def mask_settings(attributes: dict[str, Any], declared: Collection[str] = ()) -> dict[str, Any]:
    """A copy of an executor's settings with its secrets masked (empty values stay)."""
    masked: dict[str, Any] = {}
    for name, value in attributes.items():
        if name == "env" and isinstance(value, dict):
            masked[name] = {k: MASK for k in value}
        elif value not in (None, "") and is_secret(name, declared):
            masked[name] = MASK
        else:
            masked[name] = value
    return masked


Declared = Mapping[str, Collection[str]]
"""Each plugin's short name to the settings its class lists in ``SECRET_SETTINGS``."""


def mask_spec(spec: Any, declared: Declared | None = None) -> Any:
    """An executor spec (``{"name", "attributes"}``) with its settings masked."""
    if not isinstance(spec, dict) or not isinstance(spec.get("attributes"), dict):
        return spec
    names = (declared or {}).get(str(spec.get("name")), ())
    return {**spec, "attributes": mask_settings(spec["attributes"], names)}


def mask_manifest(manifest: dict[str, Any], declared: Declared | None = None) -> dict[str, Any]:
    """A copy of a manifest whose nodes' executor settings are masked."""
    shown = copy.copy(manifest)
    nodes = manifest.get("nodes")
    if isinstance(nodes, list):
        shown["nodes"] = [
            {**node, "executor": mask_spec(node["executor"], declared)}
            if isinstance(node, dict) and "executor" in node
            else node
            for node in nodes
        ]
    return shown


def declared_secrets(plugins: Mapping[str, Any]) -> dict[str, Collection[str]]:
    """``SECRET_SETTINGS`` of each plugin class (a mapping of short name to an object
    with a ``cls``, as executor discovery gives)."""
    found: dict[str, Collection[str]] = {}
    for name, plugin in plugins.items():
        names = getattr(getattr(plugin, "cls", None), "SECRET_SETTINGS", ())
        if isinstance(names, (list, tuple, set, frozenset)):
            found[name] = frozenset(str(n) for n in names)
    return found
