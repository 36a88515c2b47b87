"""A real HTTP file server on loopback for the HTTP file-transfer strategy's tests.

``httpd`` (per test) serves a temporary folder on 127.0.0.1 and a free port from a thread
of the test process: ``GET`` answers a file (404 when missing), ``PUT`` stores the body
at the URL's path, ``POST`` stores the ``file`` field of a multipart form there. Every
request is recorded (method, path, headers) for the tests to check.
"""

from __future__ import annotations

import email.parser
import email.policy
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import pytest


@dataclass
class Httpd:
    root: Path
    port: int
    requests: list[dict[str, Any]] = field(default_factory=list)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}/{path.lstrip('/')}"


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def _target(self) -> Path:
        self.server.state.requests.append(
            {"method": self.command, "path": self.path, "headers": dict(self.headers)}
        )
        relative = unquote(urlsplit(self.path).path).lstrip("/")
        target = (self.server.state.root / relative).resolve()
        if not target.is_relative_to(self.server.state.root.resolve()):
            raise PermissionError(self.path)
        return target

    def _answer(self, status: int, body: bytes = b"") -> None:
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _body(self) -> bytes:
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def do_GET(self) -> None:
        target = self._target()
        if target.is_file():
            self._answer(200, target.read_bytes())
        else:
            self._answer(404, b"not found")

    def do_PUT(self) -> None:
        target = self._target()
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(self._body())
        self._answer(201)

    def do_POST(self) -> None:
        target = self._target()
        head = f"Content-Type: {self.headers['Content-Type']}\r\n\r\n".encode()
        form = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + self._body())
        for part in form.iter_parts():
            if part.get_param("name", header="content-disposition") == "file":
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(part.get_payload(decode=True))
                self._answer(201)
                return
        self._answer(400, b"no file field")

    def log_message(self, format: str, *args: Any) -> None:
        pass  # requests are recorded in the state instead


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, state: Httpd) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.state = state


@pytest.fixture
def httpd(tmp_path: Path) -> Iterator[Httpd]:
    root = tmp_path / "httpd"
    root.mkdir()
    state = Httpd(root, 0)
    server = _Server(state)
    state.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, name="httpd", daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=30)
