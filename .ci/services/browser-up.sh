#!/bin/sh
# Install Debian's chromium for the `browser` tests (Playwright drives it by executable_path). Idempotent:
# does nothing when /usr/bin/chromium is already there. Needs root (apt-get).
set -eu
if [ -x /usr/bin/chromium ]; then
    echo "chromium: $(/usr/bin/chromium --version 2>/dev/null || echo present)"
    exit 0
fi
export DEBIAN_FRONTEND=noninteractive
apt-get -o DPkg::Lock::Timeout=600 update -q
apt-get -o DPkg::Lock::Timeout=600 install -y -q --no-install-recommends chromium fonts-dejavu-core
/usr/bin/chromium --version
