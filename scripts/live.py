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
import sys
from pathlib import Path

from freqtrade.configuration.load_config import load_from_files
from freqtrade.exceptions import OperationalException

from cryptobot_ops.live import CONFIRM_ENV, preflight

# Where freqtrade configs hold secrets; each has a FREQTRADE__... environment variable instead.
SECRET_PATHS = (
    ("exchange", "key"), ("exchange", "secret"), ("exchange", "password"), ("exchange", "uid"),
    ("exchange", "walletAddress"), ("exchange", "privateKey"),
    ("api_server", "password"), ("api_server", "jwt_secret_key"), ("api_server", "ws_token"),
    ("telegram", "token"), ("discord", "webhook_url"), ("webhook", "url"),
)
CCXT_SECRETS = ("apiKey", "secret", "password", "uid", "privateKey", "walletAddress", "token")


def secrets_in(config: dict) -> list[str]:
    """Dotted keys of secrets written in the config files themselves."""
    found = [".".join(path) for path in SECRET_PATHS
             if str((config.get(path[0]) or {}).get(path[1]) or "").strip()]
    for key in ("ccxt_config", "ccxt_async_config"):
        ccxt = (config.get("exchange") or {}).get(key) or {}
        found += [f"exchange.{key}.{k}" for k in CCXT_SECRETS if str(ccxt.get(k) or "").strip()]
    return found


def passthrough_configs(rest: list[str]) -> list[str]:
    """freqtrade's own -c (argparse takes every --config spelling as ours, so those are checked)."""
    return [a for a in rest if a.startswith("-c")]
from simulation.freqtrade_runner import freqtrade_executable


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m scripts.live", description=__doc__.split("\n\n")[0])
    p.add_argument("--config", action="append", required=True)
    p.add_argument("--i-understand-live", action="store_true", help=f"confirm real-money trading (or {CONFIRM_ENV}=yes)")
    p.add_argument("--preflight-only", action="store_true", help="check and write the resolved config, do not start")
    p.add_argument("--out", type=Path, default=Path("user_data/live/config.json"), help="resolved config (no secrets)")
    args, rest = p.parse_known_args(argv)
    sneaked = passthrough_configs(rest)
    if sneaked:
        print(f"refusing to start live: {' '.join(sneaked)} would reach freqtrade after the preflight; "
              "pass every config with --config", file=sys.stderr)
        return 2
    try:
        config = load_from_files(args.config)
    except (OperationalException, OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    in_files = secrets_in(config)
    if in_files:
        print(f"refusing to start live: secrets in the config files ({', '.join(in_files)}); remove them and set "
              "them in the environment (FREQTRADE__SECTION__KEY, e.g. FREQTRADE__EXCHANGE__SECRET)", file=sys.stderr)
        return 2
    config.pop("add_config_files", None)
    for key in ("ccxt_config", "ccxt_async_config"):
        config.get("exchange", {}).get(key, {}).pop("urls", None)
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
    cmd = [*freqtrade_executable(), "trade", "--config", str(args.out), "--strategy-path", "strategies",
           "--freqaimodel-path", "freqaimodels", *rest]
    os.execvp(cmd[0], cmd)
    return 0  # not reached


if __name__ == "__main__":
    sys.exit(main())
