"""What a kit claims is checked, never trusted: safe file access and comparisons with the store.

A kit travels through hands and machines we do not control, so on the way back
(:func:`huntflow.tasks.kit.import_kit`) every claim is compared with the stored generation:

* ``kit.json`` must equal, field by field, the kit the store would write now for that
  generation (:func:`~huntflow.tasks.kit.expected_kit`): campaign, model, parameter names and
  every candidate's values, seed, dtype, fidelity rung and settings, attempt. Forged parameters
  are refused, whatever the result says.
* ``result.json`` must name the same model, seed and fidelity, and hold only finite JSON numbers
  (``NaN``, ``Infinity`` and overflowing literals such as ``1e400`` are refused: the engine writes
  non-finite values as ``null``).
* ``artifact.h5`` is required, must be HDF5 in huntflow's generation format with the stored
  parameters, one status per candidate, and the same generation id, attempt, model and seed.

Files are opened with ``O_NOFOLLOW`` (a symlink is refused, never followed), must be regular
files under a size cap, and the artifact is copied from the opened descriptor to a temporary
file that is validated before it is moved into the data dir; a refused import removes it.
"""

from __future__ import annotations

import json
import math
import os
import stat
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from huntflow.errors import ArtifactError, KitError

MAX_JSON_BYTES = 256 * 2**20
MAX_ARTIFACT_BYTES = 16 * 2**30


def open_regular(path: Path, max_bytes: int) -> int:
    """A read-only descriptor on ``path`` that is a regular file, not a symlink, under the cap.

    Raises:
        KitError: missing (FileNotFoundError is re-raised for the caller's hint), a symlink, not
            a regular file, or too large.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise
    except OSError as e:
        if os.path.islink(path):
            raise KitError(f"{path} is a symbolic link; kits must hold regular files") from None
        raise KitError(f"cannot open {path}: {e.strerror or e}") from None
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        os.close(fd)
        raise KitError(f"{path} is not a regular file")
    if st.st_size > max_bytes:
        os.close(fd)
        raise KitError(f"{path} is {st.st_size} bytes, more than the {max_bytes} allowed")
    return fd


def _no_constant(name: str) -> float:
    raise ValueError(f"non-finite number {name} (JSON has none; huntflow writes null)")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"number {text} overflows a float64")
    return value


def read_json(path: Path, hint: str = "") -> dict[str, Any]:
    """A JSON object from a regular file, strict: UTF-8, finite numbers only.

    Raises:
        KitError: missing (with ``hint``), a symlink, too large, not UTF-8, not JSON, not an object.
    """
    try:
        fd = open_regular(path, MAX_JSON_BYTES)
    except FileNotFoundError:
        raise KitError(f"{path} is missing{hint}") from None
    with os.fdopen(fd, "rb") as f:
        raw = f.read(MAX_JSON_BYTES + 1)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise KitError(f"{path} is not UTF-8 text (byte {e.start})") from None
    try:
        data = json.loads(text, parse_constant=_no_constant, parse_float=_finite_float)
    except RecursionError:
        raise KitError(f"{path} is not valid JSON: nested too deeply") from None
    except ValueError as e:
        raise KitError(f"{path} is not valid JSON: {e}") from None
    if not isinstance(data, dict):
        raise KitError(f"{path} must hold a JSON object")
    return data


def write_file(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically, never through a symlink (it is refused).

    Raises:
        KitError: ``path`` is a symlink or cannot be written.
    """
    if path.is_symlink():
        raise KitError(f"{path} is a symbolic link; refusing to write through it")
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(tmp, path)  # replaces a link planted meanwhile, never writes its target
    except OSError as e:
        raise KitError(f"cannot write {path}: {e.strerror or e}") from None


def _differs(field: str, got: Any, want: Any) -> KitError:
    text = json.dumps(got, default=str)
    shown = text if len(text) <= 80 else text[:77] + "..."
    return KitError(f"kit.json: {field} is {shown}, the stored generation has {json.dumps(want, default=str)[:80]}")


def _canon(value: Any) -> str:
    """JSON text with sorted keys: equal only when the JSON is (``true`` is not ``1``)."""
    return json.dumps(value, sort_keys=True, default=str)


def compare_kit(kit: dict[str, Any], expected: dict[str, Any]) -> None:
    """Refuse ``kit`` unless every field of ``expected`` (the stored generation) is equal in it,
    as JSON: same values and same types.

    Raises:
        KitError: naming the first field that differs (for ``params``: the candidate and value).
    """
    for field, want in expected.items():
        got = kit.get(field)
        if field == "params" and isinstance(got, list) and len(got) == len(want):
            for i, (row, stored) in enumerate(zip(got, want, strict=True)):
                if _canon(row) != _canon(stored):
                    raise KitError(f"kit.json: params of candidate {i} are {row}, the stored candidate is {stored}"
                                   " (a kit's candidates cannot be changed)")
        elif _canon(got) != _canon(want):
            raise _differs(field, got, want)


def check_document(doc: dict[str, Any], expected: dict[str, Any], label: str) -> None:
    """The result document's claimed model (``label``: the spec's model label), seed and fidelity
    must be the stored generation's.

    Raises:
        KitError: naming the field.
    """
    fidelity = expected["fidelity"]
    claims = {"model": label, "seed": expected["seed"], "fidelity": fidelity["settings"]}
    for field, want in claims.items():
        if doc.get(field) != want:
            raise KitError(f"result.json: {field} is {json.dumps(doc.get(field), default=str)[:80]},"
                           f" the stored generation has {json.dumps(want)[:80]}")
    prov = doc.get("provenance")
    if not isinstance(prov, dict):
        raise KitError(f"result.json: provenance must be an object, got {type(prov).__name__}")
    for field, want in (("seed", expected["seed"]), ("dtype", expected["dtype"]), ("model", label)):
        if field in prov and prov[field] != want:
            raise KitError(f"result.json: provenance.{field} is {prov[field]!r}, the stored generation has {want!r}")
    rung = prov.get("fidelity")
    if isinstance(rung, dict) and (rung.get("index"), rung.get("name")) != (fidelity["index"], fidelity["name"]):
        raise KitError(f"result.json: provenance.fidelity is rung {rung.get('name')!r},"
                       f" the stored generation runs at {fidelity['name']!r}")


def _same(a: Any, b: float) -> bool:
    b = float(b)
    return (a is None and not math.isfinite(b)) or (isinstance(a, (int, float)) and not isinstance(a, bool)
                                                    and float(a) == b)


def _agree(doc: dict[str, Any], art) -> None:
    """The result document and the artifact must tell the same story, candidate by candidate."""
    if doc.get("provenance") != art.provenance:
        raise KitError("result.json: provenance differs from artifact.h5's")
    for c in doc.get("candidates") or []:
        i = c.get("index") if isinstance(c, dict) else None
        if not isinstance(i, int) or isinstance(i, bool) or not 0 <= i < len(art.status):
            continue  # malformed entries are counted by the document check
        if (c.get("status") == "ok") != (int(art.status[i]) == 0):
            raise KitError(f"result.json: candidate {i} is {c.get('status')!r}, artifact.h5 has status {int(art.status[i])}")
        metrics = c.get("metrics") if isinstance(c.get("metrics"), dict) else {}
        for name, value in metrics.items():
            stored = art.metrics.get(name)
            if stored is None or not _same(value, stored[i]):
                raise KitError(f"result.json: candidate {i} metric {name!r} differs from artifact.h5's")


def stage_artifact(source: Path, dest_dir: Path, expected: dict[str, Any], doc: dict[str, Any], label: str) -> Path:
    """Copy ``source`` (no symlink) to a temporary file in ``dest_dir`` and validate the copy:
    the stored generation's, and saying what the result document says (status, metrics and
    provenance of every candidate), so that neither can be edited alone.

    Returns:
        The temporary path; the caller moves it into place once the rows are stored, or
        unlinks it.
    Raises:
        KitError: missing, a symlink, not HDF5, or not the stored generation's artifact.
    """
    from huntflow.engine.artifacts import read_generation

    try:
        fd = open_regular(source, MAX_ARTIFACT_BYTES)
    except FileNotFoundError:
        raise KitError(f"{source} is missing (run `huntflow kit run` first)") from None
    dest_dir.mkdir(parents=True, exist_ok=True)
    out, tmp = tempfile.mkstemp(prefix=".import.", suffix=".h5.tmp", dir=dest_dir)
    tmp_path = Path(tmp)
    try:
        with os.fdopen(fd, "rb") as src, os.fdopen(out, "wb") as dst:
            while chunk := src.read(2**20):
                dst.write(chunk)
        try:
            art = read_generation(tmp_path)
        except ArtifactError as e:
            raise KitError(f"artifact.h5 is not a huntflow generation artifact: {str(e).replace(tmp, str(source))}") \
                from None
        want = np.asarray(expected["params"], dtype=np.float64)
        if list(art.param_names) != list(expected["param_names"]):
            raise KitError(f"artifact.h5: param_names are {list(art.param_names)}, stored {expected['param_names']}")
        if art.params.shape != want.shape or not np.array_equal(art.params, want):
            raise KitError("artifact.h5: params differ from the stored candidates")
        if np.shape(art.status) != (want.shape[0],):
            raise KitError(f"artifact.h5: status has shape {np.shape(art.status)}, expected ({want.shape[0]},)")
        gen = art.generation
        for field in ("generation_id", "attempt"):
            if gen.get(field) != expected[field]:
                raise KitError(f"artifact.h5: generation.{field} is {gen.get(field)!r}, expected {expected[field]!r}")
        if art.provenance.get("seed") != expected["seed"] or art.provenance.get("model") != label:
            raise KitError("artifact.h5: provenance seed/model differ from the stored generation")
        _agree(doc, art)
        return tmp_path
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise
