"""The schema at the server's door (covalent/_wire/schema.py), without a server."""

from __future__ import annotations

import json
import zlib
from typing import Any

import pytest

import covalent as ct
from covalent._dispatcher import submission
from covalent._errors import BadRequestError, InvalidFieldError
from covalent._store import manifests
from covalent._wire import bundle, schema
from covalent._wire import manifest as manifestmod


@ct.electron
def echo(x):
    return x


@ct.lattice
def flow(a):
    return echo({"k": echo(a)})


def good() -> tuple[dict[str, Any], dict[str, bytes]]:
    return manifestmod.from_graph(flow.build_graph(1), (1,), {}, flow)


@pytest.fixture(autouse=True, params=["in one pass", "in pieces"])
def parsing(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Every test here runs twice: a header checked by pydantic in one pass, and one
    checked as a large header is (``schema._parse_large``), in pieces of two items, so
    that a problem's place in a later piece is named as in one pass."""
    if request.param == "in pieces":
        monkeypatch.setattr(schema, "LARGE_HEADER", 0)
        monkeypatch.setattr(schema, "CHUNK", 2)
    return str(request.param)


def framed(header: bytes) -> bytes:
    return bundle.MAGIC + len(header).to_bytes(8, "big") + header


def test_a_good_bundle_reads_back_as_plain_dicts() -> None:
    manifest, blobs = good()
    checked, got = schema.read_bundle(bundle.pack(manifest, blobs))
    assert got == blobs
    assert "blobs" not in checked
    assert checked["nodes"] == manifest["nodes"]
    assert [list(e) for e in checked["edges"]] == manifest["edges"]
    schema.check_structure(checked, got.__contains__)


@pytest.mark.parametrize("objects", [False, True])
def test_a_header_nested_100_000_deep_is_not_json_here(objects: bool) -> None:
    deep = (
        b'{"a":' * 100_000 + b"1" + b"}" * 100_000 if objects else b"[" * 100_000 + b"]" * 100_000
    )
    with pytest.raises(BadRequestError, match="not valid JSON: recursion limit"):
        schema.read_bundle(framed(deep))


@pytest.mark.parametrize("where", ["nodes", "edges", "lattice"])
def test_a_setting_nested_too_deep_is_not_json_wherever_it_is(where: str) -> None:
    """In pieces, the long lists are parsed a piece at a time: the nesting limit and its
    error are still those of the whole header."""
    manifest, blobs = good()
    text = bundle.pack(manifest, blobs)
    head, offset = bundle.split(text)
    deep = b'{"a":' * 1000 + b"1" + b"}" * 1000
    marker = {"nodes": b'"metadata":{}', "edges": b"null]", "lattice": b'"doc":'}[where]
    replacement = {
        "nodes": b'"metadata":' + deep,
        "edges": b"null," + deep + b"]",
        "lattice": b'"deep":' + deep + b',"doc":',
    }[where]
    assert marker in bytes(head)
    header = bytes(head).replace(marker, replacement, 1)
    with pytest.raises(BadRequestError, match="not valid JSON: recursion limit"):
        schema.read_bundle(framed(header) + text[offset:])


def test_a_node_nested_near_msgspecs_own_limit_is_not_json_either() -> None:
    """msgspec's decoder of a piece of nodes stops at its own depth, with a
    RecursionError where the split above it did not: the piece goes pydantic's way,
    which refuses the header (400), for every depth around that limit."""
    manifest, blobs = good()
    head, _ = bundle.split(bundle.pack(manifest, blobs))
    for depth in range(900, 1010):
        deep = b"[" * depth + b"1" + b"]" * depth
        header = bytes(head).replace(b'"metadata":{}', b'"metadata":' + deep, 1)
        with pytest.raises(BadRequestError, match="not valid JSON: recursion limit"):
            schema.read_bundle(framed(header))


def test_nodes_read_in_pieces_share_their_equal_settings_and_strings(parsing: str) -> None:
    @ct.lattice
    def wide(n):
        return [echo(i) for i in range(n)]

    manifest, blobs = manifestmod.from_graph(wide.build_graph(6), (6,), {}, wide)
    checked, _ = schema.read_bundle(bundle.pack(manifest, blobs))
    echoes = [n for n in checked["nodes"] if n["name"] == "echo"]
    assert len(echoes) == 6
    if parsing == "in pieces":  # pieces of two nodes: shared across pieces too
        for field in ("name", "fingerprint", "function", "executor", "metadata"):
            assert all(n[field] is echoes[0][field] for n in echoes), field


def test_a_blob_size_of_1e999_names_the_field() -> None:
    header = b'{"format":1,"blobs":[["' + b"0" * 64 + b'",1e999]]}'
    with pytest.raises(InvalidFieldError) as info:
        schema.read_bundle(framed(header))
    assert info.value.field == "blobs[0][1]"
    assert info.value.http_status == 422


@pytest.mark.parametrize("name", ["0" * 64 + "\n", "0" * 63, "A" * 64])
def test_a_blob_name_that_is_not_a_digest_is_refused_naming_it(name: str) -> None:
    """In pieces too (msgspec's decoder of the long lists: a final newline would pass
    Python's ``$``)."""
    header = b'{"format":1,"blobs":[["' + b"0" * 64 + b'",1],' + json.dumps([name, 1]).encode()
    with pytest.raises(BadRequestError, match=r"blobs\[1\]\[0\]"):
        schema.read_bundle(framed(header + b"]}"))


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (lambda m: m["nodes"][0].__setitem__("metadata", []), "nodes[0].metadata"),
        (lambda m: m["nodes"][0].__setitem__("metadata", "x"), "nodes[0].metadata"),
        (lambda m: m.__setitem__("inputs", []), "inputs"),
        (lambda m: m.__setitem__("reuse", []), "reuse"),
        (
            lambda m: m["nodes"][3]["metadata"].__setitem__("collection", "not-a-shape"),
            "nodes[3].metadata.collection",
        ),
        (
            lambda m: m["nodes"][0]["metadata"].__setitem__("timeout", -1),
            "nodes[0].metadata.timeout",
        ),
        (lambda m: m["nodes"][0]["executor"].__setitem__("class", 5), "nodes[0].executor.class"),
        (lambda m: m["edges"].append([0, 2**64, 0, None]), "edges[3][1]"),
        (lambda m: m["edges"].append({"source": 0}), "edges[3]"),
        (lambda m: m.__setitem__("nodes", "all of them"), "nodes"),
        (lambda m: m["nodes"][3].__setitem__("kind", "lepton"), "nodes[3].kind"),
        (lambda m: m["nodes"][3].__setitem__("fingerprint", "A" * 64), "nodes[3].fingerprint"),
        (lambda m: m["nodes"][2].__setitem__("function", "0" * 63 + "\n"), "nodes[2].function"),
        (lambda m: m["nodes"][1].__setitem__("value", "é" * 64), "nodes[1].value"),
    ],
)
def test_a_field_of_the_wrong_type_or_bounds_is_named(change: Any, field: str) -> None:
    manifest, blobs = good()
    change(manifest)
    with pytest.raises(InvalidFieldError) as info:
        schema.read_bundle(bundle.pack(manifest, blobs))
    assert info.value.field == field
    assert field in str(info.value)


def test_unknown_keys_are_kept() -> None:
    manifest, blobs = good()
    manifest["added_later"] = {"x": [1]}
    manifest["nodes"][0]["executor"]["attributes"]["a_setting"] = "kept"
    manifest["nodes"][1]["added_later"] = [2]  # msgspec's nodes leave it to the TypeAdapter
    checked, _ = schema.read_bundle(bundle.pack(manifest, blobs))
    assert checked["added_later"] == {"x": [1]}
    assert checked["nodes"][0]["executor"]["attributes"]["a_setting"] == "kept"
    assert checked["nodes"][1]["added_later"] == [2]
    assert checked["nodes"] == [dict(n) for n in checked["nodes"]]  # plain dicts, pieces alike
    assert [list(n) for n in checked["nodes"]] == [
        list(n) for n in schema.MANIFEST.validate_json(json.dumps(manifest))["nodes"]
    ]  # the keys in the schema's order, as in one pass


@pytest.mark.parametrize("depth", [150, 195, 196, 197, 200])
def test_a_setting_near_the_nesting_limit_reads_as_in_one_pass(depth: int) -> None:
    """A setting is checked alone in msgspec's pieces of nodes, where it sits a few
    levels higher than in the header: one nested close to the limit is left to the
    TypeAdapter, which counts the levels as the whole header has them."""
    manifest, blobs = good()
    nested: Any = 1
    for _ in range(depth):
        nested = {"a": nested}
    manifest["nodes"][0]["executor"]["attributes"]["deep"] = nested
    body = bundle.pack(manifest, blobs)
    head, _ = bundle.split(body)
    try:
        schema.MANIFEST.validate_json(bytes(head), strict=True)
        refused = False
    except schema.ValidationError:
        refused = True
    if refused:
        with pytest.raises(BadRequestError, match="recursion limit"):
            schema.read_bundle(body)
    else:
        checked, _ = schema.read_bundle(body)
        assert checked["nodes"][0]["executor"]["attributes"]["deep"] == nested


def test_a_nan_in_a_free_form_setting_is_refused_when_stored() -> None:
    manifest, _ = good()
    manifest["nodes"][0]["executor"]["attributes"]["x"] = float("nan")
    with pytest.raises(InvalidFieldError) as info:
        schema.dumps(manifest)
    assert info.value.field == "nodes[0].executor.attributes.x"


@pytest.mark.parametrize("bad", [float("inf"), float("-inf")])
def test_an_infinity_in_a_free_form_setting_is_refused_when_stored(bad: float) -> None:
    manifest, _ = good()
    node = manifest["nodes"][2]  # its metadata may be shared with other nodes: replaced
    node["metadata"] = {**node["metadata"], "settings": {"deep": [1.5, bad]}}
    with pytest.raises(InvalidFieldError) as info:
        schema.dumps(manifest)
    assert info.value.field == "nodes[2].metadata.settings.deep[1]"


@pytest.mark.parametrize(
    "text", ["NaN", "-Infinity", "an é and \u2028", "a lone \ud800 surrogate", 'say "NaN"']
)
def test_the_stored_manifest_reads_back_as_it_was(text: str) -> None:
    """Words that look like non-finite numbers, inside strings, are kept; so are
    characters UTF-8 cannot hold alone (the slower encoder escapes them)."""
    manifest, _ = good()
    manifest["nodes"][0]["executor"]["attributes"]["note"] = text
    manifest["nodes"][0]["name"] = text
    manifest["nodes"][0]["executor"]["attributes"]["big"] = [10**30, 1e-05, 1e22, -0.0]
    stored = schema.dumps(manifest)
    assert json.loads(stored) == json.loads(json.dumps(manifest))


@pytest.mark.parametrize(
    "text", ["plain", "NaN", "an é and \u2028", "a lone \ud800 surrogate", 'say "NaN"']
)
@pytest.mark.parametrize("copies", [1, 40])  # under and over manifests.PACK_FROM
def test_the_row_keeps_the_manifest_as_dumps_writes_it(text: str, copies: int) -> None:
    """Written and compressed in pieces (two nodes or edges at a time in pieces, as
    CHUNK is then), the row's manifest is the text of dumps, packed as it is packed."""
    manifest, _ = good()
    manifest["nodes"] = [dict(n) for _ in range(copies) for n in manifest["nodes"]]
    manifest["nodes"][0]["executor"] = {"name": "local", "attributes": {"note": text}}
    manifest["nodes"][-1]["name"] = text
    stored, text = submission._stored_manifest(manifest), schema.dumps(manifest)
    assert manifests.unpacked(stored) == text
    assert (stored[:1] == b"{") == (len(text) < manifests.PACK_FROM)  # plain when small
    assert manifests.packed(stored) == stored  # stored already: kept as it is


def test_a_manifest_is_compressed_from_the_dictionary_and_older_rows_still_read() -> None:
    """A stored manifest names the preset dictionary (RFC 1950's FDICT and its
    Adler-32) and is smaller for it; streams stored before without one read as they
    were; one cut short, or naming a dictionary not known here, is refused."""
    manifest, _ = good()
    text = schema.dumps(manifest)
    stored = manifests.packed(text)
    assert stored[1] & 0x20 and stored[2:6] == zlib.adler32(manifests.DICTIONARY).to_bytes(4, "big")
    assert len(stored) < len(zlib.compress(text, manifests.LEVEL))
    assert manifests.unpacked(stored) == text
    assert manifests.unpacked(zlib.compress(text, 6)) == text  # stored by 0004's covalent
    for damaged, why in (
        (stored[:-4], "cut short"),
        (stored + b"\0", "bytes after its end"),
        (stored[:2] + b"\1\2\3\4" + stored[6:], "dictionary not known here"),
    ):
        with pytest.raises(zlib.error, match=why):
            manifests.unpacked(damaged)


def test_a_nan_is_refused_when_the_row_is_written_in_pieces() -> None:
    manifest, _ = good()
    manifest["nodes"][2]["metadata"] = {"settings": [float("nan")]}
    with pytest.raises(InvalidFieldError) as info:
        submission._stored_manifest(manifest)
    assert info.value.field == "nodes[2].metadata.settings[0]"


def test_a_dict_collection_needs_as_many_keys_as_items() -> None:
    manifest, blobs = good()
    shape = manifest["nodes"][3]["metadata"]["collection"]
    assert shape["type"] == "dict"
    shape["keys"] = ["k", "extra"]
    with pytest.raises(BadRequestError, match="dict of 1 items whose shape names 2 keys"):
        schema.validate(manifest, blobs.__contains__)


@pytest.mark.parametrize("node", [0, 1])  # an electron's, a parameter's
def test_a_dict_shape_is_checked_on_a_node_of_any_kind(node: int) -> None:
    manifest, blobs = good()
    manifest["nodes"][node]["metadata"] = {"collection": {"type": "dict"}}
    with pytest.raises(BadRequestError, match=f"Node {node} .* dict of . items whose shape"):
        schema.validate(manifest, blobs.__contains__)


def test_an_executor_class_blob_must_be_sent() -> None:
    manifest, blobs = good()
    manifest["nodes"][0]["executor"]["class_blob"] = "a" * 64
    with pytest.raises(BadRequestError, match="executor class refers to blob a{64}"):
        schema.validate(manifest, blobs.__contains__)


def test_the_json_schema_describes_the_manifest() -> None:
    document = schema.json_schema()
    assert set(document["required"]) >= {"format", "lattice", "inputs", "nodes", "edges"}
    json.dumps(document)  # plain JSON, for other clients


def received(body: bytes, size: int) -> bundle.Receiver:
    """``body`` through a bundle.Receiver in chunks of ``size`` bytes, as a request's."""
    receiver = bundle.Receiver()
    for start in range(0, len(body), size):
        receiver.feed(body[start : start + size])
    return receiver


@pytest.mark.parametrize("size", [1, 5, 12, 13, 1 << 20])
def test_a_bundle_received_in_chunks_reads_as_one_body_does(size: int) -> None:
    manifest, blobs = good()
    body = bundle.pack(manifest, blobs)
    head, offset = bundle.split(body)
    receiver = received(body, size)
    assert (receiver.size, receiver.header_size()) == (len(body), len(head))
    assert receiver.blobs == body[offset:]
    checked, got = schema.read_received(receiver)
    assert (checked, got) == schema.read_bundle(body)
    assert receiver.take_header() == b""  # handed over, and no longer held


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        (b"", "does not start with CVB1"),
        (b"CVB1\0\0", "does not start with CVB1"),
        (b"CVB2" + (2).to_bytes(8, "big") + b"{}", "does not start with CVB1"),
        (bundle.MAGIC + (10).to_bytes(8, "big") + b"{}", "header is longer than the body"),
    ],
)
def test_a_received_body_not_framed_as_a_bundle_is_refused(body: bytes, problem: str) -> None:
    for size in (1, 64):
        with pytest.raises(BadRequestError, match=problem):
            schema.read_received(received(body, size))


def test_a_received_bundle_with_a_bad_blob_is_refused_as_one_body_is() -> None:
    manifest, blobs = good()
    body = bytearray(bundle.pack(manifest, blobs))
    body[-1] ^= 1  # the last blob's last byte
    with pytest.raises(BadRequestError, match="does not match its digest"):
        schema.read_received(received(bytes(body), 7))
    with pytest.raises(BadRequestError, match="bytes after its last blob"):
        schema.read_received(received(bundle.pack(manifest, blobs) + b"x", 7))
