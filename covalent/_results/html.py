"""A Result as HTML, for notebooks (``Result._repr_html_``).

A status badge, the result, the times, a table of the nodes (status, duration, the
short repr of each output that the server stored) and the error with its traceback.
Every value is escaped; the markup is well-formed XML, so it survives any renderer.
Only the lattice's result is fetched from the server; node outputs use their stored
short reprs, so showing a large dispatch downloads nothing else.
"""

from __future__ import annotations

import html
from collections.abc import Callable
from datetime import datetime
from typing import Any

from covalent._errors import CovalentError

COLORS = {
    "COMPLETED": "#1a7f37",
    "FAILED": "#cf222e",
    "POSTPROCESSING_FAILED": "#cf222e",
    "CANCELLED": "#9a6700",
    "RUNNING": "#0969da",
    "NOT_RUN": "#6e7781",
}
DEFAULT_COLOR = "#6e7781"
REPR_LIMIT = 500
ERROR_LIMIT = 20_000

_CELL = 'style="text-align: left; padding: 2px 8px; vertical-align: top"'


def escape(value: Any) -> str:
    return html.escape(str(value), quote=True)


def shorten(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"


def badge(status: Any) -> str:
    name = str(status)
    color = COLORS.get(name, DEFAULT_COLOR)
    return (
        f'<span class="covalent-status covalent-status-{escape(name.lower())}" '
        f'style="background: {color}; color: white; border-radius: 4px; padding: 1px 6px; '
        f'font-size: 0.85em">{escape(name)}</span>'
    )


def format_time(value: datetime | None) -> str:
    return "" if value is None else value.strftime("%Y-%m-%d %H:%M:%S.%f UTC")


def duration(start: float | None, end: float | None) -> str:
    """``1.234 s`` between two UNIX times; empty when either is missing."""
    if start is None or end is None:
        return ""
    seconds = max(0.0, end - start)
    return f"{seconds:.3f} s" if seconds < 60 else f"{seconds / 60:.1f} min"


def _row(header: str, cell: str) -> str:
    return f"<tr><th {_CELL}>{escape(header)}</th><td {_CELL}>{cell}</td></tr>"


def _node_row(node: dict[str, Any]) -> str:
    label = f"{node['name']}({node['node_id']})"
    output = shorten(node.get("output_repr") or "", REPR_LIMIT)
    cells = [
        escape(label),
        badge(node["status"]),
        escape(duration(node.get("start_time"), node.get("end_time"))),
        f"<code>{escape(output)}</code>",
    ]
    tds = "".join(f"<td {_CELL}>{cell}</td>" for cell in cells)
    return f'<tr class="covalent-node" data-node-id="{int(node["node_id"])}">{tds}</tr>'


def node_table(nodes: list[dict[str, Any]]) -> str:
    heads = "".join(f"<th {_CELL}>{h}</th>" for h in ("node", "status", "duration", "output"))
    rows = "".join(_node_row(node) for node in nodes)
    return (
        '<table class="covalent-nodes" style="border-collapse: collapse">'
        f"<thead><tr>{heads}</tr></thead><tbody>{rows}</tbody></table>"
    )


def result_cell(get_result: Callable[[], Any]) -> str:
    """The lattice's result, fetched now; a failure to fetch it is shown, not raised."""
    try:
        value = repr(get_result())
    except CovalentError as e:
        return f"<em>cannot fetch it: {escape(e)}</em>"
    return f'<pre style="margin: 0">{escape(shorten(value, REPR_LIMIT))}</pre>'


def error_block(error: str | None) -> str:
    if not error:
        return ""
    text = escape(shorten(error, ERROR_LIMIT))
    return (
        '<details class="covalent-error-details" open="open"><summary>error</summary>'
        f'<pre class="covalent-error" style="white-space: pre-wrap">{text}</pre></details>'
    )


def result_html(result: Any, nodes: list[dict[str, Any]], lattice_name: str = "") -> str:
    """The whole block for a :class:`~covalent._results.result.Result` and its node rows."""
    start, end = result.start_time, result.end_time
    took = duration(start.timestamp(), end.timestamp()) if start and end else ""
    summary = "".join(
        [
            _row("dispatch_id", f"<code>{escape(result.dispatch_id)}</code>"),
            _row("result", result_cell(lambda: result.result)),
            _row("start_time", escape(format_time(start))),
            _row("end_time", escape(format_time(end))),
            _row("duration", escape(took)),
            _row("results_dir", f"<code>{escape(result.results_dir)}</code>"),
        ]
    )
    return (
        '<div class="covalent-result">'
        f"<div><strong>Lattice Result</strong> {escape(lattice_name)} {badge(result.status)}</div>"
        f'<table class="covalent-summary">{summary}</table>'
        f"{node_table(nodes)}{error_block(result.error)}</div>"
    )
