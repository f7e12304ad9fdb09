"""Feature engineering shared by every FreqAI strategy (causal indicators + FreqAI hooks)."""

from freqaimodels.features.freqai_hooks import (
    TARGET,
    TARGET_SCALES,
    expand_all,
    expand_basic,
    informative_aligned_start,
    set_targets,
    standard,
)

__all__ = [
    "TARGET",
    "TARGET_SCALES",
    "expand_all",
    "expand_basic",
    "informative_aligned_start",
    "set_targets",
    "standard",
]
