"""Hypothesis fuzz of returning kits against a real dispatched generation: every mutated kit is
refused with a HuntflowError (never a traceback) and stores nothing (the generation stays
dispatched with no result document, no artifact appears); the untouched kit still imports.
The default run fuzzes a few hundred kits; ``-m slow`` runs the long variant."""

from __future__ import annotations

import json
import shutil

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from huntflow.errors import HuntflowError
from huntflow.store import campaigns, generations
from huntflow.tasks import kit

scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=8),
    st.sampled_from([0, 1, -1, 2**63, 1e308, "\x00", "00000000-0000-0000-0000-000000000000", "sphere", "float64"]),
)
values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                        st.dictionaries(st.text(max_size=5), inner, max_size=3)),
                      max_leaves=6)
KIT_PATHS = [("format",), ("generation_id",), ("attempt",), ("campaign",), ("model",), ("model", "name"),
             ("model", "fixed"), ("param_names",), ("param_names", 0), ("params",), ("params", 0), ("params", 0, 0),
             ("params", 1, 2), ("seed",), ("dtype",), ("fidelity",), ("fidelity", "index"), ("fidelity", "name"),
             ("fidelity", "settings"), ("kind",), ("generation_index",)]
DOC_PATHS = [("format",), ("generation_id",), ("model",), ("seed",), ("fidelity",), ("provenance",),
             ("provenance", "seed"), ("provenance", "dtype"), ("candidates",), ("candidates", 0),
             ("candidates", 0, "metrics", "f"), ("candidates", 1, "status"), ("candidates", 2, "index")]
RAW = [b"", b"\xff\xfe\x00", b"NaN", b'{"a": NaN}', b'{"a": 1e400}', b"[1]", b"{" * 5000, b'{"a": -Infinity}']


@pytest.fixture(scope="module")
def pristine(tmp_path_factory, database_url, prefect_harness):
    """One dispatched manual generation and its run kit, shared by every fuzz case."""
    import os

    from huntflow.engine.spec import parse_spec
    from huntflow.flows.tick import hunt_tick
    from huntflow.store.connection import connect

    conn = connect(database_url)
    old = os.environ.get("HUNTFLOW_OPERATOR")
    os.environ["HUNTFLOW_OPERATOR"] = "manual"
    try:
        spec = parse_spec({"slug": "kit-fuzz", "model": {"name": "sphere"},
                           "space": {f"x{i}": {"low": -2.0, "high": 2.0} for i in range(3)},
                           "objectives": [{"metric": "f"}], "budget": {"evaluations": 8},
                           "optimizer": {"name": "ngopt", "population": 8}, "seed": 3})
        conn.execute("delete from hunt.campaigns where slug = 'kit-fuzz'")
        cid = campaigns.insert_campaign(conn, spec)
        hunt_tick([str(cid)])
        hunt_tick([str(cid)])
    finally:
        os.environ.pop("HUNTFLOW_OPERATOR") if old is None else os.environ.__setitem__("HUNTFLOW_OPERATOR", old)
    [g] = conn.execute("select * from hunt.generations where campaign_id = %s", (cid,)).fetchall()
    directory = kit.kit_dir(g, "kit-fuzz", g["attempt"])
    kit.run_kit(directory)
    try:
        yield conn, g, directory
    finally:
        conn.execute("delete from hunt.campaigns where campaign_id = %s", (cid,))
        conn.close()


def _set(doc, path, value):
    node = doc
    for key in path[:-1]:
        try:
            node = node[key]
        except (KeyError, IndexError, TypeError):
            return False
    try:
        if isinstance(node, (dict, list)) and node[path[-1]] == value:
            return False
        node[path[-1]] = value
    except (KeyError, IndexError, TypeError):
        return False
    return True


@st.composite
def mutations(draw):
    which = draw(st.sampled_from(["kit.json", "result.json", "artifact.h5"]))
    if which == "artifact.h5" or draw(st.integers(0, 9)) == 0:
        return which, draw(st.one_of(st.sampled_from(RAW), st.binary(max_size=64)))
    paths = KIT_PATHS if which == "kit.json" else DOC_PATHS
    return which, [(draw(st.sampled_from(paths)), draw(values)) for _ in range(draw(st.integers(1, 3)))]


def _check(pristine, tmp_path, mutation) -> None:
    conn, g, source = pristine
    directory = tmp_path / "kit"
    if directory.exists():
        shutil.rmtree(directory)
    shutil.copytree(source, directory)
    which, change = mutation
    if isinstance(change, bytes):
        (directory / which).write_bytes(change)
    else:
        original = (directory / which).read_text()
        data = json.loads(original)
        for path, value in change:
            _set(data, path, value)
        if json.dumps(data, sort_keys=True) == json.dumps(json.loads(original), sort_keys=True):
            return  # nothing changed (a later change may restore an earlier one): the kit is the good one
        (directory / which).write_text(json.dumps(data))
    with pytest.raises(HuntflowError):
        kit.import_kit(conn, directory)
    row = generations.get(conn, g["generation_id"])
    assert (row["status"], row["result_document"], row["artifact_path"]) == ("dispatched", None, None)
    art = kit.get_settings().artifacts_dir / "kit-fuzz"
    assert not art.exists() or list(art.iterdir()) == []


def _run(pristine, tmp_path, n):
    @settings(max_examples=n, deadline=None, database=None, derandomize=True,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
    @given(mutation=mutations())
    def fuzz(mutation):
        _check(pristine, tmp_path, mutation)

    fuzz()


def test_fuzz_kits_are_refused_without_traceback_or_rows(pristine, tmp_path):
    _run(pristine, tmp_path, 200)


@pytest.mark.slow
@pytest.mark.timeout(3600)  # 10 000 cases outlast the suite's 600 s per test on a loaded machine
def test_fuzz_kits_long(pristine, tmp_path):
    _run(pristine, tmp_path, 10_000)
