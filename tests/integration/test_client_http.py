"""The SDK's HTTP client against a real server: kept-alive connections shared by its
threads, reopened when the server closed them, and the errors of a server that is not
there."""

from __future__ import annotations

import threading

import pytest
from urllib3.util.wait import wait_for_read

from covalent._client.http import Client
from covalent._errors import BadRequestError, ServerUnavailableError
from tests.conftest import Home, free_port, wait_for


def _kept(client: Client) -> list[object]:
    """The connections the client keeps for its next requests."""
    return [c for c in client._pool.pool.queue if c is not None]  # type: ignore[union-attr]


def test_requests_share_one_connection_until_the_server_closes_it(server: Home) -> None:
    client = Client(server.url)
    try:
        assert client.health()["status"] == "ok"
        assert client.list_dispatches(limit=1)["offset"] == 0
        assert client._pool.num_connections == 1  # kept alive
        (connection,) = _kept(client)
        # uvicorn closes a connection idle for 5 s; the next request opens a new one
        sock = connection.sock  # type: ignore[attr-defined]
        wait_for(lambda: wait_for_read(sock, 0), timeout=120, what="the server to close it")
        assert client.health()["status"] == "ok"
        (again,) = _kept(client)
        assert again.sock is not None and again.sock is not sock  # type: ignore[attr-defined]
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


def test_threads_share_the_client_and_its_connections_stay_few(server: Home) -> None:
    client = Client(server.url)
    errors: list[BaseException] = []

    def work() -> None:
        try:
            for _ in range(20):
                assert client.health()["status"] == "ok"
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    try:
        threads = [threading.Thread(target=work) for _ in range(3)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert errors == []
        assert 1 <= client._pool.num_connections <= 3  # one per concurrent request at most
        assert client._pool.num_requests == 60
        assert len(_kept(client)) == client._pool.num_connections  # all kept for later
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
