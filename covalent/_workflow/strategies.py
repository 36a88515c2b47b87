"""Where a file is (:class:`File`), and the strategies that move it.

A file transfer names two locations. Each is one of:

- a local path: ``/data/in.csv``, ``data/in.csv`` (relative to the electron's working
  directory) or ``file:///data/in.csv``;
- a URL: ``http://host/path`` or ``https://host/path``;
- a path on an SSH host: ``user@host:/path``, ``host:/path``, ``ssh://user@host:port/path``,
  or a plain path that a ``TransferFromRemote``/``TransferToRemote`` marks as remote (its
  host then comes from the :class:`Rsync` strategy).

A strategy checks, where the workflow is built, that it can move between the two
locations (:meth:`FileTransferStrategy.check`), and moves the file on the executor
(:meth:`FileTransferStrategy.transfer`): :class:`Shutil` between local paths,
:class:`Rsync` to and from SSH hosts with the ``rsync`` binary, :class:`HTTP` to and from
web servers. Strategies raise on failure; :mod:`covalent._workflow.transfer` names the
file and the strategy in the message.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import httpx

from covalent._errors import WorkflowError

_HOST_PATH = re.compile(r"^(?:(?P<user>[^@/:\s]+)@)?(?P<host>[^@/:\s]+):(?P<path>.*)$")
CHUNK = 1024 * 1024


class File:
    """A file's location: a local path, an http(s) URL, or a path on an SSH host.

    ``filepath`` is what the electron receives: the local path, the URL, or the path on
    the SSH host. No location means a new temporary file path (local, or on the remote
    host when ``remote``).
    """

    def __init__(
        self, location: str | os.PathLike[str] | File | None = None, *, remote: bool = False
    ):
        self.scheme, self.user, self.host, self.port = "file", "", "", 0
        if isinstance(location, File):
            self.__dict__.update(location.__dict__)
        else:
            if location is None:
                location = os.path.join(tempfile.gettempdir(), f"covalent-{uuid.uuid4().hex}")
            if not isinstance(location, (str, os.PathLike)):
                raise WorkflowError(
                    f"A file transfer takes a path, a URL or a ct.fs.File, got {location!r} "
                    f"({type(location).__name__})."
                )
            self.filepath = self._parse(os.fspath(location))
        if remote and self.scheme == "file":
            self.scheme = "ssh"

    def _parse(self, text: str) -> str:
        if not text:
            raise WorkflowError("A file transfer was given an empty path.")
        parts = urlsplit(text)
        if parts.scheme in ("http", "https"):
            self.scheme = parts.scheme
            return text
        if parts.scheme == "file":
            if parts.netloc not in ("", "localhost"):
                raise WorkflowError(
                    f"{text!r} names a host in a file:// URL; write a remote file as "
                    "user@host:/path or ssh://user@host/path."
                )
            return unquote(parts.path)
        if parts.scheme == "ssh":
            self.scheme, self.user, self.host = "ssh", parts.username or "", parts.hostname or ""
            self.port = parts.port or 0
            return unquote(parts.path)
        match = _HOST_PATH.match(text)
        if match and not text.startswith(("/", ".", "~")):
            self.scheme, self.user, self.host = "ssh", match["user"] or "", match["host"]
            return match["path"]
        return text

    @property
    def is_remote(self) -> bool:
        return self.scheme != "file"

    @property
    def is_url(self) -> bool:
        return self.scheme in ("http", "https")

    @property
    def uri(self) -> str:
        """The location as written for messages: a path, a URL or ``user@host:path``."""
        if self.scheme != "ssh":
            return self.filepath
        if not self.host:
            return f"(remote) {self.filepath}"
        login = f"{self.user}@{self.host}" if self.user else self.host
        port = f":{self.port}" if self.port else ""
        return f"ssh://{login}{port}{self.filepath}" if port else f"{login}:{self.filepath}"

    def __repr__(self) -> str:
        return f"File({self.uri!r})"


class FileTransferStrategy:
    """How files move: check the two locations where the workflow is built; move them
    on the executor."""

    def check(self, source: File, dest: File) -> None:
        """Raise a :class:`WorkflowError` if this strategy cannot move ``source`` to ``dest``."""

    def transfer(self, source: File, dest: File) -> None:
        raise NotImplementedError

    def describe(self, file: File) -> str:
        """``file`` as this strategy reaches it, for messages."""
        return file.uri

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


def _make_parent(path: str) -> None:
    parent = os.path.dirname(os.path.abspath(path))
    os.makedirs(parent, exist_ok=True)


def _not_supported(strategy: FileTransferStrategy, file: File, hint: str) -> WorkflowError:
    return WorkflowError(f"{strategy!r} cannot move {file.uri}: {hint}.")


class Shutil(FileTransferStrategy):
    """Copy between local paths (a file with its metadata, or a whole folder)."""

    def check(self, source: File, dest: File) -> None:
        for file in (source, dest):
            if file.is_remote:
                raise _not_supported(self, file, "it copies local paths; use Rsync or HTTP")

    def transfer(self, source: File, dest: File) -> None:
        _make_parent(dest.filepath)
        if os.path.isdir(source.filepath):
            shutil.copytree(source.filepath, dest.filepath, dirs_exist_ok=True)
        else:
            shutil.copy2(source.filepath, dest.filepath)


class Rsync(FileTransferStrategy):
    """``rsync -a`` between a local path and an SSH host (or two local paths).

    ``user``, ``host`` and ``port`` fill in what a remote location does not say itself.
    Logins use ``private_key_path`` (if given) without prompting (``BatchMode``); host keys
    are checked against ``known_hosts`` (default: ssh's own) with
    ``strict_host_key_checking`` (default ``accept-new``: trust a host's first key, refuse
    a changed one). As with rsync itself, a source folder ``dir/`` copies its contents and
    ``dir`` the folder itself.
    """

    def __init__(
        self,
        user: str = "",
        host: str = "",
        private_key_path: str | None = None,
        port: int = 0,
        *,
        strict_host_key_checking: str = "accept-new",
        known_hosts: str = "",
    ) -> None:
        self.user = user
        self.host = host
        self.private_key_path = private_key_path
        self.port = int(port or 0)
        self.strict_host_key_checking = strict_host_key_checking
        self.known_hosts = known_hosts

    def __repr__(self) -> str:
        login = f"{self.user}@{self.host}" if self.user else self.host
        return f"Rsync({login!r})" if login else "Rsync()"

    def check(self, source: File, dest: File) -> None:
        for file in (source, dest):
            if file.is_url:
                raise _not_supported(self, file, "it moves files over SSH; use HTTP for URLs")
            if file.is_remote and not (file.host or self.host):
                raise _not_supported(
                    self, file, "no host is named; write user@host:/path or pass Rsync(host=...)"
                )
        if source.is_remote and dest.is_remote:
            raise _not_supported(self, dest, "one side of an rsync transfer must be local")

    def transfer(self, source: File, dest: File) -> None:
        if shutil.which("rsync") is None:
            raise FileNotFoundError("rsync is not installed on the executor (apt install rsync)")
        command = ["rsync", "-a"]
        remote = source if source.is_remote else dest if dest.is_remote else None
        if remote is not None:
            command += ["-e", shlex.join(self._ssh_command(remote))]
        if dest.is_remote:
            parent = os.path.dirname(dest.filepath.rstrip("/")) or "."
            command.append(f"--rsync-path=mkdir -p {shlex.quote(parent)} && rsync")
        else:
            _make_parent(dest.filepath)
        command += [self._argument(source), self._argument(dest)]
        done = subprocess.run(command, capture_output=True, text=True, stdin=subprocess.DEVNULL)
        _echo(done)
        if done.returncode != 0:
            raise RuntimeError(
                f"rsync exited with code {done.returncode}: {done.stderr.strip()[-2000:]}"
            )

    def _ssh_command(self, remote: File) -> list[str]:
        ssh = ["ssh", "-o", "BatchMode=yes", "-o", "ConnectTimeout=30"]
        port = remote.port or self.port
        if port:
            ssh += ["-p", str(port)]
        if self.private_key_path:
            ssh += ["-i", os.path.expanduser(self.private_key_path)]
        ssh += ["-o", f"StrictHostKeyChecking={self.strict_host_key_checking}"]
        if self.known_hosts:
            ssh += ["-o", f"UserKnownHostsFile={os.path.expanduser(self.known_hosts)}"]
        return ssh

    def describe(self, file: File) -> str:
        return self._argument(file) if file.is_remote and not file.port else file.uri

    def _argument(self, file: File) -> str:
        if not file.is_remote:
            return file.filepath
        user = file.user or self.user
        host = file.host or self.host
        return f"{user}@{host}:{file.filepath}" if user else f"{host}:{file.filepath}"


class HTTP(FileTransferStrategy):
    """Download from, or upload to, a web server.

    Downloads ``GET`` the URL (following redirects) into the local file. Uploads send the
    local file with ``upload_method``: ``PUT`` (the file as the body, as object stores'
    presigned URLs expect) or ``POST`` (a multipart form with the file in the field
    ``upload_field``). ``headers`` go with every request (an ``Authorization`` header, for
    instance); ``timeout`` bounds each network wait, in seconds.
    """

    def __init__(
        self,
        headers: dict[str, str] | None = None,
        *,
        upload_method: str = "PUT",
        upload_field: str = "file",
        timeout: float = 60.0,
        verify: bool = True,
    ) -> None:
        self.headers = dict(headers or {})
        self.upload_method = upload_method.upper()
        if self.upload_method not in ("PUT", "POST"):
            raise WorkflowError(f"HTTP uploads with PUT or POST, not {upload_method!r}.")
        self.upload_field = upload_field
        self.timeout = timeout
        self.verify = verify

    def check(self, source: File, dest: File) -> None:
        for file in (source, dest):
            if file.is_remote and not file.is_url:
                raise _not_supported(self, file, "it needs an http:// or https:// URL")
        if source.is_url == dest.is_url:
            raise _not_supported(self, dest, "one side must be a URL and the other a local path")

    def transfer(self, source: File, dest: File) -> None:
        with httpx.Client(headers=self.headers, timeout=self.timeout, verify=self.verify) as client:
            if source.is_url:
                self._download(client, source.filepath, dest.filepath)
            else:
                self._upload(client, source.filepath, dest.filepath)

    def _download(self, client: httpx.Client, url: str, path: str) -> None:
        _make_parent(path)
        partial = f"{path}.part-{uuid.uuid4().hex[:8]}"
        try:
            with client.stream("GET", url, follow_redirects=True) as response:
                _raise_for_status(response)
                with open(partial, "wb") as f:
                    for chunk in response.iter_bytes(CHUNK):
                        f.write(chunk)
            os.replace(partial, path)
        finally:
            if os.path.exists(partial):
                os.unlink(partial)

    def _upload(self, client: httpx.Client, path: str, url: str) -> None:
        if os.path.isdir(path):
            raise IsADirectoryError(f"HTTP uploads single files and {path} is a folder")
        with open(path, "rb") as f:
            if self.upload_method == "PUT":
                size = str(os.fstat(f.fileno()).st_size)
                response = client.put(url, content=_chunks(f), headers={"Content-Length": size})
            else:
                files = {self.upload_field: (Path(path).name, f, "application/octet-stream")}
                response = client.post(url, files=files)
        _raise_for_status(response)

    def __repr__(self) -> str:
        return (
            "HTTP()"
            if self.upload_method == "PUT"
            else f"HTTP(upload_method={self.upload_method!r})"
        )


def _chunks(f: Any) -> Iterator[bytes]:
    while chunk := f.read(CHUNK):
        yield chunk


def _raise_for_status(response: httpx.Response) -> None:
    if response.status_code >= 400:
        raise RuntimeError(
            f"the server answered {response.status_code} {response.reason_phrase} "
            f"to {response.request.method} {response.request.url}"
        )


def _echo(done: subprocess.CompletedProcess[str]) -> None:
    """Pass a command's output on to the electron's captured stdout and stderr."""
    if done.stdout:
        print(done.stdout, end="")
    if done.stderr:
        print(done.stderr, end="", file=sys.stderr)


def default_strategy(source: File, dest: File) -> FileTransferStrategy:
    """HTTP when a side is a URL, Rsync when a side is on an SSH host, else Shutil."""
    if source.is_url or dest.is_url:
        return HTTP()
    if source.is_remote or dest.is_remote:
        return Rsync()
    return Shutil()
