"""Offline evaluation tools: the model benchmark and the regime detector's evaluation.

They use the simulator's synthetic markets and are never imported by a bot: freqtrade's resolver scans
`freqaimodels/` and `strategies/`, and those production packages may not import the simulator (the
import contract in `.importlinter`).
"""
