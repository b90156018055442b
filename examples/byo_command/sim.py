#!/usr/bin/env python3
"""A stand-alone program hunted as a huntflow command model (examples/byo_command/spec.yaml).

Any executable works the same way: huntflow runs it with no shell in a fresh working directory
holding input.json ({"params", "fidelity", "seed", "index"}), and reads the metrics the program
writes to metrics.json (or the last JSON object it prints). This one is the Branin function with
a little seeded measurement noise, in plain Python (no huntflow, no NumPy):

    sim.py INPUT_JSON METRICS_JSON
"""

import json
import math
import random
import sys


def main(input_path: str, metrics_path: str) -> int:
    job = json.load(open(input_path))
    x, y = job["params"]["x"], job["params"]["y"]
    noise = float(job["fidelity"].get("noise", 0.0))
    a, b, c, r, s, t = 1.0, 5.1 / (4 * math.pi**2), 5 / math.pi, 6.0, 10.0, 1 / (8 * math.pi)
    f = a * (y - b * x * x + c * x - r) ** 2 + s * (1 - t) * math.cos(x) + s
    f += random.Random(job["seed"]).gauss(0.0, noise)
    print(f"branin({x:.4f}, {y:.4f}) = {f:.6f}")
    with open(metrics_path, "w") as out:
        json.dump({"f": f, "radius": math.hypot(x, y)}, out)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
