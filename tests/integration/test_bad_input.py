"""Bad input gets a clear error, nothing is stored, and the server keeps serving."""

from __future__ import annotations

import threading

import httpx
import pytest

import covalent as ct
from covalent._errors import BadRequestError, WorkflowError
from covalent._wire import bundle
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


@pytest.mark.parametrize(
    ("body", "status", "words"),
    [
        (b"not a bundle", 400, "not a covalent bundle"),
        (bundle.pack({"format": 1, "nodes": "x"}, {}), 400, "'nodes' list"),
        (bundle.pack({"format": 99}, {}), 400, "format 1"),
        (
            bundle.pack(
                {
                    "format": 1,
                    "nodes": [
                        {
                            "id": 0,
                            "name": "a",
                            "kind": "electron",
                            "function": "0" * 64,
                            "executor": {"name": "local"},
                        }
                    ],
                    "edges": [],
                    "result": {"node": 0},
                },
                {},
            ),
            400,
            "was not sent",
        ),
    ],
)
def test_malformed_manifests_are_refused_and_nothing_is_stored(
    server: Home, body: bytes, status: int, words: str
) -> None:
    before = _count(server)
    answer = httpx.post(f"{server.url}/api/v1/dispatches", content=body)
    assert answer.status_code == status
    assert words in answer.json()["detail"]
    assert _count(server) == before
    assert httpx.get(f"{server.url}/api/v1/health").json()["status"] == "ok"


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
