"""Open an HTML report in headless Chromium (Debian's `chromium`): rendered DOM, console messages, screenshot."""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

CONSOLE = re.compile(r"CONSOLE\(\d+\)\] \"(?P<msg>.*?)\", source: (?P<src>\S*)")


@dataclass
class PageCheck:
    dom: str
    console: list[str]
    errors: list[str]


def chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if path := shutil.which(name):
            return path
    raise FileNotFoundError("headless checks need Chromium (Debian: apt-get install chromium)")


def _run(args: list[str], timeout: float) -> subprocess.CompletedProcess:
    with tempfile.TemporaryDirectory() as profile:
        cmd = [
            chromium(),
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            f"--user-data-dir={profile}",
            "--enable-logging=stderr",
            "--v=0",
            *args,
        ]
        return subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=timeout)


def check_page(html: Path, screenshot: Path | None = None, timeout: float = 120) -> PageCheck:
    """Render `html` (scripts run, virtual time lets plotly finish) and collect console output."""
    url = Path(html).resolve().as_uri()
    run = _run(["--virtual-time-budget=15000", "--dump-dom", url], timeout)
    console = [m.group("msg") for m in CONSOLE.finditer(run.stderr)]
    errors = [line for line in run.stderr.splitlines() if "Uncaught" in line or ":ERROR:CONSOLE" in line]
    if screenshot is not None:
        _run(
            [
                "--virtual-time-budget=15000",
                "--window-size=1280,2400",
                "--hide-scrollbars",
                f"--screenshot={Path(screenshot).resolve()}",
                url,
            ],
            timeout,
        )
    return PageCheck(run.stdout, console, errors)
