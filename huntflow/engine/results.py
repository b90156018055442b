"""The raw result document a generation writes, and its validation (parse's tier 1).

Format ``huntflow.result/1``::

    {
      "format": "huntflow.result/1",
      "generation_id": "<uuid>",
      "model": "rosenbrock", "fidelity": {...}, "seed": 123,
      "provenance": {engine_version, git_commit, jax_version, jax_backend, device_count, dtype},
      "wall_seconds": 0.01, "compile_seconds": 0.5,
      "candidates": [
        {"index": 0, "status": "ok" | "failed", "status_code": 0,
         "failure_category": null | "nonfinite" | "blowup" | "timeout" | ...,
         "metrics": {"f": 1.23, ...},
         "failure": {...}, "wall_seconds": 0.5}     # external models only
      ]
    }

External (function / command) models add per candidate ``failure`` (the category's detail:
exception type, message and traceback tail, exit code and stderr tail, what was found) and
``wall_seconds``; a category the simulator named itself replaces ``failure_category``.

Non-finite numbers are written as ``null`` (JSON has no NaN) and reported by a failed status.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from huntflow.engine.models.base import Status
from huntflow.errors import ResultDocumentError

FORMAT = "huntflow.result/1"


def _number(v: float) -> float | None:
    v = float(v)
    return v if math.isfinite(v) else None


def build_result_document(
    *,
    generation_id: str,
    model: str,
    fidelity: dict[str, Any],
    seed: int,
    metrics: dict[str, np.ndarray],
    status: np.ndarray,
    provenance: dict[str, Any],
    wall_seconds: float,
    compile_seconds: float,
    failures: tuple[dict[str, Any] | None, ...] | list = (),
    candidate_seconds: np.ndarray | None = None,
) -> dict[str, Any]:
    """A JSON-able document for one generation's batch (arrays of shape (P,))."""
    candidates = []
    for i, code in enumerate(np.asarray(status).tolist()):
        st = Status(int(code))
        entry = {
            "index": i,
            "status": "ok" if st is Status.OK else "failed",
            "status_code": int(st),
            "failure_category": st.failure_category,
            "metrics": {k: _number(v[i]) for k, v in metrics.items()},
        }
        failure = failures[i] if i < len(failures) else None
        if failure:
            entry["failure_category"] = str(failure.get("category") or entry["failure_category"])
            entry["failure"] = _jsonable(failure)
        if candidate_seconds is not None:
            entry["wall_seconds"] = float(candidate_seconds[i])
        candidates.append(entry)
    return {
        "format": FORMAT,
        "generation_id": str(generation_id),
        "model": model,
        "fidelity": dict(fidelity),
        "seed": int(seed),
        "provenance": provenance,
        "wall_seconds": float(wall_seconds),
        "compile_seconds": float(compile_seconds),
        "candidates": candidates,
    }


def _jsonable(value: Any) -> Any:
    """Strict JSON (no NaN) of a failure detail."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, float):
        return _number(value)
    if value is None or isinstance(value, (str, int, bool)):
        return value
    return str(value)


@dataclass(frozen=True)
class ParsedCandidate:
    index: int
    ok: bool
    failure_category: str | None
    metrics: dict[str, float | None]
    failure: dict[str, Any] | None = None
    wall_seconds: float | None = None


def validate_result_document(
    doc: Any, *, generation_id: str, n_candidates: int, required_metrics: list[str]
) -> list[ParsedCandidate]:
    """Check a result document against its generation; return one entry per valid candidate.

    A candidate whose entry is malformed is left out of the returned list (parse counts it
    against the quality floor); a document-level problem raises.

    Raises:
        ResultDocumentError: not a mapping, wrong format or generation, bad candidate list.
    """
    if not isinstance(doc, dict):
        raise ResultDocumentError("result document: expected a JSON object")
    if doc.get("format") != FORMAT:
        raise ResultDocumentError(f"result document.format: expected {FORMAT!r}, got {doc.get('format')!r}")
    if str(doc.get("generation_id")) != str(generation_id):
        raise ResultDocumentError(
            f"result document.generation_id: {doc.get('generation_id')!r} is not generation {generation_id}"
        )
    cands = doc.get("candidates")
    if not isinstance(cands, list):
        raise ResultDocumentError("result document.candidates: expected a list")
    if not isinstance(doc.get("provenance"), dict):
        raise ResultDocumentError("result document.provenance: expected an object")
    parsed: dict[int, ParsedCandidate] = {}
    for c in cands:
        if not isinstance(c, dict):
            continue
        idx, metrics, status = c.get("index"), c.get("metrics"), c.get("status")
        if not isinstance(idx, int) or not 0 <= idx < n_candidates or idx in parsed:
            continue
        if status not in ("ok", "failed") or not isinstance(metrics, dict):
            continue
        values: dict[str, float | None] = {}
        valid = True
        for k, v in metrics.items():
            if v is None:
                values[k] = None
            elif isinstance(v, (int, float)) and not isinstance(v, bool):
                values[k] = float(v)
            else:
                valid = False
        if not valid:
            continue
        ok = status == "ok"
        if ok and any(values.get(m) is None for m in required_metrics):
            # claims success but a needed metric is absent or non-finite: not a usable entry
            continue
        failure = c.get("failure") if isinstance(c.get("failure"), dict) else None
        seconds = c.get("wall_seconds")
        seconds = float(seconds) if isinstance(seconds, (int, float)) and not isinstance(seconds, bool) else None
        parsed[idx] = ParsedCandidate(idx, ok, None if ok else (c.get("failure_category") or "failed"), values,
                                      None if ok else failure, seconds)
    return [parsed[i] for i in sorted(parsed)]
