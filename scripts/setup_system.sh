#!/usr/bin/env bash
# Debian packages the project needs at run/test time (CI starts bare). Installs only what is missing.
set -euo pipefail
PACKAGES=(faketime chromium prometheus)   # faketime: accelerated simulation clock; chromium: HTML report checks;
# prometheus: the alert rules run in a real server and promtool (tests/test_monitoring.py, test_operator_controls.py)
missing=()
for p in "${PACKAGES[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
echo "installing Debian packages: ${missing[*]}"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
