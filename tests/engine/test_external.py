"""Function and command models on real processes: every failure is a category, nothing mocked."""

from __future__ import annotations

import json
import os
import sys
import textwrap
import time

import numpy as np
import pytest

from huntflow.engine.evaluate import evaluate_population
from huntflow.engine.external import functions
from huntflow.engine.external.batch import candidate_seed
from huntflow.engine.models.base import Status

SIM = '''
import math, os, subprocess, sys, time
from huntflow.errors import EvaluationFailed

def sim(params, *, fidelity, seed, workdir):
    mode = params["mode"]
    x = params["x"]
    if mode == "ok":
        print("working on", x)
        return {"f": (x - 1.0) ** 2 + fidelity.get("shift", 0.0), "seed": seed, "cwd_is_workdir": float(os.getcwd() == str(workdir))}
    if mode == "raise":
        raise ValueError(f"bad x {x}")
    if mode == "nan":
        return {"f": math.nan, "seed": 1.0, "cwd_is_workdir": 1.0}
    if mode == "missing":
        return {"seed": 1.0}
    if mode == "string":
        return {"f": "1.0", "seed": 1.0, "cwd_is_workdir": 1.0}
    if mode == "list":
        return [1.0]
    if mode == "own":
        raise EvaluationFailed("vmec_nonconvergence", "no equilibrium after 10 iterations")
    if mode == "die":
        sys.stderr.write("about to die\\n"); sys.stderr.flush()
        os._exit(7)
    if mode == "hang":
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
        (workdir / "child.pid").write_text(str(child.pid))
        time.sleep(60)
    raise AssertionError(mode)
'''
MODES = ["ok", "raise", "nan", "missing", "string", "list", "own", "die", "hang", "ok"]


@pytest.fixture(scope="module")
def simdir(tmp_path_factory):
    d = tmp_path_factory.mktemp("sim")
    (d / "byo_test_sim.py").write_text(SIM)
    yield d
    functions.close_pools()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie is dead for our purpose
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split()[2] != "Z"
    except OSError:
        return False


def _model(simdir, **kw):
    return {"function": "byo_test_sim:sim", "pythonpath": [str(simdir)], "metrics": ["f", "seed", "cwd_is_workdir"],
            "workers": 3, "walltime_seconds": 2.0, **kw}


def test_every_function_failure_is_its_own_category_and_the_rest_finish(simdir, tmp_path):
    from huntflow.engine.external.batch import RunSettings, run_external

    settings = RunSettings(kind="function", target="byo_test_sim:sim", metrics=("f", "seed", "cwd_is_workdir"),
                           workers=3, walltime_seconds=2.0, pythonpath=(str(simdir),))
    reqs = [{"params": {"x": float(i), "mode": m}, "fidelity": {"shift": 0.5}, "seed": candidate_seed(9, i), "index": i}
            for i, m in enumerate(MODES)]
    t0 = time.perf_counter()
    out = run_external(settings, reqs, tmp_path / "wd")
    elapsed = time.perf_counter() - t0
    cats = [o.category for o in out]
    assert cats == [None, "exception", "nonfinite", "invalid_output", "invalid_output", "invalid_output",
                    "vmec_nonconvergence", "exit_code", "timeout", None]
    assert out[0].metrics == {"f": 1.5, "seed": float(candidate_seed(9, 0)), "cwd_is_workdir": 1.0}
    assert out[9].metrics["f"] == (9.0 - 1.0) ** 2 + 0.5
    assert out[1].detail["type"] == "ValueError" and "bad x 1.0" in out[1].detail["message"]
    assert "byo_test_sim.py" in out[1].detail["traceback"]
    assert "missing metric(s) ['f', 'cwd_is_workdir']" in out[3].detail["message"]
    assert "non-numeric" in out[4].detail["message"] and out[4].detail["found"]["f"] == "'1.0'"
    assert "list" in out[5].detail["message"]
    assert out[6].detail["message"] == "no equilibrium after 10 iterations" and out[6].status is Status.FAILED
    assert out[7].detail["code"] == 7 and "about to die" in out[7].detail["stderr_tail"]
    assert out[8].status is Status.TIMEOUT and 1.9 < out[8].seconds < 30
    child = int((tmp_path / "wd" / "c00008" / "child.pid").read_text())
    deadline = time.time() + 5
    while _alive(child) and time.time() < deadline:
        time.sleep(0.05)
    assert not _alive(child), "the hung function's child survived its walltime"
    assert "working on 0.0" in (tmp_path / "wd" / "c00000" / "stdout.txt").read_text()
    assert elapsed < 20


def test_a_function_model_batch_through_evaluate_population_is_deterministic(simdir, tmp_path):
    model = _model(simdir, fixed={"mode": "ok"})
    x = np.array([[0.0], [0.5], [2.0]])
    a = evaluate_population(model, ("x",), x, seed=4, fidelity={"shift": 0.0}, workdir=tmp_path / "a")
    b = evaluate_population(model, ("x",), x[::-1], seed=4, fidelity={"shift": 0.0},
                            candidate_indices=np.array([2, 1, 0]))
    np.testing.assert_array_equal(a.status, [0, 0, 0])
    np.testing.assert_array_equal(a.metrics["f"], [1.0, 0.25, 1.0])
    np.testing.assert_array_equal(a.metrics["seed"], b.metrics["seed"][::-1])  # a candidate's seed is its own
    assert a.failures == (None, None, None) and a.candidate_seconds.shape == (3,)


CMD = r'''#!{python}
import json, os, subprocess, sys, time
job = json.load(open(sys.argv[1]))
mode = job["params"]["mode"]
with open(os.path.join(os.environ["HUNTFLOW_WORKDIR"], "argv.json"), "w") as f:
    json.dump(sys.argv[1:], f)
if mode == "ok":
    json.dump({{"f": job["params"]["x"] * 2, "seed": job["seed"]}}, open("metrics.json", "w"))
elif mode == "stdout":
    print("progress: 50%")
    print(json.dumps({{"f": 1.5, "seed": 0}}))
    print("done")
elif mode == "exit":
    sys.stderr.write("licence server unreachable\n"); sys.exit(3)
elif mode == "garbage":
    print("this is not json {{ at all")
elif mode == "badjson":
    open("metrics.json", "w").write("{{not json")
elif mode == "hang":
    child = subprocess.Popen(["sleep", "60"])
    open("child.pid", "w").write(str(child.pid))
    time.sleep(60)
elif mode == "flaky":
    marker = sys.argv[3]
    if not os.path.exists(marker):
        open(marker, "w").write("1"); sys.exit(75)
    json.dump({{"f": 0.0, "seed": 0}}, open("metrics.json", "w"))
'''


@pytest.fixture(scope="module")
def program(tmp_path_factory):
    d = tmp_path_factory.mktemp("prog")
    path = d / "prog.py"
    path.write_text(CMD.format(python=sys.executable))
    path.chmod(0o755)
    return path


def test_command_failures_are_categories_and_shell_metacharacters_reach_the_program_verbatim(program, tmp_path):
    from huntflow.engine.external.batch import RunSettings, run_external

    nasty = "a b; touch PWNED && echo $(id) `id` | cat > x * ? ~ \"'\\ {x}"
    settings = RunSettings(kind="command", target=(str(program), "{input}", "{params.label}", "{workdir}/marker"),
                           metrics=("f", "seed"), workers=3, walltime_seconds=1.5)
    modes = ["ok", "stdout", "exit", "garbage", "badjson", "hang", "ok"]
    reqs = [{"params": {"x": float(i), "mode": m, "label": nasty}, "fidelity": {}, "seed": i, "index": i}
            for i, m in enumerate(modes)]
    out = run_external(settings, reqs, tmp_path)
    assert [o.category for o in out] == [None, None, "exit_code", "invalid_output", "invalid_output", "timeout", None]
    assert out[0].metrics == {"f": 0.0, "seed": 0.0} and out[6].metrics == {"f": 12.0, "seed": 6.0}
    assert out[1].metrics == {"f": 1.5, "seed": 0.0}  # the last JSON object on stdout
    assert out[2].detail["code"] == 3 and "licence server unreachable" in out[2].detail["stderr_tail"]
    assert "not json" in out[3].detail["found"] and "not JSON" in out[4].detail["message"]
    argv = json.loads((tmp_path / "c00000" / "argv.json").read_text())
    assert argv == [str(tmp_path / "c00000" / "input.json"), nasty, str(tmp_path / "c00000") + "/marker"]
    assert not list(tmp_path.rglob("PWNED")) and not (tmp_path / "c00000" / "x").exists()
    child = int((tmp_path / "c00005" / "child.pid").read_text())
    deadline = time.time() + 5
    while _alive(child) and time.time() < deadline:
        time.sleep(0.05)
    assert not _alive(child), "the program's child survived its walltime"


def test_transient_categories_are_retried_with_backoff(program, tmp_path):
    from huntflow.engine.external.batch import Retries, RunSettings, run_external

    marker = tmp_path / "flaky-marker"
    settings = RunSettings(kind="command", target=(str(program), "{input}", "-", str(marker)), metrics=("f", "seed"),
                           workers=1, walltime_seconds=10, retries=Retries(max=2, categories=("exit_code",),
                                                                            backoff_seconds=0.2))
    t0 = time.perf_counter()
    (o,) = run_external(settings, [{"params": {"x": 0.0, "mode": "flaky"}, "fidelity": {}, "seed": 0, "index": 0}],
                        tmp_path / "wd")
    assert o.category is None and o.tries == 2 and time.perf_counter() - t0 >= 0.2
    no_retry = RunSettings(kind="command", target=(str(program), "{input}"), metrics=("f",), workers=1,
                           walltime_seconds=10, retries=Retries(max=2, categories=("timeout",), backoff_seconds=5))
    (o,) = run_external(no_retry, [{"params": {"x": 0.0, "mode": "exit"}, "fidelity": {}, "seed": 0, "index": 0}],
                        tmp_path / "wd2")
    assert o.category == "exit_code" and o.tries == 1  # not a listed category: not retried


def test_requests_carry_the_users_values_not_the_model_matrix():
    from huntflow.engine.external.batch import requests_for

    space = {"x": {"low": 0.0, "high": 1.0, "log": False}, "n": {"type": "int", "low": 1, "high": 9, "log": False},
             "solver": {"choices": ["cg", "gmres; rm -rf ~"]}, "tag": {"type": "fixed", "value": "v1"}}
    (req,) = requests_for(("x", "n", "solver", "tag"), np.array([[0.25, 3.0, 1.0, 0.0]]), fixed={"k": 2},
                          fidelity={"steps": 5}, seed=3, indices=np.array([4]), space=space)
    assert req["params"] == {"x": 0.25, "n": 3, "solver": "gmres; rm -rf ~", "tag": "v1", "k": 2}
    assert isinstance(req["params"]["n"], int) and req["seed"] == candidate_seed(3, 4) and req["index"] == 4
    (plain,) = requests_for(("x",), np.array([[0.5]]), fixed={}, fidelity={}, seed=0, indices=np.array([0]))
    assert plain["params"] == {"x": 0.5}


def test_a_function_gets_choices_and_integers_of_a_mixed_space(tmp_path):
    from huntflow.engine.space import SearchSpace
    from huntflow.engine.spec import parse_spec

    (tmp_path / "byo_mixed_sim.py").write_text(
        "def sim(params, *, fidelity, seed, workdir):\n"
        "    assert isinstance(params['n'], int) and isinstance(params['solver'], str), params\n"
        "    return {'f': params['x'] * params['n'] + {'cg': 0.0, 'gmres': 100.0}[params['solver']]}\n")
    spec = parse_spec({"slug": "byo-mixed", "space": {"x": {"low": 0.0, "high": 1.0},
                                                      "n": {"type": "int", "low": 1, "high": 5},
                                                      "solver": {"choices": ["cg", "gmres"]}},
                       "model": {"function": "byo_mixed_sim:sim", "metrics": ["f"], "pythonpath": [str(tmp_path)],
                                 "workers": 1},
                       "objectives": [{"metric": "f"}], "budget": {"evaluations": 4}})
    rows = [{"x": 0.5, "n": 4, "solver": "gmres"}, {"x": 0.25, "n": 2, "solver": "cg"}]
    out = evaluate_population(spec.model, spec.param_names, SearchSpace.of(spec).model_matrix(rows), seed=0,
                              space=spec.model_dump(mode="json")["space"])
    assert out.failures == (None, None), out.failures
    np.testing.assert_array_equal(out.metrics["f"], [102.0, 0.5])
