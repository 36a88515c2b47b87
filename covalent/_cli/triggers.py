"""``covalent triggers ls|stop``: the triggers the server has armed, and stopping them.

A trigger belongs to the dispatch whose lattice it dispatches again (see
docs/triggers.md); ``stop`` takes those dispatches' ids (or unique prefixes), as
``ct.stop_triggers`` does.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import typer
from rich import box
from rich.table import Table

from covalent import _config
from covalent._cli.dispatches import JSON_OPTION, _console, plain_cell
from covalent._client.http import Client, client_for

triggers_app = typer.Typer(help="List or stop triggers.", no_args_is_help=True)


def _client() -> Client:
    return client_for(_config.server_url())


def _when(value: float | None) -> str:
    return "" if value is None else datetime.fromtimestamp(value).strftime("%Y-%m-%d %H:%M:%S")


def describe(spec: dict[str, Any]) -> str:
    """A trigger's spec in a few words: ``every 60 s``, ``created in /data``."""
    if spec.get("kind") == "time":
        return f"every {spec.get('time_gap')} s"
    if spec.get("kind") == "dir":
        return f"{', '.join(spec.get('event_names') or [])} in {spec.get('dir_path')}"
    return json.dumps({k: v for k, v in spec.items() if k != "kind"})


@triggers_app.command("ls")
def ls(
    dispatch_id: str = typer.Argument(
        None, metavar="ID", help="Only the triggers of this dispatch (id or unique prefix)."
    ),
    every: bool = typer.Option(False, "--all", help="Stopped triggers too."),
    as_json: bool = JSON_OPTION,
) -> None:
    """List the active triggers (with --all, stopped ones too), oldest first."""
    client = _client()
    if dispatch_id is not None:
        dispatch_id = client.resolve(dispatch_id)
    rows = client.triggers(dispatch_id, None if every else True)
    if as_json:
        typer.echo(json.dumps({"triggers": rows}, indent=2, default=str))
        return
    if not rows:
        typer.echo("No triggers." if every else "No active triggers (--all lists stopped ones).")
        return
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
    for column in ("trigger", "dispatch id", "kind", "fires", "state", "fired", "last fired"):
        table.add_column(column, no_wrap=column == "dispatch id")
    for row in rows:
        table.add_row(
            str(row["trigger_id"]),
            row["dispatch_id"],
            row["kind"],
            plain_cell(describe(row["spec"])),
            _state(row),
            str(row.get("fired") or 0),
            _when(row.get("last_fired_at")),
        )
    _console().print(table)


def _state(row: dict[str, Any]) -> str:
    if not row.get("active"):
        return "stopped"
    if row.get("problem"):
        return f"not armed: {row['problem']}"
    return "armed" if row.get("armed") else "active"


@triggers_app.command("stop")
def stop(
    dispatch_ids: list[str] = typer.Argument(
        ..., metavar="ID", help="Dispatches (ids or unique prefixes) whose triggers to stop."
    ),
    as_json: bool = JSON_OPTION,
) -> None:
    """Stop every trigger of these dispatches; they dispatch nothing more."""
    client = _client()
    full = [client.resolve(dispatch_id) for dispatch_id in dispatch_ids]
    stopped = client.stop_triggers(full)
    if as_json:
        typer.echo(json.dumps({"stopped": stopped, "dispatch_ids": full}))
        return
    count = len(stopped)
    typer.echo(f"Stopped {count} trigger{'' if count == 1 else 's'} of {', '.join(full)}.")
