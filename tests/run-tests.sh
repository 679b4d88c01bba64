#!/bin/sh
# run-tests.sh PROGRAM... — runs the Check suites (and after them the torture
# driver), each in turn on the same servers. Unless RATCHET_TEST_PG
# names a PostgreSQL server already, starts a throwaway one with
# tests/pg-server.sh and always stops it, also when tests fail or are
# interrupted. RATCHET_TEST_PG is a libpq conninfo for an admin connection
# (the harness creates one database per test from it). When the server is
# our own, RATCHET_TEST_PG_DIR is its directory, for tests that restart it
# (RATCHET_TEST_PG_SERVER restart DIR, the script's absolute path).
set -u
here=$(cd "$(dirname "$0")" && pwd)
pgdir=
cleanup() {
    if [ -n "$pgdir" ]; then
        "$here/pg-server.sh" stop "$pgdir" >/dev/null 2>&1
        rm -rf "$pgdir"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM
if [ -z "${RATCHET_TEST_PG:-}" ] && [ "${RATCHET_TEST_SKIP_PG:-0}" != 1 ]; then
    pgdir=$(mktemp -d /tmp/ratchet-pg.XXXXXX)
    if ! RATCHET_TEST_PG=$("$here/pg-server.sh" start "$pgdir"); then
        echo "run-tests.sh: could not start a throwaway PostgreSQL (see above);" \
             "set RATCHET_TEST_PG to a server, or RATCHET_TEST_SKIP_PG=1" >&2
        exit 1
    fi
    RATCHET_TEST_PG_DIR=$pgdir
    RATCHET_TEST_PG_SERVER=$here/pg-server.sh
    export RATCHET_TEST_PG RATCHET_TEST_PG_DIR RATCHET_TEST_PG_SERVER
fi
# Every program runs, even after one failed; the exit says whether any did.
failed=0
for program in "$@"; do
    "$program" || failed=1
done
exit $failed
