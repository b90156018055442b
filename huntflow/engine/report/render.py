"""The report's sections as Markdown (tables, 6 significant digits)."""

from __future__ import annotations

from huntflow.engine.report.values import (IMPROVEMENT_TOL, MAX_FRONT_ROWS, MAX_MESSAGE, MAX_TRAJECTORY_ROWS, Row,
                                           code, duration, num, pct, pick, table, text, value, when)


def header(r: Row) -> list[str]:
    c = r["campaign"]
    status = text(c["status"]) + (f" ({code(c['completion_reason'])})" if c.get("completion_reason") else "")
    objectives = ", ".join(
        f"{code(o['metric'])} ({o['goal']}{'' if o['target'] is None else ', target ' + num(o['target'])})"
        for o in c["objectives"])
    constraints = ", ".join(
        " and ".join(x for x in (None if k["min"] is None else f"{code(k['metric'])} ≥ {num(k['min'])}",
                                 None if k["max"] is None else f"{code(k['metric'])} ≤ {num(k['max'])}") if x)
        for k in c["constraints"]) or "none"
    opt = c["optimizer"]
    used = f"{c['evaluations_used']} of {c['evaluations_budget']}"
    if c["evaluations_pending"]:
        used += f" ({c['evaluations_pending']} pending)"
    rows = [
        ["model", code(c["model"]) + (f" {value(c['model_fixed'])}" if c["model_fixed"] else "")],
        ["status", status],
        ["mode", text(c["mode"] or "—")],
        ["created", when(c["created_at"])],
        ["finished", when(c["finished_at"])],
        ["elapsed", duration(c["elapsed_seconds"])],
        ["evaluations used / budget", used],
        ["ticks", str(c["ticks"])],
        ["optimizer", f"{code(opt['name'])}, population {opt['population']}"
                      + (f", options {value(opt['options'])}" if opt["options"] else "")],
        ["seed", str(c["seed"])],
        ["objectives", objectives],
        ["constraints", constraints],
        ["fidelity ladder", " → ".join(code(f) for f in c["fidelities"])],
        ["report generated", when(r["generated_at"])],
    ]
    title = f"# Campaign report: {text(c['slug'])}"
    lines = [title, ""]
    if c.get("title"):
        lines += [f"*{text(c['title'])}*", ""]
    return lines + table(["", ""], [[f"**{k}**", v] for k, v in rows]) + [""]


def best(r: Row) -> list[str]:
    b = r["best"]
    lines = ["## Best candidate", ""]
    if b is None:
        if not r["evaluations"]["total"]:
            lines += ["No evaluations yet: the campaign has not run a generation.", ""]
        else:
            lines += [f"No feasible evaluation yet ({r['evaluations']['total']} evaluated).", ""]
        return lines
    verdict = "**Certified**" if b["certified"] else "**Not certified**"
    lines += [f"{verdict} — {text(b['note'])}.", ""]
    ident = [
        ["objective", num(b["objective"])],
        ["fidelity", f"{code(b['fidelity_name'])} (rung {b['fidelity'] + 1}; top: {code(b['top_fidelity_name'])})"],
        ["evaluation", code(b["evaluation_id"])],
        ["generation", f"{num(b['generation_index'])} ({text(b['kind'] or '—')}), candidate {num(b['candidate_index'])}"],
        ["target met", num(b["target_met"]) if b["target_met"] is not None else "no target"],
        ["wall time", duration(b["wall_seconds"])],
    ]
    if b.get("score") is not None:
        how = " (computed by the model's own evaluate on this candidate)" if b.get("score_by_model_evaluate") else ""
        ident.insert(1, ["score", num(b["score"]) + how])
    lines += table(["", ""], [[f"**{k}**", v] for k, v in ident]) + [""]
    lines += ["### Parameters", ""] + table(["parameter", "value"], [[code(k), num(v)] for k, v in b["params"].items()]) + [""]
    lines += ["### Objectives", ""] + table(
        ["metric", "goal", "value", "target", "met"],
        [[code(o["metric"]), o["goal"], num(o["value"]), num(o["target"]), "—" if o["met"] is None else num(o["met"])]
         for o in b["objectives"]]) + [""]
    if b["constraints"]:
        lines += ["### Constraints (g ≤ 0 is satisfied)", ""] + table(
            ["constraint", "g", "satisfied"],
            [[code(k["name"]), num(k["value"]), num(k["satisfied"])] for k in b["constraints"]]) + [""]
    if b["metrics"]:
        lines += ["### Metrics", ""] + table(["metric", "value"], [[code(k), value(v)] for k, v in sorted(b["metrics"].items())]) + [""]
    p = b["provenance"]
    known = ("engine_version", "git_commit", "jax_version", "jax_backend", "device_count", "dtype", "seed",
             "fidelity", "model", "attempt", "parse_tier")
    prov_rows = [[code(k), value(p[k])] for k in known if k in p] + [[code(k), value(v)] for k, v in sorted(p.items()) if k not in known]
    lines += ["### Provenance", ""]
    lines += (table(["field", "value"], prov_rows) if prov_rows else ["No provenance recorded."]) + [""]
    lines += ["### Artifacts", ""]
    lines.append(f"- HDF5 artifact: {code(b['artifact_path']) if b['artifact_path'] else 'none recorded'}")
    doc = b["result_document"]
    if doc:
        lines.append(f"- result document: stored in {code(doc['table'] + '.' + doc['column'])} of generation "
                     f"{code(doc['generation_id'])}, candidate {num(doc['candidate'])}")
    else:
        lines.append("- result document: none stored")
    return lines + [""]


def front(r: Row) -> list[str]:
    f = r["front"]
    if f is None:
        return []
    lines = ["## Pareto front", ""]
    if not f["size"]:
        return lines + ["No feasible evaluation yet, so no front.", ""]
    where = "the top fidelity, certified" if f["certified"] else "not the top fidelity: not certified"
    hv = ("no reference point in the spec" if f["hypervolume"] is None
          else f"{num(f['hypervolume'])} against reference point {value(f['reference_point'])}")
    lines += [f"{f['size']} feasible non-dominated candidate(s) at fidelity {code(f['fidelity_name'])} ({where}); "
              f"hypervolume {hv}.", ""]
    metrics = list(f["points"][0]["objectives"])
    params = list(f["points"][0]["params"])
    shown = f["points"][:MAX_FRONT_ROWS]
    lines += table(["#"] + [code(m) for m in metrics] + [code(p) for p in params],
                    [[str(i + 1)] + [num(p["objectives"][m]) for m in metrics] + [num(p["params"][q]) for q in params]
                     for i, p in enumerate(shown)])
    if len(f["points"]) > len(shown):
        lines.append(f"\n({len(shown)} of {len(f['points'])} shown; all are in report.json.)")
    return lines + [""]


def ladder(r: Row) -> list[str]:
    lad = r["ladder"]
    lines = ["## Fidelity ladder", ""]
    lines += table(["rung", "fidelity", "settings", "evaluations", "succeeded", "feasible", "pass rate"],
                    [[str(x["rung"] + 1), code(x["name"]), value(x["settings"]) if x["settings"] else "—",
                      str(x["evaluations"]), str(x["succeeded"]), str(x["feasible"]), pct(x["pass_rate"])]
                     for x in lad["rungs"]]) + [""]
    if lad["promotions"]:
        lines += ["Promotions (the same candidate at the lower and the higher rung):", ""]
        lines += table(["from → to", "candidates", "mean Δ objective", "largest abs Δ objective", "feasible at higher"],
                        [[f"{code(p['from'])} → {code(p['to'])}", str(p["candidates"]), num(p["objective_delta_mean"]),
                          num(p["objective_delta_max_abs"]), f"{p['feasible_high']} of {p['candidates']}"]
                         for p in lad["promotions"]]) + [""]
    elif len(lad["rungs"]) > 1:
        lines += ["No candidate has been promoted yet.", ""]
    return lines


def trajectory(r: Row) -> list[str]:
    t = r["trajectory"]
    lines = ["## Trajectory", ""]
    if not t["generations"]:
        return lines + ["No generation has been told yet.", ""]
    stagnant = "—" if t["stagnant"] is None else str(t["stagnant"])
    patience = "no patience limit" if t["patience"] is None else f"patience {t['patience']}"
    lines += [f"{t['generations']} generation(s) recorded; best {num(t['best_objective'])}, last improved at "
              f"generation {num(t['last_improved_at_generation'])}; {stagnant} generation(s) without "
              f"improvement ({patience}); mode now {text(t['mode'] or '—')}.", ""]
    if t["mode_changes"]:
        lines += ["Mode changes: " + "; ".join(f"generation {c['generation_index']}: {text(c['from'])} → {text(c['to'])}"
                                               for c in t["mode_changes"]) + ".", ""]
    else:
        lines += ["Mode changes: none.", ""]
    pts = t["points"]
    changed = {c["generation_index"] for c in t["mode_changes"]}
    keep = [0, len(pts) - 1] + [i for i, p in enumerate(pts)
                                if (p["improvement"] or 0) > IMPROVEMENT_TOL or p["generation_index"] in changed]
    shown = pick(len(pts), keep, MAX_TRAJECTORY_ROWS)
    hv = any(p["hypervolume"] is not None for p in pts)
    head = ["generation", "kind", "fidelity", "evaluations used", "best", "improvement", "feasible"] + (
        ["hypervolume"] if hv else []) + ["mode"]
    rows = []
    for i in shown:
        p = pts[i]
        rows.append([str(p["generation_index"]), text(p["kind"] or "—"), code(p["fidelity"]) if p["fidelity"] else "—",
                     num(p["evaluations_used"]), num(p["best_objective"]), num(p["improvement"]),
                     pct(p["feasible_fraction"])] + ([num(p["hypervolume"])] if hv else []) + [text(p["mode"])])
    lines += table(head, rows)
    if len(shown) < len(pts):
        lines.append(f"\n(first, last, improving and mode-changing generations: {len(shown)} of {len(pts)} shown; "
                     "all are in report.json.)")
    return lines + [""]


def findings(r: Row) -> list[str]:
    f = r["findings"]
    lines = ["## Review findings", ""] + verification(r.get("verification"))
    if not f["total"]:
        return lines + ["None: review found nothing to object to.", ""]
    lines += [f"{f['total']} finding(s): " + ", ".join(f"{n} {s}" for s, n in f["by_severity"].items()) + ".", ""]
    lines += ["By kind: " + ", ".join(f"{code(k)} {n}" for k, n in f["by_kind"].items()) + ".", ""]
    lines += ["Most severe:", ""]
    lines += table(["severity", "kind", "generation", "evaluation", "message"],
                    [[x["severity"], code(x["kind"]), num(x["generation_index"]),
                      code(str(x["evaluation_id"])[:8]) if x["evaluation_id"] else "—",
                      text(str(x["message"])[:MAX_MESSAGE])] for x in f["most_severe"]])
    return lines + [""]


def verification(v: Row | None) -> list[str]:
    """One line: what review's perturbed re-runs cost against the search they checked."""
    if not v:
        return []
    ladder = (f" {v['ladder']} promoted candidate(s) were checked by their promotion's own finer-rung"
              " result (nothing re-run)." if v.get("ladder") else "")
    if not v["evaluations"]:
        return ["Verification: nothing re-run yet." + ladder, ""]
    wall = "" if v["wall_share"] is None else f", {pct(v['wall_share'])} of its evaluation wall time"
    return [f"Verification: {v['evaluations']} re-run evaluation(s) in {v['generations']} batch(es) = "
            f"{pct(v['evaluation_share'])} of the search's {v['search_evaluations']} evaluations{wall}." + ladder, ""]


def stages(r: Row) -> list[str]:
    st = r["stages"]
    lines = ["## Stage health", ""]
    if not st:
        return lines + ["No stage has run for this campaign yet.", ""]
    lines += table(["stage", "runs", "succeeded", "failed", "skipped", "running", "crashed", "retried", "attempts",
                     "mean", "max"],
                    [[s["stage"], str(s["runs"]), str(s["succeeded"]), str(s["failed"]), str(s["skipped"]),
                      str(s["running"]), str(s.get("crashed", 0)), str(s["retried"]), str(s["attempts"]), duration(s["mean_seconds"]),
                      duration(s["max_seconds"])] for s in st])
    errors = [s for s in st if s["last_error"]]
    if errors:
        lines += [""] + [f"- last {s['stage']} error: {text(s['last_error'])}" for s in errors]
    return lines + [""]


def evaluations(r: Row) -> list[str]:
    e = r["evaluations"]
    lines = ["## Evaluations", ""]
    if not e["total"]:
        return lines + ["No evaluations yet.", ""]
    lines.append("By status: " + ", ".join(f"{text(k)} {v}" for k, v in e["by_status"].items()) + ".")
    if e["failures"]:
        lines.append("Not succeeded, by category: " + ", ".join(f"{code(k)} {v}" for k, v in e["failures"].items()) + ".")
    first = e["first_feasible_at"]
    lines.append("First feasible: " + ("none yet." if first is None else f"evaluation {first + 1} (in ask order)."))
    return lines + [""]


def files(r: Row) -> list[str]:
    files = r.get("files") or {}
    if not files:
        return []
    lines = ["## Files", ""]
    for k in ("markdown", "json", "csv"):
        if files.get(k):
            lines.append(f"- {k}: {code(files[k])}")
    for p in files.get("plots") or []:
        lines.append(f"- plot: {code(p)}")
    return lines + [""]
