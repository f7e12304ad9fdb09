"""`python -m scripts.bench_gateway [--seconds 10] [--concurrency 16] [--out gateway_bench.json]`"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from simulation.gateway.bench import run


def main() -> None:
    p = argparse.ArgumentParser(description="Gateway requests/s on loopback, latency model off (mixed load vs ping).")
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--concurrency", type=int, default=16)
    p.add_argument("--out", type=Path)
    a = p.parse_args()
    print(json.dumps(run(a.seconds, a.concurrency, a.out), indent=2))


if __name__ == "__main__":
    main()
