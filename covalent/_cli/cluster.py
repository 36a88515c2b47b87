"""``covalent cluster``: show or change the server's local Dask cluster.

The cluster is the one DaskExecutors without a scheduler address run on; the server
owns it (see docs/executors-dask.md). Each option is one request to the server's
``/api/v1/cluster`` routes (``covalent/_server/cluster.py``).
"""

from __future__ import annotations

import json
from typing import Any

import typer

from covalent import _config
from covalent._cli.original import dask_log_lines
from covalent._client.http import client_for

CLUSTER_TIMEOUT = 600.0
"""Seconds to wait for the server to start, scale or restart the cluster."""


def _request(method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
    client = client_for(_config.server_url())
    response = client.request(method, f"/cluster{path}", timeout=CLUSTER_TIMEOUT, json=body)
    answer: dict[str, Any] = response.json()
    return answer


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def _describe(info: dict[str, Any]) -> str:
    return (
        f"Local Dask cluster is running at {info['address']} with "
        f"{_count(info['n_workers'], 'worker')} ({_count(info['threads'], 'thread')})."
    )


def cluster(
    status: bool = typer.Option(
        False, "--status", help="Say whether the cluster runs (the default; never starts it)."
    ),
    info: bool = typer.Option(
        False, "--info", help="Print its address, dashboard and workers as JSON."
    ),
    address: bool = typer.Option(False, "--address", help="Print its scheduler's address."),
    size: bool = typer.Option(False, "--size", help="Print its number of workers."),
    scale: int = typer.Option(None, "--scale", metavar="N", help="Give it N worker processes."),
    restart: bool = typer.Option(
        False, "--restart", help="Restart its workers (electrons running there fail)."
    ),
    logs: bool = typer.Option(False, "--logs", help="Print the server log's lines about it."),
) -> None:
    """Show or change the server's local Dask cluster (DaskExecutor without an address).

    Every option but --status starts the cluster if it is not running yet.
    """
    chosen = [status, info, address, size, scale is not None, restart, logs]
    if sum(chosen) > 1:
        raise typer.BadParameter(
            "Give only one of --status, --info, --address, --size, --scale, --restart, --logs."
        )
    if logs:
        for line in dask_log_lines():
            typer.echo(line)
    elif info or address or size:
        described = _request("POST", "/start")
        if info:
            typer.echo(json.dumps(described, indent=2))
        else:
            typer.echo(described["address"] if address else str(described["n_workers"]))
    elif scale is not None:
        described = _request("POST", "/scale", {"n_workers": scale})
        typer.echo(f"Local Dask cluster now has {_count(described['n_workers'], 'worker')}.")
    elif restart:
        described = _request("POST", "/restart")
        typer.echo(f"Local Dask cluster restarted its {_count(described['n_workers'], 'worker')}.")
    else:
        _print_status(_request("GET", ""))


def _print_status(info: dict[str, Any]) -> None:
    if info["running"]:
        typer.echo(_describe(info))
    else:
        typer.echo(
            "Local Dask cluster is not running; it starts when an electron first runs on "
            "DaskExecutor without a scheduler address (or with `covalent cluster --scale N`)."
        )
