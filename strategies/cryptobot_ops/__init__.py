"""Operator-side code our strategies share: risk limits, alerts, the live-trading guard, the companion bot.

Installed as a package (unlike the strategy files beside it, which freqtrade loads by path), so the
test bench, the live launcher and the tests import the very checks the strategies run.
"""
