"""RegimeGatedReference (EMA/RSI + HMM regime gate) under the shared risk controls and alerts (no ML): the
smallest strategy that shows the limits, the emergency stop and the alerts at work, and the one the operator
tests use."""

from __future__ import annotations

from RegimeGatedReference import RegimeGatedReference

from cryptobot_ops.risk import RiskControlled


class RiskReference(RiskControlled, RegimeGatedReference):
    pass
