"""The web UI in a real browser: Debian's Chromium driven by Playwright, on real servers.

Chromium comes from `bash scripts/services/chromium.sh install`; the tests skip without
it. Every wait is an `expect` with a deadline (or `wait_for`), never a fixed sleep.
"""

from __future__ import annotations

import json
import re
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from sqlalchemy import insert

import covalent as ct
from covalent import _config
from covalent._errors import DispatchNotFoundError
from covalent._server import ui
from covalent._server.app import create_app
from covalent._store.schema import dispatches, nodes
from covalent._store.store import Store
from tests.conftest import Home, free_port, wait_for
from tests.ui.conftest import DEADLINE_MS, sync_api

expect = sync_api.expect
expect.set_options(timeout=DEADLINE_MS)


def state(status: str) -> re.Pattern[str]:
    """Matches the class of a graph node with ``status``."""
    return re.compile(rf"\bst-{status}\b")


# workflows


@ct.electron
def gate(path: str, x: int) -> int:
    import os
    import time

    deadline = time.monotonic() + 300
    while not os.path.exists(path) and time.monotonic() < deadline:
        time.sleep(0.02)
    print(f"released {x}")
    return x * 10


@ct.electron
def double(x: int) -> int:
    return 2 * x


@ct.electron
def talks_slowly(first: str, second: str) -> int:
    import os
    import time

    def wait(path: str) -> None:
        deadline = time.monotonic() + 300
        while not os.path.exists(path) and time.monotonic() < deadline:
            time.sleep(0.02)

    print("the first line", flush=True)
    wait(first)
    os.system("echo the second line, from a subprocess; echo and a warning >&2")
    wait(second)
    return 1


@ct.lattice
def slow_talk(first: str, second: str) -> int:
    return talks_slowly(first, second)


@ct.electron
def chatty(x: int) -> dict[str, Any]:
    print(f"hello from chatty {x}")
    print("a warning from chatty", file=sys.stderr)
    return {"x": x, "items": list(range(x))}


@ct.electron
def explode(x: int) -> int:
    raise ValueError(f"bad value {x}")


@ct.electron(retries=2)
def flaky(marker: str) -> str:
    import os

    if not os.path.exists(marker):
        open(marker, "w").close()
        raise RuntimeError("the first attempt fails")
    return "second time lucky"


@ct.lattice
def flaky_flow(marker: str) -> str:
    return flaky(marker)


@ct.lattice
def gated_flow(path: str, x: int) -> int:
    return double(x=gate(path=path, x=x))


@ct.lattice
def two_gates(path: str, other: str) -> list[int]:
    return [gate(path=path, x=1), gate(path=other, x=2)]


@ct.lattice
def chatty_flow(x: int) -> dict[str, Any]:
    return chatty(x)


@ct.lattice
def failing_flow(x: int) -> int:
    return double(explode(x))


@ct.lattice
def ui_search_target(x: int) -> int:
    return double(x)


@ct.lattice
def ui_search_broken(x: int) -> int:
    return explode(x)


@ct.electron
def inc(x: int) -> int:
    return x + 1


@ct.electron
def add(x: int, y: int) -> int:
    return x + y


@ct.electron
def total(values: list[int]) -> int:
    return sum(values)


@ct.lattice
def mesh(n: int, rows: int) -> int:
    row = [inc(i) for i in range(n)]
    for _ in range(rows):
        row = [add(row[i], row[(i + 1) % n]) for i in range(n)]
    return total(row)


# fixtures and helpers


def node_ids(home: Home, dispatch_id: str) -> dict[str, int]:
    """``{"name(id)": id}`` of a dispatch's nodes, from the REST API."""
    detail = httpx.get(f"{home.url}/api/v1/dispatches/{dispatch_id}", timeout=30).json()
    return {f"{n['name']}({n['node_id']})": n["node_id"] for n in detail["nodes"]}


def graph_node(tab: Any, node_id: int) -> Any:
    return tab.locator(f'#graph g.node[data-id="{node_id}"]')


def sse_events(response: httpx.Response) -> Iterator[tuple[str, str]]:
    """``(event, data)`` pairs of a server-sent event stream; comments as ``(":", text)``."""
    event, data = "message", ""
    for line in response.iter_lines():
        if line.startswith(":"):
            yield ":", line[1:].strip()
        elif line.startswith("event:"):
            event = line[6:].strip()
        elif line.startswith("data:"):
            data += line[5:].strip()
        elif not line and data:
            yield event, data
            event, data = "message", ""


# the dispatch page


def test_nodes_turn_completed_live_without_reload_or_polling(
    server: Home, page: Any, tmp_path: Path
) -> None:
    release = tmp_path / "release"
    dispatch_id = ct.dispatch(gated_flow)(str(release), 4)
    ids = node_ids(server, dispatch_id)
    snapshots: list[str] = []
    page.on("request", lambda r: snapshots.append(r.url) if r.url.endswith("/graph") else None)
    page.goto(f"{server.url}/dispatches/{dispatch_id}")
    expect(graph_node(page, ids["gate(0)"])).to_have_class(state("RUNNING"))
    expect(graph_node(page, ids["double(3)"])).to_have_class(state("NEW_OBJECT"))
    expect(page.locator("#graph-status")).to_contain_text("live")
    page.evaluate("window.sameDocument = true")

    release.touch()
    expect(graph_node(page, ids["gate(0)"])).to_have_class(state("COMPLETED"))
    expect(graph_node(page, ids["double(3)"])).to_have_class(state("COMPLETED"))
    expect(page.locator("#dispatch-status .badge")).to_have_text("COMPLETED")
    expect(page.locator("#opt-3 .badge")).to_have_text("COMPLETED")
    expect(page.locator("#graph-status")).to_contain_text("finished")
    assert page.evaluate("window.sameDocument") is True  # no reload
    # The first load, one snapshot when the stream opened, one when the dispatch ended.
    assert len(snapshots) <= 3, snapshots
    page.get_by_label("Parameters").check()  # hidden by default; their edges too
    labels = page.locator("#graph text.elabel")
    expect(labels.filter(has_text="path")).to_have_count(1)
    expect(labels.filter(has_text=re.compile("^x$"))).to_have_count(2)


def test_node_panel_streams_a_running_nodes_output(server: Home, page: Any, tmp_path: Path) -> None:
    first, second = tmp_path / "first", tmp_path / "second"
    dispatch_id = ct.dispatch(slow_talk)(str(first), str(second))
    ids = node_ids(server, dispatch_id)
    page.goto(f"{server.url}/dispatches/{dispatch_id}")
    expect(graph_node(page, ids["talks_slowly(0)"])).to_have_class(state("RUNNING"))
    page.locator(f"#opt-{ids['talks_slowly(0)']}").click()
    stdout, stderr = page.locator("#out-stdout"), page.locator("#out-stderr")
    expect(stdout).to_have_text("the first line\n")
    expect(page.locator("#out-stderr-empty")).to_be_visible()
    page.evaluate("window.samePanel = document.getElementById('out-stdout')")

    first.touch()  # more output while it runs: appended live, nothing twice
    expect(stdout).to_have_text("the first line\nthe second line, from a subprocess\n")
    expect(stderr).to_have_text("and a warning\n")
    expect(page.locator("#out-stderr-empty")).to_be_hidden()
    assert page.evaluate("window.samePanel === document.getElementById('out-stdout')")
    assert ct.get_result(dispatch_id, status_only=True)["status"] == "RUNNING"

    second.touch()
    expect(page.locator("#panel .badge").first).to_have_text("COMPLETED")
    expect(stdout).to_have_text("the first line\nthe second line, from a subprocess\n")


def test_node_panel_shows_output_logs_source_and_executor(server: Home, page: Any) -> None:
    result = ct.dispatch_sync(chatty_flow)(3)
    assert result.status == ct.status.COMPLETED
    ids = node_ids(server, result.dispatch_id)
    page.goto(f"{server.url}/dispatches/{result.dispatch_id}")
    graph_node(page, ids["chatty(0)"]).click()

    panel = page.locator("#panel")
    expect(panel.locator("#panel-title")).to_have_text("chatty(0)")
    expect(panel.locator("section", has=page.locator("#p-output"))).to_contain_text(
        "{'items': [0, 1, 2], 'x': 3}"
    )
    expect(panel.locator("section", has=page.locator("#p-stdout"))).to_contain_text(
        "hello from chatty 3"
    )
    expect(panel.locator("section", has=page.locator("#p-stderr"))).to_contain_text(
        "a warning from chatty"
    )
    expect(panel.locator("section", has=page.locator("#p-source"))).to_contain_text(
        "def chatty(x: int)"
    )
    expect(panel.locator("section", has=page.locator("#p-inputs"))).to_contain_text("arg[0]")
    expect(panel).to_contain_text("Executor")
    expect(panel.locator("dl.facts")).to_contain_text("local")
    expect(panel.locator("section", has=page.locator("#p-attempts"))).to_contain_text("COMPLETED")
    expect(graph_node(page, ids["chatty(0)"])).to_have_class(re.compile(r"\bselected\b"))

    page.keyboard.press("Escape")
    expect(panel).to_be_hidden()


def test_failing_node_shows_its_traceback(server: Home, page: Any) -> None:
    result = ct.dispatch_sync(failing_flow)(7)
    assert result.status == ct.status.FAILED
    ids = node_ids(server, result.dispatch_id)
    page.goto(f"{server.url}/dispatches/{result.dispatch_id}")
    expect(page.locator("#dispatch-status .badge")).to_have_text("FAILED")
    expect(graph_node(page, ids["double(2)"])).to_have_class(state("NOT_RUN"))
    expect(page.locator("#dispatch-error")).to_be_visible()

    page.get_by_role("option", name=re.compile(r"explode\(0\)")).click()
    error = page.locator("#panel pre.error")
    expect(error).to_contain_text("Traceback (most recent call last)")
    expect(error).to_contain_text("ValueError: bad value 7")
    expect(error).to_contain_text("raise ValueError")


@ct.lattice
def inner_flow(x: int) -> int:
    return double(x)


@ct.lattice
def outer_flow(x: int) -> int:
    return double(ct.electron(inner_flow)(x))


def test_a_sublattice_node_links_to_its_own_graph(server: Home, page: Any) -> None:
    result = ct.dispatch_sync(outer_flow)(3)
    assert result.result == 12, result.error
    node = next(n for n in result.get_all_node_results() if n["node_name"].startswith(":sub"))
    child = node["sublattice_result"]
    page.goto(f"{server.url}/dispatches/{result.dispatch_id}")
    graph_node(page, node["node_id"]).click()
    link = page.locator("#panel section", has=page.locator("#p-sub")).get_by_role("link")
    expect(link).to_have_attribute("href", f"/dispatches/{child.dispatch_id}")
    link.click()
    page.wait_for_url(re.compile(child.dispatch_id))
    expect(page.locator("#dispatch-status .badge")).to_have_text("COMPLETED")
    expect(page.locator("#dispatch-facts")).to_contain_text("Sublattice of")


def test_rerun_makes_a_new_dispatch_with_the_same_inputs(server: Home, page: Any) -> None:
    result = ct.dispatch_sync(chatty_flow)(5)
    page.goto(f"{server.url}/dispatches/{result.dispatch_id}")
    expect(page.locator("#dispatch-status .badge")).to_have_text("COMPLETED")
    page.locator("#rerun-dispatch").click()
    page.locator("dialog[open]").get_by_role("button", name="Re-run").click()
    page.wait_for_url(re.compile(r"/dispatches/(?!" + result.dispatch_id + ")"))
    new_id = page.url.rstrip("/").rsplit("/", 1)[-1]
    expect(page.locator("#dispatch-status .badge")).to_have_text("COMPLETED")
    again = ct.get_result(new_id, wait=True)
    assert again.result == result.result and again.inputs == result.inputs


def test_node_panel_lists_retried_attempts(server: Home, page: Any, tmp_path: Path) -> None:
    result = ct.dispatch_sync(flaky_flow)(str(tmp_path / "marker"))
    assert result.status == ct.status.COMPLETED, result.error
    page.goto(f"{server.url}/dispatches/{result.dispatch_id}")
    graph_node(page, 0).click()
    attempts = page.locator("#panel section", has=page.locator("#p-attempts"))
    expect(attempts.locator("tbody tr")).to_have_count(2)
    expect(attempts.locator("tbody tr").nth(0)).to_contain_text("FAILED")
    expect(attempts.locator("tbody tr").nth(1)).to_contain_text("COMPLETED")
    attempts.locator("summary", has_text="error").click()
    expect(attempts).to_contain_text("RuntimeError: the first attempt fails")
    expect(page.locator("#panel dl.facts")).to_contain_text("2")
    expect(page.locator("#panel")).to_contain_text("retries")


def test_cancel_one_node_then_the_whole_dispatch(server: Home, page: Any, tmp_path: Path) -> None:
    never, also_never = tmp_path / "never", tmp_path / "also-never"
    dispatch_id = ct.dispatch(two_gates)(str(never), str(also_never))
    ids = node_ids(server, dispatch_id)
    first, second = ids["gate(0)"], ids["gate(3)"]
    try:
        page.goto(f"{server.url}/dispatches/{dispatch_id}")
        expect(graph_node(page, first)).to_have_class(state("RUNNING"))
        expect(graph_node(page, second)).to_have_class(state("RUNNING"))

        graph_node(page, first).click()
        page.get_by_role("button", name="Cancel this node").click()
        page.locator("dialog[open]").get_by_role("button", name="Cancel it").click()
        expect(graph_node(page, first)).to_have_class(state("CANCELLED"))
        expect(graph_node(page, second)).to_have_class(state("RUNNING"))
        expect(page.locator("#dispatch-status .badge")).to_have_text("RUNNING")

        cancel = page.get_by_role("button", name="Cancel dispatch")
        cancel.click()
        page.locator("dialog[open]").get_by_role("button", name="Keep it").click()
        expect(page.locator("#dispatch-status .badge")).to_have_text("RUNNING")
        cancel.click()
        page.locator("dialog[open]").get_by_role("button", name="Cancel it").click()
        expect(page.locator("#dispatch-status .badge")).to_have_text("CANCELLED")
        expect(graph_node(page, second)).to_have_class(state("CANCELLED"))
        expect(cancel).to_be_hidden()
    finally:
        never.touch()
        also_never.touch()
    assert ct.get_result(dispatch_id).status == ct.status.CANCELLED


def test_node_list_keyboard_and_a_narrow_window(server: Home, page: Any) -> None:
    result = ct.dispatch_sync(gated_flow)(str(Path(__file__)), 1)  # the gate is open
    page.set_viewport_size({"width": 390, "height": 844})
    page.goto(f"{server.url}/dispatches/{result.dispatch_id}")
    listbox = page.get_by_role("listbox", name=re.compile("Nodes"))
    expect(listbox.get_by_role("option")).to_have_count(2)  # parameters hidden at first
    page.get_by_label("Parameters").check()
    expect(listbox.get_by_role("option")).to_have_count(4)
    listbox.focus()
    page.keyboard.press("Home")
    page.keyboard.press("ArrowDown")
    page.keyboard.press("ArrowDown")
    expect(listbox).to_have_attribute("aria-activedescendant", "opt-2")
    page.keyboard.press("Enter")
    expect(page.locator("#panel-title")).to_have_text(":parameter:1(2)")
    expect(page.locator("#panel-title")).to_be_focused()
    page.keyboard.press("Escape")
    expect(page.locator("#panel")).to_be_hidden()
    expect(listbox).to_be_focused()
    page.keyboard.press("End")
    page.keyboard.press("Enter")
    expect(page.locator("#panel-title")).to_have_text("double(3)")

    page.get_by_label("Parameters").uncheck()
    expect(listbox.get_by_role("option")).to_have_count(2)
    expect(page.locator("#graph g.node")).to_have_count(2)
    overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 1, f"the page is {overflow}px wider than a narrow window"


def test_timeline_shows_when_each_node_ran_on_its_executor(server: Home, page: Any) -> None:
    result = ct.dispatch_sync(gated_flow)(str(Path(__file__)), 2)
    page.goto(f"{server.url}/dispatches/{result.dispatch_id}")
    page.get_by_role("tab", name="Timeline").click()
    timeline = page.locator("#timeline")
    expect(timeline.locator("g.row")).to_have_count(2)  # parameters do not run
    expect(timeline).to_contain_text("executor: local (2)")
    expect(timeline.locator("rect.span.st-COMPLETED")).to_have_count(2)
    timeline.locator("g.row").first.locator("rect.span").click()
    expect(page.locator("#panel-title")).to_have_text("gate(0)")


def test_a_graph_of_2000_nodes_renders_and_stays_responsive(
    server: Home, page: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    mesh.draw(400, 3)
    url = re.search(r"http://\S+/dispatches/\S+", capsys.readouterr().out)
    assert url is not None
    page.goto(url.group(0))
    expect(page.locator("#graph g.node")).to_have_count(1602)  # the 400 parameters hidden
    draw_ms = page.evaluate("window.covalentGraph.drawMs")
    assert draw_ms < 10_000, f"drawing 2,002 nodes took {draw_ms:.0f} ms"

    viewport = page.locator("#graph g.viewport")
    before = viewport.get_attribute("transform")
    box = page.locator("#graph").bounding_box()
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    started = time.monotonic()
    for _ in range(10):
        page.mouse.wheel(0, -120)
    expect(viewport).not_to_have_attribute("transform", before or "")
    page.get_by_role("listbox", name=re.compile("Nodes")).focus()
    page.keyboard.press("End")  # the list node (2001) feeding total (2000)
    page.keyboard.press("ArrowUp")
    page.keyboard.press("Enter")
    expect(page.locator("#panel-title")).to_have_text("total(2000)")
    expect(graph_node(page, 2000)).to_have_class(re.compile(r"\bselected\b"))
    took = time.monotonic() - started
    assert took < 20, f"zooming and opening a node took {took:.1f} s"


def test_draw_shows_an_undispatched_lattice_as_a_preview(
    server: Home, page: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    assert gated_flow.draw("/nowhere", 5) is None
    printed = capsys.readouterr().out
    found = re.search(rf"{re.escape(server.url)}/dispatches/([0-9a-f-]{{36}})", printed)
    assert found is not None, printed
    dispatch_id = found.group(1)
    assert ct.get_result(dispatch_id, status_only=True)["status"] == "NEW_OBJECT"

    page.goto(found.group(0))
    expect(page.locator("#dispatch-status .badge")).to_have_text("PREVIEW")
    expect(page.locator("#preview-banner")).to_be_visible()
    expect(page.locator("#graph g.node")).to_have_count(2)
    expect(page.get_by_role("button", name="Cancel dispatch")).to_be_hidden()
    expect(page.locator("#graph-status")).to_contain_text("preview")
    page.get_by_label("Parameters").check()
    expect(page.locator("#graph g.node")).to_have_count(4)

    page.goto(f"{server.url}/?q={dispatch_id}")
    row = page.locator(f'#rows tr[data-id="{dispatch_id}"]')
    expect(row).to_contain_text("PREVIEW")
    row.get_by_role("button", name=re.compile("Delete")).click()
    page.locator("dialog[open]").get_by_role("button", name="Delete").click()
    expect(row).to_be_hidden()
    with pytest.raises(DispatchNotFoundError):
        ct.get_result(dispatch_id, status_only=True)


# the list page


def test_list_page_filters_searches_and_deletes(server: Home, page: Any) -> None:
    good = ct.dispatch_sync(ui_search_target)(1).dispatch_id
    ct.dispatch_sync(ui_search_broken)(1)
    page.goto(f"{server.url}/")
    rows = page.locator("#rows tr")
    search = page.get_by_label("Search by lattice name or dispatch id")
    search.fill("ui_search_")
    expect(rows).to_have_count(2)
    expect(rows.first).to_contain_text("ui_search_broken")  # newest first
    page.get_by_label("Status").select_option("FAILED")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("ui_search_broken")
    assert "status=FAILED" in page.url and "q=ui_search_" in page.url

    page.get_by_label("Status").select_option("")
    search.fill(good[:13])
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("ui_search_target")
    expect(rows.first).to_contain_text("1 completed")

    rows.first.get_by_role("button", name=re.compile("Delete")).click()
    dialog = page.locator("dialog[open]")
    expect(dialog).to_contain_text(good)
    dialog.get_by_role("button", name="Keep it").click()
    expect(rows.first).to_contain_text("ui_search_target")
    rows.first.get_by_role("button", name=re.compile("Delete")).click()
    page.locator("dialog[open]").get_by_role("button", name="Delete").click()
    expect(rows.first).to_contain_text("No dispatch matches")
    gone = httpx.get(f"{server.url}/api/v1/dispatches/{good}/status", timeout=30)
    assert gone.status_code == 404


def test_list_page_shows_a_new_dispatch_live(server: Home, page: Any, tmp_path: Path) -> None:
    page.goto(f"{server.url}/?q=gated_flow")
    expect(page.locator("#page-info")).not_to_be_empty()
    release = tmp_path / "go"
    dispatch_id = ct.dispatch(gated_flow)(str(release), 3)
    row = page.locator(f'#rows tr[data-id="{dispatch_id}"]')
    expect(row).to_contain_text("RUNNING")
    release.touch()
    expect(row).to_contain_text("COMPLETED")


def fill_store(count: int) -> None:
    """``count`` finished dispatches of two nodes each, written straight into the store."""
    config = _config.get_value("dispatcher")
    store = Store.sqlite(config["db_path"], config["blobs_dir"])
    store.create_schema()
    start = time.time() - count
    statuses = ["COMPLETED", "FAILED", "CANCELLED"]
    rows, node_rows = [], []
    for i in range(count):
        dispatch_id = str(uuid.UUID(int=i + 1))
        status = statuses[i % 3]
        rows.append(
            {
                "dispatch_id": dispatch_id,
                "root_dispatch_id": dispatch_id,
                "lattice_name": f"bulk_{i % 10}",
                "status": status,
                "created_at": start + i,
                "start_time": start + i,
                "end_time": start + i + 0.5,
                "node_count": 2,
                "manifest": b"{}",
                "summary": "{}",
                "results_dir": str(Path(config["results_dir"]) / dispatch_id),
            }
        )
        for node_id, kind in enumerate(("electron", "parameter")):
            node_rows.append(
                {
                    "dispatch_id": dispatch_id,
                    "node_id": node_id,
                    "name": "task" if kind == "electron" else ":parameter:1",
                    "kind": kind,
                    "status": status if kind == "electron" else "COMPLETED",
                    "attempts": 1,
                }
            )
    with store.engine.begin() as conn:
        conn.execute(insert(dispatches), rows)
        conn.execute(insert(nodes), node_rows)
    store.close()


def test_ten_thousand_dispatches_page_quickly(home: Home, page: Any) -> None:
    fill_store(10_000)
    started = home.run("covalent", "start")
    assert started.returncode == 0, started.stderr
    api = f"{home.url}/api/v1/ui/dispatches"
    for params in (
        {"limit": 50, "offset": 0},
        {"limit": 50, "offset": 9_950},
        {"limit": 50, "status": "FAILED", "q": "bulk_7"},
    ):
        began = time.monotonic()
        answer = httpx.get(api, params=params, timeout=30).json()
        took = time.monotonic() - began
        assert took < 2.0, f"{params} took {took:.2f} s"
        assert answer["dispatches"], params
    assert answer["total"] == 334  # FAILED and bulk_7: i % 3 == 1 and i % 10 == 7
    assert answer["status_counts"] == {"COMPLETED": 3334, "FAILED": 3333, "CANCELLED": 3333}

    page.goto(f"{home.url}/")
    info = page.locator("#page-info")
    expect(info).to_have_text("Showing 1–50 of 10,000")
    rows = page.locator("#rows tr")
    expect(rows).to_have_count(50)
    expect(rows.first).to_have_attribute("data-id", str(uuid.UUID(int=10_000)))
    expect(rows.first).to_contain_text("1 completed")  # parameters are not counted
    page.get_by_role("button", name="Last page").click()
    expect(info).to_have_text("Showing 9,951–10,000 of 10,000")
    expect(rows.last).to_have_attribute("data-id", str(uuid.UUID(int=1)))
    page.get_by_role("button", name="‹ Newer").click()
    expect(info).to_have_text("Showing 9,901–9,950 of 10,000")
    page.get_by_label("Status").select_option("FAILED")
    expect(info).to_have_text("Showing 1–50 of 3,333")
    page.get_by_label("Search by lattice name or dispatch id").fill("bulk_7")
    expect(info).to_have_text("Showing 1–50 of 334")


# settings, logs and the event stream


def test_an_unknown_dispatch_page_says_so(server: Home, page: Any) -> None:
    page.goto(f"{server.url}/dispatches/no-such-dispatch")
    expect(page.get_by_role("alert")).to_contain_text("No dispatch no-such-dispatch")


def test_settings_and_logs_pages(server: Home, page: Any) -> None:
    page.goto(f"{server.url}/settings")
    config = page.locator("#config")
    expect(config).to_contain_text("[dispatcher]")
    expect(config).to_contain_text(str(server.port))
    expect(config).to_contain_text("dispatcher.sqlite")
    page.get_by_role("link", name="Logs").click()
    expect(page).to_have_url(f"{server.url}/logs")
    expect(page.locator("#log-info")).to_contain_text("server.log")
    expect(page.locator("#log")).to_contain_text(re.compile(r"\w"))
    page.get_by_label("Last lines").select_option("200")
    expect(page.locator("#log-info")).to_contain_text("lines shown")


def test_event_stream_carries_one_dispatch(server: Home, tmp_path: Path) -> None:
    release = tmp_path / "release"
    dispatch_id = ct.dispatch(gated_flow)(str(release), 6)
    url = f"{server.url}/api/v1/events"
    assert httpx.get(url, params={"dispatch_id": "nope"}, timeout=30).status_code == 404
    seen: list[dict[str, Any]] = []
    with httpx.stream("GET", url, params={"dispatch_id": dispatch_id}, timeout=60) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        events = sse_events(response)
        assert next(events)[0] == "ready"
        release.touch()
        for event, data in events:
            if event != "transitions":
                continue
            seen.extend(json.loads(data))
            if any(e["node_id"] == -1 and e["new"] == "COMPLETED" for e in seen):
                break
    assert {e["dispatch_id"] for e in seen} == {dispatch_id}
    assert {"node_id", "old", "new", "at", "cause"} <= set(seen[0])

    release = tmp_path / "release-2"
    with httpx.stream("GET", url, params={"summary": "true"}, timeout=60) as response:
        events = sse_events(response)
        assert next(events)[0] == "ready"
        second = ct.dispatch(gated_flow)(str(release), 7)
        release.touch()
        for event, data in events:
            assert event in ("dispatches", ":"), event
            if event == "dispatches" and second in json.loads(data):
                break


def test_event_stream_unsubscribes_when_the_client_goes(tmp_path: Path) -> None:
    store = Store.sqlite(tmp_path / "db.sqlite", tmp_path / "blobs")
    app = create_app(store, str(tmp_path / "results"))
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        wait_for(lambda: server.started, what="the server to start")
        hub = app.state.covalent.dispatcher.events
        url = f"http://127.0.0.1:{port}/api/v1/events"
        with httpx.stream("GET", url, params={"heartbeat": 30}, timeout=60) as response:
            events = sse_events(response)  # (a dropped generator would close the response)
            assert next(events)[0] == "ready"
            assert len(hub.subscribers) == 1
        wait_for(lambda: not hub.subscribers, timeout=30, what="the stream to unsubscribe")
    finally:
        server.should_exit = True
        thread.join(timeout=60)


def test_event_stream_beats_and_ends_when_the_server_stops(home: Home) -> None:
    started = home.run("covalent", "start")
    assert started.returncode == 0, started.stderr
    stopper = threading.Thread(target=home.run, args=("covalent", "stop"))
    with httpx.stream("GET", f"{home.url}/api/v1/events?heartbeat=0.1", timeout=60) as response:
        events = sse_events(response)
        assert next(events)[0] == "ready"
        assert next(events) == (":", "ping")
        began = time.monotonic()
        stopper.start()
        for _ in events:  # ends without an error once the server stops
            pass
        ended = time.monotonic() - began
    stopper.join(timeout=60)
    assert ended < 8, f"the stream held the server for {ended:.1f} s"


# the server side, without a browser


def test_static_files_ship_in_the_package() -> None:
    static = Path(ui.__file__).parent / "static"
    pages = ["list.html", "dispatch.html", "settings.html", "logs.html", "triggers.html"]
    wanted: set[str] = set()
    for name in pages:
        wanted.update(re.findall(r"/static/([\w.-]+)", (static / name).read_text()))
    for script in static.glob("*.js"):
        wanted.update(re.findall(r'from "\./([\w.-]+)"', script.read_text()))
    missing = sorted(name for name in wanted if not (static / name).is_file())
    assert not missing and "dispatch.js" in wanted and "triggers.js" in wanted, missing


def test_log_tail_reads_only_the_end(tmp_path: Path) -> None:
    log = tmp_path / "server.log"
    log.write_text("".join(f"line {i}\n" for i in range(100_000)))
    assert ui.tail(log, 3) == ["line 99997", "line 99998", "line 99999"]
    assert ui.tail(log, 1, block=7) == ["line 99999"]
    log.write_text("only\n")
    assert ui.tail(log, 2000) == ["only"]


def test_configuration_masks_secrets() -> None:
    masked = _config.masked(
        {
            "dispatcher": {"token": "s3cret", "port": 1, "db_url": "postgresql://u:pw@h/db"},
            "executors": {"ssh": {"password": ""}},
        }
    )
    assert masked["dispatcher"]["token"] == "(set, hidden)"
    assert masked["dispatcher"]["port"] == 1
    assert "pw" not in masked["dispatcher"]["db_url"]
    assert masked["executors"]["ssh"]["password"] == ""
