"""``PUT /api/v1/ui/config``: the Settings page changes what needs no restart.

Only the keys in ``_config.LIVE_KEYS`` may be changed here (``sdk.log_level``,
``sdk.auto_start``); each is checked like ``covalent config set`` checks it, saved to the
config file, and a new ``sdk.log_level`` is the server's log level at once. Every other
key answers 400 naming the command that changes it and saying it needs a restart.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel

from covalent import _config
from covalent._errors import BadRequestError, ConfigError
from covalent._server import logs

router = APIRouter(prefix="/api/v1/ui/config")


class Change(BaseModel):
    key: str
    value: Any


@router.put("")
def change(body: Change) -> dict[str, Any]:
    """Check and save one live key; ``{"key", "value", "applied": True}``."""
    if body.key not in _config.LIVE_KEYS:
        raise BadRequestError(
            f"{body.key} cannot be changed here: it takes effect only when the server "
            f"restarts. Run `covalent config set {body.key} VALUE`, then `covalent restart`."
        )
    try:
        value = _config.check_value(body.key, body.value)
        if body.key == "sdk.log_level":
            level = logs.parse_level(value)
    except ConfigError as e:
        raise BadRequestError(str(e)) from None
    _config.set_values(body.key, value)
    if body.key == "sdk.log_level":
        logs.set_level(level)
        logging.getLogger("covalent.server").warning("log level set to %s", value)
    return {"key": body.key, "value": value, "applied": True}
