"""Execute one generation: the body of the ``hunt-generation`` flow.

Loads the generation row, evaluates the whole population (one batched JAX call, or a function or
command model's candidates in the process pool of :mod:`huntflow.engine.external`), writes one
HDF5 artifact and the raw result document, and marks the generation ``succeeded`` with both in
one transaction. Re-running a generation that already succeeded is a no-op, so the generation
id is a safe idempotency key for any operator.
"""

from __future__ import annotations

import time
from pathlib import Path
from collections.abc import Callable
from typing import Any, Mapping
from uuid import UUID

import numpy as np

from huntflow.config import get_settings
from huntflow.engine import artifacts, provenance
from huntflow.engine.evaluate import evaluate_population
from huntflow.engine.modelref import ModelRef
from huntflow.engine.results import build_result_document
from huntflow.engine.space import SearchSpace
from huntflow.store import campaigns, generations
from huntflow.store.connection import session
from huntflow.store.states import GenerationStatus as GS

_DONE = {GS.SUCCEEDED, GS.PARSED, GS.REVIEWED, GS.TOLD}


def run_batch(*, generation_id: str, model: str | Mapping[str, Any], fixed: dict[str, Any] | None = None,
              param_names: tuple[str, ...] | list[str], params: np.ndarray, seed: int, dtype: str,
              fidelity: dict[str, Any], artifact_path: Path, about: dict[str, Any],
              space: dict[str, Any] | None = None, candidate_indices: list[int] | None = None
              ) -> tuple[Any, dict[str, Any]]:
    """Evaluate one generation's population and write its HDF5 artifact (no database).

    Args:
        model: the spec's ``model`` block (a dict; any kind: JAX, function, command), or a
            built-in model's name with ``fixed``.
        fidelity: ``{"index", "name", "settings"}`` of the rung.
        artifact_path: the HDF5 file; function/command models run each candidate in a fresh
            directory under ``<artifact stem>.a<attempt>/`` next to it (kept: the simulator's files).
        about: generation facts stored with the artifact (campaign slug, index, kind, attempt).
        space: the spec's ``space`` (JSON): function/command models get choices and ints, not indices.
        candidate_indices: the index folded into each row's key (default: the row's position);
            a verification generation reuses the checked candidates' own (:func:`batch_inputs`).

    Returns:
        ``(result, result_document)``: the batch's :class:`~huntflow.engine.evaluate` result and
        the raw result document parse validates.
    """
    batch = _Batch(generation_id=generation_id, model=model, fixed=fixed, param_names=param_names, params=params,
                   seed=seed, dtype=dtype, fidelity=fidelity, artifact_path=artifact_path, about=about, space=space,
                   candidate_indices=candidate_indices)
    result = batch.evaluate()
    return result, batch.record(result)


class _Batch:
    """:func:`run_batch` in two halves: :meth:`evaluate` (the device's part) and :meth:`record`
    (the host's: the HDF5 artifact and the result document), so the loop's executor can record
    one generation while the next evaluates (:func:`begin_generation`)."""

    def __init__(self, *, generation_id: str, model: str | Mapping[str, Any], fixed: dict[str, Any] | None,
                 param_names: tuple[str, ...] | list[str], params: np.ndarray, seed: int, dtype: str,
                 fidelity: dict[str, Any], artifact_path: Path, about: dict[str, Any],
                 space: dict[str, Any] | None, candidate_indices: list[int] | None) -> None:
        self.generation_id, self.param_names, self.params = generation_id, tuple(param_names), params
        self.seed, self.dtype, self.fidelity, self.artifact_path = int(seed), dtype, fidelity, artifact_path
        self.about, self.space, self.candidate_indices = about, space, candidate_indices
        self.ref = ModelRef.model_validate({"name": model, "fixed": dict(fixed or {})} if isinstance(model, str)
                                           else dict(model))
        self.resolved = self.ref.resolve()
        self.workdir = None
        if self.resolved.is_external:
            self.workdir = artifact_path.parent / f"{artifact_path.stem}.a{about.get('attempt') or 0}"

    def evaluate(self) -> Any:
        return evaluate_population(
            self.ref, self.param_names, self.params, seed=self.seed, fixed=dict(self.ref.fixed),
            fidelity=self.fidelity["settings"], dtype=self.dtype, workdir=self.workdir, space=self.space,
            candidate_indices=None if self.candidate_indices is None else np.asarray(self.candidate_indices))

    def record(self, result: Any) -> dict[str, Any]:
        """Write the artifact; returns the result document."""
        ref, fidelity = self.ref, self.fidelity
        prov = {
            **provenance.runtime(),
            "dtype": self.dtype,
            "seed": self.seed,
            "fidelity": {"index": fidelity["index"], "name": fidelity["name"], **fidelity["settings"]},
            "model": ref.label,
            "model_source": self.resolved.source(),
        }
        if self.workdir is not None:
            prov["workdir"] = str(self.workdir)
        artifacts.write_generation(
            self.artifact_path, param_names=self.param_names, params=self.params, result=result, provenance=prov,
            generation={"generation_id": self.generation_id, **self.about,
                        "model": ref.model_dump(mode="json", exclude_none=True), "fidelity": dict(fidelity["settings"])},
        )
        return build_result_document(
            generation_id=self.generation_id, model=ref.label, fidelity=fidelity["settings"], seed=self.seed,
            metrics=result.metrics, status=result.status, provenance=prov,
            wall_seconds=result.wall_seconds, compile_seconds=result.compile_seconds,
            failures=result.failures, candidate_seconds=result.candidate_seconds,
        )


def batch_inputs(spec: Any, gen: dict[str, Any], rows: list[dict[str, Any]]
                 ) -> tuple[dict[str, Any], dict[str, Any], list[int] | None]:
    """``(model block, fidelity settings, candidate indices)`` a generation runs with: the spec's,
    or for review's verification generation the perturbed ``fixed`` and settings it carries
    (with each checked candidate's own key index)."""
    model = spec.model.model_dump(mode="json", exclude_none=True)
    check = (gen.get("meta") or {}).get("verification")
    if check is None:
        return model, dict(spec.fidelities[gen["fidelity"]].settings), None
    return ({**model, "fixed": dict(check["fixed"])}, dict(check["settings"]),
            [int(r["decision"]["key_index"]) for r in rows])


def execute_generation(generation_id: UUID | str, attempt: int | None = None,
                       dispatch_ref: str | None = None) -> dict[str, Any]:
    """Run a planned or dispatched generation to ``succeeded``.

    Args:
        generation_id: the generation.
        attempt: run only if the generation is at this attempt (a batch job that starts after
            its attempt was given up must not take over the next one); None runs any.
        dispatch_ref: run, and write the outcome, only while the generation carries this
            dispatch reference (an inline run that another tick took over writes nothing).

    Returns:
        A summary: ``{"generation_id", "status", "candidates", "ok", "wall_seconds", ...}``;
        ``status`` is ``"noop"`` when the generation had already succeeded or was not runnable.
    Raises:
        KeyError: no such generation.
        Exception: evaluation failed; the generation is sent back for another attempt (or
            failed when out of attempts) before the error propagates.
    """
    begun = begin_generation(generation_id, attempt, dispatch_ref)
    return begun if isinstance(begun, dict) else begun()


def begin_generation(generation_id: UUID | str, attempt: int | None = None,
                     dispatch_ref: str | None = None) -> dict[str, Any] | Callable[[], dict[str, Any]]:
    """:func:`execute_generation` up to the end of the evaluation: the generation is ``running``
    and its batch evaluated; returns the rest (write the artifact and the result document, mark
    it ``succeeded``, fenced as ever) as a call, which the loop's executor makes while the next
    generation evaluates (:mod:`huntflow.tasks.inline`). Returns the summary instead when there
    is nothing to run (``"noop"``); raises as :func:`execute_generation` does (the call too)."""
    generation_id = UUID(str(generation_id))
    with session() as conn:
        started = generations.start_running(conn, generation_id, attempt, dispatch_ref)  # one round trip
        if started is None:  # not runnable: say why
            gen = generations.get(conn, generation_id)
            if attempt is not None and int(gen["attempt"]) != int(attempt) \
                    and not (GS(gen["status"]) in _DONE or GS(gen["status"]).is_finished()):
                return {"generation_id": str(generation_id), "status": "noop", "was": gen["status"],
                        "stale_attempt": int(attempt), "attempt": int(gen["attempt"])}
            return {"generation_id": str(generation_id), "status": "noop", "was": gen["status"]}
        gen, campaign, rows = started
        spec = campaigns.spec_of(campaign)

    fidelity = spec.fidelities[gen["fidelity"]]
    names = spec.param_names
    params = SearchSpace.of(spec).model_matrix([r["params"] for r in rows])  # categoricals as their index
    t0 = time.perf_counter()
    path = get_settings().artifacts_dir / spec.slug / f"gen-{gen['generation_index']:05d}-{generation_id}.h5"
    model, settings, indices = batch_inputs(spec, gen, rows)

    def gave_up(e: Exception) -> None:
        with session() as conn:
            generations.retry_or_fail(conn, generation_id, [GS.RUNNING], f"evaluation failed: {type(e).__name__}: {e}",
                                      fence=dispatch_ref)

    try:
        batch = _Batch(
            generation_id=str(generation_id), model=model, fixed=None,
            param_names=names, params=params, seed=int(gen["seed"]), dtype=spec.dtype,
            fidelity={"index": gen["fidelity"], "name": fidelity.name, "settings": settings},
            artifact_path=path, space=spec.model_dump(mode="json")["space"],
            about={"campaign": spec.slug, "generation_index": gen["generation_index"], "kind": gen["kind"],
                   "attempt": gen["attempt"]},
            candidate_indices=indices,
        )
        result = batch.evaluate()
    except Exception as e:
        gave_up(e)
        raise

    def finish() -> dict[str, Any]:
        try:
            doc = batch.record(result)
        except Exception as e:
            gave_up(e)
            raise
        with session() as conn:
            won = generations.mark_succeeded(conn, generation_id, result_document=doc, artifact_path=str(path),
                                             fence=dispatch_ref)
        ok = int(np.sum(result.status == 0))
        return {
            "generation_id": str(generation_id),
            "campaign_id": str(gen["campaign_id"]),
            "operator": gen["operator"],
            "kind": gen["kind"],
            "status": "succeeded" if won else "lost_race",
            "candidates": len(rows),
            "ok": ok,
            "wall_seconds": round(time.perf_counter() - t0, 4),
            "compile_seconds": round(result.compile_seconds, 4),
            "artifact": str(path),
            "best": {k: float(np.nanmin(v)) for k, v in result.metrics.items()} if ok else {},
        }

    return finish
