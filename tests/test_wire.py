"""What travels on the wire: blobs, bundles and the manifest."""

import copy
import json
import os
import re
import threading
from pathlib import Path
from typing import Any

import pytest

import covalent as ct
from covalent._errors import BadRequestError, InvalidFieldError, WorkflowError
from covalent._wire import blobs, bundle, manifest, schema

# helpers


def pack_raw(header_bytes: bytes, rest: bytes = b"") -> bytes:
    return bundle.MAGIC + len(header_bytes).to_bytes(8, "big") + header_bytes + rest


def blob_set(*values):
    data = [blobs.dumps(v) for v in values]
    return {blobs.digest(d): d for d in data}


def manifest_of(lattice, *args, **kwargs):
    graph = lattice.build_graph(*args, **kwargs)
    return manifest.from_graph(graph, args, kwargs, lattice)


def is_square(value):
    return callable(value) and getattr(value, "__name__", "") == "square" and value(3) == 9


def node_entry(man, name):
    return next(n for n in man["nodes"] if n["name"] == name)


executor1 = ct.executor.LocalExecutor()


@ct.electron(executor=executor1)
def identity(x):
    return x


@ct.electron(executor="local")
def square(x):
    return x * x


@ct.electron(
    retries=2, timeout=5.0, files=[ct.fs.FileTransfer("a.txt", "b.txt")], deps_pip=["numpy"]
)
def configured(x, files):
    return x


@ct.electron
def gather(*args, **kwargs):
    return args, kwargs


@ct.lattice
def workflow(a):
    val_1 = identity(x=a)
    return square(x=val_1)


@ct.lattice
def many(n):
    return [square(1) for _ in range(n)]


@ct.lattice
def indexed(a):
    return square(a)[0] + 1


@ct.lattice
def constant():
    return 42


# blobs


def test_digest_is_sha256_of_the_bytes():
    assert blobs.digest(b"") == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    assert blobs.is_digest(blobs.digest(b"x"))
    assert not blobs.is_digest("E3B0" + "0" * 60)
    assert not blobs.is_digest("abc")


def test_dumps_loads_round_trip_and_same_value_same_digest():
    value = {"a": [1, 2.5, None], "b": (3, "x")}
    assert blobs.loads(blobs.dumps(value)) == value
    assert blobs.digest(blobs.dumps(value)) == blobs.digest(blobs.dumps(copy.deepcopy(value)))


def test_short_repr_is_bounded_and_survives_a_broken_repr():
    class Broken:
        def __repr__(self):
            raise RuntimeError("nope")

    assert len(blobs.short_repr("x" * 10_000)) <= blobs.REPR_LIMIT
    assert "Broken" in blobs.short_repr(Broken())


def test_long_bytes_show_their_head_and_length():
    """A large bytes output's repr is its first BYTES_HEAD bytes and its length, not a
    full REPR_LIMIT of escapes; short ones are shown whole, in a list as alone."""
    data = bytes(range(256)) * 1000
    text = blobs.short_repr(data)
    assert text == repr(data[: blobs.BYTES_HEAD])[:-1] + "...' (256000 bytes)"
    head = repr(data[: blobs.BYTES_HEAD])
    assert blobs.short_repr(bytearray(data)) == f"bytearray({head}...) (256000 bytes)"
    assert blobs.short_repr(b"\x00" * 200) == repr(b"\x00" * 200)
    assert (
        blobs.short_repr([b"ab", b"\x00" * 2000])
        == "[b'ab', " + blobs.short_repr(b"\x00" * 2000) + "]"
    )


# bundles


def test_bundle_round_trip():
    items = blob_set(1, "two", [3], b"")
    body = bundle.pack({"kind": "dispatch", "n": 3}, items)
    header, unpacked = bundle.unpack(body)
    assert unpacked == items
    assert list(unpacked) == list(items)
    assert header["kind"] == "dispatch" and header["n"] == 3
    assert header["blobs"] == [[d, len(b)] for d, b in items.items()]


def test_bundle_round_trip_without_blobs():
    header, unpacked = bundle.unpack(bundle.pack({"x": 1}, {}))
    assert header == {"x": 1, "blobs": []}
    assert unpacked == {}


def test_pack_does_not_change_the_callers_header():
    header = {"x": 1}
    bundle.pack(header, blob_set(1))
    assert header == {"x": 1}


@pytest.mark.parametrize("body", [b"", b"CVB", b"XXXX" + bytes(8) + b"{}", b"CVB1\x00\x00"])
def test_unpack_rejects_a_body_that_is_not_a_bundle(body):
    with pytest.raises(BadRequestError, match="not a covalent bundle"):
        bundle.unpack(body)


def test_unpack_rejects_a_header_longer_than_the_body():
    body = bundle.pack({"x": 1}, {})
    with pytest.raises(BadRequestError, match="header is longer"):
        bundle.unpack(body[:-1])


def test_unpack_rejects_a_truncated_blob():
    body = bundle.pack({}, blob_set("some value", 12345))
    with pytest.raises(BadRequestError, match="cut short"):
        bundle.unpack(body[:-1])


def test_unpack_rejects_trailing_bytes():
    body = bundle.pack({}, blob_set(1))
    with pytest.raises(BadRequestError, match="after its last blob"):
        bundle.unpack(body + b"\x00")


def test_unpack_rejects_a_digest_mismatch():
    data = blobs.dumps("original")
    body = bundle.pack({}, {blobs.digest(blobs.dumps("other")): data})
    with pytest.raises(BadRequestError, match="does not match its digest"):
        bundle.unpack(body)


def test_unpack_rejects_a_name_that_is_not_a_digest_unless_unverified():
    body = bundle.pack({}, {"not-a-digest": b"abc"})
    with pytest.raises(BadRequestError, match="does not match its digest"):
        bundle.unpack(body)
    assert bundle.unpack(body, verify=False)[1] == {"not-a-digest": b"abc"}


def test_unpack_rejects_a_flipped_byte_in_a_blob():
    items = blob_set("payload")
    body = bytearray(bundle.pack({}, items))
    body[-1] ^= 0xFF
    with pytest.raises(BadRequestError, match="digest"):
        bundle.unpack(bytes(body))


@pytest.mark.parametrize(
    "header",
    [b"{not json", b'{"blobs": [[1]]}', b'{"blobs": 3}', b'{"blobs": [["a", "b"]]}', b"\xff\xfe"],
)
def test_unpack_rejects_an_invalid_header(header):
    with pytest.raises(BadRequestError, match="header is not valid"):
        bundle.unpack(pack_raw(header))


@pytest.mark.parametrize("header", [b"[]", b"null", b"3"])
def test_unpack_rejects_a_header_that_is_not_an_object(header):
    with pytest.raises(BadRequestError):
        bundle.unpack(pack_raw(header))


# manifest: from_graph


def test_seed_manifest_nodes_and_edges():
    man, _ = manifest_of(workflow, a=2)
    assert [(n["id"], n["name"], n["kind"]) for n in man["nodes"]] == [
        (0, "identity", "electron"),
        (1, ":parameter:2", "parameter"),
        (2, "square", "electron"),
    ]
    assert man["edges"] == [[1, 0, None, "x"], [0, 2, None, "x"]]
    assert man["result"] == {"node": 2}
    assert man["lattice"]["name"] == "workflow"
    assert man["format"] == manifest.FORMAT


def test_parameter_values_are_pickled_blobs():
    man, items = manifest_of(workflow, a={"k": [1, 2]})
    param = man["nodes"][1]
    assert blobs.loads(items[param["value"]]) == {"k": [1, 2]}
    assert param["value_repr"] == "{'k': [1, 2]}"
    assert "function" not in param


def test_inputs_are_pickled_blobs_with_reprs():
    graph = workflow.build_graph(2)
    man, items = manifest.from_graph(graph, (2,), {}, workflow)
    assert [blobs.loads(items[d]) for d in man["inputs"]["args"]] == [2]
    assert man["inputs"]["kwargs"] == {}
    assert man["inputs"]["args"][0] == man["nodes"][1]["value"]  # stored once, shared
    assert man["inputs"]["args_repr"] == ["2"]
    assert man["inputs"]["kwargs_repr"] == {}


def test_functions_are_blobs_that_load_back():
    man, items = manifest_of(workflow, a=2)
    identity_fn = blobs.loads(items[man["nodes"][0]["function"]])
    assert identity_fn(7) == 7
    assert blobs.loads(items[man["nodes"][2]["function"]])(7) == 49
    sources = man["functions"]
    assert sources[man["nodes"][2]["function"]]["name"] == "square"
    assert "return x * x" in sources[man["nodes"][2]["function"]]["source"]


def test_executor_specs():
    man, _ = manifest_of(workflow, a=2)
    identity_spec, square_spec = man["nodes"][0]["executor"], man["nodes"][2]["executor"]
    assert identity_spec["name"] == "local"
    assert identity_spec["attributes"] == executor1.to_dict()["attributes"]
    assert identity_spec["class"] == "covalent.executor.executor_plugins.local:LocalExecutor"
    assert square_spec == {"name": "local", "attributes": {}}


def test_operation_nodes_run_locally_even_with_a_lattice_executor():
    lattice = ct.lattice(indexed.workflow_function, executor="dask")
    man, _ = manifest_of(lattice, 3)
    specs = {n["name"]: n["executor"]["name"] for n in man["nodes"] if n["kind"] != "parameter"}
    assert specs == {"square": "local", ":getitem:": "local", ":add:": "local"}


def test_a_bad_executor_object_is_a_workflow_error():
    @ct.lattice
    def bad():
        return ct.electron(lambda: 1, executor=object())()

    with pytest.raises(WorkflowError, match="executor"):
        manifest_of(bad)


def test_metadata_json_and_pickled_extras():
    @ct.lattice
    def uses_configured():
        return configured(1)

    man, items = manifest_of(uses_configured)
    metadata = node_entry(man, "configured")["metadata"]
    assert metadata["retries"] == 2 and metadata["timeout"] == 5.0
    assert "cache" not in metadata
    extras = blobs.loads(items[metadata["extras"]])
    assert [t.paths for t in extras["files"]] == [("a.txt", "b.txt")]
    assert isinstance(extras["deps_pip"], ct.DepsPip) and extras["deps_pip"].packages == ["numpy"]
    assert node_entry(manifest_of(workflow, 1)[0], "square")["metadata"] == {}


@pytest.mark.parametrize(
    ("make", "words"),
    [
        (lambda: ct.DepsPip(packages=5), "DepsPip(packages) takes a text or a list of texts"),
        (lambda: ct.DepsBash(5), "DepsBash(commands) takes a text or a list of texts, got 5"),
    ],
)
def test_deps_of_the_wrong_type_are_workflow_errors(make, words):
    # they were a TypeError ('int' object is not iterable) from inside covalent
    with pytest.raises(WorkflowError, match=re.escape(words)):
        make()
    assert ct.DepsPip(packages=("a", "b")).packages == ["a", "b"]
    assert ct.DepsBash(["true", ""]).commands == ["true"]


def test_result_value_when_the_lattice_returns_a_plain_value():
    man, items = manifest_of(constant)
    assert "node" not in man["result"]
    assert blobs.loads(items[man["result"]["value"]]) == 42


def test_lattice_blob_gives_back_the_lattice():
    man, items = manifest_of(workflow, a=2)
    restored = blobs.loads(items[man["lattice"]["function"]])
    assert restored(3) == 9
    assert "val_1 = identity(x=a)" in man["lattice"]["source"]


def test_same_electron_ten_thousand_times_is_one_function_blob():
    man, items = manifest_of(many, 10_000)
    electrons = [n for n in man["nodes"] if n["kind"] == "electron"]
    assert len(electrons) == 10_000
    assert len({n["function"] for n in electrons}) == 1
    square_blobs = [d for d, data in items.items() if is_square(blobs.loads(data))]
    assert square_blobs == [electrons[0]["function"]]
    assert len(items) < 10
    assert len(man["functions"]) == 1


def test_every_listed_digest_is_a_blob():
    man, items = manifest_of(indexed, 4)
    digests = {n.get("function") or n.get("value") for n in man["nodes"]}
    digests |= {*man["inputs"]["args"], *man["inputs"]["kwargs"].values()}
    digests |= {man["lattice"]["function"]}
    assert digests <= set(items)
    assert all(blobs.digest(data) == name for name, data in items.items())


def test_an_unpicklable_argument_names_the_node():
    with pytest.raises(WorkflowError) as info:
        manifest_of(workflow, threading.Lock())
    message = str(info.value)
    assert "argument 'x' of electron identity(0)" in message
    assert "pickle" in message
    assert isinstance(info.value.__cause__, TypeError)


def test_an_unpicklable_lattice_input_names_the_lattice():
    @ct.lattice
    def ignores(lock):
        return square(2)

    with pytest.raises(WorkflowError, match="argument 0 of lattice 'ignores'"):
        manifest_of(ignores, threading.Lock())


def test_manifest_dumps_is_json():
    man, _ = manifest_of(workflow, a=2)
    assert json.loads(manifest.dumps(man)) == man


def test_summary_keeps_lattice_inputs_and_result():
    man, _ = manifest_of(workflow, a=2)
    summary = manifest.summary(man)
    assert summary["lattice"]["name"] == "workflow"
    assert summary["inputs"] == man["inputs"]
    assert summary["result"] == {"node": 2}
    assert "nodes" not in summary


# manifest: validate


@pytest.fixture
def good():
    man, items = manifest_of(indexed, 4)
    return man, items


def check(man, items):
    schema.validate(man, items.__contains__)


def test_validate_accepts_a_good_manifest(good):
    check(*good)


def test_validate_accepts_a_big_manifest():
    check(*manifest_of(many, 2000))


def test_validate_accepts_a_result_value():
    check(*manifest_of(constant))


@pytest.mark.parametrize(
    ("bad", "words"),
    [
        (None, "whole manifest.*an object"),
        ([], "whole manifest.*an object"),
        ({"format": 99}, "format is not valid: Input should be 1"),
        ({"nodes": []}, "format is missing"),
    ],
)
def test_validate_rejects_a_wrong_format(bad, words):
    with pytest.raises(InvalidFieldError, match=words):
        schema.validate(bad, lambda _: True)


def test_validate_rejects_an_unknown_kind(good):
    man, items = good
    man["nodes"][0]["kind"] = "wormhole"
    with pytest.raises(InvalidFieldError, match=r"nodes\[0\]\.kind is not valid.*'electron'"):
        check(man, items)


def test_validate_rejects_nodes_out_of_order(good):
    man, items = good
    man["nodes"][0], man["nodes"][1] = man["nodes"][1], man["nodes"][0]
    with pytest.raises(BadRequestError, match="Node 0 of the manifest must have id 0"):
        check(man, items)


def test_validate_rejects_a_node_without_a_name(good):
    man, items = good
    del man["nodes"][2]["name"]
    with pytest.raises(InvalidFieldError, match=r"nodes\[2\]\.name is missing"):
        check(man, items)


@pytest.mark.parametrize(
    "edge",
    [[0, 99, 0, None], [99, 0, 0, None], [-1, 0, 0, None], [0, 1, "0", None], [0, 1], "0->1"],
)
def test_validate_rejects_a_bad_edge(good, edge):
    man, items = good
    man["edges"].append(edge)
    with pytest.raises(BadRequestError, match=r"edge.*\[4\]|edge \[.*\[source, target"):
        check(man, items)


@pytest.mark.parametrize(("index", "name"), [(0, None), (5, None), (None, "x")])
def test_validate_rejects_clashing_or_missing_argument_slots(index, name):
    @ct.lattice
    def two_args():
        return gather(1, 2) if index is not None else gather(x=1, y=2)

    man, items = manifest_of(two_args)
    man["edges"][1][2:] = [index, name]  # the 2nd input now claims the 1st's slot, or slot 5
    with pytest.raises(BadRequestError, match="argument"):
        check(man, items)


def test_validate_rejects_a_cycle(good):
    man, items = good
    man["edges"].append([man["result"]["node"], 0, None, "loop"])
    with pytest.raises(BadRequestError, match="cycle"):
        check(man, items)


def test_validate_accepts_an_acyclic_graph_whose_ids_run_against_its_edges(good):
    """A traced lattice's edges go from lower ids to higher, which alone shows there is
    no cycle; a manifest numbered otherwise is sorted to find out, and accepted."""
    man, items = good
    last = len(man["nodes"]) - 1
    man["nodes"] = [{**node, "id": last - node["id"]} for node in reversed(man["nodes"])]
    man["edges"] = [[last - s, last - t, i, n] for s, t, i, n in man["edges"]]
    man["result"] = {"node": last - man["result"]["node"]}
    fed = {t for _, t, _, _ in man["edges"]}
    assert any(s > t for s, t, _, _ in man["edges"] if s in fed)  # not the traced order
    check(man, items)
    man["edges"].append([man["result"]["node"], last, None, "loop"])  # back to the start
    with pytest.raises(BadRequestError, match="cycle"):
        check(man, items)


def test_validate_rejects_a_self_loop(good):
    man, items = good
    man["edges"].append([0, 0, None, "self"])
    with pytest.raises(BadRequestError, match="cycle"):
        check(man, items)


def test_validate_rejects_a_missing_function_blob(good):
    man, items = good
    missing = man["nodes"][0]["function"]
    del items[missing]
    with pytest.raises(BadRequestError, match=f"node 0's function refers to blob {missing}"):
        check(man, items)


def test_validate_rejects_a_missing_parameter_blob(good):
    man, items = good
    param = next(n for n in man["nodes"] if n["kind"] == "parameter")
    with pytest.raises(BadRequestError, match="was not sent"):
        schema.validate(man, lambda d: d != param["value"])


def test_validate_rejects_a_missing_input_blob(good):
    man, items = good
    man["inputs"]["args"][0] = "f" * 64
    with pytest.raises(BadRequestError, match="lattice argument 0.*not sent"):
        check(man, items)


def test_validate_rejects_a_function_that_is_not_a_digest(good):
    man, items = good
    man["nodes"][0]["function"] = "square"
    with pytest.raises(InvalidFieldError, match=r"nodes\[0\]\.function is not a blob digest"):
        check(man, items)


def test_validate_rejects_a_missing_executor_name(good):
    man, items = good
    man["nodes"][0]["executor"] = {"attributes": {}}
    with pytest.raises(InvalidFieldError, match=r"nodes\[0\]\.executor\.name is missing"):
        check(man, items)


def test_validate_rejects_a_result_node_that_is_not_there(good):
    man, items = good
    man["result"] = {"node": len(man["nodes"])}
    with pytest.raises(BadRequestError, match="result names node"):
        check(man, items)


@pytest.mark.parametrize("lattice", [None, {}, {"name": 3}])
def test_validate_rejects_a_missing_lattice_name(good, lattice):
    man, items = good
    man["lattice"] = lattice
    with pytest.raises(InvalidFieldError, match="field lattice"):
        check(man, items)


class Unpickled:
    """A value whose unpickling makes the folder ``path``, whoever unpickles it (pickle,
    cloudpickle, ``blobs.loads``): a visible effect, found afterwards on disk."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)

    def __reduce__(self):
        return (os.mkdir, (self.path,))


@ct.lattice
def every_blob_kind(a, b=2):
    """A lattice whose manifest names a blob of every kind: functions, parameter values,
    lattice inputs (positional and keyword) and an electron's pickled settings."""
    return configured(square(a), b)


def loaded_manifest(folder: Path) -> tuple[dict, dict[str, bytes]]:
    """A real manifest whose every blob is replaced by one that makes its own folder under
    ``folder`` when unpickled; one node's executor class is such a blob too."""
    man, items = manifest_of(every_blob_kind, 1, b=3)
    text, loaded = json.dumps(man), {}
    for n, old in enumerate(items):
        data = blobs.dumps(Unpickled(folder / f"unpickled-{n}"))
        text = text.replace(old, blobs.digest(data))
        loaded[blobs.digest(data)] = data
    man = json.loads(text)
    data = blobs.dumps(Unpickled(folder / "unpickled-class"))
    node_entry(man, "square")["executor"]["class_blob"] = blobs.digest(data)
    loaded[blobs.digest(data)] = data
    return man, loaded


def unpickled(folder: Path) -> list[str]:
    """The blobs of :func:`loaded_manifest` that something unpickled."""
    return sorted(p.name for p in folder.glob("unpickled-*"))


def test_the_servers_checks_never_unpickle_a_blob(tmp_path: Path) -> None:
    man, loaded = loaded_manifest(tmp_path)
    assert len(loaded) >= 7  # functions, parameters, inputs, settings, executor class
    blobs.loads(loaded[node_entry(man, "square")["executor"]["class_blob"]])
    assert unpickled(tmp_path) == ["unpickled-class"]  # unpickling one would show
    (tmp_path / "unpickled-class").rmdir()

    checked, received = schema.read_bundle(bundle.pack(man, loaded))  # the server's door
    schema.check_structure(checked, received.__contains__)
    assert received == loaded
    assert unpickled(tmp_path) == []


def test_topological_order_puts_inputs_first():
    edges = [[2, 0, 0, None], [1, 2, 0, None], [1, 0, 1, None]]
    assert manifest.topological_order(3, edges) == [1, 2, 0]
    assert len(manifest.topological_order(2, [[0, 1, 0, None], [1, 0, 0, None]])) < 2


def test_dump_into_a_file_is_byte_for_byte_dumps() -> None:
    """The worker streams large outputs through ``blobs.dump``: their digests must be the
    ones ``dumps`` gives, so equal values share one blob whoever stored them."""
    import io
    import os

    values = [12, "abc", os.urandom(16) + bytes(600_000), {"a": [os.urandom(300_000), 1]}]
    for value in values:
        buffer = io.BytesIO()
        blobs.dump(value, buffer)
        assert buffer.getvalue() == blobs.dumps(value)


def test_share_alike_makes_equal_settings_one_object_and_keeps_different_ones_apart() -> None:
    nodes: list[dict[str, object]] = [
        {"id": 0, "kind": "parameter", "value": "v"},
        {"id": 1, "executor": {"name": "local"}, "metadata": {"retries": 1}, "function": "f"},
        {"id": 2, "executor": {"name": "local"}, "metadata": {"retries": 1}, "function": "f"},
        {"id": 3, "executor": {"name": "dask"}, "metadata": {"retries": 1}, "function": "g"},
        {"id": 4, "executor": {"name": "dask"}, "metadata": {"retries": 2}, "function": "g"},
    ]
    before = json.loads(json.dumps(nodes))
    manifest.share_alike(nodes)
    assert nodes == before  # the same values
    assert nodes[1]["executor"] is nodes[2]["executor"]
    assert nodes[1]["metadata"] is nodes[2]["metadata"] is nodes[3]["metadata"]
    assert nodes[3]["executor"] is nodes[4]["executor"]
    assert nodes[2]["executor"] is not nodes[3]["executor"]
    assert nodes[3]["metadata"] is not nodes[4]["metadata"]


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ({"x": 1}, {"x": True}),
        ({"x": 1}, {"x": 1.0}),
        ({"x": 0.0}, {"x": -0.0}),
        ({"x": 1, "y": 2}, {"y": 2, "x": 1}),
    ],
)
def test_share_alike_keeps_apart_equal_settings_written_differently(
    first: dict[str, object], second: dict[str, object]
) -> None:
    """``==`` holds for these, but each node must read back as it was sent."""
    nodes: list[dict[str, object]] = [{"id": 0, "metadata": first}, {"id": 1, "metadata": second}]
    manifest.share_alike(nodes)
    assert nodes[1]["metadata"] is second
    assert json.dumps(nodes[1]["metadata"]) == json.dumps(second)


def _collection_task(
    tmp_path: Path, items: int, as_file: bool, composites: dict[str, list[str]] | None = None
) -> tuple[Any, dict[str, bytes], bytes, Path]:
    """A task taking a collection of ``items`` small values, its composite inline or
    stored as a file; with the stored blobs, the composite and its file."""
    from covalent.executor.task import Task

    values = {blobs.digest(d): d for d in map(blobs.dumps, range(items))}
    whole = blobs.composite({"type": "list"}, list(values))
    name = blobs.digest(whole)
    path = tmp_path / "composite"
    path.write_bytes(whole)
    stored = values if as_file else {**values, name: whole}
    task = Task(
        "d", 1, "total", "fn", [name], {}, stored.__getitem__, composites=composites or {},
        blob_file=lambda n: str(path) if as_file and n == name else None,
    )  # fmt: skip
    return task, values, whole, path


@pytest.mark.parametrize("as_file", [False, True])
def test_a_tasks_value_blobs_stop_at_their_limit_before_a_composite_is_opened(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, as_file: bool
) -> None:
    """With a byte limit (the pool handing a task over on the event loop), a collection
    larger than it is not unpacked, inline or stored as a file: ``TooLarge`` as soon as
    the bytes pass it."""
    from covalent.executor.task import TooLarge

    task, items, whole, path = _collection_task(tmp_path, 5_000, as_file)
    name = task.args[0]
    opened: list[bytes] = []
    real = blobs.composite_items
    monkeypatch.setattr(blobs, "composite_items", lambda data: opened.append(data) or real(data))
    with pytest.raises(TooLarge, match="inputs of total are over 65536 bytes"):
        task.value_blobs(65_536)
    assert opened == []
    values, files = task.value_blobs(len(whole) + sum(map(len, items.values())))  # room
    assert values == (items if as_file else {**items, name: whole}) and opened == [whole]
    assert files == ({name: str(path)} if as_file else {})


@pytest.mark.parametrize("as_file", [False, True])
def test_a_composite_whose_items_are_at_hand_is_not_read_back(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, as_file: bool
) -> None:
    """The items of a collection the dispatcher assembled come with the task
    (``Task.composites``): the same blobs, without parsing the composite or reading its
    file, and within a budget, as before."""
    from covalent.executor.task import Task, TooLarge

    plain, items, _, _ = _collection_task(tmp_path, 50, as_file)
    expected = plain.value_blobs()
    at_hand, _, _, _ = _collection_task(tmp_path, 50, as_file, {plain.args[0]: list(items)})
    opened: list[object] = []
    monkeypatch.setattr(blobs, "composite_items", lambda data: opened.append(data) or [])
    monkeypatch.setattr(Task, "_composite_items", lambda *a: opened.append(a) or [])
    assert at_hand.value_blobs() == expected
    with pytest.raises(TooLarge):  # with a budget, its items' names alone are over it
        at_hand.value_blobs(1_000)
    assert opened == []


def test_a_tasks_value_blobs_are_looked_up_once_each_composites_opened(tmp_path: Path) -> None:
    """``Task.value_blobs``: the same blobs as ``value_names`` (nested composites
    opened, a large one by its file), each looked up once: memory first, then the file
    table, then the store; the output kept by the worker of a chain is not looked up."""
    from covalent.executor.payload import OUTPUT_BEFORE
    from covalent.executor.task import Task

    small = {blobs.digest(d): d for d in (blobs.dumps(1), blobs.dumps(2), blobs.dumps(3))}
    a, b, c = small
    inner = blobs.composite({"type": "list"}, [a, b])
    outer = blobs.composite({"type": "tuple"}, [blobs.digest(inner), c, a])
    stored = {**small, blobs.digest(inner): inner, blobs.digest(outer): outer}
    large, path = "f" * 64, tmp_path / "large"
    path.write_bytes(blobs.dumps(b"x" * 1000))
    asked: list[tuple[str, str]] = []

    def cached(name: str) -> bytes | None:
        asked.append(("cached", name))
        return stored[name] if name in (a, c) else None

    def blob_file(name: str) -> str | None:
        asked.append(("file", name))
        return str(path) if name == large else None

    def load_blob(name: str) -> bytes:
        asked.append(("load", name))
        return stored[name]

    task = Task(
        "d", 7, "total", "fn", [blobs.digest(outer), OUTPUT_BEFORE], {"big": large},
        load_blob, blob_file=blob_file, cached_blob=cached, after=6,
    )  # fmt: skip
    values, files = task.value_blobs()
    assert values == stored and files == {large: str(path)}
    assert set(values) | set(files) == set(task.value_names())
    asked.clear()
    task.value_blobs()
    assert OUTPUT_BEFORE not in [name for _, name in asked]
    assert ("load", a) not in asked and ("file", c) not in asked  # in memory: no query
    assert sorted(n for w, n in asked if w == "cached") == sorted({*stored, large})  # once
