"""`python -m cryptobot_ops.companion --api-url http://127.0.0.1:8080 --user-data user_data`

Secrets from the environment only: COMPANION_TELEGRAM_TOKEN, COMPANION_CHAT_IDS (comma-separated),
FREQTRADE_API_USER, FREQTRADE_API_PASSWORD.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from freqtrade_client import FtRestClient

from cryptobot_ops.companion.bot import Companion, build_application


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m cryptobot_ops.companion", description=__doc__.split("\n\n")[0])
    p.add_argument("--api-url", default="http://127.0.0.1:8080")
    p.add_argument("--user-data", type=Path, default=Path("user_data"))
    a = p.parse_args(argv)
    missing = [
        k
        for k in ("COMPANION_TELEGRAM_TOKEN", "COMPANION_CHAT_IDS", "FREQTRADE_API_USER", "FREQTRADE_API_PASSWORD")
        if not os.environ.get(k)
    ]
    if missing:
        print(f"error: set {', '.join(missing)} in the environment", file=sys.stderr)
        return 2
    chats = frozenset(int(c) for c in os.environ["COMPANION_CHAT_IDS"].split(","))
    client = FtRestClient(a.api_url, os.environ["FREQTRADE_API_USER"], os.environ["FREQTRADE_API_PASSWORD"])
    app = build_application(Companion(client, a.user_data, chats), token=os.environ["COMPANION_TELEGRAM_TOKEN"])
    app.run_polling()
    return 0


if __name__ == "__main__":
    sys.exit(main())
