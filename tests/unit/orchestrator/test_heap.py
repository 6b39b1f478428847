"""keep_freed_memory: data-sized arrays allocated and freed over and over stop page-faulting."""

from __future__ import annotations

import json
import subprocess
import sys

# A sweep's pattern: each round keeps a small block (a record, a cached indicator) and
# allocates, fills and frees a few data-sized arrays; prints the minor page faults it took.
_SCRIPT = """
import json, resource, sys
import numpy as np
from raytrader.orchestrator.heap import keep_freed_memory
tuned = keep_freed_memory() if sys.argv[1] == "tuned" else None
np.ones(1).sum()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
kept = []
for _ in range(50):
    kept.append(np.ones(2_000))
    arrays = [np.ones(100_000) for _ in range(4)]
    del arrays
faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
print(json.dumps({"tuned": tuned, "faults": faults}))
"""


def _faults(mode: str) -> dict[str, object]:
    out = subprocess.run(
        [sys.executable, "-c", _SCRIPT, mode], capture_output=True, text=True, check=True
    )
    result: dict[str, object] = json.loads(out.stdout)
    return result


def test_freed_arrays_are_reused_without_page_faults() -> None:
    plain, tuned = _faults("plain"), _faults("tuned")
    assert tuned["tuned"] is True  # glibc, as on every supported Linux image
    assert isinstance(plain["faults"], int) and isinstance(tuned["faults"], int)
    # Untuned, malloc trims the freed arrays off the heap and faults them in again each
    # round (~200 pages per array); tuned, it reuses them.
    assert plain["faults"] > 50 * 4 * 100
    assert tuned["faults"] < plain["faults"] / 10
