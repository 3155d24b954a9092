#!/usr/bin/env bash
# Install Debian's Chromium and ChromeDriver for the browser test when they are missing.
# (Never `playwright install`: browsers come from Debian's packages.)
set -euo pipefail
if [ -x /usr/bin/chromium ]; then
  exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "install-browser: no apt-get; install chromium yourself or the browser test is skipped" >&2
  exit 0
fi
SUDO=""
if [ "$(id -u)" != "0" ]; then
  if command -v sudo >/dev/null 2>&1; then SUDO="sudo"; else
    echo "install-browser: not root and no sudo; the browser test will be skipped" >&2
    exit 0
  fi
fi
echo "install-browser: installing Debian chromium and chromium-driver" >&2
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium chromium-driver >/dev/null
