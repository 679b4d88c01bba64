#!/bin/sh
# libpq-loading.sh BUILD — libpq is loaded for PostgreSQL URLs only
# (framework/store/pq_loader.c): neither BUILD/ratchet nor BUILD/libratchet.so
# needs libpq (readelf NEEDED) or leaves a PQ* symbol for the loader to bind;
# a whole run on SQLite maps no libpq (the dynamic loader's LD_DEBUG=libs
# trace), while opening a PostgreSQL URL does (the same trace must show it,
# or the first check proves nothing); and with RATCHET_LIBPQ naming a file
# that does not exist, a PostgreSQL URL fails with exit 1 and one line that
# says what is missing, while SQLite runs as before. Needs no server.
set -eu
build=$1
bin=$build/ratchet
so=$build/libratchet.so
tmp=$(mktemp -d /tmp/ratchet-libpq.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "libpq-loading: $*" >&2; exit 1; }
# A PostgreSQL URL that fails at once: no server socket in a missing directory.
pg_url="host=$tmp/no-such-dir port=1 dbname=x connect_timeout=2"

for f in "$bin" "$so"; do
    [ -f "$f" ] || fail "$f is missing"
    if readelf -d "$f" | grep '(NEEDED)' | grep -q libpq; then
        fail "$f is linked with libpq: $(readelf -d "$f" | grep libpq)"
    fi
done
undef=$(nm -D --undefined-only "$so" | awk '$2 ~ /^PQ/ { print $2 }')
[ -z "$undef" ] || fail "$so leaves libpq symbols to the loader:" $undef

# The loader's trace names every library it maps ("find library=libpq.so.5").
RATCHET_LOG_LEVEL=warn LD_DEBUG=libs "$bin" --db "sqlite:$tmp/t.db" run rowcopy \
    --param rows=20 >/dev/null 2>"$tmp/sqlite.trace" ||
    { cat "$tmp/sqlite.trace" >&2; fail "the SQLite run failed"; }
if ! grep -q 'libc\.so' "$tmp/sqlite.trace"; then
    echo "libpq-loading: the dynamic loader has no LD_DEBUG trace; runtime checks skipped"
else
    if grep -q 'libpq' "$tmp/sqlite.trace"; then
        fail "a run on SQLite loaded libpq: $(grep -m1 libpq "$tmp/sqlite.trace")"
    fi
    code=0
    LD_DEBUG=libs "$bin" --db "$pg_url" status >/dev/null 2>"$tmp/pg.trace" || code=$?
    [ $code = 1 ] || { cat "$tmp/pg.trace" >&2; fail "status on an unreachable PostgreSQL exited $code, not 1"; }
    grep -q 'libpq\.so' "$tmp/pg.trace" ||
        fail "opening a PostgreSQL URL did not load libpq (or LD_DEBUG does not show it)"
fi

# libpq missing: one line naming it, exit 1 (as for a server not reached).
code=0
RATCHET_LIBPQ=$tmp/none/libpq.so.5 "$bin" --db "$pg_url" status >"$tmp/out" 2>"$tmp/err" || code=$?
[ $code = 1 ] || { cat "$tmp/err" >&2; fail "without libpq, status exited $code, not 1"; }
[ "$(wc -l <"$tmp/err")" = 1 ] || { cat "$tmp/err" >&2; fail "without libpq: not one line on stderr"; }
grep -q "PostgreSQL support needs libpq (libpq5): $tmp/none/libpq.so.5: " "$tmp/err" ||
    fail "without libpq, the message does not say what is missing: $(cat "$tmp/err")"
[ ! -s "$tmp/out" ] || fail "without libpq, status printed: $(cat "$tmp/out")"
RATCHET_LIBPQ=$tmp/none/libpq.so.5 "$bin" --db "sqlite:$tmp/t.db" status >/dev/null 2>"$tmp/err" ||
    { cat "$tmp/err" >&2; fail "without libpq, status on SQLite failed"; }

echo "libpq-loading: no libpq linked; loaded for PostgreSQL URLs only; missing libpq is one line, exit 1: ok"
