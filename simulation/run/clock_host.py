"""`faketime -f SPEC python -m simulation.run.clock_host`: holds a session clock's shared start.

libfaketime shares one start instant between the processes of one `faketime` invocation (its shared
memory, with FAKETIME_DONT_RESET). This process is the first of them: it prints the environment that
puts another process on the same clock, then answers time probes (one line in, its clock's time in ns
out) so that the supervisor can tell the start instant to the microsecond, and exits at end of input.
"""

from __future__ import annotations

import json
import os
import sys
import time


def main() -> int:
    keys = ("FAKETIME_SHARED", "LD_PRELOAD")
    missing = [k for k in keys if not os.environ.get(k)]
    if missing:
        print(json.dumps({"error": f"not started by faketime: {', '.join(missing)} unset"}), flush=True)
        return 2
    print(json.dumps({k: os.environ[k] for k in keys}), flush=True)
    for _ in sys.stdin:
        sys.stdout.write(f"{time.time_ns()}\n")
        sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
