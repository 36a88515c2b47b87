"""``covalent cache clear``: forget the outputs kept for ``@ct.electron(cache=True)``."""

from __future__ import annotations

import typer

from covalent import _config
from covalent._client.http import client_for

cache_app = typer.Typer(help="The output cache of electrons with cache=True.", no_args_is_help=True)


@cache_app.command("clear")
def clear() -> None:
    """Forget every cached output (dispatches keep theirs)."""
    cleared = client_for(_config.server_url()).clear_cache()
    typer.echo(f"Cleared {cleared} cached output{'s' if cleared != 1 else ''}.")
