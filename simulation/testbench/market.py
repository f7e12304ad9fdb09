"""One market for the bench: a static gateway (markets for freqtrade) + a datadir with the candles."""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass, field
from pathlib import Path

from simulation.freqtrade_runner import latest_backtest_stats, run_freqtrade
from simulation.gateway import GatewayProcess, write_overlay
from simulation.synthetic import Scenario


@dataclass
class Market:
    """`source`: a feather datadir, or None for the synthetic market (seed, days, scenarios)."""

    workdir: Path
    source: Path | None = None
    seed: int = 42
    days: int = 120
    start: str = "2024-01-01"
    scenarios: tuple[Scenario, ...] = ()
    overlay: Path | None = None
    datadir: Path | None = None
    _stack: contextlib.ExitStack = field(default_factory=contextlib.ExitStack, repr=False)
    _downloaded: set = field(default_factory=set, repr=False)  # (configs, timeframes, timerange, pairs) done

    def gateway_args(self) -> list[str]:
        if self.source is not None:
            return ["--datadir", str(self.source)]
        args = ["--synthetic", "--seed", str(self.seed), "--days", str(self.days), "--start", self.start]
        for sc in self.scenarios:
            args += ["--scenario", sc.to_text()]
        return args

    def __enter__(self) -> Market:  # noqa: PYI034
        self.workdir.mkdir(parents=True, exist_ok=True)
        gw = self._stack.enter_context(GatewayProcess(self.gateway_args(), log_path=self.workdir / "gateway.log"))
        self.overlay = write_overlay(self.workdir / "exchange.json", gw.url)
        self.datadir = self.source if self.source is not None else self.workdir / "data"
        return self

    def __exit__(self, *exc) -> None:
        self._stack.close()

    def download(
        self, configs: list[str], userdir: Path, timeframes: list[str], timerange: str, pairs: list[str] | None = None
    ) -> None:
        """Synthetic markets only: candles through the gateway into the datadir (freqtrade's own download),
        once per request (two benches on one market ask for the same candles)."""
        key = (tuple(configs), tuple(sorted(timeframes)), timerange, tuple(pairs or ()))
        if self.source is not None or key in self._downloaded:
            return
        args = [
            "download-data",
            *cfg_args([*configs, str(self.overlay)]),
            "--userdir",
            str(userdir),
            "--datadir",
            str(self.datadir),
            "--timeframes",
            *timeframes,
            "--timerange",
            timerange,
        ]
        if pairs:
            args += ["--pairs", *pairs]
        run_freqtrade(args, self.workdir / "download.log", timeout=1800)
        self._downloaded.add(key)


def cfg_args(configs: list[str]) -> list[str]:
    return [a for c in configs for a in ("--config", str(c))]


def backtest(
    exchange_overlay: Path,
    datadir: Path,
    configs: list[str],
    userdir: Path,
    timerange: str,
    out: Path,
    strategy: str,
    overlay: dict | None = None,
    pairs: list[str] | None = None,
    timeout: float = 7200,
    threads: int | None = None,
) -> dict:
    """One `freqtrade backtesting` run against a market's gateway overlay and datadir; freqtrade's stats."""
    out.mkdir(parents=True, exist_ok=True)
    cfgs = [*configs, str(exchange_overlay)]
    if overlay:
        (out / "overlay.json").write_text(json.dumps(overlay))
        cfgs.append(str(out / "overlay.json"))
    args = [
        "backtesting",
        *cfg_args(cfgs),
        "--strategy",
        strategy,
        "--userdir",
        str(userdir),
        "--datadir",
        str(datadir),
        "--cache",
        "none",
        "--timerange",
        timerange,
        "--export",
        "trades",
        "--backtest-directory",
        str(out),
    ]
    if pairs:
        args += ["--pairs", *pairs]
    run_freqtrade(args, out / "backtest.log", timeout=timeout, threads=threads)
    return latest_backtest_stats(out)["strategy"][strategy]
