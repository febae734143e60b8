"""Micro-benchmark of the pickle emulator on the scanner benchmark's many-objects pickle.

Times ``PickleVM.run`` in-process (CPU seconds, best of N) on the same data pickled with
protocols 2 and 4, with the data-only walk (``pickle_ops.inert_pickle_end``) and with
emulation forced, so the two paths can be compared on a busy machine.

Usage:  .venv/bin/python bench/bench_pickle_vm.py [--records N] [--repeat N]
"""

from __future__ import annotations

import argparse
import pickle
import time

from aivet.analyzers import pickle_vm
from aivet.limits import Limits


def best_cpu(data: bytes, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.process_time()
        pickle_vm.PickleVM(data, Limits()).run()
        best = min(best, time.process_time() - start)
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--records", type=int, default=300_000)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    value = [{"id": i, "name": f"item{i}", "vals": [i, i + 1.5], "tag": None} for i in range(args.records)]
    walk_min = pickle_vm.INERT_MIN_BYTES
    print("| protocol | MB | walk s | emulate s | speed-up |\n|---:|---:|---:|---:|---:|")
    for proto in (2, 4):
        data = pickle.dumps(value, protocol=proto)
        pickle_vm.INERT_MIN_BYTES = walk_min
        walk = best_cpu(data, args.repeat)
        pickle_vm.INERT_MIN_BYTES = 1 << 62  # force emulation
        emulate = best_cpu(data, args.repeat)
        print(f"| {proto} | {len(data) / 1e6:.1f} | {walk:.3f} | {emulate:.3f} | {emulate / walk:.1f}x |")
    pickle_vm.INERT_MIN_BYTES = walk_min


if __name__ == "__main__":
    main()
