"""`python -m scripts.live --config STRATEGY.json --config config/live.json [--i-understand-live] [freqtrade args]`

Live means the exchange's own URLs: the launcher resolves the configs, drops any gateway URL overrides
(our strategy configs include the gateway's exchange section), checks the preflight (confirmation,
keys and API password from the environment, every risk limit valid), writes the resolved config
(owner-only; config files that hold secrets are refused, so it holds none) to
user_data/live/config.json and replaces itself with `freqtrade trade` on it. Every config goes
through --config before the preflight: a `-c`/`--config` among the freqtrade arguments is refused.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import re
import sys
from pathlib import Path

from freqtrade.configuration.load_config import load_from_files
from freqtrade.exceptions import OperationalException

from cryptobot_ops.live import CCXT_CONFIGS, CCXT_REDIRECTS, CONFIRM_ENV, preflight
from simulation.freqtrade_runner import freqtrade_executable

# Where freqtrade configs hold secrets under names that do not say so; each has a FREQTRADE__...
# environment variable instead.
SECRET_PATHS = (("discord", "webhook_url"), ("webhook", "url"))
# A key whose name (lower case, without - and _) says it holds a credential, wherever it sits: exchange
# keys, ccxt's apiKey/secret/password/privateKey in any of the three ccxt configs, an X-MBX-APIKEY or
# Authorization header, the API server's password / JWT secret / ws token, the Telegram token.
CREDENTIAL_NAME = re.compile(
    r"^(key|uid|apikey|walletaddress|accountid)$|apikey|secret|passw|passphrase|token|"
    r"privatekey|signature|authorization|cookie|credential"
)
# A URL that carries a password (a db_url such as postgresql://user:PASSWORD@host/db).
URL_WITH_PASSWORD = re.compile(r"^[a-z][a-z0-9+.-]*://[^/@\s]*:[^/@\s]+@", re.IGNORECASE)


def secrets_in(config: dict, path: str = "") -> list[str]:
    """Dotted keys of every credential-shaped value in the config files themselves, wherever it sits."""
    found = []
    for key, value in config.items() if isinstance(config, dict) else enumerate(config):
        here = f"{path}.{key}" if path else str(key)
        if isinstance(value, dict | list):
            found += secrets_in(value, here)
        elif value not in (None, "", False) and str(value).strip():
            name = str(key).lower().replace("-", "").replace("_", "")
            if (
                (isinstance(key, str) and CREDENTIAL_NAME.search(name))
                or URL_WITH_PASSWORD.match(str(value))
                or tuple(here.split(".")) in SECRET_PATHS
            ):
                found.append(here)
    return found


def passthrough_configs(rest: list[str]) -> list[str]:
    """freqtrade's own -c (argparse takes every --config spelling as ours, so those are checked)."""
    return [a for a in rest if a.startswith("-c")]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m scripts.live", description=__doc__.split("\n\n")[0])
    p.add_argument("--config", action="append", required=True)
    p.add_argument(
        "--i-understand-live", action="store_true", help=f"confirm real-money trading (or {CONFIRM_ENV}=yes)"
    )
    p.add_argument("--preflight-only", action="store_true", help="check and write the resolved config, do not start")
    p.add_argument("--out", type=Path, default=Path("user_data/live/config.json"), help="resolved config (no secrets)")
    args, rest = p.parse_known_args(argv)
    sneaked = passthrough_configs(rest)
    if sneaked:
        print(
            f"refusing to start live: {' '.join(sneaked)} would reach freqtrade after the preflight; "
            "pass every config with --config",
            file=sys.stderr,
        )
        return 2
    try:
        config = load_from_files(args.config)
    except (OperationalException, OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if not isinstance(config.get("exchange"), dict):
        print("error: the configs define no 'exchange' section (an object)", file=sys.stderr)
        return 2
    in_files = secrets_in(config)
    if in_files:
        print(
            f"refusing to start live: secrets in the config files ({', '.join(in_files)}); remove them and set "
            "them in the environment (FREQTRADE__SECTION__KEY, e.g. FREQTRADE__EXCHANGE__SECRET)",
            file=sys.stderr,
        )
        return 2
    config.pop("add_config_files", None)
    for key in CCXT_CONFIGS:  # every client freqtrade builds talks to the exchange's own URLs
        for redirect in CCXT_REDIRECTS:
            if isinstance(config["exchange"].get(key), dict):
                config["exchange"][key].pop(redirect, None)
    config["exchange"].pop("only_from_ccxt", None)
    check = copy.deepcopy(config)  # secrets only in memory, from the environment
    check["exchange"]["key"] = os.environ.get("FREQTRADE__EXCHANGE__KEY", "")
    check["exchange"]["secret"] = os.environ.get("FREQTRADE__EXCHANGE__SECRET", "")
    problems = preflight(check, args.i_understand_live)
    if config.get("dry_run", True):
        problems.append("dry_run is true: add config/live.json")
    if check.get("api_server", {}).get("enabled") and not os.environ.get("FREQTRADE__API_SERVER__PASSWORD", "").strip():
        problems.append("set FREQTRADE__API_SERVER__PASSWORD (and FREQTRADE__API_SERVER__JWT_SECRET_KEY)")
    if problems:
        for msg in problems:
            print(f"refusing to start live: {msg}", file=sys.stderr)
        return 2
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.unlink(missing_ok=True)  # a fresh file, owner-only from its first byte
    fd = os.open(args.out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(json.dumps(config, indent=2))
    print(f"preflight ok; resolved config (no secrets): {args.out}")
    if args.preflight_only:
        return 0
    os.environ[CONFIRM_ENV] = "yes"  # our strategies re-check it in bot_start
    cmd = [
        *freqtrade_executable(),
        "trade",
        "--config",
        str(args.out),
        "--strategy-path",
        "strategies",
        "--freqaimodel-path",
        "freqaimodels",
        *rest,
    ]
    os.execvp(cmd[0], cmd)
    return 0  # not reached


if __name__ == "__main__":
    sys.exit(main())
