"""``covalent logs``: the server log, or what a dispatch's nodes wrote, once or followed.

Following (``-f``) reads the server's live event stream (``GET /api/v1/events``): it
opens with ``ready``, then the dispatch as it stands is printed, then each ``output``
event's text, until the dispatch (or the one node asked for) ends. Every event says how
far into its stream its text starts (``offset``), so text that the snapshot already
held is not printed twice; after ``lagged`` (events were dropped) the snapshot is read
again and only what is new is printed.
"""

from __future__ import annotations

import json
import re
import sys
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any, TextIO

import typer

from covalent import _config
from covalent._cli.dispatches import _complete_ids
from covalent._client.dispatch import RECONNECT_TIMEOUT
from covalent._client.http import Client, client_for
from covalent._client.waiting import AbsenceNotes
from covalent._dispatcher.streams import STREAM_LIMIT, stored_length
from covalent._errors import BadRequestError, ServerError, ServerUnavailableError
from covalent._results.status import FINAL_STATUSES

FINAL = {s.value for s in FINAL_STATUSES}
SERVER_LOG_POLL = 0.5
"""Seconds between two looks at the server log file when following it."""
LOG_LINE = re.compile(r"^\d{4}-\d\d-\d\dT\S+ [A-Z]+ \S+ dispatch=(\S+) ")


def logs(
    dispatch_id: str = typer.Argument(
        None,
        metavar="ID",
        help="A dispatch's id (or its start); without it, the server log.",
        autocompletion=_complete_ids,
    ),
    node: int = typer.Argument(None, metavar="NODE", help="A node's id; without it, every node."),
    follow: bool = typer.Option(
        False,
        "-f",
        "--follow",
        help="Keep printing what the nodes write until they end (the server log: until Ctrl-C).",
    ),
    dispatch: str = typer.Option(
        None,
        "--dispatch",
        metavar="ID",
        help="Only the server log's lines about this dispatch (an id or its start).",
    ),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of text."),
) -> None:
    """Print the server log, or the output of a dispatch's nodes.

    With a NODE, its stdout goes to stdout and its stderr to stderr; without, every
    node's output is printed under a `==> name(id) stdout <==` header. When no node
    wrote anything, one line says so. `-f` follows a running dispatch's output live
    and returns when the dispatch (or the NODE) ends.
    """
    if as_json and follow:
        raise BadRequestError("--json and --follow do not go together; use one of them.")
    if dispatch_id is None:
        _server_log(dispatch, follow)
        return
    if dispatch is not None:
        raise BadRequestError("--dispatch filters the server log; give it without an ID.")
    client = client_for(_config.server_url())
    dispatch_id = client.resolve(dispatch_id)
    if follow:
        try:
            Follower(client, dispatch_id, node).run()
        except KeyboardInterrupt:
            raise typer.Exit(130) from None
        return
    nodes = _chosen(client.dispatch(dispatch_id)["nodes"], dispatch_id, node)
    if as_json:
        keys = ("node_id", "name", "status", "stdout", "stderr")
        typer.echo(
            _json(
                {"dispatch_id": dispatch_id, "nodes": [{k: n.get(k) for k in keys} for n in nodes]}
            )
        )
        return
    printer = Printer(node is not None)
    printer.snapshot(nodes)
    printer.finish()
    if not any(n.get("stdout") or n.get("stderr") for n in nodes):
        _say_nothing(dispatch_id, nodes, node)


def _json(data: Any) -> str:
    return json.dumps(data, indent=2, default=str)


def _chosen(
    nodes: list[dict[str, Any]], dispatch_id: str, node: int | None
) -> list[dict[str, Any]]:
    """The node asked for (BadRequestError if there is none), or every node."""
    if node is None:
        return nodes
    found = [n for n in nodes if n["node_id"] == node]
    if not found:
        raise BadRequestError(
            f"Dispatch {dispatch_id} has no node {node}; `covalent show {dispatch_id}` "
            "lists its nodes."
        )
    return found


def _say_nothing(dispatch_id: str, nodes: list[dict[str, Any]], node: int | None) -> None:
    """One line saying that nothing was written (yet); on stderr for one node, whose
    stdout is the node's own."""
    if node is not None:
        row = nodes[0]
        still = " yet" if row["status"] not in FINAL else ""
        typer.echo(
            f"Node {row['name']}({node}) of dispatch {dispatch_id} has written nothing{still} "
            f"({row['status']}).",
            err=True,
        )
        return
    running = any(n["status"] not in FINAL for n in nodes)
    still = " yet" if running else ""
    typer.echo(f"No node of dispatch {dispatch_id} has written anything{still}.")


class Printer:
    """Prints nodes' output once each: keeps, per node and stream, how many characters
    of it are out. One node's: stdout to stdout, stderr to stderr, bare; several
    nodes': under a ``==> name(id) stream <==`` header whenever the source changes."""

    def __init__(self, bare: bool, out: TextIO | None = None, err: TextIO | None = None) -> None:
        self.bare = bare
        self.out = out or sys.stdout
        self.err = err or sys.stderr
        self.printed: dict[tuple[int, str], int] = {}
        self.names: dict[int, str] = {}
        self.last: tuple[int, str] | None = None
        self._ended_line = True

    def snapshot(self, nodes: Iterable[dict[str, Any]]) -> None:
        """Print what the stored rows hold beyond what is out already."""
        for row in nodes:
            self.names[row["node_id"]] = row["name"]
            for stream in ("stdout", "stderr"):
                self._stored(row["node_id"], stream, row.get(stream) or "")

    def _stored(self, node_id: int, stream: str, stored: str) -> None:
        total = stored_length(stored)
        done = self.printed.get((node_id, stream), 0)
        if total < done:  # the node runs again (a server restart): its output anew
            self._write(node_id, stream, f"\n[covalent: {stream} of a new run of this node]\n")
            done = 0
        if total <= done:
            return
        if total == len(stored):  # all of it is in the store
            self._write(node_id, stream, stored[done:])
        elif done and total - done <= STREAM_LIMIT // 2:  # the new part is in the kept tail
            self._write(node_id, stream, stored[-(total - done) :])
        else:  # head, a note of what is left out, tail
            self._write(node_id, stream, stored)
        self.printed[(node_id, stream)] = total

    def chunk(self, node_id: int, stream: str, offset: int, text: str) -> None:
        """Print an output event's text, less what is out already."""
        done = self.printed.get((node_id, stream), 0)
        end = offset + len(text)
        if end <= done:
            return
        self._write(node_id, stream, text[max(0, done - offset) :])
        self.printed[(node_id, stream)] = end

    def _write(self, node_id: int, stream: str, text: str) -> None:
        if not text:
            return
        if self.bare:
            target = self.out if stream == "stdout" else self.err
        else:
            target = self.out
            if self.last != (node_id, stream):
                if self.last is not None and not self._ended_line:
                    target.write("\n")
                name = self.names.get(node_id, "node")
                target.write(f"==> {name}({node_id}) {stream} <==\n")
        target.write(text)
        target.flush()
        self.last = (node_id, stream)
        self._ended_line = text.endswith("\n")

    def finish(self) -> None:
        if not self.bare and not self._ended_line:
            self.out.write("\n")
            self.out.flush()


class Follower:
    """Follows one dispatch's (or one node's) output until it ends."""

    def __init__(self, client: Client, dispatch_id: str, node: int | None) -> None:
        self.client = client
        self.dispatch_id = dispatch_id
        self.node = node
        self.printer = Printer(node is not None)
        self.wrote = False
        self.notes = AbsenceNotes(client.url, dispatch_id)

    def run(self) -> None:
        """Print the output so far, then what comes, until the end; reconnects when the
        stream closes before it (a server that stops and comes back), for up to
        RECONNECT_TIMEOUT seconds of the server not answering, saying so on stderr."""
        try:
            while not self._follow_once():
                time.sleep(1.0)
        finally:
            self.printer.finish()
        if not self.wrote:
            nodes = _chosen(
                self.client.dispatch(self.dispatch_id)["nodes"], self.dispatch_id, self.node
            )
            _say_nothing(self.dispatch_id, nodes, self.node)

    def _follow_once(self) -> bool:
        """One connection; True once the end was seen. A server that does not answer
        is noted and tried again later, until RECONNECT_TIMEOUT."""
        try:
            return self._follow_stream()
        except (ServerUnavailableError, ServerError):
            if self.notes.lost(RECONNECT_TIMEOUT) > RECONNECT_TIMEOUT:
                raise
            return False

    def _follow_stream(self) -> bool:
        """Follow one connection of the event stream; True once the end was seen."""
        for event, data in self.client.events(self.dispatch_id):
            if event == "ready":
                self.notes.back()
            if event in ("ready", "lagged"):
                if self._snapshot():
                    return True
            elif event == "output":
                for item in data:
                    if self.node is None or item["node_id"] == self.node:
                        self.printer.chunk(
                            item["node_id"], item["stream"], item["offset"], item["text"]
                        )
                        self.wrote = True
            elif event == "transitions" and self._ended(data):
                return True
        return self._snapshot()

    def _snapshot(self) -> bool:
        """Print the stored output beyond what is out; True if it has ended."""
        detail = self.client.dispatch(self.dispatch_id)
        nodes = _chosen(detail["nodes"], self.dispatch_id, self.node)
        self.printer.snapshot(nodes)
        self.wrote = self.wrote or any(n.get("stdout") or n.get("stderr") for n in nodes)
        if self.node is not None:
            return nodes[0]["status"] in FINAL
        return bool(detail.get("finished")) or detail["status"] in FINAL

    def _ended(self, transitions: list[dict[str, Any]]) -> bool:
        for t in transitions:
            if t["new"] not in FINAL:
                continue
            if self.node is None and t["node_id"] == -1:
                return True
            if self.node is not None and t["node_id"] == self.node:
                return True
        return False


def _server_log(dispatch: str | None, follow: bool) -> None:
    """The server log file (its lines about one dispatch), followed until Ctrl-C."""
    path = Path(_config.get_value("dispatcher.log_file"))
    if not path.exists() and not follow:
        typer.echo(f"There is no server log yet ({path}).")
        return
    keep = LineFilter(dispatch)
    position = 0
    try:
        while True:
            position = _print_from(path, position, keep)
            if not follow:
                break
            time.sleep(SERVER_LOG_POLL)
    except KeyboardInterrupt:
        raise typer.Exit(130) from None
    if dispatch is not None and keep.kept == 0:
        _no_line_about(dispatch, path)


def _no_line_about(dispatch: str, path: Path) -> None:
    """Nothing in the log is about ``dispatch``: DispatchNotFoundError (exit 9) if the
    server knows no such dispatch, else one line on stderr that says so."""
    try:
        client = client_for(_config.server_url())
        client.status(client.resolve(dispatch))
    except ServerUnavailableError:
        pass  # the log is read without the server; it cannot tell more
    typer.echo(f"The server log ({path}) has no line about dispatch {dispatch}.", err=True)


def _print_from(path: Path, position: int, keep: LineFilter) -> int:
    """Print the log's whole lines from ``position`` on; return where they end."""
    try:
        with open(path, "rb") as f:
            if f.seek(0, 2) < position:  # the file was replaced: start again
                position = 0
            f.seek(position)
            data = f.read()
    except FileNotFoundError:
        return 0
    end = data.rfind(b"\n") + 1
    for line in data[:end].decode(errors="replace").splitlines(keepends=True):
        if keep(line):
            sys.stdout.write(line)
    sys.stdout.flush()
    return position + end


class LineFilter:
    """Which server log lines to print: all, or those of one dispatch with the lines
    that continue them (a traceback)."""

    def __init__(self, dispatch: str | None) -> None:
        self.dispatch = dispatch
        self.keeping = dispatch is None
        self.kept = 0  # lines let through so far

    def __call__(self, line: str) -> bool:
        if self.dispatch is None:
            return True
        match = LOG_LINE.match(line)
        if match is not None:
            self.keeping = match.group(1).startswith(self.dispatch)
        elif line[:4].isdigit():  # a line of another format (a library's own): not ours
            self.keeping = False
        self.kept += self.keeping
        return self.keeping
