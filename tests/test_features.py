"""The shared FreqAI target: what the models learn must mean what the strategies read."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from freqaimodels import features


def test_vol_scaled_target_keeps_the_sign_and_is_causal_in_its_scale():
    rng = np.random.default_rng(0)
    close = pd.Series(100 * np.exp(np.cumsum(rng.normal(0, 0.01, 1000))))
    df = pd.DataFrame({"close": close})
    raw = features.set_targets(df, 12)[features.TARGET]
    scaled = features.set_targets(df, 12, "vol", vol_window=50)[features.TARGET]
    ok = raw.notna() & scaled.notna()
    assert (np.sign(raw[ok]) == np.sign(scaled[ok])).all() and ok.sum() > 900
    # the scale at row t uses closes up to t only: changing later closes (beyond the label) leaves it
    later = df.copy()
    later.loc[600:, "close"] *= 3
    ratio = scaled / raw
    ratio_later = features.set_targets(later, 12, "vol", vol_window=50)[features.TARGET] / features.set_targets(later, 12)[features.TARGET]
    assert np.allclose(ratio[100:599], ratio_later[100:599])
    assert 0.5 < scaled[ok].std() < 2  # in units of the expected move
    with pytest.raises(ValueError, match="target scale"):
        features.set_targets(df, 12, "zscore")
