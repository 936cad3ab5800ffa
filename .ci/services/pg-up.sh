#!/usr/bin/env bash
# Throw-away PostgreSQL 15 cluster for tests (Debian bookworm postgresql-15), no systemd, 127.0.0.1:${PGPORT:-5433}.
# Safe to run twice (and from several test sessions at once); prints the SQLAlchemy URL on stdout.
# Needs root (apt-get, runuser postgres). Stop and delete it with pg-down.sh.
set -euo pipefail
PGDIR=${PGDIR:-/tmp/pg-ci}; PGPORT=${PGPORT:-5433}; PGDB=${PGDB:-dagci}; BIN=/usr/lib/postgresql/15/bin
if [ ! -x $BIN/initdb ]; then
  apt-get -o DPkg::Lock::Timeout=600 update -q >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -q postgresql-15 postgresql-client-15 >/dev/null
fi
install -d -o postgres -g postgres "$PGDIR"
exec 9>"$PGDIR/.up.lock"; flock 9   # two concurrent callers must not both initdb/start
[ -f "$PGDIR/data/PG_VERSION" ] || runuser -u postgres -- $BIN/initdb -D "$PGDIR/data" -U postgres -A trust --no-sync >/dev/null
if ! runuser -u postgres -- $BIN/pg_ctl -D "$PGDIR/data" status >/dev/null 2>&1; then
  runuser -u postgres -- $BIN/pg_ctl -D "$PGDIR/data" -l "$PGDIR/pg.log" -w -t 60 \
    -o "-p $PGPORT -k $PGDIR -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200" \
    start >/dev/null 2>&1 9>&-
fi
PSQL=(psql -h 127.0.0.1 -p "$PGPORT" -U postgres -v ON_ERROR_STOP=1)
"${PSQL[@]}" -tAc "SELECT 1 FROM pg_database WHERE datname='$PGDB'" | grep -q 1 \
  || "${PSQL[@]}" -qc "CREATE DATABASE $PGDB"
echo "postgresql+psycopg://postgres@127.0.0.1:$PGPORT/$PGDB"
