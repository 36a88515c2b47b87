"""The UI a daily user expects, in a real Chromium: parameters hidden at first, status
words as in the legend, wide fan-outs as a group that expands, a readable fit and a
minimap, sublattice dispatches under their parent, Retry failed, a triggers page with
stop buttons, and Settings that change what needs no restart."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import httpx
import pytest

import covalent as ct
from covalent import _config
from tests.conftest import Home, wait_for
from tests.ui.conftest import DEADLINE_MS, sync_api

expect = sync_api.expect
expect.set_options(timeout=DEADLINE_MS)


@ct.electron
def inc(x: int) -> int:
    return x + 1


@ct.electron
def total(values: list[int]) -> int:
    return sum(values)


@ct.electron
def read_number(path: str) -> int:
    with open(path) as f:
        return int(f.read())


@ct.electron
def add(x: int, y: int) -> int:
    return x + y


@ct.lattice
def fan(n: int) -> int:
    return total([inc(i) for i in range(n)])


@ct.lattice
def needs_a_file(path: str, x: int) -> int:
    return add(inc(x), read_number(path))


@ct.lattice
def inner(x: int) -> int:
    return inc(inc(x))


@ct.lattice
def outer(x: int) -> int:
    return inc(ct.electron(inner)(x))


def open_dispatch(page: Any, home: Home, dispatch_id: str) -> None:
    page.goto(f"{home.url}/dispatches/{dispatch_id}")
    expect(page.locator("#graph-status")).to_contain_text("nodes")


def test_parameters_are_hidden_at_first_and_statuses_read_as_the_legend(
    server: Home, page: Any, tmp_path: Path
) -> None:
    missing = tmp_path / "number"
    failed = ct.get_result(ct.dispatch(needs_a_file)(str(missing), 1), wait=True)
    open_dispatch(page, server, failed.dispatch_id)
    expect(page.locator("#graph g.node.k-parameter")).to_have_count(0)
    expect(page.get_by_label("Parameters")).not_to_be_checked()
    expect(page.locator("#legend")).to_contain_text("not run")
    add_node = page.locator("#node-list li", has_text="add(")
    expect(add_node.locator(".badge")).to_have_text("NOT RUN")  # not NOT_RUN
    page.get_by_label("Parameters").check()
    expect(page.locator("#graph g.node.k-parameter")).to_have_count(2)

    page.locator("#node-list li", has_text="read_number(").click()
    expect(page.locator("#panel")).to_contain_text("No output: it failed (the error is below).")
    page.locator("#node-list li", has_text="add(").click()
    expect(page.locator("#panel")).to_contain_text("No output: it did not run")

    preview = ct.dispatch(inner, disable_run=True)(1)
    open_dispatch(page, server, preview)
    expect(page.locator("#node-list .badge").first).to_have_text("WAITING")


def test_a_wide_fan_out_opens_readable_as_a_group_that_expands(server: Home, page: Any) -> None:
    result = ct.dispatch_sync(fan)(300)
    assert result.result == sum(range(1, 301))
    open_dispatch(page, server, result.dispatch_id)
    group = page.locator("#graph g.node.group")
    expect(group).to_have_count(1)
    expect(group).to_contain_text("inc ×300")
    expect(group).to_have_class(re.compile(r"\bst-COMPLETED\b"))
    expect(page.locator("#graph g.node")).to_have_count(3)  # the group, the list, total
    scale = page.evaluate("window.covalentGraph.view.k")
    assert scale >= 0.45, f"the graph opened at scale {scale}: too small to read"
    expect(page.locator("#minimap")).to_be_hidden()  # it all fits: no map needed

    group.click()
    expect(page.locator("#graph g.node.k-electron")).to_have_count(301)
    page.get_by_role("button", name="Fit", exact=True).click()
    readable = page.evaluate("window.covalentGraph.view.k")
    assert readable >= 0.45, f"fit gave scale {readable}"
    minimap = page.locator("#minimap")
    expect(minimap).to_be_visible()  # 300 nodes side by side do not fit at that scale
    before = page.evaluate("window.covalentGraph.view.x")
    box = minimap.bounding_box()
    page.mouse.click(box["x"] + 5, box["y"] + box["height"] / 2)
    wait_for(lambda: page.evaluate("window.covalentGraph.view.x") != before, what="a move")

    page.get_by_role("button", name="All", exact=True).click()
    assert page.evaluate("window.covalentGraph.view.k") < readable  # all of it, smaller


def test_sublattice_dispatches_are_nested_under_their_parent(server: Home, page: Any) -> None:
    parent = ct.dispatch_sync(outer)(3)
    assert parent.result == 6
    child = next(n for n in parent.get_all_node_results() if n["sublattice_result"])
    child_id = child["sublattice_result"].dispatch_id
    page.goto(f"{server.url}/")
    row = page.locator(f'#rows tr[data-id="{parent.dispatch_id}"]')
    expect(row).to_be_visible()
    expect(page.locator(f'#rows tr[data-id="{child_id}"]')).to_have_count(0)
    row.get_by_role("button", name=re.compile("1 sublattice")).click()
    nested = page.locator(f'#rows tr[data-id="{child_id}"]')
    expect(nested).to_be_visible()
    expect(nested).to_contain_text("↳ sublattice")
    expect(nested).to_have_attribute("data-parent", parent.dispatch_id)
    row.get_by_role("button", name=re.compile("1 sublattice")).click()
    expect(nested).to_have_count(0)


def test_retry_failed_runs_only_what_did_not_complete(
    server: Home, page: Any, tmp_path: Path
) -> None:
    number = tmp_path / "number"
    failed = ct.get_result(ct.dispatch(needs_a_file)(str(number), 1), wait=True)
    assert failed.status == ct.status.FAILED
    number.write_text("40")
    open_dispatch(page, server, failed.dispatch_id)
    page.get_by_role("button", name="Retry failed").click()
    page.locator("dialog[open]").get_by_role("button", name="Retry failed").click()
    expect(page).not_to_have_url(re.compile(failed.dispatch_id))
    new_id = page.url.rstrip("/").rsplit("/", 1)[1]
    retried = ct.get_result(new_id, wait=True)
    assert retried.status == ct.status.COMPLETED, retried.error
    assert retried.result == 42
    inc_node = next(n for n in retried.get_all_node_results() if n["node_name"] == "inc")
    assert inc_node["reused_from"] == f"{failed.dispatch_id}:{inc_node['node_id']}"
    expect(page.locator("#dispatch-status .badge")).to_have_text("COMPLETED")
    expect(page.get_by_role("button", name="Retry failed")).to_be_hidden()


def test_the_triggers_page_lists_and_stops_triggers(server: Home, page: Any) -> None:
    @ct.lattice(triggers=ct.triggers.TimeTrigger(time_gap=3600))
    def hourly(x: int) -> int:
        return inc(x)

    dispatch_id = ct.dispatch(hourly)(1)
    page.goto(f"{server.url}/")
    page.get_by_role("link", name="Triggers").click()
    row = page.locator("#rows tr", has_text=dispatch_id[:8])
    expect(row).to_contain_text("every 3600 s")
    expect(row).to_contain_text("armed")
    row.get_by_role("button", name="Stop").click()
    page.locator("dialog[open]").get_by_role("button", name="Stop").click()
    expect(row).to_have_count(0)
    listed = httpx.get(f"{server.url}/api/v1/triggers", params={"dispatch_id": dispatch_id})
    assert [t["active"] for t in listed.json()["triggers"]] == [False]
    page.get_by_label("Show stopped triggers").check()
    expect(page.locator("#rows tr", has_text=dispatch_id[:8])).to_contain_text("stopped")


def test_settings_change_a_live_key_and_say_what_needs_a_restart(home: Home, page: Any) -> None:
    assert home.run("covalent", "start").returncode == 0
    page.goto(f"{home.url}/settings")
    config = page.locator("#config")
    expect(config).to_contain_text("no restart needed")
    dispatcher = page.locator("section", has_text="[dispatcher]")
    expect(dispatcher).to_contain_text("Needs a restart: covalent config set dispatcher.KEY VALUE")
    page.get_by_label("sdk.log_level").select_option("debug")
    page.locator("button.save[data-key='sdk.log_level']").click()
    expect(page.locator("body")).to_contain_text("Saved sdk.log_level = debug")
    _config.reload()
    assert ct.get_config("sdk.log_level") == "debug"
    log = home.root / "cache" / "server.log"
    ct.dispatch_sync(inner)(1)  # the server logs at debug level from now on, no restart
    wait_for(lambda: " DEBUG " in log.read_text(), what="a DEBUG line in the server log")

    refused = httpx.put(f"{home.url}/api/v1/ui/config", json={"key": "dispatcher.port", "value": 1})
    assert refused.status_code == 400
    assert "covalent restart" in refused.json()["detail"]
    bad = httpx.put(f"{home.url}/api/v1/ui/config", json={"key": "sdk.log_level", "value": "loud"})
    assert bad.status_code == 400 and "takes one of debug" in bad.json()["detail"]


@pytest.mark.parametrize("path", ["/", "/settings", "/logs", "/triggers"])
def test_every_page_links_the_triggers_page(server: Home, page: Any, path: str) -> None:
    page.goto(f"{server.url}{path}")
    expect(
        page.get_by_role("navigation", name="Main").get_by_role("link", name="Triggers")
    ).to_have_attribute("href", "/triggers")
