"""`make run`: the project's main job (see simulation.main_job)."""

import sys

from simulation.main_job import main

if __name__ == "__main__":
    sys.exit(main())
