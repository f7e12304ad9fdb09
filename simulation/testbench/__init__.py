"""The validation pipeline (spec "test bench"): walk-forward backtests -> Monte Carlo -> accelerated
simulation and paper run -> comparison -> stress scenarios -> recommendation, one report.

Entry point: `python -m scripts.testbench --strategy NAME` (logic in `simulation.testbench.runner`).
"""
