"""Rich objects in notebooks: ``Result._repr_html_`` and a lattice's graph as SVG.

The markup is parsed (``xml.etree`` for well-formedness, ``html.parser`` as a browser
would), never string-matched loosely.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from html.parser import HTMLParser

import covalent as ct
from covalent._errors import ServerUnavailableError
from covalent._results.result import Result
from covalent._workflow import svg
from tests.test_result import SEED_BLOCK, CountingFetch, seed_detail, seed_result

SVG = "{http://www.w3.org/2000/svg}"


class Collect(HTMLParser):
    """Every element as (tag, attributes, text inside it), in document order."""

    def __init__(self) -> None:
        super().__init__()
        self.elements: list[list] = []
        self.open: list[list] = []

    def handle_starttag(self, tag, attrs):
        element = [tag, dict(attrs), ""]
        self.elements.append(element)
        self.open.append(element)

    def handle_endtag(self, tag):
        while self.open:
            if self.open.pop()[0] == tag:
                break

    def handle_data(self, data):
        for element in self.open:
            element[2] += data


def parse(markup: str) -> Collect:
    parser = Collect()
    parser.feed(markup)
    parser.close()
    return parser


def classed(doc: Collect, name: str) -> list[list]:
    return [e for e in doc.elements if name in e[1].get("class", "").split()]


# Result


def test_result_html_is_well_formed_with_a_badge_and_one_row_per_node():
    result, _ = seed_result()
    markup = result._repr_html_()
    root = ET.fromstring(markup)  # well-formed XML, or this raises
    assert root.get("class") == "covalent-result"
    doc = parse(markup)
    badges = classed(doc, "covalent-status")
    assert badges[0][2] == "COMPLETED"
    assert "covalent-status-completed" in badges[0][1]["class"]
    rows = classed(doc, "covalent-node")
    assert [r[1]["data-node-id"] for r in rows] == ["0", "1", "2"]
    assert rows[0][2].startswith("identity(0)COMPLETED")
    assert rows[2][2].startswith("square(2)COMPLETED")
    assert not classed(doc, "covalent-error")


def test_result_html_shows_the_result_times_and_durations():
    result, fetch = seed_result()
    doc = parse(result._repr_html_())
    summary = {e[2] for e in doc.elements if e[0] == "th"}
    assert {"dispatch_id", "result", "start_time", "end_time", "duration"} <= summary
    cells = [e[2] for e in doc.elements if e[0] == "td"]
    assert "4" in cells  # the result, fetched
    assert "2023-01-31 21:20:27.871124 UTC" in cells
    assert "0.183 s" in cells  # the dispatch's duration (27.871124 -> 28.054424)
    assert fetch.calls == [[result._detail["result_digest"]]]  # only the result is fetched


def test_result_html_escapes_the_error_and_its_traceback():
    error = (
        "Node square(2) failed:\nTraceback (most recent call last):\n"
        '  File "<stdin>", line 1\nValueError: bad <script>alert("x")</script> & more'
    )
    result, _ = seed_result(status="FAILED", outputs=(2, None), error=error, result_digest=None)
    markup = result._repr_html_()
    ET.fromstring(markup)
    doc = parse(markup)
    assert not [e for e in doc.elements if e[0] == "script"]
    blocks = classed(doc, "covalent-error")
    assert len(blocks) == 1 and blocks[0][0] == "pre"
    assert blocks[0][2] == error  # every character survives, as text
    assert classed(doc, "covalent-status")[0][2] == "FAILED"


def test_result_html_escapes_names_and_outputs():
    detail, items = seed_detail()
    detail["nodes"][0]["name"] = "<b>bold</b>"
    detail["nodes"][0]["output_repr"] = "<img src=x onerror=alert(1)>"
    markup = Result(detail, CountingFetch(items))._repr_html_()
    doc = parse(markup)
    assert not [e for e in doc.elements if e[0] in ("b", "img")]
    row = classed(doc, "covalent-node")[0]
    assert row[2].startswith("<b>bold</b>(0)")
    assert "<img src=x onerror=alert(1)>" in row[2]


def test_result_html_says_when_the_result_cannot_be_fetched():
    detail, _ = seed_detail()

    def unavailable(digests):
        raise ServerUnavailableError("No covalent server answers at http://x; start one.")

    doc = parse(Result(detail, unavailable)._repr_html_())
    assert any("cannot fetch it: No covalent server answers" in e[2] for e in doc.elements)


def test_print_of_a_result_stays_the_seed_block():
    result, _ = seed_result()
    result._repr_html_()
    assert str(result) == SEED_BLOCK


# lattice


@ct.electron
def inc(x):
    return x + 1


@ct.electron
def total(values):
    return sum(values)


@ct.lattice
def fan(n):
    return total([inc(i) for i in range(n)])


@ct.lattice
def no_arguments():
    return total([inc(1), inc(2)])


def svg_of(markup: str) -> ET.Element:
    root = ET.fromstring(markup)
    drawing = root.find(f"{SVG}svg")
    assert drawing is not None
    return drawing


def node_groups(drawing: ET.Element) -> list[ET.Element]:
    return [g for g in drawing.iter(f"{SVG}g") if "node" in g.get("class", "").split()]


def test_lattice_svg_has_one_group_per_node_and_one_path_per_edge():
    graph = fan.build_graph(3)
    drawing = svg_of(fan._repr_html_())
    groups = node_groups(drawing)
    assert len(groups) == len(graph.nodes) == 8
    titles = {g.find(f"{SVG}title").text for g in groups}
    assert titles == set(graph.node_names())
    edges = [p for p in drawing.iter(f"{SVG}path") if p.get("class") == "edge"]
    assert len(edges) == len(graph.edges)


def test_lattice_svg_layers_point_down():
    graph = fan.build_graph(4)
    drawing = svg_of(fan._repr_html_())
    y = {
        int(g.get("data-node-id")): float(g.find(f"{SVG}rect").get("y"))
        for g in node_groups(drawing)
    }
    assert all(y[e.source] < y[e.target] for e in graph.edges)


def test_lattice_without_a_graph_builds_one_with_no_arguments():
    no_arguments.transport_graph = None
    drawing = svg_of(no_arguments._repr_html_())
    assert len(node_groups(drawing)) == len(no_arguments.transport_graph.nodes)


def test_lattice_that_needs_arguments_shows_a_note():
    @ct.lattice
    def needs(a, b):
        return inc(a)

    markup = needs._repr_html_()
    root = ET.fromstring(markup)
    assert root.find(f"{SVG}svg") is None
    assert "needs.build_graph(...)" in "".join(root.itertext())


def test_lattice_names_are_escaped():
    @ct.electron
    def odd(x):
        return x

    odd.function.__name__ = "a<b>&c"

    @ct.lattice
    def flow():
        return odd(1)

    flow.build_graph()
    groups = node_groups(svg_of(flow._repr_html_()))
    assert groups[0].find(f"{SVG}title").text == "a<b>&c(0)"


def test_layers_of_a_diamond():
    # 0 -> 1, 0 -> 2, 1 -> 3, 2 -> 3, and a long way round 0 -> 3
    edges = [(0, 1), (0, 2), (1, 3), (2, 3), (0, 3)]
    assert svg.layers(4, edges) == [0, 1, 1, 2]
    assert svg.rows(4, edges) == [[0], [1, 2], [3]]
