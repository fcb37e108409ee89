#!/usr/bin/env bash
# Installs Debian's chromium for the web console's browser test (tests/e2e/test_console.py), which drives it
# with Playwright (the `playwright` Python package of the dev extra). Never `playwright install`: that downloads
# a browser of its own from outside the package registries. Idempotent: nothing to do when /usr/bin/chromium
# exists. Needs root (apt-get), as the other installers here.
set -euo pipefail

if [[ -x /usr/bin/chromium ]]; then
    echo "install-browser: $(/usr/bin/chromium --version 2>/dev/null || echo chromium) is installed"
    exit 0
fi
echo "install-browser: installing Debian's chromium"
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
echo "install-browser: $(/usr/bin/chromium --version)"
