#!/usr/bin/env bash
# Stop the throw-away PostgreSQL of pg-up.sh and delete its cluster.
PGDIR=${PGDIR:-/tmp/pg-ci}
if [ -f "$PGDIR/data/postmaster.pid" ]; then
  runuser -u postgres -- /usr/lib/postgresql/15/bin/pg_ctl -D "$PGDIR/data" -m fast -w stop >/dev/null
fi
rm -rf "$PGDIR"
