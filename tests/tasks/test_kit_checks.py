"""A returning kit is verified against the stored generation, never trusted: forged candidates,
model, seed, fidelity or attempt, non-finite numbers, symlinks and non-HDF5 artifacts are refused
with one line naming the field, and a refused import leaves nothing behind (no rows, no file)."""

from __future__ import annotations

import json
import os

import h5py
import pytest
from typer.testing import CliRunner

from huntflow.errors import InputError, KitError
from huntflow.flows.cli import app
from huntflow.store import campaigns, generations
from huntflow.tasks import kit

runner = CliRunner()


@pytest.fixture
def run_kit_dir(db, make_spec, prefect_harness, monkeypatch):
    """A dispatched manual generation whose kit has been run here; yields (directory, generation)."""
    from huntflow.flows.tick import hunt_tick

    monkeypatch.setenv("HUNTFLOW_OPERATOR", "manual")
    cid = campaigns.insert_campaign(db, make_spec(slug="kit-forge", budget={"evaluations": 8}))
    hunt_tick([str(cid)])
    hunt_tick([str(cid)])
    [g] = db.execute("select * from hunt.generations where campaign_id = %s", (cid,)).fetchall()
    directory = kit.kit_dir(g, "kit-forge", g["attempt"])
    kit.run_kit(directory)
    return directory, g


def _artifacts(g):
    """Files of generation ``g`` in the data dir's artifacts (other tests' imports excluded)."""
    root = kit.get_settings().artifacts_dir / "kit-forge"
    return sorted(p.name for p in root.iterdir() if str(g["generation_id"]) in p.name or p.name.startswith(".")) \
        if root.exists() else []


def _edit(path, change):
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


def _set(*keys, value):
    def change(d):
        for k in keys[:-1]:
            d = d[k]
        d[keys[-1]] = value
    return change


FORGERIES = {
    "params": ("kit.json", lambda k: k["params"][0].__setitem__(0, k["params"][0][0] + 1e-9), "params of candidate 0"),
    "model": ("kit.json", _set("model", "name", value="rosenbrock"), "kit.json: model"),
    "fixed": ("kit.json", _set("model", "fixed", value={"scale": 2}), "kit.json: model"),
    "seed": ("kit.json", _set("seed", value=12345), "kit.json: seed"),
    "attempt_true": ("kit.json", _set("attempt", value=True), "kit.json: attempt"),  # true == 1 in Python (fuzz)
    "index_false": ("kit.json", _set("fidelity", "index", value=False), "kit.json: fidelity"),
    "fidelity": ("kit.json", _set("fidelity", "settings", value={"steps": 9}), "kit.json: fidelity"),
    "dtype": ("kit.json", _set("dtype", value="float64"), "kit.json: dtype"),
    "campaign": ("kit.json", _set("campaign", value="other"), "kit.json: campaign"),
    "doc_model": ("result.json", _set("model", value="rosenbrock"), "result.json: model"),
    "doc_seed": ("result.json", _set("seed", value=1), "result.json: seed"),
    "doc_fidelity": ("result.json", _set("fidelity", value={"grid": 8}), "result.json: fidelity"),
    "doc_dtype": ("result.json", _set("provenance", "dtype", value="float64"), "provenance.dtype"),
}


def test_a_forged_kit_is_refused_naming_the_field_and_nothing_is_stored(run_kit_dir, db):
    directory, g = run_kit_dir
    originals = {f: (directory / f).read_text() for f in ("kit.json", "result.json")}
    for name, (file, change, fragment) in sorted(FORGERIES.items()):
        _edit(directory / file, change)
        result = runner.invoke(app, ["kit", "import", str(directory)])
        assert result.exit_code == 2, (name, result.output)
        assert fragment in " ".join(result.output.split()), (name, result.output)
        row = generations.get(db, g["generation_id"])
        assert (row["status"], row["result_document"], row["artifact_path"]) == ("dispatched", None, None)
        assert _artifacts(g) == []
        (directory / file).write_text(originals[file])
    assert kit.import_kit(db, directory)["status"] == "succeeded"  # the untouched kit imports


def test_non_finite_numbers_in_a_result_are_refused_in_one_line(run_kit_dir, db):
    directory, g = run_kit_dir
    doc = json.loads((directory / "result.json").read_text())
    doc["candidates"][0]["metrics"]["f"] = "__X__"
    for literal in ("NaN", "Infinity", "-Infinity", "1e400"):
        (directory / "result.json").write_text(json.dumps(doc).replace('"__X__"', literal))
        with pytest.raises(KitError) as e:
            kit.import_kit(db, directory)
        assert "\n" not in str(e.value) and "result.json is not valid JSON" in str(e.value), literal
        assert generations.get(db, g["generation_id"])["status"] == "dispatched"


def test_symlinked_artifact_is_refused_and_not_copied(run_kit_dir, db, tmp_path):
    directory, g = run_kit_dir
    secret = tmp_path / "not-yours.txt"
    secret.write_text("a system file")
    (directory / "artifact.h5").unlink()
    os.symlink(secret, directory / "artifact.h5")
    with pytest.raises(KitError, match="symbolic link"):
        kit.import_kit(db, directory)
    assert _artifacts(g) == [] and generations.get(db, g["generation_id"])["status"] == "dispatched"


def test_symlinked_result_is_refused_and_its_target_untouched(run_kit_dir, tmp_path):
    directory, _ = run_kit_dir
    target = tmp_path / "victim.txt"
    target.write_text("precious")
    (directory / "result.json").unlink()
    os.symlink(target, directory / "result.json")
    with pytest.raises(KitError, match="symbolic link"):
        kit.run_kit(directory)
    assert target.read_text() == "precious"


@pytest.mark.parametrize("field, model", [
    ("command", {"command": ["/bin/sh", "-c", "touch {out}"], "metrics": ["f"]}),
    ("function", {"function": "os:system", "metrics": ["f"]}),
    ("pythonpath", {"name": "sphere", "pythonpath": ["{dir}"]}),
])
def test_kit_run_refuses_code_the_kit_names_unless_trusted(run_kit_dir, tmp_path, field, model):
    """A kit is input from outside: `kit run` runs only a model installed here unless
    --trust-code; the refusal is one line naming the field, and nothing ran or was written."""
    directory, _ = run_kit_dir
    out = tmp_path / "pwned"
    (tmp_path / "numpy.py").write_text(f"open({str(out)!r}, 'w').close()\n")  # shadows an import
    forged = json.loads((directory / "kit.json").read_text())
    forged["model"] = json.loads(json.dumps(model).replace("{out}", str(out)).replace("{dir}", str(tmp_path)))
    (directory / "kit.json").write_text(json.dumps(forged))
    (directory / "result.json").unlink()
    result = runner.invoke(app, ["kit", "run", str(directory)])
    assert result.exit_code == 2, result.output
    (line,) = result.output.strip().splitlines()
    assert f"kit.json: model.{field} " in line and "--trust-code" in line and "Traceback" not in line
    assert not out.exists() and not (directory / "result.json").exists()
    if field == "command":  # trusted, it runs (and the command's own output makes it fail its metrics)
        kit.run_kit(directory, trust_code=True)
        assert out.exists() and (directory / "result.json").exists()


def test_an_artifact_that_is_not_the_generations_is_refused_and_nothing_left(run_kit_dir, db):
    directory, g = run_kit_dir
    path = directory / "artifact.h5"
    good = path.read_bytes()
    for how in ("other_params", "not_hdf5", "missing"):
        if how == "not_hdf5":
            path.write_bytes(b"\x89HDF not really")
        elif how == "missing":
            path.unlink()
        else:
            with h5py.File(path, "r+") as f:
                f["params"][0, 0] = 1.5
        with pytest.raises(KitError) as e:
            kit.import_kit(db, directory)
        assert isinstance(e.value, InputError) and "artifact.h5" in str(e.value), how
        assert _artifacts(g) == [] and generations.get(db, g["generation_id"])["status"] == "dispatched"
        assert [p for p in path.parent.iterdir() if p.name.startswith(".")] == []
    path.write_bytes(good)
    out = kit.import_kit(db, directory)
    assert out["status"] == "succeeded" and _artifacts(g) == [os.path.basename(out["artifact"])]
    assert generations.get(db, g["generation_id"])["artifact_path"] == out["artifact"]
