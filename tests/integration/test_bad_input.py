"""Bad input gets a clear error, nothing is stored, and the server keeps serving."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest

import covalent as ct
from covalent._client.http import Client
from covalent._errors import BadRequestError, ConfigError, WorkflowError
from covalent._wire import bundle
from covalent._wire import manifest as manifestmod
from tests.conftest import Home


@ct.electron
def echo(x, y=None):
    return x


def _count(home: Home) -> int:
    return httpx.get(f"{home.url}/api/v1/dispatches").json()["total"]


def test_unpicklable_argument_names_the_argument_and_electron(server: Home) -> None:
    @ct.lattice
    def flow(lock):
        return echo(1, y=lock)

    with pytest.raises(WorkflowError, match=r"argument 'y' of electron echo\(0\).*pickle"):
        ct.dispatch(flow)(threading.Lock())


def test_lattice_arguments_must_fit_its_signature(server: Home) -> None:
    @ct.lattice
    def flow(a, b=1):
        return echo(a)

    with pytest.raises(WorkflowError, match=r"lattice 'flow\(a, b=1\)'.*unexpected keyword"):
        ct.dispatch(flow)(1, c=2)


def test_control_flow_on_an_output_explains_sublattices(server: Home) -> None:
    @ct.lattice
    def flow(a):
        if echo(a):
            return 1
        return 0

    with pytest.raises(WorkflowError, match="flow.*boolean.*sublattice"):
        ct.dispatch(flow)(1)


def _framed(header: bytes, blobs: bytes = b"") -> bytes:
    """A bundle around header bytes written by hand (json.dumps cannot write 1e999)."""
    return bundle.MAGIC + len(header).to_bytes(8, "big") + header + blobs


def _good() -> tuple[dict[str, Any], dict[str, bytes]]:
    @ct.lattice
    def flow(a):
        return echo([echo(a), echo(a)])

    return manifestmod.from_graph(flow.build_graph(1), (1,), {}, flow)


def _changed(change: Callable[[dict[str, Any]], object]) -> bytes:
    """A good dispatch's bundle with ``change`` made to its manifest."""
    manifest, blobs = _good()
    change(manifest)
    return bundle.pack(manifest, blobs)


def _whole(manifest: dict[str, Any]) -> dict[str, Any]:
    return manifest


def _first(kind: str) -> Callable[[dict[str, Any]], dict[str, Any]]:
    return lambda manifest: next(n for n in manifest["nodes"] if n["kind"] == kind)


def _set(where: Callable[[dict[str, Any]], dict[str, Any]], key: str, value: Any) -> Any:
    return lambda manifest: where(manifest).__setitem__(key, value)


def _with_attributes(attributes: bytes) -> bytes:
    """The good dispatch's bundle with its first executor's attributes written by hand."""
    manifest, blobs = _good()
    header = json.dumps({**manifest, "blobs": [[d, len(b)] for d, b in blobs.items()]}).encode()
    header = header.replace(b'"attributes": {}', b'"attributes": ' + attributes, 1)
    return _framed(header, b"".join(blobs.values()))


_DIGEST = "0" * 64
NINE_AND_MORE = [
    # the nine of issue 15, then others of their kinds
    pytest.param(_framed(b"[" * 100_000 + b"]" * 100_000), 400, "recursion limit", id="deep-array"),
    pytest.param(
        _with_attributes(b'{"a":' * 100_000 + b"1" + b"}" * 100_000),
        400,
        "recursion limit",
        id="deep-object",
    ),
    pytest.param(
        _framed(b'{"format":1,"blobs":[["' + _DIGEST.encode() + b'",1e999]]}'),
        422,
        "blobs[0][1]",
        id="blob-size-1e999",
    ),
    pytest.param(
        _changed(_set(_first("electron"), "metadata", [])), 422, "].metadata", id="metadata-list"
    ),
    pytest.param(
        _changed(_set(_first("electron"), "metadata", "x")), 422, "].metadata", id="metadata-str"
    ),
    pytest.param(_changed(_set(_whole, "inputs", [])), 422, "field inputs", id="inputs-list"),
    pytest.param(_changed(_set(_whole, "reuse", [])), 422, "field reuse", id="reuse-list"),
    pytest.param(
        _changed(_set(_first("collection"), "metadata", {"collection": "not-a-shape"})),
        422,
        "metadata.collection",
        id="collection-shape",
    ),
    pytest.param(b"not a bundle", 400, "not a covalent bundle", id="not-a-bundle"),
    pytest.param(bundle.pack({"format": 1, "nodes": "x"}, {}), 422, "field nodes", id="nodes-str"),
    pytest.param(bundle.pack({"format": 99}, {}), 422, "format is not valid", id="format-99"),
    pytest.param(
        _changed(_set(_first("electron"), "function", _DIGEST)), 400, "not sent", id="no-blob"
    ),
    pytest.param(
        _changed(_set(_first("electron"), "metadata", {"timeout": -1})),
        422,
        "metadata.timeout",
        id="negative-timeout",
    ),
    pytest.param(_with_attributes(b'{"x": NaN}'), 422, "executor.attributes.x", id="nan"),
]


@pytest.mark.parametrize(("body", "status", "words"), NINE_AND_MORE)
def test_malformed_manifests_are_refused_and_nothing_is_stored(
    server: Home, body: bytes, status: int, words: str
) -> None:
    before = _count(server)
    answer = httpx.post(f"{server.url}/api/v1/dispatches", content=body)
    assert answer.status_code == status
    assert words in answer.json()["detail"]
    assert _count(server) == before
    assert httpx.get(f"{server.url}/api/v1/health").json()["status"] == "ok"


@pytest.mark.parametrize("route", ["/api/v1/dispatches", "/api/v1/ui/dispatches"])
def test_an_offset_past_any_integer_column_is_refused_by_name(server: Home, route: str) -> None:
    answer = httpx.get(f"{server.url}{route}", params={"offset": 2**64})
    assert answer.status_code == 422
    assert answer.json()["field"] == "query.offset"
    assert "query.offset" in answer.json()["detail"]


def test_the_client_names_the_field_the_server_refused(server: Home) -> None:
    with pytest.raises(BadRequestError, match=r"field query\.offset is not valid"):
        Client(server.url).list_dispatches(offset=2**64)


def test_a_request_over_the_size_limit_is_refused(home: Home) -> None:
    config = home.root / "config" / "covalent.conf"
    config.write_text(config.read_text() + "max_upload_bytes = 100000\n")
    assert home.run("covalent", "start").returncode == 0

    @ct.lattice
    def flow(data):
        return echo(data)

    with pytest.raises(BadRequestError, match="more than this server accepts"):
        ct.dispatch(flow)(b"x" * 200_000)
    assert _count(home) == 0
    assert ct.dispatch_sync(flow)(b"small").result == b"small"


def nap(a):
    time.sleep(120)  # still running when the test cancels it
    return a


def test_cancelling_a_node_the_dispatch_does_not_have_is_refused_by_id(server: Home) -> None:
    # it was "cancel requested" (exit 0) and nothing happened
    @ct.lattice
    def flow(a):
        return ct.electron(nap)(a)

    dispatch_id = ct.dispatch(flow)(1)
    answer = httpx.post(
        f"{server.url}/api/v1/dispatches/{dispatch_id}/cancel", json={"task_ids": [0, 7, 99]}
    )
    assert answer.status_code == 404
    assert answer.json()["error"] == "NodeNotFoundError"
    assert f"Dispatch {dispatch_id} has no node 7, 99;" in answer.json()["detail"]
    with pytest.raises(BadRequestError, match="has no node 7"):
        ct.cancel(dispatch_id, task_ids=[7])
    assert ct.cancel(dispatch_id, task_ids=[0]).startswith("Cancellation of nodes [0]")
    assert ct.get_result(dispatch_id, wait=True).status in {
        ct.status.COMPLETED,
        ct.status.CANCELLED,
    }


def test_cancelling_with_an_empty_list_of_nodes_cancels_the_whole_dispatch(server: Home) -> None:
    # it answered "cancel requested" and cancelled nothing; Covalent reads [] as all of it
    @ct.lattice
    def flow(a):
        return ct.electron(nap)(a)

    dispatch_id = ct.dispatch(flow)(1)
    assert ct.cancel(dispatch_id, task_ids=[]).startswith("Cancellation of dispatch")
    assert ct.get_result(dispatch_id, wait=True).status == ct.status.CANCELLED
    other = ct.dispatch(flow)(2)
    answer = httpx.post(f"{server.url}/api/v1/dispatches/{other}/cancel", json={"task_ids": []})
    assert answer.json()["status"] == "cancel requested"
    assert ct.get_result(other, wait=True).status == ct.status.CANCELLED


def test_cancelling_a_finished_dispatch_says_so_and_changes_nothing(server: Home) -> None:
    # it answered "cancel requested" for a dispatch that had long finished
    @ct.lattice
    def flow(a):
        return echo(a)

    result = ct.dispatch_sync(flow)(3)
    assert result.status == ct.status.COMPLETED
    answer = httpx.post(f"{server.url}/api/v1/dispatches/{result.dispatch_id}/cancel", json={})
    assert answer.status_code == 200
    assert answer.json() == {
        "dispatch_id": result.dispatch_id,
        "status": "already finished",
        "dispatch_status": "COMPLETED",
    }
    message = ct.cancel(result.dispatch_id)
    assert "has already finished (COMPLETED); nothing was cancelled" in message
    again = ct.get_result(result.dispatch_id)
    assert again.status == ct.status.COMPLETED and again.result == 3


def test_a_server_address_that_is_not_a_url_is_a_config_error() -> None:
    # it was httpx.InvalidURL, with a traceback from the CLI
    with pytest.raises(ConfigError, match=r"address http://\[::1 is not a valid URL"):
        ct.get_result("any-id", dispatcher_addr="http://[::1")
