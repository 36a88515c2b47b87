"""The SDK's HTTP client against a real server: kept-alive connections, one per thread,
reopened when the server closed them, and the errors of a server that is not there."""

from __future__ import annotations

import gc
import threading

import pytest

from covalent._client.http import Client, _closed_by_peer
from covalent._errors import BadRequestError, ServerUnavailableError
from tests.conftest import Home, free_port, wait_for


def test_requests_share_one_connection_until_the_server_closes_it(server: Home) -> None:
    client = Client(server.url)
    try:
        assert client.health()["status"] == "ok"
        sock = client._local.kept.connection.sock
        assert client.list_dispatches(limit=1)["offset"] == 0
        assert client._local.kept.connection.sock is sock  # kept alive
        # uvicorn closes a connection idle for 5 s; the next request opens a new one
        wait_for(lambda: _closed_by_peer(sock), timeout=120, what="the server to close it")
        assert client.health()["status"] == "ok"
        assert client._local.kept.connection.sock is not sock
    finally:
        client.close()


def test_an_error_answer_leaves_the_connection_usable(server: Home) -> None:
    client = Client(server.url)
    try:
        with pytest.raises(BadRequestError, match="Unknown status 'NOPE'"):
            client.list_dispatches(status="NOPE")
        assert client.health()["status"] == "ok"
    finally:
        client.close()


def test_each_thread_has_its_connection_and_it_closes_with_the_thread(server: Home) -> None:
    client = Client(server.url)
    seen: list[object] = []

    def work() -> None:
        client.health()
        seen.append(client._local.kept.connection)

    try:
        threads = [threading.Thread(target=work) for _ in range(3)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert len({id(c) for c in seen}) == 3
        gc.collect()
        assert all(connection.sock is None for connection in seen)  # type: ignore[attr-defined]
        assert len(client._kept) == 0
    finally:
        client.close()


def test_no_server_is_said_so() -> None:
    client = Client(f"http://127.0.0.1:{free_port()}")
    with pytest.raises(ServerUnavailableError, match="No covalent server answers at"):
        client.health()


def test_a_proxy_from_the_environment_is_used(
    server: Home, monkeypatch: pytest.MonkeyPatch
) -> None:
    """HTTP_PROXY sends the requests through the proxy (here the server itself, which
    answers a request in a proxy's absolute form), for a host only the proxy could
    reach; NO_PROXY exempts a host."""
    far = "http://covalent-only-the-proxy-knows.invalid:9"
    monkeypatch.setenv("HTTP_PROXY", server.url)
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    client = Client(far)
    try:
        assert client.health()["status"] == "ok"
        with pytest.raises(BadRequestError, match="Unknown status"):
            client.list_dispatches(status="NOPE")
    finally:
        client.close()
    monkeypatch.setenv("NO_PROXY", "covalent-only-the-proxy-knows.invalid")
    direct = Client(far)
    try:
        with pytest.raises(ServerUnavailableError, match="No covalent server answers at"):
            direct.health()
    finally:
        direct.close()
