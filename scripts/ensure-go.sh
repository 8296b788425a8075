#!/bin/sh
# The interop tests run Go's reference golang.org/x/mod/sumdb/{tlog,note} against our code.
# Both come from Debian packages; install them when missing (needs root and apt-get).
set -e
if command -v go >/dev/null 2>&1 && [ -d /usr/share/gocode/src/golang.org/x/mod/sumdb/tlog ]; then exit 0; fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "installing golang-go and golang-golang-x-mod-dev for the interop tests…" >&2
  apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq golang-go golang-golang-x-mod-dev >/dev/null
else
  echo "interop tests need Go and x/mod: apt-get install golang-go golang-golang-x-mod-dev" >&2
  exit 1
fi
