"""Companion Telegram bot: our operator commands next to freqtrade's own Telegram bot."""
