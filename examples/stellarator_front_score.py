"""The package's own score of a stellarator campaign's certified designs (P3: the front's hypervolume).

    HUNTFLOW_DATA_DIR=... uv run --frozen --extra stellarator python examples/stellarator_front_score.py stellarator-p3
    ... stellarator-p3 --rerun      # problem.evaluate over the certified boundaries (high fidelity, minutes each)

The members are the campaign's succeeded evaluations at its top (certification) rung. By default
the score is ``MHDStableQIStellarator._score`` (the step ``problem.evaluate`` ends with) over the
high-fidelity metrics those rows already hold; ``--rerun`` hands their ``boundary.json`` files to
``problem.evaluate`` itself (huntflow/engine/models/stellarator/front.py). Prints one JSON object.
The report's own front hypervolume is huntflow's (engine/optimize/pareto.py); this is the package's.
"""

import argparse
import json
from pathlib import Path

from huntflow.engine.models.stellarator.front import load_boundaries, score_certified_metrics, score_front
from huntflow.store import campaigns, generations
from huntflow.store.connection import connect


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("campaign", help="slug or id")
    ap.add_argument("--rerun", action="store_true", help="problem.evaluate over the certified boundaries")
    args = ap.parse_args()
    with connect() as conn:
        row = campaigns.get_campaign(conn, args.campaign)
        spec = row["spec"]
        top = len(spec["fidelities"]) - 1
        members = [e for e in generations.campaign_evaluations(conn, row["campaign_id"])
                   if e["fidelity"] == top and e["status"] == "succeeded"]
    problem = spec["model"]["fixed"]["problem"]
    if problem != "p3":  # one objective: each certified row holds problem.evaluate's own score
        best = max((e["metrics"].get("score", 0.0) for e in members), default=None)
        print(json.dumps({"campaign": row["slug"], "problem": problem, "best_certified_score": best,
                          "size": len(members)}))
        return
    if args.rerun:
        workdirs = [e["provenance"]["workdir"] for e in members if Path(e["provenance"].get("workdir", ""), "boundary.json").exists()]
        out = score_front(load_boundaries(workdirs), problem)
        out.pop("objectives")
    else:
        out = score_certified_metrics([e["metrics"] for e in members], problem)
    print(json.dumps({"campaign": row["slug"], "problem": problem, "certified_rung": spec["fidelities"][top]["name"], **out}))


if __name__ == "__main__":
    main()
