"""Offline Binance-compatible exchange gateway for stock freqtrade."""

from simulation.gateway.api import BinanceSpotAPI
from simulation.gateway.freqtrade_config import exchange_overlay, write_overlay
from simulation.gateway.process import GatewayProcess

__all__ = ["BinanceSpotAPI", "GatewayProcess", "exchange_overlay", "write_overlay"]
