"""`python -m simulation.run`: a strategy in stock `freqtrade trade` on the simulated market, then
the same window in `freqtrade backtesting`, compared."""

from simulation.run.spec import RunSpec

__all__ = ["RunSpec"]
