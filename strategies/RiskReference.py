"""RegimeGatedReference (EMA/RSI + HMM regime gate) under the shared risk controls and alerts (no ML): the smallest strategy
that shows the limits, the emergency stop and the alerts at work, and the one the operator tests use."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.append(str(Path(__file__).parent))
from RegimeGatedReference import RegimeGatedReference  # noqa: E402
from risk_controls import RiskControlled  # noqa: E402


class RiskReference(RiskControlled, RegimeGatedReference):
    pass
