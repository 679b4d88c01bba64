#!/bin/sh
# readme-example.sh BUILD — compiles the complete example program from
# README.md against BUILD/libratchet.a exactly as shown, runs it twice (the
# second run must find the key finished), and checks what it wrote.
#   readme-example.sh --extract FILE   only write the README's program to FILE
#   readme-example.sh --check PROGRAM  only run a compiled copy and check it
# (tests/install.sh builds it against an installed ratchet with these).
set -eu

# The program between the example markers of README.md, without the fences.
extract() {
    sed -n '/<!-- example:begin -->/,/<!-- example:end -->/p' README.md |
        grep -v -e '^<!--' -e '^```' >"$1"
    [ -s "$1" ] || { echo "readme-example: no example found in README.md" >&2; exit 1; }
}

# Run program $1 twice on a fresh database in directory $2 and check the result.
check() {
    db="sqlite:$2/squares.db"
    RATCHET_LOG=json "$1" --db "$db" run squares --key k --param limit=2500 2>"$2/log1" || {
        echo "readme-example: $1 failed:" >&2; cat "$2/log1" >&2; exit 1; }
    RATCHET_LOG=json "$1" --db "$db" run squares --key k 2>"$2/log2"
    grep -q '"event":"already_done"' "$2/log2" || { echo "readme-example: second run did not report already_done" >&2; cat "$2/log2" >&2; exit 1; }
    "$1" --db "$db" status --json >"$2/status"
    grep -q '"status":"done"' "$2/status" && grep -q '"items":2500' "$2/status" || {
        echo "readme-example: unexpected status:" >&2; cat "$2/status" >&2; exit 1; }
}

tmp=$(mktemp -d /tmp/ratchet-readme.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
case $1 in
--extract)
    extract "$2"
    exit 0 ;;
--check)
    check "$2" "$tmp"
    echo "readme-example: $2 ran 2500 items, finished key not rerun: ok"
    exit 0 ;;
esac
build=$1
extract "$tmp/squares.c"
${CC:-cc} -std=c11 -Wall -Wextra -Werror ${SAN:-} -Iinclude "$tmp/squares.c" "$build/libratchet.a" \
    $(pkg-config --libs sqlite3) -lm -lpthread -o "$tmp/squares"
check "$tmp/squares" "$tmp"
echo "readme-example: README program compiled, ran 2500 items, finished key not rerun: ok"
