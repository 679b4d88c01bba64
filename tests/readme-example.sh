#!/bin/sh
# readme-example.sh BUILD — compiles the complete example program from
# README.md against BUILD/libratchet.a exactly as shown, runs it twice (the
# second run must find the key finished), and checks what it wrote.
set -eu
build=$1
tmp=$(mktemp -d /tmp/ratchet-readme.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
sed -n '/<!-- example:begin -->/,/<!-- example:end -->/p' README.md |
    grep -v -e '^<!--' -e '^```' >"$tmp/squares.c"
[ -s "$tmp/squares.c" ] || { echo "readme-example: no example found in README.md" >&2; exit 1; }
${CC:-cc} -std=c11 -Wall -Wextra -Werror ${SAN:-} -Iinclude "$tmp/squares.c" "$build/libratchet.a" \
    $(pkg-config --libs sqlite3 libpq) -lm -lpthread -o "$tmp/squares"
db="sqlite:$tmp/squares.db"
RATCHET_LOG=json "$tmp/squares" --db "$db" run squares --key k --param limit=2500 2>"$tmp/log1"
RATCHET_LOG=json "$tmp/squares" --db "$db" run squares --key k 2>"$tmp/log2"
grep -q '"event":"already_done"' "$tmp/log2" || { echo "readme-example: second run did not report already_done" >&2; cat "$tmp/log2" >&2; exit 1; }
"$tmp/squares" --db "$db" status --json >"$tmp/status"
grep -q '"status":"done"' "$tmp/status" && grep -q '"items":2500' "$tmp/status" || {
    echo "readme-example: unexpected status:" >&2; cat "$tmp/status" >&2; exit 1; }
echo "readme-example: README program compiled, ran 2500 items, finished key not rerun: ok"
