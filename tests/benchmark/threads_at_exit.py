"""Run ``mit-bench ARGS`` and print, when the interpreter exits, the threads still alive.

Used by test_distributed.py as the torchrun entry point. The report comes from an ``atexit`` handler, which
CPython runs before it starts finalizing: a gloo thread listed there could still be dropping tensors when
finalization begins, the race that :func:`mit_dataset.distributed.distributed_command` removes.
"""

import atexit
import os
import sys
from pathlib import Path

from mit_talk.cli import mit_bench

MARKER = "threads at exit"


def _report() -> None:
    names = []
    for task in sorted(Path("/proc/self/task").glob("*")):
        try:
            names.append((task / "comm").read_text().strip())
        except OSError:  # the thread ended meanwhile
            continue
    # One write: both ranks share the launcher's stderr.
    sys.stderr.write(f"{MARKER} (rank {os.environ.get('RANK', '0')}): {names}\n")
    sys.stderr.flush()


if __name__ == "__main__":
    atexit.register(_report)
    sys.exit(mit_bench(sys.argv[1:]))
