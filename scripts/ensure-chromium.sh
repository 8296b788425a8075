#!/bin/sh
# The explorer's browser test (test/browser/explorer.test.ts) drives Debian's chromium through
# playwright-core. Install it when missing (needs root and apt-get); otherwise fail loudly: the
# test never skips. CHROMIUM overrides the binary's path (default /usr/bin/chromium).
set -e
bin="${CHROMIUM:-/usr/bin/chromium}"
if [ -x "$bin" ]; then exit 0; fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "installing chromium for the explorer's browser test…" >&2
  apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
else
  echo "the explorer's browser test needs Chromium at $bin: apt-get install chromium (or set CHROMIUM)" >&2
  exit 1
fi
