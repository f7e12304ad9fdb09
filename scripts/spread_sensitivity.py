"""`python -m scripts.spread_sensitivity -- SIMULATION.RUN ARGS`: one run per spread scale (x0.1, x1, x10)."""

import sys

from simulation.run.sensitivity import main

if __name__ == "__main__":
    sys.exit(main())
