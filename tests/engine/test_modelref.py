"""The spec's model block: the four kinds, entry-point discovery, and refusals naming the field."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from huntflow.engine.evaluate import evaluate_population
from huntflow.engine.models import sources
from huntflow.engine.spec import load_spec, parse_spec
from huntflow.errors import SpecError

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def _spec(model, **kw):
    base = {"slug": "byo-spec", "model": model, "space": {"x": {"low": 0.0, "high": 1.0}},
            "objectives": [{"metric": "f"}], "budget": {"evaluations": 8}}
    base.update(kw)
    return parse_spec(base)


def _fields(excinfo) -> dict[str, str]:
    return dict(excinfo.value.errors)


@pytest.fixture
def plugin_site(tmp_path, monkeypatch):
    """An installed distribution as importlib.metadata sees one: a dist-info with entry_points.txt
    on sys.path, registering the examples/byo_jax JAX model and a function model description."""
    site = tmp_path / "site"
    info = site / "hf_pendulum-0.1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: hf-pendulum\nVersion: 0.1.0\n")
    (info / "entry_points.txt").write_text(textwrap.dedent("""\
        [huntflow.models]
        damped-pendulum = hf_pendulum:MODEL
        quadratic-fn = byo_plugin_fn:MODEL
        broken-plugin = byo_no_such_module:MODEL
        lazy-fn = byo_plugin_fn:LAZY
        """))
    (site / "byo_plugin_fn.py").write_text(textwrap.dedent("""\
        MODEL = {"function": "byo_plugin_fn:evaluate", "metrics": ["f"], "workers": 1, "walltime_seconds": 30}
        LAZY = {"function": "byo_heavy_not_installed_here:evaluate", "metrics": ["f"], "workers": 1}

        def evaluate(params, *, fidelity, seed, workdir):
            return {"f": (params["x"] - 0.25) ** 2}
        """))
    monkeypatch.syspath_prepend(str(EXAMPLES / "byo_jax" / "src"))
    monkeypatch.syspath_prepend(str(site))
    sources.entry_point.cache_clear()
    yield site
    sources.entry_point.cache_clear()


def test_a_jax_model_from_an_installed_package_is_found_through_the_entry_point(plugin_site):
    spec = load_spec(EXAMPLES / "byo_jax" / "spec.yaml")
    resolved = spec.model.resolve()
    assert resolved.jax is not None and type(resolved.jax).__module__ == "hf_pendulum"
    assert resolved.source() == {"kind": "jax", "entry_point": "huntflow.models:damped-pendulum",
                                 "value": "hf_pendulum:MODEL", "package": "hf-pendulum", "version": "0.1.0"}
    x = np.array([[0.99, 0.01], [0.5, 0.5]])
    out = evaluate_population(spec.model, spec.param_names, x, seed=1, fidelity={"steps": 200, "dt": 0.01})
    np.testing.assert_array_equal(out.status, [0, 0])
    assert out.metrics["period_error"][0] < out.metrics["period_error"][1]
    assert out.metrics["energy_left"][0] > out.metrics["energy_left"][1]


def test_a_function_model_registered_through_the_entry_point_runs_in_the_pool(plugin_site, tmp_path):
    spec = _spec({"name": "quadratic-fn"})
    resolved = spec.model.resolve()
    assert resolved.is_external and resolved.run_settings(("x",)).workers == 1
    out = evaluate_population(spec.model, ("x",), np.array([[0.25], [1.0]]), seed=0, workdir=tmp_path)
    np.testing.assert_allclose(out.metrics["f"], [0.0, 0.5625])
    src = resolved.source()
    assert src["function"] == "byo_plugin_fn:evaluate" and src["registered"]["package"] == "hf-pendulum"


def test_unknown_entry_points_and_unimportable_paths_are_refused_naming_the_field(plugin_site):
    with pytest.raises(SpecError) as e:
        _spec({"name": "no-such-simulator"})
    assert "unknown model 'no-such-simulator'" in _fields(e)["model.name"]
    assert "damped-pendulum" in _fields(e)["model.name"]  # the known ones are listed, plugins included
    with pytest.raises(SpecError) as e:
        _spec({"name": "broken-plugin"})
    assert "byo_no_such_module" in _fields(e)["model.name"]
    with pytest.raises(SpecError) as e:
        _spec({"function": "byo_not_a_module.sub:fn", "metrics": ["f"]})
    assert "cannot import module 'byo_not_a_module.sub'" in _fields(e)["model.function"]
    with pytest.raises(SpecError) as e:
        _spec({"function": "byo_plugin_fn:nope", "metrics": ["f"]})
    assert "has no attribute 'nope'" in _fields(e)["model.function"]
    with pytest.raises(SpecError) as e:
        _spec({"entrypoint": "byo_not_a_module:MODEL"})
    assert "cannot import" in _fields(e)["model.entrypoint"]
    with pytest.raises(SpecError) as e:
        _spec({"function": "not a path", "metrics": ["f"]})
    assert "model.function" in _fields(e)


def test_function_and_command_models_declare_metrics_checked_against_objectives(plugin_site):
    with pytest.raises(SpecError) as e:
        _spec({"function": "byo_plugin_fn:evaluate"})
    assert "must declare" in _fields(e)["model.metrics"]
    with pytest.raises(SpecError) as e:
        _spec({"function": "byo_plugin_fn:evaluate", "metrics": ["g"]})
    assert "unknown metric 'f'" in _fields(e)["objectives.0.metric"]
    with pytest.raises(SpecError) as e:
        _spec({"name": "sphere", "function": "byo_plugin_fn:evaluate"})
    assert "exactly one of" in _fields(e)["model"]


def test_commands_are_checked_at_add_time(tmp_path):
    with pytest.raises(SpecError) as e:
        _spec({"command": ["byo-no-such-program-anywhere", "{input}"], "metrics": ["f"]})
    assert "cannot find executable" in _fields(e)["model.command.0"]
    with pytest.raises(SpecError) as e:
        _spec({"command": [sys.executable, "{input}", "--x={params.nope}", "{oops"], "metrics": ["f"]})
    assert "unknown placeholder {params.nope}" in _fields(e)["model.command.2"]
    assert "unbalanced brace" in _fields(e)["model.command.3"]
    ok = _spec({"command": [sys.executable, "{input}", "--x={params.x}", "{{literal}}"], "metrics": ["f"]})
    assert ok.model.label == "command:" + Path(sys.executable).name


def test_relative_paths_resolve_against_the_spec_file():
    spec = load_spec(EXAMPLES / "byo_command" / "spec.yaml")
    assert spec.model.command[0] == str(EXAMPLES / "byo_command" / "sim.py")
    src = spec.model.resolve().source()
    assert src["executable"] == str(EXAMPLES / "byo_command" / "sim.py") and len(src["sha256"][src["executable"]]) == 64
    spec = load_spec(EXAMPLES / "byo_function" / "spec.yaml")
    assert spec.model.pythonpath == [str(EXAMPLES / "byo_function")]
    assert parse_spec(spec.model_dump(mode="json")) == spec  # a stored spec validates to itself


def test_a_registered_function_is_imported_only_where_it_runs(plugin_site, tmp_path):
    spec = _spec({"name": "lazy-fn"})  # the registration is checked, its (heavy) function is not imported
    assert "byo_heavy_not_installed_here" not in sys.modules
    out = evaluate_population(spec.model, ("x",), np.array([[0.5]]), seed=0, workdir=tmp_path)
    (failure,) = out.failures
    assert failure["category"] == "exception" and failure["where"] == "importing the function"
    assert "byo_heavy_not_installed_here" in failure["message"]


def test_built_in_models_are_listed_by_name_and_imported_on_first_lookup():
    import importlib

    from huntflow.engine.models.base import BUILTINS, Registry

    registry = Registry()
    assert registry.names() == sorted(BUILTINS) and not registry.models  # listed, nothing imported
    for target in set(BUILTINS.values()):  # the table names every model its modules define, and only those
        module, _, attr = target.partition(":")
        found = getattr(importlib.import_module(module), attr)
        defined = {m.name for m in (found if isinstance(found, tuple) else (found,))}
        assert defined == {n for n, t in BUILTINS.items() if t == target}
    assert registry.get("sphere").name == "sphere" and set(registry.models) == {"sphere"}
    assert registry.get("sphere") is registry.get("sphere")
    with pytest.raises(KeyError, match="unknown model 'nope'.*sphere"):
        registry.get("nope")
    with pytest.raises(ValueError, match="already registered"):
        registry.register_external("cgl", {"function": "m:f", "metrics": ["f"]})
    assert sources.name_source("cgl") == {"builtin": "cgl", "package": "huntflow"}
