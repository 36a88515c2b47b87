"""The state machine: the transition tables (states.py) and one dispatch's Run (run.py).

The tests drive a Run only through its public methods, the way the dispatcher loop does
(take the ready nodes, hand it outcomes, cancel), and check its invariants with
``Run.validate`` after every step. The tables are checked against lists written out
here, not generated from the tables themselves.
"""

import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import covalent as ct
from covalent._dispatcher import states
from covalent._dispatcher.graph_index import Dependents, Inputs
from covalent._dispatcher.run import (
    CHAIN_AHEAD,
    CHAIN_AHEAD_GROWTH,
    CHAIN_AHEAD_SECONDS,
    Effects,
    Reuse,
    Run,
)
from covalent._dispatcher.states import InvalidTransition
from covalent._errors import CovalentError
from covalent._results.status import FINAL_STATUSES, Status
from covalent._store.changes import DISPATCH_NODE, Changes, DispatchUpdate, NodeUpdate
from covalent._wire import blobs, manifest
from covalent.executor.payload import OUTPUT_BEFORE
from covalent.executor.task import Outcome

S = Status
AT = 1_700_000_000.0
ALL = list(Status)

# helpers


def manifest_of(lattice, *args, **kwargs):
    graph = lattice.build_graph(*args, **kwargs)
    return manifest.from_graph(graph, args, kwargs, lattice)[0]


def new_run(man):
    return Run("dispatch-1", man, "/results/dispatch-1")


def fx():
    return Effects(Changes())


def take_ready(run, effects=None, limit=10_000):
    """Start every ready node; return the node ids to launch."""
    effects = effects or fx()
    run.take_ready(effects, AT, limit)
    run.validate()
    return effects.launch


def completed(node_id, seconds=0.0):
    data = f"output of {node_id}".encode()
    return Outcome(
        S.COMPLETED, output=data, output_repr=repr(node_id), start_time=AT, end_time=AT + seconds
    )


def failed(error="boom"):
    return Outcome(S.FAILED, error=error, start_time=AT, end_time=AT)


def finish(run, node_id, effects=None, seconds=0.0):
    effects = effects or fx()
    run.task_finished(node_id, completed(node_id, seconds), effects)
    run.validate()
    return effects


def fail(run, node_id, error="boom", effects=None):
    effects = effects or fx()
    run.task_finished(node_id, failed(error), effects)
    run.validate()
    return effects


def parents_of(run, node_id):
    return {edge.source for edge in run.inputs[node_id]}


def descendants(children, node_id):
    seen, stack = set(), list(children[node_id])
    while stack:
        child = stack.pop()
        if child not in seen:
            seen.add(child)
            stack.extend(children[child])
    return seen


def check_invariants(run):
    """What must hold after every step, whatever the order of events (besides
    Run.validate, which every helper above calls)."""
    for node_id, status in enumerate(run.status):
        parents = parents_of(run, node_id)
        ran = status in (S.RUNNING, S.COMPLETED, S.FAILED)
        if ran and run.node(node_id)["kind"] != "parameter":
            assert all(run.status[p] == S.COMPLETED for p in parents), f"{node_id} ran too early"


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


# the transition tables, written out

NODE_ALLOWED = [
    (None, S.NEW_OBJECT),
    (None, S.COMPLETED),
    (None, S.PENDING_REUSE),
    (S.NEW_OBJECT, S.RUNNING),
    (S.NEW_OBJECT, S.NOT_RUN),
    (S.NEW_OBJECT, S.CANCELLED),
    (S.NEW_OBJECT, S.PENDING_REUSE),
    (S.PENDING_REUSE, S.COMPLETED),
    (S.RUNNING, S.COMPLETED),
    (S.RUNNING, S.FAILED),
    (S.RUNNING, S.CANCELLED),
    (S.RUNNING, S.NEW_OBJECT),
]
DISPATCH_ALLOWED = [
    (None, S.NEW_OBJECT),
    (None, S.RUNNING),
    (S.NEW_OBJECT, S.RUNNING),
    (S.NEW_OBJECT, S.CANCELLED),
    (S.RUNNING, S.COMPLETED),
    (S.RUNNING, S.FAILED),
    (S.RUNNING, S.CANCELLED),
]


@pytest.mark.parametrize(("old", "new"), [(o, n) for o in [None, *ALL] for n in ALL])
def test_node_transitions_are_exactly_the_documented_ones(old, new):
    if (old, new) in NODE_ALLOWED:
        states.check_node(old, new)
    else:
        with pytest.raises(InvalidTransition):
            states.check_node(old, new)


@pytest.mark.parametrize(("old", "new"), [(o, n) for o in [None, *ALL] for n in ALL])
def test_dispatch_transitions_are_exactly_the_documented_ones(old, new):
    if (old, new) in DISPATCH_ALLOWED:
        states.check_dispatch(old, new)
    else:
        with pytest.raises(InvalidTransition):
            states.check_dispatch(old, new)


@pytest.mark.parametrize("old", sorted(FINAL_STATUSES))
def test_final_statuses_never_change(old):
    for new in ALL:
        with pytest.raises(InvalidTransition):
            states.check_node(old, new)
        with pytest.raises(InvalidTransition):
            states.check_dispatch(old, new)


def test_invalid_transition_names_the_node_both_states_and_its_story():
    error = InvalidTransition(
        "Node square(2)", S.COMPLETED, S.RUNNING, [("NEW_OBJECT", "RUNNING", "inputs ready")]
    )
    assert isinstance(error, CovalentError)
    assert (error.what, error.old, error.new) == ("Node square(2)", S.COMPLETED, S.RUNNING)
    assert str(error) == (
        "Node square(2) cannot go from COMPLETED to RUNNING. "
        "Its recent transitions: NEW_OBJECT -> RUNNING (inputs ready)."
    )


# starting nodes


def test_take_ready_queues_a_node_and_its_start_makes_it_running():
    run, effects = new_run(manifest_of(workflow, a=2)), fx()
    assert take_ready(run, effects) == [0]
    assert run.status[0] == S.NEW_OBJECT and run.running == {0}  # queued: nothing stored
    assert not effects.changes
    effects = fx()
    run.task_started(0, AT + 1, effects)
    run.validate()
    assert run.status[0] == S.RUNNING
    assert effects.changes.node_updates == [
        NodeUpdate("dispatch-1", 0, {"start_time": AT + 1, "attempts": 1, "status": "RUNNING"})
    ]
    assert effects.changes.transitions == [
        {
            "dispatch_id": "dispatch-1",
            "node_id": 0,
            "old": "NEW_OBJECT",
            "new": "RUNNING",
            "at": AT + 1,
            "cause": "started",
        }
    ]


def test_an_outcome_without_a_start_records_the_start_it_carries():
    run = new_run(manifest_of(workflow, a=2))
    take_ready(run)
    outcome = Outcome(S.COMPLETED, output=b"2", output_repr="2", start_time=AT, end_time=AT + 2)
    effects = fx()
    run.task_finished(0, outcome, effects)
    run.validate()
    assert [(t["old"], t["new"]) for t in effects.changes.transitions] == [
        ("NEW_OBJECT", "RUNNING"),
        ("RUNNING", "COMPLETED"),
    ]
    assert effects.changes.node_updates[-1].fields["start_time"] == AT
    assert effects.changes.node_updates[-1].fields["end_time"] == AT + 2


def test_a_failed_attempt_without_a_start_is_kept_and_the_node_runs_on():
    # a warm worker sends a start with its reply: the attempt's outcome is the first news
    run = new_run(manifest_of(workflow, a=2))
    take_ready(run)
    effects = fx()
    run.attempt_failed(0, 1, Outcome(S.FAILED, error="try 1", start_time=AT, end_time=AT), effects)
    run.validate()
    assert run.status[0] == S.RUNNING and run.running == {0}
    assert [a["attempt"] for a in effects.changes.attempts] == [1]
    assert effects.changes.node_updates[-1] == NodeUpdate("dispatch-1", 0, {"attempts": 2})
    finish(run, 0)
    assert run.status[0] == S.COMPLETED


def test_output_while_running_is_stored_and_the_outcome_adds_the_rest():
    run = new_run(manifest_of(workflow, a=2))
    take_ready(run)
    run.task_started(0, AT, fx())
    effects = fx()
    run.task_output(0, "stdout", "first line\n", effects)
    assert effects.changes.node_updates == [NodeUpdate("dispatch-1", 0, {"stdout": "first line\n"})]
    outcome = Outcome(
        S.CANCELLED, stdout="second\n", stderr="err", start_time=AT + 9, end_time=AT + 5
    )
    effects = fx()
    run.task_finished(0, outcome, effects)
    fields = effects.changes.node_updates[0].fields
    assert fields["status"] == "CANCELLED"
    assert fields["stdout"] == "first line\nsecond\n" and fields["stderr"] == "err"
    assert (fields["start_time"], fields["end_time"]) == (AT, AT + 5)  # its true start


def test_a_stream_past_the_limit_keeps_head_and_tail_and_spills_the_whole_text():
    from covalent._dispatcher.streams import STREAM_LIMIT

    run = new_run(manifest_of(workflow, a=2))
    take_ready(run)
    run.task_started(0, AT, fx())
    chunks = [f"{i:09d}\n" * 1000 for i in range(60)]  # 600,000 characters
    spilled = []
    for chunk in chunks:
        effects = fx()
        run.task_output(0, "stdout", chunk, effects)
        spilled += [text for _path, text in effects.spill]
    whole = "".join(chunks)
    assert "".join(spilled) == whole
    shown = effects.changes.node_updates[-1].fields["stdout"]
    assert shown.startswith(whole[: STREAM_LIMIT // 2]) and shown.endswith(
        whole[-STREAM_LIMIT // 2 :]
    )
    dropped = len(whole) - STREAM_LIMIT
    assert f"[... {dropped} characters not shown; the whole text is in " in shown
    assert effects.spill[0][0].endswith("node_0.stdout.log")


def test_take_ready_starts_at_most_the_limit_and_asks_to_come_back():
    run = new_run(manifest_of(dag_lattice([[], [], [], [], [0, 1, 2, 3]])))
    effects = fx()
    assert take_ready(run, effects, limit=3) == [0, 1, 2]
    assert effects.more_ready
    assert take_ready(run, fx(), limit=3) == [3]


def test_seed_readiness():
    run = new_run(manifest_of(workflow, a=2))
    assert list(run.ready) == [0]
    assert run.waiting == [0, 0, 1]
    assert run.outputs[1] is not None and run.outputs[0] is None


def test_a_finished_node_releases_its_child():
    run = new_run(manifest_of(workflow, a=2))
    assert take_ready(run) == [0]
    assert not run.ready
    effects = finish(run, 0)
    digest = blobs.digest(b"output of 0")
    assert effects.changes.blobs == {digest: b"output of 0"}
    assert run.outputs[0] == digest and run.reprs[0] == "0"
    assert list(run.ready) == [2]
    assert take_ready(run) == [2]


def test_a_child_waits_for_every_input():
    run = new_run(manifest_of(diamond))
    names = [n["name"] for n in run.manifest["nodes"]]
    assert names == ["identity", ":parameter:1", "square", "identity", "add"]
    take_ready(run)
    finish(run, 0)
    assert sorted(take_ready(run)) == [2, 3]
    finish(run, 2)
    assert not run.ready
    finish(run, 3)
    assert list(run.ready) == [4]


def test_one_output_passed_twice_releases_the_child_once_it_completes():
    @ct.lattice
    def twice():
        x = identity(3)
        return add(x, x)

    run = new_run(manifest_of(twice))
    assert run.waiting[2] == 2
    take_ready(run)
    finish(run, 0)
    assert list(run.ready) == [2]


def test_an_outcome_for_a_node_that_no_longer_runs_changes_nothing():
    run = new_run(manifest_of(workflow, a=2))
    take_ready(run)
    finish(run, 0)
    effects = finish(run, 0)  # the same outcome twice
    assert not effects.changes
    assert run.status[0] == S.COMPLETED


def test_a_resumed_run_runs_again_what_was_running():
    man = manifest_of(diamond)
    run, effects = new_run(man), fx()
    rows = [
        {"node_id": 0, "status": "COMPLETED", "output_digest": "d" * 64},
        {"node_id": 2, "status": "RUNNING"},
        {"node_id": 3, "status": "NEW_OBJECT"},
        {"node_id": 4, "status": "NEW_OBJECT"},
    ]
    for row in rows:
        row.setdefault("output_digest", None)
        row.update(error=None, output_repr=None, sub_dispatch_id=None)
    run.resume(rows, effects, AT)
    run.validate()
    assert run.status == [S.COMPLETED, S.COMPLETED, S.NEW_OBJECT, S.NEW_OBJECT, S.NEW_OBJECT]
    assert [(t["node_id"], t["old"], t["new"]) for t in effects.changes.transitions] == [
        (2, "RUNNING", "NEW_OBJECT")
    ]
    assert sorted(run.ready) == [2, 3]


# failures and cancels


def test_a_failure_marks_its_descendants_not_run_and_leaves_other_branches_alone():
    run = new_run(manifest_of(two_branches))
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
    assert sorted(take_ready(run)) == [0, 3]
    effects = fail(run, 0)
    not_run = [t for t in effects.changes.transitions if t["new"] == "NOT_RUN"]
    assert sorted(t["node_id"] for t in not_run) == [2, 6]
    assert all(t["cause"] == "input identity(0) is FAILED" for t in not_run)
    finish(run, 3)
    assert take_ready(run) == [5]
    finish(run, 5)
    assert run.status[2] == S.NOT_RUN and run.status[6] == S.NOT_RUN
    assert run.status[5] == S.COMPLETED
    assert run.error_text() == "Node identity(0) failed:\nboom"


def test_cancelling_the_dispatch_stops_running_nodes_and_cancels_waiting_ones():
    run = new_run(manifest_of(diamond))
    take_ready(run)
    run.task_started(0, AT, fx())
    effects = fx()
    run.cancel(None, effects, AT)
    run.validate()
    assert effects.stop == [0]  # running: its task is stopped; it ends when that reports
    assert run.status == [S.RUNNING, S.COMPLETED, S.CANCELLED, S.CANCELLED, S.CANCELLED]
    assert not run.finished
    cancelled = Outcome(S.CANCELLED, error="Cancelled while running.")
    run.task_finished(0, cancelled, fx())
    run.validate()
    assert run.finished
    effects = fx()
    run.conclude(effects, AT)
    assert effects.finished and run.dispatch_status == S.CANCELLED
    assert effects.changes.dispatch_updates[0].fields["status"] == "CANCELLED"
    assert effects.changes.transitions[0]["node_id"] == DISPATCH_NODE


def test_a_node_cancelled_while_queued_ends_cancelled_without_having_run():
    run = new_run(manifest_of(workflow, a=2))
    take_ready(run)
    effects = fx()
    run.cancel(None, effects, AT)
    assert effects.stop == [0] and run.status[0] == S.NEW_OBJECT
    effects = fx()
    run.task_finished(0, Outcome(S.CANCELLED, start_time=AT, end_time=AT), effects)
    run.validate()
    assert [(t["node_id"], t["old"], t["new"]) for t in effects.changes.transitions] == [
        (0, "NEW_OBJECT", "CANCELLED")  # node 2 was cancelled with the request
    ]
    assert "start_time" not in effects.changes.node_updates[0].fields


def test_cancelling_one_waiting_node_cancels_its_descendants_only():
    run = new_run(manifest_of(two_branches))
    take_ready(run)
    run.cancel([2], fx(), AT)
    run.validate()
    assert run.status[2] == S.CANCELLED and run.status[6] == S.CANCELLED
    finish(run, 0)
    finish(run, 3)
    assert take_ready(run) == [5]  # the other branch goes on


def test_a_cancel_that_crossed_a_completion_changes_nothing():
    run = new_run(manifest_of(workflow, a=2))
    take_ready(run)
    finish(run, 0)
    effects = fx()
    run.cancel([0], effects, AT)
    assert not effects.stop and not effects.changes
    assert run.status[0] == S.COMPLETED


# final status, arguments, result


@pytest.mark.parametrize(
    ("outcomes", "cancel", "expected"),
    [
        (["ok", "ok"], False, S.COMPLETED),
        (["fail"], False, S.FAILED),
        (["ok", "fail"], False, S.FAILED),
        (["cancel"], False, S.CANCELLED),
        (["ok", "ok"], True, S.CANCELLED),
    ],
)
def test_final_status(outcomes, cancel, expected):
    run = new_run(manifest_of(workflow, a=2))
    for what in outcomes:
        (node,) = take_ready(run)
        outcome = {
            "ok": completed(node),
            "fail": failed(),
            "cancel": Outcome(S.CANCELLED, start_time=AT, end_time=AT),
        }[what]
        run.task_finished(node, outcome, fx())
        run.validate()
    if cancel:
        run.cancel(None, fx(), AT)
    effects = fx()
    run.conclude(effects, AT)
    assert run.dispatch_status == expected == run.final_status()
    update = effects.changes.dispatch_updates[0]
    assert update == DispatchUpdate("dispatch-1", {**update.fields, "status": expected.value})


def _many_args():
    """The manifest of a lattice whose ``combine`` takes three inputs by position and
    one by keyword, and ``combine``'s node id."""

    @ct.lattice
    def many_args():
        return combine(identity(1), identity(2), identity(3), k=identity(4))

    man = manifest_of(many_args)
    return man, next(n["id"] for n in man["nodes"] if n["name"] == "combine")


def test_arguments_are_ordered_by_position_whatever_the_edge_order():
    man, target = _many_args()
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
    run = new_run(manifest_of(workflow, a=2))
    assert run.arguments(0) == ([], {"x": run.manifest["nodes"][1]["value"]})
    take_ready(run)
    finish(run, 0)
    assert run.arguments(2) == ([], {"x": run.outputs[0]})


def test_arguments_of_a_node_whose_input_has_no_output_name_the_input():
    man, target = _many_args()
    sources = sorted(e[0] for e in man["edges"] if e[1] == target)
    run = new_run(man)
    for source in sources[:-1]:
        run.outputs[source] = f"out-{source}"
    with pytest.raises(InvalidTransition, match=rf"input {sources[-1]} has no output"):
        run.arguments(target)
    run.outputs[sources[-1]] = "last"
    positional, keywords = run.arguments(target)
    assert len(positional) + len(keywords) == 4


def test_result_digest_and_error_text():
    run = new_run(manifest_of(workflow, a=2))
    assert run.error_text() is None
    take_ready(run)
    finish(run, 0)
    take_ready(run)
    finish(run, 2)
    assert run.result_digest() == run.outputs[2]
    assert run.final_status() == S.COMPLETED

    failing = new_run(manifest_of(workflow, a=2))
    take_ready(failing)
    fail(failing, 0, "Traceback: ZeroDivisionError")
    assert failing.error_text() == "Node identity(0) failed:\nTraceback: ZeroDivisionError"


def test_result_digest_of_a_plain_result_value():
    run = new_run(manifest_of(ct.lattice(lambda: 5)))
    assert run.result_digest() == run.manifest["result"]["value"]
    assert run.finished and run.final_status() == S.COMPLETED


# reuse, cache, sublattices


def test_a_redispatch_reuses_stored_outputs_before_anything_runs():
    man = manifest_of(workflow, a=2)
    reused = Reuse("e" * 64, "2", "old-dispatch:0")
    run, effects = Run("dispatch-1", man, "", pending_reuse={0: reused}), fx()
    run.begin(effects, AT)
    run.validate()
    assert [(t["node_id"], t["old"], t["new"]) for t in effects.changes.transitions] == [
        (0, "NEW_OBJECT", "PENDING_REUSE"),
        (0, "PENDING_REUSE", "COMPLETED"),
    ]
    assert run.outputs[0] == "e" * 64
    assert effects.changes.node_updates[-1].fields["reused_from"] == "old-dispatch:0"
    assert take_ready(run) == [2]


@ct.electron(cache=True)
def cached_square(x):
    return x * x


@ct.lattice
def cached_flow(a):
    return cached_square(a)


def test_a_cache_node_is_looked_up_before_it_runs():
    run, effects = new_run(manifest_of(cached_flow, 3)), fx()
    run.take_ready(effects, AT, 100)
    run.validate()
    assert effects.launch == [] and [n for n, _ in effects.cache_lookups] == [0]
    assert run.status[0] == S.NEW_OBJECT and not run.finished  # waiting for the answer
    run.cache_checked(0, None, effects := fx(), AT)  # a miss: it runs
    run.validate()
    assert effects.launch == [0]
    effects = finish(run, 0)
    assert effects.changes.cache_rows[0]["output_digest"] == run.outputs[0]


def test_a_cache_hit_completes_the_node_without_running_it():
    run, effects = new_run(manifest_of(cached_flow, 3)), fx()
    run.take_ready(effects, AT, 100)
    run.cache_checked(0, Reuse("f" * 64, "9", "other:0"), effects := fx(), AT)
    run.validate()
    assert effects.launch == [] and run.status[0] == S.COMPLETED and run.outputs[0] == "f" * 64


@ct.electron
@ct.lattice
def inner(x):
    return square(x)


@ct.lattice
def outer(x):
    return inner(x)


def test_a_sublattice_node_runs_as_a_child_dispatch_and_ends_with_it():
    run = new_run(manifest_of(outer, 2))
    (node,) = take_ready(run)
    effects = finish(run, node)  # the build returned a bundle
    assert [n for n, _ in effects.children] == [node]
    assert run.status[node] == S.RUNNING and run.children == {node: None}
    run.child_started(node, "child-1", effects := fx())
    run.validate()
    assert effects.changes.node_updates == [
        NodeUpdate("dispatch-1", node, {"sub_dispatch_id": "child-1"})
    ]
    done = Outcome(S.COMPLETED, output_ref="a" * 64, output_repr="4", end_time=AT)
    run.task_finished(node, done, fx())
    run.validate()
    assert run.status[node] == S.COMPLETED and run.outputs[node] == "a" * 64 and run.finished


def test_cancelling_a_sublattice_node_while_its_child_is_submitted_cancels_the_child():
    run = new_run(manifest_of(outer, 2))
    (node,) = take_ready(run)
    finish(run, node)
    effects = fx()
    run.cancel(None, effects, AT)
    assert effects.stop_children == []  # not stored yet
    run.child_started(node, "child-1", effects := fx())
    assert effects.stop_children == ["child-1"]


def test_a_finished_child_tells_its_parent():
    run = Run("child-1", manifest_of(workflow, a=2), "", parent=("dispatch-1", 4))
    take_ready(run)
    finish(run, 0)
    take_ready(run)
    finish(run, 2)
    effects = fx()
    run.conclude(effects, AT)
    assert effects.parent is not None
    parent_id, node, outcome = effects.parent
    assert (parent_id, node, outcome.status) == ("dispatch-1", 4, S.COMPLETED)
    assert outcome.output_ref == run.outputs[2]


# abort


def test_abort_fails_the_dispatch_stops_its_tasks_and_closes_its_nodes_in_the_store():
    run = new_run(manifest_of(diamond))
    take_ready(run)
    effects = fx()
    effects.launch.append(0)
    run.abort("boom\nand more", effects, AT)
    assert effects.launch == [] and effects.stop == [0] and effects.finished
    assert run.dispatch_status == S.FAILED
    assert effects.changes.closed == [("dispatch-1", "the dispatch failed: boom")]
    assert effects.changes.dispatch_updates == [
        DispatchUpdate(
            "dispatch-1", {"status": "FAILED", "end_time": AT, "error": "boom\nand more"}
        )
    ]


def test_validate_catches_a_broken_invariant():
    run = new_run(manifest_of(workflow, a=2))
    run.validate()
    run.status[2] = S.RUNNING  # behind the state machine's back
    with pytest.raises(AssertionError, match="invariant broken"):
        run.validate()


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
    """Run the dispatch loop to the end; ``pick`` chooses which running node finishes next.
    Returns every transition made, in order."""
    transitions, running = [], []
    while True:
        effects = fx()
        run.take_ready(effects, AT, 10_000)
        run.validate()
        transitions += effects.changes.transitions
        running += effects.launch
        check_invariants(run)
        if not running:
            effects = fx()
            run.conclude(effects, AT)
            return transitions + effects.changes.transitions
        node_id = running.pop(pick(len(running)))
        effects = fx()
        on_finish(run, node_id, effects)
        transitions += effects.changes.transitions
        check_invariants(run)


def finish_it(run, node_id, effects):
    finish(run, node_id, effects)


@settings(max_examples=80, deadline=None, derandomize=True, database=None)
@given(dags(), st.randoms(use_true_random=False))
def test_random_dags_complete_in_any_valid_order(parents, rng):
    run = new_run(manifest_of(dag_lattice(parents)))
    assert [n["name"] for n in run.manifest["nodes"]] == ["combine"] * len(parents)
    transitions = drive(run, rng.randrange, finish_it)
    assert run.status == [S.COMPLETED] * len(parents)
    assert run.dispatch_status == S.COMPLETED
    assert run.result_digest() == run.outputs[-1] is not None
    started = [t["node_id"] for t in transitions if t["new"] == "RUNNING"]
    assert sorted(started) == list(range(len(parents)))


@settings(max_examples=80, deadline=None, derandomize=True, database=None)
@given(dags(), st.data())
def test_failing_a_node_marks_exactly_its_descendants_not_run(parents, data):
    failing = data.draw(st.integers(0, len(parents) - 1), label="failing node")
    rng = data.draw(st.randoms(use_true_random=False), label="order")
    run = new_run(manifest_of(dag_lattice(parents)))

    def on_finish(run, node_id, effects):
        if node_id == failing:
            fail(run, node_id, effects=effects)
        else:
            finish(run, node_id, effects)

    transitions = drive(run, rng.randrange, on_finish)
    below = descendants(children_of(parents), failing)
    assert {n for n, s in enumerate(run.status) if s == S.NOT_RUN} == below
    assert run.status[failing] == S.FAILED
    others = set(range(len(parents))) - below - {failing}
    assert all(run.status[n] == S.COMPLETED for n in others)
    assert run.dispatch_status == S.FAILED
    not_run = [t["node_id"] for t in transitions if t["new"] == "NOT_RUN"]
    assert sorted(not_run) == sorted(below)
    assert f"combine({failing})" in run.error_text()


def test_drive_helper_really_explores_orders():
    """The property tests above are only as good as the orders they try."""
    parents = [[], [], [], [0, 1, 2]]
    seen = set()
    for seed in range(30):
        rng = random.Random(seed)
        run = new_run(manifest_of(dag_lattice(parents)))
        transitions = drive(run, rng.randrange, finish_it)
        seen.add(tuple(t["node_id"] for t in transitions if t["new"] == "COMPLETED"))
    assert len(seen) > 1


# the run's index of the transport graph


@settings(max_examples=50, deadline=None)
@given(
    st.integers(1, 8).flatmap(
        lambda count: st.tuples(
            st.just(count),
            st.lists(
                st.tuples(
                    st.integers(0, count - 1),
                    st.integers(0, count - 1),
                    st.none() | st.integers(0, 3) | st.just(2**63 - 1),  # the schema's largest
                    st.none() | st.sampled_from(["a", "b"]),
                ),
                max_size=20,
            ),
        )
    ),
    st.booleans(),
)
def test_the_edge_index_lists_each_nodes_edges_in_manifest_order(graph, as_lists) -> None:
    """Inputs and Dependents (flat arrays) answer as a list per node would:
    nodes without edges, an edge given twice, edges stored as JSON lists."""
    count, edges = graph
    raw = [list(e) for e in edges] if as_lists else edges
    inputs, dependents = Inputs(raw, count), Dependents(raw, count)
    assert len(inputs) == count
    for node in range(count):
        assert inputs[node] == [manifest.Edge(*e) for e in edges if e[1] == node]
        assert dependents[node] == [e[1] for e in edges if e[0] == node]
    status = [S.COMPLETED if node % 2 else S.NEW_OBJECT for node in range(count)]
    expected = [
        sum(status[e[0]] is not S.COMPLETED for e in edges if e[1] == n) for n in range(count)
    ]
    assert inputs.unfinished(status) == expected


# a chain's next step handed over before its input ended (Run.chained)


@ct.lattice
def three_steps(a):
    return identity(identity(identity(a)))


@ct.lattice
def steps(n):
    value = 0
    for _ in range(n):
        value = identity(value)
    return value


def chained_run(lattice, *args):
    run = new_run(manifest_of(lattice, *args))
    run.chains = lambda spec: True
    return run


def electrons(run):
    return [n for n, node in enumerate(run.nodes) if node["kind"] == "electron"]


def not_run(error="not in this worker"):
    return Outcome(S.NOT_RUN, error=error, start_time=AT, end_time=AT)


def test_a_chains_next_steps_are_handed_over_with_the_step_before_and_start_after_it():
    run = chained_run(three_steps, 1)
    first, second, third = electrons(run)
    assert take_ready(run) == [first, second, third]
    assert run.chained == {second: first, third: second}
    assert run.arguments(second) == ([OUTPUT_BEFORE], {})  # the worker has it
    assert run.arguments(third) == ([OUTPUT_BEFORE], {})
    assert run.outputs[first] is None
    run.task_started(second, AT, fx())  # a start before its input completed: ignored
    assert run.status[second] == S.NEW_OBJECT
    effects = finish(run, first)
    assert effects.launch == []  # the chain is handed over to its end already
    run.task_started(second, AT, fx())
    assert run.status[second] == S.RUNNING
    finish(run, second)
    finish(run, third)
    effects = fx()
    run.conclude(effects, AT)
    assert run.dispatch_status == S.COMPLETED and not run.chained


def test_a_chain_of_quick_steps_grows_ahead_to_chain_ahead_steps_beyond_a_running_one():
    run = chained_run(steps, CHAIN_AHEAD + 30)
    nodes = electrons(run)
    assert take_ready(run) == nodes[: 1 + CHAIN_AHEAD_GROWTH]  # a step's time unknown
    grown = [len(finish(run, nodes[i]).launch) for i in range(16)]  # each took no time
    assert grown[0] == max(grown) == CHAIN_AHEAD_GROWTH and grown[-3:] == [1, 1, 1]
    beyond = [n for n in nodes[17:] if n in run.running]  # nodes[16] runs
    assert beyond == nodes[17 : 17 + CHAIN_AHEAD]
    assert run.chained[nodes[16 + CHAIN_AHEAD]] == nodes[15 + CHAIN_AHEAD]


def test_a_chain_of_slow_steps_is_handed_over_as_far_as_their_time_allows():
    # Found by review: a task that needs the worker meanwhile (another dispatch's) waits
    # behind the steps handed to it, 32 steps of 0.1 s with CHAIN_AHEAD alone.
    run = chained_run(steps, 60)
    nodes = electrons(run)
    assert take_ready(run) == nodes[: 1 + CHAIN_AHEAD_GROWTH]  # a step's time unknown
    slow = [finish(run, nodes[i], seconds=0.1).launch for i in range(4)]
    assert slow == [[], [], [], [nodes[5]]]  # none taken back; then one beyond nodes[4]
    third = CHAIN_AHEAD_SECONDS / 3.5  # three such steps fit in the time
    assert finish(run, nodes[4], seconds=third).launch == nodes[6:9]  # three beyond nodes[5]
    assert finish(run, nodes[5], seconds=third).launch == [nodes[9]]  # three beyond nodes[6]
    assert finish(run, nodes[6], seconds=0.1).launch == []  # two are out already


def test_a_quick_step_before_slow_ones_hands_over_a_few_of_them_not_chain_ahead():
    # Found by review: the time of one quick step handed over CHAIN_AHEAD slow ones.
    run = chained_run(steps, 60)
    nodes = electrons(run)
    take_ready(run)
    for i in range(4):  # slow ones: one step beyond nodes[4] is out
        finish(run, nodes[i], seconds=0.1)
    assert finish(run, nodes[4], seconds=0.0).launch == nodes[6 : 6 + CHAIN_AHEAD_GROWTH]


def test_a_chained_step_its_worker_did_not_run_waits_for_its_input_and_runs_then():
    run = chained_run(three_steps, 1)
    first, second, third = electrons(run)
    take_ready(run)
    effects = fx()
    run.task_finished(second, not_run(), effects)
    run.validate()
    assert second not in run.running and run.status[second] == S.NEW_OBJECT
    assert not effects.changes.transitions  # nothing happened to it
    finish(run, first)
    assert take_ready(run) == [second]  # as any node; the step after it is still out
    assert run.arguments(second) == ([run.outputs[first]], {})
    effects = fx()
    run.task_finished(third, not_run(), effects)  # it followed the second's first try
    run.validate()
    finish(run, second)
    assert take_ready(run) == [third]
    finish(run, third)


@pytest.mark.parametrize(
    "answer",
    [Outcome(S.CANCELLED, error="Cancelled."), Outcome(S.NOT_RUN, error="Not chained.")],
    ids=["stopped", "not-run-on-the-way"],
)
def test_a_chained_step_cancelled_before_its_input_ended_stays_cancelled(answer):
    """Its answer is CANCELLED (its task was stopped), or NOT_RUN when the launcher
    could not hand it over (the answer was queued, no handle was left to stop): either
    way it must not run later, nor the step chained on it."""
    run = chained_run(three_steps, 1)
    first, second, third = electrons(run)
    take_ready(run)
    effects = fx()
    run.cancel([second], effects, AT)
    assert effects.stop == [second]
    run.task_finished(second, answer, fx())
    run.validate()
    run.task_finished(third, not_run(), fx())  # its worker never had its input
    run.validate()
    finish(run, first)
    assert take_ready(run) == []
    assert run.status[second] == run.status[third] == S.CANCELLED


def drive_chained(run, rng, failing=None, cancels=False):
    """As :func:`drive`, with chaining on, in the orders a worker allows: a chained node
    answers after the node before it did (COMPLETED or, at random, NOT_RUN: its worker
    ran something else; NOT_RUN if that node did not complete), or at once NOT_RUN
    (it could not be handed over). With ``cancels``, random nodes and the dispatch are
    cancelled at random points, and outcomes cross them (a cancelled task may still
    complete, fail, or answer NOT_RUN)."""
    run.chains = lambda spec: True
    running = []
    while True:
        effects = fx()
        run.take_ready(effects, AT, 10_000)
        run.validate()
        running += effects.launch
        check_invariants(run)
        roll = rng.random() if cancels else 1.0
        if roll < 0.03 and not run.cancel_requested:
            run.cancel(None, fx(), AT)
            run.validate()
            continue
        if roll < 0.1:
            run.cancel([rng.randrange(len(run.status))], fx(), AT)
            run.validate()
            continue
        if not running:
            run.conclude(fx(), AT)
            return
        node_id = running.pop(rng.randrange(len(running)))
        before = run.chained.get(node_id)
        roll = rng.random() if cancels else 1.0
        if roll < 0.05 or node_id == failing:
            outcome = failed()
        elif roll < 0.15:
            outcome = Outcome(S.CANCELLED, error="Cancelled.", start_time=AT, end_time=AT)
        else:
            outcome = completed(node_id)
        if (
            before is not None
            and outcome.status != S.CANCELLED
            and (before in running or run.status[before] != S.COMPLETED or rng.random() < 0.2)
        ):
            outcome = Outcome(S.NOT_RUN, error="not in this worker", start_time=AT, end_time=AT)
        effects = fx()
        run.task_finished(node_id, outcome, effects)
        run.validate()
        running += effects.launch  # the next steps of a chain, handed over now
        check_invariants(run)


@settings(max_examples=80, deadline=None, derandomize=True, database=None)
@given(dags(), st.randoms(use_true_random=False))
def test_random_dags_with_chaining_complete_in_any_order_a_worker_allows(parents, rng):
    run = new_run(manifest_of(dag_lattice(parents)))
    drive_chained(run, rng)
    assert run.status == [S.COMPLETED] * len(parents)
    assert run.dispatch_status == S.COMPLETED and not run.chained


@settings(max_examples=80, deadline=None, derandomize=True, database=None)
@given(dags(), st.data())
def test_a_failure_with_chaining_marks_exactly_its_descendants_not_run(parents, data):
    failing = data.draw(st.integers(0, len(parents) - 1), label="failing node")
    rng = data.draw(st.randoms(use_true_random=False), label="order")
    run = new_run(manifest_of(dag_lattice(parents)))
    drive_chained(run, rng, failing)
    below = descendants(children_of(parents), failing)
    assert {n for n, s in enumerate(run.status) if s == S.NOT_RUN} == below
    assert run.status[failing] == S.FAILED
    assert all(run.status[n] == S.COMPLETED for n in set(range(len(parents))) - below - {failing})
    assert run.dispatch_status == S.FAILED


def test_a_dispatch_cancelled_while_a_chained_steps_not_run_answer_is_on_the_way_ends():
    """The whole dispatch is cancelled, the step's NOT_RUN comes, then the step before
    completes (its outcome crossed the cancel): every node ends, none is left NEW."""
    run = chained_run(three_steps, 1)
    first, second, third = electrons(run)
    take_ready(run)
    run.cancel(None, fx(), AT)
    run.task_finished(second, Outcome(S.NOT_RUN, error="Not chained."), fx())
    run.validate()
    run.task_finished(third, not_run(), fx())
    run.validate()
    finish(run, first)
    assert take_ready(run) == []
    effects = fx()
    run.conclude(effects, AT)
    assert run.dispatch_status == S.CANCELLED
    assert run.status[second] == run.status[third] == S.CANCELLED


@settings(
    max_examples=200,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.large_base_example],  # (the outcomes' random draws)
)
@given(dags(), st.randoms(use_true_random=False))
def test_random_dags_with_chaining_and_cancels_end_with_every_node_ended(parents, rng):
    run = new_run(manifest_of(dag_lattice(parents)))
    drive_chained(run, rng, cancels=True)
    assert run.finished and run.dispatch_status in FINAL_STATUSES
    assert all(status in FINAL_STATUSES for status in run.status), run.status


def test_whether_an_executor_chains_is_asked_until_it_is_known_then_remembered():
    """Not known (None) until the executor is set up: asked again; then remembered."""
    answers = iter([None, False])
    asked = []

    def chains(spec):
        asked.append(spec["name"])
        return next(answers)

    run = new_run(manifest_of(steps, 4))
    run.chains = chains
    first, second, third, _fourth = electrons(run)
    assert take_ready(run) == [first]  # not known: not chained
    finish(run, first)
    assert take_ready(run) == [second]  # known now: it does not chain
    finish(run, second)
    assert take_ready(run) == [third]
    assert len(asked) == 2
