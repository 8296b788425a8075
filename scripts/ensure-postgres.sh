#!/bin/sh
# The PostgreSQL backend's tests (test/helpers/postgres.ts) start a throwaway PostgreSQL server on
# loopback from Debian's `postgresql` package: initdb into a temp dir, pg_ctl on a free port. Install
# the package when missing (needs root and apt-get); otherwise fail loudly: those tests never skip.
# UCANLOG_PG_BINDIR overrides where initdb/pg_ctl/postgres are looked for.
set -e
if [ -n "$UCANLOG_PG_BINDIR" ] && [ -x "$UCANLOG_PG_BINDIR/initdb" ]; then exit 0; fi
if command -v initdb >/dev/null 2>&1 && command -v pg_ctl >/dev/null 2>&1; then exit 0; fi
for d in /usr/lib/postgresql/*/bin; do
  if [ -x "$d/initdb" ] && [ -x "$d/pg_ctl" ]; then exit 0; fi
done
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "installing postgresql for the PostgreSQL backend's tests…" >&2
  apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
else
  echo "the PostgreSQL backend's tests need PostgreSQL's server binaries: apt-get install postgresql (or set UCANLOG_PG_BINDIR)" >&2
  exit 1
fi
