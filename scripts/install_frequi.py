"""Install the offline FreqUI build (../shared/frequi) the way `freqtrade install-ui` would."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from simulation.paths import SHARED_DIR

SOURCE = SHARED_DIR / "frequi"


def main() -> int:
    from freqtrade.rpc import api_server

    target = Path(api_server.__file__).parent / "ui" / "installed"
    if not SOURCE.is_dir():
        print(f"FreqUI: {SOURCE} not present, dashboard not installed (freqtrade still runs)")
        return 0
    version = (SOURCE / ".uiversion").read_text().strip() if (SOURCE / ".uiversion").exists() else "?"
    if (target / ".uiversion").exists() and (target / ".uiversion").read_text().strip() == version:
        return 0
    if target.exists():
        shutil.rmtree(target)
    shutil.copytree(SOURCE, target)
    for path in [target, *target.rglob("*")]:  # shared/ is read-only; keep our copy removable
        path.chmod(path.stat().st_mode | 0o200)
    print(f"FreqUI {version} installed into {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
