#!/usr/bin/env bash
# Debian's Chromium, for the browser test of the Streamlit app (tests/test_app_browser.py).
# Playwright drives it through executable_path; no Playwright browser download is needed.
# Idempotent: does nothing when /usr/bin/chromium is already there.
set -euo pipefail

if [ -x /usr/bin/chromium ]; then
  exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then
    SUDO="sudo"
  else
    echo "setup-chromium: /usr/bin/chromium is missing and this is not root (no sudo); skipping" >&2
    exit 0
  fi
fi

export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core >/dev/null
