#!/bin/sh
# run-bench.sh BENCH RATCHET BASELINE_SQLITE BASELINE_PG — runs the bench
# driver (make bench). Unless BENCH_PG_URL names a PostgreSQL server already
# (a libpq conninfo or URI of a role that may CREATE DATABASE), starts a
# throwaway one with tests/pg-server.sh — with fsync, full_page_writes and
# synchronous_commit ON (PG_SERVER_DURABLE=1), so commits cost what they
# cost — and always stops it, also when the bench fails or is interrupted.
# BENCH_SKIP_PG=1 measures SQLite only.
set -u
here=$(cd "$(dirname "$0")" && pwd)
pgdir=
cleanup() {
    if [ -n "$pgdir" ]; then
        "$here/../pg-server.sh" stop "$pgdir" >/dev/null 2>&1
        rm -rf "$pgdir"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM
if [ -z "${BENCH_PG_URL:-}" ] && [ "${BENCH_SKIP_PG:-0}" != 1 ]; then
    pgdir=$(mktemp -d "${TMPDIR:-/tmp}/ratchet-bench-pg.XXXXXX")
    if ! BENCH_PG_URL=$(PG_SERVER_DURABLE=1 "$here/../pg-server.sh" start "$pgdir"); then
        echo "run-bench.sh: could not start a throwaway PostgreSQL (see above);" \
             "set BENCH_PG_URL to a server, or BENCH_SKIP_PG=1" >&2
        exit 1
    fi
    BENCH_PG_SERVER="throwaway, tests/pg-server.sh with PG_SERVER_DURABLE=1 (fsync on)"
    export BENCH_PG_URL BENCH_PG_SERVER
fi
[ "${BENCH_SKIP_PG:-0}" = 1 ] && unset BENCH_PG_URL
"$@"
