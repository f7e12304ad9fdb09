"""Feature engineering shared by every FreqAI strategy (causal indicators + FreqAI hooks)."""

from freqaimodels.features.freqai_hooks import (
    BASE_FEATURE_WARMUP,
    TARGET,
    TARGET_SCALES,
    expand_all,
    expand_basic,
    informative_aligned_start,
    live_window_start,
    set_targets,
    standard,
)

__all__ = [
    "BASE_FEATURE_WARMUP",
    "TARGET",
    "TARGET_SCALES",
    "expand_all",
    "expand_basic",
    "informative_aligned_start",
    "live_window_start",
    "set_targets",
    "standard",
]
