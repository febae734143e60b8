"""The least work any pure-Python checkpoint scanner does: a lower bound, not a scanner.

Starts the interpreter, imports what reading a zip and writing JSON needs, lists the
archive and reads every pickle in it, then prints one JSON line. It analyses nothing. Timed
as a whole process beside the real tools (bench_scan.py), it shows how much of a run on a
checkpoint is fixed cost that no Python scanner can avoid.

Usage: python bench/floor_scan.py CHECKPOINT
"""

import json
import sys
import zipfile

with zipfile.ZipFile(sys.argv[1]) as zf:
    pickles = [info for info in zf.infolist() if info.filename.endswith(".pkl")]
    size = sum(len(zf.read(info)) for info in pickles)
print(json.dumps({"pickles": len(pickles), "bytes": size}))
