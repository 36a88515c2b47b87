"""``covalent ls|show|cancel|rm|redispatch``: dispatches from the command line
(``covalent logs`` is in logs.py).

Each command talks to the server the SDK would use (``COVALENT_SERVER_URL`` or the
config) and never starts one. Every command that takes a dispatch id takes a unique
prefix of it too (the first characters, as ``git`` takes a commit's). Text output is
made of rich tables (coloured on a terminal); ``--json`` prints one JSON document
instead, for scripts. Errors are CovalentErrors, which ``main`` prints as one line with
their exit code.
"""

from __future__ import annotations

import json
import sys
import time
from datetime import datetime, timezone
from typing import Any

import typer
from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from covalent import _config
from covalent._client.dispatch import cancel as cancel_dispatch
from covalent._client.http import Client, client_for
from covalent._errors import BadRequestError, CovalentError
from covalent._results.html import duration
from covalent._results.result import Result
from covalent._results.status import FINAL_STATUSES, Status

PIPE_WIDTH = 240
"""Columns of text output that is not going to a terminal (so ids are never cut)."""

STATUS_STYLE = {
    "COMPLETED": "green",
    "FAILED": "red",
    "POSTPROCESSING_FAILED": "red",
    "CANCELLED": "yellow",
    "RUNNING": "blue",
    "NOT_RUN": "dim",
}

JSON_OPTION = typer.Option(False, "--json", help="Print JSON instead of text.")


def register(app: typer.Typer) -> None:
    """Add the dispatch commands to the ``covalent`` app."""
    for command in (ls, show, cancel, rm, redispatch):
        app.command()(command)


# helpers


def _client() -> Client:
    return client_for(_config.server_url())


def _console() -> Console:
    terminal = sys.stdout.isatty()
    return Console(width=None if terminal else PIPE_WIDTH, soft_wrap=not terminal)


def _echo_json(data: Any) -> None:
    typer.echo(json.dumps(data, indent=2, default=str))


def _iso(value: float | None) -> str | None:
    return None if value is None else datetime.fromtimestamp(value, tz=timezone.utc).isoformat()


def _short_time(value: float | None) -> str:
    if value is None:
        return ""
    return datetime.fromtimestamp(value).strftime("%Y-%m-%d %H:%M:%S")


def _status(value: str) -> str:
    style = STATUS_STYLE.get(value)
    return f"[{style}]{value}[/{style}]" if style else value


def _resolve(client: Client, dispatch_id: str) -> str:
    """The full id of ``dispatch_id`` or of the one dispatch it is a prefix of."""
    return client.resolve(dispatch_id)


UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_since(text: str | None) -> float | None:
    """``--since``: an age (``30m``, ``2h``, ``3d``, ``1w``) or a local date or time
    (``2026-11-30``, ``2026-11-30T14:00``), as UNIX seconds."""
    if text is None:
        return None
    text = text.strip()
    number, unit = text[:-1], text[-1:].lower()
    if unit in UNITS and number.replace(".", "", 1).isdigit():
        return time.time() - float(number) * UNITS[unit]
    try:
        return datetime.fromisoformat(text).timestamp()
    except ValueError:
        raise typer.BadParameter(
            f"'{text}' is neither an age (30m, 2h, 3d, 1w) nor a date or time "
            "(2026-11-30, 2026-11-30T14:00)."
        ) from None


def _complete_ids(incomplete: str) -> list[str]:
    """Shell completion of dispatch ids: the newest ones the server knows, if it answers."""
    try:
        rows = _client().list_dispatches(limit=100)["dispatches"]
    except CovalentError:
        return []
    return [r["dispatch_id"] for r in rows if r["dispatch_id"].startswith(incomplete)]


ID_ARGUMENT = typer.Argument(
    ...,
    metavar="ID",
    help="The dispatch's id, or a unique prefix of it.",
    autocompletion=_complete_ids,
)


def _complete_statuses(incomplete: str) -> list[str]:
    return [s.value for s in Status if s.value.startswith(incomplete.upper())]


def _dispatch_json(row: dict[str, Any]) -> dict[str, Any]:
    keys = ("dispatch_id", "root_dispatch_id", "lattice_name", "status", "node_count")
    out = {key: row.get(key) for key in keys}
    for key in ("created_at", "start_time", "end_time"):
        out[key] = _iso(row.get(key))
    out["error"] = row.get("error")
    out["results_dir"] = row.get("results_dir")
    return out


def _node_json(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "node_id": row["node_id"],
        "name": row["name"],
        "kind": row.get("kind"),
        "status": row["status"],
        "executor": row.get("executor"),
        "start_time": _iso(row.get("start_time")),
        "end_time": _iso(row.get("end_time")),
        "duration": _seconds(row),
        "attempts": row.get("attempts"),
        "output": row.get("output_repr"),
        "error": row.get("error") or None,
    }


def _seconds(row: dict[str, Any]) -> float | None:
    start, end = row.get("start_time"), row.get("end_time")
    return None if start is None or end is None else round(max(0.0, end - start), 6)


# commands


def ls(
    status: str = typer.Option(
        None,
        "--status",
        help="Only dispatches with this status (COMPLETED, FAILED, RUNNING, ...).",
        autocompletion=_complete_statuses,
    ),
    name: str = typer.Option(
        None, "--name", help="Only lattices whose name contains this (any case)."
    ),
    since: str = typer.Option(
        None,
        "--since",
        help="Only dispatches made since: an age (30m, 2h, 3d, 1w) or a date or time "
        "(2026-11-30, 2026-11-30T14:00).",
    ),
    limit: int = typer.Option(20, "--limit", min=1, max=1000, help="At most this many."),
    offset: int = typer.Option(0, "--offset", min=0, help="Skip this many newest ones first."),
    as_json: bool = JSON_OPTION,
) -> None:
    """List dispatches, newest first, and say how many match in all.

    A dispatch's nodes are its electrons (parameters are not counted).
    """
    answer = _client().list_dispatches(
        status=status.upper() if status else None,
        limit=limit,
        offset=offset,
        name=name,
        since=parse_since(since),
    )
    rows, total = answer["dispatches"], int(answer["total"])
    if as_json:
        _echo_json(
            {
                "dispatches": [_dispatch_json(r) for r in rows],
                "total": total,
                "offset": offset,
            }
        )
        return
    if not rows:
        typer.echo("No dispatches." if not total else f"No dispatches past {offset} of {total}.")
        return
    _console().print(_dispatch_table(rows))
    typer.echo(_shown_of(len(rows), offset, total))


_CONTROLS = {c: f"\\x{c:02x}" for c in [*range(32), 127]}
_CONTROLS_BUT_LINES = {c: v for c, v in _CONTROLS.items() if chr(c) not in "\n\t"}


def plain_cell(text: str) -> Text:
    """A name sent by a client, as a table cell: control characters shown as ``\\x1b``
    (an escape sequence in a name would drive the terminal) and no rich markup (a name
    with ``[/]`` made ``covalent ls`` fail for everyone)."""
    return Text(text.translate(_CONTROLS))


def _dispatch_table(rows: list[dict[str, Any]]) -> Table:
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
    for column in ("dispatch id", "status", "lattice", "nodes", "started", "duration"):
        table.add_column(column, no_wrap=column == "dispatch id")
    for r in rows:
        took = duration(r.get("start_time"), r.get("end_time"))
        table.add_row(
            r["dispatch_id"],
            _status(r["status"]),
            plain_cell(r["lattice_name"]),
            str(r["node_count"]),
            _short_time(r.get("start_time")),
            took,
        )
    return table


def _shown_of(count: int, offset: int, total: int) -> str:
    """``Showing 20 of 37`` (and how to see more)."""
    where = f" (from number {offset + 1})" if offset else ""
    line = f"Showing {count} of {total}{where}."
    if offset + count < total:
        line += f" `--offset {offset + count}` shows the next ones."
    return line


def show(
    dispatch_id: str = ID_ARGUMENT,
    as_json: bool = JSON_OPTION,
) -> None:
    """Show a dispatch: its Result block, then its nodes.

    The block is what `print(result)` prints; each node has its status, executor,
    duration and attempts.
    """
    client = _client()
    dispatch_id = _resolve(client, dispatch_id)
    detail = client.dispatch(dispatch_id)
    result = Result(detail, client.fetch_blobs)
    if as_json:
        _echo_json(_show_json(result, detail))
        return
    try:
        block = str(result)
    except CovalentError:
        raise
    except Exception as e:  # an output this environment cannot unpickle
        raise CovalentError(
            f"Cannot load the outputs of dispatch {dispatch_id} here ({type(e).__name__}: "
            f"{e}); `covalent show {dispatch_id} --json` shows their short forms instead."
        ) from None
    typer.echo(block.translate(_CONTROLS_BUT_LINES))
    typer.echo()
    _console().print(_node_table(detail["nodes"]))


def _node_table(nodes: list[dict[str, Any]]) -> Table:
    table = Table(
        title="Nodes", title_justify="left", box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False
    )
    for column in ("node", "status", "executor", "duration", "attempts"):
        table.add_column(column)
    for row in nodes:
        table.add_row(
            plain_cell(f"{row['name']}({row['node_id']})"),
            _status(row["status"]),
            plain_cell(row.get("executor") or ""),
            duration(row.get("start_time"), row.get("end_time")),
            str(row.get("attempts") or ""),
        )
    return table


def _show_json(result: Result, detail: dict[str, Any]) -> dict[str, Any]:
    out = _dispatch_json(detail)
    out["result"] = _result_repr(result, detail)
    out["duration"] = _seconds(detail)
    out["nodes"] = [_node_json(row) for row in detail.get("nodes", [])]
    return out


def _result_repr(result: Result, detail: dict[str, Any]) -> str | None:
    """The result's repr: unpickled here if possible, else the one the server stored."""
    try:
        return None if result.status != Status.COMPLETED else repr(result.result)
    except Exception:  # unpicklable here: fall back to the stored short form
        digest = detail.get("result_digest")
        stored = [n.get("output_repr") for n in detail["nodes"] if n.get("output_digest") == digest]
        return stored[0] if stored else None


def cancel(
    dispatch_id: str = ID_ARGUMENT,
    nodes: list[int] = typer.Argument(
        None, metavar="NODE", help="Only these nodes (and what depends on them)."
    ),
    as_json: bool = JSON_OPTION,
) -> None:
    """Cancel a dispatch, or some of its nodes.

    Running nodes are stopped; nodes not started yet, and everything downstream of a
    cancelled node, become CANCELLED.
    """
    client = _client()
    dispatch_id = _resolve(client, dispatch_id)
    state = client.status(dispatch_id)["status"]
    if Status(state) in FINAL_STATUSES:
        raise DispatchFinishedError(
            f"Dispatch {dispatch_id} has already finished ({state}); there is nothing to cancel."
        )
    message = cancel_dispatch(dispatch_id, task_ids=list(nodes) if nodes else None)
    if as_json:
        _echo_json(
            {"dispatch_id": dispatch_id, "task_ids": nodes or None, "status": "cancel requested"}
        )
    else:
        typer.echo(message)


class DispatchFinishedError(BadRequestError):
    """A dispatch that has finished cannot be cancelled."""


def rm(
    dispatch_ids: list[str] = typer.Argument(
        ...,
        metavar="ID",
        help="The ids (or unique prefixes) of finished dispatches.",
        autocompletion=_complete_ids,
    ),
    yes: bool = typer.Option(False, "-y", "--yes", help="Do not ask for confirmation."),
    as_json: bool = JSON_OPTION,
) -> None:
    """Delete finished dispatches from the server (asks first).

    Their records go: status, nodes, logs, transitions. A running dispatch must be
    cancelled first.
    """
    client = _client()
    # unknown ids fail before anything is asked or deleted
    dispatch_ids = [_resolve(client, dispatch_id) for dispatch_id in dispatch_ids]
    if not yes:
        listed = ", ".join(dispatch_ids)
        typer.confirm(f"Delete dispatch {listed} for good?", abort=True, err=True)
    for dispatch_id in dispatch_ids:
        client.delete(dispatch_id)
    if as_json:
        _echo_json({"deleted": dispatch_ids})
    else:
        for dispatch_id in dispatch_ids:
            typer.echo(f"Dispatch {dispatch_id} has been deleted.")


def redispatch(
    dispatch_id: str = ID_ARGUMENT,
    reuse: bool = typer.Option(
        False, "--reuse", help="Completed nodes keep their outputs instead of running again."
    ),
    failed_only: bool = typer.Option(
        False,
        "--failed-only",
        help="Retry what failed: run only the nodes that did not complete (FAILED, "
        "CANCELLED, NOT_RUN), reusing the others; refused for a dispatch that completed.",
    ),
    as_json: bool = JSON_OPTION,
) -> None:
    """Run a dispatch again with the same inputs, as a new dispatch.

    The lattice and its inputs come from the server; nothing is uploaded. To change
    electrons or inputs, use `ct.redispatch` from Python.
    """
    client = _client()
    dispatch_id = _resolve(client, dispatch_id)
    if failed_only:
        _check_something_failed(client, dispatch_id)
    new_id = client.redispatch(dispatch_id, reuse=reuse or failed_only)
    if as_json:
        _echo_json({"dispatch_id": new_id, "redispatch_of": dispatch_id})
        return
    how = " (completed nodes reused)" if reuse or failed_only else ""
    typer.echo(f"Dispatch {new_id} runs dispatch {dispatch_id} again{how}.")


def _check_something_failed(client: Client, dispatch_id: str) -> None:
    state = client.status(dispatch_id)["status"]
    if state == Status.COMPLETED:
        raise BadRequestError(
            f"Dispatch {dispatch_id} completed: nothing failed to retry (without "
            "--failed-only it runs again)."
        )
    if Status(state) not in FINAL_STATUSES:
        raise BadRequestError(
            f"Dispatch {dispatch_id} is still {state}; retry what failed once it has finished."
        )
