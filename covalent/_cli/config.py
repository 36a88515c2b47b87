"""``covalent config [get KEY | set KEY VALUE | unset KEY]``: the configuration file.

Without a subcommand it prints the whole configuration (defaults, file and environment
together). Secrets are masked in everything printed: values of keys that name a secret
(``dispatcher.token``) are hidden and passwords in URLs (``dispatcher.db_url``) show as
``***``. ``set`` reads VALUE as a TOML literal when it is one (``8``, ``true``,
``"text"``) and checks it against the key's type; each change says whether it needs
``covalent restart``.
"""

from __future__ import annotations

import json

import tomli_w
import typer

from covalent import _config
from covalent._errors import ConfigError

config_app = typer.Typer(
    help="Print or change the configuration (secrets masked).", invoke_without_command=True
)


@config_app.callback()
def show_all(context: typer.Context) -> None:
    """Print the configuration (defaults, file and environment together), or change it."""
    if context.invoked_subcommand is not None:
        return
    typer.echo(f"# {_config.paths().config_file}")
    typer.echo(tomli_w.dumps(_config.masked(_config.load())), nl=False)


def _shown(key: str, value: object) -> str:
    value = _config.masked({key.rsplit(".", 1)[-1]: value})[key.rsplit(".", 1)[-1]]
    if isinstance(value, dict):
        return tomli_w.dumps(value).rstrip("\n")
    return value if isinstance(value, str) else json.dumps(value)


def _when(key: str) -> str:
    if _config.needs_restart(key):
        return "it takes effect at the next `covalent restart`"
    return "it takes effect at once"


KEY = typer.Argument(..., metavar="KEY", help="A dotted key, like dispatcher.port.")


@config_app.command("get")
def get(key: str = KEY) -> None:
    """Print one value (or a section) by its dotted key."""
    typer.echo(_shown(key, _config.get_value(key)))


@config_app.command("set")
def set_(
    key: str = KEY,
    value: str = typer.Argument(..., metavar="VALUE", help="A TOML literal, or text."),
) -> None:
    """Save a value to the config file."""
    checked = _config.check_value(key, _config.parse_value(value))
    _config.set_values(key, checked)
    typer.echo(f"Saved {key} = {_shown(key, checked)}; {_when(key)}.")


@config_app.command("unset")
def unset(key: str = KEY) -> None:
    """Remove a value from the config file, so that its default applies again."""
    if not _config.unset_value(key):
        raise ConfigError(f"The config file does not set {key}; nothing to unset.")
    typer.echo(f"Removed {key} from the config file; {_when(key)}.")
