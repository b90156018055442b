"""One HDF5 artifact per generation: parameters, metrics, status, extras and provenance.

Layout (P candidates, D parameters)::

    /params              (P, D) float64, attribute ``param_names`` (JSON list)
    /status              (P,) int32 :class:`~huntflow.engine.models.base.Status` codes
    /metrics/<name>      (P,) float64
    /extras/<name>       (P, ...) as the model produced them (downsampled fields, series, spectra)
    attributes on /:     ``format`` (= FORMAT), ``provenance`` and ``generation`` (JSON objects),
                         ``wall_seconds``, ``compile_seconds``, ``device_count``; external
                         (function/command) models add ``failures`` (JSON list: per candidate
                         null or its category and detail) and ``/candidate_seconds`` (P,)

Files are written to a temporary sibling and moved into place with ``os.replace``, so a reader
sees either no file or a whole one. :func:`metrics_from_artifact` is the parse stage's second
tier: it recomputes what it can from the stored data (for ``cgl``: ``log_prime_sse`` from the
stored radial spectrum, ``energy`` and ``max_amp`` from the stored field when it is at full
resolution) and otherwise returns the stored metrics.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from huntflow.errors import ArtifactError

FORMAT = "huntflow-generation/1"


@dataclass(frozen=True)
class GenerationArtifact:
    """What :func:`read_generation` returns; arrays as in the module docstring."""

    param_names: tuple[str, ...]
    params: np.ndarray
    metrics: dict[str, np.ndarray]
    status: np.ndarray
    extras: dict[str, np.ndarray]
    provenance: dict[str, Any]
    generation: dict[str, Any]
    timing: dict[str, float]
    failures: tuple[dict[str, Any] | None, ...] = ()


def write_generation(
    path: str | os.PathLike,
    *,
    param_names: tuple[str, ...] | list[str],
    params: np.ndarray,
    result: Any,
    provenance: dict[str, Any],
    generation: dict[str, Any] | None = None,
) -> Path:
    """Write one generation's artifact atomically and return its path.

    ``result`` is a :class:`~huntflow.engine.evaluate.PopulationResult` for ``params`` (P, D).

    Raises:
        ValueError: shapes disagree (params vs names, or a result array's leading axis vs P).
        ArtifactError: the file cannot be written.
    """
    path = Path(path)
    params = np.asarray(params, dtype=np.float64)
    names = [str(n) for n in param_names]
    if params.ndim != 2 or params.shape[1] != len(names):
        raise ValueError(f"params must have shape (P, {len(names)}), got {params.shape}")
    n = params.shape[0]
    arrays = {"status": result.status, **{f"metrics/{k}": v for k, v in result.metrics.items()}}
    arrays.update({f"extras/{k}": v for k, v in result.extras.items()})
    for name, value in arrays.items():
        if np.shape(value)[:1] != (n,):
            raise ValueError(f"{name}: leading axis must be P={n}, got shape {np.shape(value)}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        os.close(fd)
        try:
            with h5py.File(tmp, "w") as f:
                f.attrs["format"] = FORMAT
                f.attrs["provenance"] = json.dumps(provenance, sort_keys=True, default=str)
                f.attrs["generation"] = json.dumps(generation or {}, sort_keys=True, default=str)
                for attr in ("wall_seconds", "compile_seconds", "device_count"):
                    f.attrs[attr] = getattr(result, attr, float("nan"))
                if getattr(result, "failures", None):
                    f.attrs["failures"] = json.dumps(list(result.failures), default=str)
                if getattr(result, "candidate_seconds", None) is not None:
                    f.create_dataset("candidate_seconds", data=np.asarray(result.candidate_seconds, dtype=np.float64))
                f.create_dataset("params", data=params).attrs["param_names"] = json.dumps(names)
                f.create_dataset("status", data=np.asarray(result.status, dtype=np.int32))
                for name, value in arrays.items():
                    if name != "status":
                        f.create_dataset(name, data=np.asarray(value), compression="gzip", compression_opts=1)
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
    except OSError as e:
        raise ArtifactError(f"cannot write generation artifact {path}: {e}") from e
    return path


def read_generation(path: str | os.PathLike) -> GenerationArtifact:
    """Read an artifact written by :func:`write_generation`.

    Raises:
        ArtifactError: the file is missing, not HDF5, or lacks a required dataset/attribute.
    """
    path = Path(path)
    if not path.is_file():
        raise ArtifactError(f"generation artifact {path} does not exist")
    try:
        with h5py.File(path, "r") as f:
            if f.attrs.get("format") != FORMAT:
                raise ArtifactError(f"{path}: not a huntflow generation artifact (format {f.attrs.get('format')!r})")
            params = f["params"]
            return GenerationArtifact(
                param_names=tuple(json.loads(params.attrs["param_names"])),
                params=params[()],
                metrics={k: v[()] for k, v in f.get("metrics", {}).items()},
                status=f["status"][()],
                extras={k: v[()] for k, v in f.get("extras", {}).items()},
                provenance=json.loads(f.attrs["provenance"]),
                generation=json.loads(f.attrs["generation"]),
                timing={k: float(f.attrs[k]) for k in ("wall_seconds", "compile_seconds", "device_count")},
                failures=tuple(json.loads(f.attrs["failures"])) if "failures" in f.attrs else (),
            )
    except ArtifactError:
        raise
    except (OSError, KeyError, ValueError) as e:  # h5py raises OSError for non-HDF5 / truncated files
        raise ArtifactError(f"generation artifact {path} is corrupt or incomplete: {e}") from e


def metrics_from_artifact(path: str | os.PathLike) -> dict[str, Any]:
    """Per-candidate metrics and status recovered from an artifact (the parse stage's tier 2).

    Returns ``{"metrics": name -> (P,) float64, "status": (P,) int32, "recomputed": [names],
    "failures": [...]}``; ``recomputed`` lists the metrics recomputed from stored data rather
    than copied, ``failures`` an external model's per-candidate failure details (else empty).

    Raises:
        ArtifactError: as :func:`read_generation`.
    """
    art = read_generation(path)
    metrics = {k: np.asarray(v, dtype=np.float64) for k, v in art.metrics.items()}
    recomputed: list[str] = []
    model = (art.generation.get("model") or {}) if isinstance(art.generation.get("model"), dict) else {}
    model_name = model.get("name", art.generation.get("model"))
    if model_name == "cgl" and "radial_spectrum" in art.extras:
        from huntflow.engine.models import cgl

        fixed = {**cgl.OPTIONS, **(model.get("fixed") or art.generation.get("fixed") or {})}
        fidelity = {**cgl.FIDELITY, **(art.generation.get("fidelity") or {})}
        valid = art.status != 3  # INVALID_PARAMS keeps NaN metrics
        new = cgl.metrics_from_extras(art.extras, length=float(fixed["L"]), grid=int(fidelity["grid"]))
        for name, values in new.items():
            metrics[name] = np.where(valid, values, np.nan)
            recomputed.append(name)
    return {"metrics": metrics, "status": np.asarray(art.status, dtype=np.int32), "recomputed": recomputed,
            "failures": list(art.failures)}
