"""Simulated Binance spot venue: signed private endpoints, balances, order matching, a ledger."""

from simulation.venue.auth import ApiCredentials, credentials_from_env
from simulation.venue.engine import Venue

__all__ = ["ApiCredentials", "Venue", "credentials_from_env"]
