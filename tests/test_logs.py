"""The server's structured log lines (covalent/_server/logs.py)."""

from __future__ import annotations

import io
import logging
import re
import sys

import pytest

from covalent._errors import ConfigError
from covalent._server import logs

LINE = re.compile(
    r"^(?P<time>\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z) (?P<level>[A-Z]+) (?P<logger>\S+) "
    r"dispatch=(?P<dispatch>\S+) node=(?P<node>\S+) event=(?P<event>\S+) (?P<message>.*)$"
)


def record(message: str, level: int = logging.INFO, **extra: object) -> logging.LogRecord:
    made = logging.LogRecord("covalent.dispatcher", level, __file__, 1, message, (), None)
    made.__dict__.update(extra)
    return made


def test_a_record_with_fields_is_one_structured_line():
    line = logs.StructuredFormatter().format(
        record("NEW_OBJECT -> RUNNING", dispatch_id="abc", node_id=0, event="node.running")
    )
    fields = LINE.match(line).groupdict()
    assert fields["level"] == "INFO"
    assert fields["logger"] == "covalent.dispatcher"
    assert (fields["dispatch"], fields["node"], fields["event"]) == ("abc", "0", "node.running")
    assert fields["message"] == "NEW_OBJECT -> RUNNING"


def test_missing_fields_are_dashes():
    fields = LINE.match(logs.StructuredFormatter().format(record("Uvicorn running"))).groupdict()
    assert (fields["dispatch"], fields["node"], fields["event"]) == ("-", "-", "-")


def test_a_traceback_follows_its_line():
    try:
        raise ValueError("boom")
    except ValueError:
        failing = record("step failed", logging.ERROR)
        failing.exc_info = sys.exc_info()
    text = logs.StructuredFormatter().format(failing)
    first, *rest = text.splitlines()
    assert LINE.match(first)
    assert rest[0].startswith("Traceback") and rest[-1] == "ValueError: boom"


def test_a_huge_record_is_cut_and_says_how_much_was_left_out():
    # a 5 MB lattice name or a 50 MB error went to the log whole, on the event loop
    text = logs.StructuredFormatter().format(record("lattice " + "n" * 1_000_000))
    assert len(text) < logs.LINE_LIMIT + 100
    assert LINE.match(text.splitlines()[0])
    kept = logs.LINE_LIMIT - text.index("lattice ")
    assert text.endswith(f"... ({len('lattice ') + 1_000_000 - kept:,} more characters)")


@pytest.mark.parametrize("name", ["debug", "INFO", "Warning", "error", "critical"])
def test_levels_by_name_in_any_case(name):
    assert logs.parse_level(name) == getattr(logging, name.upper())


def test_an_unknown_level_says_which_exist():
    with pytest.raises(ConfigError) as caught:
        logs.parse_level("verbose")
    message = str(caught.value)
    assert "\n" not in message
    assert "'verbose'" in message and "debug, info, warning, error, critical" in message


def test_setup_filters_by_level_but_keeps_the_servers_start_lines():
    root = logging.getLogger()
    saved = (
        root.handlers[:],
        root.level,
        {n: logging.getLogger(n).level for n in logs.LIFECYCLE_LOGGERS},
    )
    stream = io.StringIO()
    try:
        logs.setup("warning", stream)
        logging.getLogger("covalent.dispatcher").info("hidden", extra={"event": "x"})
        logging.getLogger("covalent.dispatcher").warning("shown", extra={"dispatch_id": "d"})
        logging.getLogger("uvicorn.error").info("Uvicorn running on http://localhost:1")
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])
        for name, level in saved[2].items():
            logging.getLogger(name).setLevel(level)
        logging.captureWarnings(False)
    lines = stream.getvalue().splitlines()
    assert [LINE.match(line)["message"] for line in lines] == [
        "shown",
        "Uvicorn running on http://localhost:1",
    ]
