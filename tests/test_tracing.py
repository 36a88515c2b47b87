"""Tracing a lattice's body into a Graph: nodes, edges, operations, errors.

Every graph is also *evaluated* by a tiny pure-Python interpreter (:func:`evaluate`):
parameter nodes give their value, every other node calls its ``function`` with the
outputs of its input edges. The evaluated graph must equal the plain function call.
"""

import re
from collections import deque
from types import SimpleNamespace
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import covalent as ct
from covalent._errors import WorkflowError
from covalent._workflow.graph import Edge, Graph, NodeKind
from covalent._workflow.tracing import PARAMETER_NAME_LIMIT
from tests.conftest import REPO

# helpers


def topological(graph: Graph) -> list[int]:
    """Node ids with every node after its inputs (node ids need not be in that order)."""
    waiting = {n.id: 0 for n in graph.nodes}
    children: dict[int, list[int]] = {n.id: [] for n in graph.nodes}
    for edge in graph.edges:
        waiting[edge.target] += 1
        children[edge.source].append(edge.target)
    queue = deque(n for n, count in waiting.items() if count == 0)
    order = []
    while queue:
        node = queue.popleft()
        order.append(node)
        for child in children[node]:
            waiting[child] -= 1
            if waiting[child] == 0:
                queue.append(child)
    assert len(order) == len(graph.nodes), "the graph has a cycle"
    return order


def call_node(graph: Graph, node_id: int, values: dict[int, Any]) -> Any:
    edges = graph.parents(node_id)
    positional = sorted((e for e in edges if e.name is None), key=lambda e: e.index)
    assert [e.index for e in positional] == list(range(len(positional)))
    keywords = {e.name: values[e.source] for e in edges if e.name is not None}
    function = graph.nodes[node_id].function
    assert function is not None, f"node {node_id} has no function"
    return function(*(values[e.source] for e in positional), **keywords)


def evaluate(graph: Graph) -> Any:
    """Run the graph in-process, the way the dispatcher would, and return its result."""
    values: dict[int, Any] = {}
    for node_id in topological(graph):
        node = graph.nodes[node_id]
        if node.kind == NodeKind.PARAMETER:
            values[node_id] = node.value
        else:
            values[node_id] = call_node(graph, node_id, values)
    if graph.result_node is not None:
        return values[graph.result_node]
    return graph.result_value


def build(function: Any, *args: Any, **kwargs: Any) -> Graph:
    return ct.lattice(function).build_graph(*args, **kwargs)


def kinds(graph: Graph) -> list[str]:
    return [n.kind for n in graph.nodes]


# electrons used by the lattices below

executor1 = ct.executor.LocalExecutor()


@ct.electron(executor=executor1)
def identity(x):
    return x


@ct.electron(executor="local")
def square(x):
    return x * x


@ct.electron
def add(x, y):
    return x + y


@ct.electron
def total(values):
    return sum(values)


@ct.electron
def gather(*args, **kwargs):
    return (args, kwargs)


@ct.electron
def pair_untyped(x):
    return (x, x + 1)


@ct.electron
def pair_typed(x) -> tuple[int, int]:
    return (x, x + 1)


@ct.electron
def make_record(x):
    return SimpleNamespace(value=x, doubled=2 * x)


@ct.electron
def make_mapping(x):
    return {"k": x, "items": [x, x + 1]}


@ct.lattice
def workflow(a):
    val_1 = identity(x=a)
    return square(x=val_1)


class Scale:
    """Multiplies by ``k`` under ``@``, from either side (as a matrix would)."""

    def __init__(self, k: int) -> None:
        self.k = k

    def __matmul__(self, other: Any) -> Any:
        return self.k * other if isinstance(other, int) else NotImplemented

    def __rmatmul__(self, other: Any) -> Any:
        return self.__matmul__(other)


# the seed


def test_seed_node_names_and_ids():
    graph = workflow.build_graph(a=2)
    assert graph.node_names() == ["identity(0)", ":parameter:2(1)", "square(2)"]
    assert [n.id for n in graph.nodes] == [0, 1, 2]
    assert kinds(graph) == [NodeKind.ELECTRON, NodeKind.PARAMETER, NodeKind.ELECTRON]


def test_seed_edges_are_keyword_edges():
    graph = workflow.build_graph(a=2)
    assert graph.edges == [Edge(1, 0, None, "x"), Edge(0, 2, None, "x")]
    assert [e.label for e in graph.edges] == ["x", "x"]


def test_seed_result_and_executors():
    graph = workflow.build_graph(a=2)
    assert graph.result_node == 2
    assert graph.nodes[1].value == 2
    assert graph.nodes[0].executor is executor1
    assert graph.nodes[2].executor == "local"
    assert evaluate(graph) == 4 == workflow(a=2)


def test_build_graph_keeps_the_graph_on_the_lattice():
    graph = workflow.build_graph(3)
    assert workflow.transport_graph is graph
    assert graph.lattice_name == "workflow"
    assert evaluate(graph) == 9


# arguments


def test_positional_arguments_become_indexed_edges():
    graph = build(lambda: add(1, 2))
    assert graph.node_names() == ["add(0)", ":parameter:1(1)", ":parameter:2(2)"]
    assert graph.edges == [Edge(1, 0, 0, None), Edge(2, 0, 1, None)]
    assert graph.edges[0].label == "arg[0]"
    assert evaluate(graph) == 3


def test_positional_and_keyword_arguments_mixed():
    def body(a, b):
        return gather(a, identity(b), key=square(a))

    graph = build(body, 3, b=4)
    assert graph.node_names() == [
        "identity(0)",
        ":parameter:4(1)",
        "square(2)",
        ":parameter:3(3)",
        "gather(4)",
        ":parameter:3(5)",
    ]
    names = {(e.index, e.name): graph.nodes[e.source].name for e in graph.parents(4)}
    assert names == {(0, None): ":parameter:3", (1, None): "identity", (None, "key"): "square"}
    assert evaluate(graph) == body(3, b=4) == ((3, 4), {"key": 9})


def test_same_output_passed_twice_gives_two_edges_from_one_node():
    def body():
        x = identity(5)
        return add(x, x)

    graph = build(body)
    assert graph.parents(2) == [Edge(0, 2, 0, None), Edge(0, 2, 1, None)]
    assert evaluate(graph) == 10


def test_long_parameter_names_are_shortened():
    long_text = "x" * (PARAMETER_NAME_LIMIT * 2)
    graph = build(lambda: identity(long_text))
    name = graph.nodes[1].name
    assert name.startswith(":parameter:xxx") and name.endswith("...")
    assert len(name) == len(":parameter:") + PARAMETER_NAME_LIMIT
    assert graph.nodes[1].value == long_text


def test_values_without_outputs_stay_parameters():
    graph = build(lambda: total([1, 2, 3]))
    assert graph.node_names() == ["total(0)", ":parameter:[1, 2, 3](1)"]
    assert graph.nodes[1].value == [1, 2, 3]
    assert evaluate(graph) == 6


# collections


def test_list_of_outputs_becomes_electron_list():
    def body():
        return total([square(1), square(2), 3])

    graph = build(body)
    assert graph.node_names() == [
        "square(0)",
        ":parameter:1(1)",
        "square(2)",
        ":parameter:2(3)",
        "total(4)",
        ":electron_list:(5)",
        ":parameter:3(6)",
    ]
    assert graph.parents(5) == [Edge(0, 5, 0, None), Edge(2, 5, 1, None), Edge(6, 5, 2, None)]
    assert graph.parents(4) == [Edge(5, 4, 0, None)]
    assert graph.nodes[5].kind == NodeKind.COLLECTION
    assert evaluate(graph) == 8


def test_tuple_of_outputs_becomes_electron_tuple():
    graph = build(lambda: identity((square(2), 7)))
    assert graph.node_names()[2:] == ["identity(2)", ":electron_tuple:(3)", ":parameter:7(4)"]
    result = evaluate(graph)
    assert result == (4, 7) and isinstance(result, tuple)


def test_dict_of_outputs_becomes_electron_dict():
    graph = build(lambda: identity({"b": square(3), "a": 1}))
    assert graph.node_names()[2:] == ["identity(2)", ":electron_dict:(3)", ":parameter:1(4)"]
    assert graph.parents(3) == [Edge(0, 3, 0, None), Edge(4, 3, 1, None)]
    result = evaluate(graph)
    assert result == {"b": 9, "a": 1} and list(result) == ["b", "a"]


def test_nested_lists_become_nested_collections():
    def body():
        return identity([[square(1), 5], square(2)])

    graph = build(body)
    collections = [n.id for n in graph.nodes if n.kind == NodeKind.COLLECTION]
    assert len(collections) == 2
    outer, inner = collections
    assert Edge(inner, outer, 0, None) in graph.edges
    assert Edge(outer, graph.result_node, 0, None) in graph.edges
    assert evaluate(graph) == [[1, 5], 4]


def test_returning_a_collection_of_outputs_adds_a_result_node():
    graph = build(lambda: [square(2), {"k": square(3)}])
    assert graph.nodes[graph.result_node].name == ":electron_list:"
    assert evaluate(graph) == [4, {"k": 9}]


def test_returning_a_plain_value_sets_result_value():
    graph = build(lambda: {"answer": 42})
    assert graph.nodes == [] and graph.result_node is None
    assert graph.result_value == {"answer": 42}


def test_set_of_outputs_stays_a_set():
    def body():
        return identity({square(2), square(3)})

    assert evaluate(build(body)) == {4, 9}


def test_dict_keyed_by_an_output_is_refused_while_building():
    def body():
        return identity({square(2): "four"})

    with pytest.raises(WorkflowError, match="dict key"):
        build(body)


# operations


def test_getitem_node():
    graph = build(lambda: identity(make_mapping(3)["items"][1]))
    names = graph.node_names()
    assert names[:4] == ["make_mapping(0)", ":parameter:3(1)", ":getitem:(2)", ":getitem:(3)"]
    assert graph.parents(2) == [Edge(0, 2, 0, None)]
    assert graph.parents(3) == [Edge(2, 3, 0, None)]
    assert graph.nodes[2].kind == NodeKind.OPERATION
    assert evaluate(graph) == 4


def test_getattr_node():
    graph = build(lambda: add(make_record(5).value, make_record(1).doubled))
    assert [n.name for n in graph.nodes].count(":getattr:") == 2
    assert evaluate(graph) == 7


def test_unpacking_by_bytecode():
    def body():
        a, b = pair_untyped(10)
        return add(b, a)

    graph = build(body)
    assert graph.node_names()[:4] == [
        "pair_untyped(0)",
        ":parameter:10(1)",
        ":getitem:(2)",
        ":getitem:(3)",
    ]
    assert evaluate(graph) == 21


def test_unpacking_by_annotation_in_a_for_loop():
    def body():
        return [square(x) for x in pair_typed(3)]

    graph = build(body)
    assert [n.name for n in graph.nodes].count(":getitem:") == 2
    assert evaluate(graph) == [9, 16]


def test_unpacking_by_annotation_with_star_target():
    def body():
        first, *rest = pair_typed(3)
        return gather(first, rest)

    assert evaluate(build(body)) == ((3, [4]), {})


def test_tuple_of_annotated_output():
    def body():
        return identity(tuple(pair_typed(3)))

    assert evaluate(build(body)) == (3, 4)


OPERATIONS = [
    (lambda: square(3) + 1, ":add:", 10),
    (lambda: 1 + square(3), ":add:", 10),
    (lambda: square(3) - 1, ":sub:", 8),
    (lambda: 1 - square(3), ":sub:", -8),
    (lambda: square(3) * square(2), ":mul:", 36),
    (lambda: 2 * square(3), ":mul:", 18),
    (lambda: square(3) / 2, ":truediv:", 4.5),
    (lambda: 18 / square(3), ":truediv:", 2.0),
    (lambda: square(3) // 2, ":floordiv:", 4),
    (lambda: 20 // square(3), ":floordiv:", 2),
    (lambda: square(3) % 4, ":mod:", 1),
    (lambda: square(3) ** 2, ":pow:", 81),
    (lambda: 2 ** square(2), ":pow:", 16),
    (lambda: 20 % square(3), ":mod:", 2),
    (lambda: square(3) @ Scale(2), ":matmul:", 18),
    (lambda: identity(Scale(2)) @ square(3), ":matmul:", 18),
    (lambda: square(3) & 5, ":and:", 1),
    (lambda: 5 & square(3), ":and:", 1),
    (lambda: square(3) | 4, ":or:", 13),
    (lambda: 4 | square(3), ":or:", 13),
    (lambda: square(3) ^ 1, ":xor:", 8),
    (lambda: 1 ^ square(3), ":xor:", 8),
    (lambda: square(3) < 10, ":lt:", True),
    (lambda: square(3) <= 9, ":le:", True),
    (lambda: square(3) > 9, ":gt:", False),
    (lambda: square(3) >= 10, ":ge:", False),
    (lambda: 10 < square(3), ":gt:", False),  # noqa: SIM300  (the reflected form)
    (lambda: square(3) == 9, ":eq:", True),
    (lambda: square(3) != 9, ":ne:", False),
    (lambda: -square(3), ":neg:", -9),
    (lambda: +square(3), ":pos:", 9),
    (lambda: abs(-square(3)), ":abs:", 9),
    (lambda: ~square(3), ":invert:", -10),
]
"""One case per operator node, reflected forms too: body, node name, value."""


@pytest.mark.parametrize(("body", "name", "expected"), OPERATIONS)
def test_operator_nodes(body, name, expected):
    graph = build(body)
    assert graph.nodes[graph.result_node].name == name
    assert graph.nodes[graph.result_node].kind == NodeKind.OPERATION
    assert evaluate(graph) == expected


def test_every_operator_node_the_docs_name_is_tested():
    page = (REPO / "docs" / "api.md").read_text()
    listed = page[page.index("`:add:`") : page.index("for operators")]
    assert set(re.findall(r"`(:[a-z]+:)`", listed)) == {name for _, name, _ in OPERATIONS}


def test_reflected_operation_puts_the_value_first():
    graph = build(lambda: 1 - square(3))
    op = graph.result_node
    sources = {e.index: graph.nodes[e.source].name for e in graph.parents(op)}
    assert sources == {0: ":parameter:1", 1: "square"}


# plain calls outside a build


def test_electron_outside_a_build_is_the_plain_function():
    assert square(4) == 16
    assert identity([1]) == [1]
    assert pair_untyped(1) == (1, 2)


def test_the_decorators_build_electrons_and_lattices_that_work_without_them():
    assert isinstance(square, ct.Electron) and isinstance(workflow, ct.Lattice)
    plain_square = ct.Electron(square.function, executor="local")
    plain_workflow = ct.Lattice(lambda a: plain_square(identity(a)))
    assert plain_workflow.build_graph(2).node_names() == workflow.build_graph(2).node_names()
    assert evaluate(plain_workflow.build_graph(3)) == 9


def test_lattice_called_directly_is_the_plain_function():
    assert workflow(3) == 9

    @ct.lattice
    def unpacks(x):
        a, b = pair_untyped(x)
        return a + b if a else -1

    assert unpacks(0) == -1 and unpacks(2) == 5


@ct.lattice
def inner(x):
    return square(add(x, 1))


def test_a_lattice_called_inside_another_adds_its_electrons_to_that_graph():
    graph = build(lambda x: identity(inner(x)), 2)
    assert graph.node_names() == [
        "add(0)",
        ":parameter:2(1)",
        ":parameter:1(2)",
        "square(3)",
        "identity(4)",
    ]
    assert NodeKind.SUBLATTICE not in kinds(graph)  # not a node of its own
    assert evaluate(graph) == 9


# errors


def test_body_that_raises_is_a_workflow_error_chained_to_the_cause():
    @ct.lattice
    def broken(x):
        raise ValueError("bad input 123")

    with pytest.raises(WorkflowError) as info:
        broken.build_graph(1)
    message = str(info.value)
    assert "broken" in message and "ValueError" in message and "bad input 123" in message
    assert isinstance(info.value.__cause__, ValueError)
    assert str(info.value.__cause__) == "bad input 123"


def _bool_use():
    if square(2):
        return 1
    return 0


def _range_use():
    return [identity(i) for i in range(square(2))]


def _len_use():
    return len(square(2))


def _for_use():
    return [identity(x) for x in pair_untyped(1)]


def _in_use():
    return 3 in square(2)


@pytest.mark.parametrize("body", [_bool_use, _range_use, _len_use, _for_use, _in_use])
def test_control_flow_on_an_output_needs_a_sublattice(body):
    with pytest.raises(WorkflowError) as info:
        build(body)
    assert "sublattice" in str(info.value)
    assert body.__name__ in str(info.value)


def test_wrong_arguments_name_the_lattice():
    with pytest.raises(WorkflowError, match="workflow") as info:
        workflow.build_graph(1, 2)
    assert "argument" in str(info.value)
    with pytest.raises(WorkflowError, match="workflow"):
        workflow.build_graph(b=1)


def test_output_from_another_build_is_refused():
    kept = []

    def first():
        kept.append(square(2))
        return kept[0]

    build(first)
    with pytest.raises(WorkflowError, match="another lattice"):
        build(lambda: identity(kept[0]))


def test_setting_an_attribute_on_an_output_is_refused():
    def body():
        out = make_record(1)
        out.value = 3
        return out

    with pytest.raises(WorkflowError, match="attribute 'value'"):
        build(body)


def test_a_failed_build_does_not_leave_a_builder_behind():
    with pytest.raises(WorkflowError):
        build(_bool_use)
    assert square(3) == 9


# executors


def test_lattice_executor_is_the_default_for_electrons_without_one():
    @ct.lattice(executor="dask")
    def body(a):
        return add(identity(a), square(a))[0]

    graph = body.build_graph(2)
    executors = {n.name: n.executor for n in graph.nodes}
    assert executors["add"] == "dask"
    assert executors["identity"] is executor1
    assert executors["square"] == "local"
    assert executors[":getitem:"] is None
    assert executors[":parameter:2"] is None


def test_lattice_without_executor_leaves_electrons_without_one():
    graph = build(lambda: add(1, 2))
    assert graph.nodes[0].executor is None


# properties


def fan_out(xs):
    return total([square(x) for x in xs])


def expected_fan_out_names(xs):
    names = []
    for x in xs:
        names += [f"square({len(names)})", f":parameter:{x}({len(names) + 1})"]
    if xs:
        return names + [f"total({len(names)})", f":electron_list:({len(names) + 1})"]
    return ["total(0)", ":parameter:[](1)"]


@settings(max_examples=60, deadline=None, derandomize=True, database=None)
@given(st.lists(st.integers(min_value=-1000, max_value=1000), max_size=20))
def test_fan_out_graph_evaluates_like_the_plain_call(xs):
    graph = build(fan_out, xs)
    assert [n.id for n in graph.nodes] == list(range(len(graph.nodes)))
    assert graph.node_names() == expected_fan_out_names(xs)
    assert evaluate(graph) == fan_out(xs) == sum(x * x for x in xs)


def arithmetic(a, b, c):
    s = square(a)
    total_ = s + b
    pair = pair_untyped(total_ * c)
    first, second = pair
    return [first - b, 2 ** (second % 5), {"q": s // c, "r": c - s}]


@settings(max_examples=60, deadline=None, derandomize=True, database=None)
@given(st.integers(-50, 50), st.integers(-50, 50), st.integers(1, 20))
def test_operations_evaluate_like_the_plain_call(a, b, c):
    graph = build(arithmetic, a, b, c)
    assert [n.id for n in graph.nodes] == list(range(len(graph.nodes)))
    assert evaluate(graph) == arithmetic(a, b, c)


nested_values = st.recursive(
    st.integers(-100, 100),
    lambda children: st.lists(children, max_size=4) | st.tuples(children, children),
    max_leaves=12,
)


def wrap_leaves(value):
    """The same structure with every int replaced by an electron's output."""
    if isinstance(value, list):
        return [wrap_leaves(v) for v in value]
    if isinstance(value, tuple):
        return tuple(wrap_leaves(v) for v in value)
    return identity(value)


@settings(max_examples=60, deadline=None, derandomize=True, database=None)
@given(nested_values)
def test_nested_collections_evaluate_to_the_same_structure(value):
    graph = build(lambda: identity(wrap_leaves(value)))
    result = evaluate(graph)
    assert result == value
    assert type(result) is type(value)


def test_dispatch_restores_the_callers_gc_thresholds() -> None:
    """Tracing runs with fewer young collections and no old ones; the caller's settings
    come back after, even when the lattice fails to build."""
    import gc

    from covalent._client import dispatch as dispatchmod

    seen = []

    @ct.lattice
    def broken(x):
        seen.append(gc.get_threshold())
        raise RuntimeError("no")

    old = gc.get_threshold()
    try:
        gc.set_threshold(700, 10, 10)
        with pytest.raises(WorkflowError, match="no"):
            dispatchmod.dispatch(broken)(1)
        assert gc.get_threshold() == (700, 10, 10)
        assert seen == [
            (dispatchmod.YOUNG, dispatchmod.OLD_GENERATIONS, dispatchmod.OLD_GENERATIONS)
        ]
    finally:
        gc.set_threshold(*old)


# methods on outputs (as Dask's delayed objects)


@ct.electron
def make_list(n):
    return list(range(n))


@ct.electron
def make_text(text):
    return text


def test_a_method_call_on_an_output_is_one_node_and_its_receiver_changes():
    def body(x):
        y = make_list(2)
        y.append(x)
        y.extend([x, x])
        return total(y)

    graph = build(body, 10)
    names = [n.name for n in graph.nodes]
    assert names.count(":method:append") == 1 and names.count(":method:extend") == 1
    assert ":getattr:" not in names  # the bound method is not a node of its own
    assert evaluate(graph) == 0 + 1 + 10 + 10 + 10


def test_method_return_values_are_outputs():
    def body(text):
        words = make_text(text).split(",")
        mapping = make_mapping(1)
        return gather(words, mapping.keys(), mapping.get("k"), make_text(text).upper())

    graph = build(body, "a,b")
    assert evaluate(graph) == ((["a", "b"], {"k": 1, "items": [1, 2]}.keys(), 1, "A,B"), {})


def test_a_method_taken_once_and_called_twice_and_an_unused_attribute():
    def body():
        y = make_list(1)
        append = y.append
        append(5)
        append(6)
        y.missing_attribute  # noqa: B018 (never used: no node, so nothing fails at run time)
        return identity(y)

    graph = build(body)
    assert [n.name for n in graph.nodes].count(":method:append") == 2
    assert ":getattr:" not in [n.name for n in graph.nodes]
    assert evaluate(graph) == [0, 5, 6]


def test_an_output_that_is_a_function_can_be_called():
    @ct.electron
    def make_adder(n):
        return lambda x: x + n

    graph = build(lambda: identity(make_adder(3)(4)))
    assert ":call:" in [n.name for n in graph.nodes]
    assert evaluate(graph) == 7


def test_unary_and_bitwise_operators():
    graph = build(lambda: gather(-square(3), abs(-square(2)), ~square(1), square(3) & 1))
    assert evaluate(graph) == ((-9, 4, -2, 1), {})


def _dict_conversion():
    return identity(dict(make_mapping(1)))


def _list_conversion():
    return identity(list(make_list(3)))


def _int_conversion():
    return identity(int(square(2)))


def _float_conversion():
    return identity(float(square(2)))


def _double_star():
    return gather(**make_mapping(1))


@pytest.mark.parametrize(
    ("body", "named"),
    [
        (_dict_conversion, "make_mapping(0).keys("),
        (_list_conversion, "make_list(0)"),
        (_int_conversion, "square(0)"),
        (_float_conversion, "square(0)"),
        (_double_star, "make_mapping(0).keys("),
    ],
)
def test_conversions_that_need_the_value_are_refused_like_control_flow(body, named):
    with pytest.raises(WorkflowError) as info:
        build(body)
    message = str(info.value)
    assert named in message and body.__name__ in message and "sublattice" in message


# ct.redispatch(replace_electrons=...)


@ct.electron
def _double(x):
    return 2 * x


@ct.electron
def _triple(x):
    return 3 * x


@ct.lattice
def _doubling(x, twice=False):
    once = _double(x)
    return _double(once) if twice else once


def test_replace_electrons_calls_the_new_electron_where_the_old_was_called():
    graph = _doubling.build_graph_replacing({"_double": _triple}, (2,), {"twice": True})
    assert evaluate(graph) == 18


@pytest.mark.parametrize("names", [["_dubble"], ["_double", "_dubble"]])
def test_replace_electrons_naming_an_electron_the_body_does_not_call_is_refused(names):
    # a typo once changed nothing: the old electrons ran and the dispatch completed
    with pytest.raises(WorkflowError, match="replace_electrons names '_dubble', which lattice"):
        _doubling.build_graph_replacing(dict.fromkeys(names, _triple), (2,), {})


def test_replace_electrons_that_is_not_a_dict_is_refused_before_anything_is_sent():
    with pytest.raises(WorkflowError, match="replace_electrons must be a dict"):
        ct.redispatch("any-id", replace_electrons="_double")  # type: ignore[arg-type]


@ct.lattice
def _nested(depth):
    value = [_double(1)]
    for _ in range(depth):
        value = [value]
    return value


def test_a_result_nested_too_deeply_to_trace_is_a_workflow_error():
    # it was a bare RecursionError from inside the tracer
    shallow = evaluate(_nested.build_graph(3))
    assert shallow == [[[[2]]]]
    with pytest.raises(WorkflowError, match="Lattice '_nested' returns a value nested too deeply"):
        _nested.build_graph(5000)
