"""TrendFollowingEnsemble with volatility sizing: each stake scaled down by the HAR-RV forecast of the
next 4 hours against its 7-day median (never up, at most to a quarter). For A/B against the plain one:
`python -m scripts.testbench --compare-strategies TrendFollowingEnsemble TrendFollowingVolSized`."""

from __future__ import annotations

from TrendFollowingEnsemble import TrendFollowingEnsemble


class TrendFollowingVolSized(TrendFollowingEnsemble):
    vol_sizing = True
