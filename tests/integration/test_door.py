"""Property tests of the server's door: no request, however malformed, gets a 5xx.

Hypothesis mutates a real dispatch's bundle (any field of its manifest replaced, deleted
or added, numbers out of range, nesting past the parser's limit, broken framing) and
posts it to a real server; schemathesis sends what the OpenAPI document allows (and
what it does not) to every other route. Each answer is a 2xx or a 4xx; a dispatch that
is accepted can be read back and ends. Both are bounded to run in about a minute
(COVALENT_DOOR_EXAMPLES scales them).
"""

from __future__ import annotations

import copy
import json
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import covalent as ct
from covalent._wire import bundle
from covalent._wire import manifest as manifestmod
from tests.conftest import Home, free_port, home_env, wait_for

EXAMPLES = int(os.environ.get("COVALENT_DOOR_EXAMPLES", "120"))
REFUSED = {400, 404, 413, 422}
FINAL = {"COMPLETED", "FAILED", "CANCELLED"}
RAW = [b"1e999", b"-1e999", b"NaN", b"-Infinity", b"1" * 5000, b"18446744073709551616", b"-1"]


@ct.electron(retries=1, timeout=60)
def echo(x, y=None):
    return x


@ct.lattice
def flow(a, b=2):
    first = echo(a, y=b)
    return echo({"k": [first, echo(b)]})


def _base() -> tuple[dict[str, Any], dict[str, bytes]]:
    return manifestmod.from_graph(flow.build_graph(1, b=3), (1,), {"b": 3}, flow)


BASE_MANIFEST, BASE_BLOBS = _base()


@pytest.fixture(scope="module")
def door(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Home]:
    """A server of this module's own: the fuzzing deletes, cancels and clears."""
    root = tmp_path_factory.mktemp("door") / "home"
    port = free_port()
    h = Home(root, port, home_env(root, port))
    started = h.run("covalent", "start")
    assert started.returncode == 0, started.stderr
    yield h
    h.run("covalent", "stop")


# bundles


def _paths(value: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every place in a JSON tree (the root too)."""
    found = [path]
    if isinstance(value, dict):
        for key, item in value.items():
            found += _paths(item, (*path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found += _paths(item, (*path, index))
    return found


_leaves = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-2, 8),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=12),
    st.sampled_from(["0" * 64, "parameter", "electron", "collection", "dict", "local"]),
)
_json = st.recursive(
    _leaves,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner),
    max_leaves=10,
)


def _placeholder(index: int) -> str:
    return f"\u2603RAW{index}\u2603"


@st.composite
def manifests(draw: st.DrawFn) -> bytes:
    """A bundle of the base dispatch with one to three changes to its manifest."""
    manifest: Any = copy.deepcopy(BASE_MANIFEST)
    raws: list[bytes] = []
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(_paths(manifest)))
        manifest = _change(draw, manifest, path, raws)
    header: Any = manifest
    if isinstance(header, dict):
        header = {**header, "blobs": [[d, len(b)] for d, b in BASE_BLOBS.items()]}
    text = json.dumps(header).encode()
    for index, raw in enumerate(raws):
        text = text.replace(json.dumps(_placeholder(index)).encode(), raw)
    return bundle.MAGIC + len(text).to_bytes(8, "big") + text + b"".join(BASE_BLOBS.values())


def _change(draw: st.DrawFn, manifest: Any, path: tuple[Any, ...], raws: list[bytes]) -> Any:
    how = draw(st.sampled_from(["replace", "replace", "delete", "add", "raw", "deep"]))
    if how == "replace":
        new: Any = draw(_json)
    elif how == "raw":
        raws.append(draw(st.sampled_from(RAW)))
        new = _placeholder(len(raws) - 1)
    elif how == "deep":
        raws.append(_nested(draw(st.sampled_from([150, 250, 100_000])), draw(st.booleans())))
        new = _placeholder(len(raws) - 1)
    else:
        new = None
    if not path:
        return manifest if new is None else new
    parent = manifest
    for key in path[:-1]:
        parent = parent[key]
    key = path[-1]
    if how == "delete":
        del parent[key]
    elif how == "add" and isinstance(parent, dict):
        parent[draw(st.text(max_size=8))] = draw(_json)
    elif how != "add":
        parent[key] = new
    return manifest


def _nested(depth: int, objects: bool) -> bytes:
    """JSON nested ``depth`` levels deep (as text: Python's json cannot write it)."""
    if objects:
        return b'{"a":' * depth + b"1" + b"}" * depth
    return b"[" * depth + b"]" * depth


@st.composite
def framings(draw: st.DrawFn) -> bytes:
    """A good bundle with its framing broken: cut, lengthened, a byte flipped."""
    body = bytearray(bundle.pack(BASE_MANIFEST, BASE_BLOBS))
    how = draw(st.sampled_from(["cut", "header length", "flip", "append"]))
    if how == "cut":
        return bytes(body[: draw(st.integers(0, len(body) - 1))])
    if how == "header length":
        body[4:12] = draw(st.integers(0, 2**64 - 1)).to_bytes(8, "big")
    elif how == "flip":
        at = draw(st.integers(0, len(body) - 1))
        body[at] ^= draw(st.integers(1, 255))
    else:
        body += draw(st.binary(min_size=1, max_size=64))
    return bytes(body)


def _read_back(home: Home, dispatch_id: str) -> None:
    """Every read of an accepted dispatch answers, and the dispatch ends."""
    for route in (
        f"/api/v1/dispatches/{dispatch_id}",
        f"/api/v1/dispatches/{dispatch_id}/manifest",
        f"/api/v1/ui/dispatches/{dispatch_id}/graph",
        f"/api/v1/ui/dispatches/{dispatch_id}/nodes/0",
    ):
        answer = httpx.get(f"{home.url}{route}", timeout=60)
        assert answer.status_code < 500, (route, answer.text)

    def ended() -> bool:
        row = httpx.get(f"{home.url}/api/v1/dispatches/{dispatch_id}?nodes=false").json()
        return row["status"] in FINAL

    wait_for(ended, timeout=120, what=f"dispatch {dispatch_id} to end")


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(body=st.one_of(manifests(), framings()))
def test_no_bundle_gets_a_server_error(door: Home, body: bytes) -> None:
    answer = httpx.post(f"{door.url}/api/v1/dispatches", content=body, timeout=120)
    assert answer.status_code < 500, answer.text
    if answer.status_code == 200:
        _read_back(door, answer.json()["dispatch_id"])
    else:
        assert answer.status_code in REFUSED, answer.text
        assert answer.json()["detail"]


def test_the_good_bundle_is_accepted(door: Home) -> None:
    """The mutations start from a dispatch the server takes and runs."""
    body = bundle.pack(BASE_MANIFEST, BASE_BLOBS)
    answer = httpx.post(f"{door.url}/api/v1/dispatches", content=body)
    assert answer.status_code == 200, answer.text
    dispatch_id = answer.json()["dispatch_id"]
    _read_back(door, dispatch_id)
    row = httpx.get(f"{door.url}/api/v1/dispatches/{dispatch_id}").json()
    assert row["status"] == "COMPLETED", row["error"]


# every other route, from the OpenAPI document

SKIPPED_ROUTES = "^/api/v1/(cluster|events)"
"""The local Dask cluster's routes start and scale a cluster of processes (tested in
test_dask.py), and the event stream never ends by design (test_ui.py reads it)."""


@pytest.fixture(scope="module")
def api(door: Home) -> Any:
    return schemathesis.openapi.from_url(f"{door.url}/openapi.json")


schemathesis.openapi.media_type(
    bundle.MEDIA_TYPE, st.one_of(manifests(), framings(), st.binary(max_size=64))
)
schema = schemathesis.pytest.from_fixture("api").exclude(path_regex=SKIPPED_ROUTES)


@schema.parametrize()
@settings(
    max_examples=max(5, EXAMPLES // 8),
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
)
def test_no_api_request_gets_a_server_error(case: Any, door: Home) -> None:
    assert not re.match(SKIPPED_ROUTES, case.path)  # never scale a cluster here
    response = case.call(timeout=60)
    assert response.status_code < 500, (case.method, case.path, response.text[:500])


def test_the_openapi_document_describes_the_bundle_body(door: Home) -> None:
    document = httpx.get(f"{door.url}/openapi.json").json()
    submit = document["paths"]["/api/v1/dispatches"]["post"]
    assert bundle.MEDIA_TYPE in submit["requestBody"]["content"]
    limit = document["paths"]["/api/v1/dispatches"]["get"]["parameters"]
    offset = next(p for p in limit if p["name"] == "offset")
    assert offset["schema"]["maximum"] == 2**63 - 1


def test_every_server_log_line_is_free_of_tracebacks(door: Home) -> None:
    """Refusals are answers, not errors: the fuzzing above left no traceback."""
    log = Path(door.root / "cache" / "server.log")
    assert "Traceback" not in log.read_text(errors="replace")
