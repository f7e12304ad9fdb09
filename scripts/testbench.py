"""`python -m scripts.testbench --strategy NAME`: the validation pipeline (see simulation.testbench)."""

import sys

from simulation.testbench.__main__ import main

if __name__ == "__main__":
    sys.exit(main())
