"""A function model's worker process (run as a script: stdlib only, never imports huntflow.engine).

``python -P worker.py FD TARGET``: imports ``TARGET`` (``module:attr``), reports ready on the
connection ``FD``, then evaluates one candidate per request until the connection closes. Each
request is JSON ``{"params", "fidelity", "seed", "workdir"}``; during the call the cwd is the
workdir and file descriptors 1/2 go to ``workdir/stdout.txt`` / ``stderr.txt``. The reply is
JSON: ``{"ok": true, "value": {...}}`` (metric values converted to floats where they are
numbers, ``{"invalid": repr}`` where not) or ``{"ok": false, "type", "message", "traceback",
"category"}``. The parent runs this process as a session leader and kills its whole process
group at the walltime; it exits by itself when the parent goes away (end of file).
"""

import importlib
import json
import os
import sys
import traceback
from multiprocessing.connection import Connection
from pathlib import Path

TAIL = 4000


def _load(target):
    module_name, _, attr = target.partition(":")
    obj = importlib.import_module(module_name)
    for part in attr.split("."):
        obj = getattr(obj, part)
    if not callable(obj):
        raise TypeError(f"{target} is a {type(obj).__name__}, not a callable")
    return obj


def _error(e):
    category = getattr(e, "failure_category", None)
    return {"ok": False, "type": type(e).__name__, "message": str(e)[:TAIL],
            "traceback": "".join(traceback.format_exception(e))[-TAIL:],
            "category": category if isinstance(category, str) else None}


def _convert(value):
    if not isinstance(value, dict):
        return {"not_a_dict": type(value).__name__, "repr": repr(value)[:500]}
    out = {}
    for k, v in value.items():
        if isinstance(v, (bool, str, bytes)) or v is None:
            out[str(k)] = {"invalid": repr(v)[:200]}
            continue
        try:
            out[str(k)] = float(v)
        except (TypeError, ValueError):
            out[str(k)] = {"invalid": repr(v)[:200]}
    return out


def _call(fn, req):
    workdir = Path(req["workdir"])
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    here = os.getcwd()
    with open(workdir / "stdout.txt", "wb") as out, open(workdir / "stderr.txt", "wb") as err:
        os.dup2(out.fileno(), 1)
        os.dup2(err.fileno(), 2)
        try:
            os.chdir(workdir)
            value = fn(dict(req["params"]), fidelity=dict(req["fidelity"]), seed=int(req["seed"]), workdir=workdir)
            reply = {"ok": True, "value": _convert(value)}
        except BaseException as e:  # the candidate failed; the worker lives on
            traceback.print_exception(e)
            reply = _error(e)
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.chdir(here)
    for fd in saved:
        os.close(fd)
    return reply


def main(fd, target):
    conn = Connection(fd)
    try:
        fn = _load(target)
    except BaseException as e:
        conn.send_bytes(json.dumps({"ready": False, **_error(e)}).encode())
        return 3
    conn.send_bytes(json.dumps({"ready": True, "pid": os.getpid()}).encode())
    while True:
        try:
            req = json.loads(conn.recv_bytes())
        except (EOFError, OSError):
            return 0
        conn.send_bytes(json.dumps(_call(fn, req)).encode())


if __name__ == "__main__":
    sys.exit(main(int(sys.argv[1]), sys.argv[2]))
