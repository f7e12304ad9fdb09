"""Execution models: latency, book walking, market impact, queue (limit fills), fees. Pure functions, no I/O."""

from simulation.execution.fills import Fill, taker_fill
from simulation.execution.impact import ImpactModel
from simulation.execution.latency import LatencyModel
from simulation.execution.params import ExecutionParams
from simulation.execution.queue import QueueModel

__all__ = ["ExecutionParams", "Fill", "ImpactModel", "LatencyModel", "QueueModel", "taker_fill"]
