"""The pure parts of live output: a stream's length from what the store kept, printing
each character once from snapshots and offset events, the server log's filter by
dispatch, bunching an executor's output, and the log lines' first error line."""

from __future__ import annotations

import asyncio
import io

from covalent._cli.logs import LineFilter, Printer
from covalent._dispatcher.journal import first_line as _first_line
from covalent._dispatcher.streams import STREAM_LIMIT, NodeStream, stored_length
from covalent._results.status import Status
from covalent.executor.live import LiveOutput
from covalent.executor.task import Outcome, Task


def test_stored_length_of_a_whole_and_of_a_capped_stream() -> None:
    stream = NodeStream("/tmp/node_0.stdout.log")
    stream.add("abc\n")
    assert stored_length(stream.render()) == 4 == stream.length
    for _ in range(10):
        stream.add("x" * (STREAM_LIMIT // 4))
    rendered = stream.render()
    assert len(rendered) < stream.length
    assert stored_length(rendered) == stream.length


def printer() -> tuple[Printer, io.StringIO, io.StringIO]:
    out, err = io.StringIO(), io.StringIO()
    return Printer(bare=True, out=out, err=err), out, err


def test_events_and_snapshots_print_each_character_once() -> None:
    shown, out, err = printer()
    shown.snapshot([{"node_id": 0, "name": "n", "stdout": "one\ntw", "stderr": ""}])
    shown.chunk(0, "stdout", 0, "one\n")  # held by the snapshot already
    shown.chunk(0, "stdout", 4, "two\nthree\n")  # partly held
    shown.chunk(0, "stderr", 0, "warn\n")
    later = {"node_id": 0, "name": "n", "stdout": "one\ntwo\nthree\nfour\n", "stderr": "warn\n"}
    shown.snapshot([later])
    assert out.getvalue() == "one\ntwo\nthree\nfour\n"
    assert err.getvalue() == "warn\n"
    shown.snapshot([{**later, "stdout": "again\n"}])  # the node runs again
    assert out.getvalue().endswith("four\n\n[covalent: stdout of a new run of this node]\nagain\n")


def test_a_lagged_snapshot_of_a_capped_stream_prints_only_the_new_tail() -> None:
    shown, out, _ = printer()
    stream = NodeStream("/tmp/log")
    first = "a" * (STREAM_LIMIT + 10)
    stream.add(first)
    shown.chunk(0, "stdout", 0, first)
    stream.add("new end\n")
    shown.snapshot([{"node_id": 0, "name": "n", "stdout": stream.render(), "stderr": ""}])
    assert out.getvalue() == first + "new end\n"


def test_several_nodes_print_under_headers() -> None:
    out = io.StringIO()
    shown = Printer(bare=False, out=out)
    shown.names.update({0: "a", 1: "b"})
    shown.chunk(0, "stdout", 0, "x")
    shown.chunk(1, "stdout", 0, "y\n")
    shown.chunk(0, "stdout", 1, "z\n")
    shown.finish()
    assert out.getvalue() == (
        "==> a(0) stdout <==\nx\n==> b(1) stdout <==\ny\n==> a(0) stdout <==\nz\n"
    )


def test_the_server_log_filter_keeps_one_dispatchs_lines_and_their_tracebacks() -> None:
    lines = [
        "2026-11-27T12:00:00.000Z INFO covalent.dispatcher dispatch=abc-1 node=- event=x one\n",
        "2026-11-27T12:00:00.001Z ERROR covalent.dispatcher dispatch=abc-1 node=- event=y two\n",
        "Traceback (most recent call last):\n",
        "ValueError: boom\n",
        "2026-11-27T12:00:00.002Z INFO covalent.dispatcher dispatch=def-2 node=- event=x other\n",
        "  continued\n",
        "2026-11-27 12:00:00,003 - distributed.worker - WARNING - not ours\n",
    ]
    keep = LineFilter("abc")
    assert [line for line in lines if keep(line)] == lines[:4]
    everything = LineFilter(None)
    assert all(everything(line) for line in lines)


def test_an_errors_first_line_is_the_exception_of_a_traceback() -> None:
    traceback = (
        'Traceback (most recent call last):\n  File "x.py", line 1\n    f()\nValueError: bad\n  x\n'
    )
    assert _first_line(traceback) == "ValueError: bad"
    assert _first_line("Electron f(1) timed out: it ran longer\nIts last line: x") == (
        "Electron f(1) timed out: it ran longer"
    )
    assert _first_line("") == "(no error text)"


def test_a_recursions_first_line_is_its_error_and_a_long_one_is_cut() -> None:
    import traceback

    def deep(n: int) -> int:
        return deep(n + 1)

    try:
        deep(0)
    except RecursionError:
        text = traceback.format_exc()
    assert "[Previous line repeated" in text
    assert _first_line(text) == "RecursionError: maximum recursion depth exceeded"
    assert _first_line("ValueError: " + "a" * 100_000) == ("ValueError: " + "a" * 100_000)[:1000]
    huge = 'Traceback (most recent call last):\n  File "x.py", line 1\n    f()\n'
    huge += "ValueError: " + "b" * 10_000_000 + "\n"
    assert _first_line(huge) == ("ValueError: " + "b" * 1000)[:1000]


def _task(on_output: object) -> Task:
    return Task("d", 0, "f", "fn", [], {}, lambda _: b"", on_output=on_output)  # type: ignore[arg-type]


def test_live_output_bunches_and_flushes_before_the_outcome() -> None:
    got: list[tuple[str, str]] = []

    async def main() -> Outcome:
        live = LiveOutput(_task(lambda stream, text: got.append((stream, text))), interval=0.05)
        live.add("stdout", "a")
        live.add("stdout", "b")
        live.add("stderr", "c")
        await asyncio.sleep(0.2)
        live.add("stdout", "d")
        return live.into(Outcome(Status.COMPLETED))

    outcome = asyncio.run(main())
    assert got == [("stdout", "ab"), ("stderr", "c"), ("stdout", "d")]
    assert outcome.stdout == "" and outcome.stderr == ""  # nothing twice


def test_live_output_without_a_follower_goes_into_the_outcome() -> None:
    async def main() -> Outcome:
        live = LiveOutput(_task(None))
        live.add("stdout", "a")
        live.add("stderr", "b")
        return live.into(Outcome(Status.COMPLETED, stdout="rest"))

    outcome = asyncio.run(main())
    assert (outcome.stdout, outcome.stderr) == ("arest", "b")


def test_a_resumed_stream_goes_on_after_what_the_store_kept() -> None:
    note = "[again]\n"
    short = NodeStream.resumed("/tmp/log", "first\n", note)
    short.add("second\n")
    assert short.render() == "first\n[again]\nsecond\n"
    assert short.length == stored_length(short.render())
    whole = NodeStream("/tmp/log")
    whole.add("y" * (STREAM_LIMIT + 100))
    capped = NodeStream.resumed("/tmp/log", whole.render(), note)
    assert capped.length == STREAM_LIMIT + 100 + len(note)
    capped.add("end\n")
    assert capped.render().endswith("y[again]\nend\n")
    assert stored_length(capped.render()) == capped.length
