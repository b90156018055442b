"""The manual operator: a generation travels as a self-contained kit directory.

For machines the database cannot reach (an air-gapped GPU box, a collaborator's cluster):

1. dispatch (``HUNTFLOW_OPERATOR=manual``) writes the kit, :func:`write_kit`, to
   ``$HUNTFLOW_DATA_DIR/kits/<slug>/gen-<index>-<generation id>-a<attempt>/`` and marks the
   generation ``dispatched`` with ``dispatch_ref = manual:<kit dir>``. ``kit.json`` holds all
   the batch needs: the spec's whole model block (any kind: a JAX model, a function, a command;
   it is run where the kit is run), parameter names and the candidates' values,
   the generation's seed, the fidelity rung, dtype, and which generation and attempt it is.
2. Anyone copies the directory to a machine with huntflow installed and runs
   ``huntflow kit run DIR`` (:func:`run_kit`): one batched JAX call, exactly as the other
   operators do it (:func:`~huntflow.tasks.execute.run_batch`), writing ``result.json`` (the
   raw result document) and ``artifact.h5`` into the kit. No database is needed there.
3. Back home, ``huntflow kit import DIR`` (:func:`import_kit`) checks the kit against the
   generation (same generation and attempt, still dispatched, the document valid for it) and
   stores the document and the artifact, marking the generation ``succeeded``; the next tick's
   parse takes it from there. A kit that does not check out is refused with the reason and
   nothing is stored.

A manual generation is never declared lost by the heartbeat timeout (a person may take days);
``huntflow kit list`` shows what is out.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any
from uuid import UUID

import numpy as np
import psycopg

from huntflow.config import get_settings
from huntflow.errors import KitError, ResultDocumentError
from huntflow.store import campaigns, generations
from huntflow.store.states import GenerationStatus as GS
from huntflow.tasks.kit_checks import check_document, compare_kit, read_json, stage_artifact, write_file

FORMAT = "huntflow-kit/1"
REF_PREFIX = "manual:"

__all__ = ["FORMAT", "KitError", "code_named", "expected_kit", "import_kit", "read_kit", "run_kit", "waiting", "write_kit"]


def kit_dir(generation: dict[str, Any], slug: str, attempt: int) -> Path:
    return (get_settings().data_dir / "kits" / slug
            / f"gen-{generation['generation_index']:05d}-{generation['generation_id']}-a{attempt}")


def expected_kit(generation: dict[str, Any], spec, rows: list[dict[str, Any]], attempt: int) -> dict[str, Any]:
    """``kit.json`` of one attempt of a generation, from the stored rows: what :func:`write_kit`
    writes and what :func:`import_kit` compares a returning kit with, field by field."""
    from huntflow.tasks.execute import batch_inputs

    names = list(spec.param_names)
    fidelity = spec.fidelities[generation["fidelity"]]
    model, settings, indices = batch_inputs(spec, generation, rows)
    kit = {
        "format": FORMAT,
        "generation_id": str(generation["generation_id"]),
        "attempt": int(attempt),
        "campaign": spec.slug,
        "generation_index": int(generation["generation_index"]),
        "kind": generation["kind"],
        "model": model,
        "param_names": names,
        "params": _space(spec).model_matrix([r["params"] for r in rows]).tolist(),
        "space": spec.model_dump(mode="json")["space"],
        "seed": int(generation["seed"]),
        "dtype": spec.dtype,
        "fidelity": {"index": int(generation["fidelity"]), "name": fidelity.name, "settings": settings},
    }
    if indices is not None:  # a verification generation: each row keeps its checked candidate's key
        kit["candidate_indices"] = indices
    return kit


def write_kit(conn: psycopg.Connection, generation: dict[str, Any], spec, attempt: int) -> Path:
    """Write the kit of one attempt of a generation; returns its directory."""
    rows = generations.evaluations(conn, generation["generation_id"])
    fidelity = spec.fidelities[generation["fidelity"]]
    kit = expected_kit(generation, spec, rows, attempt)
    out = kit_dir(generation, spec.slug, attempt)
    out.mkdir(parents=True, exist_ok=True)
    (out / "kit.json").write_text(json.dumps(kit, indent=2))
    trust = " --trust-code" if code_named(kit["model"]) else ""
    (out / "README.txt").write_text(
        f"huntflow kit: generation {kit['generation_id']} (attempt {attempt}) of campaign {spec.slug},\n"
        f"{len(rows)} candidates of model {spec.model.label} at fidelity {fidelity.name}.\n\n"
        f"On any machine with huntflow installed:   huntflow kit run{trust} <this directory>\n"
        "Then, where the database is reachable:    huntflow kit import <this directory>\n"
    )
    return out


def read_kit(directory: Path | str) -> dict[str, Any]:
    """``kit.json`` of a kit directory, checked for the fields a run needs.

    Raises:
        KitError: missing, not JSON, another format, or a field missing or malformed (named).
    """
    kit = read_json(Path(directory) / "kit.json", " (not a kit directory?)")
    if kit.get("format") != FORMAT:
        raise KitError(f"kit.json: format must be {FORMAT!r}, got {kit.get('format')!r}")
    for field, kind in (("generation_id", str), ("attempt", int), ("campaign", str), ("model", dict),
                        ("param_names", list), ("params", list), ("seed", int), ("dtype", str), ("fidelity", dict)):
        if not isinstance(kit.get(field), kind) or (kind is int and isinstance(kit.get(field), bool)):
            raise KitError(f"kit.json: {field} must be a {kind.__name__}, got {kit.get(field)!r}")
    try:
        UUID(kit["generation_id"])
    except ValueError:
        raise KitError(f"kit.json: generation_id must be a UUID, got {kit['generation_id']!r}") from None
    indices = kit.get("candidate_indices")
    if indices is not None and (not isinstance(indices, list) or len(indices) != len(kit["params"])
                                or any(isinstance(i, bool) or not isinstance(i, int) or i < 0 for i in indices)):
        raise KitError("kit.json: candidate_indices must be one non-negative integer per params row")
    width = len(kit["param_names"])
    if not kit["params"] or any(not isinstance(p, list) or len(p) != width for p in kit["params"]):
        raise KitError(f"kit.json: params must be a non-empty list of rows of {width} values")
    if any(not isinstance(v, (int, float)) or isinstance(v, bool) for p in kit["params"] for v in p):
        raise KitError("kit.json: params must hold numbers only")
    if not isinstance(kit["fidelity"].get("settings", {}), dict):
        raise KitError("kit.json: fidelity.settings must be an object")
    return kit


def code_named(model: dict[str, Any]) -> str | None:
    """What code from outside a kit's model block would run here, or None when it names only a
    model installed on this machine (``name``, no ``pythonpath``): a ``command`` (a program and
    its arguments), a ``function`` or ``entrypoint`` (a module imported here), or ``pythonpath``
    entries (directories put in front of this process's imports)."""
    for field in ("command", "function", "entrypoint"):
        if model.get(field) is not None:
            shown = " ".join(map(str, model[field])) if isinstance(model[field], list) else str(model[field])
            return f"model.{field} {shown[:200]!r}"
    if model.get("pythonpath"):
        return f"model.pythonpath {' '.join(map(str, model['pythonpath']))[:200]!r}"
    return None


def run_kit(directory: Path | str, *, trust_code: bool = False) -> dict[str, Any]:
    """Evaluate a kit in this process (no database): writes ``result.json`` and ``artifact.h5``.

    A kit is input from outside: unless ``trust_code``, only a model installed here (by
    ``name``, through the same :class:`~huntflow.engine.modelref.ModelRef` resolution as a
    spec) is run; a kit naming a program, a module or a ``pythonpath`` is refused before
    anything is imported or started (:func:`code_named`). A sha256 in the kit would not help:
    whoever edits the kit edits the hash too.

    Raises:
        KitError: the kit is malformed, or names code to run and ``trust_code`` is false.
    """
    from huntflow.tasks.execute import run_batch

    directory = Path(directory)
    kit = read_kit(directory)
    code = code_named(kit["model"])
    if code is not None and not trust_code:
        raise KitError(f"kit.json: {code} is code named by the kit; refusing to run it "
                       "(pass --trust-code if you trust whoever sent this kit)")
    for name in ("result.json", "artifact.h5"):
        if (directory / name).is_symlink():
            raise KitError(f"{directory / name} is a symbolic link; refusing to write through it")
    if kit["dtype"] not in ("float32", "float64"):
        raise KitError(f"kit.json: dtype must be 'float32' or 'float64', got {kit['dtype']!r}")
    if not isinstance(kit["fidelity"].get("name"), str) or not isinstance(kit["fidelity"].get("index"), int):
        raise KitError("kit.json: fidelity must have a name (string) and an index (integer)")
    params = np.asarray(kit["params"], dtype=np.float64)
    try:
        return _run(directory, kit, params, run_batch)
    except (KeyError, ValueError, TypeError) as e:  # the model refused what the kit asks of it
        raise KitError(f"kit.json: cannot be evaluated: {type(e).__name__}: {' '.join(str(e).split())}") from None


def _run(directory: Path, kit: dict[str, Any], params: np.ndarray, run_batch) -> dict[str, Any]:
    result, doc = run_batch(
        generation_id=kit["generation_id"], model=kit["model"],
        param_names=kit["param_names"], params=params, seed=kit["seed"], dtype=kit["dtype"],
        fidelity={**kit["fidelity"], "settings": dict(kit["fidelity"].get("settings") or {})},
        artifact_path=directory / "artifact.h5",
        space=kit.get("space") if isinstance(kit.get("space"), dict) else None,
        about={"campaign": kit["campaign"], "generation_index": kit.get("generation_index"),
               "kind": kit.get("kind"), "attempt": kit["attempt"]},
        candidate_indices=kit.get("candidate_indices"),
    )
    write_file(directory / "result.json", json.dumps(doc))
    return {"generation_id": kit["generation_id"], "candidates": len(params), "ok": int(np.sum(result.status == 0)),
            "wall_seconds": round(float(result.wall_seconds), 4), "result": str(directory / "result.json"),
            "artifact": str(directory / "artifact.h5")}


def import_kit(conn: psycopg.Connection, directory: Path | str) -> dict[str, Any]:
    """Store a run kit's result: the generation becomes ``succeeded`` for parse to collect.

    Raises:
        KitError: the kit, its result or its generation do not check out (nothing is stored).
    """
    directory = Path(directory)
    kit = read_kit(directory)
    doc = read_json(directory / "result.json", " (run `huntflow kit run` first)")
    gid = UUID(kit["generation_id"])
    try:
        gen = generations.get(conn, gid)
    except KeyError:
        raise KitError(f"no generation {gid} in this database") from None
    if gen["operator"] != "manual":
        raise KitError(f"generation {gid} runs on the {gen['operator']!r} operator, not from a kit")
    if GS(gen["status"]) not in (GS.DISPATCHED, GS.RUNNING):
        raise KitError(f"generation {gid} is {gen['status']}, not waiting for a kit")
    if int(gen["attempt"]) != kit["attempt"]:
        raise KitError(f"the kit is attempt {kit['attempt']}, the generation is at attempt {gen['attempt']}")
    spec = campaigns.spec_of(campaigns.get_campaign(conn, gen["campaign_id"]))
    rows = generations.evaluations(conn, gid)
    expected = expected_kit(gen, spec, rows, int(gen["attempt"]))
    label = getattr(spec.model, "label", spec.model.name)
    compare_kit(kit, expected)
    check_document(doc, expected, label)
    required = sorted({o.metric for o in spec.objectives} | {c.metric for c in spec.constraints})
    from huntflow.engine.results import validate_result_document  # here: `kit list` must not load JAX

    try:
        parsed = validate_result_document(doc, generation_id=str(gid), n_candidates=len(rows), required_metrics=required)
    except ResultDocumentError as e:
        raise KitError(f"result.json: {e}") from None
    if len(parsed) < len(rows):
        raise KitError(f"result.json: {len(rows) - len(parsed)} of {len(rows)} candidate entries are malformed")
    artifact = get_settings().artifacts_dir / spec.slug / f"gen-{gen['generation_index']:05d}-{gid}.h5"
    staged = stage_artifact(directory / "artifact.h5", artifact.parent, expected, doc, label)
    placed = False
    try:
        with conn.transaction():
            if not generations.transition(conn, gid, [GS.DISPATCHED, GS.RUNNING], GS.RUNNING, started_at="now()",
                                          heartbeat_at="now()") \
                    or not generations.mark_succeeded(conn, gid, result_document=doc, artifact_path=str(artifact)):
                raise KitError(f"generation {gid} moved on while importing; nothing stored")
            os.replace(staged, artifact)  # last step inside the transaction: a failure rolls the rows back
            placed = True
    except BaseException:
        staged.unlink(missing_ok=True)
        if placed:
            artifact.unlink(missing_ok=True)
        raise
    return {"generation_id": str(gid), "campaign": spec.slug, "status": "succeeded", "candidates": len(rows),
            "artifact": str(artifact)}


def _space(spec):
    from huntflow.engine.space import SearchSpace  # here: `kit list` must not load JAX

    return SearchSpace.of(spec)


def waiting(conn: psycopg.Connection) -> list[dict[str, Any]]:
    """Manual generations out as kits (dispatched, not yet imported), oldest first."""
    rows = conn.execute(
        "select g.generation_id, c.slug, g.generation_index, g.kind, g.attempt, g.dispatch_ref, g.dispatched_at"
        " from hunt.generations g join hunt.campaigns c using (campaign_id)"
        " where g.operator = 'manual' and g.status in ('dispatched', 'running') order by g.dispatched_at",
    ).fetchall()
    return [{"generation_id": str(r["generation_id"]), "campaign": r["slug"], "generation_index": r["generation_index"],
             "kind": r["kind"], "attempt": r["attempt"],
             "kit": r["dispatch_ref"][len(REF_PREFIX):] if (r["dispatch_ref"] or "").startswith(REF_PREFIX) else None,
             "dispatched_at": r["dispatched_at"].isoformat() if r["dispatched_at"] else None} for r in rows]
