"""The client's side of a manifest: settings worked out once per electron, fast packing.

:func:`manifest.from_graph` shares one executor spec, metadata dict and fingerprint
among the nodes whose function, executor and metadata are the same objects, and
:func:`manifest.pack` writes a plain header with msgspec. Both must give what the plain
paths give: a manifest equal node by node, a bundle equal in meaning.
"""

import copy
import functools
import importlib
import inspect
import json
import linecache
import math

import pytest

import covalent as ct
from covalent._client import dispatch
from covalent._errors import ExecutorError
from covalent._wire import blobs, bundle, manifest

executor = ct.executor.LocalExecutor(retries=2)


def inc(x):
    return x + 1


inc_plain = ct.electron(inc)
inc_retried = ct.electron(inc, retries=3)
inc_deps = ct.electron(inc, deps_pip=["numpy"], executor=executor)
inc_cached = ct.electron(inc, cache=True, timeout=5.0)


@ct.electron
def total(values, scale=1):
    return sum(values) * scale


@ct.lattice(executor="local", retries=1)
def mixed(n):
    outs = [inc_plain(i) for i in range(n)]
    outs += [inc_retried(i) for i in range(n)]
    outs += [inc_deps(i) for i in range(n)]
    outs += [inc_cached(i) for i in range(n)]
    return total(outs, scale=outs[0][0])


def unshared(graph):
    """``graph`` with each node's metadata and executor its own (equal) copy."""
    copied = copy.copy(graph)
    copied.nodes = [copy.copy(node) for node in graph.nodes]
    for node in copied.nodes:
        node.metadata = dict(node.metadata)
        if not isinstance(node.executor, (str, type(None))):
            node.executor = copy.copy(node.executor)
    return copied


def as_json(value):
    return json.dumps(value, sort_keys=True)


# shared settings


def test_calls_of_one_electron_share_their_metadata_with_the_lattices_settings():
    graph = mixed.build_graph(3)
    retried = [n for n in graph.nodes if n.kind == "electron" and n.metadata.get("retries") == 3]
    assert len(retried) == 3
    assert all(n.metadata is retried[0].metadata for n in retried)
    groups: dict[int, list] = {}
    for node in graph.nodes:
        if node.kind == "electron":
            groups.setdefault(id(node.metadata), []).append(node)
    assert sorted(map(len, groups.values())) == [1, 3, 3, 3, 3]  # total, and each inc
    inherited = [n for n in graph.nodes if n.kind == "electron" and n.metadata["retries"] == 1]
    assert len(inherited) == 10  # all but inc_retried take the lattice's retries
    assert {n.executor for n in inherited} == {"local", executor}


def test_shared_settings_give_the_manifest_of_per_node_settings():
    graph = mixed.build_graph(4)
    shared, shared_blobs = manifest.from_graph(graph, (4,), {}, mixed)
    separate, separate_blobs = manifest.from_graph(unshared(graph), (4,), {}, mixed)
    assert as_json(shared) == as_json(separate)
    assert shared_blobs.keys() == separate_blobs.keys()


def test_one_function_with_other_settings_keeps_each_its_own():
    man, items = manifest.from_graph(mixed.build_graph(2), (2,), {}, mixed)
    inc_nodes = [n for n in man["nodes"] if n["name"] == "inc"]
    by_settings = {as_json([n["metadata"], n["executor"], n["fingerprint"]]) for n in inc_nodes}
    assert len(by_settings) == 4
    assert len({n["function"] for n in inc_nodes}) == 1
    deps = [n for n in inc_nodes if "extras" in n["metadata"]]
    assert blobs.loads(items[deps[0]["metadata"]["extras"]])["deps_pip"].packages == ["numpy"]
    assert deps[0]["executor"]["attributes"]["retries"] == 2
    assert deps[0]["fingerprint"] != inc_nodes[0]["fingerprint"]  # its deps count
    cached = [n for n in inc_nodes if n["metadata"].get("cache")]
    assert cached[0]["metadata"] == {"retries": 1, "timeout": 5.0, "cache": True}


# packing


def unpacked(body):
    header, items = bundle.unpack(body)
    return as_json(header), items


def test_pack_means_what_bundle_pack_means():
    man, items = manifest.from_graph(mixed.build_graph(5), (5,), {}, mixed)
    assert manifest._plain_header(bundle.with_blob_list(man, items))
    assert unpacked(manifest.pack(man, items)) == unpacked(bundle.pack(man, items))


def test_a_manifest_with_a_dict_argument_and_kwargs_packs_the_same():
    @ct.lattice
    def keyed(data, *, factor=2.5):
        return total([inc_plain(v) for v in data.values()], scale=factor)

    data = {"a": 1, "b": 2}
    graph = keyed.build_graph(data, factor=0.5)
    man, items = manifest.from_graph(graph, (data,), {"factor": 0.5}, keyed)
    assert unpacked(manifest.pack(man, items)) == unpacked(bundle.pack(man, items))


def nan_timeout(man):
    man["nodes"][0]["metadata"] = {"timeout": math.nan}


def set_in_lattice(man):
    man["lattice"]["tags"] = {"a"}


def dict_under_function(man):
    man["nodes"][0]["function"] = {"x": 1}


def float_key(man):
    man["nodes"][0][1e16] = 1


def infinite_attribute(man):
    man["nodes"][0]["executor"] = {"name": "local", "attributes": {"x": [math.inf]}}


def float_edge(man):
    man["edges"][0][2] = 0.5


@pytest.mark.parametrize(
    "spoil",
    [nan_timeout, set_in_lattice, dict_under_function, float_key, infinite_attribute, float_edge],
)
def test_a_header_that_is_not_plain_json_is_written_by_json(spoil):
    man, items = manifest.from_graph(mixed.build_graph(3), (3,), {}, mixed)
    spoil(man)
    assert not manifest._plain_header(bundle.with_blob_list(man, items))
    try:
        expected = bundle.pack(man, items)
    except TypeError as e:  # json refuses a set: so does pack, with json's error
        with pytest.raises(TypeError, match=str(e)):
            manifest.pack(man, items)
        return
    assert manifest.pack(man, items) == expected  # byte for byte: json wrote both


def test_a_string_msgspec_cannot_write_is_written_by_json():
    man, items = manifest.from_graph(mixed.build_graph(1), (1,), {}, mixed)
    man["lattice"]["doc"] = "half a surrogate pair: \ud800"  # json escapes it; not UTF-8
    assert manifest._plain_header(bundle.with_blob_list(man, items))
    assert manifest.pack(man, items) == bundle.pack(man, items)


def test_a_cyclic_header_raises_as_json_does():
    man, items = manifest.from_graph(mixed.build_graph(1), (1,), {}, mixed)
    loop: list = []
    loop.append(loop)
    man["lattice"]["loop"] = loop
    with pytest.raises(ValueError, match="Circular reference"):
        manifest.pack(man, items)


# the client's check of executors


@ct.electron(executor="no_such_executor")
def elsewhere(x):
    return x


@ct.lattice
def partly_elsewhere(n):
    return total([inc_plain(1), *[elsewhere(i) for i in range(n)]])


def test_an_executor_that_is_not_installed_is_named_at_its_first_node():
    man, _ = manifest.from_graph(partly_elsewhere.build_graph(3), (3,), {}, partly_elsewhere)
    first = next(n for n in man["nodes"] if n["name"] == "elsewhere")
    with pytest.raises(ExecutorError, match=rf"Electron elsewhere\({first['id']}\)"):
        dispatch._check_executors(man, "partly_elsewhere")


def _wrapping(function):
    @functools.wraps(function)
    def wrapper(*args):
        return function(*args)

    return wrapper


class _Callable:
    def __call__(self, x):
        return x


@pytest.mark.parametrize(
    "function",
    [inc, mixed, _wrapping(_wrapping(inc)), len, _Callable(), lambda x: x],
    ids=["electron", "lattice", "wrapped twice", "builtin", "callable object", "lambda"],
)
def test_source_is_what_inspect_reads(function):
    """The source listed in the manifest, read once per code object, is the text inspect
    finds for the function (its workflow function for a lattice), or "" where it finds
    none."""
    try:
        expected = inspect.getsource(getattr(function, "workflow_function", function))
    except (OSError, TypeError):
        expected = ""
    assert manifest._source(function) == expected
    assert manifest._source(function) == expected  # the second read comes from the cache
    if callable(getattr(function, "workflow_function", None)) or function is inc:
        assert "def " in expected


def test_a_function_defined_again_lists_its_new_source(tmp_path, monkeypatch):
    module = tmp_path / "redefined.py"
    module.write_text("def f(x):\n    return x\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    first = importlib.import_module("redefined")
    assert manifest._source(first.f) == "def f(x):\n    return x\n"
    module.write_text("def f(x):\n    return x + 1\n")
    linecache.checkcache(str(module))
    second = importlib.reload(first)
    assert manifest._source(second.f) == "def f(x):\n    return x + 1\n"
