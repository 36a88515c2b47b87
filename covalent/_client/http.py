"""The HTTP client of the dispatcher server's REST API.

One client per server URL and process, with a pool of keep-alive connections shared by
its threads. Every failure becomes a CovalentError: no answer is a
ServerUnavailableError, a 404 for a dispatch is a DispatchNotFoundError, other errors
carry the server's one-line explanation.

Requests and answers go through urllib3's connection pool: a request through httpx's
client took ~0.5 ms of its own CPU time, ~0.3 ms through urllib3 (measured against the
server, 2026-12-01), and a dispatch and its wait make two or three of them. The live
event stream (``events``), a long-lived streamed answer, goes through httpx and
httpx_sse, and so does every request when the environment names a proxy for the server
(``HTTP_PROXY`` and the like, less ``NO_PROXY``), as httpx honours them.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import re
import urllib.request
from collections.abc import Iterator, Mapping
from typing import Any
from urllib.parse import urlencode, urlsplit

import httpx
import urllib3
from httpx_sse import connect_sse

from covalent import _config
from covalent._errors import (
    AuthenticationError,
    BadRequestError,
    ConfigError,
    CovalentError,
    DispatchNotFoundError,
    ExecutorError,
    ServerError,
    ServerUnavailableError,
    StorageFullError,
    StoreLockedError,
    StoreUnavailableError,
    WorkflowError,
)
from covalent._wire import bundle
from covalent._wire import manifest as manifestmod

API = "/api/v1"
TIMEOUT = 30.0
"""Seconds a request may wait for the server (each read or write), unless it says."""
CONNECT_TIMEOUT = 5.0
"""Seconds a new connection may take."""
POOL_SIZE = 8
"""Connections to the server a client keeps alive (more are opened when its threads
need them, and closed after their request)."""
EVENTS_READ_TIMEOUT = 60.0
"""Seconds the live event stream may be silent (the server sends a ping every 15 s)."""
FULL_ID = 36
"""Characters in a dispatch id (a UUID); anything shorter is taken as a prefix."""
_ERRORS: dict[str, type[CovalentError]] = {
    "BadRequestError": BadRequestError,
    "TooLargeError": BadRequestError,
    "InvalidFieldError": BadRequestError,
    "NodeNotFoundError": BadRequestError,
    "StorageFullError": StorageFullError,
    "WorkflowError": WorkflowError,
    "ExecutorError": ExecutorError,
    "StoreUnavailableError": StoreUnavailableError,
    "StoreLockedError": StoreLockedError,
}


class Answer:
    """The server's answer to one request: its status and body."""

    __slots__ = ("content", "status_code")

    def __init__(self, status_code: int, content: bytes) -> None:
        self.status_code = status_code
        self.content = content

    def json(self) -> Any:
        return json.loads(self.content)

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", "replace")


class Client:
    """Talks to one server; ``url`` is like ``http://localhost:48008``."""

    def __init__(self, url: str, token: str | None = None) -> None:
        self.url = url
        self.headers = {"authorization": f"Bearer {token}"} if token else {}
        try:
            self.http = httpx.Client(
                base_url=url + API,
                timeout=httpx.Timeout(TIMEOUT, connect=CONNECT_TIMEOUT),
                headers=self.headers,
            )
            parts = urlsplit(url)
            self._pool = urllib3.connection_from_url(url, maxsize=POOL_SIZE, retries=False)
        except (httpx.InvalidURL, ValueError, urllib3.exceptions.LocationValueError) as e:
            raise ConfigError(
                f"The covalent server's address {url} is not a valid URL ({e}); check "
                "COVALENT_SERVER_URL, dispatcher_addr= or dispatcher.address and .port."
            ) from None
        self._base = parts.path.rstrip("/") + API
        self._origin = f"{parts.scheme}://{parts.netloc}"
        self._proxied = _proxied(parts.scheme, parts.hostname or "localhost")

    def close(self) -> None:
        self.http.close()
        self._pool.close()

    def request(
        self,
        method: str,
        path: str,
        timeout: float | None = None,
        *,
        params: Mapping[str, Any] | None = None,
        content: bytes | None = None,
        json: Any = None,
        headers: Mapping[str, str] | None = None,
    ) -> Answer:
        """``method`` on ``API + path``; the server's answer, or a CovalentError for an
        error status (:meth:`_error`) or no answer (ServerUnavailableError). ``json`` is
        sent as a JSON body, ``content`` as bytes; ``timeout`` bounds each read."""
        target = self._base + path + (f"?{urlencode(params)}" if params else "")
        sent = dict(self.headers)
        if json is not None:
            content = _json_body(json)
            sent["content-type"] = "application/json"
        if headers:
            sent.update(headers)
        with self._transport_errors():
            if self._proxied:  # httpx reads the environment's proxies; urllib3 does not
                answer = self._through_proxy(method, target, content, sent, timeout or TIMEOUT)
            else:
                answer = self._exchange(method, target, content, sent, timeout or TIMEOUT)
        if answer.status_code >= 400:
            raise self._error(answer, path)
        return answer

    def _exchange(
        self, method: str, target: str, body: bytes | None, headers: dict[str, str], timeout: float
    ) -> Answer:
        """One request on a pooled connection. urllib3 checks a kept connection before it
        reuses it (the server closes idle ones) and drops one that failed mid-answer."""
        response = self._pool.urlopen(
            method,
            target,
            body=body,
            headers=headers,
            timeout=urllib3.Timeout(connect=min(CONNECT_TIMEOUT, timeout), read=timeout),
            redirect=False,
            assert_same_host=False,
        )
        return Answer(response.status, response.data)

    def _through_proxy(
        self, method: str, target: str, body: bytes | None, headers: dict[str, str], timeout: float
    ) -> Answer:
        url = self._origin + target
        response = self.http.request(method, url, content=body, headers=headers, timeout=timeout)
        return Answer(response.status_code, response.content)

    @contextlib.contextmanager
    def _transport_errors(self) -> Iterator[None]:
        """Connection failures (of urllib3, or of httpx for the event stream) as
        ServerUnavailableErrors that say what to do."""
        try:
            yield
        except (httpx.ConnectError, urllib3.exceptions.NewConnectionError) as e:
            raise ServerUnavailableError(
                f"No covalent server answers at {self.url}; start one with `covalent start` "
                "or check the address."
            ) from e
        except (httpx.TimeoutException, urllib3.exceptions.TimeoutError) as e:
            raise ServerUnavailableError(
                f"The covalent server at {self.url} did not answer in time; check it with "
                "`covalent status` and `covalent logs`, then try again."
            ) from e
        except (httpx.TransportError, urllib3.exceptions.HTTPError, OSError) as e:
            raise ServerUnavailableError(
                f"The connection to the covalent server at {self.url} failed "
                f"({e or type(e).__name__}); check that it is running with `covalent status`."
            ) from e

    def _error(self, response: Answer | httpx.Response, path: str) -> CovalentError:
        try:
            body = response.json()
            detail, kind = str(body.get("detail")), body.get("error", "")
        except ValueError:
            detail, kind = response.text[:500], ""
        if response.status_code == 404 and kind == "DispatchNotFoundError":
            parts = path.split("/")  # /dispatches/<id>/...; other routes say it in the detail
            named = parts[2] if len(parts) > 2 and parts[1] == "dispatches" else ""
            match = re.search(r"id '([^']*)'", detail)
            return DispatchNotFoundError(named or (match[1] if match else "?"), self.url)
        if response.status_code == 401:
            return AuthenticationError(detail)
        known = _ERRORS.get(kind)
        if known is not None:
            return known(detail)
        detail = " ".join(detail.split())[:500]
        return ServerError(
            f"The server at {self.url} answered {response.status_code} to {path} ({detail}); "
            "its log (`covalent logs` on that machine) says why."
        )

    # API calls

    def health(self) -> dict[str, Any]:
        return self.request("GET", "/health", timeout=5.0).json()

    def database(self) -> dict[str, Any]:
        """The server's database: URL (password masked), whether it answers, and why not."""
        return self.request("GET", "/database", timeout=15.0).json()

    def submit(
        self, manifest: dict[str, Any], blobs: dict[str, bytes], disable_run: bool = False
    ) -> str:
        body = manifestmod.pack(manifest, blobs)
        response = self.request(
            "POST",
            "/dispatches",
            content=body,
            timeout=600.0,
            params={"disable_run": "true"} if disable_run else None,
            headers={"content-type": bundle.MEDIA_TYPE},
        )
        return str(response.json()["dispatch_id"])

    def dispatch(
        self, dispatch_id: str, wait: float = 0.0, nodes: bool = True, inline_result: bool = False
    ) -> dict[str, Any]:
        """The dispatch's description (``GET /dispatches/{id}``); with ``inline_result``,
        a finished one may carry its small result blob as ``result_blob`` (base64)."""
        params: dict[str, Any] = {"wait": wait, "nodes": "true" if nodes else "false"}
        if inline_result:
            params["inline_result"] = "true"
        return self.request(
            "GET", f"/dispatches/{dispatch_id}", params=params, timeout=wait + 30.0
        ).json()

    def events(self, dispatch_id: str) -> Iterator[tuple[str, Any]]:
        """The live event stream of one dispatch (``GET /events``): ``(event, data)``
        pairs, data decoded from JSON, until the server ends it (see docs/ui.md)."""
        timeout = httpx.Timeout(30.0, connect=5.0, read=EVENTS_READ_TIMEOUT)
        params = {"dispatch_id": dispatch_id}
        stream = connect_sse(self.http, "GET", "/events", params=params, timeout=timeout)
        with self._transport_errors(), stream as source:
            if source.response.status_code >= 400:
                source.response.read()
                raise self._error(source.response, f"/dispatches/{dispatch_id}/events")
            for event in source.iter_sse():
                yield event.event, json.loads(event.data) if event.data else None

    def status(self, dispatch_id: str) -> dict[str, str]:
        return self.request("GET", f"/dispatches/{dispatch_id}/status").json()

    def list_dispatches(
        self,
        status: str | None = None,
        limit: int = 50,
        offset: int = 0,
        name: str | None = None,
        since: float | None = None,
        id_prefix: str | None = None,
    ) -> dict[str, Any]:
        """A page of dispatches, newest first, and ``total``: how many match."""
        params: dict[str, Any] = {"limit": limit, "offset": offset}
        chosen = {"status": status, "name": name, "since": since, "id_prefix": id_prefix}
        params.update({k: v for k, v in chosen.items() if v is not None})
        return self.request("GET", "/dispatches", params=params).json()

    def resolve(self, dispatch_id: str) -> str:
        """The full id of a dispatch given by its id or a unique prefix of it.

        DispatchNotFoundError if none matches, BadRequestError if several do.
        """
        if len(dispatch_id) == FULL_ID:
            return dispatch_id
        found = self.list_dispatches(limit=5, id_prefix=dispatch_id)
        ids = [row["dispatch_id"] for row in found["dispatches"]]
        if not ids:
            raise DispatchNotFoundError(dispatch_id, self.url)
        if len(ids) > 1:
            more = f" and {found['total'] - len(ids)} more" if found["total"] > len(ids) else ""
            raise BadRequestError(
                f"The id prefix '{dispatch_id}' matches {found['total']} dispatches "
                f"({', '.join(ids)}{more}); give more of the id."
            )
        return str(ids[0])

    def redispatch(self, dispatch_id: str, reuse: bool = False) -> str:
        """Run a stored dispatch again with its inputs; with ``reuse``, its completed
        nodes keep their outputs. The new dispatch's id."""
        body = {"reuse_previous_results": reuse}
        answer = self.request("POST", f"/dispatches/{dispatch_id}/redispatch", json=body)
        return str(answer.json()["dispatch_id"])

    def triggers(self, dispatch_id: str | None = None, active: bool | None = None) -> list[Any]:
        params: dict[str, Any] = {}
        if dispatch_id is not None:
            params["dispatch_id"] = dispatch_id
        if active is not None:
            params["active"] = "true" if active else "false"
        triggers: list[Any] = self.request("GET", "/triggers", params=params).json()["triggers"]
        return triggers

    def stop_triggers(self, dispatch_ids: list[str]) -> list[int]:
        answer = self.request("POST", "/triggers/stop", json={"dispatch_ids": dispatch_ids})
        return [int(t) for t in answer.json()["stopped"]]

    def cancel(self, dispatch_id: str, task_ids: list[int] | None = None) -> dict[str, Any]:
        path = f"/dispatches/{dispatch_id}/cancel"
        return dict(self.request("POST", path, json={"task_ids": task_ids}).json())

    def delete(self, dispatch_id: str) -> None:
        self.request("DELETE", f"/dispatches/{dispatch_id}")

    def clear_cache(self) -> int:
        return int(self.request("DELETE", "/cache").json()["cleared"])

    def fetch_blobs(self, digests: list[str]) -> dict[str, bytes]:
        if len(digests) == 1:
            return {digests[0]: self.request("GET", f"/blobs/{digests[0]}", timeout=600.0).content}
        response = self.request("POST", "/blobs/fetch", json={"digests": digests}, timeout=600.0)
        return bundle.unpack(response.content)[1]


def _json_body(value: Any) -> bytes:
    """``value`` as a JSON body, encoded as httpx encodes one."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode()


def _proxied(scheme: str, host: str) -> bool:
    """Whether the environment (``HTTP_PROXY``, ``HTTPS_PROXY``, ``ALL_PROXY``, less
    ``NO_PROXY``) sends requests to ``host`` through a proxy."""
    proxies = urllib.request.getproxies()
    if not (proxies.get(scheme) or proxies.get("all")):
        return False
    return not urllib.request.proxy_bypass(host)


_clients: dict[tuple[str, int, str | None], Client] = {}


def client_for(url: str) -> Client:
    """The shared client of ``url`` in this process (connections are kept alive), sending
    the configured token (``dispatcher.token`` or ``COVALENT_TOKEN``) if there is one."""
    token = _config.get_value("dispatcher").get("token")
    key = (url, os.getpid(), token)
    client = _clients.get(key)
    if client is None:
        client = _clients[key] = Client(url, token)
    return client


@atexit.register
def _close_all() -> None:
    """Close this process's kept connections as it exits (not a warning per socket)."""
    for key, client in list(_clients.items()):
        if key[1] == os.getpid():
            client.close()
