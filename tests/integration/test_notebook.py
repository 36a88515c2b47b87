"""covalent in a real Jupyter kernel (ipykernel, driven by nbclient as Jupyter drives it):
the progress block while ``get_result(wait=True)`` waits, a Result and a lattice shown
as HTML. Every message the kernel sends is recorded, so the tests see what a notebook
would show, update and empty, in order.

One kernel runs one notebook for the whole module (a kernel costs seconds to start).
Each dispatch waits for a release file, so the test decides when it finishes: after the
progress block was displayed, or once its node has run for a while.
"""

from __future__ import annotations

import html.parser
import os
import re
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nbformat
import pytest
from nbclient import NotebookClient

import covalent as ct
from tests.conftest import Home, wait_for

SETUP = """
import covalent as ct

@ct.electron
def gate(path):
    import os, time
    deadline = time.monotonic() + 300
    while not os.path.exists(path) and time.monotonic() < deadline:
        time.sleep(0.02)
    return "released"

@ct.lattice
def gated(path):
    return gate(path)
"""

WAIT = """
dispatch_id = ct.dispatch(gated)({release!r})
print("ID", dispatch_id, flush=True)
result = ct.get_result(dispatch_id, wait=True{progress})
print("RESULT", result.status, result.result)
"""

CELLS = {
    "setup": SETUP,
    "auto": WAIT.format(release="{auto}", progress=""),
    "off": WAIT.format(release="{off}", progress=", progress=False"),
    "result": "result",
    "lattice": 'gated.build_graph("some/path")\ngated',
}
HELD = 2.0
"""How long a wait is held once its node runs, if no progress block shows earlier: four
times the poll after which a block shows (covalent._client.progress.POLL)."""


class Recording(NotebookClient):
    """A notebook client that keeps every message of each cell, and opens each wait's
    gate once its progress block is shown, or else once its node has run for ``HELD``
    seconds (so a wait that shows nothing still ends, with time to have shown it)."""

    def __init__(self, nb: Any, server: Home, releases: dict[str, Path], **kwargs: Any) -> None:
        super().__init__(nb, **kwargs)
        self.server = server
        self.releases = releases
        self.messages: dict[str, list[dict[str, Any]]] = {name: [] for name in CELLS}
        self.openers: list[threading.Thread] = []

    def process_message(self, msg: dict[str, Any], cell: Any, cell_index: int) -> Any:
        name = list(CELLS)[cell_index]
        self.messages[name].append(msg)
        content = msg["content"]
        if name in self.releases:
            if "<progress" in content.get("data", {}).get("text/html", ""):
                self.releases[name].touch()
            found = re.search(r"ID (\S+)", content.get("text", ""))
            if msg["msg_type"] == "stream" and found:
                opener = threading.Thread(target=self.open_when_held, args=(name, found.group(1)))
                opener.start()
                self.openers.append(opener)
        return super().process_message(msg, cell, cell_index)

    def open_when_held(self, name: str, dispatch_id: str) -> None:
        def running() -> bool:
            node = ct.get_result(dispatch_id, dispatcher_addr=self.server.url).get_node_result(0)
            return node["status"] == ct.status.RUNNING

        try:
            wait_for(running, what="the gate to run")
            held_until = time.monotonic() + HELD
            wait_for(lambda: self.releases[name].exists() or time.monotonic() > held_until)
        finally:
            self.releases[name].touch()


@pytest.fixture(scope="module")
def kernel_run(
    shared_server: Home, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Recording]:
    """The notebook of CELLS, run by a real ipykernel against the shared server."""
    folder = tmp_path_factory.mktemp("notebook")
    releases = {"auto": folder / "release-auto", "off": folder / "release-off"}
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell(source.format(**{k: str(v) for k, v in releases.items()}))
        for source in CELLS.values()
    ]
    env = {**os.environ, **shared_server.env, "COVALENT_SERVER_URL": shared_server.url}
    client = Recording(
        nb,
        shared_server,
        releases,
        kernel_name="python3",
        timeout=180,
        resources={"metadata": {"path": str(folder)}},
    )
    try:
        client.execute(env=env)  # the kernel's environment
    finally:
        for path in releases.values():
            path.touch()
        for opener in client.openers:
            opener.join()
    yield client


class Progress(html.parser.HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.bars: list[dict[str, str | None]] = []
        self.text = ""

    def handle_starttag(self, tag, attrs):
        if tag == "progress":
            self.bars.append(dict(attrs))

    def handle_data(self, data):
        self.text += data


def shown(messages: list[dict[str, Any]]) -> list[tuple[str, str, str]]:
    """What the cell displayed and updated: (message type, display id, HTML), in order."""
    return [
        (
            m["msg_type"],
            m["content"].get("transient", {}).get("display_id", ""),
            m["content"]["data"].get("text/html", ""),
        )
        for m in messages
        if m["msg_type"] in ("display_data", "update_display_data")
    ]


def stdout(messages: list[dict[str, Any]]) -> str:
    return "".join(
        m["content"]["text"]
        for m in messages
        if m["msg_type"] == "stream" and m["content"]["name"] == "stdout"
    )


def html_result(messages: list[dict[str, Any]]) -> str:
    (result,) = [m for m in messages if m["msg_type"] == "execute_result"]
    return str(result["content"]["data"]["text/html"])


def test_progress_is_html_updated_in_place_then_emptied(kernel_run: Recording) -> None:
    messages = kernel_run.messages["auto"]
    assert stdout(messages).splitlines()[-1] == "RESULT COMPLETED released"
    blocks = shown(messages)
    assert len(blocks) >= 2, blocks
    (kind, display_id, first), *updates = blocks
    assert kind == "display_data" and display_id  # one block, with an id to update it by
    progress = Progress()
    progress.feed(first)
    assert progress.bars == [{"value": "0", "max": "1"}]
    assert "0/1 nodes" in progress.text and "1 running" in progress.text
    dispatch_id = stdout(messages).split()[1]
    assert f"dispatch {dispatch_id[:8]}" in progress.text
    assert [(k, i) for k, i, _ in updates] == [("update_display_data", display_id)] * len(updates)
    assert updates[-1][2] == ""  # emptied once the wait is over
    outputs = kernel_run.nb.cells[1].outputs  # what the saved notebook keeps: the empty block
    assert [o.get("data", {}).get("text/html") for o in outputs if "data" in o] == [""]


def test_progress_false_displays_nothing(kernel_run: Recording) -> None:
    messages = kernel_run.messages["off"]
    assert stdout(messages).splitlines()[-1] == "RESULT COMPLETED released"
    assert shown(messages) == []


def test_a_result_shows_as_an_html_table(kernel_run: Recording) -> None:
    table = html_result(kernel_run.messages["result"])
    assert "COMPLETED" in table and "gate(0)" in table and "&#x27;released&#x27;" in table


def test_a_lattice_shows_its_graph(kernel_run: Recording) -> None:
    picture = html_result(kernel_run.messages["lattice"])
    assert "<svg" in picture and "gate(0)" in picture and ":parameter:some/path(1)" in picture
