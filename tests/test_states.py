"""The state machine (states.py) and the in-memory Run of one dispatch (run.py).

The tests drive a Run the way the dispatcher loop does (take the ready nodes, mark
them RUNNING, then COMPLETED or FAILED) and check the invariants after every step.
"""

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import covalent as ct
from covalent._dispatcher import states
from covalent._dispatcher.run import Run
from covalent._dispatcher.states import InvalidTransition
from covalent._errors import CovalentError
from covalent._results.status import FINAL_STATUSES, Status
from covalent._store.store import DISPATCH_NODE, Changes
from covalent._wire import blobs, manifest

S = Status
AT = 1_700_000_000.0
ALL = list(Status)

# helpers


def manifest_of(lattice, *args, **kwargs):
    graph = lattice.build_graph(*args, **kwargs)
    return manifest.from_graph(graph, args, kwargs, lattice)[0]


def new_run(man, status=None):
    """A Run as the dispatcher makes it: parameters are born COMPLETED with their value."""
    if status is None:
        status = [S.COMPLETED if n["kind"] == "parameter" else S.NEW_OBJECT for n in man["nodes"]]
    outputs = [n.get("value") for n in man["nodes"]]
    return Run("dispatch-1", man, "/results/dispatch-1", list(status), outputs)


def take_ready(run, changes):
    """Start every ready node, as the dispatcher's _take_ready does."""
    started = []
    while run.ready:
        node_id = run.ready.popleft()
        if run.status[node_id] == S.NEW_OBJECT:
            run.set_status(changes, node_id, S.RUNNING, AT, "inputs ready")
            started.append(node_id)
    return started


def finish(run, changes, node_id):
    digest = blobs.digest(f"output of {node_id}".encode())
    run.set_status(changes, node_id, S.COMPLETED, AT, "completed", output_digest=digest)
    run.complete(changes, node_id, digest)


def fail(run, changes, node_id, error="boom"):
    run.errors[node_id] = error
    run.set_status(changes, node_id, S.FAILED, AT, "failed", error=error)
    run.stop_descendants(changes, node_id, S.NOT_RUN, AT)


def parents_of(run, node_id):
    return {edge[0] for edge in run.inputs[node_id]}


def descendants(children, node_id):
    seen, stack = set(), list(children[node_id])
    while stack:
        child = stack.pop()
        if child not in seen:
            seen.add(child)
            stack.extend(children[child])
    return seen


def check_invariants(run):
    """What must hold after every step, whatever the order of events."""
    for node_id, status in enumerate(run.status):
        parents = parents_of(run, node_id)
        ran = status in (S.RUNNING, S.COMPLETED, S.FAILED)
        if ran and run.node(node_id)["kind"] != "parameter":
            assert all(run.status[p] == S.COMPLETED for p in parents), f"{node_id} ran too early"
        if status == S.NOT_RUN:
            assert any(run.status[p] in (S.FAILED, S.NOT_RUN) for p in parents)
        if status == S.COMPLETED:
            assert run.outputs[node_id] is not None
    for node_id in run.ready:
        assert run.status[node_id] == S.NEW_OBJECT
        assert all(run.status[p] == S.COMPLETED for p in parents_of(run, node_id))


# lattices


@ct.electron
def identity(x):
    return x


@ct.electron
def square(x):
    return x * x


@ct.electron
def add(x, y):
    return x + y


@ct.electron
def combine(*xs, **kw):
    return sum(xs) + sum(kw.values()) + 1


@ct.lattice
def workflow(a):
    val_1 = identity(x=a)
    return square(x=val_1)


@ct.lattice
def diamond():
    top = identity(1)
    return add(square(top), identity(top))


@ct.lattice
def two_branches():
    left = square(identity(1))
    right = square(identity(2))
    return [left, right]


def dag_lattice(parents):
    """A lattice whose node j is combine(*outputs of parents[j]); node ids are j."""

    def body():
        outs = []
        for ps in parents:
            outs.append(combine(*[outs[p] for p in ps]))
        return outs[-1]

    return ct.lattice(body)


# the transition tables


@pytest.mark.parametrize(
    ("old", "new"),
    [(old, new) for old, targets in states.NODE_TRANSITIONS.items() for new in targets],
)
def test_allowed_node_transitions(old, new):
    states.check_node(old, new)


@pytest.mark.parametrize(
    ("old", "new"),
    [
        (None, S.RUNNING),
        (None, S.FAILED),
        (S.NEW_OBJECT, S.COMPLETED),
        (S.NEW_OBJECT, S.NEW_OBJECT),
        (S.RUNNING, S.RUNNING),
        (S.RUNNING, S.NOT_RUN),
        (S.COMPLETED, S.RUNNING),
        (S.FAILED, S.NEW_OBJECT),
        (S.NOT_RUN, S.RUNNING),
        (S.CANCELLED, S.RUNNING),
    ],
)
def test_forbidden_node_transitions(old, new):
    with pytest.raises(InvalidTransition) as info:
        states.check_node(old, new, "Node square(2)")
    assert str(info.value) == f"Node square(2) cannot go from {old} to {new}."


@pytest.mark.parametrize("old", sorted(FINAL_STATUSES))
def test_final_statuses_never_change(old):
    for new in ALL:
        with pytest.raises(InvalidTransition):
            states.check_node(old, new)
        with pytest.raises(InvalidTransition):
            states.check_dispatch(old, new)


@pytest.mark.parametrize(
    ("old", "new"),
    [(old, new) for old, targets in states.DISPATCH_TRANSITIONS.items() for new in targets],
)
def test_allowed_dispatch_transitions(old, new):
    states.check_dispatch(old, new)


@pytest.mark.parametrize(
    ("old", "new"),
    [
        (None, S.COMPLETED),
        (S.NEW_OBJECT, S.COMPLETED),
        (S.NEW_OBJECT, S.FAILED),
        (S.RUNNING, S.NEW_OBJECT),
        (S.RUNNING, S.NOT_RUN),
    ],
)
def test_forbidden_dispatch_transitions(old, new):
    with pytest.raises(InvalidTransition, match="A dispatch cannot go"):
        states.check_dispatch(old, new)


def test_invalid_transition_is_a_covalent_error():
    assert issubclass(InvalidTransition, CovalentError)


# set_status


def test_set_status_records_the_update_and_the_transition():
    run, changes = new_run(manifest_of(workflow, a=2)), Changes()
    run.set_status(changes, 0, S.RUNNING, AT, "inputs ready", start_time=AT)
    assert run.status[0] == S.RUNNING
    assert changes.node_updates == [
        {"_d": "dispatch-1", "_n": 0, "status": "RUNNING", "start_time": AT}
    ]
    assert changes.transitions == [
        {
            "dispatch_id": "dispatch-1",
            "node_id": 0,
            "old": "NEW_OBJECT",
            "new": "RUNNING",
            "at": AT,
            "cause": "inputs ready",
        }
    ]
    assert changes


def test_set_status_refuses_a_forbidden_transition_and_records_nothing():
    run, changes = new_run(manifest_of(workflow, a=2)), Changes()
    with pytest.raises(InvalidTransition, match=r"Node identity\(0\) cannot go"):
        run.set_status(changes, 0, S.COMPLETED, AT)
    with pytest.raises(InvalidTransition, match=r":parameter:2\(1\)"):
        run.set_status(changes, 1, S.RUNNING, AT)
    assert run.status == [S.NEW_OBJECT, S.COMPLETED, S.NEW_OBJECT]
    assert not changes


def test_set_dispatch_status_records_a_dispatch_transition():
    run, changes = new_run(manifest_of(workflow, a=2)), Changes()
    run.set_dispatch_status(changes, S.COMPLETED, AT, "all nodes finished", end_time=AT)
    assert run.dispatch_status == S.COMPLETED
    assert changes.dispatch_updates == [{"_d": "dispatch-1", "status": "COMPLETED", "end_time": AT}]
    assert changes.transitions[0]["node_id"] == DISPATCH_NODE
    transition = changes.transitions[0]
    assert (transition["old"], transition["new"]) == ("RUNNING", "COMPLETED")
    with pytest.raises(InvalidTransition):
        run.set_dispatch_status(changes, S.RUNNING, AT)


# readiness and completion


def test_seed_readiness():
    run = new_run(manifest_of(workflow, a=2))
    assert list(run.ready) == [0]
    assert run.waiting == [0, 0, 1]
    assert run.outputs[1] is not None and run.outputs[0] is None


def test_complete_releases_the_child():
    run, changes = new_run(manifest_of(workflow, a=2)), Changes()
    assert take_ready(run, changes) == [0]
    assert not run.ready
    finish(run, changes, 0)
    assert list(run.ready) == [2]
    assert run.waiting[2] == 0
    check_invariants(run)


def test_a_child_waits_for_every_input():
    run, changes = new_run(manifest_of(diamond)), Changes()
    names = [n["name"] for n in run.manifest["nodes"]]
    assert names == ["identity", ":parameter:1", "square", "identity", "add"]
    take_ready(run, changes)
    finish(run, changes, 0)
    assert sorted(take_ready(run, changes)) == [2, 3]
    finish(run, changes, 2)
    assert not run.ready
    finish(run, changes, 3)
    assert list(run.ready) == [4]
    check_invariants(run)


def test_one_output_passed_twice_releases_the_child_once_it_completes():
    @ct.lattice
    def twice():
        x = identity(3)
        return add(x, x)

    run, changes = new_run(manifest_of(twice)), Changes()
    assert run.waiting[2] == 2
    take_ready(run, changes)
    finish(run, changes, 0)
    assert list(run.ready) == [2]


def test_complete_does_not_release_a_cancelled_child():
    run, changes = new_run(manifest_of(workflow, a=2)), Changes()
    run.set_status(changes, 2, S.CANCELLED, AT, "cancel requested")
    take_ready(run, changes)
    finish(run, changes, 0)
    assert not run.ready


def test_a_resumed_run_is_ready_where_it_stopped():
    man = manifest_of(workflow, a=2)
    run = Run(
        "dispatch-1",
        man,
        "",
        [S.COMPLETED, S.COMPLETED, S.NEW_OBJECT],
        ["d" * 64, man["nodes"][1]["value"], None],
    )
    assert list(run.ready) == [2]
    assert run.waiting == [0, 0, 0]


def test_finished_when_nothing_runs_or_waits():
    run, changes = new_run(manifest_of(workflow, a=2)), Changes()
    assert not run.finished
    take_ready(run, changes)
    assert run.finished  # nothing ready; `running` is the dispatcher's to fill
    run.running[0] = object()
    assert not run.finished


# failures


def test_stop_descendants_marks_not_run_transitively():
    run, changes = new_run(manifest_of(diamond)), Changes()
    take_ready(run, changes)
    fail(run, changes, 0)
    assert run.status == [S.FAILED, S.COMPLETED, S.NOT_RUN, S.NOT_RUN, S.NOT_RUN]
    not_run = [t for t in changes.transitions if t["new"] == "NOT_RUN"]
    assert sorted(t["node_id"] for t in not_run) == [2, 3, 4]
    assert all(t["cause"] == "input identity(0) is FAILED" for t in not_run)
    check_invariants(run)


def test_stop_descendants_leaves_other_branches_alone():
    run, changes = new_run(manifest_of(two_branches)), Changes()
    names = [n["name"] for n in run.manifest["nodes"]]
    assert names == [
        "identity",
        ":parameter:1",
        "square",
        "identity",
        ":parameter:2",
        "square",
        ":electron_list:",
    ]
    assert sorted(take_ready(run, changes)) == [0, 3]
    fail(run, changes, 0)
    finish(run, changes, 3)
    assert take_ready(run, changes) == [5]
    finish(run, changes, 5)
    assert run.status[2] == S.NOT_RUN and run.status[6] == S.NOT_RUN
    assert run.status[5] == S.COMPLETED
    assert not run.ready
    check_invariants(run)


def test_stop_descendants_with_cancelled():
    run, changes = new_run(manifest_of(workflow, a=2)), Changes()
    take_ready(run, changes)
    run.set_status(changes, 0, S.CANCELLED, AT)
    run.stop_descendants(changes, 0, S.CANCELLED, AT)
    assert run.status == [S.CANCELLED, S.COMPLETED, S.CANCELLED]
    assert run.final_status() == S.CANCELLED


# final status, arguments, result


@pytest.mark.parametrize(
    ("statuses", "cancel_requested", "expected"),
    [
        ([S.COMPLETED, S.COMPLETED, S.COMPLETED], False, S.COMPLETED),
        ([S.FAILED, S.COMPLETED, S.NOT_RUN], False, S.FAILED),
        ([S.COMPLETED, S.COMPLETED, S.NOT_RUN], False, S.FAILED),
        ([S.CANCELLED, S.COMPLETED, S.CANCELLED], False, S.CANCELLED),
        ([S.FAILED, S.COMPLETED, S.CANCELLED], False, S.CANCELLED),
        ([S.COMPLETED, S.COMPLETED, S.COMPLETED], True, S.CANCELLED),
    ],
)
def test_final_status(statuses, cancel_requested, expected):
    run = new_run(manifest_of(workflow, a=2), status=statuses)
    run.cancel_requested = cancel_requested
    assert run.final_status() == expected


def test_arguments_are_ordered_by_index_whatever_the_edge_order():
    @ct.lattice
    def many_args():
        return combine(identity(1), identity(2), identity(3), k=identity(4))

    man = manifest_of(many_args)
    target = next(n["id"] for n in man["nodes"] if n["name"] == "combine")
    inputs = {e[3] or e[2]: e[0] for e in man["edges"] if e[1] == target}
    assert set(inputs) == {0, 1, 2, "k"}
    rng = random.Random(7)
    for _ in range(20):
        edges = list(man["edges"])
        rng.shuffle(edges)
        run = new_run({**man, "edges": edges})
        for source in inputs.values():
            run.outputs[source] = f"out-{source}"
        positional, keywords = run.arguments(target)
        assert positional == [f"out-{inputs[i]}" for i in (0, 1, 2)]
        assert keywords == {"k": f"out-{inputs['k']}"}


def test_seed_arguments_are_keywords():
    run, changes = new_run(manifest_of(workflow, a=2)), Changes()
    assert run.arguments(0) == ([], {"x": run.manifest["nodes"][1]["value"]})
    take_ready(run, changes)
    finish(run, changes, 0)
    assert run.arguments(2) == ([], {"x": run.outputs[0]})


def test_result_digest_and_error_text():
    run, changes = new_run(manifest_of(workflow, a=2)), Changes()
    assert run.error_text() is None
    take_ready(run, changes)
    finish(run, changes, 0)
    take_ready(run, changes)
    finish(run, changes, 2)
    assert run.result_digest() == run.outputs[2]
    assert run.final_status() == S.COMPLETED

    failed = new_run(manifest_of(workflow, a=2))
    take_ready(failed, changes)
    fail(failed, changes, 0, "Traceback: ZeroDivisionError")
    assert failed.error_text() == "Node identity(0) failed:\nTraceback: ZeroDivisionError"


def test_result_digest_of_a_plain_result_value():
    run = new_run(manifest_of(ct.lattice(lambda: 5)))
    assert run.result_digest() == run.manifest["result"]["value"]
    assert run.finished and run.final_status() == S.COMPLETED


# properties


@st.composite
def dags(draw, max_nodes=12):
    """parents[j] is a set of earlier node ids."""
    count = draw(st.integers(1, max_nodes))
    return [
        sorted(draw(st.sets(st.integers(0, j - 1), max_size=3))) if j else [] for j in range(count)
    ]


def children_of(parents):
    children = [[] for _ in parents]
    for child, ps in enumerate(parents):
        for p in ps:
            children[p].append(child)
    return children


def drive(run, pick, on_finish):
    """Run the dispatch loop to the end; ``pick`` chooses which running node finishes next."""
    changes, running = Changes(), []
    while True:
        running += take_ready(run, changes)
        check_invariants(run)
        if not running:
            return changes
        node_id = running.pop(pick(len(running)))
        on_finish(run, changes, node_id)
        check_invariants(run)


@settings(max_examples=80, deadline=None, derandomize=True, database=None)
@given(dags(), st.randoms(use_true_random=False))
def test_random_dags_complete_in_any_valid_order(parents, rng):
    run = new_run(manifest_of(dag_lattice(parents)))
    assert [n["name"] for n in run.manifest["nodes"]] == ["combine"] * len(parents)
    changes = drive(run, rng.randrange, finish)
    assert run.status == [S.COMPLETED] * len(parents)
    assert run.final_status() == S.COMPLETED
    assert run.result_digest() == run.outputs[-1] is not None
    started = [t["node_id"] for t in changes.transitions if t["new"] == "RUNNING"]
    assert sorted(started) == list(range(len(parents)))


@settings(max_examples=80, deadline=None, derandomize=True, database=None)
@given(dags(), st.data())
def test_failing_a_node_marks_exactly_its_descendants_not_run(parents, data):
    failing = data.draw(st.integers(0, len(parents) - 1), label="failing node")
    rng = data.draw(st.randoms(use_true_random=False), label="order")
    run = new_run(manifest_of(dag_lattice(parents)))

    def on_finish(run, changes, node_id):
        (fail if node_id == failing else finish)(run, changes, node_id)

    changes = drive(run, rng.randrange, on_finish)
    below = descendants(children_of(parents), failing)
    assert {n for n, s in enumerate(run.status) if s == S.NOT_RUN} == below
    assert run.status[failing] == S.FAILED
    others = set(range(len(parents))) - below - {failing}
    assert all(run.status[n] == S.COMPLETED for n in others)
    assert run.final_status() == S.FAILED
    not_run = [t["node_id"] for t in changes.transitions if t["new"] == "NOT_RUN"]
    assert sorted(not_run) == sorted(below)
    assert f"combine({failing})" in run.error_text()


def test_drive_helper_really_explores_orders():
    """The property tests above are only as good as the orders they try."""
    parents = [[], [], [], [0, 1, 2]]
    seen = set()
    for seed in range(30):
        rng = random.Random(seed)
        run = new_run(manifest_of(dag_lattice(parents)))
        changes = drive(run, rng.randrange, finish)
        seen.add(tuple(t["node_id"] for t in changes.transitions if t["new"] == "COMPLETED"))
    assert len(seen) > 1
