"""What the far side of an executor sends back, and how: MessagePack, never pickle.

A task's reply (:class:`Reply`), and from the local pool's workers also the moment a
task starts (:class:`Started`) and what it writes while it runs (:class:`Output`), are
encoded with MessagePack (msgspec). The server decodes them into these typed records:
decoding runs no code whatever the bytes say, checks every field's type, and a
malformed message is an error the caller turns into a failed node. The electron's
output inside a reply stays pickled bytes (``output``), which only the client unpickles.

Text fields are made valid UTF-8 before they are encoded (an electron may print lone
surrogates or bytes that are not UTF-8): undecodable characters become U+FFFD.
"""

from __future__ import annotations

from typing import Any

import msgspec

from covalent._errors import CovalentError

FORMAT = 1
"""The version of these records; a far side writes it in every reply."""


class OutputFile(msgspec.Struct, frozen=True):
    """A large output the far side wrote into the blob store itself."""

    digest: str
    size: int
    path: str


class Reply(msgspec.Struct, tag="reply"):
    """How a task ended: its pickled output, or its error with the traceback."""

    key: tuple[str, int]  # dispatch id, node id
    status: str  # COMPLETED, FAILED or CANCELLED; NOT_RUN: a chained task without its input
    start_time: float
    end_time: float
    output: bytes | None = None
    output_repr: str = ""
    output_file: OutputFile | None = None
    error: str = ""
    stdout: str = ""
    stderr: str = ""
    format: int = FORMAT


class Started(msgspec.Struct, tag="started"):
    """A worker started the task at ``at`` (UNIX seconds)."""

    key: tuple[str, int]
    at: float


class Output(msgspec.Struct, tag="output"):
    """Text the task wrote to ``stream`` (``"stdout"`` or ``"stderr"``) since the last."""

    key: tuple[str, int]
    stream: str
    text: str


Event = Reply | Started | Output

_encoder = msgspec.msgpack.Encoder()
_reply_decoder = msgspec.msgpack.Decoder(Reply)
_events_decoder = msgspec.msgpack.Decoder(list[Event])


class MessageError(CovalentError):
    """Bytes that are not a well-formed message of this module."""


def clean(text: str) -> str:
    """``text`` as valid UTF-8 (lone surrogates and the like become U+FFFD)."""
    if text.isascii():
        return text
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "replace").decode("utf-8")
    return text


def reply(fields: dict[str, Any]) -> Reply:
    """A Reply from the runner's reply dict (see ``runner.run_task``), text cleaned."""
    written = fields.get("output_file")
    return Reply(
        key=(str(fields["key"][0]), int(fields["key"][1])),
        status=fields["status"],
        start_time=float(fields["start_time"]),
        end_time=float(fields["end_time"]),
        output=fields.get("output"),
        output_repr=clean(fields.get("output_repr", "")),
        output_file=OutputFile(**written) if written else None,
        error=clean(fields.get("error", "")),
        stdout=clean(fields.get("stdout", "")),
        stderr=clean(fields.get("stderr", "")),
    )


def encode(message: Reply | list[Event] | Any) -> bytes:
    """MessagePack bytes of a record, a list of records, or plain data."""
    return _encoder.encode(message)


def decode_reply(data: bytes | memoryview) -> Reply:
    """The Reply in ``data``; MessageError if it is not one."""
    try:
        return _reply_decoder.decode(data)
    except (msgspec.DecodeError, msgspec.ValidationError) as e:
        raise MessageError(f"not a task reply: {e}") from None


def decode_events(data: bytes | memoryview) -> list[Event]:
    """The events in one message of a pool worker; MessageError if malformed."""
    try:
        return _events_decoder.decode(data)
    except (msgspec.DecodeError, msgspec.ValidationError) as e:
        raise MessageError(f"not a worker message: {e}") from None


def decode_plain(data: bytes | memoryview) -> Any:
    """Plain data (dicts, lists, strings, bytes, numbers) from MessagePack bytes."""
    return msgspec.msgpack.decode(data)


# The long-lived runner's stream (covalent.executor.host_runner): MessagePack objects one
# after another on the runner's stdin (Run, Signal) and stdout (Hello, Began, Wrote,
# Ended), split by msgpack's streaming Unpacker and checked here as typed records.

RUNNER_PROTOCOL = 1
"""The version of the runner's stream; the runner says it in its Hello, and an executor
refuses a runner that speaks another."""


class Hello(msgspec.Struct, tag="hello"):
    """The runner is ready: what it speaks (``protocol``, the newest task ``payload``
    version it reads) and its pid."""

    protocol: int
    payload: int
    pid: int


class Run(msgspec.Struct, tag="run"):
    """Run a packed request (``runner.run_packed``'s): in ``request``, or in the file
    ``request_file`` on the host (which the runner removes once read)."""

    id: int
    request: bytes | None = None
    request_file: str = ""


class Signal(msgspec.Struct, tag="signal"):
    """Signal a running task: ``"USR1"`` to its process (its stacks to stderr),
    ``"KILL"`` to its process group."""

    id: int
    signal: str


class Began(msgspec.Struct, tag="began"):
    """Task ``id`` runs in process ``pid`` (the leader of its own group) since ``at``."""

    id: int
    pid: int
    at: float


class Wrote(msgspec.Struct, tag="wrote"):
    """Text task ``id`` wrote to ``stream`` (``"stdout"`` or ``"stderr"``)."""

    id: int
    stream: str
    text: str


class Ended(msgspec.Struct, tag="ended"):
    """Task ``id``'s process ended: its encoded :class:`Reply` if it wrote one, and how
    it exited (``exit_status``, or the number of the signal that killed it)."""

    id: int
    reply: bytes | None = None
    exit_status: int | None = None
    exit_signal: int | None = None


RunnerRequest = Run | Signal
RunnerEvent = Hello | Began | Wrote | Ended


def runner_request(data: Any) -> RunnerRequest:
    """A request to the runner from one unpacked object; MessageError if malformed."""
    try:
        return msgspec.convert(data, RunnerRequest)
    except msgspec.ValidationError as e:
        raise MessageError(f"not a runner request: {e}") from None


def runner_event(data: Any) -> RunnerEvent:
    """An event of the runner from one unpacked object; MessageError if malformed."""
    try:
        return msgspec.convert(data, RunnerEvent)
    except msgspec.ValidationError as e:
        raise MessageError(f"not a runner event: {e}") from None


RUNNING_SIZE = 4096
"""Bytes of the file in which a local pool's worker names the task it started last
(``_worker.Running`` writes it, ``_pool._WorkerThread`` reads it when the worker dies)."""


def running_record(key: tuple[str, int]) -> bytes:
    """A task key as that file holds it after its 4-byte length: ``dispatch_id\\0node``."""
    return f"{key[0]}\0{key[1]}".encode()[: RUNNING_SIZE - 4]


def running_key(data: bytes) -> tuple[str, int] | None:
    """The key in a running-task file's bytes (its 4-byte length, then the record), or
    None if it names none."""
    size = int.from_bytes(data[:4], "little")
    dispatch_id, _, node = data[4 : 4 + size].decode("utf-8", "replace").rpartition("\0")
    try:
        return (dispatch_id, int(node)) if size else None
    except ValueError:
        return None
