"""``covalent status``: whether the server runs, where, and its database's health."""

from __future__ import annotations

import typer

from covalent import _config
from covalent._client import service
from covalent._client.http import client_for
from covalent._errors import CovalentError, StoreUnavailableError


def status() -> None:
    """Say whether the server runs, where, and whether its database answers.

    Exits 7 when the server runs but cannot reach its database.
    """
    record = service.running()
    if record is None:
        typer.echo("Covalent server is stopped.")
        return
    typer.echo(f"Covalent server is running at {record['url']}.")
    try:
        health = client_for(record["url"]).database()
    except CovalentError as e:
        typer.echo(f"Database: unknown ({e})")
        return
    state = "reachable" if health["ok"] else f"UNREACHABLE: {health['error']}"
    typer.echo(f"Database: {_config.mask_secrets(health['url'])} ({state})")
    executors = _served_executors(record["url"])
    if executors:
        typer.echo("Executors:")
        for name, text in executors.items():
            typer.echo(f"  {name}: {text}")
    if not health["ok"]:
        raise typer.Exit(StoreUnavailableError.exit_code)


def _served_executors(url: str) -> dict[str, str]:
    """The server's executors by short name (what its health answer says), or none."""
    try:
        answer = client_for(url).health().get("executors")
    except CovalentError:
        return {}
    return dict(answer) if isinstance(answer, dict) else {}
