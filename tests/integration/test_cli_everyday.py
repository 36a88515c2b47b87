"""What a daily user of the CLI expects: ls says how many there are and pages, ids by
prefix, cancel of a finished dispatch says so, config get/set/unset, redispatch and
retrying what failed, triggers ls/stop, and one meaning for node counts and attempts."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:
    import tomli as tomllib

import httpx
import pytest

import covalent as ct
from covalent._errors import BadRequestError, ConfigError, DispatchNotFoundError
from tests.conftest import Home
from tests.integration.test_dispatch import flaky  # fails twice, then completes


@ct.electron
def inc(x):
    return x + 1


@ct.electron
def needs_file(path, x):
    with open(path) as f:
        return int(f.read()) + x


@ct.lattice
def alpha_flow(x):
    return inc(inc(x))


@ct.lattice
def beta_flow(x):
    return inc(x)


@ct.lattice
def partly(path, x):
    return inc(x), needs_file(path, inc(x))


def cli(home: Home, *args: str, code: int = 0) -> str:
    done = home.run("covalent", *args)
    assert done.returncode == code, (done.stdout, done.stderr)
    return done.stdout if code == 0 else done.stderr


def ls_json(home: Home, *args: str) -> dict:
    return json.loads(cli(home, "ls", "--json", *args))


# ls


def test_ls_says_how_many_match_and_pages_with_offset_name_and_since(home: Home) -> None:
    cli(home, "start")
    ids = [ct.dispatch_sync(flow)(1).dispatch_id for flow in (alpha_flow, beta_flow, alpha_flow)]
    first_page = cli(home, "ls", "--limit", "2")
    assert first_page.rstrip().endswith("Showing 2 of 3. `--offset 2` shows the next ones.")
    assert ids[2] in first_page and ids[1] in first_page and ids[0] not in first_page
    second_page = cli(home, "ls", "--limit", "2", "--offset", "2")
    assert ids[0] in second_page and ids[2] not in second_page
    assert second_page.rstrip().endswith("Showing 1 of 3 (from number 3).")

    named = ls_json(home, "--name", "ALPHA")
    assert named["total"] == 2
    assert {d["dispatch_id"] for d in named["dispatches"]} == {ids[0], ids[2]}
    assert ls_json(home, "--since", "1h")["total"] == 3
    assert ls_json(home, "--since", "2099-01-01")["total"] == 0
    assert "No dispatches." in cli(home, "ls", "--since", "2099-01-01")
    bad = home.run("covalent", "ls", "--since", "yesterday-ish")
    assert bad.returncode == 2 and "neither an age" in bad.stderr


# ids by prefix


def test_every_command_takes_a_unique_id_prefix(server: Home, tmp_path: Path) -> None:
    done = ct.dispatch_sync(alpha_flow)(5)
    prefix = done.dispatch_id[:8]
    assert f"dispatch_id: {done.dispatch_id}" in cli(server, "show", prefix)
    assert json.loads(cli(server, "show", "--json", prefix))["result"] == "7"
    assert json.loads(cli(server, "logs", "--json", prefix))["dispatch_id"] == done.dispatch_id
    redone = json.loads(cli(server, "redispatch", "--json", prefix))
    assert redone["redispatch_of"] == done.dispatch_id
    assert ct.get_result(redone["dispatch_id"], wait=True).result == 7
    assert cli(server, "rm", "-y", prefix).strip() == (
        f"Dispatch {done.dispatch_id} has been deleted."
    )
    missing = cli(server, "show", "ffffffff-ffff", code=DispatchNotFoundError.exit_code)
    assert "No dispatch with id 'ffffffff-ffff'" in missing


def test_an_ambiguous_prefix_lists_what_it_matches(server: Home) -> None:
    a, b = (ct.dispatch_sync(beta_flow)(n).dispatch_id for n in (1, 2))
    common = os.path.commonprefix([a, b])
    line = cli(server, "show", common, code=BadRequestError.exit_code)
    assert f"The id prefix '{common}' matches" in line and "give more of the id" in line


# cancel


def test_cancelling_a_finished_dispatch_says_so_and_fails(server: Home) -> None:
    done = ct.dispatch_sync(beta_flow)(1)
    line = cli(server, "cancel", done.dispatch_id[:10], code=BadRequestError.exit_code)
    assert line.strip() == (
        f"Error: Dispatch {done.dispatch_id} has already finished (COMPLETED); there is "
        "nothing to cancel."
    )


# config


def test_config_get_set_and_unset(home: Home) -> None:
    saved = cli(home, "config", "set", "dispatcher.port", "1234").strip()
    assert saved == "Saved dispatcher.port = 1234; it takes effect at the next `covalent restart`."
    assert cli(home, "config", "get", "dispatcher.port").strip() == "1234"
    assert ct.get_config("dispatcher.port") == 1234
    live = cli(home, "config", "set", "sdk.log_level", "info").strip()
    assert live == "Saved sdk.log_level = info; it takes effect at once."
    line = cli(home, "config", "set", "dispatcher.port", "many", code=ConfigError.exit_code)
    assert "dispatcher.port takes a whole number, not 'many'" in line
    cli(home, "config", "set", "dispatcher.token", "hunter2")
    assert cli(home, "config", "get", "dispatcher.token").strip() == "(set, hidden)"
    assert "hunter2" not in cli(home, "config")
    assert "Removed dispatcher.port" in cli(home, "config", "unset", "dispatcher.port")
    assert ct.get_config("dispatcher.port") == 48008
    again = cli(home, "config", "unset", "dispatcher.port", code=ConfigError.exit_code)
    assert "does not set dispatcher.port" in again


def test_config_prints_defaults_file_and_environment_together(home: Home) -> None:
    config = home.root / "config" / "covalent.conf"
    config.write_text(config.read_text() + "[executors.local]\nworkers = 3\n")
    home.env["COVALENT_LOG_LEVEL"] = "warning"
    home.env["COVALENT_TOKEN"] = "hunter2"
    header, _, text = cli(home, "config").partition("\n")
    assert header == f"# {config}"
    shown = tomllib.loads(text)
    assert shown["dispatcher"]["port"] == home.port  # the file
    assert shown["executors"]["local"] == {"workers": 3}
    assert shown["dispatcher"]["results_dir"] == str(home.root / "cache" / "results")  # default
    assert shown["sdk"]["log_level"] == "warning"  # the environment
    assert shown["dispatcher"]["token"] == "(set, hidden)" and "hunter2" not in text


# redispatch and retrying what failed


def test_redispatch_failed_only_reuses_what_completed(server: Home, tmp_path: Path) -> None:
    value = tmp_path / "value"
    failed = ct.get_result(ct.dispatch(partly)(str(value), 1), wait=True)
    assert failed.status == ct.status.FAILED
    value.write_text("10")
    answer = json.loads(cli(server, "redispatch", "--failed-only", "--json", failed.dispatch_id))
    retried = ct.get_result(answer["dispatch_id"], wait=True)
    assert retried.status == ct.status.COMPLETED, retried.error
    assert retried.result == (2, 12)
    reused = [n for n in retried.get_all_node_results() if n["reused_from"]]
    assert {n["node_name"] for n in reused} >= {"inc"}  # the completed electrons, not run
    assert all(n["reused_from"].startswith(failed.dispatch_id) for n in reused)
    assert "needs_file" not in {n["node_name"] for n in reused}

    line = cli(server, "redispatch", "--failed-only", retried.dispatch_id, code=9)
    assert "completed: nothing failed to retry" in line
    text = cli(server, "redispatch", retried.dispatch_id)
    assert text.startswith("Dispatch ") and f"runs dispatch {retried.dispatch_id} again." in text


def test_redispatch_reuse_keeps_every_completed_output(server: Home) -> None:
    first = ct.dispatch_sync(alpha_flow)(1)
    answer = json.loads(cli(server, "redispatch", "--reuse", "--json", first.dispatch_id[:12]))
    again = ct.get_result(answer["dispatch_id"], wait=True)
    assert again.status == ct.status.COMPLETED and again.result == 3
    reused = {
        f"{n['node_name']}({n['node_id']})": n["reused_from"]
        for n in again.get_all_node_results()
        if n["node_name"] == "inc"
    }
    assert reused == {"inc(0)": f"{first.dispatch_id}:0", "inc(2)": f"{first.dispatch_id}:2"}
    plain = json.loads(cli(server, "redispatch", "--json", first.dispatch_id))
    rerun = ct.get_result(plain["dispatch_id"], wait=True)
    assert not any(n["reused_from"] for n in rerun.get_all_node_results())  # without --reuse


# triggers


def test_triggers_ls_and_stop(server: Home) -> None:
    @ct.lattice(triggers=ct.triggers.TimeTrigger(time_gap=3600))
    def hourly(x):
        return inc(x)

    dispatch_id = ct.dispatch(hourly)(1)
    listed = cli(server, "triggers", "ls")
    row = next(line for line in listed.splitlines() if dispatch_id in line)
    assert "time" in row and "every 3600.0 s" in row and "armed" in row
    stopped = cli(server, "triggers", "stop", dispatch_id[:12]).strip()
    assert stopped == f"Stopped 1 trigger of {dispatch_id}."
    assert dispatch_id not in cli(server, "triggers", "ls")
    every = json.loads(cli(server, "triggers", "ls", "--all", "--json", dispatch_id))
    assert [t["active"] for t in every["triggers"]] == [False]


# one meaning for node counts and attempts


def test_node_counts_and_attempts_mean_the_same_everywhere(server: Home, tmp_path: Path) -> None:
    @ct.lattice
    def with_parameters(path, a, b):
        # 4 electrons and the :electron_tuple: they make: 5; the 3 parameters do not count
        return inc(flaky(path)), inc(a), inc(b)

    result = ct.dispatch_sync(with_parameters)(str(tmp_path / "count"), 1, 2)
    assert result.status == ct.status.COMPLETED, result.error
    listed = next(
        d
        for d in ls_json(server, "--limit", "1000")["dispatches"]
        if d["dispatch_id"] == result.dispatch_id
    )
    assert listed["node_count"] == 5
    ui = httpx.get(f"{server.url}/api/v1/ui/dispatches", params={"q": result.dispatch_id}).json()
    assert sum(ui["dispatches"][0]["node_counts"].values()) == 5
    assert ui["dispatches"][0]["node_count"] == 5

    flaky_node = next(n for n in result.get_all_node_results() if n["node_name"] == "flaky")
    assert flaky_node["attempts"] == 3 and len(flaky_node["retried"]) == 2
    shown = json.loads(cli(server, "show", "--json", result.dispatch_id))
    assert next(n for n in shown["nodes"] if n["name"] == "flaky")["attempts"] == 3
    panel = httpx.get(
        f"{server.url}/api/v1/ui/dispatches/{result.dispatch_id}/nodes/{flaky_node['node_id']}"
    ).json()
    assert panel["attempts"] == 3 and len(panel["retried"]) == 2
    once = next(n for n in shown["nodes"] if n["name"] == "inc")
    assert once["attempts"] == 1


@pytest.mark.parametrize("args", [["triggers"], ["config", "get"]])
def test_subcommands_without_arguments_explain_themselves(home: Home, args: list[str]) -> None:
    done = home.run("covalent", *args)
    assert done.returncode == 2 and "Usage" in done.stdout + done.stderr
