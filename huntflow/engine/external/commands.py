"""Command models: any executable, run with no shell in a fresh per-candidate workdir.

huntflow writes ``input.json`` (params, fidelity, seed, candidate index) and ``params.json``
(params only) into the workdir, substitutes placeholders into the argv template — whole
``{name}`` tokens inside argv elements, never a shell — and runs the program there as a session
leader with stdout/stderr in ``stdout.txt``/``stderr.txt``. At the walltime the program's whole
process group is SIGKILLed. Metrics come from ``metrics.json`` in the workdir, else from the last
JSON object printed on stdout.

Placeholders: ``{input}``, ``{params}``, ``{metrics}`` (paths), ``{workdir}``, ``{seed}``,
``{index}``, ``{params.NAME}``, ``{fidelity.NAME}``; ``{{``/``}}`` are literal braces.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any, Mapping

from huntflow.engine.external.functions import SECRET_ENV, kill_group
from huntflow.engine.external.outcome import Outcome, check_metrics, failed, read_tail, tail

PLAIN = ("input", "params", "metrics", "workdir", "seed", "index")
_TOKEN = re.compile(r"\{\{|\}\}|\{([^{}]*)\}")


def placeholders(template: str) -> list[str]:
    """The placeholder names used in one argv element (escaped braces excluded)."""
    return [m.group(1) for m in _TOKEN.finditer(template) if m.group(1) is not None]


def check_template(argv: tuple[str, ...] | list[str], param_names: tuple[str, ...], fixed: Mapping[str, Any],
                   fidelity_keys: set[str]) -> list[tuple[int, str]]:
    """``(argv index, problem)`` for every unknown placeholder or stray brace."""
    known_params = set(param_names) | set(fixed)
    problems = []
    for i, element in enumerate(argv):
        stripped = _TOKEN.sub("", element)
        if "{" in stripped or "}" in stripped:
            problems.append((i, f"unbalanced brace in {element!r} (write {{{{ or }}}} for a literal one)"))
        for name in placeholders(element):
            head, _, rest = name.partition(".")
            if name in PLAIN or (head == "params" and rest in known_params) or \
                    (head == "fidelity" and rest in fidelity_keys):
                continue
            problems.append((i, f"unknown placeholder {{{name}}} (known: {', '.join('{' + p + '}' for p in PLAIN)}, "
                                "{params.NAME}, {fidelity.NAME})"))
    return problems


def substitute(argv: tuple[str, ...] | list[str], values: Mapping[str, Any]) -> list[str]:
    """argv with every placeholder replaced by ``str(value)`` (no shell, no splitting)."""
    def one(m: re.Match) -> str:
        if m.group(0) in ("{{", "}}"):
            return m.group(0)[0]
        return str(values[m.group(1)])
    return [_TOKEN.sub(one, element) for element in argv]


def resolve_executable(argv0: str) -> str | None:
    """Absolute path of the program ``argv0`` names (PATH lookup without a slash), or None."""
    if os.sep in argv0:
        p = Path(argv0)
        return str(p.resolve()) if p.is_file() and os.access(p, os.X_OK) else None
    return shutil.which(argv0)


def executable_source(argv: tuple[str, ...] | list[str]) -> dict[str, Any]:
    """Provenance of a command: the executable's path and sha256 (and of any file argument)."""
    out: dict[str, Any] = {"kind": "command", "argv": list(argv)}
    path = resolve_executable(argv[0])
    out["executable"] = path
    files = {}
    for element in [path, *argv[1:]]:
        if element and not placeholders(element) and os.path.isfile(element):
            files[element] = _sha256(element)
    out["sha256"] = files
    return out


def _sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def last_json_object(text: str) -> Any:
    """The last line of ``text`` that is a JSON object, else None."""
    for line in reversed(text.splitlines()):
        line = line.strip()
        if line.startswith("{"):
            try:
                value = json.loads(line)
            except ValueError:
                continue
            if isinstance(value, dict):
                return value
    return None


def run_command(argv: tuple[str, ...], request: dict[str, Any], declared: tuple[str, ...], walltime: float) -> Outcome:
    """Run one candidate's program (never raises); see the module docstring."""
    workdir = Path(request["workdir"])
    inputs = {k: request[k] for k in ("params", "fidelity", "seed", "index")}
    (workdir / "input.json").write_text(json.dumps(inputs, indent=1))
    (workdir / "params.json").write_text(json.dumps(request["params"], indent=1))
    values: dict[str, Any] = {"input": workdir / "input.json", "params": workdir / "params.json",
                              "metrics": workdir / "metrics.json", "workdir": workdir,
                              "seed": request["seed"], "index": request["index"]}
    values.update({f"params.{k}": v for k, v in request["params"].items()})
    values.update({f"fidelity.{k}": v for k, v in request["fidelity"].items()})
    args = substitute(argv, values)
    env = {k: v for k, v in os.environ.items() if k not in SECRET_ENV}
    env.update(HUNTFLOW_WORKDIR=str(workdir), HUNTFLOW_SEED=str(request["seed"]))
    t0 = time.perf_counter()
    with open(workdir / "stdout.txt", "wb") as out, open(workdir / "stderr.txt", "wb") as err:
        try:
            proc = subprocess.Popen(args, cwd=workdir, stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                                    start_new_session=True, env=env)
        except OSError as e:
            return failed(declared, "exception", type=type(e).__name__, message=f"cannot run {args[0]!r}: {e}")
        try:
            code = proc.wait(timeout=walltime)
        except subprocess.TimeoutExpired:
            kill_group(proc)
            o = failed(declared, "timeout", message=f"killed after {walltime:g} s (walltime)", walltime_seconds=walltime)
            o.seconds = time.perf_counter() - t0
            return o
        finally:
            kill_group(proc)  # whatever the program left running in its group goes with it
    elapsed = time.perf_counter() - t0
    if code != 0:
        o = failed(declared, "exit_code", code=code, message=f"exited with code {code}",
                   stderr_tail=read_tail(workdir / "stderr.txt"))
    else:
        o = _read_metrics(workdir, declared)
    o.seconds = elapsed
    return o


def _read_metrics(workdir: Path, declared: tuple[str, ...]) -> Outcome:
    path = workdir / "metrics.json"
    if path.is_file():
        text = path.read_text(errors="replace")
        try:
            raw = json.loads(text)
        except ValueError as e:
            return failed(declared, "invalid_output", message=f"metrics.json is not JSON: {e}", found=tail(text, 500))
        return check_metrics(raw, declared)
    stdout = read_tail(workdir / "stdout.txt", 1 << 16)
    raw = last_json_object(stdout)
    if raw is None:
        return failed(declared, "invalid_output", message="no metrics.json and no JSON object on stdout",
                      found=tail(stdout, 500))
    return check_metrics(raw, declared)
