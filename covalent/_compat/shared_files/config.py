"""``covalent._shared_files.config``: ``get_config``, ``set_config`` and friends."""

from __future__ import annotations

from covalent._api import get_config, reload_config, set_config

__all__ = ["get_config", "reload_config", "set_config"]
