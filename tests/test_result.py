"""``Result``: made from the server's description of a dispatch, with values fetched lazily."""

from datetime import datetime, timezone

import pytest

import covalent as ct
from covalent._results.result import PRINT_LIMIT, Result
from covalent._results.status import Status
from covalent._wire import blobs, manifest

DISPATCH_ID = "5f0e220f-35dc-4a75-92c6-a00176f530e2"
RESULTS_DIR = f"/home/user/.cache/covalent/results/{DISPATCH_ID}"
START = datetime(2023, 1, 31, 21, 20, 27, 871124, tzinfo=timezone.utc).timestamp()
END = datetime(2023, 1, 31, 21, 20, 28, 54424, tzinfo=timezone.utc).timestamp()

# The seed's printout (API.md), with these ids and times.
SEED_BLOCK = """
Lattice Result
==============
status: COMPLETED
result: 4
input args: []
input kwargs: {'a': 2}
error: None

start_time: 2023-01-31 21:20:27.871124
end_time: 2023-01-31 21:20:28.054424

results_dir: /home/user/.cache/covalent/results/5f0e220f-35dc-4a75-92c6-a00176f530e2
dispatch_id: 5f0e220f-35dc-4a75-92c6-a00176f530e2

Node Outputs
------------
identity(0): 2
:parameter:2(1): 2
square(2): 4"""

# helpers


class CountingFetch:
    """``fetch(digests) -> {digest: bytes}`` from memory, remembering every call."""

    def __init__(self, items):
        self.items = dict(items)
        self.calls = []

    def __call__(self, digests):
        self.calls.append(list(digests))
        return {d: self.items[d] for d in digests}


def put(items, value):
    data = blobs.dumps(value)
    items[blobs.digest(data)] = data
    return blobs.digest(data)


executor1 = ct.executor.LocalExecutor()


@ct.electron(executor=executor1)
def identity(x):
    return x


@ct.electron(executor="local")
def square(x):
    return x * x


@ct.lattice
def workflow(a):
    val_1 = identity(x=a)
    return square(x=val_1)


def node_row(node, status, output_digest, **extra):
    is_param = node["kind"] == "parameter"
    return {
        "node_id": node["id"],
        "name": node["name"],
        "kind": node["kind"],
        "status": status,
        "output_digest": output_digest,
        "error": None,
        "stdout": None,
        "stderr": None,
        "start_time": START,
        "end_time": END,
        "executor": None if is_param else node["executor"]["name"],
        **extra,
    }


def seed_detail(status="COMPLETED", outputs=(2, 4), **overrides):
    """The server's answer for the seed dispatched with a=2, and the blobs it refers to."""
    graph = workflow.build_graph(a=2)
    man, items = manifest.from_graph(graph, (), {"a": 2}, workflow)
    nodes = man["nodes"]
    out0 = put(items, outputs[0]) if outputs[0] is not None else None
    out2 = put(items, outputs[1]) if outputs[1] is not None else None
    detail = {
        "dispatch_id": DISPATCH_ID,
        "root_dispatch_id": DISPATCH_ID,
        "lattice_name": "workflow",
        "status": status,
        "error": None,
        "start_time": START,
        "end_time": END,
        "results_dir": RESULTS_DIR,
        "result_digest": out2,
        "summary": manifest.summary(man),
        "finished": True,
        "nodes": [
            node_row(nodes[0], "COMPLETED", out0, stdout="hello\n"),
            node_row(nodes[1], "COMPLETED", nodes[1]["value"]),
            node_row(nodes[2], status, out2),
        ],
    }
    detail.update(overrides)
    return detail, items


def seed_result(**kwargs):
    detail, items = seed_detail(**kwargs)
    fetch = CountingFetch(items)
    return Result(detail, fetch), fetch


# the printout


def test_str_is_exactly_the_seed_block():
    result, _ = seed_result()
    assert str(result) == SEED_BLOCK


def test_printing_like_the_seed_program(capsys):
    result, _ = seed_result()
    print(result.dispatch_id)
    print(result)
    assert capsys.readouterr().out == DISPATCH_ID + "\n" + SEED_BLOCK + "\n"


def test_str_cuts_long_values_and_says_how_long_they_were():
    big, text = b"\x00" * 50_000_000, "word " * 100_000
    result, _ = seed_result(outputs=(text, big))
    printed = str(result)
    assert len(printed) < 10 * PRINT_LIMIT  # it was over 200 MB
    assert f"result: {big[:PRINT_LIMIT]!s}... (50,000,000 bytes in all)\n" in printed
    assert f"identity(0): {text[:PRINT_LIMIT]}... (500,000 characters in all)\n" in printed
    many = list(range(100_000))
    result, _ = seed_result(outputs=(many, 4))
    assert f"identity(0): {str(many)[:PRINT_LIMIT]}... (" in str(result)


def _needs_what_is_missing():
    raise ModuleNotFoundError("No module named 'lab_only_package'")


class NeedsAModuleNotHere:
    """Unpickles as a value whose class lives in a package this Python lacks would."""

    def __reduce__(self):
        return (_needs_what_is_missing, ())


def test_a_value_that_cannot_be_unpickled_here_is_named_and_the_rest_stays_readable():
    result, _ = seed_result(outputs=(NeedsAModuleNotHere(), 4))
    with pytest.raises(ct.CovalentError) as raised:
        result.get_node_result(0)
    message = str(raised.value)
    assert "The output of node identity(0)" in message and DISPATCH_ID in message
    assert "ModuleNotFoundError: No module named 'lab_only_package'" in message
    assert isinstance(raised.value.__cause__, ModuleNotFoundError)
    assert result.result == 4  # fetched in the same request, and unharmed
    assert result.get_node_result(2)["output"] == 4
    with pytest.raises(ct.CovalentError, match=r"identity\(0\)"):
        result.get_all_node_outputs()
    printed = str(result)
    assert "identity(0): <cannot be unpickled here: ModuleNotFoundError: No module" in printed
    assert "square(2): 4" in printed and "result: 4" in printed


def test_str_of_an_unfinished_dispatch():
    result, _ = seed_result(status="RUNNING", outputs=(2, None), end_time=None, result_digest=None)
    text = str(result)
    assert "status: RUNNING\nresult: None\n" in text
    assert "\nend_time: None\n" in text
    assert text.endswith("square(2): None")


def test_str_of_a_failed_dispatch_shows_the_error():
    error = "Node square(2) failed:\nTraceback ...\nZeroDivisionError: division by zero"
    result, _ = seed_result(status="FAILED", outputs=(2, None), error=error, result_digest=None)
    assert "status: FAILED\nresult: None\n" in str(result)
    assert f"error: {error}\n" in str(result)


# lazy values


def test_nothing_is_fetched_until_a_value_is_asked_for():
    result, fetch = seed_result()
    assert result.dispatch_id == DISPATCH_ID
    assert result.root_dispatch_id == DISPATCH_ID
    assert result.status == Status.COMPLETED
    assert result.error is None
    assert result.results_dir == RESULTS_DIR
    assert result.start_time == datetime(2023, 1, 31, 21, 20, 27, 871124, tzinfo=timezone.utc)
    assert result.end_time.tzinfo is not None
    assert repr(result) == f"<Result {DISPATCH_ID} COMPLETED>"
    assert fetch.calls == []


def test_all_node_outputs_come_in_one_fetch():
    result, fetch = seed_result()
    outputs = result.get_all_node_outputs()
    assert outputs == {"identity(0)": 2, ":parameter:2(1)": 2, "square(2)": 4}
    assert list(outputs) == ["identity(0)", ":parameter:2(1)", "square(2)"]
    assert len(fetch.calls) == 1
    assert len(fetch.calls[0]) == len(set(fetch.calls[0]))
    assert set(fetch.calls[0]) == {row["output_digest"] for row in result._nodes}


def test_values_are_fetched_once():
    result, fetch = seed_result()
    result.get_all_node_outputs()
    assert result.result == 4
    result.get_all_node_outputs()
    result.get_node_result(0)
    assert len(fetch.calls) == 1


def test_result_alone_fetches_only_the_result():
    result, fetch = seed_result()
    assert result.result == 4
    assert fetch.calls == [[result._detail["result_digest"]]]


def test_result_of_an_unfinished_dispatch_is_none_without_fetching():
    result, fetch = seed_result(status="RUNNING")
    assert result.result is None
    assert fetch.calls == []


def test_inputs_fetch_args_and_kwargs_together():
    result, fetch = seed_result()
    assert result.inputs == {"args": [], "kwargs": {"a": 2}}
    assert len(fetch.calls) == 1  # one request for every input blob


def test_lattice_is_the_dispatched_lattice():
    result, fetch = seed_result()
    lattice = result.lattice
    assert lattice(a=3) == 9
    assert lattice.name == "workflow"
    assert len(fetch.calls) == 1


def test_root_dispatch_id_defaults_to_the_dispatch_id():
    detail, items = seed_detail(root_dispatch_id=None)
    assert Result(detail, CountingFetch(items)).root_dispatch_id == DISPATCH_ID
    detail, items = seed_detail(root_dispatch_id="parent-id")
    assert Result(detail, CountingFetch(items)).root_dispatch_id == "parent-id"


# nodes


NODE_KEYS = {
    "node_id",
    "node_name",
    "start_time",
    "end_time",
    "status",
    "output",
    "error",
    "stdout",
    "stderr",
    "sublattice_result",
}


def test_get_node_result():
    result, fetch = seed_result()
    node = result.get_node_result(0)
    assert set(node) >= NODE_KEYS
    assert node["node_id"] == 0 and node["node_name"] == "identity"
    assert node["status"] == ct.status.COMPLETED
    assert node["output"] == 2
    assert node["stdout"] == "hello\n" and node["stderr"] == "" and node["error"] is None
    assert node["start_time"] == result.start_time and node["end_time"] == result.end_time
    assert node["sublattice_result"] is None
    assert len(fetch.calls) == 1


def test_get_node_result_of_a_failed_node():
    error = "Traceback (most recent call last):\nValueError: bad"
    detail, items = seed_detail(status="FAILED", outputs=(2, None), result_digest=None)
    detail["nodes"][2].update(error=error, stderr="oops")
    node = Result(detail, CountingFetch(items)).get_node_result(2)
    assert node["status"] == Status.FAILED
    assert node["output"] is None
    assert node["error"] == error and node["stderr"] == "oops"


def test_get_node_result_of_an_unknown_node():
    result, _ = seed_result()
    with pytest.raises(KeyError, match="no node 7"):
        result.get_node_result(7)


def test_get_all_node_results():
    result, fetch = seed_result()
    nodes = result.get_all_node_results()
    assert [n["node_name"] for n in nodes] == ["identity", ":parameter:2", "square"]
    assert [n["output"] for n in nodes] == [2, 2, 4]
    assert all(set(n) >= NODE_KEYS for n in nodes)
    assert len(fetch.calls) == 1


# status


def test_status_compares_equal_to_every_spelling():
    result, _ = seed_result()
    assert result.status == ct.status.COMPLETED
    assert result.status == Result.COMPLETED
    assert result.status == "COMPLETED"
    assert result.status != Result.FAILED
    assert result.status != "FAILED"


def test_status_prints_as_its_name(capsys):
    result, _ = seed_result()
    print(result.status)
    assert capsys.readouterr().out == "COMPLETED\n"
    assert str(result.status) == f"{result.status}" == "COMPLETED"


@pytest.mark.parametrize(
    "name",
    [
        "NEW_OBJECT",
        "PENDING_REUSE",
        "RUNNING",
        "POSTPROCESSING",
        "COMPLETED",
        "FAILED",
        "CANCELLED",
    ],
)
def test_result_and_ct_status_share_the_names(name):
    assert getattr(Result, name) == getattr(ct.status, name) == name
    assert str(getattr(ct.status, name)) == name


def test_the_public_classes_are_the_ones_in_use():
    result, _ = seed_result()
    assert ct.Result is Result and isinstance(result, ct.Result)
    assert ct.Status is ct.status is Status and isinstance(result.status, ct.Status)


# nodes fetched lazily (get_result(wait=True) answers without them)


def test_nodes_are_fetched_only_when_asked_for():
    detail, items = seed_detail()
    calls = []

    def fetch_nodes():
        calls.append(1)
        return detail

    without = {k: v for k, v in detail.items() if k != "nodes"}
    result = Result(without, CountingFetch(items), fetch_nodes=fetch_nodes)
    assert result.status == Status.COMPLETED
    assert result.result == 4
    assert calls == []
    assert result.get_node_result(0)["stdout"] == "hello\n"
    assert str(result) == SEED_BLOCK
    assert calls == [1]


def test_a_status_shows_as_its_name_printed_or_echoed():
    assert str(Status.COMPLETED) == repr(Status.COMPLETED) == "COMPLETED"
    assert repr([Status.FAILED]) == "[FAILED]"
    assert Status.COMPLETED == "COMPLETED"
