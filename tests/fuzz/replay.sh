#!/bin/sh
# replay.sh BUILD NAME... — `make check`'s fuzz step: runs the seed corpus
# (tests/fuzz/corpus/NAME) and the saved crash inputs
# (tests/fuzz/regressions/NAME) through BUILD/fuzz/replay_NAME, each fuzz
# target built with a plain driver (replay.c) instead of libFuzzer. Fails,
# showing the end of the target's output, when one crashes or one of its
# invariants breaks.
set -u
build=$1
shift
here=$(cd "$(dirname "$0")" && pwd)
log=$(mktemp /tmp/ratchet-fuzz-replay.XXXXXX)
trap 'rm -f "$log"' EXIT
failed=0
total=0
for name in "$@"; do
    set --
    for dir in "$here/corpus/$name" "$here/regressions/$name"; do
        [ -d "$dir" ] && set -- "$@" "$dir"
    done
    if [ $# -eq 0 ]; then
        echo "fuzz replay: $name: no corpus and no regressions" >&2
        failed=1
        continue
    fi
    if "$build/fuzz/replay_$name" "$@" >"$log" 2>&1; then
        n=$(sed -n 's/.*: \([0-9]*\) inputs replayed$/\1/p' "$log")
        total=$((total + n))
        echo "fuzz replay: $name: $n inputs ok"
    else
        echo "fuzz replay: $name FAILED (exit $?); its output ends with:" >&2
        tail -n 30 "$log" >&2
        failed=1
    fi
done
[ "$failed" = 0 ] && echo "fuzz replay: $total inputs, no crash"
exit "$failed"
