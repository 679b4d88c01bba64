#!/bin/sh
# memcheck.sh [BUILD] — the CLI's main paths under valgrind memcheck: no
# invalid access, no use of uninitialised memory, and no definite or
# indirect leak, in every process (forked workers too). Paths: --version,
# --help, run to completion, status, history, enqueue + a worker draining
# the run, usage errors (exit 2), a SIGTERM mid-run (exit 75), all on
# SQLite; and a run on PostgreSQL (RATCHET_TEST_PG, as tests/run-tests.sh
# sets it; RATCHET_TEST_SKIP_PG=1 leaves it out).
#
# The binary is BUILD/ratchet, else $RATCHET_BIN. make check runs this
# through tests/run-tests.sh (which provides the PostgreSQL server), except
# in sanitizer builds: valgrind cannot run an ASan binary. Suppressions, for
# library noise only, are in tests/memcheck.supp. MEMCHECK_KEEP=1 keeps the
# scratch directory (valgrind's logs, each process's stderr).
set -u
here=$(cd "$(dirname "$0")" && pwd)
bin=${1:+$1/ratchet}
bin=${bin:-${RATCHET_BIN:-}}
if [ -z "$bin" ] || [ ! -x "$bin" ]; then
    echo "memcheck.sh: no ratchet binary (usage: memcheck.sh BUILD, or set RATCHET_BIN)" >&2
    exit 1
fi
if ! command -v valgrind >/dev/null 2>&1; then
    echo "memcheck.sh: valgrind not found (apt-get install valgrind)" >&2
    exit 1
fi
if [ -z "${RATCHET_TEST_PG:-}" ] && [ "${RATCHET_TEST_SKIP_PG:-0}" != 1 ]; then
    echo "memcheck.sh: RATCHET_TEST_PG is not set: run it through tests/run-tests.sh" \
         "(it starts PostgreSQL), or set RATCHET_TEST_SKIP_PG=1" >&2
    exit 1
fi
tmp=$(mktemp -d /tmp/ratchet-memcheck.XXXXXX)
pgdb=
cleanup() {
    [ -n "$pgdb" ] && psql -qX "$RATCHET_TEST_PG" -c "DROP DATABASE IF EXISTS $pgdb WITH (FORCE)" >/dev/null 2>&1
    [ "${MEMCHECK_KEEP:-0}" = 1 ] || rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

RATCHET_DB=sqlite:$tmp/m.db
RATCHET_LOG=json
export RATCHET_DB RATCHET_LOG
started=$(date +%s)
: >"$tmp/failed"
: >"$tmp/paths"

# vg NAME ARGS...: ratchet ARGS under valgrind, in the background ($!);
# one log per process ($tmp/vg.NAME.PID), stderr in $tmp/err.NAME.
vg() {
    name=$1
    shift
    valgrind --leak-check=full --show-leak-kinds=definite,indirect \
        --errors-for-leak-kinds=definite,indirect --error-exitcode=97 \
        --suppressions="$here/memcheck.supp" --log-file="$tmp/vg.$name.%p" \
        "$bin" "$@" >"$tmp/out.$name" 2>"$tmp/err.$name" &
}

# verdict NAME WANT RC: the exit code is WANT and every process's log has a
# clean error summary.
verdict() {
    name=$1 want=$2 rc=$3
    echo "$name" >>"$tmp/paths"
    bad=
    [ "$rc" = "$want" ] || bad="exit $rc, want $want"
    for log in "$tmp"/vg."$name".*; do
        if [ ! -s "$log" ]; then
            bad="${bad:+$bad; }no valgrind log"
        elif ! grep -q 'ERROR SUMMARY: 0 errors' "$log"; then
            bad="${bad:+$bad; }$(grep -h 'ERROR SUMMARY' "$log" | sed 's/^==[0-9]*== //') ($(basename "$log"))"
        fi
    done
    if [ -n "$bad" ]; then
        echo "$name" >>"$tmp/failed"
        echo "memcheck: FAIL $name: $bad"
        for log in "$tmp"/vg."$name".*; do
            grep -q 'ERROR SUMMARY: 0 errors' "$log" 2>/dev/null || cat "$log"
        done
        echo "--- stderr of $name:"
        cat "$tmp/err.$name"
    fi
}

# run NAME WANT ARGS...: vg, wait, verdict.
run() {
    name=$1 want=$2
    shift 2
    vg "$name" "$@"
    wait $!
    verdict "$name" "$want" $?
}

# await FILE TEXT SECONDS: until FILE contains TEXT.
await() {
    i=0
    while ! grep -q "$2" "$1" 2>/dev/null; do
        i=$((i + 1))
        [ $i -gt $(($3 * 10)) ] && return 1
        sleep 0.1
    done
}

# Two lanes side by side (valgrind's start-up of each process is most of
# the time): B, the paths that share nothing, in the background; A, the
# paths that build on one SQLite database, in order.
[ "${RATCHET_TEST_SKIP_PG:-0}" != 1 ] && pgdb=rt_memcheck_$$
(
    run version 0 --version
    run help 0 --help
    # Usage errors: a bad flag, an unknown URL scheme, no such job.
    run bad-flag 2 run rowcopy --chunk-items lots
    run bad-url 2 --db nosuch://x status
    run bad-job 2 run no-such-job
    # PostgreSQL: a run to completion (libpq is loaded on demand).
    if [ -n "$pgdb" ]; then
        if psql -qX "$RATCHET_TEST_PG" -c "CREATE DATABASE $pgdb" >/dev/null; then
            run pg-run 0 --db "$RATCHET_TEST_PG dbname=$pgdb" run rowcopy \
                --key p --param rows=300 --chunk-items 100
        else
            echo "memcheck: cannot create database $pgdb"
            echo pg-run >>"$tmp/failed"
        fi
    fi
) &
lane_b=$!

run run 0 run rowcopy --key a --param rows=300 --chunk-items 100
run status 0 status
run history 0 history rowcopy

# A SIGTERM mid-run: the copy commits what it finished, exit 75.
vg sigterm run rowcopy --key t --param rows=3000 --param item_us=5000 --chunk-items 50
pid=$!
await "$tmp/err.sigterm" 'step 1/3 done' 60 && sleep 0.5
kill -TERM $pid
wait $pid
verdict sigterm 75 $?

# The queue: enqueue a run; a pool of two forked workers claims and
# finishes it; SIGTERM stops the pool.
run enqueue 0 enqueue rowcopy --key q --param rows=100
vg worker worker --concurrency 2 --grace 20
pid=$!
i=0
until [ "$(sqlite3 "$tmp/m.db" "SELECT status FROM rt_run WHERE run_key = 'q'" 2>/dev/null)" = "done" ]; do
    i=$((i + 1))
    if [ $i -gt 600 ]; then
        echo "memcheck: the worker did not finish run q in 60 s"
        echo worker >>"$tmp/failed"
        break
    fi
    sleep 0.1
done
kill -TERM $pid
wait $pid
verdict worker 0 $?

wait $lane_b
secs=$(($(date +%s) - started))
paths=$(wc -l <"$tmp/paths")
if [ ! -s "$tmp/failed" ]; then
    echo "memcheck: PASS $paths paths of $bin under valgrind, no error and no leak ($secs s)"
    exit 0
fi
echo "memcheck: FAIL $(sort "$tmp/failed" | tr '\n' ' ')(scratch kept in $tmp)"
MEMCHECK_KEEP=1
exit 1
