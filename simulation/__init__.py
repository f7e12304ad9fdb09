"""Sidecar simulator: offline exchange gateway, clock, market data and execution models."""
