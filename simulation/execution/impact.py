"""Price impact beyond the displayed book.

- volume impact: every taker fill pays `volume_impact` (spec 0.01%) on top of the levels it walks,
  the part of impact a static snapshot of the book does not show;
- square-root market impact: an order above `threshold` (spec 1%) of the pair's daily volume also
  moves the price by coefficient x daily volatility x sqrt(order / daily volume) — the square-root
  law of market impact (Almgren et al.; Torre/Barra), `exponent` 0.5.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ImpactModel:
    volume_impact: float = 0.0001
    threshold: float = 0.01
    coefficient: float = 1.0
    exponent: float = 0.5
    enabled: bool = True

    def fraction(self, notional: float, daily_notional: float, daily_volatility: float) -> float:
        """Adverse price move as a fraction of price for one taker order."""
        if not self.enabled or notional <= 0:
            return 0.0
        impact = self.volume_impact
        if daily_notional > 0:
            share = notional / daily_notional
            if share > self.threshold:
                impact += self.coefficient * daily_volatility * share**self.exponent
        else:  # no traded volume at all: the square-root law's limit is "everything moves"
            impact += self.coefficient * daily_volatility
        return impact
