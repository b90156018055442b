"""Print the ``model.fixed`` and ``space`` blocks of a stellarator campaign (needs the extra).

    uv run --frozen --extra stellarator python examples/stellarator_space.py p1 --modes 2 2

Each coefficient of the package's initial guess for the problem gets the interval
``x0 +- half_width * exp(-alpha * max(|m|, |n|))`` (huntflow/engine/models/stellarator/boundary.py);
the examples/stellarator_p*.yaml blocks were written by this script with the arguments in their
header comments.
"""

import argparse

import yaml

from huntflow.engine.models.stellarator.boundary import fixed_and_space


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("problem", choices=["p1", "p2", "p3"])
    ap.add_argument("--modes", type=int, nargs=2, default=(2, 2), metavar=("MAX_POLOIDAL", "MAX_TOROIDAL"))
    ap.add_argument("--half-width", type=float, default=0.5)
    ap.add_argument("--alpha", type=float, default=1.5)
    args = ap.parse_args()
    fixed, space = fixed_and_space(args.problem, *args.modes, half_width=args.half_width, alpha=args.alpha)
    print(yaml.safe_dump({"model": {"name": "stellarator", "fixed": fixed}}, sort_keys=False, default_flow_style=None), end="")
    print("space:")
    for name, bound in space.items():
        print(f"  {name}: {{low: {bound['low']}, high: {bound['high']}}}")


if __name__ == "__main__":
    main()
