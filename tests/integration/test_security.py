"""The server binds to loopback by default; anything else needs a token, checked everywhere."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx
import pytest

import covalent as ct
from covalent._errors import AuthenticationError
from covalent._wire import bundle
from tests.conftest import Home, free_port
from tests.test_wire import loaded_manifest, node_entry, unpickled


@ct.electron
def triple(x):
    return 3 * x


def test_binding_beyond_loopback_without_a_token_is_refused(home: Home) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "covalent._server", "--host", "0.0.0.0", "--port", str(free_port())],
        env={**home.env, "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2
    assert "without a token" in done.stderr


def test_a_token_is_required_by_every_route(home: Home, monkeypatch: pytest.MonkeyPatch) -> None:
    config = home.root / "config" / "covalent.conf"
    config.write_text(config.read_text() + 'token = "s3cret-token"\n')
    assert home.run("covalent", "start").returncode == 0

    @ct.lattice
    def flow(x):
        return triple(x)

    result = ct.dispatch_sync(flow)(2)  # the SDK sends the configured token
    assert result.result == 6
    api = f"{home.url}/api/v1"
    for path in [
        "/health",
        "/dispatches",
        f"/dispatches/{result.dispatch_id}",
        "/blobs/" + "a" * 64,
    ]:
        assert httpx.get(api + path).status_code == 401
        wrong = httpx.get(api + path, headers={"authorization": "Bearer nope"})
        assert wrong.status_code == 401
    assert httpx.post(f"{api}/dispatches", content=b"x").status_code == 401
    good = httpx.get(f"{api}/health", headers={"authorization": "Bearer s3cret-token"})
    assert good.status_code == 200

    # a browser: open a page once with ?token=, then the cookie carries it
    with httpx.Client() as browser:
        first = browser.get(f"{api}/health", params={"token": "s3cret-token"})
        assert first.status_code == 200
        assert "token" not in first.json()  # the health answer never shows it
        assert browser.get(f"{api}/dispatches").status_code == 200  # the cookie alone
    assert httpx.get(f"{api}/health", params={"token": "nope"}).status_code == 401

    monkeypatch.setenv("COVALENT_TOKEN", "wrong")
    with pytest.raises(AuthenticationError, match="needs a token"):
        ct.get_result(result.dispatch_id)
    refused = home.run("covalent", "show", result.dispatch_id)  # the CLI: exit code 10
    assert refused.returncode == 10, refused.stderr
    assert refused.stderr.startswith("Error: ") and "token" in refused.stderr
    assert len(refused.stderr.splitlines()) == 1


def test_blob_routes_take_only_digests(server: Home) -> None:
    api = f"{server.url}/api/v1"
    for name in ["..%2F..%2Fetc%2Fpasswd", "../x", "A" * 64]:
        answer = httpx.get(f"{api}/blobs/{name}")
        assert answer.status_code in (400, 404)
    answer = httpx.post(f"{api}/blobs/fetch", json={"digests": ["../../etc/passwd"]})
    assert answer.status_code == 422  # the schema's Digest, named
    assert answer.json()["field"] == "body.digests[0]"


def test_the_server_stores_and_serves_blobs_without_unpickling_them(
    server: Home, tmp_path: Path
) -> None:
    """Every blob of a dispatch (functions, values, inputs, settings, an executor class)
    would make a folder if unpickled; the server checks, stores and serves them, shows the
    dispatch, its nodes and its graph, and makes none."""
    man, loaded = loaded_manifest(tmp_path)
    api = f"{server.url}/api/v1"
    answer = httpx.post(
        f"{api}/dispatches",
        content=bundle.pack(man, loaded),
        params={"disable_run": "true"},
        headers={"content-type": bundle.MEDIA_TYPE},
    )
    assert answer.status_code == 200, answer.text
    dispatch_id = answer.json()["dispatch_id"]
    square = node_entry(man, "square")
    for path in [
        f"/dispatches/{dispatch_id}",
        f"/dispatches/{dispatch_id}/manifest",
        f"/ui/dispatches/{dispatch_id}/graph",
        f"/ui/dispatches/{dispatch_id}/nodes/{square['id']}",
        f"/blobs/{square['function']}",
    ]:
        assert httpx.get(api + path).status_code == 200, path
    fetched = httpx.post(f"{api}/blobs/fetch", json={"digests": sorted(loaded)})
    assert fetched.status_code == 200
    assert unpickled(tmp_path) == []


def test_a_blank_token_is_refused(home: Home) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "covalent._server", "--host", "0.0.0.0", "--port", str(free_port())],
        env={**home.env, "PATH": "/usr/bin:/bin", "COVALENT_TOKEN": " "},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2
    assert "blank" in done.stderr


KEY = "-".join(["k", "12345", "secret"])  # as if read from a vault: not in any source


@ct.electron(executor=ct.executor.LocalExecutor(env={"API_KEY": KEY}))
def uses_a_key():
    import os

    return len(os.environ["API_KEY"])


@ct.lattice
def keyed():
    return uses_a_key()


def test_executor_secrets_are_masked_in_every_answer_but_reach_the_electron(
    server: Home,
) -> None:
    result = ct.dispatch_sync(keyed)()
    assert result.result == len("k-12345-secret")  # the electron had the real value
    base = f"{server.url}/api/v1"
    manifest = httpx.get(f"{base}/dispatches/{result.dispatch_id}/manifest").text
    panel = httpx.get(f"{base}/ui/dispatches/{result.dispatch_id}/nodes/0").text
    for shown in (manifest, panel):
        assert "API_KEY" in shown and "********" in shown
        assert "k-12345-secret" not in shown


def test_the_database_blobs_and_results_are_private(server: Home) -> None:
    result = ct.dispatch_sync(keyed)()
    data = server.root / "data"
    databases = list(data.rglob("*.sqlite")) + list(data.rglob("*.db"))
    assert databases, f"no database under {data}"
    for database in databases:
        assert database.stat().st_mode & 0o077 == 0, f"{database} is readable by others"
    results = server.root / "cache" / "results" / result.dispatch_id
    assert results.is_dir() and results.stat().st_mode & 0o077 == 0
    for folder in (p for p in data.rglob("*") if p.is_dir() and "blobs" in p.parts):
        assert folder.stat().st_mode & 0o077 == 0, f"{folder} is open to others"
