"""huntflow.flows.heap: the collector of a long-running process, settled once after warm-up
(run in a fresh interpreter: it changes the process's collector for good)."""

import json
import subprocess
import sys

SCRIPT = r"""
import gc, json, weakref
from huntflow.flows import heap

class Node:
    pass

before = gc.get_freeze_count()
first, second = heap.settle(), heap.settle()
frozen = gc.get_freeze_count()
a, b = Node(), Node()
a.other, b.other = b, a  # a cycle made after settle: still garbage the collector finds
alive = weakref.ref(a)
del a, b
gc.collect()
print(json.dumps({"before": before, "first": first, "second": second, "frozen": frozen,
                  "threshold": gc.get_threshold()[0], "want": heap.YOUNG_THRESHOLD, "cycle_collected": alive() is None}))
"""


def test_settle_freezes_once_and_later_garbage_is_still_collected():
    out = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, check=True, timeout=120)
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert got["before"] == 0
    assert got["first"] is True and got["second"] is False
    assert got["frozen"] > 1000  # the imported modules' objects, out of the collector's view
    assert got["threshold"] == got["want"] > 700  # the young generation collected less often
    assert got["cycle_collected"] is True
